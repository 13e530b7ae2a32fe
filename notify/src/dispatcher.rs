//! The dispatcher: beside the server, it drives the notifier (change feed →
//! outbox) and drains the outbox.
//!
//! What its notifier step queues is claimed for this node in the step's
//! own commit and handed to delivery, without another write or reading the
//! bodies back (once a batch of them waits, the next steps queue theirs
//! unclaimed). Every `every` (and again at once while it finds work and
//! nothing handed over waits) it also claims due entries for this node
//! under a lease (retries, another node's steps, claims that ran out),
//! taking turns with the hand-overs; it sends up to `concurrency` at once,
//! and records the outcomes: delivered, retried after the backoff (with
//! random jitter, so channels that failed together do not retry in step),
//! or given up after the last attempt or a permanent refusal. Outcomes are
//! recorded together, all that finished within a short gathering time, and
//! the notifier, once it found events, waits as long for more before its
//! next step: a regional outage's thousands of notifications cost tens of
//! store writes, not thousands queued among the heartbeats. A stop writes
//! what was gathered at once. A claim outlives the longest batch, so nobody
//! else sends an entry while this node does; a node that dies mid-send
//! loses its claim when the lease ends, or when it starts again (a node
//! releases its previous run's claims as it starts), and the entry is
//! claimed again: delivered at least once, each attempt with the same
//! idempotency key. A node that stops releases what it claimed and did not
//! finish, for any node (itself restarted) to send at once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carewatch_core::notification::{DeliveryOutcome, OutboxEntry};
use carewatch_core::store::run_on;
use carewatch_core::{Carewatch, Error};
use futures::{FutureExt, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::sender::Sender;

mod attempt;
mod claims;
mod handover;
mod holds;
mod support;

use attempt::{ChannelCache, ChannelFor};
use claims::{InFlight, Unfinished};
use handover::{Handed, HandedQueue};
use holds::{HoldKey, Holds};
use support::LogLimit;
pub use support::panic_message;

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// How often it looks for due entries and runs the notifier when idle.
    pub every: Duration,
    /// How long a claim lasts. An attempt starts only if it ends and the
    /// write of its outcome starts (the sender's longest attempt, then
    /// `gather`) before its claim does; entries a slow
    /// receiver held up past that are claimed again after the lease.
    pub lease: Duration,
    /// Entries claimed at once, and sent in one batch. While this many
    /// that the notifier claimed wait to be sent, its steps queue their
    /// entries unclaimed, for any node to claim.
    pub batch: u32,
    /// Entries sent at once.
    pub concurrency: usize,
    /// How long the notifier, once it found events, and the outcome writes,
    /// once an attempt finished, wait to take more at once. Each is a store
    /// write; during an outage, one per event or per attempt would queue
    /// hundreds of transactions a second among the heartbeats' (SQLite has
    /// one writer). A notifier step that stopped at its limit goes on at
    /// once.
    pub gather: Duration,
    /// Whether this dispatcher also runs the notifier (the change feed →
    /// outbox step; one node at a time does the work, under its own lease).
    pub notifier: bool,
    /// How long a stop waits for deliveries in flight. Those cut off, and
    /// anything else this node claimed and did not finish, are released
    /// when it stops: any node sends them again at once.
    pub shutdown_grace: Duration,
    /// The runtime the dispatcher's store calls (the notifier's commits,
    /// claims, outcomes, and its reads unless the store has a view for
    /// them here: [`carewatch_core::store::Store::for_background_reads`])
    /// run on, when the dispatcher runs on another (`carewatch serve`
    /// gives it a thread of its own at a lower CPU priority, for the
    /// notifier's rules and payloads and for sending). They are spawned
    /// there, so the database connections they open belong to the
    /// server's runtime: a pooled PostgreSQL connection is then never
    /// driven by the dispatcher's thread, nor lost when that thread's
    /// runtime stops.
    pub store_runtime: Option<Handle>,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            every: Duration::from_millis(500),
            gather: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            batch: 256,
            concurrency: 32,
            notifier: true,
            shutdown_grace: Duration::from_secs(5),
            store_runtime: None,
        }
    }
}

