//! What the notifier hands to delivery: entries it claimed for this node as
//! it queued them, waiting in the order they came, each hand-over with the
//! instant its claims began (so a fresh one is never judged by an older
//! one's claim).

use std::collections::VecDeque;
use std::time::Instant;

use carewatch_core::notification::OutboxEntry;

/// One step's claimed entries.
#[derive(Debug)]
pub(super) struct Handed {
    /// No later than the claims began.
    pub(super) claimed_at: Instant,
    pub(super) entries: Vec<OutboxEntry>,
}

/// Hand-overs not sent yet, oldest first.
#[derive(Debug, Default)]
pub(super) struct HandedQueue {
    waiting: VecDeque<Handed>,
}

impl HandedQueue {
    pub(super) fn push(&mut self, handed: Handed) {
        if !handed.entries.is_empty() {
            self.waiting.push_back(handed);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The oldest entries, at most `most` (at least one), as one batch
    /// judged by the oldest claim in it; the rest keep waiting.
    pub(super) fn take(&mut self, most: usize) -> Option<Handed> {
        let most = most.max(1);
        let mut batch = self.waiting.pop_front()?;
        if batch.entries.len() > most {
            let rest = batch.entries.split_off(most);
            self.waiting.push_front(Handed {
                claimed_at: batch.claimed_at,
                entries: rest,
            });
            return Some(batch);
        }
        while let Some(next) = self.waiting.front() {
            if batch.entries.len() + next.entries.len() > most {
                break;
            }
            if let Some(next) = self.waiting.pop_front() {
                batch.claimed_at = batch.claimed_at.min(next.claimed_at);
                batch.entries.extend(next.entries);
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use carewatch_core::notification::OutboxEntry;

    use super::*;

    fn entries(ids: std::ops::Range<u64>) -> Vec<OutboxEntry> {
        crate::dispatcher::support::entries_for_tests(ids)
    }

    fn ids(batch: &Handed) -> Vec<u64> {
        batch.entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn batches_come_oldest_first_at_most_the_limit_each_judged_by_its_oldest_claim() {
        let start = Instant::now();
        let later = start + Duration::from_secs(1);
        let latest = start + Duration::from_secs(2);
        let mut queue = HandedQueue::default();
        queue.push(Handed {
            claimed_at: start,
            entries: entries(0..5),
        });
        queue.push(Handed {
            claimed_at: later,
            entries: entries(5..7),
        });
        queue.push(Handed {
            claimed_at: latest,
            entries: Vec::new(),
        });
        queue.push(Handed {
            claimed_at: latest,
            entries: entries(7..9),
        });

        let first = queue.take(3).expect("a batch");
        assert_eq!(ids(&first), [0, 1, 2], "a large hand-over is split");
        assert_eq!(first.claimed_at, start);
        let second = queue.take(3).expect("a batch");
        assert_eq!(ids(&second), [3, 4], "the next would not fit");
        assert_eq!(second.claimed_at, start, "the rest keeps its claim's start");
        let third = queue.take(4).expect("a batch");
        assert_eq!(ids(&third), [5, 6, 7, 8], "small hand-overs go together");
        assert_eq!(third.claimed_at, later, "judged by the oldest in it");
        assert!(queue.is_empty(), "an empty hand-over is not kept");
        assert!(queue.take(3).is_none());
    }

    #[test]
    fn a_limit_of_zero_still_takes_one() {
        let mut queue = HandedQueue::default();
        queue.push(Handed {
            claimed_at: Instant::now(),
            entries: entries(0..2),
        });
        assert_eq!(ids(&queue.take(0).expect("a batch")), [0]);
        assert_eq!(ids(&queue.take(0).expect("a batch")), [1]);
    }
}
