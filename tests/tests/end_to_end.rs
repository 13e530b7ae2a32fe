//! The whole system over the network: a real server on a loopback port with
//! TLS, driven by the generated tonic clients.

use std::time::{Duration, SystemTime};

use carewatch_cli::simulate::Fleet;
use carewatch_core::ConditionCode;
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::seal::{self, Binding, InstallationKey, MessageKind};
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use carewatch_grpc::status::ERROR_KIND_KEY;
use carewatch_tests::{DataDir, INTERVAL, TestServer};
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

fn slc(s: &str) -> Slc {
    Slc::new(s).expect("valid SLC")
}

/// A reseller with one provisioned installation of `servers` servers.
async fn setup(server: &TestServer, reseller: &str, site: &str, servers: usize) -> (String, Fleet) {
    let mut admin = server.admin().await;
    let token = admin
        .create_reseller(proto::CreateResellerRequest {
            id: reseller.into(),
            name: reseller.into(),
        })
        .await
        .expect("reseller created")
        .into_inner()
        .token;
    let mut fleet = Fleet::default();
    let id = ResellerId::new(reseller).expect("id");
    fleet
        .provision(
            &mut admin,
            &id,
            &slc(site),
            ("XProtect Corporate", "2016"),
            servers,
        )
        .await
        .expect("provisioned");
    (token, fleet)
}

async fn issue_key(server: &TestServer, site: &str) -> InstallationKey {
    let key = server
        .admin()
        .await
        .issue_installation_key(proto::IssueInstallationKeyRequest { slc: site.into() })
        .await
        .expect("key issued")
        .into_inner();
    InstallationKey::from_text(&key.key).expect("key text")
}

fn sealed(
    key: &InstallationKey,
    site: &str,
    rs: &str,
    kind: MessageKind,
    sequence: u64,
    plain: &[u8],
) -> proto::SealedMessage {
    let (slc, server) = (slc(site), RecordingServerId::new(rs).expect("id"));
    let binding = Binding {
        slc: &slc,
        server: &server,
        kind,
        sequence,
    };
    proto::SealedMessage {
        slc: site.into(),
        recording_server_id: rs.into(),
        sequence,
        sealed: seal::seal(key, &binding, plain),
    }
}

fn assert_refused(
    result: Result<tonic::Response<proto::Ack>, tonic::Status>,
    code: Code,
    kind: &str,
) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), code, "{kind}: {}", status.message());
    assert_eq!(
        status
            .metadata()
            .get(ERROR_KIND_KEY)
            .and_then(|v| v.to_str().ok()),
        Some(kind),
        "{status:?}"
    );
    assert!(!status.message().is_empty());
}

