//! Naming installations on the page (issue 18): an admin sets customer,
//! site, notes and tags; they show on the installation page, the overview
//! and the JSON API, and the overview's search finds them. Viewers cannot
//! set them, the form needs its CSRF token, and another reseller's
//! installation is the same 404 as a missing one.

mod common;

use carewatch_core::team::Role;
use common::{Web, encode, post};
use http::StatusCode;

const SLC: &str = "M01-C01-500-01";

fn fields<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("customer", "Müller <GmbH>"),
        ("site", "Hafen Nord"),
        ("tags", "VIP, nord"),
        ("notes", "Key at the gate.\nAsk for Jan."),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_names_an_installation_and_the_overview_finds_it() {
    let web = Web::new().await;
    let site = web.site("alpha", SLC).await;
    web.fixture.heartbeat(&site, "rs-1", 1).await.expect("beat");
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    let path = format!("/installations/{SLC}/labels");
    let page = web.post_as(&admin, &path, &fields()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Labels saved."), "{}", page.body);
    assert!(
        page.body.contains("Müller &lt;GmbH&gt;"),
        "escaped: {}",
        page.body
    );
    assert!(!page.body.contains("Müller <GmbH>"), "never raw HTML");
    assert!(page.body.contains("Hafen Nord") && page.body.contains(">nord<"));

    let overview = web
        .get_as(&admin, &format!("/?all=1&q={}", encode("müller")))
        .await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains(&format!("row-{SLC}")),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("Hafen Nord"));
    let none = web
        .get_as(&admin, &format!("/?all=1&q={}", encode("weber")))
        .await;
    assert!(!none.body.contains(&format!("row-{SLC}")));

    let token = web.reseller_token("alpha").await;
    let api = web
        .api(&format!("/api/v1/installations/{SLC}"), Some(&token))
        .await
        .json();
    let row = &api["installation"];
    assert_eq!(row["customer_label"], "Müller <GmbH> — Hafen Nord");
    assert_eq!(row["labels"]["tags"], serde_json::json!(["nord", "vip"]));
    assert_eq!(row["labels"]["notes"], "Key at the gate.\nAsk for Jan.");

    // A bad tag: refused with the reason, nothing changed.
    let page = web
        .post_as(&admin, &path, &[("customer", "Weber"), ("tags", "a;b")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("tag"), "{}", page.body);
    let page = web.get_as(&admin, &format!("/installations/{SLC}")).await;
    assert!(page.body.contains("Hafen Nord") && !page.body.contains("Weber"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_need_an_admin_of_the_owner_and_the_csrf_token() {
    let web = Web::new().await;
    web.site("alpha", SLC).await;
    web.site("beta", "M01-C01-500-02").await;
    let viewer = web
        .browser("alpha", "viewer@alpha.example", Role::Viewer)
        .await;
    let intruder = web.browser("beta", "admin@beta.example", Role::Admin).await;
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    let path = format!("/installations/{SLC}/labels");

    let page = web.post_as(&viewer, &path, &fields()).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let page = web.get_as(&viewer, &format!("/installations/{SLC}")).await;
    assert!(!page.body.contains("Save labels"), "no form for viewers");

    let theirs = web.post_as(&intruder, &path, &fields()).await;
    let missing = web
        .post_as(&intruder, "/installations/M01-C01-500-99/labels", &fields())
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        theirs.body.replace("500-01", "500-99"),
        missing.body,
        "another reseller's reads exactly like a missing one"
    );

    let mut without = fields();
    without.push(("csrf", "wrong"));
    let page = web.send(post(&path, Some(&admin.cookie()), &without)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);

    let page = web.get_as(&admin, &format!("/installations/{SLC}")).await;
    assert!(page.body.contains("Save labels"), "admins get the form");
    assert!(!page.body.contains("Hafen Nord"), "nothing was set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_decommissions_a_server_and_health_recovers() {
    let web = Web::new().await;
    let site = web.site("alpha", SLC).await;
    web.fixture.heartbeat(&site, "rs-1", 1).await.expect("beat");
    web.fixture.heartbeat(&site, "rs-2", 1).await.expect("beat");
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    let viewer = web
        .browser("alpha", "viewer@alpha.example", Role::Viewer)
        .await;
    let page = web.get_as(&admin, &format!("/installations/{SLC}")).await;
    assert!(page.body.contains("Decommission recording server rs-2"));
    let path = format!("/installations/{SLC}/servers/rs-2/decommission");
    let refused = web.post_as(&viewer, &path, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let page = web.post_as(&admin, &path, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("rs-2 is decommissioned"),
        "{}",
        page.body
    );
    assert!(page.body.contains("decommissioned"));
    assert!(!page.body.contains("Decommission recording server rs-2"));
    let token = web.reseller_token("alpha").await;
    let api = web
        .api(&format!("/api/v1/installations/{SLC}"), Some(&token))
        .await
        .json();
    let servers = api["servers"].as_array().expect("servers");
    let retired = servers
        .iter()
        .find(|s| s["id"] == "rs-2")
        .expect("rs-2 listed");
    assert_eq!(retired["availability"], "decommissioned");
    assert!(retired["decommissioned_at"].is_string());
    assert_eq!(api["installation"]["servers"], 1, "only rs-1 counts");
    let missing = web
        .post_as(
            &admin,
            &format!("/installations/{SLC}/servers/rs-9/decommission"),
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_installation_says_why_instead_of_its_health() {
    let web = Web::new().await;
    let site = web.site("alpha", SLC).await;
    web.fixture.heartbeat(&site, "rs-1", 1).await.expect("beat");
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    let ended = web.fixture.carewatch.now();
    web.fixture
        .carewatch
        .set_subscription(&site.slc, Some(ended))
        .await
        .expect("Care Plus ends now");
    let page = web.get_as(&admin, "/?all=1").await;
    assert!(page.body.contains("Subscription expired"), "{}", page.body);
    let page = web.get_as(&admin, &format!("/installations/{SLC}")).await;
    assert!(page.body.contains("Subscription expired"), "{}", page.body);
    let token = web.reseller_token("alpha").await;
    let api = web
        .api(&format!("/api/v1/installations/{SLC}"), Some(&token))
        .await
        .json();
    assert_eq!(api["installation"]["refused"], "subscription_expired");
    web.fixture
        .carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("withdrawn");
    let page = web.get_as(&admin, "/?all=1").await;
    assert!(page.body.contains("Consent withdrawn"), "{}", page.body);
}

/// The overview sorts by customer or site on the page (links that keep the
/// filters) and in the JSON API (pages continue their own order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_sorts_by_customer_and_site() {
    let web = Web::new().await;
    let admin = web
        .browser("alpha", "admin@alpha.example", Role::Admin)
        .await;
    // (SLC, customer, site): SLC order unlike either name order.
    let named = [
        ("M01-C01-510-01", "Zoo Berlin", "Alpha"),
        ("M01-C01-510-02", "Ärzte am Markt", "Zentrale"),
        ("M01-C01-510-03", "", ""),
        ("M01-C01-510-04", "bäcker", "Mitte"),
    ];
    for (slc, customer, site) in named {
        web.site("alpha", slc).await;
        let page = web
            .post_as(
                &admin,
                &format!("/installations/{slc}/labels"),
                &[("customer", customer), ("site", site)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
    let order_on_page = |body: &str| -> Vec<&'static str> {
        let mut found: Vec<(usize, &'static str)> = named
            .iter()
            .filter_map(|(slc, _, _)| body.find(&format!("row-{slc}")).map(|at| (at, *slc)))
            .collect();
        found.sort();
        found.into_iter().map(|(_, slc)| slc).collect()
    };

    let page = web.get_as(&admin, "/?sort=customer").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        order_on_page(&page.body),
        [
            "M01-C01-510-02",
            "M01-C01-510-04",
            "M01-C01-510-01",
            "M01-C01-510-03"
        ],
        "accents and case ignored, the unlabeled last"
    );
    assert!(
        page.body.contains("aria-current=\"true\">customer"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("href=\"/?sort=site\""),
        "the other orders are links: {}",
        page.body
    );
    let searched = web.get_as(&admin, "/?sort=site&q=a").await;
    assert!(
        searched.body.contains("name=\"sort\" value=\"site\""),
        "a search keeps the order: {}",
        searched.body
    );
    let page = web.get_as(&admin, "/?sort=site").await;
    assert_eq!(
        order_on_page(&page.body),
        [
            "M01-C01-510-01",
            "M01-C01-510-04",
            "M01-C01-510-02",
            "M01-C01-510-03"
        ]
    );
    let bad = web.get_as(&admin, "/?sort=price").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);

    let token = web.reseller_token("alpha").await;
    let mut after = String::new();
    let mut listed = Vec::new();
    loop {
        let body = web
            .api(
                &format!("/api/v1/installations?sort=site&limit=1{after}"),
                Some(&token),
            )
            .await
            .json();
        for row in body["installations"].as_array().expect("rows") {
            listed.push(row["slc"].as_str().expect("slc").to_owned());
        }
        match body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        listed,
        [
            "M01-C01-510-01",
            "M01-C01-510-04",
            "M01-C01-510-02",
            "M01-C01-510-03"
        ]
    );
    let crossed = web
        .api(
            "/api/v1/installations?sort=customer&after=1.M01-C01-510-01",
            Some(&token),
        )
        .await;
    assert_eq!(crossed.status, StatusCode::BAD_REQUEST);
}
