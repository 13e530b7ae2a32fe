//! How domain values are laid out in storage columns. Every backend stores
//! and decodes through these, so the same fact is the same bytes in SQLite
//! and PostgreSQL, and a stored value that does not decode is reported the
//! same way. No SQL here: only the column values.

mod audit;
mod delivery;
pub use audit::{ActorColumns, audit_record};
pub use delivery::OutcomeColumns;

use std::fmt;
use std::time::Duration;

use crate::auth::{MessageDigest, TokenHash};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::feed::Change;
use crate::health::{Health, HealthSummary};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::notification::rules::Phase;
use crate::store::HistoryKind;
use crate::time::{Timestamp, duration_millis};

/// The error for a stored value that does not decode: the database was
/// altered outside Carewatch, or by a newer version.
pub fn corrupt(what: &str, e: impl fmt::Display) -> Error {
    Error::Storage {
        message: format!("stored {what} is invalid ({e}); was the database altered?"),
        source: None,
    }
}

/// A stored SLC.
pub fn slc(text: &str) -> Result<Slc, Error> {
    Slc::new(text).map_err(|e| corrupt("SLC", e))
}

/// A stored recording-server id.
pub fn server_id(text: &str) -> Result<RecordingServerId, Error> {
    RecordingServerId::new(text).map_err(|e| corrupt("recording server id", e))
}

/// A stored reseller id.
pub fn reseller_id(text: &str) -> Result<ResellerId, Error> {
    ResellerId::new(text).map_err(|e| corrupt("reseller id", e))
}

/// A stored login.
pub fn login(text: &str) -> Result<crate::team::Login, Error> {
    crate::team::Login::new(text).map_err(|e| corrupt("login", e))
}

/// A stored condition code.
pub fn condition_code(text: &str) -> Result<ConditionCode, Error> {
    ConditionCode::parse(text).map_err(|e| corrupt("condition code", e))
}

/// A stored token hash (32 bytes).
pub fn token_hash(bytes: &[u8]) -> Result<TokenHash, Error> {
    TokenHash::from_slice(bytes).ok_or_else(|| corrupt("token hash", "not 32 bytes"))
}

/// A stored message digest (32 bytes).
pub fn digest(bytes: &[u8]) -> Result<MessageDigest, Error> {
    <[u8; 32]>::try_from(bytes)
        .map(MessageDigest)
        .map_err(|_| corrupt("message digest", "not 32 bytes"))
}

/// A u64 sequence number as the signed 64-bit integer both databases store,
/// bit for bit. Signed comparison of the stored value is NOT the u64 order.
pub fn sequence_to_column(sequence: u64) -> i64 {
    i64::from_ne_bytes(sequence.to_ne_bytes())
}

/// The inverse of [`sequence_to_column`].
pub fn sequence_from_column(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// A recording server's availability as `(state, missed, unavailable_since)`:
/// state 0 available, 1 late, 2 unavailable. Pending servers have no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityColumns {
    /// 0 available, 1 late, 2 unavailable, 3 decommissioned.
    pub state: i16,
    /// Heartbeats missed.
    pub missed: i64,
    /// When it became unavailable or was decommissioned (milliseconds),
    /// only for states 2 and 3.
    pub unavailable_since: Option<i64>,
}

impl From<&Availability> for AvailabilityColumns {
    fn from(a: &Availability) -> Self {
        let (state, missed, unavailable_since) = match *a {
            Availability::Pending | Availability::Available => (0, 0, None),
            Availability::Late { missed } => (1, missed, None),
            Availability::Unavailable { since, missed } => (2, missed, Some(since.as_millis())),
            Availability::Decommissioned { since } => (3, 0, Some(since.as_millis())),
        };
        Self {
            state,
            missed: i64::from(missed),
            unavailable_since,
        }
    }
}

impl AvailabilityColumns {
    /// Decodes the columns.
    pub fn decode(self) -> Result<Availability, Error> {
        let missed = u32::try_from(self.missed).map_err(|e| corrupt("missed count", e))?;
        match (self.state, self.unavailable_since) {
            (0, _) => Ok(Availability::Available),
            (1, _) => Ok(Availability::Late { missed }),
            (2, Some(since)) => Ok(Availability::Unavailable {
                since: Timestamp::from_millis(since),
                missed,
            }),
            (3, Some(since)) => Ok(Availability::Decommissioned {
                since: Timestamp::from_millis(since),
            }),
            (state, _) => Err(corrupt("server state", format!("state {state}"))),
        }
    }
}