async fn detail(
    dashboard: &mut carewatch_tests::Dashboard,
    site: &str,
) -> proto::InstallationDetail {
    dashboard
        .get_installation(proto::GetInstallationRequest { slc: site.into() })
        .await
        .expect("detail")
        .into_inner()
}

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
async fn every_ingest_refusal_has_its_status_code() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (_, _) = setup(&server, "acme", "M01-E2E-0002", 1).await;
    let key = issue_key(&server, "M01-E2E-0002").await;
    let mut ingest: IngestClient<Channel> = server.ingest().await;
    let site = "M01-E2E-0002";

    let first = sealed(&key, site, "rs-1", MessageKind::Heartbeat, 10, b"");
    let ack = ingest
        .heartbeat(first.clone())
        .await
        .expect("accepted")
        .into_inner();
    assert!(!ack.duplicate);
    assert_eq!(
        ack.heartbeat_interval
            .map(|d| carewatch_grpc::convert::from_duration(&d)),
        Some(INTERVAL)
    );
    assert!(
        ingest
            .heartbeat(first.clone())
            .await
            .expect("retry acknowledged")
            .into_inner()
            .duplicate
    );

    // Replayed: same sequence, other bytes; and an older sequence.
    assert_refused(
        ingest
            .heartbeat(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 10, b""))
            .await,
        Code::FailedPrecondition,
        "replayed",
    );
    assert_refused(
        ingest
            .heartbeat(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 9, b""))
            .await,
        Code::FailedPrecondition,
        "replayed",
    );
    // Unknown installation.
    let mut unknown = sealed(&key, site, "rs-1", MessageKind::Heartbeat, 11, b"");
    unknown.slc = "M01-NOBODY-9999".into();
    assert_refused(
        ingest.heartbeat(unknown).await,
        Code::NotFound,
        "unknown_installation",
    );
    // Bad seal: a flipped byte; a status report presented as a heartbeat.
    let mut flipped = sealed(&key, site, "rs-1", MessageKind::Heartbeat, 12, b"");
    let last = flipped.sealed.len() - 1;
    flipped.sealed[last] ^= 1;
    assert_refused(
        ingest.heartbeat(flipped).await,
        Code::PermissionDenied,
        "cannot_decrypt",
    );
    let report = sealed(
        &key,
        site,
        "rs-1",
        MessageKind::StatusReport,
        13,
        &seal::payload::encode_status(&StatusSnapshot::all_clear()),
    );
    assert_refused(
        ingest.heartbeat(report).await,
        Code::PermissionDenied,
        "cannot_decrypt",
    );
    // Malformed: an invalid SLC; a status report whose payload is not a snapshot.
    let mut bad_slc = sealed(&key, site, "rs-1", MessageKind::Heartbeat, 14, b"");
    bad_slc.slc = "no spaces allowed".into();
    assert_refused(
        ingest.heartbeat(bad_slc).await,
        Code::InvalidArgument,
        "invalid_input",
    );
    let garbage = sealed(
        &key,
        site,
        "rs-1",
        MessageKind::StatusReport,
        15,
        b"\x01garbage",
    );
    assert_refused(
        ingest.status_report(garbage).await,
        Code::InvalidArgument,
        "malformed",
    );
    // Too large: one byte over the largest valid sealed report.
    let huge = sealed(
        &key,
        site,
        "rs-1",
        MessageKind::StatusReport,
        16,
        &vec![0u8; seal::MAX_SEALED_MESSAGE_BYTES - seal::HEADER_LEN - seal::TAG_LEN + 1],
    );
    assert_refused(
        ingest.status_report(huge).await,
        Code::InvalidArgument,
        "too_large",
    );

    // Consent withdrawn, then subscription expired.
    let mut admin = server.admin().await;
    admin
        .set_consent(proto::SetConsentRequest {
            slc: site.into(),
            accepted: false,
        })
        .await
        .expect("consent");
    assert_refused(
        ingest
            .heartbeat(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 17, b""))
            .await,
        Code::FailedPrecondition,
        "consent_missing",
    );
    admin
        .set_consent(proto::SetConsentRequest {
            slc: site.into(),
            accepted: true,
        })
        .await
        .expect("consent");
    let past = Some(prost_types::Timestamp::from(
        SystemTime::now() - Duration::from_secs(3600),
    ));
    admin
        .set_subscription(proto::SetSubscriptionRequest {
            slc: site.into(),
            expires_at: past,
        })
        .await
        .expect("subscription");
    assert_refused(
        ingest
            .heartbeat(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 18, b""))
            .await,
        Code::FailedPrecondition,
        "subscription_expired",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_stream_answers_each_message_in_order() {
    let data = DataDir::new();
    let server = TestServer::start(&data).await;
    let (token, _) = setup(&server, "acme", "M01-E2E-S001", 1).await;
    let key = issue_key(&server, "M01-E2E-S001").await;
    let site = "M01-E2E-S001";
    let camera = ReportedCondition::new(ConditionCode::CameraUnreachable, "Camera 9", "")
        .expect("condition");
    let report =
        seal::payload::encode_status(&StatusSnapshot::new(vec![camera]).expect("snapshot"));
    let messages = vec![
        proto::StreamMessage {
            kind: proto::MessageKind::Heartbeat as i32,
            message: Some(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 1, b"")),
        },
        proto::StreamMessage {
            kind: proto::MessageKind::StatusReport as i32,
            message: Some(sealed(
                &key,
                site,
                "rs-1",
                MessageKind::StatusReport,
                2,
                &report,
            )),
        },
        // Replayed: refused in-band, the stream goes on.
        proto::StreamMessage {
            kind: proto::MessageKind::Heartbeat as i32,
            message: Some(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 1, b"")),
        },
        proto::StreamMessage {
            kind: proto::MessageKind::Heartbeat as i32,
            message: Some(sealed(&key, site, "rs-1", MessageKind::Heartbeat, 3, b"")),
        },
    ];
    let mut ingest = server.ingest().await;
    let replies: Vec<proto::StreamReply> = ingest
        .stream(futures::stream::iter(messages))
        .await
        .expect("stream opens")
        .into_inner()
        .map(|r| r.expect("reply"))
        .collect()
        .await;
    assert_eq!(
        replies.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [1, 2, 1, 3]
    );
    let acked: Vec<bool> = replies
        .iter()
        .map(|r| matches!(r.result, Some(proto::stream_reply::Result::Ack(_))))
        .collect();
    assert_eq!(acked, [true, true, false, true]);
    let Some(proto::stream_reply::Result::Refusal(refusal)) = &replies[2].result else {
        panic!("{:?}", replies[2])
    };
    assert_eq!(refusal.code, Code::FailedPrecondition as i32);
    assert!(refusal.reason.contains("replayed"), "{}", refusal.reason);

    let d = detail(&mut server.dashboard(&token).await, site).await;
    assert_eq!(
        d.active_conditions.len(),
        1,
        "the status report sent on the stream was applied"
    );
    assert!(d.servers[0].last_seen_at.is_some());
    server.stop().await;
}
