//! Notifications: a reseller's channels and maintenance windows, the
//! notifier's lease and its conditional, atomic steps, the outbox's claims
//! and outcomes (storage guarantees, on the store), and the facade deriving
//! notifications from health changes end to end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::team::member;
use super::{refused, report, reseller_id, secs, slc, t};
use crate::catalogue::ConditionCode;
use crate::error::{Error, Result};
use crate::feed::EventId;
use crate::health::Health;
use crate::ids::{ResellerId, Slc};
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::notification::payload::{Notification, SCHEMA};
use crate::notification::rules::Phase;
use crate::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryOutcome, DeliveryStatus, Destination,
    FAILING_AFTER, NewOutboxEntry, NotificationState, NotifierCommit, OutboxEntry, OutboxFilter,
};
use crate::store::Store;
use crate::team::{Login, Role};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::time::Timestamp;

/// How long claims and the notifier lease last in these tests.
const LEASE: Duration = Duration::from_secs(30);

fn channel_id(n: u64) -> ChannelId {
    ChannelId::new(&format!("{n:016x}")).expect("valid channel id")
}

fn window_id(n: u64) -> WindowId {
    WindowId::new(&format!("{n:016x}")).expect("valid window id")
}

fn login(text: &str) -> Login {
    Login::new(text).expect("valid login")
}

/// A channel record as the facade would store it (the sealed part is
/// opaque to the store).
pub(super) fn channel(n: u64, reseller: &ResellerId, created_at: Timestamp) -> ChannelRecord {
    ChannelRecord {
        id: channel_id(n),
        reseller: reseller.clone(),
        name: format!("channel {n}"),
        kind: "webhook".into(),
        sealed: format!("sealed destination {n}\0\u{1}").into_bytes(),
        rules: ChannelRules::default(),
        created_at,
        created_by: login(&format!("admin@{reseller}.example")),
        status: DeliveryStatus::default(),
    }
}

pub(super) async fn create_channel(store: &Arc<dyn Store>, record: &ChannelRecord) {
    store
        .create_channel(record)
        .await
        .unwrap_or_else(|e| panic!("creating channel {}: {e}", record.id));
}

async fn channels_of(store: &Arc<dyn Store>, reseller: Option<&ResellerId>) -> Vec<ChannelRecord> {
    store
        .channels(reseller)
        .await
        .unwrap_or_else(|e| panic!("channels of {reseller:?}: {e}"))
}

/// A channel as stored now, which must be there.
async fn stored_channel(store: &Arc<dyn Store>, id: &ChannelId) -> ChannelRecord {
    channels_of(store, None)
        .await
        .into_iter()
        .find(|c| c.id == *id)
        .unwrap_or_else(|| panic!("channel {id} is not stored"))
}

/// An outbox entry for `channel` with idempotency key `key`.
pub(super) fn entry(
    channel: &ChannelRecord,
    key: &str,
    slc: Option<&Slc>,
    at: Timestamp,
) -> NewOutboxEntry {
    NewOutboxEntry {
        channel: channel.id.clone(),
        reseller: channel.reseller.clone(),
        slc: slc.cloned(),
        key: key.into(),
        body: format!("{{\"id\":\"{key}\"}}"),
        created_at: at,
    }
}

pub(super) async fn enqueue(store: &Arc<dyn Store>, entries: &[NewOutboxEntry]) {
    store
        .enqueue_notifications(entries)
        .await
        .unwrap_or_else(|e| panic!("enqueueing {} entries: {e}", entries.len()));
}

async fn outbox_of(
    store: &Arc<dyn Store>,
    reseller: &ResellerId,
    filter: OutboxFilter,
) -> Vec<OutboxEntry> {
    store
        .outbox(reseller, filter, 500)
        .await
        .unwrap_or_else(|e| panic!("outbox of {reseller} ({filter:?}): {e}"))
}

/// An entry of the reseller's outbox by key, which must be there.
async fn outbox_entry(store: &Arc<dyn Store>, reseller: &ResellerId, key: &str) -> OutboxEntry {
    outbox_of(store, reseller, OutboxFilter::All)
        .await
        .into_iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no outbox entry {key:?} for {reseller}"))
}

