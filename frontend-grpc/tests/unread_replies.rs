//! A stream client that never takes its replies must not hold up the
//! service: every sweep waits for the messages in flight, so a message
//! parked half-applied until the client reads would stop every verdict of
//! the node (anyone could do it: no installation key is needed).

mod common;

use std::time::Duration;

use carewatch_core::testing::Fixture;
use carewatch_grpc::proto::ingest_client::IngestClient;
use carewatch_grpc::proto::{MessageKind, SealedMessage, StreamMessage};
use common::SqliteFile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_does_not_stop_the_sweep() {
    let db = SqliteFile::new();
    let fixture = Fixture::open(&db).await;
    let url = common::serve(&fixture).await;
    // No reply can reach this client: its stream window is shut, and it
    // never opens it. Its messages go on arriving (the server's window).
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("valid URL")
        .initial_stream_window_size(Some(0))
        .connect()
        .await
        .expect("connects");
    let mut client = IngestClient::new(channel);
    // Installations nobody registered, so each message is a store read
    // (pending a moment) before its refusal.
    let messages: Vec<StreamMessage> = (1..=64)
        .map(|n| StreamMessage {
            kind: MessageKind::Heartbeat as i32,
            message: Some(SealedMessage {
                slc: format!("M01-C01-{n:04}"),
                recording_server_id: "rs-1".into(),
                sequence: 1,
                sealed: vec![0; 64],
            }),
        })
        .collect();
    let (sender, outgoing) = tokio::sync::mpsc::channel(messages.len());
    for message in messages {
        sender.send(message).await.expect("queued");
    }
    let call = tokio::spawn(async move {
        // Held open, never read.
        let replies = client
            .stream(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(replies);
    });
    // Time for the server to take what it will of the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let swept = tokio::time::timeout(Duration::from_secs(10), fixture.carewatch.sweep()).await;
    assert!(
        swept.is_ok(),
        "the sweep waited on a message parked by a client that does not read"
    );
    swept.expect("checked").expect("the sweep ran");
    call.abort();
    drop(sender);
}