/// Sends what the outbox holds (see the module docs).
#[derive(Debug)]
pub struct Dispatcher {
    carewatch: Carewatch,
    sender: Arc<Sender>,
    options: DispatcherOptions,
    channels: Mutex<ChannelCache>,
    claim_errors: LogLimit,
    notifier_errors: LogLimit,
    /// Deferrals: the operator's delivery settings do not work.
    deferrals: LogLimit,
    /// Receivers (and the SMTP server) whose entries are held back.
    holds: Holds,
    /// What this node claimed and has not finished: released at the stop.
    unfinished: Arc<Unfinished>,
    /// The store calls running, which the release waits for.
    in_flight: Arc<InFlight>,
}

/// How long a stop's release waits for store calls still running.
const RELEASE_WAITS_AT_MOST: Duration = Duration::from_secs(2);

impl Dispatcher {
    /// A dispatcher for `carewatch`, sending with `sender`.
    pub fn new(carewatch: Carewatch, sender: Arc<Sender>, options: DispatcherOptions) -> Self {
        let unfinished = Arc::new(Unfinished::new(options.lease));
        Self {
            carewatch,
            sender,
            options,
            channels: Mutex::default(),
            claim_errors: LogLimit::default(),
            notifier_errors: LogLimit::default(),
            deferrals: LogLimit::default(),
            holds: Holds::default(),
            unfinished,
            in_flight: Arc::default(),
        }
    }