fn keys(entries: &[OutboxEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

async fn claim(store: &Arc<dyn Store>, node: &str, now: Timestamp, limit: u32) -> Vec<OutboxEntry> {
    let claimed = store
        .claim_deliveries(node, now, LEASE, limit)
        .await
        .unwrap_or_else(|e| panic!("{node} claiming at {now}: {e}"));
    assert!(
        claimed.len() <= limit as usize,
        "{node} claimed {} entries, more than its limit {limit}",
        claimed.len()
    );
    assert!(
        claimed
            .windows(2)
            .all(|w| (w[0].next_attempt_at, w[0].id) < (w[1].next_attempt_at, w[1].id)),
        "claims come oldest first: {:?}",
        keys(&claimed)
    );
    claimed
}

async fn finish(
    store: &Arc<dyn Store>,
    entry: &OutboxEntry,
    node: &str,
    outcome: DeliveryOutcome,
    at: Timestamp,
) {
    store
        .finish_delivery(entry.id, node, &outcome, at)
        .await
        .unwrap_or_else(|e| panic!("{node} finishing {}: {e}", entry.key));
}

async fn lease(store: &Arc<dyn Store>, node: &str, now: Timestamp) -> Option<EventId> {
    store
        .notifier_lease(node, now, LEASE)
        .await
        .unwrap_or_else(|e| panic!("{node} asking for the notifier lease at {now}: {e}"))
}

async fn commit(store: &Arc<dyn Store>, commit: &NotifierCommit) -> bool {
    store
        .commit_notifications(commit)
        .await
        .unwrap_or_else(|e| panic!("{} committing a notifier step: {e}", commit.node))
}

async fn states_of(store: &Arc<dyn Store>, keys: &[(ChannelId, Slc)]) -> Vec<NotificationState> {
    let mut states = store
        .notification_states(keys)
        .await
        .unwrap_or_else(|e| panic!("reading notification states: {e}"));
    states.sort_by(|a, b| (&a.channel, &a.slc).cmp(&(&b.channel, &b.slc)));
    states
}

async fn due_states(store: &Arc<dyn Store>, now: Timestamp, limit: u32) -> Vec<NotificationState> {
    store
        .due_notification_states(now, limit)
        .await
        .unwrap_or_else(|e| panic!("reading due notification states: {e}"))
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    let err = refused(result, what);
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{what}: expected NotFound, got {err:?}"
    );
}

/// A maintenance window.
pub(super) fn window(
    n: u64,
    reseller: &ResellerId,
    slc: Option<&Slc>,
    starts_at: Timestamp,
    length: Duration,
    every: Option<Duration>,
) -> MaintenanceWindow {
    MaintenanceWindow {
        id: window_id(n),
        reseller: reseller.clone(),
        slc: slc.cloned(),
        starts_at,
        length,
        every,
        reason: format!("window {n}: firmware update"),
        created_by: login(&format!("admin@{reseller}.example")),
        created_at: START,
    }
}

async fn windows_of(
    store: &Arc<dyn Store>,
    reseller: Option<&ResellerId>,
) -> Vec<MaintenanceWindow> {
    let mut windows = store
        .maintenance_windows(reseller)
        .await
        .unwrap_or_else(|e| panic!("maintenance windows of {reseller:?}: {e}"));
    windows.sort_by(|a, b| a.id.cmp(&b.id));
    windows
}

/// Channels and maintenance windows belong to one reseller: listed per
/// reseller (channels by creation) or all together, round-tripping every
/// field; another reseller's is NotFound to delete; a window on another
/// reseller's (or an unregistered) installation is NotFound, and so is
/// anything for a missing reseller.
pub(crate) async fn channels_and_maintenance_windows_are_per_reseller(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let a_site = fx.site("alpha", "M01-C01-0001").await;
    let b_site = fx.site("beta", "M02-C01-0001").await;

    let mut a1 = channel(1, &alpha, t(10));
    a1.kind = "email".into();
    a1.rules = ChannelRules {
        attention: true,
        installations: Some(vec![a_site.slc.clone(), slc("M01-C01-0009")]),
        hold: secs(300),
        reminder: Some(secs(3600)),
    };
    let b1 = channel(2, &beta, t(15));
    let mut a2 = channel(3, &alpha, t(20));
    a2.rules.installations = Some(Vec::new());
    for record in [&a1, &b1, &a2] {
        create_channel(store, record).await;
    }
    assert_eq!(
        channels_of(store, Some(&alpha)).await,
        vec![a1.clone(), a2.clone()],
        "alpha's channels, by creation, every field as stored"
    );
    assert_eq!(channels_of(store, Some(&beta)).await, vec![b1.clone()]);
    assert_eq!(
        channels_of(store, None).await,
        vec![a1.clone(), b1.clone(), a2.clone()],
        "every reseller's channels, by creation"
    );
    assert_not_found(
        store
            .create_channel(&channel(4, &reseller_id("nobody"), t(30)))
            .await,
        "a channel of a missing reseller",
    );
    let _ = refused(
        store.create_channel(&channel(1, &alpha, t(40))).await,
        "a second channel with a taken id",
    );
    assert_eq!(channels_of(store, None).await.len(), 3, "nothing added");

    assert_not_found(
        store.delete_channel(&beta, &a1.id, t(50)).await,
        "beta deleting alpha's channel",
    );
    assert_eq!(
        channels_of(store, Some(&alpha)).await,
        vec![a1.clone(), a2.clone()]
    );
    store
        .delete_channel(&alpha, &a1.id, t(50))
        .await
        .expect("alpha deletes its channel");
    assert_eq!(channels_of(store, Some(&alpha)).await, vec![a2.clone()]);
    assert_not_found(
        store.delete_channel(&alpha, &a1.id, t(51)).await,
        "deleting it again",
    );

    let all = window(1, &alpha, None, t(3600), secs(3600), Some(secs(7 * 86_400)));
    let one = window(2, &alpha, Some(&a_site.slc), t(600), secs(600), None);
    let theirs = window(3, &beta, Some(&b_site.slc), t(600), secs(900), None);
    for w in [&all, &one, &theirs] {
        store
            .create_maintenance(w)
            .await
            .unwrap_or_else(|e| panic!("creating window {}: {e}", w.id));
    }
    assert_not_found(
        store
            .create_maintenance(&window(4, &alpha, Some(&b_site.slc), t(0), secs(60), None))
            .await,
        "alpha muting beta's installation",
    );
    assert_not_found(
        store
            .create_maintenance(&window(
                5,
                &alpha,
                Some(&slc("M09-C09-0009")),
                t(0),
                secs(60),
                None,
            ))
            .await,
        "muting an unregistered installation",
    );
    assert_not_found(
        store
            .create_maintenance(&window(
                6,
                &reseller_id("nobody"),
                None,
                t(0),
                secs(60),
                None,
            ))
            .await,
        "a window of a missing reseller",
    );
    assert_eq!(
        windows_of(store, Some(&alpha)).await,
        vec![all.clone(), one.clone()],
        "alpha's windows, every field as stored"
    );
    assert_eq!(windows_of(store, Some(&beta)).await, vec![theirs.clone()]);
    assert_eq!(
        windows_of(store, None).await,
        vec![all.clone(), one.clone(), theirs.clone()]
    );
    assert_not_found(
        store.delete_maintenance(&beta, &one.id).await,
        "beta deleting alpha's window",
    );
    store
        .delete_maintenance(&alpha, &one.id)
        .await
        .expect("alpha deletes its window");
    assert_not_found(
        store.delete_maintenance(&alpha, &one.id).await,
        "deleting it again",
    );
    assert_eq!(windows_of(store, Some(&alpha)).await, vec![all.clone()]);

    // Through the facade, for an admin of alpha.
    let admin = member(&fx, &alpha, "admin@alpha.example", Role::Admin, START).await;
    assert_not_found(
        fx.carewatch
            .create_maintenance(&admin, Some(&b_site.slc), t(0), secs(600), None, "x")
            .await,
        "alpha's admin muting beta's installation",
    );
    let made = fx
        .carewatch
        .create_maintenance(
            &admin,
            Some(&a_site.slc),
            t(0),
            secs(600),
            None,
            "disk swap",
        )
        .await
        .expect("alpha's admin mutes its installation");
    assert!(
        fx.carewatch
            .maintenance_windows(&alpha)
            .await
            .expect("alpha's windows")
            .contains(&made)
    );
}

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
        lease(store, "node-a", t(0)).await,
        Some(EventId(0)),
        "a free lease, on a new database at the start of the feed"
    );
    assert_eq!(lease(&other, "node-b", t(10)).await, None, "held by node-a");
    assert_eq!(
        lease(store, "node-a", t(20)).await,
        Some(EventId(0)),
        "renewed by its holder, until t(50)"
    );
    assert_eq!(lease(&other, "node-b", t(49)).await, None, "renewed");
    assert_eq!(
        lease(&other, "node-b", t(51)).await,
        Some(EventId(0)),
        "taken over once expired"
    );
    assert_eq!(lease(store, "node-a", t(52)).await, None, "now node-b's");

    let _ = fx.site("alpha", "M01-C01-0001").await;
    let head = store.latest_change().await.expect("feed head");
    assert!(head.0 > 0);
    let step = |node: &str| NotifierCommit {
        node: node.into(),
        from: EventId(0),
        to: head,
        states: Vec::new(),
        outbox: Vec::new(),
    };
    assert!(
        !commit(store, &step("node-a")).await,
        "a node that lost the lease commits nothing"
    );
    assert_eq!(lease(&other, "node-b", t(53)).await, Some(EventId(0)));
    assert!(commit(&other, &step("node-b")).await, "the holder commits");
    assert_eq!(
        lease(&other, "node-b", t(54)).await,
        Some(head),
        "the committed position"
    );
    assert_eq!(
        lease(store, "node-a", t(54).saturating_add(LEASE + secs(1))).await,
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
    assert_eq!(lease(store, "node-a", t(0)).await, Some(EventId(0)));

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
        from: EventId(0),
        to: head,
        states: states.clone(),
        outbox: vec![
            entry(&ch, "k1", Some(&site.slc), t(7)),
            entry(&other, "k2", None, t(7)),
        ],
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
        from: EventId(1),
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
        lease(store, "node-a", t(1)).await,
        Some(EventId(0)),
        "the position did not move"
    );

    assert!(commit(store, &first).await, "the holder's step is written");
    assert_eq!(lease(store, "node-a", t(2)).await, Some(head));
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
        from: head,
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

