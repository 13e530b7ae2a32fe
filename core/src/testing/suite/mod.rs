//! The conformance suite: one `pub async fn` per name in
//! [`store_conformance_tests!`](crate::store_conformance_tests), generated
//! from that macro's list and calling the `pub(crate)` test function of the
//! same name (a test function missing from the list is dead code).
//!
//! Each test takes its own database from [`TestBackend::fresh`](super::TestBackend::fresh).
//! Behaviours of the service (ingest, overview, sweep) are driven through the
//! [`Carewatch`] facade; storage guarantees (conditional writes, cursors,
//! downtime marks) are checked on the [`Store`](crate::store::Store) directly.
//!
//! The clock is a [`ManualClock`]: it moves only when a test moves it. Tests
//! call [`Carewatch::sweep`] rather than [`Carewatch::tick`], because a tick
//! also marks liveness and a clock jump longer than the liveness tolerance
//! (10 s in fixtures) between two marks is, correctly, recorded as the
//! service's own downtime. [`keep_alive`] ticks in small steps where a test needs the
//! service to have been running all along.

mod audit;
mod availability;
mod details;
mod durability;
mod feed;
mod forward;
mod ingest;
mod label_order;
mod labels;
mod large_batches;
mod lifecycle;
mod limits;
mod notifications;
mod reads;
mod registration;
mod report;
mod rotation;
mod sequences;
mod team;
mod transfer;

/// Every test function, `pub(crate)` where it is written, reached by name.
mod by_name {
    pub(super) use super::audit::*;
    pub(super) use super::availability::*;
    pub(super) use super::details::*;
    pub(super) use super::durability::*;
    pub(super) use super::feed::*;
    pub(super) use super::forward::*;
    pub(super) use super::ingest::*;
    pub(super) use super::label_order::*;
    pub(super) use super::labels::*;
    pub(super) use super::large_batches::*;
    pub(super) use super::lifecycle::*;
    pub(super) use super::limits::*;
    pub(super) use super::notifications::*;
    pub(super) use super::reads::*;
    pub(super) use super::registration::*;
    pub(super) use super::report::*;
    pub(super) use super::rotation::*;
    pub(super) use super::sequences::*;
    pub(super) use super::team::*;
    pub(super) use super::transfer::*;
}

// One `pub async fn` per name in the list, calling the test function of that
// name: the list is their only caller.
crate::__conformance_test_list!(__conformance_entry_points, by_name);

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::TestDatabase;
use super::fixture::{Fixture, INTERVAL, JITTER, START, Site, snapshot};
use crate::auth::{MessageDigest, SequenceCursor};
use crate::catalogue::ConditionCode;
use crate::condition::ConditionRecord;
use crate::error::{Error, Result};
use crate::feed::{Change, ChangeEvent};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::seal::{Binding, Envelope, InstallationKey, MasterKey, MessageKind};
use crate::service::{Carewatch, Config, IncomingMessage, IngestAck, WatchStream};
use crate::store::{
    HistoryEvent, HistoryKind, InstallationDetail, MAX_PAGE_SIZE, OverviewPage, OverviewQuery,
    ServerRecord, SignOfLife,
};
use crate::time::{ManualClock, Timestamp};

/// How long a watcher may wait for a change that must arrive.
const WATCH_DEADLINE: Duration = Duration::from_secs(1);
/// How long a watcher listens to be sure nothing arrives.
const WATCH_QUIET: Duration = Duration::from_millis(300);

/// `n` seconds.
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The instant `n` seconds after the fixture's start.
fn t(n: u64) -> Timestamp {
    START.saturating_add(secs(n))
}

/// A recording-server id.
fn rs(id: &str) -> RecordingServerId {
    RecordingServerId::new(id).expect("valid recording server id")
}

/// An SLC.
fn slc(text: &str) -> Slc {
    Slc::new(text).expect("valid SLC")
}

/// A reseller id.
fn reseller_id(id: &str) -> ResellerId {
    ResellerId::new(id).expect("valid reseller id")
}

/// The error of a call that must be refused.
#[track_caller]
fn refused<T: fmt::Debug>(result: Result<T>, what: &str) -> Error {
    match result {
        Ok(value) => panic!("{what}: expected a refusal, got Ok({value:?})"),
        Err(e) => e,
    }
}

/// A message sealed by hand, for refusals the fixture cannot produce.
fn sealed_msg(
    key: &InstallationKey,
    slc: &Slc,
    server: &str,
    kind: MessageKind,
    sequence: u64,
    plaintext: &[u8],
) -> IncomingMessage {
    let server = rs(server);
    let binding = Binding {
        slc,
        server: &server,
        kind,
        sequence,
    };
    IncomingMessage {
        slc: slc.clone(),
        server: server.clone(),
        kind,
        sequence,
        sealed: crate::seal::seal(key, &binding, plaintext),
    }
}

