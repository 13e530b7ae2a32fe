//! What a stopping dispatcher releases: the entries this node claimed and
//! did not finish, once the store calls still running for them are done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use carewatch_core::notification::OutboxEntry;
use tokio::sync::Notify;

/// The entries this node claimed (from the outbox, or in its notifier's
/// commit) whose outcome it has not recorded, each with when its claim
/// began. One left out as too late to start, or whose outcome could not be
/// written, stays until its claim has run out: then another node (or a
/// process sharing this node's id) may have claimed it since, and it is
/// not this node's to release.
#[derive(Debug)]
pub(super) struct Unfinished {
    lease: Duration,
    claims: Mutex<HashMap<u64, Instant>>,
}

/// Past this many, claims that have run out are dropped as more come.
const KEEP_WITHOUT_LOOKING: usize = 1024;

impl Unfinished {
    pub(super) fn new(lease: Duration) -> Self {
        Self {
            lease,
            claims: Mutex::default(),
        }
    }

    /// `entries` were claimed for this node, their claim beginning no
    /// later than `claimed_at`.
    pub(super) fn claimed(&self, entries: &[OutboxEntry], claimed_at: Instant) {
        let mut claims = self.lock();
        if claims.len() > KEEP_WITHOUT_LOOKING {
            claims.retain(|_, at| at.elapsed() < self.lease);
        }
        claims.extend(entries.iter().map(|e| (e.id, claimed_at)));
    }

    pub(super) fn finished(&self, ids: impl IntoIterator<Item = u64>) {
        let mut claims = self.lock();
        for id in ids {
            claims.remove(&id);
        }
    }

    /// The ids whose claim still lasts, oldest first, leaving none. A
    /// second is kept in hand: the store's clock and this one differ.
    pub(super) fn take(&self) -> Vec<u64> {
        let live = self.lease.saturating_sub(Duration::from_secs(1));
        let mut ids: Vec<u64> = self
            .lock()
            .drain()
            .filter(|(_, at)| at.elapsed() < live)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Store calls still running. A call spawned on the store's runtime goes
/// on when the dispatcher stops waiting for it: an outcome written after
/// the release would find its entry no longer claimed, and be lost.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One call in flight, until dropped (with the call's future, wherever it
/// runs).
#[derive(Debug)]
pub(super) struct InFlightCall(Arc<InFlight>);

impl InFlight {
    pub(super) fn enter(self: &Arc<Self>) -> InFlightCall {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightCall(self.clone())
    }

    /// Completes when no call is in flight.
    pub(super) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a call ending in between
            // still wakes this.
            notified.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightCall {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::support::entries_for_tests;
    use super::*;

    #[test]
    fn unfinished_ids_are_those_claimed_and_not_finished() {
        let unfinished = Unfinished::new(Duration::from_secs(60));
        unfinished.claimed(&entries_for_tests([3, 1, 2]), Instant::now());
        unfinished.claimed(&entries_for_tests([7]), Instant::now());
        unfinished.finished([2, 9]);
        assert_eq!(unfinished.take(), [1, 3, 7]);
        assert!(unfinished.take().is_empty(), "taken");
    }

    #[test]
    fn a_claim_that_has_run_out_is_not_released() {
        let unfinished = Unfinished::new(Duration::from_secs(60));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("a minute after boot");
        unfinished.claimed(&entries_for_tests([1]), long_ago);
        unfinished.claimed(&entries_for_tests([2]), Instant::now());
        assert_eq!(unfinished.take(), [2]);
    }

    #[test]
    fn claims_that_have_run_out_are_dropped_as_more_come() {
        let unfinished = Unfinished::new(Duration::from_secs(60));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("a minute after boot");
        let many = KEEP_WITHOUT_LOOKING as u64 + 1;
        unfinished.claimed(&entries_for_tests(0..many), long_ago);
        unfinished.claimed(&entries_for_tests([many]), Instant::now());
        assert_eq!(unfinished.lock().len(), 1, "only the live claim is kept");
    }

    #[tokio::test]
    async fn idle_waits_for_every_call_in_flight() {
        let in_flight = Arc::new(InFlight::default());
        tokio::time::timeout(Duration::from_secs(1), in_flight.idle())
            .await
            .expect("idle with no call");
        let first = in_flight.enter();
        let second = in_flight.enter();
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle().await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "one call is still in flight");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("idle once the last call ended")
            .expect("joined");
    }
}
