//! Slowing down guessing: repeated authentication failures from one source
//! (an address, later an account) are answered ever more slowly, and logged
//! at a bounded rate. A source that does not fail is never slowed, but for
//! attempts it makes while more than a few of its attempts are under way
//! (those count as failures until they end: see [`FailureThrottle::begin`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How failures are counted and punished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures answered at full speed before the delays start.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A source's count is forgotten this long after its last failure.
    pub forget_after: Duration,
    /// At most one log line per source this often.
    pub log_every: Duration,
    /// Sources remembered at once (memory bound under a spray of addresses).
    pub max_sources: usize,
}

impl Default for ThrottlePolicy {
    /// Five free failures, then 250 ms doubling up to 5 s; forgotten after
    /// ten quiet minutes; a log line per source at most every 10 s.
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            forget_after: Duration::from_secs(600),
            log_every: Duration::from_secs(10),
            max_sources: 100_000,
        }
    }
}

impl ThrottlePolicy {
    /// The delay before answering the next attempt after `failures` failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        self.base_delay
            .saturating_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .min(self.max_delay)
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    failures: u32,
    last_failure: Instant,
    logged_at: Option<Instant>,
    /// Attempts begun and not ended: each counts as a failure until it
    /// ends, so a burst of concurrent guesses is slowed like a sequence.
    in_progress: u32,
}

/// What a recorded failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures from this source so far (within the forgetting time).
    pub failures: u32,
    /// Whether to log this one (at most once per `log_every` per source).
    pub log: bool,
}

/// Failure counts per source.
#[derive(Debug)]
pub struct FailureThrottle {
    policy: ThrottlePolicy,
    sources: Mutex<HashMap<String, Source>>,
}

impl Default for FailureThrottle {
    fn default() -> Self {
        Self::new(ThrottlePolicy::default())
    }
}

impl FailureThrottle {
    /// An empty throttle.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            sources: Mutex::default(),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, Source>> {
        // The map holds plain counters: a panic elsewhere cannot leave it torn.
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long to wait before checking an attempt from `source`.
    pub fn delay(&self, source: &str, now: Instant) -> Duration {
        match self.sources().get(source) {
            Some(s) if now.duration_since(s.last_failure) < self.policy.forget_after => {
                self.policy.delay_after(s.failures)
            }
            _ => Duration::ZERO,
        }
    }

    /// Begins an attempt from `source`: how long to wait before checking
    /// it, counting the attempts from it still under way as failures (a
    /// delay read before concurrent attempts fail would let a burst
    /// through at full speed). Every `begin` needs its [`Self::end`].
    pub fn begin(&self, source: &str, now: Instant) -> Duration {
        let policy = self.policy;
        let mut sources = self.sources();
        let entry = current(&mut sources, source, now, policy);
        let delay = policy.delay_after(entry.failures.saturating_add(entry.in_progress));
        entry.in_progress = entry.in_progress.saturating_add(1);
        delay
    }

    /// Ends an attempt begun with [`Self::begin`] (after recording its
    /// failure or success). A source with nothing to remember is dropped.
    pub fn end(&self, source: &str) {
        let mut sources = self.sources();
        if let Some(entry) = sources.get_mut(source) {
            entry.in_progress = entry.in_progress.saturating_sub(1);
            if entry.in_progress == 0 && entry.failures == 0 {
                sources.remove(source);
            }
        }
    }

    /// Records a failed attempt from `source`.
    pub fn failed(&self, source: &str, now: Instant) -> Failure {
        let policy = self.policy;
        let mut sources = self.sources();
        let entry = current(&mut sources, source, now, policy);
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let log = entry
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= policy.log_every);
        if log {
            entry.logged_at = Some(now);
        }
        Failure {
            failures: entry.failures,
            log,
        }
    }

    /// Forgets `source`'s failures: it proved it holds a valid credential.
    /// Its attempts still under way keep counting until they end.
    pub fn succeeded(&self, source: &str) {
        let mut sources = self.sources();
        match sources.get_mut(source) {
            Some(entry) if entry.in_progress > 0 => entry.failures = 0,
            _ => {
                sources.remove(source);
            }
        }
    }
}

