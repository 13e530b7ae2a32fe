//! Availability: the heartbeat rule applied by the sweep, recovery,
//! conditional writes, Offline sites and the service's own downtime.

mod heartbeat_rule;
mod own_downtime;
mod retired_meanwhile;

pub(crate) use heartbeat_rule::*;
pub(crate) use own_downtime::*;
pub(crate) use retired_meanwhile::*;

use std::sync::Arc;

use crate::availability::DowntimeWindow;
use crate::catalogue::ConditionCode;
use crate::condition::ConditionRecord;
use crate::service::SweepReport;
use crate::store::DowntimeEpoch;
use crate::testing::fixture::Fixture;
use crate::time::Timestamp;

/// Runs a sweep and checks what it reports.
async fn sweep(fx: &Fixture, evaluated: usize, installations_changed: usize, when: &str) {
    let report = fx
        .carewatch
        .sweep()
        .await
        .unwrap_or_else(|e| panic!("sweep {when}: {e}"));
    assert_eq!(
        report,
        SweepReport {
            evaluated,
            installations_changed
        },
        "sweep {when}: servers evaluated / installations changed"
    );
}

/// Checks an installation's active conditions are exactly one
/// `SERVER_UNAVAILABLE` per listed server, opened at the given instant.
#[track_caller]
fn assert_unavailable_conditions(
    conditions: &[ConditionRecord],
    expected: &[(&str, Timestamp)],
    what: &str,
) {
    let got: Vec<_> = conditions
        .iter()
        .map(|c| {
            (
                c.server.as_str().to_owned(),
                c.code.clone(),
                c.subject.clone(),
                c.opened_at,
                c.resolved_at,
            )
        })
        .collect();
    let mut want: Vec<_> = expected
        .iter()
        .map(|(server, since)| {
            (
                (*server).to_owned(),
                ConditionCode::ServerUnavailable,
                (*server).to_owned(),
                *since,
                None,
            )
        })
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(
        got_sorted, want,
        "{what}: one active SERVER_UNAVAILABLE per unavailable server, about that server, \
         opened when it became unavailable"
    );
}

async fn epoch(fx: &Fixture) -> DowntimeEpoch {
    fx.store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .epoch
}

async fn windows(store: &Arc<dyn crate::store::Store>) -> Vec<DowntimeWindow> {
    store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows
}

fn rs_id(id: &str) -> crate::ids::RecordingServerId {
    crate::ids::RecordingServerId::new(id).expect("valid id")
}

/// What a sweep at `now` would write for `due` servers silent three
/// intervals since their last message: Unavailable, no further check.
fn unavailable_verdicts(
    due: &[crate::store::ServerRecord],
    now: Timestamp,
) -> Vec<crate::store::AvailabilityChange> {
    due.iter()
        .map(|s| crate::store::AvailabilityChange {
            slc: s.slc.clone(),
            server: s.server.clone(),
            expected_last_seen: s.last_seen_at,
            availability: crate::availability::Availability::Unavailable {
                since: s
                    .last_seen_at
                    .saturating_add(crate::testing::fixture::INTERVAL * 3),
                missed: 3,
            },
            next_check_at: None,
            evaluated_at: now,
        })
        .collect()
}
