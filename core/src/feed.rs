//! The change feed: every change a reseller or a notifier cares about, in
//! one ordered log per store. Backends append to it in the same transaction
//! as the change itself, with ids that readers see in order and without
//! gaps; [`crate::Carewatch::watch`] reads it, then follows it live.
//!
//! What is a change: an installation's overview line (health, counts) moving;
//! a recording server's history (first seen, a condition opened or resolved,
//! unavailable or recovered); a registration, a consent or a subscription
//! change. A heartbeat that changes nothing appends nothing.

use std::fmt;

use crate::error::{Error, Result};
use crate::health::{Health, HealthSummary};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::store::{HistoryKind, InstallationUpdate};
use crate::time::Timestamp;

/// An event's position in the feed: ids grow by one per event, and a reader
/// never sees a larger id before a smaller one has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Its position.
    pub id: EventId,
    /// When it happened (the service clock).
    pub at: Timestamp,
    /// The installation.
    pub slc: Slc,
    /// The reseller the installation belongs to when the event is read.
    pub reseller: ResellerId,
    /// What changed.
    pub change: Change,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The installation's overview line.
    Health {
        /// Its health before.
        previous: Health,
        /// Its line after.
        summary: HealthSummary,
    },
    /// A recording server's history.
    Server {
        /// The server.
        server: RecordingServerId,
        /// What happened to it.
        event: HistoryKind,
    },
    /// The operator registered the installation.
    Registered,
    /// The owner accepted (or withdrew) consent.
    Consent {
        /// Whether the service is accepted now.
        accepted: bool,
    },
    /// The Care Plus subscription changed, or ran out (then `expires_at` is
    /// the instant it ended).
    Subscription {
        /// When it ends now; `None` if removed.
        expires_at: Option<Timestamp>,
    },
    /// The reseller changed its labels (customer, site, notes, tags): re-read
    /// the installation to show them.
    Labels,
    /// The installation left this reseller (the operator transferred it to
    /// another): from now on it is NotFound to this reseller, and this is
    /// the last event of it this reseller sees. (The new reseller sees a
    /// [`Change::Registered`].)
    Removed,
    /// A kind of change this version does not know, written by a newer
    /// Carewatch sharing the database (during a rolling upgrade). It keeps
    /// its place in the feed, so readers move past it; no watcher is given
    /// it ([`ChangeFilter::matches`]) and the notifier tells nothing of it.
    Unknown {
        /// The kind's stored name.
        kind: String,
    },
}

impl Change {
    /// A stable lower-case name of the kind, e.g. `health`, `condition_opened`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Health { .. } => "health",
            Self::Server { event, .. } => event.name(),
            Self::Registered { .. } => "registered",
            Self::Consent { .. } => "consent",
            Self::Subscription { .. } => "subscription",
            Self::Labels => "labels",
            Self::Removed => "removed",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// The event an operator's change to an installation appends, if any (a
/// product change is not one a reseller is told about).
pub fn installation_change(update: &InstallationUpdate) -> Option<Change> {
    match update {
        InstallationUpdate::Consent(accepted) => Some(Change::Consent {
            accepted: *accepted,
        }),
        InstallationUpdate::Subscription(expires_at) => Some(Change::Subscription {
            expires_at: *expires_at,
        }),
        InstallationUpdate::Product(_) => None,
    }
}

/// The event that Care Plus ran out, owed when consent is given again
/// (`update`; `parked_before` is when the installation was parked before
/// it, if it was) to an installation (`after` the update) whose Care Plus
/// ended by `at` while it was parked already: the sweep that tells an
/// expiry skips installations refused already, so one that ended while
/// consent was withdrawn was never told. One that ended before the
/// refusal began was told when the sweep parked it.
pub fn expiry_owed(
    update: &InstallationUpdate,
    parked_before: Option<Timestamp>,
    after: &crate::installation::Installation,
    at: Timestamp,
) -> Option<Change> {
    match (update, parked_before, after.subscription_expires_at) {
        (InstallationUpdate::Consent(true), Some(parked), Some(ended))
            if ended <= at && ended >= parked =>
        {
            Some(Change::Subscription {
                expires_at: Some(ended),
            })
        }
        _ => None,
    }
}

/// Whose changes a watcher sees: one reseller's, optionally one installation.
/// This is the only tenant rule of the feed: another reseller's events are
/// never delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFilter {
    /// The reseller.
    pub reseller: ResellerId,
    /// Only this installation.
    pub slc: Option<Slc>,
}

impl ChangeFilter {
    /// Whether the watcher may and wants to see `event` (never a
    /// [`Change::Unknown`]: no interface can say what it is).
    pub fn matches(&self, event: &ChangeEvent) -> bool {
        event.reseller == self.reseller
            && self.slc.as_ref().is_none_or(|s| *s == event.slc)
            && !matches!(event.change, Change::Unknown { .. })
    }
}

/// The error for a resume point older than what the feed keeps.
pub fn too_old(after: EventId, first_kept: EventId) -> Error {
    Error::ResumeTooOld {
        after: after.0,
        first_kept: first_kept.0,
    }
}

/// Checks that reading after `after` misses nothing, given the oldest event
/// the store keeps (`None` if it keeps none) and the newest id it ever gave
/// (`head`): events between `after` and the oldest kept were pruned, and an
/// `after` beyond the head comes from another store.
pub fn check_resume(after: EventId, oldest_kept: Option<EventId>, head: EventId) -> Result<()> {
    if after > head {
        return Err(too_old(after, EventId(head.0 + 1)));
    }
    match oldest_kept {
        Some(oldest) if after.0.saturating_add(1) < oldest.0 => Err(too_old(after, oldest)),
        // Nothing kept: fine only if nothing was pruned after `after`.
        None if after < head => Err(too_old(after, EventId(head.0 + 1))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_older_than_the_retention_or_beyond_the_head_are_refused() {
        let ok = |after: u64, oldest: Option<u64>, head: u64| {
            check_resume(EventId(after), oldest.map(EventId), EventId(head))
        };
        assert!(ok(0, Some(1), 10).is_ok(), "from the start");
        assert!(ok(4, Some(5), 10).is_ok(), "right before the oldest kept");
        assert!(ok(10, Some(5), 10).is_ok(), "at the head");
        assert!(ok(0, None, 0).is_ok(), "an empty feed");
        assert!(
            ok(10, None, 10).is_ok(),
            "everything pruned, nothing missed"
        );
        let err = ok(3, Some(5), 10).expect_err("event 4 was pruned");
        assert_eq!(err.code(), "resume_too_old");
        assert!(err.to_string().contains("5"), "{err}");
        assert!(ok(9, None, 10).is_err(), "event 10 was pruned");
        assert!(ok(11, Some(5), 10).is_err(), "from another store");
    }
}
