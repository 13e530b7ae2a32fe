//! Uptime figures and the report: a hand-computed scenario, edge cases,
//! a brute-force comparison, and the formats.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::availability::{Downtime, DowntimeWindow};
use crate::catalogue::ConditionCode;
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::labels::Labels;
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::store::{HistoryEvent, HistoryKind};
use crate::team::Login;
use crate::time::Timestamp;

const DAY: &str = "2026-11-03";
const SLC: &str = "M01-C01-123-45";

/// `HH:MM` on [`DAY`]; `-HH:MM` the day before, `+HH:MM` the day after.
fn at(hhmm: &str) -> Timestamp {
    let (day, time) = match hhmm.as_bytes().first() {
        Some(b'-') => ("2026-11-02", &hhmm[1..]),
        Some(b'+') => ("2026-11-04", &hhmm[1..]),
        _ => (DAY, hhmm),
    };
    Timestamp::parse_utc(&format!("{day}T{time}")).expect("a time")
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn rs(id: &str) -> RecordingServerId {
    RecordingServerId::new(id).expect("server id")
}

fn slc(text: &str) -> Slc {
    Slc::new(text).expect("slc")
}

fn acme() -> ResellerId {
    ResellerId::new("acme").expect("reseller")
}

fn day() -> Period {
    Period::parse_day(DAY).expect("the day")
}

fn event(server: &str, at: Timestamp, kind: HistoryKind) -> HistoryEvent {
    HistoryEvent {
        at,
        server: rs(server),
        kind,
    }
}

fn down(server: &str, t: Timestamp) -> HistoryEvent {
    event(server, t, HistoryKind::BecameUnavailable { missed: 3 })
}

fn up(server: &str, t: Timestamp, since: Timestamp) -> HistoryEvent {
    event(
        server,
        t,
        HistoryKind::Recovered {
            unavailable_for: t.since(since),
            missed: 3,
        },
    )
}

/// Down from `start` to `end` (not recovered if `end` is `None`).
fn outage(server: &str, start: Timestamp, end: Option<Timestamp>) -> Vec<HistoryEvent> {
    let mut events = vec![down(server, start)];
    events.extend(end.map(|end| up(server, end, start)));
    events
}

fn window(
    reseller: &str,
    slc: Option<&str>,
    starts_at: Timestamp,
    length: Duration,
    every: Option<Duration>,
) -> MaintenanceWindow {
    MaintenanceWindow {
        id: WindowId::generate(),
        reseller: ResellerId::new(reseller).expect("reseller"),
        slc: slc.map(self::slc),
        starts_at,
        length,
        every,
        reason: "firmware".into(),
        created_by: Login::new("admin@acme.example").expect("login"),
        created_at: Timestamp::EPOCH,
    }
}

fn own(start: Timestamp, end: Timestamp) -> DowntimeWindow {
    DowntimeWindow::new(start, end).expect("window")
}

fn installation(
    slc_text: &str,
    customer: &str,
    servers: &[(&str, Timestamp)],
    history: Vec<HistoryEvent>,
) -> InstallationHistory {
    InstallationHistory {
        slc: slc(slc_text),
        labels: Labels::new(customer, "Harbour", "", &[]).expect("labels"),
        servers: servers
            .iter()
            .map(|(id, first_seen_at)| MonitoredServer {
                server: rs(id),
                first_seen_at: *first_seen_at,
            })
            .collect(),
        history,
    }
}

fn long_ago() -> Timestamp {
    Timestamp::parse_utc("2026-10-01").expect("a time")
}

/// One server, first seen long ago, over [`day`], with these exclusions.
fn server_uptime(
    history: Vec<HistoryEvent>,
    first_seen: Timestamp,
    own_downtime: &[DowntimeWindow],
    maintenance: &[MaintenanceWindow],
) -> Uptime {
    let installation = installation(SLC, "", &[("rs-a", first_seen)], history);
    let computed = InstallationUptime::compute(
        &installation,
        day(),
        &Downtime::new(own_downtime.to_vec()),
        maintenance,
    );
    assert_eq!(computed.servers.len(), 1);
    let server = computed.servers[0].uptime;
    assert_eq!(
        computed.uptime, server,
        "one server: the installation's figures"
    );
    server
}

/// The four parts of the period add up to it.
fn assert_partition(u: &Uptime) {
    assert_eq!(
        u.unmonitored + u.excluded_own_downtime + u.excluded_maintenance + u.observed,
        u.period.length(),
        "{u:?}"
    );
    assert!(u.down <= u.observed && u.down <= u.outage_time, "{u:?}");
}

/// The scenario the issue asks to check by hand.
///
/// One day, 2026-11-03 (1440 min). Servers A and B, both first seen long
/// before. Exclusions: own downtime 10:30–11:00 (30 min); a daily
/// maintenance window 20:00–22:00 (120 min) that began a month earlier.
///
/// - A is down 02:00–03:00 (60 min, all observed) and 10:00–11:00 with B.
/// - B is down 10:00–11:00 and 20:15–21:00 (wholly in maintenance).
/// - The installation is down when both are: 10:00–11:00.
///
/// Observed, for all three: 1440 − 30 − 120 = 1290 min = 77 400 s.
///
/// A: down 60 + (60 − 30) = 90 min = 5400 s; 2 outages, outage time
/// 60 + 60 = 120 min = 7200 s; MTTR (60 + 30) / 2 = 45 min = 2700 s;
/// availability (1290 − 90) / 1290 = 1200/1290 = 93.0232…% → "93.02%".
///
/// B: 10:00–11:00 counts 30 min; 20:15–21:00 has no observed time, so it
/// is no outage of the period. Down 30 min = 1800 s; 1 outage, outage time
/// 60 min = 3600 s; MTTR 30 min = 1800 s; availability 1260/1290 =
/// 97.6744…% → "97.67%".
///
/// The installation: the same as B (its only outage is 10:00–11:00).
#[test]
fn the_hand_computed_scenario() {
    let mut history = vec![
        event("rs-a", long_ago(), HistoryKind::FirstSeen),
        event("rs-b", long_ago(), HistoryKind::FirstSeen),
        event(
            "rs-b",
            at("05:00"),
            HistoryKind::ConditionOpened {
                code: ConditionCode::StorageFull,
                subject: "D:".into(),
            },
        ),
    ];
    history.extend(outage("rs-a", at("02:00"), Some(at("03:00"))));
    history.extend(outage("rs-a", at("10:00"), Some(at("11:00"))));
    history.extend(outage("rs-b", at("10:00"), Some(at("11:00"))));
    history.extend(outage("rs-b", at("20:15"), Some(at("21:00"))));
    history.reverse(); // as the store lists it: newest first
    let installations = [installation(
        SLC,
        "Müller GmbH",
        &[("rs-a", long_ago()), ("rs-b", long_ago())],
        history,
    )];
    let maintenance = [
        window(
            "acme",
            Some(SLC),
            Timestamp::parse_utc("2026-10-01T20:00").expect("time"),
            minutes(120),
            Some(Duration::from_secs(86_400)),
        ),
        // Another installation's window, and another reseller's: no effect.
        window(
            "acme",
            Some("M01-C01-999-99"),
            at("00:00"),
            minutes(600),
            None,
        ),
        window("other", None, at("00:00"), minutes(600), None),
    ];
    let report = UptimeReport::build(
        &acme(),
        day(),
        &installations,
        &[own(at("10:30"), at("11:00"))],
        &maintenance,
    );

    let [installation] = report.installations.as_slice() else {
        panic!("one installation: {report:?}");
    };
    let [a, b] = installation.servers.as_slice() else {
        panic!("two servers: {installation:?}");
    };
    assert_eq!((a.server.as_str(), b.server.as_str()), ("rs-a", "rs-b"));
    for u in [&installation.uptime, &a.uptime, &b.uptime] {
        assert_partition(u);
        assert_eq!(u.observed, minutes(1290));
        assert_eq!(u.excluded_own_downtime, minutes(30));
        assert_eq!(u.excluded_maintenance, minutes(120));
        assert_eq!(u.unmonitored, Duration::ZERO);
        assert!(!u.ongoing);
    }
    let a = a.uptime;
    assert_eq!(a.down, minutes(90));
    assert_eq!(a.outages, 2);
    assert_eq!(a.outage_time, minutes(120));
    assert_eq!(a.mttr, Some(minutes(45)));
    assert_eq!(a.to_string(), "93.02%");
    assert_eq!(
        a.availability().map(|p| p.scaled_down(3)),
        Some(93_023),
        "1200/1290"
    );
    let b = b.uptime;
    for u in [b, installation.uptime] {
        assert_eq!(u.down, minutes(30));
        assert_eq!(u.outages, 1);
        assert_eq!(u.outage_time, minutes(60));
        assert_eq!(u.mttr, Some(minutes(30)));
        assert_eq!(u.to_string(), "97.67%");
        assert_eq!(
            format!("{:.3}", u.availability().expect("observed")),
            "97.674%"
        );
        let percent = u.availability_percent().expect("observed");
        assert!(
            (percent - 1260.0 / 1290.0 * 100.0).abs() < 1e-9,
            "{percent}"
        );
    }

    let start = "2026-11-03T00:00:00.000Z,2026-11-04T00:00:00.000Z";
    assert_eq!(
        report.to_csv(),
        format!(
            "{CSV_HEADER}\r\n\
             installation,{SLC},Müller GmbH,Harbour,,{start},97.674,77400,1800,1,3600,1800,false,1800,7200,0\r\n\
             server,{SLC},Müller GmbH,Harbour,rs-a,{start},93.023,77400,5400,2,7200,2700,false,1800,7200,0\r\n\
             server,{SLC},Müller GmbH,Harbour,rs-b,{start},97.674,77400,1800,1,3600,1800,false,1800,7200,0\r\n"
        )
    );
}

#[test]
fn an_outage_across_the_period_boundaries_counts_inside_it() {
    // 22:00 the day before to 02:00, and 23:00 to 01:00 the day after.
    let mut history = outage("rs-a", at("-22:00"), Some(at("02:00")));
    history.extend(outage("rs-a", at("23:00"), Some(at("+01:00"))));
    let u = server_uptime(history.clone(), long_ago(), &[], &[]);
    assert_partition(&u);
    assert_eq!(u.down, minutes(120 + 60));
    assert_eq!(u.outage_time, minutes(180));
    assert_eq!(u.outages, 2);
    assert!(u.ongoing, "the second one is still in progress at midnight");
    assert_eq!(
        u.mttr,
        Some(minutes(240)),
        "the first, over its whole length"
    );

    // A daily window 23:30–00:30 (begun long before) crosses both ends.
    let nightly = [window(
        "acme",
        None,
        Timestamp::parse_utc("2026-01-01T23:30").expect("time"),
        minutes(60),
        Some(Duration::from_secs(86_400)),
    )];
    let u = server_uptime(history, long_ago(), &[], &nightly);
    assert_partition(&u);
    assert_eq!(u.excluded_maintenance, minutes(30 + 30));
    assert_eq!(u.observed, minutes(1380));
    assert_eq!(u.down, minutes(90 + 30), "00:30–02:00 and 23:00–23:30");
    assert_eq!(u.outage_time, minutes(180));
    assert_eq!(
        u.mttr,
        Some(minutes(240 - 60)),
        "its window the night before is excluded too"
    );
    assert_eq!(u.to_string(), "91.30%", "1260/1380");
}

#[test]
fn an_open_outage_is_ongoing_and_has_no_mttr() {
    let u = server_uptime(outage("rs-a", at("20:00"), None), long_ago(), &[], &[]);
    assert_partition(&u);
    assert_eq!((u.down, u.outages, u.ongoing), (minutes(240), 1, true));
    assert_eq!(u.mttr, None);
    assert_eq!(u.to_string(), "83.33%");
    // Recovered exactly at the end: ended within the period.
    let u = server_uptime(
        outage("rs-a", at("20:00"), Some(at("+00:00"))),
        long_ago(),
        &[],
        &[],
    );
    assert_eq!((u.ongoing, u.mttr), (false, Some(minutes(240))));
}

#[test]
fn a_server_first_seen_mid_period_is_judged_from_then() {
    // Own downtime 06:00–07:00 is before it was seen: unmonitored, not excluded.
    let history = outage("rs-a", at("13:00"), Some(at("14:00")));
    let u = server_uptime(history, at("12:00"), &[own(at("06:00"), at("07:00"))], &[]);
    assert_partition(&u);
    assert_eq!(u.unmonitored, minutes(720));
    assert_eq!(u.excluded_own_downtime, Duration::ZERO);
    assert_eq!(u.observed, minutes(720));
    assert_eq!((u.down, u.outages), (minutes(60), 1));
    assert_eq!(u.to_string(), "91.66%", "660/720, rounded down");
}

#[test]
fn a_server_retired_while_down_has_an_outage_but_no_repair() {
    // Down 10:00, decommissioned 12:00, brought back 18:00, down 20:00–21:00.
    let mut history = outage("rs-a", at("10:00"), None);
    history.push(event("rs-a", at("12:00"), HistoryKind::Decommissioned));
    history.push(event(
        "rs-a",
        at("18:00"),
        HistoryKind::Recommissioned {
            decommissioned_for: minutes(360),
        },
    ));
    history.extend(outage("rs-a", at("20:00"), Some(at("21:00"))));
    let u = server_uptime(history, long_ago(), &[], &[]);
    assert_partition(&u);
    assert_eq!(u.unmonitored, minutes(360));
    assert_eq!((u.down, u.outages, u.ongoing), (minutes(180), 2, false));
    assert_eq!(u.mttr, Some(minutes(60)), "only the one it recovered from");
    assert_eq!(u.to_string(), "83.33%", "900/1080");
}

#[test]
fn overlapping_own_downtime_and_maintenance_count_once_as_own_downtime() {
    let u = server_uptime(
        outage("rs-a", at("09:00"), Some(at("14:00"))),
        long_ago(),
        &[own(at("10:00"), at("12:00")), own(at("11:00"), at("11:30"))],
        &[
            window("acme", Some(SLC), at("11:00"), minutes(120), None),
            window("acme", None, at("12:30"), minutes(60), None),
        ],
    );
    assert_partition(&u);
    assert_eq!(u.excluded_own_downtime, minutes(120));
    assert_eq!(u.excluded_maintenance, minutes(90), "12:00–13:30");
    assert_eq!(u.observed, minutes(1440 - 210));
    assert_eq!(u.down, minutes(300 - 210));
    assert_eq!(u.outage_time, minutes(300));
    assert_eq!(u.mttr, Some(minutes(90)));
}

#[test]
fn an_outage_wholly_excluded_is_no_outage() {
    let u = server_uptime(
        outage("rs-a", at("10:00"), Some(at("11:00"))),
        long_ago(),
        &[own(at("09:00"), at("12:00"))],
        &[],
    );
    assert_eq!(
        (u.outages, u.down, u.outage_time, u.mttr),
        (0, Duration::ZERO, Duration::ZERO, None)
    );
    assert_eq!(u.to_string(), "100.00%");
}

#[test]
fn recurring_daily_maintenance_over_thirty_days() {
    let end = Timestamp::parse_utc("2026-11-30T12:00").expect("time");
    let period = Period::last_days(end, 30).expect("30 days");
    let daily = window(
        "acme",
        None,
        Timestamp::parse_utc("2025-06-01T11:30").expect("time"),
        minutes(60),
        Some(Duration::from_secs(86_400)),
    );
    let occurrences = maintenance_occurrences(&daily, period.interval());
    // 11:30–12:30 daily: the first clipped to 12:00–12:30, the last to 11:30–12:00.
    assert_eq!(occurrences.len(), 31);
    assert_eq!(occurrences[0].start, period.start());
    assert_eq!(occurrences[0].length(), minutes(30));
    assert_eq!(occurrences[30].end, end);
    assert_eq!(occurrences[30].length(), minutes(30));
    let total: Duration = occurrences.iter().map(Interval::length).sum();
    assert_eq!(total, minutes(30 * 60));

    let history = installation(SLC, "", &[("rs-a", long_ago())], vec![]);
    let computed = InstallationUptime::compute(&history, period, &Downtime::default(), [&daily]);
    assert_eq!(computed.uptime.excluded_maintenance, minutes(30 * 60));
    assert_eq!(computed.uptime.to_string(), "100.00%");

    // A one-off window that ended before, or starts after: nothing.
    let once = window(
        "acme",
        None,
        period.start().saturating_sub(minutes(60)),
        minutes(60),
        None,
    );
    assert_eq!(maintenance_occurrences(&once, period.interval()), vec![]);
    let later = window("acme", None, end, minutes(60), Some(minutes(120)));
    assert_eq!(maintenance_occurrences(&later, period.interval()), vec![]);
    // One begun before the period, still on: from the period's start.
    let long = window(
        "acme",
        None,
        period.start().saturating_sub(minutes(60)),
        minutes(90),
        None,
    );
    assert_eq!(
        maintenance_occurrences(&long, period.interval()),
        vec![Interval::new(
            period.start(),
            period.start().saturating_add(minutes(30))
        )]
    );
    // Repeating no less often than it lasts: continuous from its start.
    let solid = window(
        "acme",
        None,
        period.start(),
        minutes(120),
        Some(minutes(60)),
    );
    assert_eq!(
        maintenance_occurrences(&solid, period.interval()),
        vec![period.interval()]
    );
}

#[test]
fn own_downtime_is_clipped_to_the_interval() {
    let downtime = Downtime::new(vec![
        own(at("-23:00"), at("01:00")),
        own(at("05:00"), at("06:00")),
        own(at("23:30"), at("+02:00")),
    ]);
    assert_eq!(
        own_downtime_within(&downtime, day().interval()),
        vec![
            Interval::new(at("00:00"), at("01:00")),
            Interval::new(at("05:00"), at("06:00")),
            Interval::new(at("23:30"), at("+00:00")),
        ]
    );
    let exclusions = Exclusions::new(
        day().interval(),
        &slc(SLC),
        &downtime,
        &[window("acme", None, at("05:30"), minutes(60), None)],
    );
    assert_eq!(
        exclusions.maintenance(),
        [Interval::new(at("06:00"), at("06:30"))]
    );
    assert_eq!(exclusions.all()[1], Interval::new(at("05:00"), at("06:30")));
    assert_eq!(exclusions.own_downtime().len(), 3);
}

#[test]
fn nothing_observed_means_no_availability() {
    // No servers at all.
    let empty = installation(SLC, "", &[], vec![]);
    let computed = InstallationUptime::compute(&empty, day(), &Downtime::default(), []);
    let u = computed.uptime;
    assert_partition(&u);
    assert_eq!((u.unmonitored, u.observed), (minutes(1440), Duration::ZERO));
    assert_eq!((u.availability(), u.availability_percent()), (None, None));
    assert_eq!(u.to_string(), "n/a");
    // First seen after the period.
    let u = server_uptime(vec![], at("+10:00"), &[], &[]);
    assert_eq!((u.unmonitored, u.availability()), (minutes(1440), None));
    // The whole day in maintenance.
    let u = server_uptime(
        outage("rs-a", at("10:00"), None),
        long_ago(),
        &[],
        &[window("acme", None, at("-12:00"), minutes(48 * 60), None)],
    );
    assert_partition(&u);
    assert_eq!(
        (u.observed, u.outages, u.ongoing),
        (Duration::ZERO, 0, false)
    );
    assert_eq!(u.to_string(), "n/a");
    // And in the report: empty fields, JSON nulls.
    let report = UptimeReport::build(&acme(), day(), &[empty], &[], &[]);
    let csv = report.to_csv();
    let line = csv.lines().nth(1).expect("a line");
    assert!(line.ends_with(",,0,0,0,0,,false,0,0,86400"), "{line}");
    let json = report.to_json_value();
    let uptime = &json["installations"][0]["uptime"];
    assert!(uptime["availability_percent"].is_null() && uptime["mttr_s"].is_null());
}

#[test]
fn availability_is_shown_rounded_down() {
    let p = |observed: u64, down: u64| {
        AvailabilityPercent::new(Duration::from_millis(observed), Duration::from_millis(down))
            .expect("observed")
    };
    assert_eq!(p(1_000_000, 1).to_string(), "99.99%", "99.9999");
    assert_eq!(p(1_000_000, 0).to_string(), "100.00%");
    assert_eq!(p(2000, 1).to_string(), "99.95%");
    assert_eq!(format!("{:.3}", p(3, 1)), "66.666%");
    assert_eq!(format!("{:.0}", p(3, 1)), "66%");
    assert_eq!(p(3, 1).to_fixed(3), "66.666");
    assert_eq!(p(10, 10).to_string(), "0.00%");
    assert_eq!(p(10, 20).to_string(), "0.00%", "never below zero");
    assert!((p(3, 1).value() - 200.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        AvailabilityPercent::new(Duration::ZERO, Duration::ZERO),
        None
    );
}

#[test]
fn the_csv_quotes_a_customer_with_a_comma_and_a_quote() {
    let mut odd = installation(
        "M01-C01-000-02",
        "Smith, \"Jones\" & Co",
        &[("rs-1", long_ago())],
        vec![],
    );
    odd.labels = Labels::new("Smith, \"Jones\" & Co", "Dock 7", "", &[]).expect("labels");
    let plain = installation("M01-C01-000-01", "", &[("rs-1", long_ago())], vec![]);
    let report = UptimeReport::build(&acme(), day(), &[odd, plain], &[], &[]);
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        6,
        "header, 2 × (installation + server), and the final CRLF"
    );
    assert_eq!(lines[0], CSV_HEADER);
    assert!(
        lines[1].starts_with("installation,M01-C01-000-01,,Harbour,,"),
        "by SLC"
    );
    assert!(lines[2].starts_with("server,M01-C01-000-01,,Harbour,rs-1,"));
    assert!(
        lines[3].starts_with("installation,M01-C01-000-02,\"Smith, \"\"Jones\"\" & Co\",Dock 7,,"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[5], "");
    for line in &lines[1..5] {
        assert!(
            line.ends_with(",100.000,86400,0,0,0,,false,0,0,0"),
            "{line}"
        );
    }
}

/// A name someone typed that starts like a formula stays text in a
/// spreadsheet; the JSON keeps it as typed.
#[test]
fn the_csv_does_not_hand_a_spreadsheet_a_formula() {
    let mut typed = installation(
        "M01-C01-000-03",
        "=HYPERLINK(\"http://evil.example\",\"open\")",
        &[("rs-1", long_ago())],
        vec![],
    );
    typed.labels = Labels::new(
        "=HYPERLINK(\"http://evil.example\",\"open\")",
        "@SUM(A1)",
        "",
        &[],
    )
    .expect("labels");
    let report = UptimeReport::build(&acme(), day(), &[typed], &[], &[]);
    let csv = report.to_csv();
    let line = csv.split("\r\n").nth(1).expect("the installation's line");
    assert!(
        line.starts_with(
            "installation,M01-C01-000-03,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"open\"\")\",'@SUM(A1),,"
        ),
        "{line}"
    );
    let json = report.to_json_value();
    assert_eq!(json["installations"][0]["site"], "@SUM(A1)");
}

#[test]
fn the_json_has_stable_names_and_version_1() {
    let history = outage("rs-a", at("06:00"), Some(at("06:30")));
    let installations = [installation(
        SLC,
        "Müller, \"GmbH\"",
        &[("rs-a", long_ago())],
        history,
    )];
    let report = UptimeReport::build(&acme(), day(), &installations, &[], &[]);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(json, report.to_json_value());
    assert_eq!(json["version"], 1);
    assert_eq!(json["reseller"], "acme");
    assert_eq!(json["period"]["start"], "2026-11-03T00:00:00.000Z");
    assert_eq!(json["period"]["end"], "2026-11-04T00:00:00.000Z");
    let installation = &json["installations"][0];
    assert_eq!(installation["slc"], SLC);
    assert_eq!(installation["customer"], "Müller, \"GmbH\"");
    assert_eq!(installation["site"], "Harbour");
    assert_eq!(installation["servers"][0]["server"], "rs-a");
    let uptime = &installation["servers"][0]["uptime"];
    let names: Vec<&str> = uptime
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "availability_percent",
        "observed_s",
        "down_s",
        "outages",
        "outage_time_s",
        "mttr_s",
        "ongoing",
        "excluded_own_downtime_s",
        "excluded_maintenance_s",
        "unmonitored_s",
    ];
    let mut sorted = names.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(
        uptime["availability_percent"], 97.916,
        "1410/1440, rounded down"
    );
    assert_eq!(uptime["observed_s"], 86_400.0);
    assert_eq!(uptime["down_s"], 1800.0);
    assert_eq!(uptime["outages"], 1);
    assert_eq!(uptime["mttr_s"], 1800.0);
    assert_eq!(uptime["ongoing"], false);
    assert_eq!(installation["uptime"], *uptime);
}

#[test]
fn the_report_counts_each_listed_server_once_and_ignores_others() {
    let mut history = outage("rs-a", at("01:00"), Some(at("02:00")));
    history.extend(outage("rs-gone", at("00:00"), None));
    let installations = [installation(
        SLC,
        "",
        &[
            ("rs-b", long_ago()),
            ("rs-a", at("00:30")),
            ("rs-a", long_ago()),
        ],
        history,
    )];
    let report = UptimeReport::build(&acme(), day(), &installations, &[], &[]);
    let servers: Vec<&str> = report.installations[0]
        .servers
        .iter()
        .map(|s| s.server.as_str())
        .collect();
    assert_eq!(servers, ["rs-a", "rs-b"]);
    let a = report.installations[0].servers[0].uptime;
    assert_eq!((a.unmonitored, a.down), (Duration::ZERO, minutes(60)));
    assert_eq!(report.installations[0].uptime.outages, 0, "rs-b was up");
}

// ---------------------------------------------------------------------
// Brute force: on a minute grid, classify every minute independently
// (MaintenanceWindow::occurrence_at for maintenance) and compare.
// ---------------------------------------------------------------------

const MINUTE: i64 = 60_000;

fn minute(m: i64) -> Timestamp {
    Timestamp::from_millis(m * MINUTE)
}

/// One server: first seen, retired `[r0, r1)` (`r1` `None`: for good), its
/// outages `(start, end, recovered)` (not recovered: retired) and which
/// history entries are missing (as if older than the history given).
#[derive(Debug, Clone)]
struct ServerCase {
    first_seen: i64,
    retired: Option<(i64, Option<i64>)>,
    outages: Vec<(i64, i64, bool)>,
    missing: u8,
}

impl ServerCase {
    fn monitored(&self, m: i64) -> bool {
        m >= self.first_seen
            && !self
                .retired
                .is_some_and(|(r0, r1)| r0 <= m && r1.is_none_or(|r1| m < r1))
    }

    fn down(&self, m: i64) -> bool {
        self.outages.iter().any(|&(s, e, _)| s <= m && m < e)
    }

    fn history(&self, id: &str) -> Vec<HistoryEvent> {
        let mut history = Vec::new();
        for (j, &(s, e, recovered)) in self.outages.iter().enumerate() {
            // A recovered outage's start may be missing: its length says it.
            if !(recovered && self.missing & (1 << (j % 7)) != 0) {
                history.push(down(id, minute(s)));
            }
            if recovered {
                history.push(up(id, minute(e), minute(s)));
            }
        }
        if let Some((r0, r1)) = self.retired {
            // A retirement that ends may be missing its start too.
            if r1.is_none() || self.missing & 0x80 == 0 {
                history.push(event(id, minute(r0), HistoryKind::Decommissioned));
            }
            if let Some(r1) = r1 {
                history.push(event(
                    id,
                    minute(r1),
                    HistoryKind::Recommissioned {
                        decommissioned_for: minutes((r1 - r0) as u64),
                    },
                ));
            }
        }
        history
    }
}

#[derive(Debug, Clone)]
struct Case {
    period: (i64, i64),
    servers: Vec<ServerCase>,
    own: Vec<(i64, i64)>,
    maintenance: Vec<(i64, i64, Option<i64>)>,
}

fn server_case() -> impl Strategy<Value = ServerCase> {
    (
        0i64..400,
        prop::collection::vec((1i64..40, 1i64..80), 0..6),
        prop::option::weighted(0.4, (0i64..500, prop::option::of(1i64..200))),
        any::<u8>(),
    )
        .prop_map(|(first_seen, gaps, retired, missing)| {
            let retired = retired.map(|(offset, length)| {
                let r0 = first_seen + offset;
                (r0, length.map(|l| r0 + l))
            });
            // Alternate gaps and outage lengths from first seen on; what
            // reaches the retirement ends there; none begins while retired.
            let mut t = first_seen;
            let mut outages = Vec::new();
            for (gap, length) in gaps {
                t += gap;
                let (s, e) = (t, t + length);
                t = e;
                match retired {
                    Some((r0, _)) if e < r0 => outages.push((s, e, true)),
                    Some((r0, _)) if s < r0 => outages.push((s, r0, false)),
                    Some((_, Some(r1))) if s > r1 => outages.push((s, e, true)),
                    Some(_) => {}
                    None => outages.push((s, e, true)),
                }
            }
            ServerCase {
                first_seen,
                retired,
                outages,
                missing,
            }
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0i64..300, 1i64..500),
        prop::collection::vec(server_case(), 1..4),
        prop::collection::vec((0i64..700, 1i64..60), 0..3),
        prop::collection::vec((0i64..700, 1i64..90, prop::option::of(0i64..60)), 0..3),
    )
        .prop_map(|((start, length), servers, own, maintenance)| Case {
            period: (start, start + length),
            servers,
            own: own.into_iter().map(|(s, l)| (s, s + l)).collect(),
            maintenance: maintenance
                .into_iter()
                .map(|(s, l, every)| (s, l, every.map(|extra| l + 1 + extra)))
                .collect(),
        })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    unmonitored: i64,
    own: i64,
    maintenance: i64,
    observed: i64,
    down: i64,
    outages: u32,
    outage_time: i64,
    ongoing: bool,
    mttr: Option<i64>,
}

/// The figures of a subject monitored and down at the minutes `monitored`
/// and `down` say, minute by minute.
fn brute(
    case: &Case,
    monitored: &dyn Fn(i64) -> bool,
    down: &dyn Fn(i64) -> bool,
    windows: &[MaintenanceWindow],
) -> Expected {
    let (p0, p1) = case.period;
    let is_own = |m: i64| case.own.iter().any(|&(s, e)| s <= m && m < e);
    let is_maintenance = |m: i64| windows.iter().any(|w| w.occurrence_at(minute(m)).is_some());
    let excluded = |m: i64| is_own(m) || is_maintenance(m);
    let mut e = Expected::default();
    for m in p0..p1 {
        if !monitored(m) {
            e.unmonitored += 1;
        } else if is_own(m) {
            e.own += 1;
        } else if is_maintenance(m) {
            e.maintenance += 1;
        } else {
            e.observed += 1;
            if down(m) {
                e.down += 1;
            }
        }
    }
    // Runs of down minutes overlapping the period.
    let (mut repaired, mut repaired_n) = (0i64, 0i64);
    let mut m = 0;
    while m < p1 {
        if !down(m) {
            m += 1;
            continue;
        }
        let start = m;
        while down(m) {
            m += 1;
        }
        let end = m; // the run is [start, end)
        if end <= p0 {
            continue;
        }
        let observed = (start.max(p0)..end.min(p1))
            .filter(|&x| !excluded(x))
            .count();
        if observed == 0 {
            continue;
        }
        e.outages += 1;
        e.outage_time += end.min(p1) - start.max(p0);
        if end > p1 {
            e.ongoing = true;
        } else if monitored(end) {
            // Ended by a recovery, not by a retirement.
            repaired += (start..end).filter(|&x| !excluded(x)).count() as i64;
            repaired_n += 1;
        }
    }
    e.mttr = (repaired_n > 0).then(|| repaired * MINUTE / repaired_n);
    e
}

fn figures(u: &Uptime) -> Expected {
    let m = |d: Duration| i64::try_from(d.as_millis()).expect("small") / MINUTE;
    Expected {
        unmonitored: m(u.unmonitored),
        own: m(u.excluded_own_downtime),
        maintenance: m(u.excluded_maintenance),
        observed: m(u.observed),
        down: m(u.down),
        outages: u.outages,
        outage_time: m(u.outage_time),
        ongoing: u.ongoing,
        mttr: u.mttr.map(|d| i64::try_from(d.as_millis()).expect("small")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Failures are reported with their case; none saved to files.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn figures_match_minute_by_minute_counting(case in case(), newest_first in any::<bool>()) {
        let ids = ["rs-0", "rs-1", "rs-2", "rs-3"];
        let mut history: Vec<HistoryEvent> = case
            .servers
            .iter()
            .zip(ids)
            .flat_map(|(server, id)| server.history(id))
            .collect();
        history.sort_by_key(|e| e.at);
        if newest_first {
            history.reverse();
        }
        let servers: Vec<(&str, Timestamp)> = case
            .servers
            .iter()
            .zip(ids)
            .map(|(server, id)| (id, minute(server.first_seen)))
            .collect();
        let installation = installation(SLC, "", &servers, history);
        let windows: Vec<MaintenanceWindow> = case
            .maintenance
            .iter()
            .map(|&(s, l, every)| {
                window("acme", None, minute(s), minutes(l as u64), every.map(|e| minutes(e as u64)))
            })
            .collect();
        let own_windows: Vec<DowntimeWindow> =
            case.own.iter().map(|&(s, e)| own(minute(s), minute(e))).collect();
        let period = Period::new(minute(case.period.0), minute(case.period.1)).expect("period");
        let report = UptimeReport::build(&acme(), period, &[installation], &own_windows, &windows);
        let computed = &report.installations[0];

        for (i, server) in case.servers.iter().enumerate() {
            let expected = brute(&case, &|m| server.monitored(m), &|m| server.down(m), &windows);
            prop_assert_eq!(figures(&computed.servers[i].uptime), expected, "server {}", i);
            assert_partition(&computed.servers[i].uptime);
        }
        let monitored = |m: i64| case.servers.iter().any(|s| s.monitored(m));
        let offline = |m: i64| {
            monitored(m) && case.servers.iter().filter(|s| s.monitored(m)).all(|s| s.down(m))
        };
        let expected = brute(&case, &monitored, &offline, &windows);
        prop_assert_eq!(figures(&computed.uptime), expected, "installation");
        assert_partition(&computed.uptime);
    }
}

// ---------------------------------------------------------------------
// Size: 10,000 installations × 3 servers × 30 days.
// ---------------------------------------------------------------------

/// 10,000 installations of 3 servers, over a 30-day month, each server down
/// once a day for 10 minutes (each at its own time), with a
/// condition opened and resolved per day, own downtime every other day and
/// a daily maintenance window per installation plus one for all: about
/// 2.1 million history entries. Ignored by default (it takes a few hundred
/// MB); run with `cargo test -p carewatch-core --lib report -- --ignored`.
#[test]
#[ignore = "large: run explicitly to time the report"]
fn a_month_for_ten_thousand_installations_is_quick() {
    let period = Period::parse_month("2026-11").expect("month");
    let start = period.start();
    let day_ms = 86_400_000i64;
    let t = |day: i64, minute: i64| {
        Timestamp::from_millis(start.as_millis() + day * day_ms + minute * MINUTE)
    };
    let servers = [rs("rs-1"), rs("rs-2"), rs("rs-3")];
    let mut installations = Vec::with_capacity(10_000);
    let mut maintenance = vec![window(
        "acme",
        None,
        t(-40, 120),
        minutes(30),
        Some(Duration::from_secs(7 * 86_400)),
    )];
    for n in 0..10_000i64 {
        let slc_text = format!("M01-C01-{:03}-{:02}", n / 100, n % 100);
        let mut history = Vec::with_capacity(30 * 8);
        for day in 0..30 {
            for (k, server) in servers.iter().enumerate() {
                let s = 60 * (k as i64 + 1) + n % 50;
                history.push(HistoryEvent {
                    at: t(day, s),
                    server: server.clone(),
                    kind: HistoryKind::BecameUnavailable { missed: 3 },
                });
                history.push(HistoryEvent {
                    at: t(day, s + 10),
                    server: server.clone(),
                    kind: HistoryKind::Recovered {
                        unavailable_for: minutes(10),
                        missed: 3,
                    },
                });
            }
            history.push(HistoryEvent {
                at: t(day, 600),
                server: servers[0].clone(),
                kind: HistoryKind::ConditionOpened {
                    code: ConditionCode::StorageFull,
                    subject: "D:".into(),
                },
            });
            history.push(HistoryEvent {
                at: t(day, 660),
                server: servers[0].clone(),
                kind: HistoryKind::ConditionResolved {
                    code: ConditionCode::StorageFull,
                    subject: "D:".into(),
                    open_for: minutes(60),
                },
            });
        }
        maintenance.push(window(
            "acme",
            Some(&slc_text),
            t(-3, 1200 + n % 60),
            minutes(45),
            Some(Duration::from_secs(86_400)),
        ));
        installations.push(InstallationHistory {
            slc: slc(&slc_text),
            labels: Labels::default(),
            servers: servers
                .iter()
                .map(|s| MonitoredServer {
                    server: s.clone(),
                    first_seen_at: t(-100, 0),
                })
                .collect(),
            history,
        });
    }
    let own_downtime: Vec<DowntimeWindow> =
        (0..15).map(|d| own(t(2 * d, 30), t(2 * d, 35))).collect();
    let began = Instant::now();
    let report = UptimeReport::build(&acme(), period, &installations, &own_downtime, &maintenance);
    let built = began.elapsed();
    let csv = report.to_csv();
    let json = report.to_json();
    let total = began.elapsed();
    eprintln!(
        "10,000 installations: report built in {built:?}, with CSV ({} KB) and JSON ({} KB) in {total:?}",
        csv.len() / 1024,
        json.len() / 1024
    );
    assert_eq!(report.installations.len(), 10_000);
    assert_eq!(csv.lines().count(), 1 + 40_000);
    let u = report.installations[0].servers[0].uptime;
    assert_eq!(u.outages, 30);
}
