//! Observations 6 and 8: bad tokens are slowed and logged, 4 MiB messages
//! refused as too large; and requests that are not valid protobuf are
//! refused as invalid input, not as an internal fault.

use std::time::{Duration, Instant};

use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::{self, dashboard_client::DashboardClient, ingest_client::IngestClient};
use carewatch_tests::Dashboard;
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{ONE_AT_A_TIME, OTHER_ADDRESS, channel_from, kind, provision, start};

fn dashboard_on(channel: Channel, token: &str) -> Dashboard {
    DashboardClient::with_interceptor(channel, Bearer::new(token).expect("token"))
}

/// Observation 6: bad tokens at 2,200/s were all refused, without delay or
/// log line. After 5 failures an address is slowed down; others are not.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_bad_tokens_are_slowed_and_logged() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let server = start(&data).await;
    let (token, _) = provision(&server, 1, 1).await;
    let list = |mut d: Dashboard| async move {
        let started = Instant::now();
        let result = d
            .list_installations(proto::ListInstallationsRequest::default())
            .await;
        (result.map(|_| ()), started.elapsed())
    };
    let good = server.dashboard(&token).await;
    let (result, took) = list(good.clone()).await;
    result.expect("the good token works");
    assert!(took < Duration::from_millis(200), "good call took {took:?}");

    // Well formed, wrong secret.
    let mut wrong = token.clone();
    let last = wrong.pop().expect("non-empty token");
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let bad = server.dashboard(&wrong).await;
    let mut times = Vec::new();
    for _ in 0..7 {
        let (result, took) = list(bad.clone()).await;
        let status = result.expect_err("a wrong token is refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        times.push(took);
    }
    // The rest at once: each waits for its delay.
    let rest = futures::future::join_all((0..13).map(|_| list(bad.clone()))).await;
    for (result, took) in rest {
        assert_eq!(result.expect_err("refused").code(), Code::Unauthenticated);
        times.push(took);
    }
    assert_eq!(times.len(), 20);
    for (n, took) in times.iter().enumerate() {
        if n < 5 {
            assert!(
                *took < Duration::from_millis(200),
                "failure {} took {took:?}: {times:?}",
                n + 1
            );
        } else {
            assert!(
                *took >= Duration::from_millis(200),
                "failure {} was not slowed ({took:?}): {times:?}",
                n + 1
            );
        }
    }
    assert!(
        server.stderr_contains("authentication failed"),
        "no log line:\n{}",
        server.log()
    );
    // A well-behaved client elsewhere is not slowed.
    let elsewhere = dashboard_on(channel_from(&server, OTHER_ADDRESS).await, &token);
    let (result, took) = list(elsewhere).await;
    result.expect("the good token works");
    assert!(
        took < Duration::from_millis(200),
        "a good call from another address took {took:?}"
    );
}

/// Observation 8: a request over the transport's limit got an untyped
/// OUT_OF_RANGE. 4 MiB in the sealed field, as a unary call and on a
/// stream: INVALID_ARGUMENT with `carewatch-error: too_large`.
#[tokio::test(flavor = "multi_thread")]
async fn four_mebibyte_messages_are_refused_as_too_large() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let server = start(&data).await;
    provision(&server, 1, 1).await;
    let site = "HYG-SITE-0001";
    let huge = proto::SealedMessage {
        slc: site.into(),
        recording_server_id: "rs-1".into(),
        sequence: 1,
        sealed: vec![0x5a; 4 << 20],
    };
    let mut ingest: IngestClient<Channel> = server.ingest().await;
    let status = ingest
        .heartbeat(huge.clone())
        .await
        .expect_err("4 MiB is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(kind(&status), Some("too_large"), "{status:?}");

    let message = proto::StreamMessage {
        kind: proto::MessageKind::Heartbeat as i32,
        message: Some(huge),
    };
    let outcome = match ingest.stream(futures::stream::iter([message])).await {
        Err(status) => Err(status),
        Ok(replies) => match replies.into_inner().next().await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(status)) => Err(status),
            None => panic!("the stream ended with status OK"),
        },
    };
    match outcome {
        // Refused in-band, the stream going on …
        Ok(reply) => match reply.result {
            Some(proto::stream_reply::Result::Refusal(r)) => {
                assert_eq!(
                    (r.code, r.kind.as_str()),
                    (Code::InvalidArgument as i32, "too_large"),
                    "{r:?}"
                );
            }
            other => panic!("{other:?}"),
        },
        // … or the stream ends with the typed refusal.
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert_eq!(kind(&status), Some("too_large"), "{status:?}");
        }
    }
}

