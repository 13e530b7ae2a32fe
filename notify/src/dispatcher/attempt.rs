//! One attempt: the entry's channel (opened, and kept a few seconds), the
//! sending, and the outcome to record.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use carewatch_core::OpenedChannel;
use carewatch_core::notification::delivery::retry_after_asked;
use carewatch_core::notification::{ChannelId, DeliveryOutcome, OutboxEntry};
use futures::FutureExt;

use super::Dispatcher;
use super::holds::{Hold, HoldKey};
use super::support::{jitter, panic_message};
use crate::sender::Attempt;

#[derive(Debug, Default)]
pub(super) struct ChannelCache {
    /// Each channel opened on its own, or why it cannot be.
    opened: HashMap<ChannelId, Opened>,
    loaded: Option<Instant>,
}

/// A channel opened, or why it cannot be.
pub(super) type Opened = Result<Arc<OpenedChannel>, String>;

/// The channel of an entry, as far as delivery knows it.
#[derive(Debug, Clone)]
pub(super) enum ChannelFor {
    /// Opened: send.
    Open(Arc<OpenedChannel>),
    /// Gone: deleting a channel gives its entries up; one claimed meanwhile
    /// is given up here.
    Deleted,
    /// This channel cannot be opened (sealed under another master key, or
    /// damaged); the others are not held up by it.
    Unopenable(String),
    /// The channels could not be read at all.
    Unreadable(String),
}

/// How long opened channels are reused before they are read again.
const CHANNELS_FRESH: Duration = Duration::from_secs(10);
impl Dispatcher {
    /// The outcome of `entry` held back, unsent ([`Holds`]): for a
    /// receiver that could not be reached, a failed attempt (counted: it
    /// would have failed, and a receiver gone for good is given up after
    /// the usual attempts); for the SMTP server, deferred until the hold
    /// ends (the operator's to mend, not the channel's).
    ///
    /// [`Holds`]: super::holds::Holds
    pub(super) fn held_back(
        &self,
        entry: &OutboxEntry,
        key: &HoldKey,
        hold: &Hold,
    ) -> (u64, DeliveryOutcome) {
        tracing::debug!(entry = entry.id, channel = %entry.channel, "held back: its receiver or the SMTP server is unusable");
        let outcome = match key {
            HoldKey::Receiver(_) => self.failed_attempt(
                entry.attempts + 1,
                format!(
                    "not sent: the receiver could not be reached just before ({})",
                    hold.error
                ),
                None,
            ),
            HoldKey::Smtp => DeliveryOutcome::Deferred {
                at: hold.until,
                error: format!(
                    "not sent: the SMTP server could not be used just before ({})",
                    hold.error
                ),
            },
        };
        (entry.id, outcome)
    }

    /// Failed attempt number `number`: tried again after its backoff (at
    /// least `asked`), or given up after the last.
    fn failed_attempt(
        &self,
        number: u32,
        error: String,
        asked: Option<Duration>,
    ) -> DeliveryOutcome {
        match retry_after_asked(number, jitter(), asked) {
            Some(wait) => DeliveryOutcome::Retry {
                at: self.carewatch.now().saturating_add(wait),
                error,
            },
            None => DeliveryOutcome::Failed {
                error: format!("{error} (gave up after {number} attempts)"),
            },
        }
    }

    /// One attempt at `entry`, logged; the outcome to record, and whether
    /// the receiver could not be reached ([`Attempt::Unreachable`]).
    pub(super) async fn deliver(
        &self,
        entry: OutboxEntry,
        channel: ChannelFor,
    ) -> (u64, DeliveryOutcome, bool) {
        let attempt = match channel {
            // A panic while sending is a failed attempt: it counts towards
            // giving up, and the batch's other outcomes are still written.
            ChannelFor::Open(channel) => AssertUnwindSafe(self.sender.send(&channel, &entry))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Attempt::Retry(format!(
                        "sending panicked: {}",
                        panic_message(panic.as_ref())
                    ))
                }),
            ChannelFor::Deleted => Attempt::Failed("the channel was deleted".into()),
            ChannelFor::Unopenable(e) => {
                Attempt::Retry(format!("the channel cannot be opened: {e}"))
            }
            // Carewatch's own storage failing is not the receiver's doing:
            // not an attempt, not a failure of the channel.
            ChannelFor::Unreadable(e) => {
                Attempt::Deferred(format!("not sent: the channels cannot be read: {e}"))
            }
        };
        let number = entry.attempts + 1;
        let retry = |number: u32, error: String, asked: Option<Duration>| {
            self.failed_attempt(number, error, asked)
        };
        let unreachable = matches!(attempt, Attempt::Unreachable(_));
        let outcome = match attempt {
            Attempt::Delivered => DeliveryOutcome::Delivered,
            Attempt::Retry(error) | Attempt::Unreachable(error) => retry(number, error, None),
            Attempt::RetryAfter(error, asked) => retry(number, error, Some(asked)),
            Attempt::Failed(error) => DeliveryOutcome::Failed { error },
            Attempt::Deferred(error) => DeliveryOutcome::Deferred {
                at: self.carewatch.now().saturating_add(
                    carewatch_core::notification::delivery::deferred_for(jitter()),
                ),
                error,
            },
        };
        match &outcome {
            // Debug, not info: the outbox keeps every delivery (web page,
            // gRPC, CLI), and a regional outage would otherwise write a line
            // per notification at the default level (~15,000 instructions
            // and a write to the log each).
            DeliveryOutcome::Delivered => tracing::debug!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, "notification delivered"
            ),
            DeliveryOutcome::Retry { at, error } => tracing::warn!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, retry_at = %at, error = %error, "notification not delivered; will retry"
            ),
            DeliveryOutcome::Failed { error } => tracing::warn!(
                entry = entry.id, channel = %entry.channel, reseller = %entry.reseller,
                attempt = number, error = %error, "notification given up"
            ),
            // The operator's to fix, and the same for every entry: a line
            // every 30 s at most, with how many were deferred.
            DeliveryOutcome::Deferred { error, .. } => self.deferrals.warn(|deferred| {
                tracing::warn!(
                    deferred, error = %error,
                    "notifications deferred: the delivery settings or Carewatch's own storage do not work (not counted as attempts)"
                )
            }),
        }
        (entry.id, outcome, unreachable)
    }

    /// The channels of `entries`, each opened or with why it cannot be, read
    /// again when one is missing or they are older than a few seconds.
    pub(super) async fn channels_for(
        &self,
        entries: &[OutboxEntry],
    ) -> Result<HashMap<ChannelId, Opened>, String> {
        let fresh = {
            let cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            cache.loaded.is_some_and(|at| at.elapsed() < CHANNELS_FRESH)
                && entries
                    .iter()
                    .all(|e| cache.opened.contains_key(&e.channel))
        };
        if !fresh {
            let opened = self
                .on_store(|c| async move { c.delivery_channels().await })
                .await
                .map_err(|e| e.to_string())?;
            let opened: HashMap<_, _> = opened
                .into_iter()
                .map(|(id, channel)| {
                    let channel = channel.map(Arc::new).map_err(|e| {
                        tracing::warn!(channel = %id, error = %e, "a notification channel cannot be opened; its notifications are retried, the other channels' delivered");
                        e.to_string()
                    });
                    (id, channel)
                })
                .collect();
            let mut cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            cache.opened = opened;
            cache.loaded = Some(Instant::now());
        }
        let cache = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries
            .iter()
            .filter_map(|e| {
                cache
                    .opened
                    .get(&e.channel)
                    .map(|c| (e.channel.clone(), c.clone()))
            })
            .collect())
    }
}
