//! What a transfer that did not share its history hides from the new
//! reseller in an installation's detail: one pure rule both backends apply.

use crate::availability::Availability;
use crate::time::Timestamp;

use super::{HistoryKind, InstallationDetail};

/// Every instant of `detail` before `from` (when the installation moved)
/// reads as `from`, and the durations its history entries carry count from
/// it: a server seen first long before, a condition open since then, an
/// outage that began before the transfer all start at the transfer for the
/// new reseller. History entries before `from` are not read at all (each
/// backend's query leaves them out).
pub fn hide_before(detail: &mut InstallationDetail, from: Timestamp) {
    let clamp = |at: &mut Timestamp| *at = (*at).max(from);
    for server in &mut detail.servers {
        clamp(&mut server.first_seen_at);
        clamp(&mut server.last_seen_at);
        match &mut server.availability {
            Availability::Unavailable { since, .. } | Availability::Decommissioned { since } => {
                clamp(since);
            }
            Availability::Pending | Availability::Available | Availability::Late { .. } => {}
        }
    }
    for condition in &mut detail.active_conditions {
        clamp(&mut condition.opened_at);
    }
    for event in &mut detail.history {
        let since_from = event.at.since(from);
        match &mut event.kind {
            HistoryKind::ConditionResolved { open_for: d, .. }
            | HistoryKind::Recovered {
                unavailable_for: d, ..
            }
            | HistoryKind::Recommissioned {
                decommissioned_for: d,
            }
            | HistoryKind::Resumed { parked_for: d } => *d = (*d).min(since_from),
            HistoryKind::FirstSeen
            | HistoryKind::ConditionOpened { .. }
            | HistoryKind::BecameUnavailable { .. }
            | HistoryKind::Decommissioned
            | HistoryKind::Parked => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::catalogue::ConditionCode;
    use crate::condition::ConditionRecord;
    use crate::health::HealthSummary;
    use crate::ids::{RecordingServerId, ResellerId, Slc};
    use crate::installation::{Installation, Product};
    use crate::labels::Labels;
    use crate::store::{HistoryEvent, ServerRecord};

    const fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn instants_before_the_transfer_read_as_it_and_durations_count_from_it() {
        let slc = Slc::new("M01-C01-0001").expect("slc");
        let server = RecordingServerId::new("rs-1").expect("id");
        let record = |first: i64, last: i64, availability| ServerRecord {
            slc: slc.clone(),
            server: server.clone(),
            first_seen_at: at(first),
            last_seen_at: at(last),
            interval: Duration::from_secs(60),
            cursor: crate::auth::SequenceCursor {
                sequence: 1,
                digest: crate::auth::MessageDigest([0; 32]),
            },
            availability,
            next_check_at: None,
            counted_from: None,
        };
        let mut detail = InstallationDetail {
            installation: Installation {
                slc: slc.clone(),
                reseller: ResellerId::new("beta").expect("id"),
                product: Product::new("XProtect", "1").expect("product"),
                subscription_expires_at: None,
                consent: true,
                registered_at: at(0),
            },
            summary: HealthSummary::pending(),
            servers: vec![
                record(
                    10,
                    20,
                    Availability::Unavailable {
                        since: at(30),
                        missed: 3,
                    },
                ),
                record(10, 150, Availability::Decommissioned { since: at(200) }),
            ],
            active_conditions: vec![ConditionRecord {
                server: server.clone(),
                code: ConditionCode::StorageFull,
                subject: "D:".into(),
                detail: "full".into(),
                opened_at: at(40),
                resolved_at: None,
            }],
            history: vec![
                HistoryEvent {
                    at: at(160),
                    server: server.clone(),
                    kind: HistoryKind::Recovered {
                        unavailable_for: Duration::from_secs(130),
                        missed: 3,
                    },
                },
                HistoryEvent {
                    at: at(170),
                    server: server.clone(),
                    kind: HistoryKind::ConditionResolved {
                        code: ConditionCode::StorageFull,
                        subject: "E:".into(),
                        open_for: Duration::from_secs(5),
                    },
                },
            ],
            labels: Labels::default(),
        };
        hide_before(&mut detail, at(100));
        let first = &detail.servers[0];
        assert_eq!(
            (first.first_seen_at, first.last_seen_at),
            (at(100), at(100))
        );
        assert_eq!(
            first.availability,
            Availability::Unavailable {
                since: at(100),
                missed: 3
            }
        );
        let second = &detail.servers[1];
        assert_eq!(second.last_seen_at, at(150), "after it: unchanged");
        assert_eq!(
            second.availability,
            Availability::Decommissioned { since: at(200) }
        );
        assert_eq!(detail.active_conditions[0].opened_at, at(100));
        assert_eq!(
            detail.history[0].kind,
            HistoryKind::Recovered {
                unavailable_for: Duration::from_secs(60),
                missed: 3
            }
        );
        assert_eq!(
            detail.history[1].kind,
            HistoryKind::ConditionResolved {
                code: ConditionCode::StorageFull,
                subject: "E:".into(),
                open_for: Duration::from_secs(5),
            },
            "a condition opened after it: unchanged"
        );
    }
}
