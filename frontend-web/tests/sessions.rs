//! Signing in and out, session expiry, CSRF, throttled sign-in,
//! invitations, and what a signed-out visitor gets everywhere.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use carewatch_core::team::{INVITATION_LIFETIME, Login, Role, SESSION_LIFETIME};
use common::{FORM_TOKEN, PASSWORD, Web, get, login_form, post};
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_a_strict_session_cookie_and_signing_out_ends_the_session() {
    let web = Web::new().await;
    web.user("acme", "jane@acme.example", Role::Admin).await;

    let form = web.get("/login", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("name=\"password\""), "{}", form.body);
    let form_cookie = form
        .set_cookie_header("carewatch_form")
        .expect("double-submit cookie");
    assert!(form_cookie.contains("HttpOnly") && form_cookie.contains("SameSite=Strict"));

    let signed_in = web.sign_in("Jane@ACME.example", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.location(), Some("/"));
    let cookie = signed_in
        .set_cookie_header("carewatch_session")
        .expect("session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        cookie.contains(&format!("Max-Age={}", SESSION_LIFETIME.as_secs())),
        "{cookie}"
    );
    let session = signed_in.set_cookie("carewatch_session").expect("secret");
    let browser = common::Browser {
        csrf: carewatch_web::csrf_token(&session),
        session,
    };
    let overview = web.get_as(&browser, "/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains("jane@acme.example"),
        "shows who is signed in"
    );
    assert!(
        web.get_as(&browser, "/login").await.status == StatusCode::SEE_OTHER,
        "the login page sends a signed-in user to the overview"
    );

    let out = web.post_as(&browser, "/logout", &[]).await;
    assert!(out.is_login_redirect(), "{out:?}");
    let deleted = out.set_cookie_header("carewatch_session").expect("deleted");
    assert!(deleted.contains("Max-Age=0"), "{deleted}");
    let after = web.get_as(&browser, "/").await;
    assert!(after.is_login_redirect(), "the session is gone: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_forged_session_is_signed_out() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Viewer).await;
    for forged in [
        "carewatch_session=cws.0000000000000000000000000000000000000000000000000000000000000000",
        "carewatch_session=garbage",
        "carewatch_session=",
    ] {
        let page = web.get("/", Some(forged)).await;
        assert!(page.is_login_redirect(), "{forged}: {page:?}");
    }
    assert_eq!(web.get_as(&browser, "/").await.status, StatusCode::OK);
    web.fixture
        .advance(SESSION_LIFETIME + Duration::from_secs(1));
    let expired = web.get_as(&browser, "/").await;
    assert!(expired.is_login_redirect(), "{expired:?}");
    assert!(
        expired
            .set_cookie_header("carewatch_session")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the stale cookie is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let web = Web::new().await;
    let admin = web.browser("acme", "boss", Role::Admin).await;
    let fields = [("login", "newbie"), ("name", "New Bie"), ("role", "viewer")];
    for csrf in [
        None,
        Some("0".repeat(64)),
        Some(carewatch_web::csrf_token("cws.other")),
    ] {
        let mut all = fields.to_vec();
        if let Some(csrf) = &csrf {
            all.push(("csrf", csrf));
        }
        let page = web
            .send(post("/team/invite", Some(&admin.cookie()), &all))
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{csrf:?}: {page:?}");
        assert!(page.body.contains("nothing was changed"), "{}", page.body);
    }
    let reseller = carewatch_core::ids::ResellerId::new("acme").expect("valid");
    let users = web.fixture.carewatch.users(&reseller).await.expect("users");
    assert_eq!(users.len(), 1, "nobody was invited: {users:?}");

    // Signing out needs the token too.
    let page = web
        .send(post("/logout", Some(&admin.cookie()), &[("csrf", "wrong")]))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        web.get_as(&admin, "/").await.status,
        StatusCode::OK,
        "still signed in"
    );

    // The login form: its token must match the double-submit cookie.
    web.user("acme", "jane", Role::Viewer).await;
    let no_cookie = post(
        "/login",
        None,
        &[
            ("csrf", FORM_TOKEN),
            ("login", "jane"),
            ("password", PASSWORD),
        ],
    );
    let page = web.send(no_cookie).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.set_cookie("carewatch_session").is_none());
    let mismatched = post(
        "/login",
        Some(&format!("carewatch_form={FORM_TOKEN}")),
        &[
            ("csrf", &FORM_TOKEN.replace('1', "2")),
            ("login", "jane"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(web.send(mismatched).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_sign_in_reads_the_same_and_repeated_failures_are_slowed() {
    let web = Web::new().await;
    web.user("acme", "jane", Role::Viewer).await;
    let wrong_password = web.sign_in("jane", "not the password").await;
    let unknown_login = web.sign_in("nobody", PASSWORD).await;
    let malformed_login = web.sign_in("x", PASSWORD).await;
    for page in [&wrong_password, &unknown_login, &malformed_login] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(
            page.body.contains("Wrong login or password."),
            "{}",
            page.body
        );
        assert!(page.set_cookie("carewatch_session").is_none());
    }

    // From another address, so only the login's count matters: five free
    // failures (one above), then each attempt waits first (250 ms, 500 ms …).
    let attacker = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let carewatch = &web.fixture.carewatch;
    for _ in 0..4 {
        assert_eq!(
            carewatch.sign_in_delay("jane", Some(attacker)),
            Duration::ZERO
        );
        let page = web.send_from(attacker, login_form("jane", "guess")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    // The waits are read from the throttle, and timed only as lower bounds:
    // the password hash's own time (over a second in a debug build, and
    // swinging with the machine's load) blurs any finer timing.
    assert_eq!(
        carewatch.sign_in_delay("jane", Some(attacker)),
        Duration::from_millis(250),
        "after five failures of this login, the next attempt waits"
    );
    let started = Instant::now();
    let sixth = web.send_from(attacker, login_form("jane", "guess")).await;
    let slowed_once = started.elapsed();
    assert_eq!(
        carewatch.sign_in_delay("jane", Some(attacker)),
        Duration::from_millis(500),
        "and longer after each further failure"
    );
    let started = Instant::now();
    let seventh = web.send_from(attacker, login_form("jane", PASSWORD)).await;
    let slowed_twice = started.elapsed();
    assert_eq!(sixth.status, StatusCode::UNAUTHORIZED);
    assert!(slowed_once >= Duration::from_millis(250), "{slowed_once:?}");
    assert!(
        slowed_twice >= Duration::from_millis(500),
        "{slowed_twice:?}"
    );
    assert_eq!(
        seventh.status,
        StatusCode::SEE_OTHER,
        "the right password still works, only later"
    );
    let elsewhere = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    assert_eq!(
        carewatch.sign_in_delay("jane", Some(elsewhere)),
        Duration::ZERO,
        "a success clears the login's count"
    );
    assert_eq!(
        carewatch.sign_in_delay("jane", Some(attacker)),
        Duration::from_millis(250),
        "not the address's (five failures): it is forgotten after ten quiet minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_as_oneself_does_not_clear_an_addresss_failures() {
    let web = Web::new().await;
    web.user("acme", "mallory", Role::Viewer).await;
    let sprayer = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
    let carewatch = &web.fixture.carewatch;
    // Guesses at six logins, one each: only the address's count grows.
    for victim in ["ann", "bob", "cid", "dee", "eve", "fay"] {
        let page = web.send_from(sprayer, login_form(victim, "guess")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        carewatch.sign_in_delay("gus", Some(sprayer)),
        Duration::from_millis(500),
        "a seventh login from that address waits"
    );
    let own = web
        .send_from(sprayer, login_form("mallory", PASSWORD))
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "one's own sign-in works");
    assert_eq!(
        carewatch.sign_in_delay("gus", Some(sprayer)),
        Duration::from_millis(500),
        "and leaves the address's count as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_sets_the_password_once_and_signs_in() {
    let web = Web::new().await;
    let admin = web.browser("acme", "boss", Role::Admin).await;
    let team = web
        .post_as(
            &admin,
            "/team/invite",
            &[
                ("login", "New.Tech@acme.example"),
                ("name", "New Tech"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.body);
    let link_start = team.body.find("/invite#cwi.").expect("the link is shown");
    let secret = &team.body[link_start + "/invite#".len()..][..68];
    assert!(team.body.contains("https://"), "an absolute link");

    let form = web.get("/invite", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("name=\"code\""),
        "asks for the code without JavaScript"
    );

    let accept = |code: &str, password: &str, confirm: &str| {
        post(
            "/invite",
            Some(&format!("carewatch_form={FORM_TOKEN}")),
            &[
                ("csrf", FORM_TOKEN),
                ("code", code),
                ("password", password),
                ("confirm", confirm),
            ],
        )
    };
    let differ = web
        .send(accept(secret, PASSWORD, "something else entirely"))
        .await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    assert!(differ.body.contains("passwords differ"), "{}", differ.body);
    assert!(differ.body.contains(secret), "the code stays in the form");
    let short = web.send(accept(secret, "short", "short")).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);

    // Accepted in the browser the admin is signed in with: the admin's
    // session ends, as signing in again would end it.
    let joined = web
        .send(post(
            "/invite",
            Some(&format!("carewatch_form={FORM_TOKEN}; {}", admin.cookie())),
            &[
                ("csrf", FORM_TOKEN),
                ("code", secret),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        ))
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    assert_eq!(joined.location(), Some("/"));
    let previous = web.get_as(&admin, "/").await;
    assert!(
        previous.is_login_redirect(),
        "the browser's previous session is gone: {previous:?}"
    );
    let session = joined.set_cookie("carewatch_session").expect("signed in");
    let page = web
        .get("/", Some(&format!("carewatch_session={session}")))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("New Tech"));

    let again = web.send(accept(secret, PASSWORD, PASSWORD)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "works once");
    assert!(again.body.contains("not valid"), "{}", again.body);
    assert!(
        !again.body.contains(secret),
        "a refused code is not given back"
    );
    assert!(again.set_cookie("carewatch_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invitation_is_refused() {
    let web = Web::new().await;
    let reseller = web.fixture.reseller("acme").await;
    let login = Login::new("late@acme.example").expect("valid");
    let invitation = web
        .fixture
        .carewatch
        .invite_user(&reseller, &login, "Late", Role::Viewer, None)
        .await
        .expect("invites");
    web.fixture
        .advance(INVITATION_LIFETIME + Duration::from_secs(1));
    let page = web
        .send(post(
            "/invite",
            Some(&format!("carewatch_form={FORM_TOKEN}")),
            &[
                ("csrf", FORM_TOKEN),
                ("code", &invitation.secret.token),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert!(web.sign_in("late@acme.example", PASSWORD).await.status == StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_visitor_gets_the_login_page_or_401_everywhere() {
    let web = Web::new().await;
    web.site("acme", "M01-C01-0001").await;
    for path in [
        "/",
        "/?health=critical",
        "/installations/M01-C01-0001",
        "/installations/NOPE-0000",
        "/team",
        "/tokens",
        "/events",
        "/no/such/page",
    ] {
        let page = web.get(path, None).await;
        assert!(page.is_login_redirect(), "{path}: {page:?}");
    }
    for (path, fields) in [
        ("/logout", vec![("csrf", "x")]),
        (
            "/team/invite",
            vec![
                ("csrf", "x"),
                ("login", "a"),
                ("name", "b"),
                ("role", "viewer"),
            ],
        ),
        ("/team/remove", vec![("csrf", "x"), ("login", "a")]),
        ("/tokens", vec![("csrf", "x"), ("name", "n")]),
        ("/tokens/revoke", vec![("csrf", "x"), ("id", "0")]),
    ] {
        let page = web.send(post(path, None, &fields)).await;
        assert!(page.is_login_redirect(), "POST {path}: {page:?}");
    }
    for path in [
        "/api/v1/installations",
        "/api/v1/installations/M01-C01-0001",
        "/api/v1/totals",
        "/api/v1/nothing-here",
    ] {
        let page = web.api(path, None).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(page.json()["error"]["code"], "unauthenticated", "{path}");
        assert!(page.headers.contains_key(http::header::WWW_AUTHENTICATE));
        let forged = web.api(path, Some("cwr.forged")).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Only the login form, the invitation form, the static files and the
    // API's description are for everybody.
    for path in [
        "/login",
        "/invite",
        "/static/site.css",
        "/static/live.js",
        "/api/v1/openapi.json",
    ] {
        assert_eq!(
            web.send(get(path, None)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_ends_the_previous_session_of_that_browser() {
    let web = Web::new().await;
    let first = web.browser("acme", "jane", Role::Viewer).await;
    assert_eq!(web.get_as(&first, "/").await.status, StatusCode::OK);

    // The same browser signs in again: it sends its old cookie along.
    let again = web
        .send(post(
            "/login",
            Some(&format!("carewatch_form={FORM_TOKEN}; {}", first.cookie())),
            &[
                ("csrf", FORM_TOKEN),
                ("login", "jane"),
                ("password", PASSWORD),
            ],
        ))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{again:?}");
    let second = again
        .set_cookie("carewatch_session")
        .expect("a new session");
    assert_ne!(second, first.session);
    let old = web.get_as(&first, "/").await;
    assert!(old.is_login_redirect(), "the old session is gone: {old:?}");
    let second_cookie = format!("carewatch_session={second}");
    assert_eq!(
        web.get("/", Some(&second_cookie)).await.status,
        StatusCode::OK
    );

    // Another browser signing in (no cookie) leaves this one's session alone.
    let elsewhere = web.sign_in("jane", PASSWORD).await;
    assert_eq!(elsewhere.status, StatusCode::SEE_OTHER);
    assert_eq!(
        web.get("/", Some(&second_cookie)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_over_the_size_limit_is_refused_as_too_large() {
    let web = Web::new().await;
    let browser = web.browser("acme", "jane", Role::Admin).await;
    let big = "x".repeat(20 * 1024);

    // Signed out: the login form.
    let login = web.sign_in("jane", &big).await;
    assert_eq!(login.status, StatusCode::PAYLOAD_TOO_LARGE, "{login:?}");
    assert!(
        login
            .body
            .contains("The form is too large: at most 16 KiB."),
        "{}",
        login.body
    );
    assert!(
        login.headers[http::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(login.set_cookie("carewatch_session").is_none());

    // Signed in: any form (here signing out), and nothing was changed.
    let out = web.post_as(&browser, "/logout", &[("pad", &big)]).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE, "{out:?}");
    assert!(
        out.body.contains("The form is too large: at most 16 KiB."),
        "{}",
        out.body
    );
    assert_eq!(
        web.get_as(&browser, "/").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let token = web.post_as(&browser, "/tokens", &[("name", &big)]).await;
    assert_eq!(token.status, StatusCode::PAYLOAD_TOO_LARGE, "{token:?}");

    // A form under the limit is read as before.
    let out = web.post_as(&browser, "/logout", &[("pad", "x")]).await;
    assert!(out.is_login_redirect(), "{out:?}");
}
