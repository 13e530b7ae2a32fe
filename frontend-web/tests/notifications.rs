//! The notification pages: channels (the signing secret shown once, chat
//! URLs never shown, tests, deletion, failed notifications with their
//! error, the failing flag), maintenance windows, "in maintenance" on the
//! overview and the installation page, CSRF on every form, viewers' 403,
//! another reseller's channel or window the same 404 as a missing one,
//! `maintenance_until` in the JSON API.

mod common;

use std::time::Duration;

use carewatch_core::ids::ResellerId;
use carewatch_core::notification::{ChannelRules, DeliveryOutcome, Destination};
use carewatch_core::team::{Login, Role, User};
use common::{Browser, Web, post};
use http::StatusCode;

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

/// The value of the first `<input … value="…">` after `marker`.
fn value_after<'a>(body: &'a str, marker: &str) -> &'a str {
    let from = body.find(marker).expect("the marker") + marker.len();
    let rest = &body[from..];
    let at = rest.find("value=\"").expect("a value") + "value=\"".len();
    &rest[at..at + rest[at..].find('"').expect("closing quote")]
}

/// The ids of the channels listed on a page, in order.
fn channel_ids(body: &str) -> Vec<String> {
    body.match_indices("id=\"channel-")
        .map(|(at, _)| {
            let rest = &body[at + "id=\"channel-".len()..];
            rest[..rest.find('"').expect("closing quote")].to_owned()
        })
        .collect()
}

