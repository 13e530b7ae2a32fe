//! The rules a backend applies inside its write transactions, as pure
//! functions both backends call (as atuin's `db/shared.rs` serves its two
//! databases): a backend reads rows, asks these what the rows become and
//! what history they record, and writes the answer. The differential
//! SQLite-against-PostgreSQL test keeps the two honest.

use crate::auth::{SequenceOrder, sequence_order};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::condition::{ConditionKey, ReportedCondition, StatusSnapshot, diff_snapshot};
use crate::ids::RecordingServerId;
use crate::installation::Installation;
use crate::store::{HistoryKind, ServerRecord, SignOfLife};
use crate::time::Timestamp;

/// A message judged against its server's stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignJudgement {
    /// An older sequence number, or the latest one with other bytes.
    Stale {
        /// The sequence number in the store.
        last_accepted: u64,
    },
    /// The latest message again (a retry): nothing changes.
    Duplicate,
    /// Newer: the server is available again, with these columns.
    Newer {
        /// Never moves backwards: a message received earlier but written
        /// later keeps the later time.
        last_seen_at: Timestamp,
        /// Follows the newest sign of life.
        next_check_at: Option<Timestamp>,
        /// What the server's history records (a recovery), if anything.
        history: Option<HistoryKind>,
    },
}

/// The sequence rule and what a newer message does to the row.
pub fn judge_sign(current: &ServerRecord, sign: &SignOfLife) -> SignJudgement {
    match sequence_order(Some(current.cursor), sign.cursor) {
        SequenceOrder::Stale { last_accepted } => SignJudgement::Stale { last_accepted },
        SequenceOrder::Duplicate => SignJudgement::Duplicate,
        SequenceOrder::New => {
            let (last_seen_at, next_check_at) = if sign.received_at >= current.last_seen_at {
                (sign.received_at, Some(sign.next_check_at))
            } else {
                (
                    current.last_seen_at,
                    current.next_check_at.or(Some(sign.next_check_at)),
                )
            };
            // A parked server (its installation refused: consent withdrawn,
            // Care Plus ended) stays parked: a message admitted just before
            // the refusal committed is written, but only a resume judges the
            // server again. Available or Late without a next check is
            // parked; every other such server has one.
            let parked = matches!(
                current.availability,
                Availability::Available | Availability::Late { .. }
            ) && current.next_check_at.is_none();
            let next_check_at = next_check_at.filter(|_| !parked);
            SignJudgement::Newer {
                last_seen_at,
                next_check_at,
                history: recovery(&current.availability, sign),
            }
        }
    }
}

/// Per sign of a batch, whether another sign in the batch is for the same
/// server. A remembered sign ([`SignOfLife::remembered`]) of such a server
/// is `Readmit` on every backend: its common case is one sign per server.
pub fn shares_its_server(batch: &[SignOfLife]) -> Vec<bool> {
    // foldhash, not SipHash: a batch is bounded and holds only signs of
    // messages opened with their installation's key, so nobody floods it.
    let mut count: std::collections::HashMap<
        (&crate::ids::Slc, &RecordingServerId),
        u32,
        foldhash::fast::RandomState,
    > = std::collections::HashMap::with_capacity_and_hasher(batch.len(), Default::default());
    for sign in batch {
        *count.entry((&sign.slc, &sign.server)).or_default() += 1;
    }
    batch
        .iter()
        .map(|sign| count[&(&sign.slc, &sign.server)] > 1)
        .collect()
}

/// The history entry of a message from a server that was unavailable, or
/// retired (a message brings a decommissioned server back).
pub fn recovery(previous: &Availability, sign: &SignOfLife) -> Option<HistoryKind> {
    match previous {
        Availability::Unavailable { since, .. } => Some(HistoryKind::Recovered {
            unavailable_for: sign.received_at.since(*since),
            missed: sign.missed_before,
        }),
        Availability::Decommissioned { since } => Some(HistoryKind::Recommissioned {
            decommissioned_for: sign.received_at.since(*since),
        }),
        _ => None,
    }
}

