//! A history entry's kind as the history table stores it.

use std::time::Duration;

use super::corrupt;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::store::HistoryKind;
use crate::time::duration_millis;

/// A history entry's kind as `(kind, code, subject, duration_ms, missed)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryColumns<'a> {
    /// `first_seen`, `condition_opened`, `condition_resolved`,
    /// `became_unavailable`, `recovered`, `decommissioned`,
    /// `recommissioned`, `parked` or `resumed`.
    pub kind: &'a str,
    /// The condition code, for condition entries.
    pub code: Option<&'a str>,
    /// The condition subject, for condition entries.
    pub subject: Option<&'a str>,
    /// How long it lasted (milliseconds), for resolved, recovered,
    /// recommissioned and resumed entries.
    pub duration_ms: Option<i64>,
    /// Heartbeats missed, for availability entries.
    pub missed: Option<i64>,
}

impl<'a> From<&'a HistoryKind> for HistoryColumns<'a> {
    fn from(kind: &'a HistoryKind) -> Self {
        let none = Self {
            kind: kind.name(),
            code: None,
            subject: None,
            duration_ms: None,
            missed: None,
        };
        match kind {
            HistoryKind::ConditionOpened { code, subject } => Self {
                code: Some(code.as_str()),
                subject: Some(subject),
                ..none
            },
            HistoryKind::ConditionResolved {
                code,
                subject,
                open_for,
            } => Self {
                code: Some(code.as_str()),
                subject: Some(subject),
                duration_ms: Some(duration_millis(*open_for)),
                ..none
            },
            HistoryKind::BecameUnavailable { missed } => Self {
                missed: Some(i64::from(*missed)),
                ..none
            },
            HistoryKind::Recovered {
                unavailable_for,
                missed,
            } => Self {
                duration_ms: Some(duration_millis(*unavailable_for)),
                missed: Some(i64::from(*missed)),
                ..none
            },
            HistoryKind::Recommissioned { decommissioned_for } => Self {
                duration_ms: Some(duration_millis(*decommissioned_for)),
                ..none
            },
            HistoryKind::FirstSeen | HistoryKind::Decommissioned | HistoryKind::Parked => none,
            HistoryKind::Resumed { parked_for } => Self {
                duration_ms: Some(duration_millis(*parked_for)),
                ..none
            },
        }
    }
}

impl HistoryColumns<'_> {
    /// Whether `kind` names a history kind this version knows.
    pub fn is_known_kind(kind: &str) -> bool {
        let bare = HistoryColumns {
            kind,
            code: None,
            subject: None,
            duration_ms: None,
            missed: None,
        };
        // A known kind decodes, or fails on its missing columns.
        !matches!(bare.decode_known(), Ok(None))
    }

    /// Decodes the columns.
    pub fn decode(&self) -> Result<HistoryKind, Error> {
        self.decode_known()?.ok_or_else(|| {
            corrupt(
                "history kind",
                format!("{:?} is not one this version knows", self.kind),
            )
        })
    }

    /// Decodes the columns; `None` for a kind this version does not know
    /// (a newer Carewatch's, during a rolling upgrade: readers pass over it).
    pub fn decode_known(&self) -> Result<Option<HistoryKind>, Error> {
        let code = || -> Result<ConditionCode, Error> {
            ConditionCode::parse(self.code.unwrap_or_default())
                .map_err(|e| corrupt("condition code", e))
        };
        let subject = || self.subject.unwrap_or_default().to_owned();
        let duration =
            || Duration::from_millis(u64::try_from(self.duration_ms.unwrap_or(0)).unwrap_or(0));
        let missed =
            || u32::try_from(self.missed.unwrap_or(0)).map_err(|e| corrupt("missed count", e));
        Ok(Some(match self.kind {
            "first_seen" => HistoryKind::FirstSeen,
            "condition_opened" => HistoryKind::ConditionOpened {
                code: code()?,
                subject: subject(),
            },
            "condition_resolved" => HistoryKind::ConditionResolved {
                code: code()?,
                subject: subject(),
                open_for: duration(),
            },
            "became_unavailable" => HistoryKind::BecameUnavailable { missed: missed()? },
            "recovered" => HistoryKind::Recovered {
                unavailable_for: duration(),
                missed: missed()?,
            },
            "decommissioned" => HistoryKind::Decommissioned,
            "recommissioned" => HistoryKind::Recommissioned {
                decommissioned_for: duration(),
            },
            "parked" => HistoryKind::Parked,
            "resumed" => HistoryKind::Resumed {
                parked_for: duration(),
            },
            _ => return Ok(None),
        }))
    }
}