/// Several nodes claiming at once take different entries, oldest first;
/// nothing is claimed twice while a claim lasts; an expired claim (a node
/// that died mid-send) is claimable again.
pub(crate) async fn deliveries_are_claimed_by_one_node_at_a_time(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let second = db.open().await;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    let all: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
    for (i, key) in all.iter().enumerate() {
        enqueue(store, &[entry(&ch, key, None, t(i as u64))]).await;
    }
    let now = t(100);
    assert!(
        claim(
            store,
            "node-0",
            Timestamp::from_millis(t(0).as_millis() - 1000),
            10
        )
        .await
        .is_empty(),
        "nothing is due before it was decided"
    );

    let first = claim(store, "node-1", now, 2).await;
    assert_eq!(keys(&first), ["e00", "e01"], "oldest first");
    let (a, b, c, d) = tokio::join!(
        claim(store, "node-1", now, 3),
        claim(&second, "node-2", now, 3),
        claim(store, "node-3", now, 3),
        claim(&second, "node-4", now, 3),
    );
    let mut claimed: Vec<&str> = Vec::new();
    for batch in [&first, &a, &b, &c, &d] {
        claimed.extend(keys(batch));
    }
    let distinct: BTreeSet<&str> = claimed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "an entry claimed by two nodes at once: {claimed:?}"
    );
    assert_eq!(
        distinct,
        all.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "with room for all, every entry is claimed"
    );
    assert!(
        claim(&second, "node-5", now.saturating_add(LEASE - secs(1)), 100)
            .await
            .is_empty(),
        "nothing while the claims last"
    );
    assert!(
        outbox_of(store, &alpha, OutboxFilter::Pending).await.len() == 12,
        "claimed entries are still pending"
    );
    let retaken = claim(&second, "node-5", now.saturating_add(LEASE + secs(1)), 100).await;
    assert_eq!(
        keys(&retaken),
        all.iter().map(String::as_str).collect::<Vec<_>>(),
        "expired claims are claimable again, oldest first"
    );
}

