//! Time-driven work: the availability sweep and own-downtime detection.

use std::future::Future;
use std::time::Duration;

use std::sync::atomic::Ordering;

use super::in_flight::Stopwatch;
use super::{Carewatch, NO_OUTAGE};
use crate::availability;
use crate::error::{Error, Result, Unavailability};
use crate::feed::EventId;
use crate::liveness::{LivenessMark, MarkReason};
use crate::store::{AvailabilityChange, AvailabilityOutcome};

/// Servers evaluated per store round trip during a sweep.
const SWEEP_BATCH: u32 = 1000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Servers whose check was due.
    pub evaluated: usize,
    /// Installations whose overview line changed.
    pub installations_changed: usize,
}

/// How often maintenance prunes the change feed and the outbox and deletes
/// withdrawn installations' data.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// How many change retentions an event the notifier has not processed is
/// kept at most ([`Carewatch::prune_changes`]).
const UNPROCESSED_KEPT_AT_MOST: u32 = 4;

/// Finished notifications deleted per write: each batch holds the store's
/// write lock only briefly.
const PRUNE_BATCH: u32 = 1000;
use super::MIN_AUDIT_RETENTION;

/// How often one sweep starts over because another node recorded a
/// downtime window meanwhile, before it gives up until the next tick.
const SWEEP_RESTARTS: u32 = 3;

