//! A notification state's phase as the notification states store it.

use super::{corrupt, health};
use crate::error::Error;
use crate::notification::rules::Phase;
use crate::time::Timestamp;

/// A notification state's [`Phase`] as columns: `kind` (`pending`,
/// `notified`, `recovering`), the health told or pending, the problem's
/// start, and the columns its kind uses. [`Phase::Quiet`] is no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseColumns<'a> {
    /// `pending`, `notified` or `recovering`.
    pub kind: &'a str,
    /// [`Health::rank`](crate::health::Health::rank) of the problem.
    pub health: i64,
    /// When the problem began (ms).
    pub since: i64,
    /// Notified: when last told (ms).
    pub told_at: Option<i64>,
    /// Notified: reminders told.
    pub reminders: i64,
    /// Notified: a change waiting for its hold (health rank, since ms).
    pub changed_health: Option<i64>,
    /// Notified: since when the change lasts (ms).
    pub changed_at: Option<i64>,
    /// Pending, notified: muted by maintenance.
    pub muted: bool,
    /// Recovering: when it recovered (ms).
    pub recovered_at: Option<i64>,
}

impl PhaseColumns<'static> {
    /// The columns of a phase; `None` for Quiet (no row).
    pub fn of(phase: &Phase) -> Option<Self> {
        let none = Self {
            kind: "",
            health: 0,
            since: 0,
            told_at: None,
            reminders: 0,
            changed_health: None,
            changed_at: None,
            muted: false,
            recovered_at: None,
        };
        Some(match *phase {
            Phase::Quiet => return None,
            Phase::Pending {
                health,
                since,
                muted,
            } => Self {
                kind: "pending",
                health: i64::from(health.rank()),
                since: since.as_millis(),
                muted,
                ..none
            },
            Phase::Notified {
                health,
                since,
                told_at,
                reminders,
                changed,
                muted,
            } => Self {
                kind: "notified",
                health: i64::from(health.rank()),
                since: since.as_millis(),
                told_at: Some(told_at.as_millis()),
                reminders: i64::from(reminders),
                changed_health: changed.map(|(h, _)| i64::from(h.rank())),
                changed_at: changed.map(|(_, at)| at.as_millis()),
                muted,
                ..none
            },
            Phase::Recovering {
                health,
                problem_since,
                since,
            } => Self {
                kind: "recovering",
                health: i64::from(health.rank()),
                since: problem_since.as_millis(),
                recovered_at: Some(since.as_millis()),
                ..none
            },
        })
    }
}

impl PhaseColumns<'_> {
    /// Decodes the columns.
    pub fn decode(&self) -> Result<Phase, Error> {
        let ts = Timestamp::from_millis;
        let missing = |what: &str| {
            corrupt(
                "notification state",
                format!("{} without {what}", self.kind),
            )
        };
        let health = health(self.health)?;
        Ok(match self.kind {
            "pending" => Phase::Pending {
                health,
                since: ts(self.since),
                muted: self.muted,
            },
            "notified" => Phase::Notified {
                health,
                since: ts(self.since),
                told_at: ts(self.told_at.ok_or_else(|| missing("told_at"))?),
                reminders: u32::try_from(self.reminders).map_err(|e| corrupt("reminders", e))?,
                changed: match (self.changed_health, self.changed_at) {
                    (Some(h), Some(at)) => Some((super::health(h)?, ts(at))),
                    _ => None,
                },
                muted: self.muted,
            },
            "recovering" => Phase::Recovering {
                health,
                problem_since: ts(self.since),
                since: ts(self.recovered_at.ok_or_else(|| missing("recovered_at"))?),
            },
            other => return Err(corrupt("notification state", format!("kind {other:?}"))),
        })
    }
}