/// A history entry's kind as `(kind, code, subject, duration_ms, missed)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryColumns<'a> {
    /// `first_seen`, `condition_opened`, `condition_resolved`,
    /// `became_unavailable` or `recovered`.
    pub kind: &'a str,
    /// The condition code, for condition entries.
    pub code: Option<&'a str>,
    /// The condition subject, for condition entries.
    pub subject: Option<&'a str>,
    /// How long it lasted (milliseconds), for resolved and recovered entries.
    pub duration_ms: Option<i64>,
    /// Heartbeats missed, for availability entries.
    pub missed: Option<i64>,
}

impl<'a> From<&'a HistoryKind> for HistoryColumns<'a> {
    fn from(kind: &'a HistoryKind) -> Self {
        let none = Self {
            kind: "",
            code: None,
            subject: None,
            duration_ms: None,
            missed: None,
        };
        match kind {
            HistoryKind::FirstSeen => Self {
                kind: "first_seen",
                ..none
            },
            HistoryKind::ConditionOpened { code, subject } => Self {
                kind: "condition_opened",
                code: Some(code.as_str()),
                subject: Some(subject),
                ..none
            },
            HistoryKind::ConditionResolved {
                code,
                subject,
                open_for,
            } => Self {
                kind: "condition_resolved",
                code: Some(code.as_str()),
                subject: Some(subject),
                duration_ms: Some(duration_millis(*open_for)),
                ..none
            },
            HistoryKind::BecameUnavailable { missed } => Self {
                kind: "became_unavailable",
                missed: Some(i64::from(*missed)),
                ..none
            },
            HistoryKind::Recovered {
                unavailable_for,
                missed,
            } => Self {
                kind: "recovered",
                duration_ms: Some(duration_millis(*unavailable_for)),
                missed: Some(i64::from(*missed)),
                ..none
            },
            HistoryKind::Decommissioned => Self {
                kind: "decommissioned",
                ..none
            },
            HistoryKind::Recommissioned { decommissioned_for } => Self {
                kind: "recommissioned",
                duration_ms: Some(duration_millis(*decommissioned_for)),
                ..none
            },
        }
    }
}

impl HistoryColumns<'_> {
    /// Decodes the columns.
    pub fn decode(&self) -> Result<HistoryKind, Error> {
        let code = || -> Result<ConditionCode, Error> {
            ConditionCode::parse(self.code.unwrap_or_default())
                .map_err(|e| corrupt("condition code", e))
        };
        let subject = || self.subject.unwrap_or_default().to_owned();
        let duration =
            || Duration::from_millis(u64::try_from(self.duration_ms.unwrap_or(0)).unwrap_or(0));
        let missed =
            || u32::try_from(self.missed.unwrap_or(0)).map_err(|e| corrupt("missed count", e));
        Ok(match self.kind {
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
            other => return Err(corrupt("history kind", format!("{other:?} is not one"))),
        })
    }
}

/// An overview line as `(health rank, worst code, servers, unavailable,
/// late, active conditions)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryColumns<'a> {
    /// [`Health::rank`].
    pub health: i64,
    /// The worst condition's code.
    pub worst: Option<&'a str>,
    /// Servers known.
    pub servers: i64,
    /// Of which unavailable.
    pub unavailable: i64,
    /// Of which late.
    pub late: i64,
    /// Active conditions.
    pub active_conditions: i64,
}

impl<'a> From<&'a HealthSummary> for SummaryColumns<'a> {
    fn from(s: &'a HealthSummary) -> Self {
        Self {
            health: i64::from(s.health.rank()),
            worst: s.worst.as_ref().map(ConditionCode::as_str),
            servers: i64::from(s.servers),
            unavailable: i64::from(s.unavailable),
            late: i64::from(s.late),
            active_conditions: i64::from(s.active_conditions),
        }
    }
}