/// `SealedMessage` with its string fields as bytes, so a test can send an
/// SLC that is not UTF-8 (which no generated client can).
#[derive(Clone, PartialEq, prost::Message)]
struct RawSealedMessage {
    #[prost(bytes = "vec", tag = "1")]
    slc: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    recording_server_id: Vec<u8>,
    #[prost(uint64, tag = "3")]
    sequence: u64,
    #[prost(bytes = "vec", tag = "4")]
    sealed: Vec<u8>,
}

/// `StreamMessage` around a [`RawSealedMessage`].
#[derive(Clone, PartialEq, prost::Message)]
struct RawStreamMessage {
    #[prost(int32, tag = "1")]
    kind: i32,
    #[prost(message, optional, tag = "2")]
    message: Option<RawSealedMessage>,
}

/// tonic answers a request it cannot decode with an untyped INTERNAL, which
/// PROTOCOL.md's clients may retry (a server fault): unary and on a stream,
/// it is INVALID_ARGUMENT with `carewatch-error: invalid_input`.
#[tokio::test(flavor = "multi_thread")]
async fn requests_that_are_not_valid_protobuf_are_invalid_input() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let server = start(&data).await;
    let raw = RawSealedMessage {
        slc: vec![0xff, 0xfe, b'M'],
        recording_server_id: b"rs-1".to_vec(),
        sequence: 1,
        sealed: vec![0; 33],
    };
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary(
            tonic::Request::new(raw.clone()),
            http::uri::PathAndQuery::from_static("/carewatch.v1.Ingest/Heartbeat"),
            tonic_prost::ProstCodec::<RawSealedMessage, proto::Ack>::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(kind(&status), Some("invalid_input"), "{status:?}");

    grpc.ready().await.expect("ready");
    let message = RawStreamMessage {
        kind: proto::MessageKind::Heartbeat as i32,
        message: Some(raw),
    };
    let replies = grpc
        .streaming(
            tonic::Request::new(futures::stream::iter([message])),
            http::uri::PathAndQuery::from_static("/carewatch.v1.Ingest/Stream"),
            tonic_prost::ProstCodec::<RawStreamMessage, proto::StreamReply>::default(),
        )
        .await;
    let status = match replies {
        Err(status) => status,
        Ok(replies) => match replies.into_inner().next().await {
            Some(Err(status)) => status,
            other => panic!("the stream went on: {other:?}"),
        },
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(kind(&status), Some("invalid_input"), "{status:?}");
}

/// Found by review: a unary call with no message, or a message cut short,
/// got tonic's untyped INTERNAL (a server fault clients may retry). Both
/// are INVALID_ARGUMENT with `carewatch-error: invalid_input`, unary and
/// on a stream.
#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_whole_message_are_invalid_input() {
    use tower::ServiceExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let server = start(&data).await;
    // A message header saying 10 bytes follow, then 3.
    let cut_short = String::from_utf8(vec![0, 0, 0, 0, 10, b'a', b'b', b'c']).expect("ASCII");
    let cases = [
        ("/carewatch.v1.Ingest/Heartbeat", String::new()),
        ("/carewatch.v1.Ingest/Heartbeat", cut_short.clone()),
        ("/carewatch.v1.Ingest/Stream", cut_short),
    ];
    for (path, body) in cases {
        let request = http::Request::post(format!("{}{path}", server.url()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(body.clone()))
            .expect("request");
        let response = server
            .channel()
            .await
            .oneshot(request)
            .await
            .expect("an answer");
        let (parts, answer) = response.into_parts();
        let trailers = http_body_trailers(answer).await;
        let status = tonic::Status::from_header_map(&parts.headers)
            .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map))
            .expect("a status");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{path} {body:?}: {status:?}"
        );
        assert_eq!(kind(&status), Some("invalid_input"), "{path}: {status:?}");
    }
}

/// The trailers of a response body, its data read and dropped.
async fn http_body_trailers(mut body: tonic::body::Body) -> Option<http::HeaderMap> {
    use http_body::Body as _;
    let mut body = std::pin::Pin::new(&mut body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(trailers) = frame.expect("a frame").into_trailers() {
            return Some(trailers);
        }
    }
    None
}
