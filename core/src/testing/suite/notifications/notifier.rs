//! The notifier: its lease and atomic steps on the store, and notifications through the facade.

use super::{
    LEASE, channel, commit, create_channel, due_states, enqueue, entry, keys, lease, leased, mark,
    on_call, one_site_on_call, outbox_of, settle, states_of, told_kinds,
};
use crate::catalogue::ConditionCode;
use crate::feed::EventId;
use crate::health::Health;
use crate::ids::Slc;
use crate::notification::payload::{Notification, SCHEMA};
use crate::notification::rules::Phase;
use crate::notification::{
    ChannelId, ChannelRules, Destination, NewOutboxEntry, NotificationState, NotifierCommit,
    OutboxFilter,
};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::team::member;
use crate::testing::suite::{keep_alive, report, secs, slc, t};
use crate::time::Timestamp;

/// The notifier lease is held by one node at a time: taken when free,
/// refused to others while it lasts, renewed by its holder, taken over once
/// it expires; a node that lost it cannot commit a step, and the position a
/// step commits is what the next lease returns.
pub(crate) async fn the_notifier_lease_is_held_by_one_node_at_a_time(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let other = db.open().await;
    assert_eq!(
        leased(store, "node-a", t(0)).await,
        Some(EventId(0)),
        "a free lease, on a new database at the start of the feed"
    );
    assert_eq!(lease(&other, "node-b", t(10)).await, None, "held by node-a");
    assert_eq!(
        leased(store, "node-a", t(20)).await,
        Some(EventId(0)),
        "renewed by its holder, until t(50)"
    );
    assert_eq!(lease(&other, "node-b", t(49)).await, None, "renewed");
    assert_eq!(
        leased(&other, "node-b", t(51)).await,
        Some(EventId(0)),
        "taken over once expired"
    );
    assert_eq!(lease(store, "node-a", t(52)).await, None, "now node-b's");

    let _ = fx.site("alpha", "M01-C01-0001").await;
    let head = store.latest_change().await.expect("feed head");
    assert!(head.0 > 0);
    let from = mark(store, EventId(0)).await;
    let step = |node: &str| NotifierCommit {
        node: node.into(),
        from,
        to: head,
        states: Vec::new(),
        outbox: Vec::new(),
        claim_until: None,
    };
    assert!(
        !commit(store, &step("node-a")).await,
        "a node that lost the lease commits nothing"
    );
    assert_eq!(leased(&other, "node-b", t(53)).await, Some(EventId(0)));
    assert!(commit(&other, &step("node-b")).await, "the holder commits");
    assert_eq!(
        leased(&other, "node-b", t(54)).await,
        Some(head),
        "the committed position"
    );
    assert_eq!(
        leased(store, "node-a", t(54).saturating_add(LEASE + secs(1))).await,
        Some(head),
        "a node taking over carries on from the committed position"
    );
}