impl SummaryColumns<'_> {
    /// Decodes the columns.
    pub fn decode(&self) -> Result<HealthSummary, Error> {
        let count = |n: i64| u32::try_from(n).map_err(|e| corrupt("count", e));
        Ok(HealthSummary {
            health: health(self.health)?,
            worst: self.worst.map(condition_code).transpose()?,
            servers: count(self.servers)?,
            unavailable: count(self.unavailable)?,
            late: count(self.late)?,
            active_conditions: count(self.active_conditions)?,
        })
    }
}

/// A stored [`Health::rank`].
pub fn health(rank: i64) -> Result<Health, Error> {
    u8::try_from(rank)
        .map_err(|e| corrupt("health", e))
        .and_then(|r| Health::from_rank(r).map_err(|e| corrupt("health", e)))
}

/// A change event's [`Change`] as columns: its kind, then the columns that
/// kind uses (the rest are `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeColumns<'a> {
    /// [`Change::name`].
    pub kind: &'a str,
    /// The recording server, for server events.
    pub server_id: Option<&'a str>,
    /// History columns, for server events (their `kind` repeats `kind`).
    pub history: Option<HistoryColumns<'a>>,
    /// Health before, for health events.
    pub previous_health: Option<i64>,
    /// The overview line after, for health events.
    pub summary: Option<SummaryColumns<'a>>,
    /// Whether consent is accepted, for consent events.
    pub accepted: Option<bool>,
    /// When the subscription ends (milliseconds), for subscription events.
    pub until: Option<i64>,
}

impl<'a> From<&'a Change> for ChangeColumns<'a> {
    fn from(change: &'a Change) -> Self {
        let none = Self {
            kind: change.name(),
            server_id: None,
            history: None,
            previous_health: None,
            summary: None,
            accepted: None,
            until: None,
        };
        match change {
            Change::Health { previous, summary } => Self {
                previous_health: Some(i64::from(previous.rank())),
                summary: Some(SummaryColumns::from(summary)),
                ..none
            },
            Change::Server { server, event } => Self {
                server_id: Some(server.as_str()),
                history: Some(HistoryColumns::from(event)),
                ..none
            },
            Change::Registered | Change::Labels | Change::Removed => none,
            Change::Consent { accepted } => Self {
                accepted: Some(*accepted),
                ..none
            },
            Change::Subscription { expires_at } => Self {
                until: expires_at.map(Timestamp::as_millis),
                ..none
            },
        }
    }
}

impl ChangeColumns<'_> {
    /// Decodes the columns.
    pub fn decode(&self) -> Result<Change, Error> {
        let missing = |what: &str| {
            corrupt(
                "change event",
                format!("a {} event without {what}", self.kind),
            )
        };
        Ok(match self.kind {
            "health" => Change::Health {
                previous: health(
                    self.previous_health
                        .ok_or_else(|| missing("its previous health"))?,
                )?,
                summary: self
                    .summary
                    .ok_or_else(|| missing("its summary"))?
                    .decode()?,
            },
            "registered" => Change::Registered,
            "labels" => Change::Labels,
            "removed" => Change::Removed,
            "consent" => Change::Consent {
                accepted: self.accepted.ok_or_else(|| missing("its consent"))?,
            },
            "subscription" => Change::Subscription {
                expires_at: self.until.map(Timestamp::from_millis),
            },
            _ => Change::Server {
                server: server_id(self.server_id.ok_or_else(|| missing("its server"))?)?,
                event: self
                    .history
                    .ok_or_else(|| missing("its history"))?
                    .decode()?,
            },
        })
    }
}

