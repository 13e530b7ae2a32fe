//! Uptime reports on the page and in the JSON API (issue 18): `/reports`
//! lists a month's availability per installation for admins and viewers,
//! worst first, with CSV and JSON downloads (attachments); the installation
//! page shows its last 30 days; `/api/v1/reports/{month}` is the report's
//! JSON. Another reseller's installations never appear.

mod common;

use std::time::Duration;

use carewatch_core::report::CSV_HEADER;
use carewatch_core::team::Role;
use common::Web;
use http::{StatusCode, header};

const OURS: &str = "M01-C01-600-01";
const ALSO_OURS: &str = "M01-C01-600-02";
const THEIRS: &str = "M01-C01-600-03";

/// Three installations at 2026-01-01T00:00Z: ours has a server silent
/// after its first beat (unavailable from 180 s), the other of ours
/// beats every minute, beta's beats once. Ten minutes pass.
async fn scene() -> Web {
    let web = Web::new().await;
    let ours = web.site("alpha", OURS).await;
    let also = web.site("alpha", ALSO_OURS).await;
    let theirs = web.site("beta", THEIRS).await;
    web.fixture.heartbeat(&ours, "rs-1", 1).await.expect("beat");
    web.fixture
        .heartbeat(&theirs, "rs-1", 1)
        .await
        .expect("beat");
    for minute in 0..=10u64 {
        web.fixture
            .heartbeat(&also, "rs-1", minute + 1)
            .await
            .expect("beat");
        if minute < 10 {
            web.fixture.advance(Duration::from_secs(60));
        }
    }
    web.fixture.carewatch.sweep().await.expect("sweep");
    web
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_page_lists_the_month_worst_first_for_viewers_too() {
    let web = scene().await;
    let viewer = web
        .browser("alpha", "viewer@alpha.example", Role::Viewer)
        .await;
    let page = web.get_as(&viewer, "/reports").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("href=\"/reports\" aria-current=\"page\""),
        "the navigation's Reports entry: {}",
        page.body
    );
    assert!(page.body.contains("value=\"2026-01\""), "the current month");
    assert!(page.body.contains("(so far)"));
    // 180 s up of 600: 30%; the other 100%; worst first.
    let ours = page.body.find(OURS).expect("ours listed");
    let also = page.body.find(ALSO_OURS).expect("the other listed");
    assert!(ours < also, "worst first");
    assert!(page.body.contains("30.00%") && page.body.contains("100.00%"));
    assert!(page.body.contains("(one still going on)"));
    assert!(!page.body.contains(THEIRS), "never another reseller's");
    assert!(page.body.contains("href=\"/reports/2026-01.csv\""));
    assert!(page.body.contains("href=\"/reports/2026-01.json\""));

    // The same for an earlier month (nothing monitored then) and a bad one.
    let december = web.get_as(&viewer, "/reports?month=2025-12").await;
    assert_eq!(december.status, StatusCode::OK);
    assert!(december.body.contains("n/a (not monitored)"));
    let bad = web.get_as(&viewer, "/reports?month=2026-13").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("no month 13"), "{}", bad.body);
    let future = web.get_as(&viewer, "/reports?month=2026-02").await;
    assert_eq!(future.status, StatusCode::BAD_REQUEST);
    assert!(future.body.contains("has not begun"), "{}", future.body);

    // Signed out: the login page.
    assert!(web.get("/reports", None).await.is_login_redirect());
    assert!(
        web.get("/reports/2026-01.csv", None)
            .await
            .is_login_redirect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_downloads_are_attachments_with_every_installation() {
    let web = scene().await;
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    let csv = web.get_as(&admin, "/reports/2026-01.csv").await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"carewatch-uptime-alpha-2026-01.csv\""
    );
    assert_eq!(csv.headers[header::CACHE_CONTROL], "no-store");
    // A spreadsheet program reads it as UTF-8 only with the mark.
    let body = csv.body.strip_prefix('\u{feff}').unwrap_or_else(|| {
        panic!(
            "no byte-order mark: {:?}",
            csv.body.chars().take(20).collect::<String>()
        )
    });
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert!(
        lines[1].starts_with(&format!("installation,{OURS},")),
        "{}",
        csv.body
    );
    assert!(
        lines[1].contains(",30.000,600,420,1,420,,true,"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with(&format!("server,{OURS},,,rs-1,")));
    assert!(lines[3].starts_with(&format!("installation,{ALSO_OURS},")));
    assert!(!csv.body.contains(THEIRS));

    let json = web.get_as(&admin, "/reports/2026-01.json").await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        json.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"carewatch-uptime-alpha-2026-01.json\""
    );
    let value = json.json();
    assert_eq!(value["version"], 1);
    assert_eq!(value["installations"].as_array().map(Vec::len), Some(2));

    for missing in ["/reports/2026-01.xlsx", "/reports/2026-01"] {
        let page = web.get_as(&admin, missing).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{missing}");
    }
    let bad = web.get_as(&admin, "/reports/26-1.csv").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installation_page_shows_its_last_30_days() {
    let web = scene().await;
    let viewer = web
        .browser("alpha", "viewer@alpha.example", Role::Viewer)
        .await;
    let page = web.get_as(&viewer, &format!("/installations/{OURS}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Availability, last 30 days"));
    assert!(page.body.contains("30.00%"), "{}", page.body);
    assert!(page.body.contains("Recording server rs-1"));
    assert!(page.body.contains("href=\"/reports?month=2026-01\""));
    // Another reseller's installation: the same 404 as a missing one.
    let theirs = web
        .get_as(&viewer, &format!("/installations/{THEIRS}"))
        .await;
    let missing = web.get_as(&viewer, "/installations/M01-C01-600-99").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.body.replace("600-03", "600-99"), missing.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gives_the_months_report_as_json() {
    let web = scene().await;
    let token = web.reseller_token("alpha").await;
    let page = web.api("/api/v1/reports/2026-01", Some(&token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let report = page.json();
    assert_eq!(report["version"], 1);
    assert_eq!(report["reseller"], "alpha");
    assert_eq!(report["period"]["start"], "2026-01-01T00:00:00.000Z");
    assert_eq!(report["period"]["end"], "2026-01-01T00:10:00.000Z");
    let first = &report["installations"][0];
    assert_eq!(first["slc"], OURS);
    assert_eq!(first["uptime"]["availability_percent"], 30.0);
    assert_eq!(first["uptime"]["down_s"], 420.0);
    assert_eq!(first["uptime"]["mttr_s"], serde_json::Value::Null);
    assert_eq!(first["servers"][0]["server"], "rs-1");
    assert!(!page.body.contains(THEIRS));

    let bad = web.api("/api/v1/reports/2026-13", Some(&token)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.json()["error"]["code"], "invalid_input");
    let none = web.api("/api/v1/reports/2026-01", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}