    /// Runs a store call: on the store's runtime when one is set (see
    /// [`DispatcherOptions::store_runtime`]), here otherwise.
    async fn on_store<T, F>(&self, call: impl FnOnce(Carewatch) -> F) -> carewatch_core::Result<T>
    where
        F: Future<Output = carewatch_core::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let call = call(self.carewatch.clone());
        let in_flight = self.in_flight.enter();
        run_on(self.options.store_runtime.as_ref(), async move {
            // Until the call ends, even if this caller stops waiting.
            let _in_flight = in_flight;
            call.await
        })
        .await
    }

    /// Runs until `shutdown` completes, then waits up to the shutdown grace
    /// for deliveries in flight and releases this node's unfinished claims.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        // A stop asked for while a stalled database holds the release up
        // is not kept waiting: nothing has been claimed yet.
        tokio::select! {
            () = self.release_previous_run() => {}
            () = &mut shutdown => return,
        }
        let (stop, stopping) = watch::channel(false);
        let (hand, handed) = mpsc::unbounded_channel();
        // Entries handed over that delivery has not taken yet.
        let handed_waiting = AtomicUsize::new(0);
        let mut work = Box::pin(async {
            tokio::join!(
                self.deliver_loop(stopping.clone(), handed, &handed_waiting),
                self.notifier_loop(stopping, hand, &handed_waiting)
            );
        });
        let finished = tokio::select! {
            () = &mut shutdown => false,
            () = &mut work => true,
        };
        if !finished {
            let _ = stop.send(true);
            if tokio::time::timeout(self.options.shutdown_grace, &mut work)
                .await
                .is_err()
            {
                tracing::info!("deliveries still in flight at shutdown are cut off");
            }
        }
        // Ended, not paused: nothing of it runs after the release.
        drop(work);
        self.release_unfinished().await;
        if self.options.notifier {
            self.release_notifier_lease().await;
        }
    }

    /// Ends this node's notifier lease, its loop stopped: another node's
    /// notifier carries on at its next step, not once the lease runs out
    /// (a rolling restart held notifications back for up to the lease). A
    /// step of this node's still committing is refused, and done again by
    /// the next holder.
    async fn release_notifier_lease(&self) {
        match self
            .on_store(|c| async move { c.release_notifier().await })
            .await
        {
            Ok(true) => tracing::debug!("notifier lease released to the other nodes"),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "releasing the notifier lease failed; another node takes it when it runs out"
            ),
        }
    }

    /// Releases every claim this node's previous run still holds (killed,
    /// or stopped while a notifier commit was claiming): sent at once, not
    /// after their lease. A failure only delays them until the lease ends.
    async fn release_previous_run(&self) {
        let released = self
            .on_store(|c| async move { c.release_own_claims().await })
            .await;
        log_release(
            released,
            "notifications this node's previous run claimed are released to be sent at once",
            "releasing this node's previous run's notifications failed; they are sent after their lease",
        );
    }

    /// Releases what this node claimed and did not finish (cut off, left
    /// out as too late, or its outcome not written), once the store calls
    /// still running end (an outcome written after the release would be
    /// lost): another node, or this one restarted, sends it at once, not
    /// after its lease, so a rolling restart holds no notification back.
    /// Not known here, so left to run out with their lease or to this node's
    /// next start: a claim made by a notifier commit still running on the
    /// store's runtime. A store call still running after
    /// [`RELEASE_WAITS_AT_MOST`] (a stalled database) is not waited for: an outcome it writes after the release finds its
    /// entry unclaimed and is lost, and the entry is sent again (at least
    /// once, with the same idempotency key).
    async fn release_unfinished(&self) {
        if tokio::time::timeout(RELEASE_WAITS_AT_MOST, self.in_flight.idle())
            .await
            .is_err()
        {
            tracing::warn!("store calls still running at shutdown; releasing without them");
        }
        let ids = self.unfinished.take();
        if ids.is_empty() {
            return;
        }
        let released = self
            .on_store(|c| async move { c.release_deliveries(&ids).await })
            .await;
        log_release(
            released,
            "notifications this node claimed and did not finish are released to be sent by any node",
            "releasing this node's unfinished notifications failed; they are sent again after their lease",
        );
    }

    async fn notifier_loop(
        &self,
        mut stopping: watch::Receiver<bool>,
        hand: mpsc::UnboundedSender<Handed>,
        handed_waiting: &AtomicUsize,
    ) {
        if !self.options.notifier {
            return;
        }
        while !*stopping.borrow() {
            // The rules and payloads run here (and, on SQLite, the
            // reads), the other store calls on the store's runtime. A
            // panic in them is one failed step, as an error is:
            // deliveries on this thread go on. What a step queues
            // is claimed for this node as it is written, from before the
            // step, and sent at once: no claim of its own. While a batch's
            // worth waits to be sent, steps queue theirs unclaimed, for
            // whichever node claims first (this one included).
            let claimed_at = Instant::now();
            let claim_for = (handed_waiting.load(Ordering::Relaxed)
                < self.options.batch.max(1) as usize)
                .then_some(self.options.lease);
            let step = AssertUnwindSafe(
                self.carewatch
                    .notify_step_on(self.options.store_runtime.as_ref(), claim_for),
            )
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(Error::storage(
                    "the notifier step panicked",
                    panic_message(panic.as_ref()),
                ))
            });
            let pause = match step {
                Ok(step) => {
                    self.notifier_errors
                        .ok(|| tracing::info!("the notifier works again"));
                    if step.queued > 0 {
                        tracing::debug!(
                            queued = step.queued,
                            events = step.events,
                            "notifications queued"
                        );
                    }
                    if !step.claimed.is_empty() {
                        self.unfinished.claimed(&step.claimed, claimed_at);
                        handed_waiting.fetch_add(step.claimed.len(), Ordering::Relaxed);
                        // Cannot fail: the delivery loop holds the receiver
                        // until this loop has ended.
                        let _ = hand.send(Handed {
                            claimed_at,
                            entries: step.claimed,
                        });
                    }
                    if step.more {
                        Duration::ZERO
                    } else if step.events > 0 {
                        self.options.gather
                    } else {
                        self.options.every
                    }
                }
                Err(e) => {
                    self.notifier_errors
                        .warn(|n| tracing::warn!(error = %e, failures = n, "the notifier step failed; retrying"));
                    self.options.every
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }

    async fn deliver_loop(
        &self,
        mut stopping: watch::Receiver<bool>,
        mut handed: mpsc::UnboundedReceiver<Handed>,
        handed_waiting: &AtomicUsize,
    ) {
        let most = self.options.batch.max(1) as usize;
        let mut waiting = HandedQueue::default();
        let take = |waiting: &mut HandedQueue| {
            let batch = waiting.take(most)?;
            handed_waiting.fetch_sub(batch.entries.len(), Ordering::Relaxed);
            Some(batch)
        };
        // When the outbox was last asked, and whether it had something.
        let mut last_claim: Option<(Instant, bool)> = None;
        // Whether the last batch sent was claimed from the outbox: then
        // hand-overs waiting go next, so neither starves the other.
        let mut claimed_last = false;
        while !*stopping.borrow() {
            while let Ok(more) = handed.try_recv() {
                waiting.push(more);
            }
            // The outbox holds retries, entries of other nodes' steps, those
            // queued unclaimed while hand-overs backed up, and claims that
            // ran out: asked every `every` even while hand-overs keep
            // coming (taking turns with them), and at once again while it
            // finds some and nothing handed over waits.
            let turn_of_claims = !claimed_last || waiting.is_empty();
            let claim_now = turn_of_claims
                && match last_claim {
                    None => true,
                    Some((at, found)) => {
                        at.elapsed() >= self.options.every || (found && waiting.is_empty())
                    }
                };
            if claim_now {
                let claimed_at = Instant::now();
                let entries = self.claim().await;
                last_claim = Some((claimed_at, !entries.is_empty()));
                claimed_last = !entries.is_empty();
                if claimed_last {
                    self.deliver_batch(entries, claimed_at, stopping.clone())
                        .await;
                }
                continue;
            }
            if let Some(batch) = take(&mut waiting) {
                claimed_last = false;
                self.deliver_batch(batch.entries, batch.claimed_at, stopping.clone())
                    .await;
                continue;
            }
            let wait = last_claim.map_or(Duration::ZERO, |(at, _)| {
                self.options.every.saturating_sub(at.elapsed())
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                Some(more) = handed.recv() => waiting.push(more),
                _ = stopping.changed() => {}
            }
        }
        // Stopping: what the notifier claimed, up to the end of the step it
        // is in, is sent within the stop's grace, as it comes (the
        // hand-over closes when the notifier loop ends). Cut off, it is
        // released when the stop ends, as anything cut off mid-send is.
        loop {
            while let Ok(more) = handed.try_recv() {
                waiting.push(more);
            }
            if let Some(batch) = take(&mut waiting) {
                self.deliver_batch(batch.entries, batch.claimed_at, stopping.clone())
                    .await;
                continue;
            }
            match handed.recv().await {
                Some(more) => waiting.push(more),
                None => break,
            }
        }
    }

    /// Claims due entries for this node; none if the claim failed.
    async fn claim(&self) -> Vec<OutboxEntry> {
        let (lease, batch) = (self.options.lease, self.options.batch);
        let (unfinished, asked) = (self.unfinished.clone(), Instant::now());
        let claimed = self
            .on_store(|c| async move {
                let entries = c.claim_deliveries(lease, batch).await?;
                // Noted within the call, which a stop waits for: a claim
                // ending after the dispatcher stopped is released too when
                // it runs on the store's runtime. Without one, dropping the
                // work drops the call, and a claim SQLite still commits
                // runs out with its lease.
                unfinished.claimed(&entries, asked);
                Ok(entries)
            })
            .await;
        match claimed {
            Ok(entries) => {
                self.claim_errors
                    .ok(|| tracing::info!("claiming notifications works again"));
                entries
            }
            Err(e) => {
                self.claim_errors.warn(|n| {
                    tracing::warn!(error = %e, failures = n, "claiming notifications failed; retrying")
                });
                Vec::new()
            }
        }
    }

    /// Sends entries claimed (no later than `claimed_at`) for this node,
    /// `concurrency` at once, recording outcomes together: a write
    /// `gather` after the first unrecorded one finished (or once `batch`
    /// are waiting, or when all are done), and at once when `stopping`
    /// turns true: a stop's grace may end before the batch does, and an
    /// outcome not written is a notification sent twice.
    async fn deliver_batch(
        &self,
        entries: Vec<OutboxEntry>,
        claimed_at: Instant,
        mut stopping: watch::Receiver<bool>,
    ) {
        let channels = self.channels_for(&entries).await;
        let too_late_count = AtomicUsize::new(0);
        let too_late = &too_late_count;
        let mut outcomes = futures::stream::iter(entries)
            .map(|entry| {
                let channel = match &channels {
                    Ok(map) => match map.get(&entry.channel) {
                        Some(Ok(opened)) => ChannelFor::Open(opened.clone()),
                        Some(Err(e)) => ChannelFor::Unopenable(e.clone()),
                        None => ChannelFor::Deleted,
                    },
                    Err(e) => ChannelFor::Unreadable(e.clone()),
                };
                async move {
                    // Its outcome is written at most `gather` after it ends.
                    let ends =
                        claimed_at.elapsed() + self.sender.longest_attempt() + self.options.gather;
                    if ends >= self.options.lease {
                        too_late.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    let key = HoldKey::of(&entry, &channel);
                    if let Some(key) = &key
                        && let Some(hold) = self.holds.get(key, self.carewatch.now())
                    {
                        return Some(self.held_back(&entry, key, &hold));
                    }
                    let (id, outcome, unreachable) = self.deliver(entry, channel).await;
                    if let Some(key) = key {
                        match &outcome {
                            DeliveryOutcome::Delivered => self.holds.release(&key),
                            DeliveryOutcome::Retry { error, at } if unreachable => {
                                self.holds.hold(key, error, *at);
                            }
                            DeliveryOutcome::Deferred { error, at } => {
                                self.holds.hold(key, error, *at);
                            }
                            _ => {}
                        }
                    }
                    Some((id, outcome))
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .filter_map(std::future::ready);
        let most = self.options.batch.max(1) as usize;
        let mut finished = Vec::new();
        let mut write_by: Option<tokio::time::Instant> = None;
        loop {
            // The next outcome, or `None` when the gathered ones are due.
            let stopped = *stopping.borrow();
            let next = match write_by {
                Some(_) if stopped => None,
                Some(at) if finished.len() < most => tokio::select! {
                    next = outcomes.next() => Some(next),
                    () = tokio::time::sleep_until(at) => None,
                    // Woken to write at once (the loop sees `stopped`).
                    Ok(()) = stopping.changed() => continue,
                },
                Some(_) => None,
                None => Some(outcomes.next().await),
            };
            match next {
                Some(Some(outcome)) => {
                    finished.push(outcome);
                    write_by
                        .get_or_insert_with(|| tokio::time::Instant::now() + self.options.gather);
                }
                Some(None) => {
                    self.record_outcomes(finished).await;
                    break;
                }
                None => {
                    self.record_outcomes(std::mem::take(&mut finished)).await;
                    write_by = None;
                }
            }
        }
        drop(outcomes);
        let too_late = too_late_count.into_inner();
        if too_late > 0 {
            tracing::info!(
                entries = too_late,
                "not sent: an attempt now could outlast its claim; they are claimed again after their lease, or released when this node stops"
            );
        }
    }

    /// Records finished attempts in one store write.
    async fn record_outcomes(&self, finished: Vec<(u64, DeliveryOutcome)>) {
        let count = finished.len();
        let unfinished = self.unfinished.clone();
        let recorded = self
            .on_store(|c| async move {
                c.finish_deliveries(&finished).await?;
                unfinished.finished(finished.iter().map(|(id, _)| *id));
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            // The claims run out (or are released at the stop) and the
            // entries are tried again: at least once.
            tracing::warn!(
                entries = count,
                error = %e,
                "recording delivery outcomes failed; they will be tried again after their lease or this node's stop"
            );
        }
    }
}

/// Logs how a release of claims ended: `released` when it released some,
/// `failed` when it could not.
fn log_release(result: carewatch_core::Result<u64>, released: &str, failed: &str) {
    match result {
        Ok(0) => {}
        Ok(entries) => tracing::info!(entries, "{released}"),
        Err(e) => tracing::warn!(error = %e, "{failed}"),
    }
}

#[cfg(test)]
mod tests;
