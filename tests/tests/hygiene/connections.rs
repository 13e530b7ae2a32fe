//! Observation 5: unfinished handshakes lock nobody out, idle connections are closed.

use std::time::{Duration, Instant};

use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto;
use carewatch_tests::process::{ServeConfig, ServerProcess, binary};
use tokio::io::AsyncReadExt;

use crate::support::{ONE_AT_A_TIME, OTHER_ADDRESS, channel_from, start, tls_connect};

/// Observation 5: half-open handshakes blocked every new client once they
/// used up the open files. With 300 open files, 300 TCP connections from
/// 127.0.0.1 that never start TLS (one address may hold 128 unfinished
/// connections) leave room for a client from elsewhere, and are all closed
/// by the handshake deadline (10 s).
#[tokio::test(flavor = "multi_thread")]
async fn unfinished_handshakes_lock_nobody_out() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let config = ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .open_files(300);
    let server = ServerProcess::start(config).await;
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            tokio::net::TcpStream::connect(server.addr())
                .await
                .expect("TCP connection"),
        );
    }
    let asked = Instant::now();
    let channel =
        tokio::time::timeout(Duration::from_secs(2), channel_from(&server, OTHER_ADDRESS))
            .await
            .expect("a client from another address connects within 2 s");
    let mut admin = carewatch_grpc::proto::admin_client::AdminClient::with_interceptor(
        channel,
        Bearer::new(server.operator_token()).expect("token"),
    );
    tokio::time::timeout(
        Duration::from_secs(2),
        admin.create_reseller(proto::CreateResellerRequest {
            id: "acme".into(),
            name: "ACME".into(),
        }),
    )
    .await
    .expect("answered")
    .expect("reseller created");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // Every one of them is closed by the server by the deadline.
    let closed = futures::future::join_all(idle.into_iter().map(|mut stream| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout_at(
            (opened + Duration::from_secs(13)).into(),
            stream.read(&mut byte),
        )
        .await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }))
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        open, 0,
        "{open} of 300 still open 13 s after they connected"
    );
    assert!(
        server.stderr_contains("too many unfinished connections from one address"),
        "no log line for the refused connections:\n{}",
        server.log()
    );
}

/// Observation 5: idle TLS connections were never closed. One that finished
/// its handshake and sends no request is closed after ~10 s.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_tls_connection_is_closed_after_the_deadline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let server = start(&data).await;
    let connected = Instant::now();
    let mut tls = tls_connect(&server).await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match tls.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let after = connected.elapsed();
    assert!(read.is_ok(), "still open after 15 s");
    assert!(
        (Duration::from_secs(9)..=Duration::from_secs(12)).contains(&after),
        "closed after {after:?}"
    );
}
