//! Notifications: a reseller's channels and maintenance windows, the
//! notifier's lease and its conditional, atomic steps, the outbox's claims
//! and outcomes (storage guarantees, on the store), and the facade deriving
//! notifications from health changes end to end.

mod channels;
mod deferred;
mod handover;
mod maintenance;
mod notifier;
mod outbox;
mod retention;
mod steps;

pub(crate) use channels::*;
pub(crate) use deferred::*;
pub(crate) use handover::*;
pub(crate) use maintenance::*;
pub(crate) use notifier::*;
pub(crate) use outbox::*;
pub(crate) use retention::*;
pub(crate) use steps::*;

use std::sync::Arc;
use std::time::Duration;

use super::refused;
use crate::error::{Error, Result};
use crate::feed::EventId;
use crate::ids::{ResellerId, Slc};
use crate::notification::maintenance::{MaintenanceWindow, WindowId};
use crate::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryOutcome, DeliveryStatus, NewOutboxEntry,
    NotificationState, NotifierCommit, NotifierMark, OutboxEntry, OutboxFilter,
};
use crate::store::Store;
use crate::team::Login;
use crate::testing::fixture::START;
use crate::time::Timestamp;

/// Reseller alpha and its site `M01-C01-0001`, told through a channel of
/// its admin's under `rules`.
pub(super) async fn one_site_on_call(
    fx: &crate::testing::fixture::Fixture,
    rules: ChannelRules,
) -> (ResellerId, crate::testing::fixture::Site) {
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    on_call(fx, &alpha, rules).await;
    (alpha, site)
}

/// An admin of `reseller` (`admin@<reseller>`) and its webhook channel
/// "on call" under `rules`: what the facade's tests notify through (the
/// notifier queues; nothing is sent).
pub(super) async fn on_call(
    fx: &crate::testing::fixture::Fixture,
    reseller: &ResellerId,
    rules: ChannelRules,
) -> (crate::team::User, ChannelRecord) {
    let admin = super::team::member(
        fx,
        reseller,
        &format!("admin@{reseller}"),
        crate::team::Role::Admin,
        START,
    )
    .await;
    let webhook = crate::notification::Destination::Webhook {
        url: "https://hooks.example.net/carewatch".into(),
    };
    let (channel, _) = fx
        .carewatch
        .create_channel(&admin, "on call", webhook, rules)
        .await
        .expect("a channel");
    (admin, channel)
}

/// Notifier steps until none says more waits; how many entries they queued.
async fn settle(fx: &crate::testing::fixture::Fixture) -> usize {
    let mut queued = 0;
    loop {
        let step = fx.carewatch.notify_step().await.expect("notifier step");
        queued += step.queued;
        if !step.more {
            return queued;
        }
    }
}

/// The kinds of `reseller`'s notifications, newest first.
async fn told_kinds(store: &Arc<dyn Store>, reseller: &ResellerId) -> Vec<String> {
    outbox_of(store, reseller, OutboxFilter::All)
        .await
        .iter()
        .map(|e| {
            crate::notification::payload::Notification::from_json(&e.body)
                .expect("JSON")
                .kind
        })
        .collect()
}

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
        first_attempt_at: at,
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

/// A step's start at feed position `position`, with the store's nudges as
/// they are now (a site's consent given, for one, nudges).
async fn mark(store: &Arc<dyn Store>, position: EventId) -> NotifierMark {
    let nudges = store
        .notifier_position()
        .await
        .unwrap_or_else(|e| panic!("reading where the notifier stands: {e}"))
        .nudges;
    NotifierMark { position, nudges }
}

/// The feed position at which `node` takes (or renews) the lease; `None`
/// if another node holds it.
async fn leased(store: &Arc<dyn Store>, node: &str, now: Timestamp) -> Option<EventId> {
    lease(store, node, now).await.map(|m| m.position)
}

async fn lease(store: &Arc<dyn Store>, node: &str, now: Timestamp) -> Option<NotifierMark> {
    store
        .notifier_lease(node, now, LEASE)
        .await
        .unwrap_or_else(|e| panic!("{node} asking for the notifier lease at {now}: {e}"))
}

async fn commit(store: &Arc<dyn Store>, commit: &NotifierCommit) -> bool {
    store
        .commit_notifications(commit.clone())
        .await
        .map(|committed| committed.written())
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
        deleted_at: None,
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