/// What a change of consent or Care Plus does to an installation's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceChange {
    /// Its messages are refused from now on: stop judging its servers
    /// (clear `next_check_at` of those not unavailable or retired), so
    /// nobody is marked Unavailable for a silence Carewatch itself causes.
    Park,
    /// Its messages are accepted again: judge its parked servers again,
    /// counting missed heartbeats from `at` (three intervals of grace before
    /// one can be Unavailable).
    Resume,
}

impl ServiceChange {
    /// The history entry each of the installation's servers records at
    /// `at`: [`HistoryKind::Parked`], or [`HistoryKind::Resumed`] after the
    /// refusal that began at `parked_at` (its `parked_at` column).
    pub fn history(self, parked_at: Option<Timestamp>, at: Timestamp) -> HistoryKind {
        match self {
            ServiceChange::Park => HistoryKind::Parked,
            ServiceChange::Resume => HistoryKind::Resumed {
                parked_for: parked_at.map_or(std::time::Duration::ZERO, |from| at.since(from)),
            },
        }
    }
}

/// Whether an installation's servers are parked or resumed: `parked` is
/// whether they are now, `installation` the installation after the change.
pub fn service_change(
    parked: bool,
    installation: &Installation,
    at: Timestamp,
) -> Option<ServiceChange> {
    match (parked, installation.refusal_at(at).is_some()) {
        (false, true) => Some(ServiceChange::Park),
        (true, false) => Some(ServiceChange::Resume),
        _ => None,
    }
}

/// What retiring a server writes: its availability, its open conditions
/// resolved (the derived `SERVER_UNAVAILABLE` too), each with its history
/// entry, and the [`HistoryKind::Decommissioned`] entry after them. `None`
/// if it is retired already (nothing to write).
pub fn decommission(
    current: &Availability,
    active: &[ActiveCondition],
    at: Timestamp,
) -> Option<Decommission> {
    if matches!(current, Availability::Decommissioned { .. }) {
        return None;
    }
    // Oldest first, whatever order the backend read them in.
    let mut active: Vec<&ActiveCondition> = active.iter().collect();
    active.sort_by(|a, b| {
        (a.opened_at, a.key.code.as_str(), &a.key.subject).cmp(&(
            b.opened_at,
            b.key.code.as_str(),
            &b.key.subject,
        ))
    });
    Some(Decommission {
        availability: Availability::Decommissioned { since: at },
        resolved: active
            .into_iter()
            .map(|a| {
                (
                    a.key.clone(),
                    HistoryKind::ConditionResolved {
                        code: a.key.code.clone(),
                        subject: a.key.subject.clone(),
                        open_for: at.since(a.opened_at),
                    },
                )
            })
            .collect(),
    })
}

/// See [`decommission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decommission {
    /// The server's availability from now on.
    pub availability: Availability,
    /// Resolve these conditions, with these history entries (then record
    /// [`HistoryKind::Decommissioned`]).
    pub resolved: Vec<(ConditionKey, HistoryKind)>,
}

/// An active condition as stored: its key, detail and when it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCondition {
    /// Code and subject.
    pub key: ConditionKey,
    /// The latest detail.
    pub detail: String,
    /// When it opened.
    pub opened_at: Timestamp,
}

/// What a status snapshot writes: conditions to open (with their history
/// entry), to update (detail only) and to resolve (with theirs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotWrites {
    /// Open these, with this history entry each.
    pub opened: Vec<(ReportedCondition, HistoryKind)>,
    /// Still active: store the new detail.
    pub detail_changed: Vec<ReportedCondition>,
    /// Resolve these, with this history entry each.
    pub resolved: Vec<(ConditionKey, HistoryKind)>,
}

impl SnapshotWrites {
    /// Whether the snapshot changes nothing.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.detail_changed.is_empty() && self.resolved.is_empty()
    }
}