/// Only the node that claims an entry records how its attempt ended, and
/// only once: a node that lost its claim changes nothing; delivered and
/// failed entries are never claimed again; a retry counts the attempt and
/// waits for its time; the channel's delivery status follows (failures in
/// a row, reset by a delivery, flagged after [`FAILING_AFTER`]).
pub(crate) async fn delivery_outcomes_are_recorded_once_by_the_claiming_node(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    for i in 0..4 {
        enqueue(store, &[entry(&ch, &format!("e{i}"), None, t(i))]).await;
    }
    assert_eq!(claim(store, "node-1", t(10), 10).await.len(), 4);
    // node-1 stalls past its claims; node-2 takes over.
    let entries = claim(store, "node-2", t(10).saturating_add(LEASE + secs(1)), 10).await;
    assert_eq!(keys(&entries), ["e0", "e1", "e2", "e3"]);
    let at = t(10).saturating_add(LEASE + secs(2));
    let before = outbox_of(store, &alpha, OutboxFilter::All).await;
    finish(store, &entries[0], "node-1", DeliveryOutcome::Delivered, at).await;
    finish(
        store,
        &entries[1],
        "node-1",
        DeliveryOutcome::Failed {
            error: "HTTP 410".into(),
        },
        at,
    )
    .await;
    assert_eq!(
        outbox_of(store, &alpha, OutboxFilter::All).await,
        before,
        "a node that lost its claim changes nothing"
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus::default()
    );

    finish(store, &entries[0], "node-2", DeliveryOutcome::Delivered, at).await;
    let e0 = outbox_entry(store, &alpha, "e0").await;
    assert_eq!(
        (e0.attempts, e0.delivered_at, e0.failed_at, &e0.last_error),
        (1, Some(at), None, &None)
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: None,
            failures_in_a_row: 0,
        }
    );
    let retry_at = at.saturating_add(secs(60));
    let refusal = "HTTP 503 from hooks.example.net";
    finish(
        store,
        &entries[1],
        "node-2",
        DeliveryOutcome::Retry {
            at: retry_at,
            error: refusal.into(),
        },
        at.saturating_add(secs(1)),
    )
    .await;
    let e1 = outbox_entry(store, &alpha, "e1").await;
    assert_eq!(
        (
            e1.attempts,
            e1.next_attempt_at,
            e1.delivered_at,
            e1.failed_at,
            e1.last_error.as_deref()
        ),
        (1, retry_at, None, None, Some(refusal)),
        "a retry counts the attempt and moves the next one"
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at.saturating_add(secs(1))),
            last_error: Some(refusal.into()),
            failures_in_a_row: 1,
        }
    );
    finish(
        store,
        &entries[2],
        "node-2",
        DeliveryOutcome::Failed {
            error: "HTTP 410".into(),
        },
        at.saturating_add(secs(2)),
    )
    .await;
    let e2 = outbox_entry(store, &alpha, "e2").await;
    assert_eq!(
        (
            e2.attempts,
            e2.delivered_at,
            e2.failed_at,
            e2.last_error.as_deref()
        ),
        (1, None, Some(at.saturating_add(secs(2))), Some("HTTP 410")),
        "given up, kept with its error"
    );
    let status = stored_channel(store, &ch.id).await.status;
    assert_eq!(
        (status.failures_in_a_row, status.last_error.as_deref()),
        (2, Some("HTTP 410"))
    );

    // Once: a finished entry takes no second outcome.
    finish(
        store,
        &entries[0],
        "node-2",
        DeliveryOutcome::Failed {
            error: "late".into(),
        },
        at.saturating_add(secs(3)),
    )
    .await;
    finish(
        store,
        &entries[2],
        "node-2",
        DeliveryOutcome::Delivered,
        at.saturating_add(secs(3)),
    )
    .await;
    assert_eq!(outbox_entry(store, &alpha, "e0").await, e0);
    assert_eq!(outbox_entry(store, &alpha, "e2").await, e2);
    assert_eq!(stored_channel(store, &ch.id).await.status, status);

    // e3 is still node-2's; e1 waits for its time; e0 and e2 are done.
    assert!(
        claim(store, "node-3", at.saturating_add(secs(10)), 10)
            .await
            .is_empty()
    );
    let later = at.saturating_add(LEASE + secs(60));
    let again = claim(store, "node-3", later, 10).await;
    assert_eq!(
        keys(&again),
        ["e3", "e1"],
        "only e3 (its claim expired) and e1 (due again), by when they were due"
    );
    assert_eq!(again[1].attempts, 1);
    finish(
        store,
        &again[1],
        "node-3",
        DeliveryOutcome::Delivered,
        later,
    )
    .await;
    let e1 = outbox_entry(store, &alpha, "e1").await;
    assert_eq!(
        (e1.attempts, e1.delivered_at, e1.last_error.as_deref()),
        (2, Some(later), None)
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(later),
            last_error: None,
            failures_in_a_row: 0,
        },
        "a delivery resets the failures in a row"
    );

    // A channel that keeps failing is flagged (e3's claim by node-3 has
    // expired: it never finished it).
    let mut now = later.saturating_add(LEASE + secs(1));
    for n in 0..FAILING_AFTER {
        let claimed = claim(store, "node-3", now, 10).await;
        assert_eq!(keys(&claimed), ["e3"]);
        assert_eq!(claimed[0].attempts, n);
        finish(
            store,
            &claimed[0],
            "node-3",
            DeliveryOutcome::Retry {
                at: now,
                error: format!("attempt {n} timed out"),
            },
            now,
        )
        .await;
        now = now.saturating_add(secs(1));
    }
    let status = stored_channel(store, &ch.id).await.status;
    assert_eq!(status.failures_in_a_row, FAILING_AFTER);
    assert!(status.failing());
    assert_eq!(
        outbox_entry(store, &alpha, "e3").await.attempts,
        FAILING_AFTER
    );
}

