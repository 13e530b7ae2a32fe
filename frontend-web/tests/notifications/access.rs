//! Who may do what: another reseller's channel or window is the same 404 as
//! a missing one, every form needs its CSRF token, and viewers get 403.

use std::time::Duration;

use carewatch_core::ids::ResellerId;
use carewatch_core::notification::{ChannelRules, Destination};
use carewatch_core::team::{Login, Role, User};
use http::StatusCode;

use crate::channels::{channel_ids, create_webhook};
use crate::common::{Web, post};

/// An admin of `reseller` as core sees one (for setting things up directly).
fn admin_of(web: &Web, reseller: &str) -> User {
    User {
        reseller: ResellerId::new(reseller).expect("valid"),
        login: Login::new(&format!("boss@{reseller}.example")).expect("valid"),
        name: "Boss".into(),
        role: Role::Admin,
        created_at: web.fixture.carewatch.now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_resellers_channel_and_window_are_the_same_404_as_missing_ones() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    web.site("rival", "M02-C01-0001").await;
    let carewatch = &web.fixture.carewatch;
    let rival = admin_of(&web, "rival");
    let (theirs, _) = carewatch
        .create_channel(
            &rival,
            "Rival hook",
            Destination::Webhook {
                url: "https://rival.example/hook".into(),
            },
            ChannelRules::default(),
        )
        .await
        .expect("creates");
    let window = carewatch
        .create_maintenance(
            &rival,
            None,
            carewatch.now(),
            Duration::from_secs(3600),
            None,
            "theirs",
        )
        .await
        .expect("creates");
    let missing = "0123456789abcdef";
    for path in ["/channels/test", "/channels/delete", "/maintenance/delete"] {
        let id = if path.starts_with("/channels") {
            theirs.id.to_string()
        } else {
            window.id.to_string()
        };
        let page = web.post_as(&admin, path, &[("id", id.as_str())]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        let nobodys = web.post_as(&admin, path, &[("id", missing)]).await;
        assert_eq!(nobodys.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            page.body.replace(&id, "ID"),
            nobodys.body.replace(missing, "ID"),
            "{path}: theirs reads like nobody's"
        );
    }
    // Their installation cannot be put in maintenance either.
    let page = web
        .post_as(
            &admin,
            "/maintenance",
            &[
                ("scope", "one"),
                ("slc", "M02-C01-0001"),
                ("starts", "2026-01-01T00:00"),
                ("length", "1"),
                ("unit", "hours"),
                ("repeat", "once"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    // Still there, and not listed for ACME.
    assert_eq!(
        carewatch
            .channels(&rival.reseller)
            .await
            .expect("lists")
            .len(),
        1
    );
    let acme_channels = web.get_as(&admin, "/channels").await;
    assert!(!acme_channels.body.contains("Rival hook"));
    let acme_windows = web.get_as(&admin, "/maintenance").await;
    assert!(!acme_windows.body.contains("theirs"));
    assert_eq!(
        carewatch
            .maintenance_windows(&rival.reseller)
            .await
            .expect("lists")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notifications_form_needs_its_csrf_token() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let other = web.browser("acme", "other", Role::Admin).await;
    create_webhook(&web, &admin, "Ops").await;
    let before = web.get_as(&admin, "/channels").await.body;
    let id = channel_ids(&before).pop().expect("listed");
    let forms: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "/channels",
            vec![
                ("name", "Sneaky"),
                ("kind", "webhook"),
                ("target", "https://evil.example/"),
                ("scope", "all"),
            ],
        ),
        ("/channels/test", vec![("id", id.as_str())]),
        ("/channels/delete", vec![("id", id.as_str())]),
        (
            "/maintenance",
            vec![
                ("scope", "all"),
                ("starts", "2026-01-01T00:00"),
                ("length", "1"),
                ("unit", "hours"),
                ("repeat", "once"),
            ],
        ),
        ("/maintenance/delete", vec![("id", "0123456789abcdef")]),
    ];
    for (path, fields) in &forms {
        for csrf in [None, Some("wrong"), Some(other.csrf.as_str())] {
            let mut all = Vec::new();
            if let Some(csrf) = csrf {
                all.push(("csrf", csrf));
            }
            all.extend(fields.iter().copied());
            let page = web.send(post(path, Some(&admin.cookie()), &all)).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {csrf:?}");
            assert!(page.body.contains("nothing was changed"), "{path}");
        }
    }
    assert_eq!(
        channel_ids(&web.get_as(&admin, "/channels").await.body),
        vec![id],
        "nothing was created or deleted"
    );
    let reseller = ResellerId::new("acme").expect("valid");
    let carewatch = &web.fixture.carewatch;
    assert!(
        carewatch
            .maintenance_windows(&reseller)
            .await
            .expect("lists")
            .is_empty()
    );
    assert!(
        carewatch
            .outbox(
                &reseller,
                carewatch_core::notification::OutboxFilter::All,
                10
            )
            .await
            .expect("lists")
            .is_empty(),
        "no test was queued"
    );
    // Every form on the pages carries the token.
    for path in ["/channels", "/maintenance"] {
        let body = web.get_as(&admin, path).await.body;
        let forms = body.matches("method=\"post\"").count();
        let tokens = body
            .matches(&format!("name=\"csrf\" value=\"{}\"", admin.csrf))
            .count();
        assert!(forms >= 2, "{path}");
        assert_eq!(forms, tokens, "{path}: every form has the token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_may_not_see_or_change_notifications() {
    let web = Web::new().await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    for path in ["/channels", "/maintenance"] {
        let page = web.get_as(&viewer, path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("only an admin"), "{}", page.body);
        assert_eq!(
            web.get_as(&admin, path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let posts: [(&str, &[(&str, &str)]); 5] = [
        (
            "/channels",
            &[
                ("name", "Mine"),
                ("kind", "webhook"),
                ("target", "https://hooks.example.net/"),
                ("scope", "all"),
            ],
        ),
        ("/channels/test", &[("id", "0123456789abcdef")]),
        ("/channels/delete", &[("id", "0123456789abcdef")]),
        (
            "/maintenance",
            &[
                ("scope", "all"),
                ("starts", "2026-01-01T00:00"),
                ("length", "1"),
                ("unit", "hours"),
                ("repeat", "once"),
            ],
        ),
        ("/maintenance/delete", &[("id", "0123456789abcdef")]),
    ];
    for (path, fields) in posts {
        let page = web.post_as(&viewer, path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    let overview = web.get_as(&viewer, "/").await;
    assert!(!overview.body.contains("href=\"/channels\""));
    assert!(!overview.body.contains("href=\"/maintenance\""));
    let overview = web.get_as(&admin, "/").await;
    assert!(overview.body.contains("href=\"/channels\""));
    assert!(overview.body.contains("href=\"/maintenance\""));
    // Signed out: the login page, as everywhere.
    assert!(web.get("/channels", None).await.is_login_redirect());
}
