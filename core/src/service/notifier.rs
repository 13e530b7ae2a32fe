//! The notifier: derives notifications from the change feed into the
//! outbox. One node at a time holds the notifier lease; each step reads the
//! feed after the stored position, moves the (channel, installation) states
//! with the pure rules, and writes states, outbox entries and the new
//! position in one transaction (only while it still holds the lease). A
//! crash before the commit redoes the step; after it, the outbox has the
//! notifications durably: nothing is lost and nothing doubled.
//!
//! [`Carewatch::notify_step_on`] runs the store calls on another runtime
//! (the server's) and the rules and payloads where it is called (the
//! low-priority notification thread of `carewatch serve`): an outage's
//! thousands of notifications then take from ingest's CPU only their
//! store work, and only its writes and the step's start (lease, feed,
//! channels) where the store has a view for reads made on the calling
//! thread ([`Store::for_background_reads`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::Carewatch;
use crate::availability::Downtime;
use crate::error::{Error, Result};
use crate::feed::{Change, ChangeEvent, EventId};
use crate::health::HealthSummary;
use crate::ids::{ResellerId, Slc};
use crate::notification::maintenance::{self, MaintenanceWindow};
use crate::notification::rules::{self, Phase, Tell};
use crate::notification::{
    ChannelId, ChannelRecord, Committed, NewOutboxEntry, NotificationState, NotifierCommit,
    NotifierMark, OutboxEntry, payload,
};
use crate::store::{InstallationDetail, Store, run_on};
use crate::time::Timestamp;

/// How long a node holds the lease without renewing it.
const LEASE: Duration = Duration::from_secs(10);
/// Feed events per step.
const EVENTS_PER_STEP: u32 = 500;
/// Due states per step.
const DUE_PER_STEP: u32 = 1000;
/// How often a problem that could not be told (its installation's messages
/// refused) is looked at again, besides when the refusal ends.
const REFUSED_LOOKED_AT_EVERY: Duration = Duration::from_secs(300);
/// Payloads built between yields to the tasks sharing the thread.
const YIELD_EVERY: usize = 64;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierStep {
    /// Whether this node held the lease.
    pub leader: bool,
    /// Feed events read.
    pub events: usize,
    /// Notifications put in the outbox.
    pub queued: usize,
    /// The step stopped at a limit (more events or more due states are
    /// waiting), or its commit was refused: the next step should run at once.
    pub more: bool,
    /// The entries this node claimed as it queued them (when the step was
    /// asked to, see [`Carewatch::notify_step_on`]): for it to send now.
    pub claimed: Vec<OutboxEntry>,
}

impl Carewatch {
    /// One step of the notifier (see the module docs). Call it regularly;
    /// the notification dispatcher does, as [`Self::notify_step_on`]
    /// (every 500 ms while idle).
    pub async fn notify_step(&self) -> Result<NotifierStep> {
        self.notify_step_on(None, None).await
    }