/// Outcomes recorded as a batch (one write) leave the outbox and the
/// channels exactly as the same outcomes recorded one by one: a duplicate
/// and an entry the node no longer claims change nothing, failures in a row
/// reset by a delivery and carry on from what the channel had.
pub(crate) async fn a_batch_of_outcomes_is_recorded_as_one_by_one(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    // Channels 1 and 2 take the batch; 3 and 4 the same outcomes one by one.
    let channels: Vec<ChannelRecord> = (1..=4).map(|n| channel(n, &alpha, START)).collect();
    for ch in &channels {
        create_channel(store, ch).await;
    }
    let at = t(100);
    let retry = |error: &str| DeliveryOutcome::Retry {
        at: at.saturating_add(secs(60)),
        error: error.into(),
    };
    let failed = |error: &str| DeliveryOutcome::Failed {
        error: error.into(),
    };
    // Both worlds: a failure already counted on the second channel, and an
    // entry claimed by another node.
    for (world, first) in [("batch", 0), ("single", 2)] {
        let (a, b) = (&channels[first], &channels[first + 1]);
        enqueue(store, &[entry(b, &format!("{world}-pre"), None, t(1))]).await;
        let pre = claim(store, "node-1", t(2), 1).await;
        finish(store, &pre[0], "node-1", failed("earlier"), t(3)).await;
        enqueue(store, &[entry(a, &format!("{world}-lost"), None, t(4))]).await;
        assert_eq!(claim(store, "node-2", t(5), 1).await.len(), 1);
        let shapes = [
            (a, "e0"),
            (b, "e1"),
            (a, "e2"),
            (b, "e3"),
            (a, "e4"),
            (a, "e5"),
        ];
        for (n, (ch, key)) in shapes.iter().enumerate() {
            let at = t(10 + n as u64);
            enqueue(store, &[entry(ch, &format!("{world}-{key}"), None, at)]).await;
        }
    }
    let claimed = claim(store, "node-1", t(20), 20).await;
    assert_eq!(claimed.len(), 12, "{:?}", keys(&claimed));
    let id = |key: &str| {
        claimed
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.id)
            .unwrap_or_else(|| panic!("{key} claimed"))
    };
    let lost_ids = [
        outbox_entry(store, &alpha, "batch-lost").await.id,
        outbox_entry(store, &alpha, "single-lost").await.id,
    ];
    let sequence = |world: &str, lost_id: u64| {
        let key = |k: &str| id(&format!("{world}-{k}"));
        vec![
            (key("e0"), retry("503 once")),
            (key("e1"), failed("410 Gone")),
            (lost_id, DeliveryOutcome::Delivered),
            (key("e2"), failed("400 Bad Request")),
            (key("e0"), DeliveryOutcome::Delivered),
            (key("e4"), DeliveryOutcome::Delivered),
            (key("e5"), retry("timed out")),
            (key("e3"), retry("connection refused")),
        ]
    };
    store
        .finish_deliveries("node-1", at, &sequence("batch", lost_ids[0]))
        .await
        .unwrap_or_else(|e| panic!("recording a batch of outcomes: {e}"));
    for (id, outcome) in sequence("single", lost_ids[1]) {
        store
            .finish_delivery(id, "node-1", &outcome, at)
            .await
            .unwrap_or_else(|e| panic!("recording outcome of {id}: {e}"));
    }

    let recorded = |e: OutboxEntry| {
        (
            e.attempts,
            e.next_attempt_at,
            e.delivered_at,
            e.failed_at,
            e.last_error,
        )
    };
    for key in ["pre", "lost", "e0", "e1", "e2", "e3", "e4", "e5"] {
        let batch = recorded(outbox_entry(store, &alpha, &format!("batch-{key}")).await);
        let single = recorded(outbox_entry(store, &alpha, &format!("single-{key}")).await);
        assert_eq!(batch, single, "entry {key}");
    }
    let e0 = outbox_entry(store, &alpha, "batch-e0").await;
    assert_eq!(
        (e0.attempts, e0.delivered_at, e0.last_error.as_deref()),
        (1, None, Some("503 once")),
        "the duplicate outcome changed nothing"
    );
    assert_eq!(
        outbox_entry(store, &alpha, "batch-lost").await.attempts,
        0,
        "another node's claim"
    );
    for (batch, single) in [(0, 2), (1, 3)] {
        assert_eq!(
            stored_channel(store, &channels[batch].id).await.status,
            stored_channel(store, &channels[single].id).await.status,
            "channel {}",
            batch + 1
        );
    }
    assert_eq!(
        stored_channel(store, &channels[0].id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: Some("timed out".into()),
            failures_in_a_row: 1,
        },
        "counted again from the delivery"
    );
    assert_eq!(
        stored_channel(store, &channels[1].id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: Some("connection refused".into()),
            failures_in_a_row: 3,
        },
        "carried on from the earlier failure"
    );
    // Nothing to record is nothing written.
    store
        .finish_deliveries("node-1", at, &[])
        .await
        .unwrap_or_else(|e| panic!("recording no outcome: {e}"));
}