impl Carewatch {
    /// Evaluates every server whose availability may have changed with time
    /// (a heartbeat missed, a threshold crossed) and records the changes.
    ///
    /// Verdicts at `now` are made once every message received before `now`
    /// is written, and applied only with the store's latest downtime windows
    /// (the store checks the epoch in the same transaction; if a window was
    /// recorded meanwhile, the sweep reloads and starts over), and never
    /// while this node has a storage failure not yet recorded as own
    /// downtime: such a sweep would count the outage as missed heartbeats.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let _one_at_a_time = self.inner.sweeping.lock().await;
        let mut report = SweepReport::default();
        for _ in 0..SWEEP_RESTARTS {
            match self.sweep_once(&mut report).await {
                Ok(true) => return Ok(report),
                Ok(false) => self.reload_downtime().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Deletes the outbox's delivered and given-up notifications older than
    /// the retention ([`crate::Config::with_notification_retention`]), a
    /// batch at a time; returns how many. Maintenance does this regularly.
    pub async fn prune_notifications(&self) -> Result<u64> {
        let before = self
            .now()
            .saturating_sub(self.inner.config.notification_retention);
        in_batches(|limit| self.inner.store.prune_outbox(before, limit)).await
    }

    /// Deletes the audit entries older than the audit retention
    /// ([`crate::Config::with_audit_retention`], at least a day; none when
    /// it is `None`), a batch at a time; returns how many. Maintenance does
    /// this regularly.
    pub async fn prune_audit(&self) -> Result<u64> {
        let Some(retention) = self.inner.config.audit_retention else {
            return Ok(0);
        };
        let before = self
            .now()
            .saturating_sub(retention.max(MIN_AUDIT_RETENTION));
        in_batches(|limit| self.inner.store.prune_audit(before, limit)).await
    }

    /// Deletes the change-feed events older than the retention
    /// ([`crate::Config::with_change_retention`]) that the notifier has
    /// processed, and every event older than four retentions; returns how
    /// many. An event the notifier has not reached
    /// stays that long: after downtime longer than the retention its
    /// notifications would otherwise be lost (a notifier that never runs,
    /// or is stuck, does not keep the feed growing for ever; the latter is
    /// logged). Maintenance does this regularly.
    pub async fn prune_changes(&self) -> Result<u64> {
        let now = self.now();
        let retention = self.inner.config.change_retention;
        let before = now.saturating_sub(retention);
        let store = &self.inner.store;
        let through = store.notifier_position().await?.position;
        let mut pruned = store.prune_changes(before, through).await?;
        let at_most = now.saturating_sub(retention.saturating_mul(UNPROCESSED_KEPT_AT_MOST));
        pruned += store.prune_changes(at_most, EventId(u64::MAX)).await?;
        if let Some(oldest) = store
            .changes(through, 1)
            .await
            .ok()
            .and_then(|e| e.into_iter().next())
            && oldest.at < before
        {
            tracing::warn!(
                position = %through,
                oldest_unprocessed = %oldest.at,
                "the notifier is behind the change feed by more than its retention; its events are kept until it catches up, at most {UNPROCESSED_KEPT_AT_MOST} retentions"
            );
        }
        Ok(pruned)
    }

    /// One pass; `false` if it must start over with reloaded windows.
    async fn sweep_once(&self, report: &mut SweepReport) -> Result<bool> {
        let now = self.now();
        // Every message received before `now` is written (or refused) first:
        // a stalled write must not look like a missed heartbeat.
        self.inner.in_flight.drain().await;
        let downtime = self.downtime_state();
        let config = &self.inner.config;
        // Installations whose Care Plus ended stop being judged first: their
        // silence from then on is Carewatch's refusal, not a fault.
        self.watch_storage(now, self.inner.store.park_expired(now).await)?;
        loop {
            let due =
                self.watch_storage(now, self.inner.store.due_servers(now, SWEEP_BATCH).await)?;
            let changes: Vec<AvailabilityChange> = due
                .iter()
                .map(|s| {
                    let e = availability::evaluate(
                        Some(s.counted_since()),
                        s.interval,
                        &config.policy,
                        &downtime.windows,
                        now,
                    );
                    AvailabilityChange {
                        slc: s.slc.clone(),
                        server: s.server.clone(),
                        expected_last_seen: s.last_seen_at,
                        availability: e.availability,
                        next_check_at: e.next_change_at,
                        evaluated_at: now,
                    }
                })
                .collect();
            if let Some(since) = self.outage_since() {
                return Err(Error::StorageUnavailable {
                    reason: Unavailability::Unreachable,
                    message: format!(
                        "sweep postponed: the storage failed since {since} and that outage is not recorded as own downtime yet"
                    ),
                    source: None,
                });
            }
            let applied = self.watch_storage(
                now,
                self.inner
                    .store
                    .apply_availability(&changes, downtime.epoch)
                    .await,
            )?;
            match applied {
                AvailabilityOutcome::Applied(summary_changes) => {
                    report.evaluated += due.len();
                    report.installations_changed += summary_changes.len();
                    if !changes.is_empty() {
                        self.feed_written();
                    }
                }
                AvailabilityOutcome::DowntimeChanged => return Ok(false),
            }
            // Each change moves its check past `now`, so the next read returns others.
            if due.len() < SWEEP_BATCH as usize {
                return Ok(true);
            }
        }
    }

    /// Records that this node is receiving; if no node was meanwhile (a
    /// stall of this process, or a storage outage this node saw), the gap
    /// becomes a downtime window, in the same transaction.
    pub async fn mark_alive(&self) -> Result<()> {
        self.mark(MarkReason::Running).await
    }

    pub(super) async fn mark(&self, reason: MarkReason) -> Result<()> {
        // One mark at a time: two marks that both saw the same pending
        // outage would record its window twice.
        let _one_at_a_time = self.inner.marking.lock().await;
        let now = self.now();
        let pending = self.outage_since();
        let reason = match (reason, pending) {
            (MarkReason::Running, Some(since)) => MarkReason::StorageRecovered { since },
            (reason, _) => reason,
        };
        let mark = LivenessMark {
            node: self.inner.config.node_id.clone(),
            at: now,
            reason,
            tolerance: self.inner.config.liveness_tolerance,
        };
        let stopwatch = Stopwatch::start();
        let window = self.watch_storage(now, self.inner.store.mark_alive(&mark).await)?;
        if let Some(since) = pending {
            // The mark's transaction recorded the outage: cleared now (a
            // newer failure stays), so that failing to load its window
            // below cannot make the next mark record it again, stretched
            // over time this node was receiving. Until the window is
            // loaded, the sweep's downtime epoch is stale and the store
            // refuses its verdicts.
            let _ = self.inner.outage_since.compare_exchange(
                since.as_millis(),
                NO_OUTAGE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            // Another node may have recorded the outage first (this mark
            // then records nothing): load it all the same.
            self.inner.downtime_stale.store(true, Ordering::Release);
            tracing::info!(since = %since, "storage works again");
        }
        if let Some(window) = window {
            tracing::warn!(from = %window.start(), to = %window.end(),
                "Carewatch was not receiving: recorded as own downtime");
            self.inner.downtime_stale.store(true, Ordering::Release);
        }
        if self.inner.downtime_stale.load(Ordering::Acquire) {
            // Marks are one at a time: nothing sets the flag meanwhile.
            self.watch_storage(now, self.reload_downtime().await)?;
            self.inner.downtime_stale.store(false, Ordering::Release);
        }
        if stopwatch.exceeded(self.inner.config.stall_limit) {
            // Written, but late: the next mark records the stall.
            self.note_storage_stall(now);
            return Ok(());
        }
        // Said only now, so that a recovery mark that stalled never says
        // the storage works in between.
        self.publish_storage_state();
        self.inner
            .last_mark
            .fetch_max(now.as_millis(), Ordering::AcqRel);
        Ok(())
    }

    /// One round of maintenance: liveness, then the sweep.
    /// Deletes the reported data (servers, conditions, history) of
    /// installations whose consent was withdrawn longer ago than the
    /// retention ([`super::Config::with_withdrawn_data_retention`]); their
    /// registration stays. Housekeeping runs it; returns how many.
    pub async fn delete_withdrawn_data(&self) -> Result<u32> {
        let now = self.now();
        let before = now.saturating_sub(self.inner.config.withdrawn_data_retention);
        let deleted = self.inner.store.delete_withdrawn_data(before, now).await?;
        if deleted > 0 {
            self.feed_written();
        }
        Ok(deleted)
    }

    pub async fn tick(&self) -> Result<SweepReport> {
        self.mark_alive().await?;
        self.sweep().await
    }

    /// Runs maintenance until `shutdown` completes or the node stops
    /// receiving: a liveness mark every `every`, a sweep four times as often
    /// (so a missed heartbeat shows within a quarter of `every` of its
    /// deadline). Errors are logged and retried: a storage outage must not
    /// stop the loop.
    ///
    /// Liveness is marked on its own timer, beside the sweeps: a long sweep
    /// (a million servers due after a restart takes tens of seconds) must not
    /// look like the service stopped receiving and be recorded as own
    /// downtime, which would excuse real missed heartbeats. A sweep marks
    /// first when the last mark is older than the liveness tolerance (the
    /// process was stalled), so its clock is never ahead of the windows.
    pub async fn run_maintenance(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        let liveness = async {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = survive("the liveness mark", self.mark_alive()).await {
                    tracing::warn!(error = %e, "liveness mark failed; retrying next tick");
                }
            }
        };
        let sweeps = async {
            let mut interval = tokio::time::interval(every / 4);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reload_every = 0u32;
            loop {
                interval.tick().await;
                let stale = self.now().since(crate::time::Timestamp::from_millis(
                    self.inner.last_mark.load(Ordering::Acquire),
                )) > self.inner.config.liveness_tolerance;
                let result = if stale {
                    survive("maintenance", self.tick()).await
                } else {
                    survive("the sweep", self.sweep()).await
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "sweep failed; retrying next tick");
                }
                // Other nodes may have recorded downtime windows too.
                reload_every = reload_every.wrapping_add(1);
                if reload_every.is_multiple_of(120)
                    && let Err(e) = self.reload_downtime().await
                {
                    tracing::warn!(error = %e, "reloading downtime windows failed");
                }
            }
        };
        let housekeeping = async {
            let mut interval = tokio::time::interval(HOUSEKEEPING_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                housekeeping_step(
                    "pruning",
                    self.prune_changes(),
                    "pruned the change feed",
                    "pruning the change feed failed",
                )
                .await;
                housekeeping_step(
                    "pruning",
                    self.prune_notifications(),
                    "deleted finished notifications past their retention",
                    "deleting old notifications failed",
                )
                .await;
                housekeeping_step(
                    "pruning",
                    self.prune_audit(),
                    "deleted audit entries past their retention",
                    "deleting old audit entries failed",
                )
                .await;
                housekeeping_step(
                    "pruning",
                    self.prune_credentials(),
                    "deleted expired sessions and invitations and long-ended API tokens",
                    "deleting expired sessions failed",
                )
                .await;
                housekeeping_step(
                    "deleting data",
                    async { self.delete_withdrawn_data().await.map(u64::from) },
                    "deleted the reported data of installations whose consent was withdrawn",
                    "deleting withdrawn installations' data failed",
                )
                .await;
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = self.stopping() => {}
            () = liveness => {}
            () = sweeps => {}
            () = housekeeping => {}
        }
    }
}

/// Deletes with `batch` ([`PRUNE_BATCH`] at a time) until a batch finds
/// fewer; returns how many in all.
async fn in_batches<F, Fut>(mut batch: F) -> Result<u64>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut pruned = 0;
    loop {
        let deleted = batch(PRUNE_BATCH).await?;
        pruned += deleted;
        if deleted < u64::from(PRUNE_BATCH) {
            return Ok(pruned);
        }
    }
}

/// One housekeeping step: how many it dealt with is logged (when any), a
/// failure warned about; the next round tries again.
async fn housekeeping_step(
    what: &'static str,
    step: impl Future<Output = Result<u64>>,
    done: &str,
    failed: &str,
) {
    match survive(what, step).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "{done}"),
        Err(e) => tracing::warn!(error = %e, "{failed}"),
    }
}

/// Runs one round of a maintenance loop; a panic in it becomes its error
/// (logged by the loop, which goes on). Left to unwind, it would end the
/// whole maintenance task: no more liveness marks or sweeps, silently, for
/// the rest of the process's life.
async fn survive<T>(what: &'static str, round: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(round).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(Error::storage(format!("{what} panicked"), text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_round_is_an_error_and_the_loop_goes_on() {
        let panicked = survive("the sweep", async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            Ok(())
        })
        .await
        .expect_err("a panic is an error");
        let text = format!("{panicked}: {:?}", std::error::Error::source(&panicked));
        assert!(
            text.contains("the sweep panicked") && text.contains("boom"),
            "{text}"
        );
        assert_eq!(
            survive("the sweep", async { Ok(7) }).await.expect("runs"),
            7
        );
    }
}
