//! Delivery rules: when to try again, and how a webhook is signed so the
//! receiver can check it came from Carewatch and refuse replays.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Attempts before a notification is kept as failed.
pub const MAX_ATTEMPTS: u32 = 12;
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Carewatch-Signature";
/// The header carrying the idempotency key (the same on every attempt).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The longest wait a receiver's `Retry-After` can ask for; past it, the
/// next attempt comes at this bound (a receiver asking for days would
/// otherwise hold a notification that long).
pub const LONGEST_ASKED_WAIT: Duration = Duration::from_secs(3600);
/// How old a signed timestamp a receiver should accept.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// How long to wait after failed attempt number `attempt` (1, 2, …):
/// 10 s doubling to at most 30 min, each spread by ±20% (`jitter` in
/// [0, 1) picks where) so channels that failed together do not retry in
/// step; `None` after [`MAX_ATTEMPTS`]: give up, keep it as failed.
pub fn retry_after(attempt: u32, jitter: f64) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let base = 10.0 * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    let capped = base.min(1800.0);
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(Duration::from_secs_f64(capped * spread))
}

/// How long a deferred delivery ([`super::DeliveryOutcome::Deferred`]:
/// Carewatch's own delivery settings missing or not working, its own
/// storage failing) waits: a
/// minute, spread by ±20% like [`retry_after`]. Fixing the settings takes a
/// restart, after which the deferred ones go within a minute.
pub fn deferred_for(jitter: f64) -> Duration {
    Duration::from_secs_f64(60.0 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// [`retry_after`], unless the receiver asked for longer (HTTP
/// `Retry-After`): then its wait, up to [`LONGEST_ASKED_WAIT`]. A shorter
/// ask does not shorten the backoff; the attempt limit stays.
pub fn retry_after_asked(attempt: u32, jitter: f64, asked: Option<Duration>) -> Option<Duration> {
    let backoff = retry_after(attempt, jitter)?;
    Some(match asked {
        Some(asked) => backoff.max(asked.min(LONGEST_ASKED_WAIT)),
        None => backoff,
    })
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Carewatch-Signature` header for `body` sent at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>." + body>`.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut header = format!("t={timestamp},v1=");
    header.reserve(2 * tag.len());
    for byte in tag {
        header.push(char::from(HEX[usize::from(byte >> 4)]));
        header.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    header
}

/// What a receiver does: the header matches `body` under `secret`, and its
/// timestamp is within [`SIGNATURE_TOLERANCE`] of `now` (Unix seconds).
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    if now.abs_diff(timestamp) > SIGNATURE_TOLERANCE.as_secs() || signature.len() != 64 {
        return false;
    }
    let Some(bytes) = (0..32)
        .map(|i| u8::from_str_radix(signature.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&bytes).is_ok()
}

/// What a run of finished attempts on one channel does to its
/// [`super::DeliveryStatus`], so a batch of outcomes is recorded with one
/// write per channel and means the same as recording them one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTally<K> {
    /// The channel.
    pub channel: K,
    /// Whether a delivery is among them: failures count again from it.
    pub delivered: bool,
    /// Failures after the last delivery (all of them if none).
    pub failures: u32,
    /// The last attempt's error (`None` if it was delivered).
    pub last_error: Option<String>,
}

impl<K> ChannelTally<K> {
    /// The channel's failures in a row after these, from what it had before.
    pub fn failures_in_a_row(&self, before: u32) -> u32 {
        if self.delivered {
            self.failures
        } else {
            before.saturating_add(self.failures)
        }
    }
}

/// Folds finished attempts, in the order they happened, into one tally per
/// channel (ordered by channel, the order backends lock channels in).
pub fn tally_by_channel<'a, K: Ord + Clone + 'a>(
    finished: impl IntoIterator<Item = (&'a K, &'a super::DeliveryOutcome)>,
) -> Vec<ChannelTally<K>> {
    let mut tallies: std::collections::BTreeMap<K, ChannelTally<K>> = Default::default();
    for (channel, outcome) in finished {
        let tally = tallies
            .entry(channel.clone())
            .or_insert_with(|| ChannelTally {
                channel: channel.clone(),
                delivered: false,
                failures: 0,
                last_error: None,
            });
        match outcome {
            super::DeliveryOutcome::Delivered => {
                tally.delivered = true;
                tally.failures = 0;
                tally.last_error = None;
            }
            super::DeliveryOutcome::Retry { error, .. }
            | super::DeliveryOutcome::Failed { error } => {
                tally.failures = tally.failures.saturating_add(1);
                tally.last_error = Some(error.clone());
            }
            // Shown, but not the channel's failure.
            super::DeliveryOutcome::Deferred { error, .. } => {
                tally.last_error = Some(error.clone());
            }
        }
    }
    tallies.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_stop() {
        assert_eq!(retry_after(1, 0.5), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(2, 0.5), Some(Duration::from_secs(20)));
        assert_eq!(retry_after(3, 0.0), Some(Duration::from_secs(32)));
        assert_eq!(retry_after(11, 0.5), Some(Duration::from_secs(1800)));
        assert_eq!(retry_after(MAX_ATTEMPTS, 0.5), None);
    }

    #[test]
    fn a_receivers_retry_after_lengthens_the_wait_never_shortens_it() {
        let asked = |s| Some(Duration::from_secs(s));
        assert_eq!(
            retry_after_asked(1, 0.5, asked(120)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_asked(1, 0.5, asked(2)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after_asked(1, 0.5, None),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after_asked(1, 0.5, asked(86_400)),
            Some(LONGEST_ASKED_WAIT)
        );
        assert_eq!(retry_after_asked(MAX_ATTEMPTS, 0.5, asked(60)), None);
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replays() {
        let secret = b"whsec-example";
        let body = br#"{"schema":"carewatch.notification.v1"}"#;
        let header = signature_header(secret, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="));
        assert!(verify_signature(secret, &header, body, 1_800_000_100));
        assert!(
            !verify_signature(secret, &header, b"{}", 1_800_000_100),
            "altered body"
        );
        assert!(
            !verify_signature(b"other", &header, body, 1_800_000_100),
            "other secret"
        );
        assert!(
            !verify_signature(secret, &header, body, 1_800_001_000),
            "replayed later"
        );
        assert!(!verify_signature(secret, "t=1,v1=zz", body, 1));
    }

    #[test]
    fn a_signature_is_the_documented_hmac_in_lowercase_hex() {
        // Python: hmac.new(b"whsec_test", b'1800000000.{"a":1}', sha256).hexdigest()
        assert_eq!(
            signature_header(b"whsec_test", 1_800_000_000, br#"{"a":1}"#),
            "t=1800000000,v1=7de5e6bbc99c65ef0ddccacd4308ba03a5a12eb8859a0db070c5ca731c4fdc19"
        );
    }

    #[test]
    fn a_tally_means_the_same_as_recording_one_by_one() {
        use super::super::DeliveryOutcome;
        let choices = [
            ("a", DeliveryOutcome::Delivered),
            ("a", DeliveryOutcome::Failed { error: "a1".into() }),
            ("b", DeliveryOutcome::Delivered),
            (
                "b",
                DeliveryOutcome::Retry {
                    at: crate::time::Timestamp::from_millis(1),
                    error: "b1".into(),
                },
            ),
            (
                "a",
                DeliveryOutcome::Deferred {
                    at: crate::time::Timestamp::from_millis(1),
                    error: "a2".into(),
                },
            ),
        ];
        let n = choices.len();
        // Every sequence of up to four attempts, from every prior count.
        for length in 0..=4u32 {
            for pick in 0..n.pow(length) {
                let sequence: Vec<_> = (0..length).map(|i| &choices[pick / n.pow(i) % n]).collect();
                for before in [0u32, 3] {
                    // One by one, as a single finish_delivery records it.
                    let mut one_by_one: std::collections::BTreeMap<&str, (u32, Option<String>)> =
                        Default::default();
                    for (channel, outcome) in &sequence {
                        let status = one_by_one.entry(channel).or_insert((before, None));
                        *status = match outcome {
                            DeliveryOutcome::Delivered => (0, None),
                            DeliveryOutcome::Retry { error, .. }
                            | DeliveryOutcome::Failed { error } => {
                                (status.0 + 1, Some(error.clone()))
                            }
                            DeliveryOutcome::Deferred { error, .. } => {
                                (status.0, Some(error.clone()))
                            }
                        };
                    }
                    let channels: Vec<String> =
                        sequence.iter().map(|(c, _)| (*c).to_owned()).collect();
                    let tallies =
                        tally_by_channel(channels.iter().zip(sequence.iter().map(|(_, o)| o)));
                    let tallied: std::collections::BTreeMap<&str, (u32, Option<String>)> = tallies
                        .iter()
                        .map(|t| {
                            (
                                t.channel.as_str(),
                                (t.failures_in_a_row(before), t.last_error.clone()),
                            )
                        })
                        .collect();
                    assert_eq!(tallied, one_by_one, "{sequence:?} from {before}");
                }
            }
        }
    }
}
