//! Pacing: a burst of work (a regional outage's thousands of
//! notifications) is spread over the first seconds of the notification
//! budget instead of taking the CPU and the store's writer from ingest all
//! at once; work that has fallen behind runs flat out.

use std::time::Duration;

/// How the notifier and the deliveries pace themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// The share of the time spent working while keeping up (0 < share ≤ 1;
    /// 1: never rests).
    pub busy_share: f64,
    /// Work whose oldest item waited this long runs without rests.
    pub catch_up_after: Duration,
    /// The longest rest after one step.
    pub max_rest: Duration,
}

impl Pacing {
    /// Never rests.
    pub const OFF: Self = Self {
        busy_share: 1.0,
        catch_up_after: Duration::ZERO,
        max_rest: Duration::ZERO,
    };

    /// How long to rest after a step that worked for `took` on items the
    /// oldest of which waited `lag`.
    pub fn rest_after(&self, took: Duration, lag: Duration) -> Duration {
        if !(self.busy_share > 0.0 && self.busy_share < 1.0) || lag >= self.catch_up_after {
            return Duration::ZERO;
        }
        took.mul_f64((1.0 - self.busy_share) / self.busy_share)
            .min(self.max_rest)
    }
}

impl Default for Pacing {
    /// Busy a third of the time for the first 3 s of a burst (of the 10-s
    /// budget from detection to arrival), then flat out.
    fn default() -> Self {
        Self {
            busy_share: 1.0 / 3.0,
            catch_up_after: Duration::from_secs(3),
            max_rest: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_fresh_burst_rests_twice_its_work_and_a_late_one_not_at_all() {
        let pacing = Pacing::default();
        assert_eq!(pacing.rest_after(MS(100), MS(500)), MS(200));
        assert_eq!(pacing.rest_after(MS(100), MS(2999)), MS(200));
        assert_eq!(pacing.rest_after(MS(100), MS(3000)), Duration::ZERO);
        assert_eq!(pacing.rest_after(MS(900), MS(0)), MS(1000), "capped");
        assert_eq!(Pacing::OFF.rest_after(MS(100), MS(0)), Duration::ZERO);
        let never = Pacing {
            busy_share: 0.0,
            ..Pacing::default()
        };
        assert_eq!(
            never.rest_after(MS(100), MS(0)),
            Duration::ZERO,
            "0 is off, not forever"
        );
    }
}