/// A reseller's outbox lists only its own entries, newest first, at most
/// the limit, pending or failed ones on request.
pub(crate) async fn the_outbox_lists_a_resellers_entries_newest_first(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let ca = channel(1, &alpha, START);
    let cb = channel(2, &beta, START);
    create_channel(store, &ca).await;
    create_channel(store, &cb).await;
    for (i, (ch, key)) in [
        (&ca, "a0"),
        (&cb, "b0"),
        (&ca, "a1"),
        (&ca, "a2"),
        (&cb, "b1"),
    ]
    .into_iter()
    .enumerate()
    {
        enqueue(store, &[entry(ch, key, None, t(i as u64))]).await;
    }
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::All).await),
        ["a2", "a1", "a0"]
    );
    assert_eq!(
        keys(&outbox_of(store, &beta, OutboxFilter::All).await),
        ["b1", "b0"]
    );
    assert_eq!(
        keys(
            &store
                .outbox(&alpha, OutboxFilter::All, 2)
                .await
                .expect("outbox")
        ),
        ["a2", "a1"],
        "at most the limit, newest first"
    );
    assert!(
        outbox_of(store, &reseller_id("gamma"), OutboxFilter::All)
            .await
            .is_empty()
    );

    let claimed = claim(store, "node-1", t(10), 10).await;
    assert_eq!(claimed.len(), 5);
    let by_key = |key: &str| {
        claimed
            .iter()
            .find(|e| e.key == key)
            .expect("claimed")
            .clone()
    };
    finish(
        store,
        &by_key("a0"),
        "node-1",
        DeliveryOutcome::Delivered,
        t(11),
    )
    .await;
    finish(
        store,
        &by_key("a1"),
        "node-1",
        DeliveryOutcome::Failed {
            error: "HTTP 404".into(),
        },
        t(11),
    )
    .await;
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Pending).await),
        ["a2"]
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Failed).await),
        ["a1"]
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::All).await),
        ["a2", "a1", "a0"]
    );
    assert_eq!(
        keys(&outbox_of(store, &beta, OutboxFilter::Pending).await),
        ["b1", "b0"]
    );
    assert!(
        outbox_of(store, &beta, OutboxFilter::Failed)
            .await
            .is_empty()
    );
}

