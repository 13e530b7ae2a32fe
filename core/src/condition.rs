//! Conditions: what a recording server reports as wrong, and how a snapshot
//! opens and resolves them.

use std::collections::HashMap;

use crate::catalogue::ConditionCode;
use crate::error::{Error, Result};
use crate::ids::{RecordingServerId, checked_text};
use crate::time::Timestamp;

/// Longest subject accepted (a camera name, a drive path …).
pub const MAX_SUBJECT_BYTES: usize = 256;
/// Longest detail text accepted.
pub const MAX_DETAIL_BYTES: usize = 1024;
/// Most conditions one status report may carry.
pub const MAX_CONDITIONS_PER_REPORT: usize = 1024;

/// One active error condition as a recording server reports it.
///
/// A condition is identified by its code and subject: "CAMERA_UNREACHABLE on
/// Camera 7". The detail is free text that may change while it stays open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportedCondition {
    code: ConditionCode,
    subject: String,
    detail: String,
}

impl ReportedCondition {
    /// Validates a reported condition. `SERVER_UNAVAILABLE` is refused:
    /// Carewatch derives it from heartbeats, a live server cannot report it.
    pub fn new(code: ConditionCode, subject: &str, detail: &str) -> Result<Self> {
        if code == ConditionCode::ServerUnavailable {
            return Err(Error::InvalidInput {
                field: "condition code",
                reason: "SERVER_UNAVAILABLE is derived by Carewatch from missed heartbeats and cannot be reported"
                    .into(),
            });
        }
        Ok(Self {
            code,
            subject: checked_text("condition subject", subject, MAX_SUBJECT_BYTES)?,
            detail: checked_text("condition detail", detail, MAX_DETAIL_BYTES)?,
        })
    }

    /// The condition code.
    pub fn code(&self) -> &ConditionCode {
        &self.code
    }

    /// What it is about, e.g. a camera name or a drive.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Free-text detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The identity of this condition within its recording server.
    pub fn key(&self) -> ConditionKey {
        ConditionKey {
            code: self.code.clone(),
            subject: self.subject.clone(),
        }
    }
}

/// What identifies a condition within one recording server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConditionKey {
    /// Its code.
    pub code: ConditionCode,
    /// Its subject.
    pub subject: String,
}

/// A condition as the dashboard keeps it: when it opened and (if) it closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRecord {
    /// The recording server it belongs to.
    pub server: RecordingServerId,
    /// Its code.
    pub code: ConditionCode,
    /// What it is about.
    pub subject: String,
    /// The latest detail text.
    pub detail: String,
    /// When Carewatch first saw it.
    pub opened_at: Timestamp,
    /// When it disappeared from the snapshots; `None` while active.
    pub resolved_at: Option<Timestamp>,
}

/// A recording server's full set of active conditions: a snapshot, not a delta.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSnapshot {
    conditions: Vec<ReportedCondition>,
}

impl StatusSnapshot {
    /// A snapshot; refuses duplicates (same code and subject twice) and oversize lists.
    pub fn new(conditions: Vec<ReportedCondition>) -> Result<Self> {
        if conditions.len() > MAX_CONDITIONS_PER_REPORT {
            return Err(Error::InvalidInput {
                field: "status report",
                reason: format!(
                    "{} conditions, at most {MAX_CONDITIONS_PER_REPORT} allowed",
                    conditions.len()
                ),
            });
        }
        let mut seen = HashMap::with_capacity(conditions.len());
        for condition in &conditions {
            if seen.insert(condition.key(), ()).is_some() {
                return Err(Error::InvalidInput {
                    field: "status report",
                    reason: format!(
                        "condition {} on {:?} is listed twice",
                        condition.code, condition.subject
                    ),
                });
            }
        }
        Ok(Self { conditions })
    }

    /// A snapshot with nothing wrong.
    pub fn all_clear() -> Self {
        Self::default()
    }

    /// The conditions.
    pub fn conditions(&self) -> &[ReportedCondition] {
        &self.conditions
    }
}

/// What applying a snapshot changes, computed against the currently active set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Conditions that are new: open them.
    pub opened: Vec<ReportedCondition>,
    /// Active conditions missing from the snapshot: resolve them.
    pub resolved: Vec<ConditionKey>,
    /// Still active, but with a new detail text.
    pub detail_changed: Vec<ReportedCondition>,
}

impl SnapshotDiff {
    /// Whether the snapshot changes nothing.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.resolved.is_empty() && self.detail_changed.is_empty()
    }
}

/// Compares the active conditions `(key, detail)` of one recording server with
/// a new snapshot. Derived conditions (`SERVER_UNAVAILABLE`) are never
/// resolved by a snapshot: only a sign of life does that.
pub fn diff_snapshot<'a>(
    active: impl IntoIterator<Item = (ConditionKey, &'a str)>,
    snapshot: &StatusSnapshot,
) -> SnapshotDiff {
    let mut still_active: HashMap<ConditionKey, &str> = active
        .into_iter()
        .filter(|(key, _)| key.code != ConditionCode::ServerUnavailable)
        .collect();
    let mut diff = SnapshotDiff::default();
    for condition in snapshot.conditions() {
        match still_active.remove(&condition.key()) {
            None => diff.opened.push(condition.clone()),
            Some(detail) if detail != condition.detail => {
                diff.detail_changed.push(condition.clone())
            }
            Some(_) => {}
        }
    }
    diff.resolved = still_active.into_keys().collect();
    diff.resolved.sort();
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(code: ConditionCode, subject: &str, detail: &str) -> ReportedCondition {
        ReportedCondition::new(code, subject, detail).unwrap()
    }

    #[test]
    fn snapshot_opens_resolves_and_updates() {
        let camera = cond(ConditionCode::CameraUnreachable, "Camera 7", "timeout");
        let disk = cond(ConditionCode::StorageFull, "D:", "100%");
        let active = [
            (camera.key(), "timeout"),
            (disk.key(), "99%"),
            (
                cond(ConditionCode::LicenseOveruse, "", "12/10").key(),
                "12/10",
            ),
        ];
        let archive = cond(ConditionCode::ArchiveMoveFailed, "Archive 1", "");
        let snapshot = StatusSnapshot::new(vec![camera, disk.clone(), archive.clone()]).unwrap();
        let diff = diff_snapshot(active, &snapshot);
        assert_eq!(diff.opened, vec![archive]);
        assert_eq!(diff.detail_changed, vec![disk]);
        assert_eq!(diff.resolved.len(), 1);
        assert_eq!(diff.resolved[0].code, ConditionCode::LicenseOveruse);
    }

    #[test]
    fn derived_unavailability_is_not_resolved_by_a_snapshot() {
        let key = ConditionKey {
            code: ConditionCode::ServerUnavailable,
            subject: "rs-1".into(),
        };
        let diff = diff_snapshot([(key, "")], &StatusSnapshot::all_clear());
        assert!(diff.is_empty());
    }

    #[test]
    fn servers_cannot_report_unavailability() {
        assert!(ReportedCondition::new(ConditionCode::ServerUnavailable, "rs-1", "").is_err());
    }

    #[test]
    fn duplicate_conditions_are_refused() {
        let camera = cond(ConditionCode::CameraUnreachable, "Camera 7", "a");
        let again = cond(ConditionCode::CameraUnreachable, "Camera 7", "b");
        let err = StatusSnapshot::new(vec![camera, again]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
