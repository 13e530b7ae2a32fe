//! Security headers on every kind of response, and the router merged with
//! the gRPC routes on one listener.

mod common;

use axum::body::Body;
use carewatch_core::team::Role;
use common::{Web, get, post};
use http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

fn assert_secure(what: &str, headers: &HeaderMap) {
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        carewatch_web::CONTENT_SECURITY_POLICY,
        "{what}"
    );
    let csp = carewatch_web::CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{what}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{what}");
    assert!(headers.contains_key(header::CACHE_CONTROL), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_response_carries_the_security_headers() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    web.site("acme", "M01-C01-0001").await;
    let token = web.reseller_token("acme").await;
    let cookie = browser.cookie();
    let cases = vec![
        ("login page", get("/login", None)),
        ("redirect to login", get("/", None)),
        ("overview", get("/", Some(&cookie))),
        (
            "installation",
            get("/installations/M01-C01-0001", Some(&cookie)),
        ),
        (
            "404 page",
            get("/installations/M09-C01-0001", Some(&cookie)),
        ),
        ("unknown page", get("/nope", Some(&cookie))),
        ("400 page", get("/?health=purple", Some(&cookie))),
        ("403 page", get("/team", Some(&cookie))),
        (
            "csrf refusal",
            post("/logout", Some(&cookie), &[("csrf", "x")]),
        ),
        ("stylesheet", get("/static/site.css", None)),
        ("script", get("/static/live.js", None)),
        ("openapi", get("/api/v1/openapi.json", None)),
        ("api 401", get("/api/v1/totals", None)),
        (
            "method not allowed",
            Request::builder()
                .method(Method::DELETE)
                .uri("/login")
                .body(Body::empty())
                .expect("request"),
        ),
    ];
    for (what, request) in cases {
        let page = web.send(request).await;
        assert_secure(what, &page.headers);
        if !what.starts_with("style") && what != "script" {
            assert_eq!(page.headers[header::CACHE_CONTROL], "no-store", "{what}");
        }
    }
    let api = web.api("/api/v1/totals", Some(&token)).await;
    assert_eq!(api.status, StatusCode::OK);
    assert_secure("api", &api.headers);
    assert_eq!(api.headers[header::CACHE_CONTROL], "no-store");

    // No inline script or style anywhere: scripts and styles are files.
    let page = web.get_as(&browser, "/").await;
    assert!(!page.body.contains("<style"), "no inline style");
    assert!(!page.body.contains(" style="), "no style attributes");
    assert!(
        page.body.matches("<script").count() == page.body.matches("<script src=\"/static/").count(),
        "only external scripts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_transport_security_is_sent_over_tls_only() {
    // `WebOptions::default()` is the TLS server (cookies `Secure`).
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    let pages = [
        ("login page", web.get("/login", None).await),
        ("overview", web.get_as(&browser, "/").await),
        ("redirect to login", web.get("/", None).await),
        ("stylesheet", web.get("/static/site.css", None).await),
        ("api 401", web.api("/api/v1/totals", None).await),
    ];
    for (what, page) in &pages {
        // This host only: `includeSubDomains` or `preload` would pin the
        // operator's other hosts, which are not ours.
        assert_eq!(
            page.headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{what}"
        );
    }

    // Plain HTTP (`--insecure-plaintext` on loopback): never (RFC 6797 §7.2).
    let plaintext = carewatch_web::router(
        web.fixture.carewatch.clone(),
        carewatch_web::WebOptions {
            secure_cookies: false,
        },
    );
    for path in ["/login", "/", "/static/site.css", "/api/v1/totals"] {
        let response = plaintext
            .clone()
            .oneshot(get(path, None))
            .await
            .expect("responds");
        let headers = response.headers();
        assert!(
            !headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{path}: {headers:?}"
        );
        assert!(
            headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}: the other security headers stay"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_revalidate_with_an_etag() {
    let web = Web::new().await;
    let css = web.get("/static/site.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    assert!(css.body.contains("prefers-color-scheme: dark"));
    let etag = css.headers[header::ETAG]
        .to_str()
        .expect("ascii")
        .to_owned();
    let cached = web
        .send(
            Request::get("/static/site.css")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    let js = web.get("/static/live.js", None).await;
    assert!(
        js.body.contains("EventSource") && js.body.contains("Last")
            || js.body.contains("lastEventId")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_merges_with_the_grpc_routes_on_one_router() {
    let web = Web::new().await;
    let grpc = carewatch_grpc::routes::routes(&web.fixture.carewatch)
        .await
        .expect("gRPC routes")
        .into_router();
    let both = grpc.merge(carewatch_web::router(
        web.fixture.carewatch.clone(),
        carewatch_web::WebOptions::default(),
    ));
    // A page is the web's.
    let login = both
        .clone()
        .oneshot(get("/login", None))
        .await
        .expect("responds");
    assert_eq!(login.status(), StatusCode::OK);
    assert!(
        login
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY)
    );
    // A gRPC call is gRPC's (health check over HTTP/1 gets a gRPC answer, not a page).
    let grpc_call = Request::post("/grpc.health.v1.Health/Check")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Body::from(vec![0u8, 0, 0, 0, 0]))
        .expect("request");
    let answer = both.clone().oneshot(grpc_call).await.expect("responds");
    assert!(
        !answer
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY),
        "not the web's"
    );
    assert!(
        answer.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/grpc")
    );
    // An unknown gRPC method is Unimplemented, an unknown page the web's.
    let unknown_method = Request::post("/carewatch.v9.Nothing/Call")
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .expect("request");
    let answer = both
        .clone()
        .oneshot(unknown_method)
        .await
        .expect("responds");
    assert_eq!(answer.headers()["grpc-status"], "12");
    let unknown_page = both
        .oneshot(get("/nothing/here", None))
        .await
        .expect("responds");
    assert_eq!(unknown_page.status(), StatusCode::SEE_OTHER);
}