    /// [`Self::notify_step`] with its store calls spawned on `store_runtime`
    /// (when given): the rules, the payloads and their JSON run on the
    /// calling thread, the database work on the store's runtime, except
    /// the reads where the store has a view for them on the calling thread
    /// ([`Store::for_background_reads`]). With
    /// `claim_for`, the entries it queues are claimed for this node for that
    /// long from the step's start and returned in
    /// [`NotifierStep::claimed`], for the caller to send at once.
    pub async fn notify_step_on(
        &self,
        store_runtime: Option<&Handle>,
        claim_for: Option<Duration>,
    ) -> Result<NotifierStep> {
        let store = StoreCalls {
            store: &self.inner.store,
            runtime: store_runtime,
            background: store_runtime.and_then(|_| self.inner.store.for_background_reads()),
        };
        let node = self.inner.config.node_id.clone();
        let now = self.now();
        // The step's reads, in as few trips to the store's runtime as their
        // order allows (each trip wakes this thread again).
        let lease_node = node.clone();
        let start = store
            .call(move |s| async move { start_step(&*s, &lease_node, now).await })
            .await?;
        let (from, events, channels, windows) = match start {
            None => return Ok(NotifierStep::default()),
            Some(StepStart::Read {
                from,
                events,
                channels,
                windows,
            }) => (from, events, channels, windows),
            Some(StepStart::Behind { from, first_kept }) => {
                // The feed was pruned past the notifier (it was stopped for
                // longer than the retention): carry on from what is kept.
                tracing::warn!(from = %from.position, first_kept, "notifier fell behind the change feed's retention; skipping ahead");
                let skip = EventId(first_kept.saturating_sub(1));
                let commit = NotifierCommit {
                    node,
                    from,
                    to: skip,
                    states: Vec::new(),
                    outbox: Vec::new(),
                    claim_until: None,
                };
                let leader = store.commit(commit).await?.written();
                if !leader {
                    tracing::info!(
                        "notifier step not written: the lease was lost, or states were made due meanwhile"
                    );
                }
                return Ok(NotifierStep {
                    leader,
                    ..NotifierStep::default()
                });
            }
        };
        let to = events.last().map_or(from.position, |e| e.id);
        // Holds count only the time Carewatch was receiving.
        let downtime = self.downtime_state();
        let unwatched = &*downtime.windows;
        // A step stopped at the event limit judges its states as of its last
        // event, not now: the events after it (a recovery within the hold)
        // are not read yet, and would have undone what `now` would tell.
        let judged_at = if events.len() >= EVENTS_PER_STEP as usize {
            events.last().map_or(now, |e| e.at.min(now))
        } else {
            now
        };

        // The health changes each channel cares about, in feed order, and
        // each installation's line as its last change left it.
        let mut changes: Vec<(ChannelId, Slc, crate::health::Health, Timestamp)> = Vec::new();
        let mut decided_by: HashMap<Slc, &HealthSummary> = HashMap::new();
        for event in &events {
            let Change::Health { summary, .. } = &event.change else {
                continue;
            };
            decided_by.insert(event.slc.clone(), summary);
            for channel in channels
                .iter()
                .filter(|c| c.reseller == event.reseller && c.rules.covers(&event.slc))
            {
                changes.push((
                    channel.id.clone(),
                    event.slc.clone(),
                    summary.health,
                    event.at,
                ));
            }
        }
        let keys: Vec<(ChannelId, Slc)> = changes
            .iter()
            .map(|(c, s, ..)| (c.clone(), s.clone()))
            .collect();
        let mut states: BTreeMap<(ChannelId, Slc), Phase> = BTreeMap::new();
        let (known, due) = store
            .read(move |s| async move {
                let known = s.notification_states(&keys).await?;
                Ok((known, s.due_notification_states(now, DUE_PER_STEP).await?))
            })
            .await?;
        // What is stored, so that only what changes is written: most health
        // changes leave a pair Quiet (an installation's first report, a
        // server turning Late), and each write is a statement at ingest's
        // priority, unchanged or not.
        let mut stored: HashMap<(ChannelId, Slc), (Phase, Option<Timestamp>)> = HashMap::new();
        // A full read of due states (more may wait): its keys, to tell
        // whether the step moved any of them on.
        let full_due: Option<HashSet<(ChannelId, Slc)>> = (due.len() >= DUE_PER_STEP as usize)
            .then(|| {
                due.iter()
                    .map(|s| (s.channel.clone(), s.slc.clone()))
                    .collect()
            });
        for state in known.into_iter().chain(due) {
            let key = (state.channel, state.slc);
            if let Entry::Vacant(slot) = stored.entry(key.clone()) {
                states.insert(key, state.phase.clone());
                slot.insert((state.phase, state.due_at));
            }
        }
        let by_id: HashMap<&ChannelId, &ChannelRecord> =
            channels.iter().map(|c| (&c.id, c)).collect();
        // What to tell, decided first; the installations told about are then
        // read together, once each however many channels tell about them.
        let mut tells: Vec<(&ChannelRecord, Slc, Tell)> = Vec::new();
        for (channel, slc, health, at) in changes {
            let Some(record) = by_id.get(&channel) else {
                continue;
            };
            let phase = states
                .remove(&(channel.clone(), slc.clone()))
                .unwrap_or(Phase::Quiet);
            // What was due before this change is told first, as a step run
            // in time would have told it: a notifier behind the feed (its
            // steps failing, its lease moving to another node) otherwise
            // dropped a problem that held and ended within the backlog.
            let own = windows_of(&windows, record);
            let phase =
                muted_if_held_in_maintenance(phase, &own, &slc, at, &record.rules, unwatched);
            let in_maintenance = maintenance::in_maintenance(&own, &slc, at).is_some();
            let (phase, due) = rules::on_tick(phase, at, in_maintenance, &record.rules, unwatched);
            if let Some(tell) = due {
                tells.push((record, slc.clone(), tell));
            }
            states.insert(
                (channel, slc),
                rules::on_health(phase, health, at, &record.rules),
            );
        }

        let mut commit = NotifierCommit {
            node,
            from,
            to,
            states: Vec::new(),
            outbox: Vec::new(),
            claim_until: claim_for.map(|lease| now.saturating_add(lease)),
        };
        for ((channel, slc), phase) in states {
            // A channel deleted meanwhile: its states go with it.
            let Some(record) = by_id.get(&channel) else {
                continue;
            };
            let own = windows_of(&windows, record);
            let until = maintenance::in_maintenance(&own, &slc, judged_at);
            let phase = muted_if_held_in_maintenance(
                phase,
                &own,
                &slc,
                judged_at,
                &record.rules,
                unwatched,
            );
            let (phase, tell) =
                rules::on_tick(phase, judged_at, until.is_some(), &record.rules, unwatched);
            if let Some(tell) = tell {
                tells.push((record, slc.clone(), tell));
            }
            let due_at = rules::next_due(&phase, &record.rules, until, unwatched);
            // States are ticked only when due, so a told problem is looked
            // at when the next window over it begins (it is muted then, and
            // told again after the window if still unhealthy).
            let due_at = match (&phase, maintenance::next_maintenance(&own, &slc, judged_at)) {
                (Phase::Notified { muted: false, .. }, Some(begins)) => {
                    Some(due_at.map_or(begins, |due| due.min(begins)))
                }
                _ => due_at,
            };
            let key = (channel, slc);
            let unchanged = match stored.get(&key) {
                Some((was, was_due)) => *was == phase && *was_due == due_at,
                None => phase == Phase::Quiet,
            };
            if !unchanged {
                let (channel, slc) = key;
                commit.states.push(NotificationState {
                    channel,
                    slc,
                    phase,
                    due_at,
                });
            }
        }
        // Care Plus ran out: each channel is told once (the key names the
        // instant it ended, and an existing key is left alone).
        let mut expiries: Vec<(&ChannelRecord, &Slc, Timestamp)> = Vec::new();
        for event in &events {
            let Change::Subscription {
                expires_at: Some(ended),
            } = event.change
            else {
                continue;
            };
            if ended > event.at {
                continue;
            }
            for channel in channels
                .iter()
                .filter(|c| c.reseller == event.reseller && c.rules.covers(&event.slc))
            {
                expiries.push((channel, &event.slc, ended));
            }
        }
        let wanted = tells
            .iter()
            .map(|(record, slc, _)| (&record.reseller, slc))
            .chain(
                expiries
                    .iter()
                    .map(|(record, slc, _)| (&record.reseller, *slc)),
            );
        let details = installations(&store, wanted).await?;
        for (n, (record, slc, tell)) in tells.iter().enumerate() {
            // The dispatcher's deliveries share this thread: let them run
            // between payloads.
            if n % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            // Moved to another reseller since: not this channel's to tell.
            let Some(detail) = installation(&details, &record.reseller, slc) else {
                continue;
            };
            // Its messages refused (consent withdrawn, Care Plus ended):
            // nothing is told about it. Its servers are not judged, so its
            // health only stands still (no reminders about a silence
            // Carewatch causes) or drops to Pending when its reported data
            // is deleted, which is no recovery. The refusal itself is told
            // (`subscription_expired`, below).
            if detail.installation.refusal_at(now).is_some() {
                // A problem it could not tell is owed: Pending again, looked
                // at when the refusal ends (the store makes it due then) and
                // every few minutes meanwhile (a refusal ending while this
                // step ran would otherwise leave it never due).
                if let Some(state) = commit
                    .states
                    .iter_mut()
                    .find(|s| s.channel == record.id && s.slc == *slc)
                    && let Some(pending) = rules::untold(&state.phase, tell)
                {
                    state.phase = pending;
                    state.due_at = Some(now.saturating_add(REFUSED_LOOKED_AT_EVERY));
                }
                continue;
            }
            let decided_by = decided_by.get(slc).copied();
            commit
                .outbox
                .push(compose(record, tell, decided_by, detail, now));
        }
        for (channel, slc, ended) in expiries {
            let Some(detail) = installation(&details, &channel.reseller, slc) else {
                continue;
            };
            let key = format!(
                "{}.{}.subscription_expired.{}",
                channel.id,
                slc,
                ended.as_millis()
            );
            let body = payload::subscription_expired(key.clone(), detail, ended, now);
            let mut entry = outbox_entry(channel, slc, key, &body, now);
            // Nothing is sent during maintenance: held until it ends.
            if let Some(ends) =
                maintenance::maintenance_ends(&windows_of(&windows, channel), slc, now)
            {
                entry.first_attempt_at = ends;
            }
            commit.outbox.push(entry);
        }
        let (events, queued) = (events.len(), commit.outbox.len());
        // More due states wait only if this step moved some of those it read
        // on: a due state a step cannot move (none known) must not make
        // steps run back to back.
        let more_due = full_due.is_some_and(|keys| {
            commit
                .states
                .iter()
                .any(|s| keys.contains(&(s.channel.clone(), s.slc.clone())))
        });
        match store.commit(commit).await? {
            Committed::Refused => {
                // The next step starts again at once from where the notifier
                // stands (with the nudged states due); if the lease was
                // lost, it finds so and pauses.
                tracing::info!(
                    "notifier step not written: the lease was lost, or states were made due meanwhile"
                );
                Ok(NotifierStep {
                    more: true,
                    ..NotifierStep::default()
                })
            }
            Committed::Written { claimed } => Ok(NotifierStep {
                leader: true,
                events,
                queued,
                more: events >= EVENTS_PER_STEP as usize || more_due,
                claimed,
            }),
        }
    }
}

