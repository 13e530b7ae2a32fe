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
//! loses its claim when the lease ends and the entry is claimed again:
//! delivered at least once, each attempt with the same idempotency key. A
//! node that stops releases what it claimed and did not finish, for any
//! node (itself restarted) to send at once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use carewatch_core::notification::delivery::retry_after_asked;
use carewatch_core::notification::{ChannelId, DeliveryOutcome, OutboxEntry};
use carewatch_core::store::run_on;
use carewatch_core::{Carewatch, Error, OpenedChannel};
use futures::{FutureExt, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::sender::{Attempt, Sender};

mod handover;
mod support;

use handover::{Handed, HandedQueue};
pub use support::panic_message;
use support::{LogLimit, jitter};

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
    /// The runtime the dispatcher's store calls (the notifier's reads and
    /// commits, claims, outcomes) run on, when the dispatcher runs on
    /// another (`carewatch serve` gives it a thread of its own at a lower
    /// CPU priority, for the notifier's rules and payloads and for
    /// sending). They are spawned there, so the
    /// database connections they open belong to the server's runtime: a
    /// pooled PostgreSQL connection is then never driven by the
    /// dispatcher's thread, nor lost when that thread's runtime stops.
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
}

#[derive(Debug, Default)]
struct ChannelCache {
    /// Each channel opened on its own, or why it cannot be.
    opened: HashMap<ChannelId, Opened>,
    loaded: Option<Instant>,
}

/// A channel opened, or why it cannot be.
type Opened = Result<Arc<OpenedChannel>, String>;

/// The channel of an entry, as far as delivery knows it.
#[derive(Debug, Clone)]
enum ChannelFor {
    /// Opened: send.
    Open(Arc<OpenedChannel>),
    /// Gone: deleting a channel gives its entries up; one claimed meanwhile
    /// is given up here.
    Deleted,
    /// This channel cannot be opened (sealed under another master key, or
    /// damaged); the others are not held up by it.
    Unopenable(String),
    /// The channels could not be read at all.
    Unreadable(String),
}

/// How long opened channels are reused before they are read again.
const CHANNELS_FRESH: Duration = Duration::from_secs(10);

impl Dispatcher {
    /// A dispatcher for `carewatch`, sending with `sender`.
    pub fn new(carewatch: Carewatch, sender: Arc<Sender>, options: DispatcherOptions) -> Self {
        Self {
            carewatch,
            sender,
            options,
            channels: Mutex::default(),
            claim_errors: LogLimit::default(),
            notifier_errors: LogLimit::default(),
        }
    }

