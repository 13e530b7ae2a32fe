//! Log lines a flood cannot multiply: a line of each kind at most once per
//! period, saying how many times it happened since the last one. A garbage
//! flood, or a fleet retrying through a database outage, would otherwise
//! write a line per message.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Per kind of line: how often it may be written.
#[derive(Debug)]
pub struct RateLimitedLog {
    period: Duration,
    kinds: Mutex<HashMap<&'static str, Since>>,
}

#[derive(Debug, Default)]
struct Since {
    /// Times it happened since its last line.
    unlogged: u64,
    last_line: Option<Instant>,
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
            period,
            kinds: Mutex::default(),
        }
    }

    /// Counts one `kind`; if its last line is at least a period old (or it
    /// has none), calls `log` with how many times it happened since then,
    /// this one included.
    pub fn log(&self, kind: &'static str, log: impl FnOnce(u64)) {
        self.log_at(kind, Instant::now(), log);
    }

    fn log_at(&self, kind: &'static str, now: Instant, log: impl FnOnce(u64)) {
        let count = {
            let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
            let since = kinds.entry(kind).or_default();
            since.unlogged += 1;
            if since
                .last_line
                .is_some_and(|at| now.duration_since(at) < self.period)
            {
                return;
            }
            since.last_line = Some(now);
            std::mem::take(&mut since.unlogged)
        };
        log(count);
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
}
