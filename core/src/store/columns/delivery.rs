//! A delivery outcome as the outbox stores it.

use crate::notification::DeliveryOutcome;
use crate::time::Timestamp;

/// The outbox columns an attempt's outcome sets (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeColumns<'a> {
    /// When it was delivered.
    pub delivered_at: Option<i64>,
    /// When to try again (kept as it was when `None`).
    pub next_attempt_at: Option<i64>,
    /// When it was given up.
    pub failed_at: Option<i64>,
    /// Why the attempt failed.
    pub error: Option<&'a str>,
    /// What the outcome adds to the entry's attempts: 0 for a deferral
    /// ([`DeliveryOutcome::Deferred`]), else 1.
    pub attempts: i64,
}

impl<'a> OutcomeColumns<'a> {
    /// The columns of `outcome`, recorded at `at`.
    pub fn new(outcome: &'a DeliveryOutcome, at: Timestamp) -> Self {
        let none = Self {
            delivered_at: None,
            next_attempt_at: None,
            failed_at: None,
            error: None,
            attempts: 1,
        };
        match outcome {
            DeliveryOutcome::Delivered => Self {
                delivered_at: Some(at.as_millis()),
                ..none
            },
            DeliveryOutcome::Retry { at: next, error } => Self {
                next_attempt_at: Some(next.as_millis()),
                error: Some(error),
                ..none
            },
            DeliveryOutcome::Failed { error } => Self {
                failed_at: Some(at.as_millis()),
                error: Some(error),
                ..none
            },
            DeliveryOutcome::Deferred { at: next, error } => Self {
                next_attempt_at: Some(next.as_millis()),
                error: Some(error),
                attempts: 0,
                ..none
            },
        }
    }
}