    /// Runs a store call: on the store's runtime when one is set (see
    /// [`DispatcherOptions::store_runtime`]), here otherwise.
    async fn on_store<T, F>(&self, call: impl FnOnce(Carewatch) -> F) -> carewatch_core::Result<T>
    where
        F: Future<Output = carewatch_core::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        run_on(
            self.options.store_runtime.as_ref(),
            call(self.carewatch.clone()),
        )
        .await
    }

    /// Runs until `shutdown` completes, then waits up to the shutdown grace
    /// for deliveries in flight and releases this node's unfinished claims.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopping) = watch::channel(false);
        let (hand, handed) = mpsc::unbounded_channel();
        // Entries handed over that delivery has not taken yet.
        let handed_waiting = AtomicUsize::new(0);
        let work = async {
            tokio::join!(
                self.deliver_loop(stopping.clone(), handed, &handed_waiting),
                self.notifier_loop(stopping, hand, &handed_waiting)
            );
        };
        tokio::pin!(work, shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = &mut work => return,
        }
        let _ = stop.send(true);
        let cut_off = tokio::time::timeout(self.options.shutdown_grace, &mut work)
            .await
            .is_err();
        // What this node claimed and did not finish (cut off, skipped as too
        // late, or its outcome unwritten) is anyone's again now, not after
        // its lease: a rolling restart does not hold notifications back.
        let released = self
            .on_store(|c| async move { c.release_deliveries().await })
            .await;
        match released {
            Ok(0) => {}
            Ok(entries) => tracing::info!(
                entries,
                cut_off,
                "notifications this node claimed and did not finish are released to be sent again"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "releasing this node's unsent notifications failed; they are sent again after their lease"
            ),
        }
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
            // The rules and payloads run here, the store calls on the
            // store's runtime. A panic in them is one failed step, as an
            // error is: deliveries on this thread go on. What a step queues
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
        let claimed = self
            .on_store(|c| async move { c.claim_deliveries(lease, batch).await })
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
                    Some(self.deliver(entry, channel).await)
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
                "not sent: an attempt now could outlast its claim; they are claimed again after their lease"
            );
        }
    }

    /// Records finished attempts in one store write.
    async fn record_outcomes(&self, finished: Vec<(u64, DeliveryOutcome)>) {
        let count = finished.len();
        let recorded = self
            .on_store(|c| async move { c.finish_deliveries(&finished).await })
            .await;
        if let Err(e) = recorded {
            // The claims run out and the entries are tried again: at
            // least once.
            tracing::warn!(entries = count, error = %e, "recording delivery outcomes failed; they will be tried again after their lease");
        }
    }

    /// One attempt at `entry`, logged; the outcome to record.
    async fn deliver(&self, entry: OutboxEntry, channel: ChannelFor) -> (u64, DeliveryOutcome) {
        let attempt = match channel {
            // A panic while sending is a failed attempt: it counts towards
            // giving up, and the batch's other outcomes are still written.
            ChannelFor::Open(channel) => AssertUnwindSafe(self.sender.send(&channel, &entry))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Attempt::Retry(format!(
                        "sending panicked: {}",
                        panic_message(panic.as_ref())
                    ))
                }),
            ChannelFor::Deleted => Attempt::Failed("the channel was deleted".into()),
            ChannelFor::Unopenable(e) => {
                Attempt::Retry(format!("the channel cannot be opened: {e}"))
            }
            ChannelFor::Unreadable(e) => {
                Attempt::Retry(format!("the channels cannot be read: {e}"))
            }
        };
        let number = entry.attempts + 1;
        let retry = |number: u32, error: String, asked: Option<Duration>| match retry_after_asked(
            number,
            jitter(),
            asked,
        ) {
            Some(wait) => DeliveryOutcome::Retry {
                at: self.carewatch.now().saturating_add(wait),
                error,
            },
            None => DeliveryOutcome::Failed {
                error: format!("{error} (gave up after {number} attempts)"),
            },
        };
        let outcome = match attempt {
            Attempt::Delivered => DeliveryOutcome::Delivered,
            Attempt::Retry(error) => retry(number, error, None),
            Attempt::RetryAfter(error, asked) => retry(number, error, Some(asked)),
            Attempt::Failed(error) => DeliveryOutcome::Failed { error },
        };
        match &outcome {
            // Debug, not info: the outbox keeps every delivery (web page,
            // gRPC, CLI), and a regional outage would otherwise write a line
            // per notification at the default level (~15,000 instructions
            // and a write to the log each).
            DeliveryOutcome::Delivered => tracing::debug!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, "notification delivered"
            ),
            DeliveryOutcome::Retry { at, error } => tracing::warn!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, retry_at = %at, error = %error, "notification not delivered; will retry"
            ),
            DeliveryOutcome::Failed { error } => tracing::warn!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, error = %error, "notification given up"
            ),
        }
        (entry.id, outcome)
    }

    /// The channels of `entries`, each opened or with why it cannot be, read
    /// again when one is missing or they are older than a few seconds.
    async fn channels_for(
        &self,
        entries: &[OutboxEntry],
    ) -> Result<HashMap<ChannelId, Opened>, String> {
        let fresh = {
            let cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            cache.loaded.is_some_and(|at| at.elapsed() < CHANNELS_FRESH)
                && entries
                    .iter()
                    .all(|e| cache.opened.contains_key(&e.channel))
        };
        if !fresh {
            let opened = self
                .on_store(|c| async move { c.delivery_channels().await })
                .await
                .map_err(|e| e.to_string())?;
            let opened: HashMap<_, _> = opened
                .into_iter()
                .map(|(id, channel)| {
                    let channel = channel.map(Arc::new).map_err(|e| {
                        tracing::warn!(channel = %id, error = %e, "a notification channel cannot be opened; its notifications are retried, the other channels' delivered");
                        e.to_string()
                    });
                    (id, channel)
                })
                .collect();
            let mut cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            cache.opened = opened;
            cache.loaded = Some(Instant::now());
        }
        let cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries
            .iter()
            .filter_map(|e| {
                cache
                    .opened
                    .get(&e.channel)
                    .map(|c| (e.channel.clone(), c.clone()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