/// A notification state's [`Phase`] as columns: `kind` (`pending`,
/// `notified`, `recovering`), the health told or pending, the problem's
/// start, and the columns its kind uses. [`Phase::Quiet`] is no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseColumns<'a> {
    /// `pending`, `notified` or `recovering`.
    pub kind: &'a str,
    /// [`Health::rank`] of the problem.
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
                    (Some(h), Some(at)) => Some((super::columns::health(h)?, ts(at))),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn sequences_round_trip_bit_for_bit(s in any::<u64>()) {
            prop_assert_eq!(sequence_from_column(sequence_to_column(s)), s);
        }

        #[test]
        fn availability_round_trips(state in 0u8..3, missed in any::<u32>(), since in any::<i64>()) {
            let a = match state {
                0 => Availability::Available,
                1 => Availability::Late { missed },
                _ => Availability::Unavailable { since: Timestamp::from_millis(since), missed },
            };
            prop_assert_eq!(AvailabilityColumns::from(&a).decode().unwrap(), a);
        }
    }

    #[test]
    fn every_history_kind_round_trips() {
        let kinds = [
            HistoryKind::FirstSeen,
            HistoryKind::ConditionOpened {
                code: ConditionCode::StorageFull,
                subject: "D:".into(),
            },
            HistoryKind::ConditionResolved {
                code: ConditionCode::Unknown("FAN_FAILURE".into()),
                subject: "Fan 2".into(),
                open_for: Duration::from_millis(1234),
            },
            HistoryKind::BecameUnavailable { missed: 3 },
            HistoryKind::Recovered {
                unavailable_for: Duration::from_secs(90),
                missed: 5,
            },
        ];
        for kind in kinds {
            assert_eq!(HistoryColumns::from(&kind).decode().unwrap(), kind);
        }
    }

    #[test]
    fn every_change_round_trips() {
        let summary = HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::StorageFull),
            servers: 3,
            unavailable: 1,
            late: 1,
            active_conditions: 2,
        };
        let changes = [
            Change::Health {
                previous: Health::Healthy,
                summary,
            },
            Change::Server {
                server: RecordingServerId::new("rs-1").unwrap(),
                event: HistoryKind::BecameUnavailable { missed: 3 },
            },
            Change::Server {
                server: RecordingServerId::new("rs-2").unwrap(),
                event: HistoryKind::ConditionOpened {
                    code: ConditionCode::CameraUnreachable,
                    subject: "Camera 7".into(),
                },
            },
            Change::Registered,
            Change::Consent { accepted: false },
            Change::Subscription {
                expires_at: Some(Timestamp::from_millis(86_400_000)),
            },
            Change::Subscription { expires_at: None },
            Change::Labels,
        ];
        for change in changes {
            assert_eq!(ChangeColumns::from(&change).decode().unwrap(), change);
        }
    }

    #[test]
    fn every_notification_phase_round_trips() {
        let t = Timestamp::from_millis;
        let phases = [
            Phase::Pending {
                health: Health::Critical,
                since: t(10),
                muted: true,
            },
            Phase::Notified {
                health: Health::Offline,
                since: t(10),
                told_at: t(70),
                reminders: 2,
                changed: Some((Health::Critical, t(90))),
                muted: false,
            },
            Phase::Notified {
                health: Health::Critical,
                since: t(10),
                told_at: t(70),
                reminders: 0,
                changed: None,
                muted: true,
            },
            Phase::Recovering {
                health: Health::Critical,
                problem_since: t(10),
                since: t(200),
            },
        ];
        for phase in phases {
            let columns = PhaseColumns::of(&phase).expect("a row");
            assert_eq!(columns.decode().unwrap(), phase);
        }
        assert_eq!(PhaseColumns::of(&Phase::Quiet), None);
    }

    #[test]
    fn undecodable_columns_are_reported_as_corrupt() {
        let bad_state = AvailabilityColumns {
            state: 7,
            missed: 0,
            unavailable_since: None,
        };
        assert!(
            bad_state
                .decode()
                .unwrap_err()
                .to_string()
                .contains("server state")
        );
        let unavailable_without_since = AvailabilityColumns {
            state: 2,
            missed: 3,
            unavailable_since: None,
        };
        assert!(unavailable_without_since.decode().is_err());
        let negative = AvailabilityColumns {
            state: 1,
            missed: -1,
            unavailable_since: None,
        };
        assert!(negative.decode().is_err());
        let unknown = HistoryColumns {
            kind: "exploded",
            code: None,
            subject: None,
            duration_ms: None,
            missed: None,
        };
        assert!(
            unknown
                .decode()
                .unwrap_err()
                .to_string()
                .contains("history kind")
        );
    }
}
