//! Audit records a loop cannot multiply: one per key per period, saying
//! how many times it happened since the last record; memory bounded by
//! forgetting keys whose period has passed, then all, past `max_keys`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct RecordLimit {
    period: Duration,
    max_keys: usize,
    keys: Mutex<HashMap<String, Since>>,
}

#[derive(Debug)]
struct Since {
    recorded_at: Instant,
    /// Times it happened since that record.
    unrecorded: u64,
}

impl RecordLimit {
    pub(super) fn new(period: Duration, max_keys: usize) -> Self {
        Self {
            period,
            max_keys,
            keys: Mutex::default(),
        }
    }

    /// Counts one `key` at `now`: `Some(n)` when it is to be recorded (n
    /// times since its last record, this one included), `None` when its
    /// last record is less than a period old.
    pub(super) fn due(&self, key: &str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = keys.get_mut(key) {
            since.unrecorded += 1;
            if now.duration_since(since.recorded_at) < self.period {
                return None;
            }
            let count = since.unrecorded;
            *since = Since {
                recorded_at: now,
                unrecorded: 0,
            };
            return Some(count);
        }
        if keys.len() >= self.max_keys {
            keys.retain(|_, since| now.duration_since(since.recorded_at) < self.period);
            if keys.len() >= self.max_keys {
                keys.clear();
            }
        }
        keys.insert(
            key.to_owned(),
            Since {
                recorded_at: now,
                unrecorded: 0,
            },
        );
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_key_per_period_with_the_count() {
        let limit = RecordLimit::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert_eq!(limit.due("a", t0), Some(1));
        assert_eq!(limit.due("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(
            limit.due("b", t0 + Duration::from_secs(1)),
            Some(1),
            "keys apart"
        );
        assert_eq!(limit.due("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(
            limit.due("a", t0 + Duration::from_secs(10)),
            Some(3),
            "the two left out and this one"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let limit = RecordLimit::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        for n in 0..1000 {
            limit.due(&n.to_string(), t0);
        }
        assert!(limit.keys.lock().unwrap().len() <= 3);
        // Past the period, old keys are forgotten first, the recent kept.
        let limit = RecordLimit::new(Duration::from_secs(10), 3);
        limit.due("old 1", t0);
        limit.due("old 2", t0);
        limit.due("recent", t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(11);
        limit.due("new", later);
        let mut kept: Vec<String> = limit.keys.lock().unwrap().keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["new", "recent"]);
        assert_eq!(limit.due("recent", later), None, "still within its period");
    }
}
