//! Ingest: every refusal's status code, and the stream answering each message in order.

use std::time::{Duration, SystemTime};

use carewatch_core::ConditionCode;
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::seal::{self, MessageKind};
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use carewatch_grpc::status::ERROR_KIND_KEY;
use carewatch_tests::{DataDir, INTERVAL, TestServer};
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{detail, issue_key, sealed, setup};

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
            .map(
                |d| carewatch_grpc::convert::from_duration("heartbeat_interval", &d)
                    .expect("valid")
            ),
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