/// Compares a server's active conditions with its snapshot received at
/// `received_at` (see [`diff_snapshot`]; derived conditions such as
/// `SERVER_UNAVAILABLE` are not the snapshot's to resolve).
pub fn snapshot_writes(
    active: &[ActiveCondition],
    snapshot: &StatusSnapshot,
    received_at: Timestamp,
) -> SnapshotWrites {
    let diff = diff_snapshot(
        active.iter().map(|a| (a.key.clone(), a.detail.as_str())),
        snapshot,
    );
    SnapshotWrites {
        opened: diff
            .opened
            .into_iter()
            .map(|c| {
                let history = HistoryKind::ConditionOpened {
                    code: c.code().clone(),
                    subject: c.subject().to_owned(),
                };
                (c, history)
            })
            .collect(),
        detail_changed: diff.detail_changed,
        resolved: diff
            .resolved
            .into_iter()
            .map(|key| {
                let opened_at = active
                    .iter()
                    .find(|a| a.key == key)
                    .map_or(received_at, |a| a.opened_at);
                let history = HistoryKind::ConditionResolved {
                    code: key.code.clone(),
                    subject: key.subject.clone(),
                    open_for: received_at.since(opened_at),
                };
                (key, history)
            })
            .collect(),
    }
}

/// Whether a sweep's verdict still applies to the server's row as it is
/// now: no message arrived since the evaluation (`last_seen_at` unchanged),
/// and the server is still counted. A decommission or a park (a refused
/// installation) committed between the evaluation and this write clears
/// `next_check_at`; the verdict, judged on the row before it, would
/// overwrite it with a false Unavailable and a condition.
pub fn sweep_verdict_applies(
    current_last_seen_at: Timestamp,
    current_next_check_at: Option<Timestamp>,
    change: &crate::store::AvailabilityChange,
) -> bool {
    current_last_seen_at == change.expected_last_seen && current_next_check_at.is_some()
}

/// The condition a server becoming unavailable opens (`SERVER_UNAVAILABLE`,
/// its subject the server's id), and its history entry, both at `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableCondition {
    /// Always `SERVER_UNAVAILABLE`.
    pub code: ConditionCode,
    /// The server's id.
    pub subject: String,
    /// How many heartbeats it missed, in words.
    pub detail: String,
    /// When it became unavailable.
    pub opened_at: Timestamp,
    /// `BecameUnavailable`.
    pub history: HistoryKind,
}

/// What becoming unavailable writes, if `after` makes a server unavailable
/// that was not before.
pub fn became_unavailable(
    server: &RecordingServerId,
    before: &Availability,
    after: &Availability,
) -> Option<UnavailableCondition> {
    match (before, after) {
        (Availability::Unavailable { .. }, _) => None,
        (_, Availability::Unavailable { since, missed }) => Some(UnavailableCondition {
            code: ConditionCode::ServerUnavailable,
            subject: server.as_str().to_owned(),
            detail: format!("missed {missed} heartbeats in a row"),
            opened_at: *since,
            history: HistoryKind::BecameUnavailable { missed: *missed },
        }),
        _ => None,
    }
}