/// What a step's first trip to the store found.
enum StepStart {
    /// The lease is this node's; the feed after `from`, and every channel
    /// and maintenance window.
    Read {
        from: NotifierMark,
        events: Vec<ChangeEvent>,
        channels: Vec<ChannelRecord>,
        windows: Vec<MaintenanceWindow>,
    },
    /// The lease is this node's, but the feed was pruned past `from`.
    Behind { from: NotifierMark, first_kept: u64 },
}

/// Takes (or renews) the lease and reads what a step starts from; `None`
/// when another node holds the lease. Separate reads, not one snapshot, as
/// they always were: the commit checks the lease and the position again.
async fn start_step(store: &dyn Store, node: &str, now: Timestamp) -> Result<Option<StepStart>> {
    let Some(from) = store.notifier_lease(node, now, LEASE).await? else {
        return Ok(None);
    };
    let events = match store.changes(from.position, EVENTS_PER_STEP).await {
        Ok(events) => events,
        Err(Error::ResumeTooOld { first_kept, .. }) => {
            return Ok(Some(StepStart::Behind { from, first_kept }));
        }
        Err(e) => return Err(e),
    };
    Ok(Some(StepStart::Read {
        from,
        events,
        channels: store.channels(None).await?,
        windows: store.maintenance_windows(None).await?,
    }))
}