/// Deleting a channel deletes its states and gives up its pending entries
/// ("channel deleted", at the deletion), claimed or not; they stay listed,
/// are never claimed again, and a late outcome changes nothing. Delivered
/// entries and other channels' are untouched.
pub(crate) async fn deleting_a_channel_gives_up_its_pending_entries(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let x = channel(1, &alpha, START);
    let y = channel(2, &alpha, START.saturating_add(secs(1)));
    create_channel(store, &x).await;
    create_channel(store, &y).await;
    for (i, (ch, key)) in [(&x, "x0"), (&x, "x1"), (&x, "x2"), (&y, "y0")]
        .into_iter()
        .enumerate()
    {
        enqueue(store, &[entry(ch, key, Some(&site.slc), t(i as u64))]).await;
    }
    let claimed = claim(store, "node-1", t(10), 2).await;
    assert_eq!(keys(&claimed), ["x0", "x1"]);
    finish(
        store,
        &claimed[0],
        "node-1",
        DeliveryOutcome::Delivered,
        t(11),
    )
    .await;
    let x0 = outbox_entry(store, &alpha, "x0").await;
    let y0 = outbox_entry(store, &alpha, "y0").await;

    let from = lease(store, "node-1", t(12)).await.expect("the lease");
    let pending = |ch: &ChannelRecord| NotificationState {
        channel: ch.id.clone(),
        slc: site.slc.clone(),
        phase: Phase::Pending {
            health: Health::Critical,
            since: t(12),
            muted: false,
        },
        due_at: Some(t(100)),
    };
    let step = NotifierCommit {
        node: "node-1".into(),
        from,
        to: from,
        states: vec![pending(&x), pending(&y)],
        outbox: Vec::new(),
    };
    assert!(commit(store, &step).await);
    let pairs = [
        (x.id.clone(), site.slc.clone()),
        (y.id.clone(), site.slc.clone()),
    ];
    assert_eq!(states_of(store, &pairs).await.len(), 2);

    store
        .delete_channel(&alpha, &x.id, t(20))
        .await
        .expect("deleting channel x");
    assert_eq!(channels_of(store, Some(&alpha)).await, vec![y.clone()]);
    assert_eq!(
        states_of(store, &pairs).await,
        vec![pending(&y)],
        "its states go with it"
    );
    assert_eq!(due_states(store, t(1000), 10).await, vec![pending(&y)]);
    for key in ["x1", "x2"] {
        let given_up = outbox_entry(store, &alpha, key).await;
        assert_eq!(
            (
                given_up.failed_at,
                given_up.last_error.as_deref(),
                given_up.delivered_at
            ),
            (Some(t(20)), Some("channel deleted"), None),
            "{key}: pending, given up"
        );
    }
    assert_eq!(outbox_entry(store, &alpha, "x0").await, x0, "delivered");
    assert_eq!(
        outbox_entry(store, &alpha, "y0").await,
        y0,
        "another channel's"
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Failed).await),
        ["x2", "x1"]
    );
    assert_eq!(
        keys(&claim(store, "node-2", t(10).saturating_add(LEASE + secs(1)), 10).await),
        ["y0"],
        "given-up entries are never claimed"
    );
    finish(
        store,
        &claimed[1],
        "node-1",
        DeliveryOutcome::Delivered,
        t(21),
    )
    .await;
    assert_eq!(
        outbox_entry(store, &alpha, "x1").await.failed_at,
        Some(t(20)),
        "a late outcome changes nothing"
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

/// Maintenance through the facade: nothing is told during a window; a
/// problem whose hold passed during it is told once when it ends, as
/// "after_maintenance" (still unhealthy), and so is a problem told before a
/// window that is still there when the window ends.
pub(crate) async fn maintenance_mutes_notifications_until_it_ends(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("alpha", "M01-C01-0002").await;
    let admin = member(&fx, &alpha, "admin@alpha.example", Role::Admin, START).await;
    fx.carewatch
        .create_channel(
            &admin,
            "On call",
            Destination::Email {
                to: vec!["oncall@alpha.example".into()],
            },
            ChannelRules::default(),
        )
        .await
        .expect("a channel");
    let step = |what: &'static str| {
        let carewatch = fx.carewatch.clone();
        async move {
            carewatch
                .notify_step()
                .await
                .unwrap_or_else(|e| panic!("notifier step ({what}): {e}"))
                .queued
        }
    };
    let told = || async {
        outbox_of(&fx.store, &alpha, OutboxFilter::All)
            .await
            .iter()
            .map(|e| {
                let body = Notification::from_json(&e.body).expect("JSON");
                (
                    body.installation.expect("names it").slc,
                    body.kind,
                    e.created_at,
                )
            })
            .collect::<Vec<_>>()
    };
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let t0 = fx.carewatch.now();
    let at = |s: u64| t0.saturating_add(secs(s));
    let to = |s: u64| {
        let now = fx.carewatch.now();
        fx.advance(at(s).since(now));
    };
    let window_a = fx
        .carewatch
        .create_maintenance(&admin, Some(&a.slc), at(200), secs(600), None, "disk swap")
        .await
        .expect("a window over a");
    fx.carewatch
        .create_maintenance(&admin, Some(&b.slc), at(300), secs(600), None, "new switch")
        .await
        .expect("a window over b");

    report(&fx, &a, "rs-1", 1, &[]).await;
    report(&fx, &b, "rs-1", 1, &full).await;
    assert_eq!(step("b critical").await, 0);
    to(121);
    assert_eq!(
        step("b critical for 121 s").await,
        1,
        "b told before its window"
    );
    to(250);
    assert_eq!(
        fx.carewatch
            .maintenance_until(&alpha, &a.slc)
            .await
            .expect("maintenance of a"),
        Some(window_a.starts_at.saturating_add(window_a.length))
    );
    report(&fx, &a, "rs-1", 2, &full).await;
    for s in [250, 300, 400, 600, 799] {
        to(s);
        assert_eq!(step("during the windows").await, 0, "nothing at {s} s");
    }
    to(800);
    assert_eq!(step("a's window over").await, 1);
    to(850);
    assert_eq!(step("b's window still on").await, 0);
    to(900);
    assert_eq!(step("b's window over").await, 1);
    to(2000);
    assert_eq!(step("long after").await, 0);
    assert_eq!(
        told().await,
        vec![
            (b.slc.to_string(), "after_maintenance".to_owned(), at(900)),
            (a.slc.to_string(), "after_maintenance".to_owned(), at(800)),
            (b.slc.to_string(), "problem".to_owned(), at(121)),
        ],
        "newest first"
    );
}