/// Whether `installation` may go to reseller `to`: not to the reseller it
/// already belongs to (`InvalidInput`). Checked in the transfer's
/// transaction, against the row it changes.
pub fn check_transfer(
    installation: &Installation,
    to: &crate::ids::ResellerId,
) -> Result<(), crate::error::Error> {
    if installation.reseller == *to {
        return Err(crate::error::Error::InvalidInput {
            field: "reseller",
            reason: format!(
                "installation {} already belongs to reseller {to}",
                installation.slc
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::{MessageDigest, SequenceCursor};
    use crate::ids::Slc;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn record(sequence: u64, last_seen: i64, availability: Availability) -> ServerRecord {
        ServerRecord {
            slc: Slc::new("M01-C01-0001").unwrap(),
            server: RecordingServerId::new("rs-1").unwrap(),
            first_seen_at: t(0),
            last_seen_at: t(last_seen),
            interval: Duration::from_secs(60),
            cursor: SequenceCursor {
                sequence,
                digest: MessageDigest([1; 32]),
            },
            availability,
            counted_from: None,
            next_check_at: Some(t(last_seen + 62)),
        }
    }

    fn sign(sequence: u64, digest: u8, received: i64, missed_before: u32) -> SignOfLife {
        SignOfLife {
            slc: Slc::new("M01-C01-0001").unwrap(),
            server: RecordingServerId::new("rs-1").unwrap(),
            cursor: SequenceCursor {
                sequence,
                digest: MessageDigest([digest; 32]),
            },
            received_at: t(received),
            interval: Duration::from_secs(60),
            next_check_at: t(received + 62),
            missed_before,
            remembered: None,
        }
    }

    #[test]
    fn sequences_older_or_reused_are_stale_and_the_same_bytes_a_duplicate() {
        let current = record(5, 100, Availability::Available);
        assert_eq!(
            judge_sign(&current, &sign(4, 1, 110, 0)),
            SignJudgement::Stale { last_accepted: 5 }
        );
        assert_eq!(
            judge_sign(&current, &sign(5, 2, 110, 0)),
            SignJudgement::Stale { last_accepted: 5 }
        );
        assert_eq!(
            judge_sign(&current, &sign(5, 1, 110, 0)),
            SignJudgement::Duplicate
        );
    }

    #[test]
    fn last_seen_never_moves_backwards_and_a_recovery_is_recorded() {
        let current = record(5, 100, Availability::Available);
        assert_eq!(
            judge_sign(&current, &sign(6, 1, 90, 0)),
            SignJudgement::Newer {
                last_seen_at: t(100),
                next_check_at: Some(t(162)),
                history: None
            }
        );
        let down = record(
            5,
            100,
            Availability::Unavailable {
                since: t(280),
                missed: 3,
            },
        );
        assert_eq!(
            judge_sign(&down, &sign(6, 1, 400, 5)),
            SignJudgement::Newer {
                last_seen_at: t(400),
                next_check_at: Some(t(462)),
                history: Some(HistoryKind::Recovered {
                    unavailable_for: Duration::from_secs(120),
                    missed: 5
                })
            }
        );
    }

    #[test]
    fn becoming_unavailable_opens_server_unavailable_once() {
        let server = RecordingServerId::new("rs-1").unwrap();
        let down = Availability::Unavailable {
            since: t(180),
            missed: 3,
        };
        let opened =
            became_unavailable(&server, &Availability::Late { missed: 2 }, &down).expect("opens");
        assert_eq!(
            (opened.code, opened.subject.as_str(), opened.opened_at),
            (ConditionCode::ServerUnavailable, "rs-1", t(180))
        );
        assert_eq!(opened.history, HistoryKind::BecameUnavailable { missed: 3 });
        assert_eq!(became_unavailable(&server, &down, &down), None);
        assert_eq!(
            became_unavailable(
                &server,
                &Availability::Available,
                &Availability::Late { missed: 1 }
            ),
            None
        );
    }

    #[test]
    fn a_snapshot_opens_updates_and_resolves_with_their_history() {
        let key = |code, subject: &str| ConditionKey {
            code,
            subject: subject.into(),
        };
        let active = [
            ActiveCondition {
                key: key(ConditionCode::StorageFull, "D:"),
                detail: "99%".into(),
                opened_at: t(10),
            },
            ActiveCondition {
                key: key(ConditionCode::CameraUnreachable, "Cam 1"),
                detail: String::new(),
                opened_at: t(20),
            },
        ];
        let snapshot = StatusSnapshot::new(vec![
            ReportedCondition::new(ConditionCode::StorageFull, "D:", "100%").unwrap(),
            ReportedCondition::new(ConditionCode::LicenseOveruse, "cameras", "12/10").unwrap(),
        ])
        .unwrap();
        let writes = snapshot_writes(&active, &snapshot, t(50));
        assert_eq!(writes.opened.len(), 1);
        assert_eq!(
            writes.opened[0].1,
            HistoryKind::ConditionOpened {
                code: ConditionCode::LicenseOveruse,
                subject: "cameras".into()
            }
        );
        assert_eq!(writes.detail_changed[0].detail(), "100%");
        assert_eq!(
            writes.resolved,
            [(
                key(ConditionCode::CameraUnreachable, "Cam 1"),
                HistoryKind::ConditionResolved {
                    code: ConditionCode::CameraUnreachable,
                    subject: "Cam 1".into(),
                    open_for: Duration::from_secs(30)
                }
            )]
        );
    }
}