/// The notifier's store, its calls run where [`run_on`] puts them, its
/// reads where [`StoreCalls::read`] does.
struct StoreCalls<'a> {
    store: &'a Arc<dyn Store>,
    runtime: Option<&'a Handle>,
    background: Option<Arc<dyn Store>>,
}

impl StoreCalls<'_> {
    async fn call<T, F>(&self, call: impl FnOnce(Arc<dyn Store>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        run_on(self.runtime, call(self.store.clone())).await
    }

    /// Runs a read here, at the calling thread's priority, when the step
    /// runs beside the store's runtime and the store has a view for such
    /// reads ([`Store::for_background_reads`]); like [`Self::call`]
    /// otherwise. An outage's installation and state reads are then
    /// background work too, not ingest's.
    async fn read<T, F>(&self, read: impl FnOnce(Arc<dyn Store>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match &self.background {
            Some(background) => read(background.clone()).await,
            None => self.call(read).await,
        }
    }

    /// Commits `commit`.
    async fn commit(&self, commit: NotifierCommit) -> Result<Committed> {
        self.call(move |s| async move { s.commit_notifications(commit).await })
            .await
    }
}

/// The installations `wanted` names, by reseller and SLC: each reseller's
/// read together, each installation once, all in one trip to the store.
/// One moved to another reseller meanwhile is left out.
async fn installations<'a>(
    store: &StoreCalls<'_>,
    wanted: impl Iterator<Item = (&'a ResellerId, &'a Slc)>,
) -> Result<Installations> {
    let mut by_reseller: BTreeMap<&ResellerId, BTreeSet<&Slc>> = BTreeMap::new();
    for (reseller, slc) in wanted {
        by_reseller.entry(reseller).or_default().insert(slc);
    }
    if by_reseller.is_empty() {
        return Ok(Installations::new());
    }
    let by_reseller: Vec<(ResellerId, Vec<Slc>)> = by_reseller
        .into_iter()
        .map(|(reseller, slcs)| (reseller.clone(), slcs.into_iter().cloned().collect()))
        .collect();
    store
        .read(move |s| async move {
            let mut found = Installations::new();
            for (reseller, slcs) in by_reseller {
                let details = s.installation_details(&reseller, &slcs).await?;
                found.insert(
                    reseller,
                    details
                        .into_iter()
                        .map(|d| (d.installation.slc.clone(), d))
                        .collect(),
                );
            }
            Ok(found)
        })
        .await
}

