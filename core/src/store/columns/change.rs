//! A change-feed event as the feed stores it, with the overview line a
//! health event carries.

use super::{HistoryColumns, condition_code, corrupt, health, server_id};
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::feed::Change;
use crate::health::HealthSummary;
use crate::time::Timestamp;

/// An overview line as `(health rank, worst code, servers, unavailable,
/// late, active conditions)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryColumns<'a> {
    /// [`Health::rank`](crate::health::Health::rank).
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
            Change::Unknown { kind } => Self {
                kind: kind.as_str(),
                ..none
            },
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
            // A kind a newer Carewatch wrote (rolling upgrade), with or
            // without a server: kept in its place in the feed.
            kind if !HistoryColumns::is_known_kind(kind) => Change::Unknown {
                kind: kind.to_owned(),
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
