//! Live updates over server-sent events: a change ingested after the page
//! opened arrives as the new overview row; a reconnect with
//! `Last-Event-ID` replays what was missed; a row in maintenance says so.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use carewatch_core::ConditionCode;
use carewatch_core::team::Role;
use common::{Browser, Web};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tonic::transport::server::TcpConnectInfo;
use tower::ServiceExt;

/// An open event stream.
struct Events {
    body: Body,
    seen: String,
    /// Everything received, never drained.
    all: String,
}

impl Events {
    async fn open(web: &Web, browser: &Browser, path: &str, last_event_id: Option<&str>) -> Self {
        let mut request = Request::get(path).header(header::COOKIE, browser.cookie());
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let mut request = request.body(Body::empty()).expect("request");
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1)),
        });
        let response = web.router.clone().oneshot(request).await.expect("responds");
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        Self {
            body: response.into_body(),
            seen: String::new(),
            all: String::new(),
        }
    }

    /// Reads until an event of `kind` has arrived whole; returns its lines.
    async fn next(&mut self, kind: &str) -> Vec<String> {
        let marker = format!("event: {kind}\n");
        loop {
            if let Some(at) = self.seen.find(&marker) {
                // The event's block: from the blank line before it to the next.
                let start = self.seen[..at].rfind("\n\n").map_or(0, |i| i + 2);
                if let Some(end) = self.seen[at..].find("\n\n") {
                    let block = self.seen[start..at + end].to_owned();
                    self.seen.drain(..at + end + 2);
                    return block.lines().map(str::to_owned).collect();
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event within 10 s; saw {:?}", self.seen))
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                let text = String::from_utf8_lossy(&data);
                self.seen.push_str(&text);
                self.all.push_str(&text);
            }
        }
    }
}