type Installations = HashMap<ResellerId, HashMap<Slc, InstallationDetail>>;

fn installation<'d>(
    details: &'d Installations,
    reseller: &ResellerId,
    slc: &Slc,
) -> Option<&'d InstallationDetail> {
    details.get(reseller).and_then(|of| of.get(slc))
}

/// The outbox entry a tell makes about `detail` (the installation now),
/// as `decided_by` (its line after the change that decided it) left it.
fn compose(
    channel: &ChannelRecord,
    tell: &Tell,
    decided_by: Option<&HealthSummary>,
    detail: &InstallationDetail,
    now: Timestamp,
) -> NewOutboxEntry {
    let slc = &detail.installation.slc;
    let instant = match tell {
        Tell::Problem { since, .. } | Tell::AfterMaintenance { since, .. } => *since,
        Tell::Reminder { since, n, .. } => {
            since.saturating_add(Duration::from_millis(u64::from(*n)))
        }
        Tell::Resolved { recovered_at, .. } => *recovered_at,
    };
    let key = format!(
        "{}.{}.{}.{}.{}",
        channel.id,
        slc,
        tell.kind(),
        instant.as_millis(),
        now.as_millis()
    );
    let body = payload::build(key.clone(), tell, decided_by, detail, now);
    outbox_entry(channel, slc, key, &body, now)
}

/// The outbox entry sending `body` about `slc` to `channel`.
fn outbox_entry(
    channel: &ChannelRecord,
    slc: &Slc,
    key: String,
    body: &payload::Notification,
    now: Timestamp,
) -> NewOutboxEntry {
    NewOutboxEntry {
        channel: channel.id.clone(),
        reseller: channel.reseller.clone(),
        slc: Some(slc.clone()),
        key,
        body: body.to_json(),
        created_at: now,
        first_attempt_at: now,
    }
}

/// A problem whose hold passed during a maintenance window is told after
/// the window ("still unhealthy"): states are ticked only when due, and a
/// pending one is due at the end of the window it is in, so the tick that
/// would have muted it when its hold passed never happened.
fn muted_if_held_in_maintenance(
    phase: Phase,
    windows: &[MaintenanceWindow],
    slc: &Slc,
    now: Timestamp,
    rules: &crate::notification::ChannelRules,
    unwatched: &Downtime,
) -> Phase {
    match phase {
        Phase::Pending {
            health,
            since,
            muted: false,
        } => {
            let held_at = rules::held_at(since, rules, unwatched);
            let muted =
                held_at <= now && maintenance::in_maintenance(windows, slc, held_at).is_some();
            Phase::Pending {
                health,
                since,
                muted,
            }
        }
        other => other,
    }
}

fn windows_of(windows: &[MaintenanceWindow], channel: &ChannelRecord) -> Vec<MaintenanceWindow> {
    windows
        .iter()
        .filter(|w| w.reseller == channel.reseller)
        .cloned()
        .collect()
}