/// A notifier step's commit is atomic and conditional: a stale `from` or a
/// lost lease writes nothing; otherwise states (every phase round-trips),
/// outbox entries and the position are written together. A Quiet phase
/// deletes the state; due states are listed earliest first; an outbox key
/// is stored once (a second entry with it adds nothing, in a commit or an
/// enqueue), and new entries start pending and due at once.
pub(crate) async fn notifier_commits_are_atomic_and_conditional(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let ch = channel(1, &alpha, START);
    let other = channel(2, &alpha, START);
    create_channel(store, &ch).await;
    create_channel(store, &other).await;
    // The installations the states are about: alpha's (a state about
    // another reseller's installation is not written).
    for i in 0..5 {
        fx.site("alpha", &format!("M01-C01-10{i:02}")).await;
    }
    let head = store.latest_change().await.expect("feed head");
    assert!(head.0 > 0);
    assert_eq!(leased(store, "node-a", t(0)).await, Some(EventId(0)));

    let phases = [
        Phase::Pending {
            health: Health::Critical,
            since: t(1),
            muted: false,
        },
        Phase::Pending {
            health: Health::Offline,
            since: t(2),
            muted: true,
        },
        Phase::Notified {
            health: Health::Offline,
            since: t(3),
            told_at: t(4),
            reminders: 2,
            changed: Some((Health::Critical, t(5))),
            muted: false,
        },
        Phase::Notified {
            health: Health::Attention,
            since: t(3),
            told_at: t(4),
            reminders: 0,
            changed: None,
            muted: true,
        },
        Phase::Recovering {
            health: Health::Critical,
            problem_since: t(1),
            since: t(6),
        },
    ];
    let due = [Some(t(300)), Some(t(100)), None, Some(t(200)), Some(t(150))];
    let mut states: Vec<NotificationState> = phases
        .iter()
        .zip(due)
        .enumerate()
        .map(|(i, (phase, due_at))| NotificationState {
            channel: ch.id.clone(),
            slc: slc(&format!("M01-C01-10{i:02}")),
            phase: phase.clone(),
            due_at,
        })
        .collect();
    states.push(NotificationState {
        channel: other.id.clone(),
        slc: site.slc.clone(),
        phase: phases[0].clone(),
        due_at: Some(t(120)),
    });
    let mut all_keys: Vec<(ChannelId, Slc)> = states
        .iter()
        .map(|s| (s.channel.clone(), s.slc.clone()))
        .collect();
    all_keys.push((ch.id.clone(), site.slc.clone()));
    let first = NotifierCommit {
        node: "node-a".into(),
        from: mark(store, EventId(0)).await,
        to: head,
        states: states.clone(),
        outbox: vec![
            entry(&ch, "k1", Some(&site.slc), t(7)),
            entry(&other, "k2", None, t(7)),
        ],
        claim_until: None,
    };

    let nothing_written = || async {
        assert!(states_of(store, &all_keys).await.is_empty(), "no states");
        assert!(due_states(store, t(1_000_000), 100).await.is_empty());
        assert!(
            outbox_of(store, &alpha, OutboxFilter::All).await.is_empty(),
            "no outbox entries"
        );
    };
    let stale = NotifierCommit {
        from: mark(store, EventId(1)).await,
        ..first.clone()
    };
    assert!(!commit(store, &stale).await, "a stale position is refused");
    nothing_written().await;
    let intruder = NotifierCommit {
        node: "node-b".into(),
        ..first.clone()
    };
    assert!(
        !commit(store, &intruder).await,
        "a node without the lease is refused"
    );
    nothing_written().await;
    assert_eq!(
        leased(store, "node-a", t(1)).await,
        Some(EventId(0)),
        "the position did not move"
    );

    assert!(commit(store, &first).await, "the holder's step is written");
    assert_eq!(leased(store, "node-a", t(2)).await, Some(head));
    let mut expected = states.clone();
    expected.sort_by(|a, b| (&a.channel, &a.slc).cmp(&(&b.channel, &b.slc)));
    assert_eq!(
        states_of(store, &all_keys).await,
        expected,
        "every phase round-trips; a pair without a state has none"
    );
    let due_order = |states: &[NotificationState]| -> Vec<Option<Timestamp>> {
        states.iter().map(|s| s.due_at).collect()
    };
    assert_eq!(
        due_order(&due_states(store, t(200), 100).await),
        vec![Some(t(100)), Some(t(120)), Some(t(150)), Some(t(200))],
        "states due by t(200), earliest first"
    );
    assert_eq!(
        due_order(&due_states(store, t(1_000_000), 2).await),
        vec![Some(t(100)), Some(t(120))],
        "at most the limit"
    );
    assert!(due_states(store, t(99), 100).await.is_empty());
    let outbox = outbox_of(store, &alpha, OutboxFilter::All).await;
    assert_eq!(keys(&outbox), ["k2", "k1"], "newest first");
    let k1 = &outbox[1];
    assert_eq!(
        (
            &k1.channel,
            &k1.reseller,
            &k1.slc,
            k1.body.as_str(),
            k1.created_at
        ),
        (
            &ch.id,
            &alpha,
            &Some(site.slc.clone()),
            "{\"id\":\"k1\"}",
            t(7)
        )
    );
    assert_eq!(
        (
            k1.attempts,
            k1.next_attempt_at,
            &k1.last_error,
            k1.delivered_at,
            k1.failed_at
        ),
        (0, t(7), &None, None, None),
        "a new entry is pending, due when it was decided"
    );
    assert_eq!(outbox[0].slc, None);

    // The next step: Quiet deletes, a new phase replaces, a known key adds nothing.
    let updated = NotificationState {
        phase: Phase::Notified {
            health: Health::Critical,
            since: t(2),
            told_at: t(8),
            reminders: 0,
            changed: None,
            muted: false,
        },
        due_at: Some(t(400)),
        ..states[1].clone()
    };
    let quiet = NotificationState {
        phase: Phase::Quiet,
        due_at: None,
        ..states[0].clone()
    };
    let second = NotifierCommit {
        node: "node-a".into(),
        from: mark(store, head).await,
        to: head,
        states: vec![quiet, updated.clone()],
        outbox: vec![
            NewOutboxEntry {
                body: "another body".into(),
                created_at: t(8),
                ..entry(&ch, "k1", Some(&site.slc), t(8))
            },
            entry(&ch, "k3", Some(&site.slc), t(8)),
        ],
        claim_until: None,
    };
    assert!(commit(store, &second).await);
    let mut expected: Vec<NotificationState> = std::iter::once(updated)
        .chain(states[2..].iter().cloned())
        .collect();
    expected.sort_by(|a, b| (&a.channel, &a.slc).cmp(&(&b.channel, &b.slc)));
    assert_eq!(states_of(store, &all_keys).await, expected);
    let outbox = outbox_of(store, &alpha, OutboxFilter::All).await;
    assert_eq!(keys(&outbox), ["k3", "k2", "k1"], "k1 once");
    assert_eq!(outbox[2].body, "{\"id\":\"k1\"}", "the first k1 kept as is");
    assert!(
        !commit(store, &first).await,
        "a step replayed from an old position is refused"
    );
    assert_eq!(outbox_of(store, &alpha, OutboxFilter::All).await.len(), 3);

    enqueue(
        store,
        &[
            entry(&ch, "k2", None, t(9)),
            entry(&ch, "test-1", None, t(9)),
        ],
    )
    .await;
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::All).await),
        ["test-1", "k3", "k2", "k1"],
        "an enqueued known key adds nothing either"
    );
}

