//! The Dashboard: from registration to the overview, isolation between resellers, and watch.

use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::condition::ReportedCondition;
use carewatch_grpc::proto;
use carewatch_tests::{DataDir, TestServer};
use futures::StreamExt;
use tonic::Code;

use crate::support::{detail, setup, slc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_from_registration_to_dashboard() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (token, mut fleet) = setup(&server, "acme", "M01-E2E-0001", 2).await;
    let ingest = server.ingest().await;
    let round = fleet.round(&ingest, 4).await;
    assert_eq!((round.accepted, round.refused), (2, 0), "{round:?}");

    let mut dashboard = server.dashboard(&token).await;
    let all = dashboard
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.installations.len(), 1);
    let summary = all.installations[0].summary.clone().expect("summary");
    assert_eq!(summary.health, proto::Health::Healthy as i32);
    assert_eq!(summary.servers, 2);
    assert_eq!(all.totals.expect("totals").healthy, 1);
    let default = dashboard
        .list_installations(proto::ListInstallationsRequest::default())
        .await
        .expect("list");
    assert!(
        default.into_inner().installations.is_empty(),
        "Healthy installations are hidden by default"
    );

    let full = ReportedCondition::new(ConditionCode::StorageFull, "D:", "100%").expect("condition");
    fleet
        .server_mut(&slc("M01-E2E-0001"), "rs-2")
        .expect("server")
        .set_conditions(vec![full]);
    assert_eq!(fleet.round(&ingest, 4).await.refused, 0);
    let listed = dashboard
        .list_installations(proto::ListInstallationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let row = &listed.installations[0];
    let summary = row.summary.clone().expect("summary");
    assert_eq!(
        (summary.health, summary.worst_condition.as_str()),
        (proto::Health::Critical as i32, "STORAGE_FULL")
    );
    assert!(row.last_seen_at.is_some());

    let d = detail(&mut dashboard, "M01-E2E-0001").await;
    assert_eq!(d.servers.len(), 2);
    assert_eq!(d.active_conditions.len(), 1);
    assert_eq!(
        (
            d.active_conditions[0].recording_server_id.as_str(),
            d.active_conditions[0].subject.as_str()
        ),
        ("rs-2", "D:")
    );
    assert!(d.consent);
    assert!(
        d.history.iter().any(|e| matches!(&e.kind, Some(proto::history_event::Kind::ConditionOpened(c)) if c.code == "STORAGE_FULL")),
        "{:?}",
        d.history
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_resellers_installation_is_not_found_everywhere() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (_, mut fleet) = setup(&server, "acme", "M01-E2E-A001", 1).await;
    let (other_token, _) = setup(&server, "globex", "M01-E2E-B001", 1).await;
    fleet.round(&server.ingest().await, 2).await;
    let mut other = server.dashboard(&other_token).await;

    let listed = other
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed
            .installations
            .iter()
            .map(|r| r.slc.as_str())
            .collect::<Vec<_>>(),
        ["M01-E2E-B001"]
    );
    let theirs = other
        .get_installation(proto::GetInstallationRequest {
            slc: "M01-E2E-A001".into(),
        })
        .await
        .expect_err("hidden");
    let missing = other
        .get_installation(proto::GetInstallationRequest {
            slc: "M01-E2E-Z999".into(),
        })
        .await
        .expect_err("missing");
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(theirs.code(), missing.code());
    assert_eq!(
        theirs.message().replace("M01-E2E-A001", "X"),
        missing.message().replace("M01-E2E-Z999", "X"),
        "existence must not leak"
    );
    let watch = other
        .watch(proto::WatchRequest {
            slc: "M01-E2E-A001".into(),
            after_event_id: None,
        })
        .await
        .expect_err("hidden");
    assert_eq!(watch.code(), Code::NotFound);
    let no_token = server
        .dashboard("cwr.globex.0000")
        .await
        .list_installations(proto::ListInstallationsRequest::default())
        .await;
    assert_eq!(
        no_token.expect_err("bad token").code(),
        Code::Unauthenticated
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_a_change_within_a_second() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (token, mut fleet) = setup(&server, "acme", "M01-E2E-W001", 1).await;
    let ingest = server.ingest().await;
    fleet.round(&ingest, 1).await;
    let mut stream = server
        .dashboard(&token)
        .await
        .watch(proto::WatchRequest::default())
        .await
        .expect("watch")
        .into_inner();

    let camera = ReportedCondition::new(ConditionCode::CameraUnreachable, "Camera 3", "")
        .expect("condition");
    fleet
        .server_mut(&slc("M01-E2E-W001"), "rs-1")
        .expect("server")
        .set_conditions(vec![camera]);
    let sent = tokio::time::Instant::now();
    fleet.round(&ingest, 1).await;
    // The condition itself comes first, then the installation's new line.
    let deadline = sent + Duration::from_secs(1);
    let change = loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a change within one second")
            .expect("stream open")
            .expect("event");
        match event.event {
            Some(proto::watch_event::Event::Changed(change)) => break change,
            Some(proto::watch_event::Event::Server(server)) => {
                let kind = server.event.and_then(|e| e.kind);
                assert!(
                    matches!(kind, Some(proto::history_event::Kind::ConditionOpened(_))),
                    "{kind:?}"
                );
            }
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert_eq!(change.slc, "M01-E2E-W001");
    assert_eq!(
        change.summary.expect("summary").health,
        proto::Health::Attention as i32
    );
    server.stop().await;
}
