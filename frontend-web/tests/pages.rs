//! The pages: overview (filters, totals, search, paging), installation
//! detail, tenants, roles, the team and token pages, bad input.

mod common;

use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::team::Role;
use common::Web;
use http::StatusCode;

/// Row ids of the overview table, in order.
fn rows(body: &str) -> Vec<String> {
    body.match_indices("id=\"row-")
        .map(|(at, _)| {
            let rest = &body[at + "id=\"row-".len()..];
            rest[..rest.find('"').expect("closing quote")].to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_lists_only_what_needs_attention_worst_first_with_totals() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let healthy = web.site("acme", "M01-C01-0001").await;
    let full = web.site("acme", "M01-C01-0002").await;
    let camera = web.site("acme", "M01-C01-0003").await;
    web.site("acme", "M01-C01-0004").await; // pending: never reported
    web.fixture
        .report(&healthy, "rs-1", 1, &[])
        .await
        .expect("accepted");
    web.fixture
        .report(
            &full,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "100% used")],
        )
        .await
        .expect("accepted");
    web.fixture
        .report(
            &camera,
            "rs-1",
            1,
            &[(ConditionCode::CameraUnreachable, "Camera 7", "")],
        )
        .await
        .expect("accepted");

    let page = web.get_as(&browser, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        rows(&page.body),
        ["M01-C01-0002", "M01-C01-0003", "M01-C01-0004"],
        "not the healthy one; critical, attention, pending"
    );
    assert!(page.body.contains("STORAGE_FULL"));
    assert!(page.body.contains(">Critical<"), "health in words");
    assert!(page.body.contains("data-health=\"critical\""));
    assert!(
        page.body.contains("href=\"/?health=critical\""),
        "totals filter"
    );
    assert!(
        page.body.contains("<th scope=\"col\">Customer</th>"),
        "a slot for the label"
    );
    assert!(
        page.body.contains("data-events=\"/events?after="),
        "live from the feed"
    );
    assert!(
        page.body.contains("refresh"),
        "a refresh link without JavaScript"
    );

    let all = web.get_as(&browser, "/?all=true").await;
    assert_eq!(rows(&all.body).len(), 4, "show all");
    let critical = web.get_as(&browser, "/?health=critical").await;
    assert_eq!(rows(&critical.body), ["M01-C01-0002"]);
    let healthy_only = web.get_as(&browser, "/?health=healthy").await;
    assert_eq!(rows(&healthy_only.body), ["M01-C01-0001"]);
    let search = web.get_as(&browser, "/?all=true&q=c01-0003").await;
    assert_eq!(
        rows(&search.body),
        ["M01-C01-0003"],
        "search by SLC, any case"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_pages_forward_and_back_with_page_tokens() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    for i in 0..7 {
        web.site("acme", &format!("M01-C01-{i:04}")).await;
    }
    let first = web.get_as(&browser, "/?limit=3").await;
    assert_eq!(
        rows(&first.body),
        ["M01-C01-0000", "M01-C01-0001", "M01-C01-0002"]
    );
    let next = |body: &str| {
        let at =
            body.find("rel=\"next\" href=\"").expect("a next link") + "rel=\"next\" href=\"".len();
        body[at..][..body[at..].find('"').expect("quote")].replace("&amp;", "&")
    };
    let previous = |body: &str| {
        let at = body.find("rel=\"prev\" href=\"").expect("a previous link")
            + "rel=\"prev\" href=\"".len();
        body[at..][..body[at..].find('"').expect("quote")].replace("&amp;", "&")
    };
    let second = web.get_as(&browser, &next(&first.body)).await;
    assert_eq!(
        rows(&second.body),
        ["M01-C01-0003", "M01-C01-0004", "M01-C01-0005"]
    );
    let third = web.get_as(&browser, &next(&second.body)).await;
    assert_eq!(rows(&third.body), ["M01-C01-0006"]);
    assert!(!third.body.contains("rel=\"next\""), "the last page");
    let back = web.get_as(&browser, &previous(&third.body)).await;
    assert_eq!(rows(&back.body), rows(&second.body));
    let back = web.get_as(&browser, &previous(&back.body)).await;
    assert_eq!(rows(&back.body), rows(&first.body));
    assert!(back.body.contains("rel=\"next\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installation_page_shows_servers_conditions_history_and_contract() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let site = web.site("acme", "M01-C01-0001").await;
    web.fixture
        .report(
            &site,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:\\Recordings", "100% used")],
        )
        .await
        .expect("accepted");
    web.fixture
        .heartbeat(&site, "rs-2", 1)
        .await
        .expect("accepted");
    web.fixture.advance(Duration::from_secs(600));
    web.fixture.carewatch.sweep().await.expect("sweeps");
    web.fixture
        .report(&site, "rs-1", 2, &[])
        .await
        .expect("accepted");

    let page = web.get_as(&browser, "/installations/m01-c01-0001").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for expected in [
        "rs-1",
        "rs-2",
        "unavailable since",
        "Missed heartbeats",
        "SERVER_UNAVAILABLE",
        "opened <code>STORAGE_FULL</code> on D:\\Recordings",
        "resolved <code>STORAGE_FULL</code>",
        "became unavailable",
        "recovered",
        "active until",
        "accepted",
        "1 min",
    ] {
        assert!(body.contains(expected), "{expected:?} missing from {body}");
    }
    assert!(body.contains("data-events=\"/events?slc=M01-C01-0001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_resellers_installation_is_the_same_404_as_a_missing_one() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    web.site("acme", "M01-C01-0001").await;
    web.site("rival", "M02-C01-0001").await;
    let theirs = web.get_as(&browser, "/installations/M02-C01-0001").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    // The same SLC deleted from their view: compare with an SLC nobody has,
    // written the same length, and with the very same address on a
    // database where it does not exist.
    let other = Web::new().await;
    let other_browser = other.browser("acme", "jane", Role::Viewer).await;
    let missing = other
        .get_as(&other_browser, "/installations/M02-C01-0001")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Each browser's own CSRF token is in the sign-out form; apart from it
    // the pages are byte for byte the same.
    let normalised = |body: &str, csrf: &str| body.replace(csrf, "CSRF");
    assert_eq!(
        normalised(&theirs.body, &browser.csrf),
        normalised(&missing.body, &other_browser.csrf)
    );
    // And on one database, for one browser: theirs and nobody's differ only
    // in the SLC they name.
    let nobodys = web.get_as(&browser, "/installations/M09-C01-0001").await;
    assert_eq!(nobodys.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.body.replace("M02", "M09"), nobodys.body);
    let api_theirs = web
        .api(
            "/api/v1/installations/M02-C01-0001",
            Some(&web.reseller_token("acme").await),
        )
        .await;
    assert_eq!(api_theirs.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_admin_pages_are_forbidden() {
    let web = Web::new().await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    for path in ["/team", "/tokens"] {
        let page = web.get_as(&viewer, path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("only an admin"), "{}", page.body);
        assert_eq!(
            web.get_as(&admin, path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let invite = web
        .post_as(
            &viewer,
            "/team/invite",
            &[("login", "x@y.z"), ("name", "X"), ("role", "admin")],
        )
        .await;
    assert_eq!(invite.status, StatusCode::FORBIDDEN);
    let token = web.post_as(&viewer, "/tokens", &[("name", "mine")]).await;
    assert_eq!(token.status, StatusCode::FORBIDDEN);
    let overview = web.get_as(&viewer, "/").await;
    assert!(
        !overview.body.contains("href=\"/team\""),
        "no admin links for a viewer"
    );
    assert!(
        web.get_as(&admin, "/")
            .await
            .body
            .contains("href=\"/team\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_remove_users_whose_sessions_end_at_once() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    let team = web.get_as(&admin, "/team").await;
    assert!(team.body.contains("viewer") && team.body.contains("admin"));
    let removed = web
        .post_as(&admin, "/team/remove", &[("login", "viewer")])
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert!(removed.body.contains("Removed viewer"));
    assert!(web.get_as(&viewer, "/").await.is_login_redirect());
    let again = web
        .post_as(&admin, "/team/remove", &[("login", "viewer")])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bad = web
        .post_as(
            &admin,
            "/team/invite",
            &[
                ("login", "no spaces allowed"),
                ("name", "X"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Invalid login"), "{}", bad.body);
    let taken = web
        .post_as(
            &admin,
            "/team/invite",
            &[("login", "admin"), ("name", "Again"), ("role", "viewer")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_400_and_changes_nothing() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let long = "A".repeat(65);
    for path in [
        format!("/?q={long}"),
        "/?q=%00".to_owned(),
        "/?after=not-a-token".to_owned(),
        "/?after=9.M01".to_owned(),
        "/?health=purple".to_owned(),
        "/?all=maybe".to_owned(),
        "/?limit=0".to_owned(),
        "/?limit=100000".to_owned(),
        "/?prev=zzz".to_owned(),
        "/installations/not%20an%20slc".to_owned(),
        "/installations/x".to_owned(),
        "/events?after=minus-one".to_owned(),
    ] {
        let page = web.get_as(&browser, &path).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("<h1>Bad request</h1>"), "{path}");
        assert!(
            page.body.contains("Invalid "),
            "{path}: says what: {}",
            page.body
        );
    }
    let not_form = web
        .send(
            http::Request::post("/tokens")
                .header(http::header::COOKIE, browser.cookie())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from("{}"))
                .expect("request"),
        )
        .await;
    assert!(not_form.status.is_client_error(), "{not_form:?}");
    let huge = "x".repeat(64 * 1024);
    let too_big = web.post_as(&browser, "/logout", &[("filler", &huge)]).await;
    assert!(too_big.status.is_client_error(), "{too_big:?}");
    assert_eq!(
        web.get_as(&browser, "/").await.status,
        StatusCode::OK,
        "still signed in"
    );
}

/// The API token a page shows once, just made.
fn shown_token(body: &str) -> &str {
    let at = body.find("value=\"cwa.").expect("the token is shown") + "value=\"".len();
    &body[at..][..body[at..].find('"').expect("quote")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_tokens_shown_once_and_revoke_them() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let created = web
        .post_as(&admin, "/tokens", &[("name", "PSA sync")])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let token = shown_token(&created.body);
    let listed = web.get_as(&admin, "/tokens").await;
    assert!(listed.body.contains("PSA sync"));
    assert!(!listed.body.contains(token), "shown only once");
    assert_eq!(
        web.api("/api/v1/totals", Some(token)).await.status,
        StatusCode::OK
    );
    let id = token.split('.').nth(1).expect("an id");
    let revoked = web.post_as(&admin, "/tokens/revoke", &[("id", id)]).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body.contains("revoked"));
    assert_eq!(
        web.api("/api/v1/totals", Some(token)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_to_expire_says_when_then_opens_nothing_and_bad_lifetimes_are_refused() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let form = web.get_as(&admin, "/tokens").await;
    assert!(
        form.body.contains("name=\"expires\"") && form.body.contains("In 90 days"),
        "the form offers a lifetime: {}",
        form.body
    );
    for (expires, says) in [
        ("soon", "a number of days"),
        ("0", "1 day to 2 years"),
        ("1000", "1 day to 2 years"),
    ] {
        let refused = web
            .post_as(&admin, "/tokens", &[("name", "bad"), ("expires", expires)])
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{expires}: {}",
            refused.body
        );
        assert!(refused.body.contains(says), "{expires}: {}", refused.body);
        assert!(
            !refused.body.contains("value=\"cwa."),
            "{expires}: nothing made"
        );
    }
    let expected = web
        .fixture
        .carewatch
        .now()
        .saturating_add(Duration::from_secs(30 * 86_400))
        .to_string();
    let created = web
        .post_as(&admin, "/tokens", &[("name", "trial"), ("expires", "30")])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let lasting = web
        .post_as(&admin, "/tokens", &[("name", "PSA"), ("expires", "never")])
        .await;
    assert_eq!(lasting.status, StatusCode::OK, "{}", lasting.body);
    let listed = web.get_as(&admin, "/tokens").await;
    let row = |name: &str| {
        let at = listed.body.find(&format!(">{name}<")).expect("listed");
        listed.body[at..][..listed.body[at..].find("</tr>").expect("row end")].to_owned()
    };
    assert!(
        !listed.body.contains(">bad<"),
        "refused lifetimes made nothing"
    );
    let trial = row("trial");
    let expires = &trial[trial
        .find("data-label=\"Expires\"")
        .expect("an expiry cell")..];
    let at = expires.find("datetime=\"").expect("a time") + "datetime=\"".len();
    let at = &expires[at..][..expires[at..].find('"').expect("quote")];
    assert_eq!(
        at, expected,
        "the trial token expires 30 days after it was made"
    );
    let token = shown_token(&created.body);
    assert_eq!(
        web.api("/api/v1/totals", Some(token)).await.status,
        StatusCode::OK
    );
    web.fixture.advance(Duration::from_secs(30 * 86_400));
    // A month on, the session has ended too: signed in again.
    let admin = web.browser("acme", "admin2", Role::Admin).await;
    let later = web.get_as(&admin, "/tokens").await;
    let at = later.body.find(">trial<").expect("still listed");
    let expired_row = &later.body[at..][..later.body[at..].find("</tr>").expect("row end")];
    assert!(
        expired_row.contains(">expired<"),
        "shown as expired: {expired_row}"
    );
    assert!(
        !expired_row.contains(">Revoke<"),
        "nothing left to revoke: {expired_row}"
    );
    assert_eq!(
        web.api("/api/v1/totals", Some(token)).await.status,
        StatusCode::UNAUTHORIZED,
        "an expired token opens nothing"
    );
    assert!(row("PSA").contains(">never<"), "{}", row("PSA"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_read_their_teams_audit_log_and_nobody_elses() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    let other = web.browser("other", "boss", Role::Admin).await;
    let created = web
        .post_as(&admin, "/tokens", &[("name", "PSA sync")])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let theirs = web
        .post_as(&other, "/tokens", &[("name", "Their <b>secret</b> tool")])
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);

    let log = web.get_as(&admin, "/audit").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    assert!(log.body.contains("API token created"), "{}", log.body);
    assert!(log.body.contains("PSA sync"));
    assert!(log.body.contains("admin (acme)"), "who: {}", log.body);
    assert!(!log.body.contains("Their"), "another reseller's team");
    assert!(!log.body.contains("value=\"cwa."), "no secret");
    let theirs = web.get_as(&other, "/audit").await;
    assert!(
        theirs.body.contains("Their &lt;b&gt;secret&lt;/b&gt; tool"),
        "escaped: {}",
        theirs.body
    );
    assert!(!theirs.body.contains("PSA sync"));

    assert_eq!(
        web.get_as(&viewer, "/audit").await.status,
        StatusCode::FORBIDDEN,
        "viewers do not read the audit log"
    );
    assert_eq!(
        web.get_as(&admin, "/audit?before=nope").await.status,
        StatusCode::BAD_REQUEST
    );
    let older = web.get_as(&admin, "/audit?before=1").await;
    assert_eq!(older.status, StatusCode::OK);
    assert!(older.body.contains("Nothing recorded"), "{}", older.body);
    assert!(web.get("/audit", None).await.is_login_redirect());
}
