//! Notifications end to end: real `carewatch serve` processes (1 s
//! heartbeats, 200 ms jitter) with simulated recording servers, a real
//! HTTPS receiver (a self-signed certificate the server is told to trust
//! with `--notify-ca-cert`) and a real SMTP server (STARTTLS and a
//! password), channels held 3 s. A site going Offline is one message per
//! channel listing its servers, its recovery one "resolved"; a flap shorter
//! than the hold sends nothing; a receiver failing three times gets the
//! notification the fourth time with the same key; kill -9 mid-delivery
//! loses nothing; two nodes on one PostgreSQL send each notification once;
//! a maintenance window mutes, then one "still unhealthy" follows it.
//!
//! Channels are created through the facade on the same database before the
//! server starts (as `carewatch admin` would); the maintenance window is
//! stored directly while the server runs.

mod fixtures;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use carewatch_core::feed::Change;
use carewatch_core::health::Health;
use carewatch_core::notification::OutboxFilter;
use carewatch_core::notification::delivery::verify_signature;
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::team::Login;
use carewatch_core::time::Timestamp;
use carewatch_notify::testing::http::{Received, Reply};
use carewatch_tests::process::{ServerProcess, Storage, millis};

use crate::fixtures::{
    HOLD, QUIET, Receivers, SOON, SecondNode, Site, assert_offline_problem, health, prepare,
    reseller, start_config, store_of, unix_now, wait_health,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_site_going_offline_is_one_message_per_channel_and_its_recovery_one_resolved() {
    let receivers = Receivers::start().await;
    let dir = tempfile::tempdir().expect("data dir");
    let prepared = prepare(dir.path(), &Storage::Sqlite, &receivers).await;
    let server = ServerProcess::start(start_config(dir.path(), Storage::Sqlite, &receivers)).await;
    let store = store_of(dir.path(), &Storage::Sqlite).await;
    let site = Site::start(&server, "M01-C01-100-01", 3).await;
    wait_health(&store, &site.slc(), Health::Healthy).await;

    site.silence();
    receivers.wait_for(&site.slc, 1, 1, SOON).await;
    tokio::time::sleep(QUIET).await;
    let webhooks = receivers.webhooks(&site.slc);
    let emails = receivers.emails(&site.slc);
    assert_eq!(webhooks.len(), 1, "exactly one webhook: {webhooks:#?}");
    assert_eq!(emails.len(), 1, "exactly one email: {emails:#?}");
    assert_offline_problem(&webhooks[0], &emails[0], &prepared.secret, &site.slc, 3);

    site.resume();
    receivers.wait_for(&site.slc, 2, 2, SOON).await;
    tokio::time::sleep(QUIET).await;
    let webhooks = receivers.webhooks(&site.slc);
    let emails = receivers.emails(&site.slc);
    assert_eq!(webhooks.len(), 2, "{webhooks:#?}");
    assert_eq!(emails.len(), 2, "{emails:#?}");
    let resolved = webhooks[1].json();
    assert_eq!(resolved["kind"], "resolved", "{resolved}");
    assert_eq!(resolved["resolved"]["was"], "offline");
    assert_eq!(resolved["installation"]["health"], "healthy");
    assert_ne!(
        webhooks[0].header("idempotency-key"),
        webhooks[1].header("idempotency-key")
    );
    assert!(
        emails[1].subject.starts_with("Resolved:"),
        "{:?}",
        emails[1]
    );
    let pending = store
        .outbox(&reseller(), OutboxFilter::Pending, 100)
        .await
        .expect("outbox");
    assert!(pending.is_empty(), "nothing left: {pending:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flap_shorter_than_the_hold_sends_nothing() {
    let receivers = Receivers::start().await;
    let dir = tempfile::tempdir().expect("data dir");
    prepare(dir.path(), &Storage::Sqlite, &receivers).await;
    let server = ServerProcess::start(start_config(dir.path(), Storage::Sqlite, &receivers)).await;
    let store = store_of(dir.path(), &Storage::Sqlite).await;
    // A busy machine may stretch a flap past the hold; such an attempt
    // proves nothing and the next site tries again.
    for attempt in 1..=3 {
        let slc = format!("M01-C01-200-0{attempt}");
        let site = Site::start(&server, &slc, 2).await;
        wait_health(&store, &site.slc(), Health::Healthy).await;
        let from = store.latest_change().await.expect("feed position");
        site.silence();
        // Back as soon as it is seen unhealthy.
        let deadline = tokio::time::Instant::now() + SOON;
        while !matches!(
            health(&store, &site.slc()).await,
            Some(Health::Critical | Health::Offline)
        ) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{slc} never went down"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        site.resume();
        wait_health(&store, &site.slc(), Health::Healthy).await;
        // How long the feed (what the notifier reads) says it was unhealthy.
        let events = store.changes(from, 1000).await.expect("feed");
        let healths: Vec<(Timestamp, Health)> = events
            .iter()
            .filter(|e| e.slc == site.slc())
            .filter_map(|e| match &e.change {
                Change::Health { summary, .. } => Some((e.at, summary.health)),
                _ => None,
            })
            .collect();
        let down = healths
            .iter()
            .find(|(_, h)| matches!(h, Health::Critical | Health::Offline))
            .map(|(at, _)| *at)
            .expect("the feed has it going down");
        let up = healths
            .iter()
            .rev()
            .find(|(_, h)| *h == Health::Healthy)
            .map(|(at, _)| *at)
            .expect("and back");
        let lasted = up.since(down);
        tokio::time::sleep(HOLD + QUIET).await;
        if lasted + Duration::from_millis(500) >= HOLD {
            eprintln!("{slc}: the flap lasted {lasted:?}, not shorter than the hold; again");
            continue;
        }
        assert!(
            receivers.webhooks(&slc).is_empty(),
            "a {lasted:?} flap sent a webhook: {:#?}",
            receivers.webhooks(&slc)
        );
        assert!(
            receivers.emails(&slc).is_empty(),
            "a {lasted:?} flap sent an email"
        );
        let queued = store
            .outbox(&reseller(), OutboxFilter::All, 100)
            .await
            .expect("outbox");
        assert!(
            queued.iter().all(|e| e.slc.as_ref() != Some(&site.slc())),
            "nothing queued: {queued:?}"
        );
        return;
    }
    panic!("no flap shorter than the {HOLD:?} hold in 3 attempts (machine too slow?)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_failing_three_times_gets_it_the_fourth_with_the_same_key() {
    let receivers = Receivers::start().await;
    receivers.webhook.plan([503, 503, 503].map(Reply::status));
    let dir = tempfile::tempdir().expect("data dir");
    let prepared = prepare(dir.path(), &Storage::Sqlite, &receivers).await;
    let server = ServerProcess::start(start_config(dir.path(), Storage::Sqlite, &receivers)).await;
    let store = store_of(dir.path(), &Storage::Sqlite).await;
    let site = Site::start(&server, "M01-C01-300-01", 2).await;
    wait_health(&store, &site.slc(), Health::Healthy).await;
    site.silence();
    // Backoff 10 s, 20 s, 40 s (±20%).
    receivers
        .wait_for(&site.slc, 1, 1, SOON + Duration::from_secs(90))
        .await;
    let got = receivers.webhooks(&site.slc);
    assert_eq!(got.len(), 4, "three refused, the fourth taken: {got:#?}");
    let key = got[0].header("idempotency-key").expect("keyed").to_owned();
    for (n, request) in got.iter().enumerate() {
        assert_eq!(
            request.header("idempotency-key"),
            Some(key.as_str()),
            "attempt {}",
            n + 1
        );
        assert_eq!(request.body, got[0].body, "the same body every time");
        assert!(
            verify_signature(
                prepared.secret.as_bytes(),
                request.header("carewatch-signature").unwrap_or_default(),
                &request.body,
                unix_now()
            ),
            "attempt {} signed",
            n + 1
        );
    }
    let answers: Vec<Option<u16>> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [Some(503), Some(503), Some(503), Some(200)]);
    for (n, base) in [10u64, 20, 40].into_iter().enumerate() {
        let waited = got[n + 1].at.duration_since(got[n].at).unwrap_or_default();
        assert!(
            waited >= Duration::from_secs(base * 8 / 10),
            "retry {} after {waited:?}, before its backoff",
            n + 1
        );
    }
    // The outcome is recorded just after the receiver answered: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let entry = loop {
        let entries = store
            .outbox(&reseller(), OutboxFilter::All, 100)
            .await
            .expect("outbox");
        let entry = entries
            .into_iter()
            .find(|e| e.key == key)
            .expect("the entry");
        if entry.delivered_at.is_some() || tokio::time::Instant::now() >= deadline {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        entry.delivered_at.is_some(),
        "recorded delivered: {entry:?}"
    );
    assert_eq!(entry.attempts, 4);
    // The email channel was not held up by the webhook's failures.
    assert_eq!(receivers.emails(&site.slc).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_delivery_then_restart_delivers_it_and_loses_nothing() {
    let receivers = Receivers::start().await;
    // The first attempt hangs (the server is killed meanwhile).
    receivers
        .webhook
        .plan([Reply::status(503).after(Duration::from_secs(30))]);
    let dir = tempfile::tempdir().expect("data dir");
    prepare(dir.path(), &Storage::Sqlite, &receivers).await;
    let mut server =
        ServerProcess::start(start_config(dir.path(), Storage::Sqlite, &receivers)).await;
    let store = store_of(dir.path(), &Storage::Sqlite).await;
    let site = Site::start(&server, "M01-C01-400-01", 2).await;
    wait_health(&store, &site.slc(), Health::Healthy).await;
    site.silence();
    let first = receivers.webhook.wait_for(1, SOON).await;
    assert_eq!(first.len(), 1, "the first attempt is in flight");
    assert!(first[0].answered.is_none());
    let key = first[0]
        .header("idempotency-key")
        .expect("keyed")
        .to_owned();
    server.kill().await;
    let killed = SystemTime::now();
    server.restart().await;

    // Released by the same node restarted, as it starts: not held until
    // the dead run's 60 s claim runs out.
    receivers
        .wait_for(&site.slc, 1, 1, Duration::from_secs(40))
        .await;
    let got = receivers.webhooks(&site.slc);
    let delivered: Vec<&Received> = got.iter().filter(|r| r.answered == Some(200)).collect();
    assert_eq!(delivered.len(), 1, "{got:#?}");
    assert_eq!(delivered[0].header("idempotency-key"), Some(key.as_str()));
    assert_eq!(delivered[0].body, first[0].body, "the same notification");
    let after_kill = delivered[0].at.duration_since(killed).unwrap_or_default();
    assert!(
        after_kill < Duration::from_secs(30),
        "delivered {after_kill:?} after the kill: released at the restart, not after the 60 s claim"
    );
    // The outcome is recorded just after the receiver answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pending = store
            .outbox(&reseller(), OutboxFilter::Pending, 100)
            .await
            .expect("outbox");
        if pending.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing lost or left: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let emails = receivers.emails(&site.slc);
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert!(
        server.stderr_contains("notification delivered"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_one_postgres_deliver_each_notification_once() {
    let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "cw_test_{}_notify_{}",
        millis(SystemTime::now()) / 1000,
        std::process::id()
    );
    let storage = Storage::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let receivers = Receivers::start().await;
    let dir_a = tempfile::tempdir().expect("data dir");
    let dir_b = tempfile::tempdir().expect("data dir");
    let prepared = prepare(dir_a.path(), &storage, &receivers).await;
    // Both nodes read secrets with the same master key.
    std::fs::copy(
        dir_a.path().join("master.key"),
        dir_b.path().join("master.key"),
    )
    .expect("master key shared");
    let a = ServerProcess::start(
        start_config(dir_a.path(), storage.clone(), &receivers).args(["--node-id", "node-a"]),
    )
    .await;
    // The operator exists already: the second node prints no token, which
    // the harness waits for, so it runs as a plain child process.
    let b = SecondNode::start(
        &start_config(dir_b.path(), storage.clone(), &receivers).args(["--node-id", "node-b"]),
    )
    .await;
    let store = store_of(dir_a.path(), &storage).await;

    let site = Site::start(&a, "M01-C01-500-01", 3).await;
    wait_health(&store, &site.slc(), Health::Healthy).await;
    site.silence();
    receivers.wait_for(&site.slc, 1, 1, SOON).await;
    tokio::time::sleep(QUIET).await;
    let webhooks = receivers.webhooks(&site.slc);
    let emails = receivers.emails(&site.slc);
    assert_eq!(webhooks.len(), 1, "{webhooks:#?}");
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_offline_problem(&webhooks[0], &emails[0], &prepared.secret, &site.slc, 3);

    site.resume();
    receivers.wait_for(&site.slc, 2, 2, SOON).await;
    tokio::time::sleep(QUIET).await;
    let webhooks = receivers.webhooks(&site.slc);
    let emails = receivers.emails(&site.slc);
    let keys: BTreeSet<&str> = webhooks
        .iter()
        .filter_map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(webhooks.len(), 2, "each once: {webhooks:#?}");
    assert_eq!(keys.len(), 2);
    assert_eq!(emails.len(), 2, "each once: {emails:#?}");
    assert_eq!(webhooks[1].json()["kind"], "resolved");
    let delivered = |log: String| {
        log.lines()
            .filter(|l| l.contains("notification delivered"))
            .count()
    };
    assert_eq!(
        delivered(a.log()) + delivered(b.log()),
        4,
        "four deliveries between the two nodes"
    );

    drop(site);
    drop(a);
    drop(b);
    // A store on the test's own schema (already migrated): one on `public`
    // would migrate that schema, which is not this test's to touch.
    let cleanup = carewatch_storage_postgres::PostgresStore::open(
        carewatch_storage_postgres::PostgresConfig::from_url(&url)
            .and_then(|c| c.schema(&schema))
            .expect("URL"),
    )
    .await
    .expect("PostgreSQL");
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(e) = sqlx_core::query::query(sqlx_core::sql_str::AssertSqlSafe(sql))
        .execute(cleanup.pool())
        .await
    {
        eprintln!("dropping schema {schema}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maintenance_window_mutes_then_one_still_unhealthy_follows() {
    let receivers = Receivers::start().await;
    let dir = tempfile::tempdir().expect("data dir");
    prepare(dir.path(), &Storage::Sqlite, &receivers).await;
    let server = ServerProcess::start(start_config(dir.path(), Storage::Sqlite, &receivers)).await;
    let store = store_of(dir.path(), &Storage::Sqlite).await;
    let site = Site::start(&server, "M01-C01-600-01", 2).await;
    wait_health(&store, &site.slc(), Health::Healthy).await;

    // A window (the shortest is a minute) that began 48 s ago: 12 s left,
    // enough for the site to go down and its hold to pass inside it.
    let now = Timestamp::from(SystemTime::now());
    let window = MaintenanceWindow {
        id: WindowId::generate(),
        reseller: reseller(),
        slc: Some(site.slc()),
        starts_at: now.saturating_sub(Duration::from_secs(48)),
        length: Duration::from_secs(60),
        every: None,
        reason: "replacing the router".into(),
        created_by: Login::new("admin@acme.example").expect("login"),
        created_at: now,
        deleted_at: None,
    }
    .validate()
    .expect("window");
    let ends = window.starts_at.saturating_add(window.length);
    store
        .create_maintenance(&window)
        .await
        .expect("window stored");
    site.silence();
    wait_health(&store, &site.slc(), Health::Offline).await;
    let offline_at = Timestamp::from(SystemTime::now());
    assert!(
        offline_at.saturating_add(HOLD) < ends,
        "the machine was too slow: offline at {offline_at}, window ends {ends}"
    );

    receivers.wait_for(&site.slc, 1, 1, SOON).await;
    let webhooks = receivers.webhooks(&site.slc);
    let emails = receivers.emails(&site.slc);
    let first = Timestamp::from(webhooks[0].at);
    assert!(
        first >= ends,
        "nothing during the window: sent {first}, window ends {ends}"
    );
    tokio::time::sleep(QUIET).await;
    let webhooks = receivers.webhooks(&site.slc);
    assert_eq!(webhooks.len(), 1, "{webhooks:#?}");
    assert_eq!(emails.len(), 1, "{emails:#?}");
    let body = webhooks[0].json();
    assert_eq!(body["kind"], "after_maintenance", "{body}");
    assert_eq!(body["installation"]["health"], "offline");
    assert!(
        body["title"]
            .as_str()
            .is_some_and(|t| t.contains("still") && t.contains("maintenance")),
        "{body}"
    );
    assert!(
        emails[0].subject.contains("after its maintenance window"),
        "{emails:?}"
    );
}