/// A correctly sealed heartbeat of `site`'s `server`.
fn heartbeat_msg(site: &Site, server: &str, sequence: u64) -> IncomingMessage {
    IncomingMessage::heartbeat(&site.key, &site.slc, &rs(server), sequence)
}

/// A correctly sealed status report of `site`'s `server`.
fn report_msg(
    site: &Site,
    server: &str,
    sequence: u64,
    conditions: &[(ConditionCode, &str, &str)],
) -> IncomingMessage {
    IncomingMessage::status_report(
        &site.key,
        &site.slc,
        &rs(server),
        sequence,
        &snapshot(conditions),
    )
}

/// The cursor a store must keep after accepting `message`.
fn cursor_of(message: &IncomingMessage) -> SequenceCursor {
    SequenceCursor {
        sequence: message.sequence,
        digest: MessageDigest::of(&Envelope::parse(&message.sealed).expect("a sealed message")),
    }
}

/// Ingests a message that must be accepted as new (not a retry).
async fn accept(fx: &Fixture, message: IncomingMessage, what: &str) -> IngestAck {
    let ack = fx
        .carewatch
        .ingest(message)
        .await
        .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    assert!(
        !ack.duplicate,
        "{what}: a new message was acknowledged as a duplicate"
    );
    assert_eq!(
        ack.received_at,
        fx.carewatch.now(),
        "{what}: the acknowledgement must carry the service clock's receipt time"
    );
    assert_eq!(
        ack.heartbeat_interval, INTERVAL,
        "{what}: the acknowledgement must carry the configured heartbeat interval"
    );
    ack
}

/// Sends a heartbeat that must be accepted as new.
async fn beat(fx: &Fixture, site: &Site, server: &str, sequence: u64) -> IngestAck {
    accept(
        fx,
        heartbeat_msg(site, server, sequence),
        &format!("heartbeat {sequence} of {server} ({})", site.slc),
    )
    .await
}

/// Sends a status report that must be accepted as new.
async fn report(
    fx: &Fixture,
    site: &Site,
    server: &str,
    sequence: u64,
    conditions: &[(ConditionCode, &str, &str)],
) -> IngestAck {
    accept(
        fx,
        report_msg(site, server, sequence, conditions),
        &format!("status report {sequence} of {server} ({})", site.slc),
    )
    .await
}

/// A sign of life built by hand for store-level tests; `tag` stands in for
/// the sealed bytes (same tag, same digest).
fn sign(slc: &Slc, server: &str, sequence: u64, tag: &str, received_at: Timestamp) -> SignOfLife {
    SignOfLife {
        slc: slc.clone(),
        server: rs(server),
        cursor: SequenceCursor {
            sequence,
            digest: MessageDigest::sha256(tag.as_bytes()),
        },
        received_at,
        interval: INTERVAL,
        next_check_at: received_at.saturating_add(INTERVAL + JITTER),
        missed_before: 0,
        remembered: None,
    }
}

/// The installation's detail as its reseller sees it.
async fn detail(fx: &Fixture, site: &Site) -> InstallationDetail {
    fx.carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .unwrap_or_else(|e| panic!("reading installation {}: {e}", site.slc))
}

/// One server of a detail, which must be there.
#[track_caller]
fn server<'a>(detail: &'a InstallationDetail, id: &str) -> &'a ServerRecord {
    detail
        .servers
        .iter()
        .find(|s| s.server.as_str() == id)
        .unwrap_or_else(|| {
            panic!(
                "installation {} has no recording server {id}; it has {:?}",
                detail.installation.slc,
                detail
                    .servers
                    .iter()
                    .map(|s| s.server.as_str())
                    .collect::<Vec<_>>()
            )
        })
}

/// One page holding every row of the reseller's overview.
async fn overview_all(fx: &Fixture, reseller: &ResellerId, include_healthy: bool) -> OverviewPage {
    let query = OverviewQuery {
        include_healthy,
        page_size: MAX_PAGE_SIZE,
        after: None,
        ..OverviewQuery::default()
    };
    fx.carewatch
        .overview(reseller, &query)
        .await
        .unwrap_or_else(|e| panic!("overview of {reseller}: {e}"))
}

/// What a refused message must leave unchanged: the installation's detail
/// and its reseller's whole overview.
async fn observable(fx: &Fixture, site: &Site) -> (InstallationDetail, OverviewPage) {
    (
        detail(fx, site).await,
        overview_all(fx, &site.reseller, true).await,
    )
}

/// A history event.
fn event(at: Timestamp, server: &str, kind: HistoryKind) -> HistoryEvent {
    HistoryEvent {
        at,
        server: rs(server),
        kind,
    }
}

/// Sorts events into a comparable order (events of one instant may be
/// listed in any order).
fn sorted_events(mut events: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
    events.sort_by_key(|e| (e.at, e.server.clone(), format!("{:?}", e.kind)));
    events
}