async fn create_webhook(web: &Web, admin: &Browser, name: &str) -> String {
    let page = web
        .post_as(
            admin,
            "/channels",
            &[
                ("name", name),
                ("kind", "webhook"),
                ("target", "https://hooks.example.net/carewatch/inbox"),
                ("hold", "2"),
                ("reminder", "never"),
                ("scope", "all"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_secret_is_shown_once_and_chat_urls_never() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let created = create_webhook(&web, &admin, "On-call webhook").await;
    let secret = value_after(&created, "id=\"signing-secret\"").to_owned();
    assert!(secret.starts_with("whsec"), "{secret}");
    assert!(created.contains("Created channel “On-call webhook”"));

    let slack_secret = "T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX";
    let slack = web
        .post_as(
            &admin,
            "/channels",
            &[
                ("name", "Slack"),
                ("kind", "slack"),
                (
                    "target",
                    &format!("https://hooks.slack.com/services/{slack_secret}"),
                ),
                ("hold", "5"),
                ("reminder", "60"),
                ("attention", "on"),
                ("scope", "chosen"),
                ("slcs", "M01-C01-0001, M01-C01-0002"),
            ],
        )
        .await;
    assert_eq!(slack.status, StatusCode::OK, "{}", slack.body);
    assert!(
        !slack.body.contains("signing-secret"),
        "no secret for Slack"
    );

    let listed = web.get_as(&admin, "/channels").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(channel_ids(&listed.body).len(), 2);
    assert!(
        !listed.body.contains(&secret),
        "the secret is shown only once"
    );
    assert!(
        !listed.body.contains(slack_secret),
        "a chat URL is a secret"
    );
    assert!(
        !listed.body.contains("/carewatch/inbox"),
        "URLs by host only"
    );
    for text in [
        "On-call webhook",
        "webhook to hooks.example.net",
        "slack to hooks.slack.com",
        "Attention, Critical, Offline and recoveries",
        "M01-C01-0002",
        "after holding 5 min",
        "reminders every 1 h",
        "no reminders",
        "none yet",
    ] {
        assert!(listed.body.contains(text), "{text}: {}", listed.body);
    }

    // A refused form keeps what was typed, but never echoes a URL.
    let refused = web
        .post_as(
            &admin,
            "/channels",
            &[
                ("name", "Teams"),
                ("kind", "teams"),
                (
                    "target",
                    "https://outlook.example/webhook/secret-part with space",
                ),
                ("hold", "2"),
                ("reminder", "never"),
                ("scope", "all"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""));
    assert!(refused.body.contains("value=\"Teams\""), "the name is kept");
    assert!(
        !refused.body.contains("secret-part"),
        "the URL is not echoed"
    );
    assert_eq!(
        channel_ids(&web.get_as(&admin, "/channels").await.body).len(),
        2,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_tested_and_deleted_and_failed_notifications_show_their_error() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let created = create_webhook(&web, &admin, "Ops").await;
    let id = channel_ids(&created).pop().expect("listed");
    let carewatch = &web.fixture.carewatch;

    // Five tests, each given up on: the channel is flagged as failing.
    for attempt in 1..=5 {
        let tested = web
            .post_as(&admin, "/channels/test", &[("id", id.as_str())])
            .await;
        assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
        assert!(tested.body.contains("test notification is on its way"));
        let claimed = carewatch
            .claim_deliveries(Duration::from_secs(60), 10)
            .await
            .expect("claims");
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        carewatch
            .finish_delivery(
                claimed[0].id,
                &DeliveryOutcome::Failed {
                    error: "hooks.example.net answered 410 Gone".into(),
                },
            )
            .await
            .expect("records the failure");
        web.fixture.advance(Duration::from_secs(1));
    }
    let page = web.get_as(&admin, "/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    let failed = &page.body[page.body.find("Failed notifications").expect("the section")..];
    assert!(failed.contains("410 Gone"), "{failed}");
    assert!(failed.contains("test"), "its kind");
    assert!(failed.contains("Carewatch test notification"), "its title");
    assert!(failed.contains("a test"), "no installation");
    assert!(
        page.body.contains("Failing: 5 attempts in a row"),
        "{}",
        page.body
    );
    assert!(page.body.contains("class=\"failing\""));

    let deleted = web
        .post_as(&admin, "/channels/delete", &[("id", id.as_str())])
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body.contains("Deleted channel"));
    assert!(channel_ids(&deleted.body).is_empty());
    let again = web
        .post_as(&admin, "/channels/delete", &[("id", id.as_str())])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let garbage = web
        .post_as(&admin, "/channels/test", &[("id", "../../etc")])
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_in_maintenance_say_so_on_the_overview_and_their_page() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    web.site("acme", "M01-C01-0001").await;
    web.site("acme", "M01-C01-0002").await;
    // Both are Pending (nothing reported yet), so both are on the overview.
    let created = web
        .post_as(
            &admin,
            "/maintenance",
            &[
                ("scope", "one"),
                ("slc", "M01-C01-0001"),
                ("starts", "2026-01-01T00:00"),
                ("length", "2"),
                ("unit", "hours"),
                ("repeat", "once"),
                ("reason", "Firmware update"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(created.body.contains("Maintenance set for M01-C01-0001"));
    // Listed with its reason, length, repetition, author and state.
    for text in ["Firmware update", "2 h", "once", "in force", ">admin<"] {
        assert!(created.body.contains(text), "{text}: {}", created.body);
    }

    let overview = web.get_as(&viewer, "/").await;
    let row = |body: &str, slc: &str| -> String {
        let from = body
            .find(&format!("id=\"row-{slc}\""))
            .unwrap_or_else(|| panic!("the row of {slc}: {body}"));
        let rest = &body[from..];
        rest[..rest.find("</tr>").expect("row end")].to_owned()
    };
    assert!(
        row(&overview.body, "M01-C01-0001").contains("in maintenance until"),
        "{}",
        overview.body
    );
    assert!(!row(&overview.body, "M01-C01-0002").contains("in maintenance"));
    let page = web.get_as(&viewer, "/installations/M01-C01-0001").await;
    assert!(page.body.contains("in maintenance"), "{}", page.body);
    assert!(page.body.contains("Firmware update"));
    let other = web.get_as(&viewer, "/installations/M01-C01-0002").await;
    assert!(!other.body.contains("in maintenance"));
    // The JSON API says so too.
    let token = web.reseller_token("acme").await;
    let list = web.api("/api/v1/installations", Some(&token)).await.json();
    let until = |slc: &str| {
        list["installations"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["slc"] == slc)
            .expect("listed")["maintenance_until"]
            .clone()
    };
    assert_eq!(until("M01-C01-0001"), "2026-01-01T02:00:00.000Z");
    assert!(until("M01-C01-0002").is_null());
    let detail = web
        .api("/api/v1/installations/M01-C01-0001", Some(&token))
        .await
        .json();
    assert_eq!(
        detail["installation"]["maintenance_until"],
        "2026-01-01T02:00:00.000Z"
    );

    // A window for all of them, repeating daily; the first one has ended.
    let all = web
        .post_as(
            &admin,
            "/maintenance",
            &[
                ("scope", "all"),
                ("slc", ""),
                ("starts", "2026-01-01T06:00"),
                ("length", "30"),
                ("unit", "minutes"),
                ("repeat", "daily"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(all.body.contains("all installations"));
    web.fixture.advance(Duration::from_secs(3 * 3600));
    let overview = web.get_as(&viewer, "/").await;
    assert!(
        !overview.body.contains("in maintenance until"),
        "the first is over"
    );
    let listed = web.get_as(&admin, "/maintenance").await;
    assert!(
        listed
            .body
            .contains("next from <time datetime=\"2026-01-01T06:00:00.000Z\""),
        "the daily one's next occurrence: {}",
        listed.body
    );
    web.fixture
        .advance(Duration::from_secs(24 * 3600 + 3 * 3600 + 60));
    // A day later: sessions have ended, so sign in anew.
    let viewer = web.browser("acme", "late-viewer", Role::Viewer).await;
    let admin = web.browser("acme", "late-admin", Role::Admin).await;
    let overview = web.get_as(&viewer, "/").await;
    assert!(row(&overview.body, "M01-C01-0001").contains("in maintenance until"));
    assert!(row(&overview.body, "M01-C01-0002").contains("in maintenance until"));

    // Deleting the windows ends the maintenance.
    let listed = web.get_as(&admin, "/maintenance").await;
    let ids: Vec<String> = listed
        .body
        .match_indices("id=\"window-")
        .map(|(at, _)| {
            let rest = &listed.body[at + "id=\"window-".len()..];
            rest[..rest.find('"').expect("quote")].to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{}", listed.body);
    assert!(listed.body.contains("over"), "the once window is over");
    for id in &ids {
        let deleted = web
            .post_as(&admin, "/maintenance/delete", &[("id", id.as_str())])
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    }
    let overview = web.get_as(&viewer, "/").await;
    assert!(!overview.body.contains("in maintenance"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_maintenance_forms_are_refused_with_the_form_kept() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    for (fields, expect) in [
        (
            vec![("starts", "tomorrow"), ("length", "1"), ("unit", "hours")],
            "not a date and time",
        ),
        (
            vec![
                ("starts", "2026-01-01T00:00"),
                ("length", "0"),
                ("unit", "hours"),
            ],
            "1 minute to 30 days",
        ),
        (
            vec![
                ("starts", "2026-01-01T00:00"),
                ("length", "31"),
                ("unit", "days"),
            ],
            "1 minute to 30 days",
        ),
    ] {
        let mut all = vec![
            ("scope", "all"),
            ("repeat", "once"),
            ("reason", "Kept reason"),
        ];
        all.extend(fields);
        let page = web.post_as(&admin, "/maintenance", &all).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{expect}: {}",
            page.body
        );
        assert!(page.body.contains(expect), "{expect}: {}", page.body);
        assert!(page.body.contains("value=\"Kept reason\""));
    }
    let page = web.get_as(&admin, "/maintenance").await;
    assert!(page.body.contains("No maintenance windows."));
}