/// The facade end to end: a channel made by a reseller admin; an
/// installation turning Critical is told once, after the hold, in one
/// "problem" notification naming it; its recovery once, after the hold, in
/// one "resolved"; a flap shorter than the hold queues nothing; another
/// reseller's installation never reaches the channel.
pub(crate) async fn notifications_follow_health_changes_once_after_the_hold(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let theirs = fx.site("beta", "M02-C01-0001").await;
    let admin = member(&fx, &alpha, "admin@alpha.example", Role::Admin, START).await;
    let (record, secret) = fx
        .carewatch
        .create_channel(
            &admin,
            "On call",
            Destination::Webhook {
                url: "https://hooks.example.net/carewatch".into(),
            },
            ChannelRules::default(),
        )
        .await
        .expect("alpha's admin creates a channel");
    assert!(secret.is_some(), "a webhook's signing secret, shown once");
    let views = fx.carewatch.channels(&alpha).await.expect("channels");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].record, record);
    assert_eq!(views[0].destination, "webhook to hooks.example.net");

    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let step = |what: &'static str| {
        let carewatch = fx.carewatch.clone();
        async move {
            carewatch
                .notify_step()
                .await
                .unwrap_or_else(|e| panic!("notifier step ({what}): {e}"))
        }
    };
    let entries = || async { outbox_of(&fx.store, &alpha, OutboxFilter::All).await };

    report(&fx, &site, "rs-1", 1, &[]).await;
    report(&fx, &theirs, "rs-1", 1, &full).await;
    let first = step("healthy").await;
    assert!(first.leader, "the only node holds the lease");
    assert_eq!(first.queued, 0);

    report(&fx, &site, "rs-1", 2, &full).await;
    assert_eq!(step("critical").await.queued, 0, "held");
    fx.advance(secs(60));
    assert_eq!(step("critical for 60 s").await.queued, 0, "held");
    fx.advance(secs(61));
    assert_eq!(step("critical for 121 s").await.queued, 1);
    let told = entries().await;
    assert_eq!(told.len(), 1, "one notification: {:?}", keys(&told));
    let problem = &told[0];
    assert_eq!(
        (&problem.channel, &problem.slc, &problem.reseller),
        (&record.id, &Some(site.slc.clone()), &alpha)
    );
    let body = Notification::from_json(&problem.body).expect("the body is the JSON notification");
    assert_eq!(body.schema, SCHEMA);
    assert_eq!(body.kind, "problem");
    assert_eq!(body.id, problem.key, "the idempotency key is in the body");
    let installation = body.installation.expect("names the installation");
    assert_eq!(installation.slc, site.slc.as_str());
    assert_eq!(installation.health, "critical");
    assert_eq!(
        installation.worst_condition.as_deref(),
        Some("STORAGE_FULL")
    );
    fx.advance(secs(600));
    assert_eq!(step("still critical").await.queued, 0, "no reminders asked");
    assert_eq!(entries().await.len(), 1);

    report(&fx, &site, "rs-1", 3, &[]).await;
    assert_eq!(step("recovered").await.queued, 0, "held");
    fx.advance(secs(121));
    assert_eq!(step("recovered for 121 s").await.queued, 1);
    let told = entries().await;
    assert_eq!(told.len(), 2);
    let resolved = Notification::from_json(&told[0].body).expect("JSON");
    assert_eq!(resolved.kind, "resolved");
    assert_eq!(
        resolved.resolved.expect("the problem it ends").was,
        "critical"
    );
    assert_eq!(
        resolved.installation.expect("names it").slc,
        site.slc.as_str()
    );
    fx.advance(secs(600));
    assert_eq!(step("healthy again").await.queued, 0);

    // A flap shorter than the hold.
    report(&fx, &site, "rs-1", 4, &full).await;
    assert_eq!(step("flap").await.queued, 0);
    fx.advance(secs(30));
    assert_eq!(step("flap for 30 s").await.queued, 0);
    report(&fx, &site, "rs-1", 5, &[]).await;
    assert_eq!(step("flap over").await.queued, 0);
    fx.advance(secs(300));
    assert_eq!(step("after the flap").await.queued, 0);
    assert_eq!(entries().await.len(), 2, "a flap sends nothing");
    assert!(
        outbox_of(&fx.store, &beta, OutboxFilter::All)
            .await
            .is_empty(),
        "beta has no channel: its critical installation notifies nobody"
    );
}

