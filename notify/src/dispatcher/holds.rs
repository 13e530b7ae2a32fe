//! Receivers that could not be reached, and the SMTP server when it could
//! not be used: their other entries are held back, unsent, until the failed
//! attempt's retry, in this batch and the batches claimed meanwhile. A
//! receiver that never answers would otherwise take the timeout (10 s) for
//! each of its entries, with every other reseller's channel waiting behind
//! it; one attempt in flight per wave finds out instead.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use carewatch_core::notification::{ChannelId, Destination, OutboxEntry};
use carewatch_core::time::Timestamp;

use super::attempt::ChannelFor;

/// What a hold is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum HoldKey {
    /// A webhook, Slack or Teams channel's receiver.
    Receiver(ChannelId),
    /// The operator's SMTP server, which every email channel uses.
    Smtp,
}

impl HoldKey {
    /// The key of `entry` sent over `channel`; `None` when it is not sent
    /// (a deleted or unopenable channel).
    pub(super) fn of(entry: &OutboxEntry, channel: &ChannelFor) -> Option<Self> {
        match channel {
            ChannelFor::Open(opened) => Some(match opened.destination {
                Destination::Email { .. } => Self::Smtp,
                Destination::Webhook { .. }
                | Destination::Slack { .. }
                | Destination::Teams { .. } => Self::Receiver(entry.channel.clone()),
            }),
            ChannelFor::Deleted | ChannelFor::Unopenable(_) | ChannelFor::Unreadable(_) => None,
        }
    }
}

/// Why, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hold {
    /// The failed attempt's error.
    pub(super) error: String,
    /// Its retry: the entries held back are tried again from then on.
    pub(super) until: Timestamp,
}

/// The holds in force.
#[derive(Debug, Default)]
pub(super) struct Holds {
    held: Mutex<HashMap<HoldKey, Hold>>,
}

impl Holds {
    /// The hold on `key` at `now`, if one is in force (an expired one is
    /// dropped: the next attempt finds out again).
    pub(super) fn get(&self, key: &HoldKey, now: Timestamp) -> Option<Hold> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.get(key) {
            Some(hold) if hold.until > now => Some(hold.clone()),
            Some(_) => {
                held.remove(key);
                None
            }
            None => None,
        }
    }

    /// Holds `key` back until `until`, unless a hold already in force is
    /// longer.
    pub(super) fn hold(&self, key: HoldKey, error: &str, until: Timestamp) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let hold = held.entry(key).or_insert_with(|| Hold {
            error: error.to_owned(),
            until,
        });
        if hold.until < until {
            *hold = Hold {
                error: error.to_owned(),
                until,
            };
        }
    }

    /// `key` worked: nothing of it is held back any more.
    pub(super) fn release(&self, key: &HoldKey) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_lasts_until_its_retry_or_a_success_and_keeps_the_longest() {
        let holds = Holds::default();
        let key = HoldKey::Smtp;
        let at = Timestamp::from_millis;
        holds.hold(key.clone(), "first", at(100));
        holds.hold(key.clone(), "shorter", at(50));
        assert_eq!(
            holds.get(&key, at(99)).map(|h| h.error),
            Some("first".into())
        );
        holds.hold(key.clone(), "longer", at(200));
        assert_eq!(holds.get(&key, at(150)).map(|h| h.until), Some(at(200)));
        assert_eq!(holds.get(&key, at(200)), None, "expired at its retry");
        holds.hold(key.clone(), "again", at(300));
        holds.release(&key);
        assert_eq!(holds.get(&key, at(0)), None, "released by a success");
    }
}
