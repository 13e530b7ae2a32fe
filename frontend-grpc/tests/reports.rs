//! Dashboard.GetUptimeReport over a real loopback connection, on SQLite:
//! a month's report (typed, CSV and JSON) up to now, the last N days, one
//! installation, and the refusals: a bad month, no period, another
//! reseller's installation (NOT_FOUND like a missing one).

mod common;

use std::time::Duration;

use carewatch_core::report::CSV_HEADER;
use carewatch_core::testing::Fixture;
use carewatch_grpc::proto::get_uptime_report_request::Period;
use carewatch_grpc::proto::{self};
use common::{SqliteFile, dashboard as client, serve};
use tonic::Code;

fn month(text: &str) -> proto::GetUptimeReportRequest {
    proto::GetUptimeReportRequest {
        period: Some(Period::Month(text.into())),
        slc: String::new(),
    }
}

fn secs(d: Option<prost_types::Duration>) -> Option<i64> {
    d.map(|d| d.seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_is_reported_typed_and_as_csv_and_json_up_to_now() {
    let db = SqliteFile::new();
    let fixture = Fixture::open(&db).await;
    let site = fixture.site("acme", "M01-C01-0001").await;
    let theirs = fixture.site("rival", "M01-C01-0002").await;
    fixture.heartbeat(&site, "rs-1", 1).await.expect("beat");
    fixture.heartbeat(&theirs, "rs-1", 1).await.expect("beat");
    // rs-1 falls silent: unavailable from 180 s, still out at 600 s.
    fixture.advance(Duration::from_secs(600));
    fixture.carewatch.sweep().await.expect("sweep");
    let url = serve(&fixture).await;
    let mut acme = client(&fixture, &url, "acme").await;

    let report = acme
        .get_uptime_report(month("2026-01"))
        .await
        .expect("the month's report")
        .into_inner();
    let start = report.period_start.expect("start");
    let end = report.period_end.expect("end");
    assert_eq!(
        end.seconds - start.seconds,
        600,
        "January so far: up to now"
    );
    let [installation] = report.installations.as_slice() else {
        panic!("only acme's installation: {report:#?}");
    };
    assert_eq!(installation.slc, "M01-C01-0001");
    let [server] = installation.servers.as_slice() else {
        panic!("one server: {installation:#?}");
    };
    assert_eq!(server.recording_server_id, "rs-1");
    for uptime in [installation.uptime, server.uptime] {
        let u = uptime.expect("figures");
        assert_eq!(u.availability_percent, Some(30.0), "180 of 600 s up");
        assert_eq!(secs(u.observed), Some(600));
        assert_eq!(secs(u.down), Some(420));
        assert_eq!((u.outages, u.ongoing), (1, true));
        assert_eq!(u.mttr, None, "no outage ended");
        assert_eq!(secs(u.excluded_own_downtime), Some(0));
        assert_eq!(secs(u.unmonitored), Some(0));
    }
    let mut lines = report.csv.split("\r\n");
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let line = lines.next().expect("the installation's line");
    assert!(
        line.starts_with("installation,M01-C01-0001,,,,2026-01-01T00:00:00.000Z,2026-01-01T00:10:00.000Z,30.000,600,420,1,420,,true,"),
        "{line}"
    );
    assert!(!report.csv.contains("M01-C01-0002"), "{}", report.csv);
    assert!(
        report.json.starts_with('{') && report.json.contains("\"version\":1"),
        "{}",
        report.json
    );
    assert!(report.json.contains("\"availability_percent\":30.0"));
    assert!(!report.json.contains("M01-C01-0002"));

    // The last 30 days, and one installation.
    let last = acme
        .get_uptime_report(proto::GetUptimeReportRequest {
            period: Some(Period::LastDays(30)),
            slc: "M01-C01-0001".into(),
        })
        .await
        .expect("30 days of one installation")
        .into_inner();
    let u = last.installations[0].uptime.expect("figures");
    assert_eq!(
        secs(u.unmonitored),
        Some(30 * 86_400 - 600),
        "before first heard from"
    );
    assert_eq!(u.availability_percent, Some(30.0));
    assert!(last.csv.contains("M01-C01-0001"));

    // Refusals.
    let bad = acme
        .get_uptime_report(month("2026-13"))
        .await
        .expect_err("no month 13");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("01 to 12"), "{}", bad.message());
    let none = acme
        .get_uptime_report(proto::GetUptimeReportRequest::default())
        .await
        .expect_err("no period");
    assert_eq!(none.code(), Code::InvalidArgument, "{none:?}");
    let future = acme
        .get_uptime_report(month("2026-02"))
        .await
        .expect_err("a month not begun");
    assert_eq!(future.code(), Code::InvalidArgument, "{future:?}");
    let ask = |slc: &str| proto::GetUptimeReportRequest {
        period: Some(Period::Month("2026-01".into())),
        slc: slc.into(),
    };
    let other = acme
        .get_uptime_report(ask("M01-C01-0002"))
        .await
        .expect_err("another reseller's installation");
    let missing = acme
        .get_uptime_report(ask("M01-C01-0099"))
        .await
        .expect_err("a missing installation");
    assert_eq!(other.code(), Code::NotFound, "{other:?}");
    assert_eq!(
        other.message().replace("0002", "0099"),
        missing.message(),
        "another reseller's reads exactly like a missing one"
    );
}
