//! The report and its formats: CSV, JSON, which servers count, and its size.

use std::time::Instant;

use super::*;
use crate::catalogue::ConditionCode;

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
