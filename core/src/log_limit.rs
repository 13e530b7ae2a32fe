//! Log lines a flood cannot multiply: a line of each kind at most once per
//! period, saying how many times it happened since the last one. A garbage
//! flood, or a fleet retrying through a database outage, would otherwise
//! write a line per message.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Per kind of line: how often it may be written.
#[derive(Debug)]
pub struct RateLimitedLog {
    kinds: KeyedLimit<&'static str>,
}

impl Default for RateLimitedLog {
    /// A line of each kind at most every 10 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl RateLimitedLog {
    /// At most one line of each kind per `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            kinds: KeyedLimit::new(period, usize::MAX),
        }
    }

    /// Counts one `kind`; if its last line is at least a period old (or it
    /// has none), calls `log` with how many times it happened since then,
    /// this one included.
    pub fn log(&self, kind: &'static str, log: impl FnOnce(u64)) {
        self.log_at(kind, Instant::now(), log);
    }

    fn log_at(&self, kind: &'static str, now: Instant, log: impl FnOnce(u64)) {
        if let Some(count) = self.kinds.due(kind, now) {
            log(count);
        }
    }
}

/// Once per key per period, saying how many times it happened since the
/// last time (log lines, audit records a loop must not multiply); memory
/// bounded by forgetting keys whose period has passed, then all, past
/// `max_keys`.
#[derive(Debug)]
pub struct KeyedLimit<K> {
    period: Duration,
    max_keys: usize,
    keys: Mutex<HashMap<K, Since>>,
}

#[derive(Debug)]
struct Since {
    at: Instant,
    /// Times it happened since then.
    since: u64,
}

impl<K: Hash + Eq> KeyedLimit<K> {
    /// Once per key per `period`, at most `max_keys` keys remembered.
    pub fn new(period: Duration, max_keys: usize) -> Self {
        Self {
            period,
            max_keys,
            keys: Mutex::default(),
        }
    }

    /// Counts one `key` at `now`: `Some(n)` when its time has come (n times
    /// since the last, this one included), `None` when the last is less
    /// than a period old.
    pub fn due(&self, key: K, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = keys.get_mut(&key) {
            entry.since += 1;
            if now.duration_since(entry.at) < self.period {
                return None;
            }
            let count = entry.since;
            *entry = Since { at: now, since: 0 };
            return Some(count);
        }
        if keys.len() >= self.max_keys {
            keys.retain(|_, entry| now.duration_since(entry.at) < self.period);
            if keys.len() >= self.max_keys {
                keys.clear();
            }
        }
        keys.insert(key, Since { at: now, since: 0 });
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_and_period_with_the_count_since_the_last() {
        let limit = RateLimitedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        let mut lines = Vec::new();
        for n in 0..1000u64 {
            let at = start + Duration::from_millis(n * 25); // 25 s in all
            limit.log_at("unknown_installation", at, |c| {
                lines.push(("unknown", n, c))
            });
            if n % 100 == 0 {
                limit.log_at("replayed", at, |c| lines.push(("replayed", n, c)));
            }
        }
        assert_eq!(
            lines,
            [
                ("unknown", 0, 1),
                ("replayed", 0, 1),
                ("unknown", 400, 400),
                ("replayed", 400, 4),
                ("unknown", 800, 400),
                ("replayed", 800, 4),
            ]
        );
    }

    #[test]
    fn one_record_per_key_per_period_with_the_count() {
        let limit = KeyedLimit::new(Duration::from_secs(10), 100);
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
        let limit = KeyedLimit::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        for n in 0..1000 {
            limit.due(n.to_string(), t0);
        }
        assert!(limit.keys.lock().unwrap().len() <= 3);
        // Past the period, old keys are forgotten first, the recent kept.
        let limit = KeyedLimit::new(Duration::from_secs(10), 3);
        limit.due("old 1", t0);
        limit.due("old 2", t0);
        limit.due("recent", t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(11);
        limit.due("new", later);
        let mut kept: Vec<&str> = limit.keys.lock().unwrap().keys().copied().collect();
        kept.sort();
        assert_eq!(kept, ["new", "recent"]);
        assert_eq!(limit.due("recent", later), None, "still within its period");
    }
}
