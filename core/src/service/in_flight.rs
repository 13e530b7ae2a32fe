//! Messages received but not yet written. A verdict at `now` is true only if
//! every message received before `now` is already in the store: when the
//! storage stalls, heartbeats received during the stall are written late,
//! and a sweep that read the servers meanwhile would call them missed. So
//! the sweep waits for the messages received before its `now` (an epoch
//! flip, as in read-copy-update: cheap for ingest, one atomic add and one
//! subtract per message).
//!
//! A write that takes longer than the stall threshold counts as a storage
//! failure from the moment the message was received: while its storage
//! stalls, a node is not really receiving (senders time out and give up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// Tokio's clock, so tests on paused time see stalls too.
use tokio::time::Instant;

/// The two generations of in-flight messages.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    epoch: AtomicU64,
    counts: [AtomicU64; 2],
}

impl InFlight {
    /// Registers a message; read the receipt time *after* this.
    pub(super) fn enter(&self) -> usize {
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            let slot = (epoch & 1) as usize;
            self.counts[slot].fetch_add(1, Ordering::AcqRel);
            // A flip between the load and the add: count in the new slot.
            if self.epoch.load(Ordering::Acquire) == epoch {
                return slot;
            }
            self.counts[slot].fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The message registered in `slot` is written (or refused, or dropped).
    pub(super) fn leave(&self, slot: usize) {
        self.counts[slot].fetch_sub(1, Ordering::AcqRel);
    }

    /// Waits until every message registered before this call has left.
    /// Callers read their `now` before calling, and must not call it
    /// concurrently (the sweep holds a lock).
    pub(super) async fn drain(&self) {
        let old = (self.epoch.fetch_add(1, Ordering::AcqRel) & 1) as usize;
        let mut pause = Duration::from_micros(200);
        while self.counts[old].load(Ordering::Acquire) != 0 {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// How long a message took to be written, checked when it leaves.
#[derive(Debug)]
pub(super) struct Stopwatch(Instant);

impl Stopwatch {
    pub(super) fn start() -> Self {
        Self(Instant::now())
    }

    pub(super) fn exceeded(&self, threshold: Duration) -> bool {
        self.0.elapsed() > threshold
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drain_waits_for_messages_registered_before_it_and_no_others() {
        let in_flight = Arc::new(InFlight::default());
        let before = in_flight.enter();
        let drained = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.drain().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Registered after the flip: not waited for.
        let after = in_flight.enter();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !drained.is_finished(),
            "drain returned with a message in flight"
        );
        in_flight.leave(before);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("drain returns once the earlier message left")
            .expect("task");
        in_flight.leave(after);
        tokio::time::timeout(Duration::from_secs(5), in_flight.drain())
            .await
            .expect("nothing in flight");
    }
}
