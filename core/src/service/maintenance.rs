//! Time-driven work: the availability sweep and own-downtime detection.

use std::future::Future;
use std::time::Duration;

use super::Carewatch;
use crate::availability::{self, DowntimeWindow};
use crate::error::Result;
use crate::store::AvailabilityChange;

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

impl Carewatch {
    /// Evaluates every server whose availability may have changed with time
    /// (a heartbeat missed, a threshold crossed) and records the changes.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let now = self.now();
        let downtime = self.downtime();
        let config = &self.inner.config;
        let mut report = SweepReport::default();
        loop {
            let due = self.inner.store.due_servers(now, SWEEP_BATCH).await?;
            let changes: Vec<AvailabilityChange> = due
                .iter()
                .map(|s| {
                    let e = availability::evaluate(
                        Some(s.last_seen_at),
                        s.interval,
                        &config.policy,
                        &downtime,
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
            report.evaluated += due.len();
            for change in self.inner.store.apply_availability(&changes).await? {
                report.installations_changed += 1;
                self.publish(change);
            }
            // Each change moves its check past `now`, so the next read returns others.
            if due.len() < SWEEP_BATCH as usize {
                return Ok(report);
            }
        }
    }

    /// Records that this node is receiving. If no node was for longer than
    /// the liveness tolerance, the gap becomes a downtime window.
    pub async fn mark_alive(&self) -> Result<()> {
        let now = self.now();
        let previous = self
            .inner
            .store
            .mark_alive(&self.inner.config.node_id, now)
            .await?;
        if let Some(previous) = previous
            && now.since(previous) > self.inner.config.liveness_tolerance
        {
            let window = DowntimeWindow::new(previous, now)?;
            tracing::warn!(from = %previous, to = %now, "Carewatch was not receiving: recorded as own downtime");
            self.inner.store.record_downtime(window).await?;
            self.reload_downtime().await?;
        }
        Ok(())
    }

    /// One round of maintenance: liveness, then the sweep.
    pub async fn tick(&self) -> Result<SweepReport> {
        self.mark_alive().await?;
        self.sweep().await
    }

    /// Runs the maintenance of [`Carewatch::tick`] every `every` until
    /// `shutdown` completes. Errors are logged and retried: a storage outage
    /// must not stop the loop.
    ///
    /// Liveness is marked on its own timer, beside the sweeps: a long sweep
    /// (a million servers due after a restart takes tens of seconds) must not
    /// look like the service stopped receiving and be recorded as own
    /// downtime, which would excuse real missed heartbeats.
    pub async fn run_maintenance(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        let liveness = async {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = self.mark_alive().await {
                    tracing::warn!(error = %e, "liveness mark failed; retrying next tick");
                }
            }
        };
        let sweeps = async {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reload_every = 0u32;
            loop {
                interval.tick().await;
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "sweep failed; retrying next tick");
                }
                // Other nodes may have recorded downtime windows too.
                reload_every = reload_every.wrapping_add(1);
                if reload_every.is_multiple_of(30)
                    && let Err(e) = self.reload_downtime().await
                {
                    tracing::warn!(error = %e, "reloading downtime windows failed");
                }
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = liveness => {}
            () = sweeps => {}
        }
    }
}