fn field<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_change_arrives_as_the_new_overview_row() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let site = web.site("acme", "M01-C01-0001").await;
    let page = web.get_as(&browser, "/").await;
    let at = page.body.find("data-events=\"").expect("events url") + "data-events=\"".len();
    let url = page.body[at..][..page.body[at..].find('"').expect("quote")].replace("&amp;", "&");

    let mut events = Events::open(&web, &browser, &url, None).await;
    web.fixture
        .report(
            &site,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "full")],
        )
        .await
        .expect("accepted");
    let row = events.next("row").await;
    let data: serde_json::Value = serde_json::from_str(field(&row, "data")).expect("JSON");
    assert_eq!(data["slc"], "M01-C01-0001");
    assert_eq!(data["previous"], "pending");
    assert_eq!(data["health"], "critical");
    assert_eq!(data["listed"], true);
    let html = data["html"].as_str().expect("html");
    assert!(
        html.starts_with("<tr id=\"row-M01-C01-0001\" data-health=\"critical\">"),
        "{html}"
    );
    assert!(html.contains("STORAGE_FULL"));
    assert!(
        field(&row, "id").parse::<u64>().is_ok(),
        "every event has its id"
    );

    // A page filtered to Pending hears the row leave it.
    let mut pending = Events::open(&web, &browser, "/events?health=pending", None).await;
    let other = web.site("acme", "M01-C01-0002").await;
    web.fixture
        .heartbeat(&other, "rs-1", 1)
        .await
        .expect("accepted");
    let row = pending.next("row").await;
    let data: serde_json::Value = serde_json::from_str(field(&row, "data")).expect("JSON");
    assert_eq!(data["health"], "healthy");
    assert_eq!(data["listed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_replays_what_was_missed() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let first = web.site("acme", "M01-C01-0001").await;
    let second = web.site("acme", "M01-C01-0002").await;
    let mut events = Events::open(&web, &browser, "/events", None).await;
    web.fixture
        .heartbeat(&first, "rs-1", 1)
        .await
        .expect("accepted");
    let seen = events.next("row").await;
    let last_id = field(&seen, "id").to_owned();
    drop(events); // the connection drops

    // While disconnected: another change, and another reseller's.
    web.fixture
        .report(
            &second,
            "rs-1",
            1,
            &[(ConditionCode::CameraUnreachable, "Camera 2", "")],
        )
        .await
        .expect("accepted");
    let rival = web.site("rival", "M02-C01-0001").await;
    web.fixture
        .heartbeat(&rival, "rs-1", 1)
        .await
        .expect("accepted");

    let mut resumed = Events::open(&web, &browser, "/events?after=0", Some(&last_id)).await;
    let replayed = resumed.next("row").await;
    let data: serde_json::Value = serde_json::from_str(field(&replayed, "data")).expect("JSON");
    assert_eq!(
        data["slc"], "M01-C01-0002",
        "the missed change, not the first again"
    );
    assert_eq!(data["health"], "attention");
    assert!(
        field(&replayed, "id").parse::<u64>().expect("id") > last_id.parse::<u64>().expect("id")
    );
    assert!(
        !resumed.seen.contains("M02-C01-0001"),
        "never another reseller's"
    );

    // The installation page follows one installation.
    let mut one = Events::open(&web, &browser, "/events?slc=M01-C01-0001", None).await;
    web.fixture
        .report(
            &first,
            "rs-1",
            2,
            &[(ConditionCode::LicenseOveruse, "licences", "12 of 10")],
        )
        .await
        .expect("accepted");
    let change = one.next("change").await;
    assert!(field(&change, "data").contains("M01-C01-0001"));

    let theirs = web.get_as(&browser, "/events?slc=M02-C01-0001").await;
    assert_eq!(
        theirs.status,
        StatusCode::NOT_FOUND,
        "not another reseller's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_the_feed_no_longer_keeps_asks_the_page_to_reread() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let site = web.site("acme", "M01-C01-0001").await;
    let mut events = Events::open(&web, &browser, "/events", Some("999999")).await;
    let reset = events.next("reset").await;
    // The reset carries the feed head, so the browser's `Last-Event-ID`
    // moves on from the too-old id.
    let head = field(&reset, "id").to_owned();
    let head_number: u64 = head.parse().expect("a feed position");
    drop(events); // the connection drops before the next event

    // Sent back, it resumes from the head: no second reset, and the next
    // change arrives.
    let mut resumed = Events::open(&web, &browser, "/events", Some(&head)).await;
    web.fixture
        .heartbeat(&site, "rs-1", 1)
        .await
        .expect("accepted");
    let row = resumed.next("row").await;
    assert!(field(&row, "id").parse::<u64>().expect("id") > head_number);
    assert!(
        !resumed.all.contains("event: reset"),
        "no second reset: {}",
        resumed.all
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_row_says_its_installation_is_in_maintenance() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let site = web.site("acme", "M01-C01-0001").await;
    let carewatch = &web.fixture.carewatch;
    let admin = carewatch_core::team::User {
        reseller: site.reseller.clone(),
        login: carewatch_core::team::Login::new("boss").expect("valid"),
        name: "Boss".into(),
        role: Role::Admin,
        created_at: carewatch.now(),
    };
    carewatch
        .create_maintenance(
            &admin,
            Some(&site.slc),
            carewatch.now(),
            Duration::from_secs(3600),
            None,
            "firmware",
        )
        .await
        .expect("sets a window");
    let mut events = Events::open(&web, &browser, "/events", None).await;
    web.fixture
        .report(
            &site,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "full")],
        )
        .await
        .expect("accepted");
    let row = events.next("row").await;
    let data: serde_json::Value = serde_json::from_str(field(&row, "data")).expect("JSON");
    let html = data["html"].as_str().expect("html");
    assert!(html.contains("in maintenance until"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transferred_installation_leaves_the_old_resellers_live_pages() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let site = web.site("acme", "M01-C01-0001").await;
    web.fixture
        .heartbeat(&site, "rs-1", 1)
        .await
        .expect("accepted");
    let page = web.get_as(&browser, "/").await;
    let at = page.body.find("data-events=\"").expect("events url") + "data-events=\"".len();
    let url = page.body[at..][..page.body[at..].find('"').expect("quote")].replace("&amp;", "&");
    let mut overview = Events::open(&web, &browser, &url, None).await;
    let mut one = Events::open(&web, &browser, "/events?slc=M01-C01-0001", None).await;

    web.fixture.reseller("beta").await;
    let beta = carewatch_core::ids::ResellerId::new("beta").expect("id");
    web.fixture
        .carewatch
        .transfer_installation(&site.slc, &beta, false)
        .await
        .expect("transferred");
    for events in [&mut overview, &mut one] {
        let gone = events.next("gone").await;
        let data: serde_json::Value = serde_json::from_str(field(&gone, "data")).expect("JSON");
        assert_eq!(data["slc"], "M01-C01-0001");
    }
    assert_eq!(
        web.get_as(&browser, "/installations/M01-C01-0001")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