/// Checks the history is newest first and returns it in comparable order.
#[track_caller]
fn history_of(detail: &InstallationDetail) -> Vec<HistoryEvent> {
    assert!(
        detail.history.windows(2).all(|w| w[0].at >= w[1].at),
        "the history of {} must be newest first: {:#?}",
        detail.installation.slc,
        detail.history
    );
    sorted_events(detail.history.clone())
}

/// How many history events match.
fn count_history(detail: &InstallationDetail, matches: impl Fn(&HistoryKind) -> bool) -> usize {
    detail.history.iter().filter(|e| matches(&e.kind)).count()
}

/// Checks active conditions are oldest first and returns them in comparable
/// order (conditions opened at the same instant may be listed in any order).
#[track_caller]
fn conditions_of(detail: &InstallationDetail) -> Vec<ConditionRecord> {
    assert!(
        detail
            .active_conditions
            .windows(2)
            .all(|w| w[0].opened_at <= w[1].opened_at),
        "the active conditions of {} must be oldest first: {:#?}",
        detail.installation.slc,
        detail.active_conditions
    );
    assert!(
        detail
            .active_conditions
            .iter()
            .all(|c| c.resolved_at.is_none()),
        "an active condition of {} has a resolution time: {:#?}",
        detail.installation.slc,
        detail.active_conditions
    );
    let mut conditions = detail.active_conditions.clone();
    conditions.sort_by(|a, b| {
        (a.opened_at, &a.server, &a.code, &a.subject).cmp(&(
            b.opened_at,
            &b.server,
            &b.code,
            &b.subject,
        ))
    });
    conditions
}

/// An active condition as a store must keep it.
fn condition(
    server: &str,
    code: ConditionCode,
    subject: &str,
    detail: &str,
    opened_at: Timestamp,
) -> ConditionRecord {
    ConditionRecord {
        server: rs(server),
        code,
        subject: subject.into(),
        detail: detail.into(),
        opened_at,
        resolved_at: None,
    }
}

/// Opens a second (third …) service node on the same database, with its own
/// node id but the same clock and master key.
async fn open_node(
    db: &dyn TestDatabase,
    clock: Arc<ManualClock>,
    master_key: MasterKey,
    node_id: &str,
) -> Fixture {
    open_node_accepting(db, clock, master_key, &[], node_id).await
}

/// [`open_node`], also accepting what the `previous` master keys sealed.
async fn open_node_accepting(
    db: &dyn TestDatabase,
    clock: Arc<ManualClock>,
    master_key: MasterKey,
    previous: &[MasterKey],
    node_id: &str,
) -> Fixture {
    let store = db.open().await;
    let config = Config::new(master_key.clone())
        .with_previous_master_keys(previous.to_vec())
        .with_heartbeat_interval(INTERVAL)
        .expect("valid interval")
        .with_node_id(node_id);
    let carewatch = Carewatch::open(store.clone(), clock.clone(), config)
        .await
        .unwrap_or_else(|e| panic!("opening node {node_id}: {e}"));
    Fixture {
        carewatch,
        clock,
        store,
        master_key,
    }
}

/// Lets the service run for `total`, ticking (liveness mark and sweep) every
/// five seconds, as its maintenance loop would.
async fn keep_alive(fx: &Fixture, total: Duration) {
    let step = secs(5);
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        let d = step.min(total - elapsed);
        fx.advance(d);
        elapsed += d;
        fx.carewatch
            .tick()
            .await
            .unwrap_or_else(|e| panic!("maintenance tick at {}: {e}", fx.carewatch.now()));
    }
}

/// The next change on a watch stream, which must arrive within a second.
async fn next_change(stream: &mut WatchStream, what: &str) -> InstallationChange {
    let deadline = tokio::time::Instant::now() + WATCH_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(ChangeEvent {
                slc,
                at,
                change: Change::Health { previous, summary },
                ..
            }))) => {
                return InstallationChange {
                    slc,
                    previous,
                    summary,
                    at,
                };
            }
            // The servers' own events (first seen, conditions) come too.
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{what}: the watch stream failed: {e}"),
            Ok(None) => panic!("{what}: the watch stream ended"),
            Err(_) => panic!("{what}: no change arrived within {WATCH_DEADLINE:?}"),
        }
    }
}

/// An installation's overview line changing, as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstallationChange {
    slc: Slc,
    previous: crate::health::Health,
    summary: crate::health::HealthSummary,
    at: Timestamp,
}

/// Checks nothing arrives on a watch stream for a while.
async fn assert_silent(stream: &mut WatchStream, what: &str) {
    if let Ok(event) = tokio::time::timeout(WATCH_QUIET, stream.next()).await {
        panic!("{what}: expected nothing on the watch stream, got {event:?}");
    }
}
