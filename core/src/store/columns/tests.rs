//! Round trips of every column layout, and stored values that do not
//! decode reported as corrupt.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::availability::Availability;
use crate::feed::Change;
use crate::health::HealthSummary;
use crate::notification::rules::Phase;
use crate::store::HistoryKind;
use crate::time::Timestamp;

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
        Change::Removed,
        Change::Unknown {
            kind: "camera_moved".into(),
        },
    ];
    for change in changes {
        assert_eq!(ChangeColumns::from(&change).decode().unwrap(), change);
    }
}

/// A kind a newer Carewatch wrote (a rolling upgrade) is read as
/// `Unknown`, in its place, with or without a server; no watcher is given
/// it. A known server kind without its columns is still corrupt.
#[test]
fn change_kinds_a_newer_version_wrote_are_read_as_unknown() {
    let history = |kind| HistoryColumns {
        kind,
        code: None,
        subject: None,
        duration_ms: Some(5),
        missed: Some(1),
    };
    let bare = |kind| ChangeColumns {
        kind,
        server_id: None,
        history: None,
        previous_health: None,
        summary: None,
        accepted: None,
        until: None,
    };
    let with_server = |kind| ChangeColumns {
        server_id: Some("rs-1"),
        history: Some(history(kind)),
        ..bare(kind)
    };
    for columns in [bare("camera_moved"), with_server("server_renamed")] {
        assert_eq!(
            columns.decode().unwrap(),
            Change::Unknown {
                kind: columns.kind.into()
            }
        );
    }
    assert!(
        bare("recovered")
            .decode()
            .unwrap_err()
            .to_string()
            .contains("without its")
    );
    assert!(HistoryColumns::is_known_kind("condition_opened"));
    assert!(!HistoryColumns::is_known_kind("server_renamed"));

    let reseller = crate::ids::ResellerId::new("alpha").unwrap();
    let event = |change| crate::feed::ChangeEvent {
        id: crate::feed::EventId(1),
        at: Timestamp::from_millis(0),
        slc: crate::ids::Slc::new("M01-C01-0001").unwrap(),
        reseller: reseller.clone(),
        change,
    };
    let filter = crate::feed::ChangeFilter {
        reseller: reseller.clone(),
        slc: None,
    };
    assert!(filter.matches(&event(Change::Labels)));
    assert!(!filter.matches(&event(Change::Unknown {
        kind: "camera_moved".into()
    })));
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

/// An audit action a newer Carewatch recorded is listed as `unknown`: it
/// failed the whole audit log (every page, for every reader).
#[test]
fn audit_actions_a_newer_version_recorded_are_read_as_unknown() {
    let actor = ActorColumns {
        kind: "operator",
        reseller: None,
        name: "ops",
    };
    let read = |action| audit_record(5, actor, action, "x".into(), String::new()).unwrap();
    assert_eq!(
        read("reseller.created").action,
        crate::audit::Action::ResellerCreated
    );
    let newer = read("user.teleported");
    assert_eq!(newer.action, crate::audit::Action::Unknown);
    assert_eq!(newer.action.name(), "unknown");
    assert_eq!(newer.target, "x");
}
