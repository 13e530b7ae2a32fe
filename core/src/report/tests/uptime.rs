//! Uptime arithmetic: the hand-computed scenario, edge cases, own downtime and maintenance.

use super::*;
use crate::catalogue::ConditionCode;

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

/// Found by review: a window made after an outage (or dated back over
/// it) excused it, so a report of a closed month changed afterwards. A
/// window excludes only from its creation on.
#[test]
fn a_window_excludes_nothing_before_it_was_made() {
    let made_late = MaintenanceWindow {
        created_at: at("12:00"),
        ..window("acme", None, at("08:00"), minutes(8 * 60), None)
    };
    let exclusions = Exclusions::new(
        day().interval(),
        &slc(SLC),
        &Downtime::default(),
        std::slice::from_ref(&made_late),
    );
    assert_eq!(
        exclusions.maintenance(),
        [Interval::new(at("12:00"), at("16:00"))],
        "08:00–12:00 was past when it was made"
    );
    let u = server_uptime(
        outage("rs-a", at("09:00"), Some(at("11:00"))),
        long_ago(),
        &[],
        &[made_late],
    );
    assert_partition(&u);
    assert_eq!(u.down, minutes(120), "the outage before it counts whole");
    assert_eq!(u.excluded_maintenance, minutes(240));
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
