//! The channels page: the signing secret shown once and chat URLs never,
//! tests, deletion, failed notifications with their error and the failing
//! flag; and the helpers that create and read channels through the page.

use std::time::Duration;

use carewatch_core::notification::DeliveryOutcome;
use carewatch_core::team::Role;
use http::StatusCode;

use crate::common::{Browser, Web};

/// The value of the first `<input … value="…">` after `marker`.
fn value_after<'a>(body: &'a str, marker: &str) -> &'a str {
    let from = body.find(marker).expect("the marker") + marker.len();
    let rest = &body[from..];
    let at = rest.find("value=\"").expect("a value") + "value=\"".len();
    &rest[at..at + rest[at..].find('"').expect("closing quote")]
}

/// The ids of the channels listed on a page, in order.
pub(crate) fn channel_ids(body: &str) -> Vec<String> {
    body.match_indices("id=\"channel-")
        .map(|(at, _)| {
            let rest = &body[at + "id=\"channel-".len()..];
            rest[..rest.find('"').expect("closing quote")].to_owned()
        })
        .collect()
}

pub(crate) async fn create_webhook(web: &Web, admin: &Browser, name: &str) -> String {
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

    web.site("acme", "M01-C01-0001").await;
    web.site("acme", "M01-C01-0002").await;
    web.site("rival", "M01-C01-0003").await;
    // A chosen installation that is not acme's: refused beside the form
    // kept as typed, like a missing one, and nothing made.
    for other in ["M01-C01-0003", "M01-C01-0004"] {
        let refused = web
            .post_as(
                &admin,
                "/channels",
                &[
                    ("name", "Some sites"),
                    ("kind", "webhook"),
                    ("target", "https://hooks.example.net/in"),
                    ("hold", "2"),
                    ("reminder", "never"),
                    ("scope", "chosen"),
                    ("slcs", &format!("M01-C01-0001, {other}")),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
        assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
        assert!(
            refused.body.contains("value=\"Some sites\""),
            "the form is kept"
        );
    }

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
