//! The server as a whole: a restart after a long stop, and its health and reflection services.

use carewatch_grpc::proto;
use carewatch_tests::{DataDir, INTERVAL, TestServer};
use futures::StreamExt;

use crate::support::{detail, setup};

fn availability_of(d: &proto::InstallationDetail) -> Vec<i32> {
    d.servers.iter().map(|s| s.availability).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_long_stop_marks_nobody_unavailable() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (token, mut fleet) = setup(&server, "acme", "M01-E2E-R001", 2).await;
    assert_eq!(fleet.round(&server.ingest().await, 2).await.accepted, 2);
    server.stop().await;

    // Down for far longer than 3 intervals.
    tokio::time::sleep(INTERVAL * 6).await;
    let server = TestServer::start(&data).await;
    let mut dashboard = server.dashboard(&token).await;
    // Several sweeps run (every 50 ms) within the first intervals after the restart.
    tokio::time::sleep(INTERVAL * 2).await;
    let after_restart = detail(&mut dashboard, "M01-E2E-R001").await;
    assert!(
        !availability_of(&after_restart).contains(&(proto::Availability::Unavailable as i32)),
        "own downtime counted as missed heartbeats: {:?}",
        after_restart.servers
    );
    assert_ne!(
        after_restart
            .installation
            .and_then(|i| i.summary)
            .map(|s| s.health),
        Some(proto::Health::Offline as i32)
    );

    // Still silent three intervals after the restart: now they are unavailable, together.
    tokio::time::sleep(INTERVAL * 3).await;
    let later = detail(&mut dashboard, "M01-E2E-R001").await;
    assert_eq!(
        availability_of(&later),
        vec![proto::Availability::Unavailable as i32; 2],
        "{:?}",
        later.servers
    );
    assert_eq!(
        later.installation.and_then(|i| i.summary).map(|s| s.health),
        Some(proto::Health::Offline as i32)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "carewatch.v1.Ingest",
        "carewatch.v1.Dashboard",
        "carewatch.v1.Admin",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("{reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "carewatch.v1.Ingest",
        "carewatch.v1.Dashboard",
        "carewatch.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    server.stop().await;
}