/// `source`'s entry (made if new, within the memory bound), its failures
/// forgotten if the last one is older than the forgetting time.
fn current<'a>(
    sources: &'a mut HashMap<String, Source>,
    source: &str,
    now: Instant,
    policy: ThrottlePolicy,
) -> &'a mut Source {
    make_room(sources, source, now, policy);
    let entry = sources.entry(source.to_owned()).or_insert(Source {
        failures: 0,
        last_failure: now,
        logged_at: None,
        in_progress: 0,
    });
    if now.duration_since(entry.last_failure) >= policy.forget_after {
        entry.failures = 0;
    }
    entry
}

/// Keeps the map within `max_sources` before `source` is added: forgotten
/// sources go first, then everyone (memory first, under a spray).
fn make_room(
    sources: &mut HashMap<String, Source>,
    source: &str,
    now: Instant,
    policy: ThrottlePolicy,
) {
    if sources.len() >= policy.max_sources && !sources.contains_key(source) {
        sources.retain(|_, s| {
            s.in_progress > 0 || now.duration_since(s.last_failure) < policy.forget_after
        });
        if sources.len() >= policy.max_sources {
            sources.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        let p = ThrottlePolicy::default();
        let delays: Vec<u64> = (0..12)
            .map(|n| p.delay_after(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000]
        );
        assert_eq!(p.delay_after(u32::MAX), p.max_delay);
    }

    #[test]
    fn only_the_failing_source_is_slowed_and_logged_at_a_bounded_rate() {
        let throttle = FailureThrottle::default();
        let start = Instant::now();
        let mut logged = 0;
        for n in 0..100u32 {
            let f = throttle.failed("10.0.0.1", start + Duration::from_millis(u64::from(n) * 10));
            logged += u32::from(f.log);
            assert_eq!(f.failures, n + 1);
        }
        assert_eq!(logged, 1, "100 failures within a second: one log line");
        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.delay("10.0.0.1", later), Duration::from_secs(5));
        assert_eq!(throttle.delay("10.0.0.2", later), Duration::ZERO);
        assert!(
            throttle
                .failed("10.0.0.1", start + Duration::from_secs(11))
                .log
        );
        // Forgotten after a quiet while, or at once on success.
        assert_eq!(
            throttle.delay("10.0.0.1", start + Duration::from_secs(700)),
            Duration::ZERO
        );
        throttle.succeeded("10.0.0.1");
        assert_eq!(throttle.delay("10.0.0.1", later), Duration::ZERO);
    }

    #[test]
    fn concurrent_attempts_count_as_failures_until_they_end() {
        let throttle = FailureThrottle::default();
        let now = Instant::now();
        // A burst of ten at once from one address: the first five free,
        // then each waits longer, as if the earlier ones had failed.
        let delays: Vec<u64> = (0..10)
            .map(|_| throttle.begin("10.0.0.1", now).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000]);
        assert_eq!(
            throttle.begin("10.0.0.2", now),
            Duration::ZERO,
            "another source"
        );
        throttle.end("10.0.0.2");
        for _ in 0..10 {
            throttle.end("10.0.0.1");
        }
        assert_eq!(
            throttle.begin("10.0.0.1", now),
            Duration::ZERO,
            "attempts that ended without failing leave nothing behind"
        );
        throttle.end("10.0.0.1");
        assert!(throttle.sources().is_empty());
        // A success under way does not forget the attempts still running.
        throttle.begin("10.0.0.3", now);
        throttle.begin("10.0.0.3", now);
        throttle.failed("10.0.0.3", now);
        throttle.succeeded("10.0.0.3");
        assert_eq!(
            throttle.begin("10.0.0.3", now),
            Duration::ZERO,
            "two under way, the failure forgotten"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_sources() {
        let throttle = FailureThrottle::new(ThrottlePolicy {
            max_sources: 100,
            ..ThrottlePolicy::default()
        });
        let now = Instant::now();
        for n in 0..1000 {
            throttle.failed(&format!("10.0.{}.{}", n / 256, n % 256), now);
        }
        assert!(throttle.sources().len() <= 100);
    }
}