/// A notifier behind the feed (its steps failing, its lease moving to
/// another node) still tells a problem that held and ended within its
/// backlog, then its "resolved". It applied the backlog's changes first and
/// looked at the time once, at the end: the problem went from pending to
/// quiet untold.
pub(crate) async fn a_problem_that_held_and_ended_in_a_backlog_is_still_told(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let (alpha, a) = one_site_on_call(&fx, ChannelRules::default()).await;
    let settle = || settle(&fx);
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &a, "rs-1", 1, &full).await;
    // No step for 200 s: the problem held (2 minutes), then ended.
    fx.advance(secs(200));
    report(&fx, &a, "rs-1", 2, &[]).await;
    fx.advance(secs(1));
    assert_eq!(settle().await, 1, "the problem, told late");
    fx.advance(secs(121));
    assert_eq!(settle().await, 1, "its resolved");
    assert_eq!(
        told_kinds(&fx.store, &alpha).await,
        ["resolved", "problem"],
        "newest first"
    );
}

/// A notifier behind the feed by more than a step's events judges holds as
/// of the events it has read, not as of now: a flap shorter than the hold
/// whose start ends one step's read and whose end begins the next tells
/// nothing, as it tells nothing when both are read together.
pub(crate) async fn a_flap_split_across_a_backlogs_steps_tells_nothing(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let busy = fx.site("beta", "M02-C01-0001").await;
    on_call(&fx, &alpha, ChannelRules::default()).await;
    report(&fx, &a, "rs-1", 1, &[]).await;
    assert_eq!(settle(&fx).await, 0);

    // No step for ten minutes: a turns Critical, another reseller's site
    // fills more than a step's worth of the feed, a recovers 30 s after.
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &a, "rs-1", 2, &full).await;
    let critical = fx.store.latest_change().await.expect("feed head");
    let mut server = 0;
    while fx.store.latest_change().await.expect("feed head").0 < critical.0 + 600 {
        server += 1;
        fx.heartbeat(&busy, &format!("rs-{server}"), 1)
            .await
            .expect("a busy site's heartbeat");
    }
    fx.advance(secs(30));
    report(&fx, &a, "rs-1", 3, &[]).await;
    fx.advance(secs(570));

    let first = fx.carewatch.notify_step().await.expect("the first step");
    assert!(first.more, "it stopped at the event limit");
    assert_eq!(first.queued, 0, "a's problem had not held when last read");
    assert_eq!(
        settle(&fx).await,
        0,
        "the flap, read in full, tells nothing"
    );
    fx.advance(secs(600));
    assert_eq!(settle(&fx).await, 0, "nor later");
    assert!(told_kinds(&fx.store, &alpha).await.is_empty());
}

