//! Observations 4 and 8: stops despite held connections, clean stops, streams ending UNAVAILABLE.

use std::time::Duration;

use carewatch_core::ids::Slc;
use carewatch_core::seal::{self, Binding, InstallationKey, MessageKind};
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_grpc::proto;
use carewatch_tests::process::{ServerProcess, binary, http2_call_prefix, millis};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tonic::Code;

use crate::support::{GRACE, ONE_AT_A_TIME, kind, provision, start, tls_connect};

/// SIGTERM while `hold` keeps a connection open; the process must exit
/// within the grace + 2 s and its receiving must end at the signal.
async fn stop_while_held<H>(hold: impl AsyncFnOnce(&ServerProcess) -> H) {
    let data = tempfile::tempdir().expect("data directory");
    let mut server = start(&data).await;
    let held = hold(&server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit_after = server.terminate(GRACE + Duration::from_secs(2)).await;
    drop(held);
    assert!(
        exit_after <= GRACE + Duration::from_secs(2),
        "exited {exit_after:?} after SIGTERM"
    );
    let (_, signalled) = server.last_life().signalled.expect("signalled");
    // Observed: the stopping process kept marking itself alive, so the
    // downtime was not recorded from the stop.
    server.restart().await;
    let store = carewatch_storage_sqlite::SqliteStore::open(data.path().join("carewatch.db"))
        .await
        .expect("opens the database");
    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert_eq!(windows.len(), 1, "{windows:?}");
    let start = windows[0].start().as_millis();
    let sent = millis(signalled);
    assert!(
        (sent..=sent + 300).contains(&start),
        "the window starts {} ms after SIGTERM",
        start - sent
    );
    // Closed first: the server's stop must not wait on this process's
    // connections to the same file.
    drop(store);
    server.terminate(GRACE + Duration::from_secs(2)).await;
}

/// Observation 4: a TLS connection that sends nothing kept a stopping
/// process alive for 15 s to minutes.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_an_idle_tls_connection_exits_within_the_grace() {
    let _one = ONE_AT_A_TIME.lock().await;
    stop_while_held(async |server| tls_connect(server).await).await;
}

/// Observation 4: so did an HTTP/2 connection with a call in flight that
/// never reads.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_an_http2_connection_that_never_reads_exits_within_the_grace() {
    let _one = ONE_AT_A_TIME.lock().await;
    stop_while_held(async |server| {
        let mut tls = tls_connect(server).await;
        let authority = format!("127.0.0.1:{}", server.config().port);
        tls.write_all(&http2_call_prefix(
            &authority,
            "/carewatch.v1.Ingest/Heartbeat",
        ))
        .await
        .expect("preface and request headers");
        tls.flush().await.expect("flushed");
        tls
    })
    .await;
}

/// A SIGTERM that arrived just after "listening" was printed, before the
/// server loop first waited for it, ended the process by the signal's
/// default action: no clean exit, and no stop recorded. The signal is sent
/// the moment the line is read, on five starts.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_listening_is_a_clean_stop() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let binary = binary(env!("CARGO_BIN_EXE_carewatch-under-test"));
    for attempt in 1..=5 {
        let (binary, data_dir) = (binary.clone(), data.path().to_owned());
        let (status, lines) = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut child = std::process::Command::new(&binary)
                .arg("serve")
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--listen", "127.0.0.1:0"])
                .env_remove("CAREWATCH_DATABASE_URL")
                .env_remove("CAREWATCH_NODE_ID")
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starts");
            let stderr = child.stderr.take().expect("piped stderr");
            let mut lines = Vec::new();
            let mut signalled = false;
            // Read to the end: the server must never block on a full pipe.
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !signalled && line.contains("carewatch listening on ") {
                    let pid = child.id().to_string();
                    let kill = std::process::Command::new("kill")
                        .args(["-TERM", &pid])
                        .status()
                        .expect("runs kill");
                    assert!(kill.success(), "kill -TERM {pid}: {kill}");
                    signalled = true;
                }
                lines.push(line);
            }
            (child.wait().expect("exit status"), lines)
        })
        .await
        .expect("the start and stop ran");
        assert!(
            status.success() && lines.iter().any(|l| l == "carewatch stopped"),
            "start {attempt}: {status}\n{}",
            lines.join("\n")
        );
    }
}

fn sealed_heartbeat(key: &InstallationKey, site: &str, sequence: u64) -> proto::SealedMessage {
    let (slc, rs) = (
        Slc::new(site).expect("SLC"),
        carewatch_core::ids::RecordingServerId::new("rs-1").expect("id"),
    );
    let binding = Binding {
        slc: &slc,
        server: &rs,
        kind: MessageKind::Heartbeat,
        sequence,
    };
    proto::SealedMessage {
        slc: site.into(),
        recording_server_id: "rs-1".into(),
        sequence,
        sealed: seal::seal(key, &binding, b""),
    }
}

async fn issue_key(server: &ServerProcess, site: &str) -> InstallationKey {
    let key = server
        .admin()
        .await
        .issue_installation_key(proto::IssueInstallationKeyRequest { slc: site.into() })
        .await
        .expect("key issued")
        .into_inner()
        .key;
    InstallationKey::from_text(&key).expect("key text")
}

/// Observation 8: at shutdown, watch and ingest streams ended with status
/// OK, which a client cannot tell from a normal end.
#[tokio::test(flavor = "multi_thread")]
async fn streams_end_with_unavailable_at_shutdown() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("data directory");
    let mut server = start(&data).await;
    let (token, _) = provision(&server, 1, 1).await;
    let site = "HYG-SITE-0001";
    let key = issue_key(&server, site).await;

    let mut watch = server
        .dashboard(&token)
        .await
        .watch(proto::WatchRequest::default())
        .await
        .expect("watch opens")
        .into_inner();
    let (messages, requests) = futures::channel::mpsc::unbounded();
    messages
        .unbounded_send(proto::StreamMessage {
            kind: proto::MessageKind::Heartbeat as i32,
            message: Some(sealed_heartbeat(&key, site, 1)),
        })
        .expect("queued");
    let mut replies = server
        .ingest()
        .await
        .stream(requests)
        .await
        .expect("stream opens")
        .into_inner();
    let first = replies
        .next()
        .await
        .expect("a reply")
        .expect("the stream works");
    assert!(
        matches!(first.result, Some(proto::stream_reply::Result::Ack(_))),
        "{first:?}"
    );

    server.terminate(GRACE + Duration::from_secs(2)).await;
    // Changes may come first (the heartbeat's); then the end, which must be
    // UNAVAILABLE (`shutting_down`), not OK.
    async fn end<T>(stream: &mut tonic::Streaming<T>, what: &str) {
        let end = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match stream.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Some(status),
                    None => return None,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what} still open after the process exited"));
        let status = end.unwrap_or_else(|| panic!("{what} ended with status OK at shutdown"));
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert_eq!(kind(&status), Some("shutting_down"), "{what}: {status:?}");
    }
    end(&mut watch, "the watch stream").await;
    end(&mut replies, "the ingest stream").await;
    drop(messages);
}
