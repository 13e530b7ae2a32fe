//! Observation 1: a short stop and restart marks nobody late or unavailable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use carewatch_grpc::proto;
use carewatch_tests::Dashboard;

use crate::support::{GRACE, ONE_AT_A_TIME, provision, start};

/// Every installation's health and every server's availability, in one go.
async fn snapshot(dashboard: &mut Dashboard) -> Result<Vec<String>, tonic::Status> {
    let rows = dashboard
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .installations;
    let mut problems = Vec::new();
    for row in rows {
        let health = row.summary.as_ref().map_or(0, |s| s.health);
        if health != proto::Health::Healthy as i32 {
            problems.push(format!(
                "{} is {:?}",
                row.slc,
                proto::Health::try_from(health)
            ));
        }
        let detail = dashboard
            .get_installation(proto::GetInstallationRequest {
                slc: row.slc.clone(),
            })
            .await?
            .into_inner();
        for s in detail.servers {
            if s.availability != proto::Availability::Available as i32 {
                problems.push(format!(
                    "{}/{} is {:?} ({} missed)",
                    row.slc,
                    s.id,
                    proto::Availability::try_from(s.availability),
                    s.missed_heartbeats
                ));
            }
        }
    }
    Ok(problems)
}

/// Observation 1: a 5 s stop (SIGTERM, then SIGKILL) with 1 s heartbeats
/// made every server Unavailable and every installation Offline at the
/// first poll after the restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_five_second_stop_marks_nobody_late_or_unavailable() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let mut server = start(&data).await;
    let (token, fleet) = provision(&server, 3, 2).await;
    let ingest = server.ingest().await;
    // The fleet sends once a second unless paused: paused while Carewatch is
    // down and until the first poll after the restart, which must not
    // depend on the fleet having reported again.
    let fleet = Arc::new(tokio::sync::Mutex::new(fleet));
    let paused = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (fleet, paused, ingest) = (fleet.clone(), paused.clone(), ingest.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !paused.load(Ordering::Acquire) {
                    fleet.lock().await.round(&ingest, 8).await;
                }
            }
        }
    });
    let mut dashboard = server.dashboard(&token).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        snapshot(&mut dashboard).await.expect("dashboard"),
        Vec::<String>::new()
    );

    for kill in [false, true] {
        let how = if kill { "SIGKILL" } else { "SIGTERM" };
        paused.store(true, Ordering::Release);
        let fleet_guard = fleet.lock().await;
        if kill {
            server.kill().await;
        } else {
            server.terminate(GRACE + Duration::from_secs(2)).await;
        }
        let (_, signalled) = server.last_life().signalled.expect("signalled");
        let down = signalled + Duration::from_secs(5);
        if let Ok(wait) = down.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        server.restart().await;
        let listening = server.last_life().listening.expect("listening");
        // Sweeps run four times a second from the start: let two run. The
        // poll must still come before anybody could really be late (1.2 s
        // after the restart without a message).
        tokio::time::sleep(Duration::from_millis(400)).await;
        let first = loop {
            let started = SystemTime::now();
            let poll = snapshot(&mut dashboard).await;
            assert!(
                started < listening + Duration::from_millis(1000),
                "the Dashboard did not answer within 1 s of the restart after {how}: {poll:?}"
            );
            if let Ok(problems) = poll {
                break problems;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            first,
            Vec::<String>::new(),
            "first poll after a 5 s stop by {how}"
        );
        // The fleet reports again at once, then as usual.
        let mut fleet_now = fleet_guard;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while fleet_now.round(&ingest, 8).await.refused > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fleet cannot report after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(fleet_now);
        paused.store(false, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            snapshot(&mut dashboard).await.expect("dashboard"),
            Vec::<String>::new(),
            "after the restart after {how}"
        );
    }
    sender.abort();
    server.terminate(GRACE + Duration::from_secs(2)).await;
}