/// Carewatch's own downtime does not count toward a hold: an installation
/// that turned Critical 20 s before a ten-minute stop and recovered during
/// it (told at the restart) was watched unhealthy for 20 s of the 2-minute
/// hold, so its problem and the "resolved" after it are never told.
pub(crate) async fn own_downtime_does_not_count_toward_a_hold(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let clock = std::sync::Arc::new(crate::time::ManualClock::new(START));
    let master_key = crate::seal::MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    let (alpha, a) = one_site_on_call(&fx, ChannelRules::default()).await;
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &a, "rs-1", 1, &full).await;
    assert_eq!(settle(&fx).await, 0, "held");
    keep_alive(&fx, secs(20)).await;
    assert_eq!(settle(&fx).await, 0, "held");

    drop(fx);
    clock.advance(secs(600));
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key).await;
    assert_eq!(settle(&fx).await, 0, "watched Critical for 20 s of 120");
    report(&fx, &a, "rs-1", 2, &[]).await;
    assert_eq!(settle(&fx).await, 0);
    fx.advance(secs(600));
    assert_eq!(settle(&fx).await, 0, "a flap, as Carewatch watched it");
    assert!(told_kinds(&fx.store, &alpha).await.is_empty());

    // A problem that begins after the restart holds as usual.
    report(&fx, &a, "rs-1", 3, &full).await;
    fx.advance(secs(121));
    assert_eq!(settle(&fx).await, 1);
    assert_eq!(told_kinds(&fx.store, &alpha).await, ["problem"]);
}

/// A node that stops cleanly releases the notifier lease: another node
/// takes it at once instead of after it runs out, from the same position;
/// a node that does not hold it releases nothing.
pub(crate) async fn a_released_notifier_lease_is_taken_at_once(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let other = db.open().await;
    let _ = fx.site("alpha", "M01-C01-0001").await;
    let head = store.latest_change().await.expect("feed head");
    assert_eq!(leased(store, "node-a", t(0)).await, Some(EventId(0)));
    let step = NotifierCommit {
        node: "node-a".into(),
        from: mark(store, EventId(0)).await,
        to: head,
        states: Vec::new(),
        outbox: Vec::new(),
        claim_until: None,
    };
    assert!(commit(store, &step).await);
    let release = |store: &std::sync::Arc<dyn crate::store::Store>, node: &'static str| {
        let store = store.clone();
        async move {
            store
                .release_notifier_lease(node)
                .await
                .unwrap_or_else(|e| panic!("{node} releasing the lease: {e}"))
        }
    };
    assert!(!release(&other, "node-b").await, "node-b does not hold it");
    assert_eq!(lease(&other, "node-b", t(1)).await, None, "still node-a's");
    assert!(release(store, "node-a").await, "node-a held it");
    assert_eq!(
        leased(&other, "node-b", t(2)).await,
        Some(head),
        "taken at once, from where node-a left off"
    );
    assert!(
        !commit(
            store,
            &NotifierCommit {
                from: mark(store, head).await,
                ..step
            }
        )
        .await,
        "node-a commits nothing after its release"
    );
    assert_eq!(
        store.notifier_position().await.expect("position").position,
        head,
        "the position stays"
    );
}
