//! Small helpers of the dispatcher: retry jitter, rate-limited failure
//! logs, and a caught panic's message.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A uniform number in [0, 1) from the OS's random source.
pub(super) fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A warning logged at most every 30 s while something keeps failing, with
/// the number of failures, and one line when it works again.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    state: Mutex<(u64, Option<Instant>)>,
}

impl LogLimit {
    pub(super) fn warn(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        if state
            .1
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(30))
        {
            state.1 = Some(Instant::now());
            log(state.0);
        }
    }

    pub(super) fn ok(&self, log: impl FnOnce()) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 > 0 {
            *state = (0, None);
            log();
        }
    }
}

/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Outbox entries with these ids, for unit tests.
#[cfg(test)]
pub(super) fn entries_for_tests(
    ids: impl IntoIterator<Item = u64>,
) -> Vec<carewatch_core::notification::OutboxEntry> {
    use carewatch_core::ids::ResellerId;
    use carewatch_core::notification::{ChannelId, OutboxEntry};
    use carewatch_core::time::Timestamp;
    ids.into_iter()
        .map(|id| OutboxEntry {
            id,
            channel: ChannelId::new("00000000000000c1").expect("channel id"),
            reseller: ResellerId::new("acme").expect("reseller id"),
            slc: None,
            key: format!("k{id}"),
            body: String::new(),
            created_at: Timestamp::from_millis(0),
            attempts: 0,
            next_attempt_at: Timestamp::from_millis(0),
            last_error: None,
            delivered_at: None,
            failed_at: None,
        })
        .collect()
}
