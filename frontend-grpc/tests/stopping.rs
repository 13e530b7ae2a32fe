//! Long-lived streams end with `shutting_down` when the service stops
//! receiving, however the stream was polled before.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use carewatch_core::testing::Fixture;
use carewatch_grpc::status::{ERROR_KIND_KEY, until_stopped};
use common::SqliteFile;
use futures::{Stream, StreamExt};
use tonic::{Code, Status};

/// The end an idle stream must reach once the service stops receiving.
fn assert_shutting_down(end: Option<Result<(), Status>>) {
    let status = match end {
        Some(Err(status)) => status,
        other => panic!("expected UNAVAILABLE (shutting_down), got {other:?}"),
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get(ERROR_KIND_KEY)
            .and_then(|kind| kind.to_str().ok()),
        Some("shutting_down")
    );
}

/// An idle stream, as `until_stopped` gives it.
type IdleStream = Pin<Box<dyn Stream<Item = Result<(), Status>> + Send>>;

/// Spawns `wait` on an idle stream, stops the service once the task waits,
/// and checks the stream ended with `shutting_down`.
async fn ends_when_the_service_stops<F>(wait: impl FnOnce(IdleStream) -> F)
where
    F: Future<Output = Option<Result<(), Status>>> + Send + 'static,
{
    let db = SqliteFile::new();
    let fx = Fixture::open(&db).await;
    let stream: IdleStream = Box::pin(until_stopped(
        futures::stream::pending::<Result<(), Status>>(),
        &fx.carewatch,
    ));
    let waiting = tokio::spawn(wait(stream));
    tokio::time::sleep(Duration::from_millis(50)).await;
    fx.carewatch.stop_receiving().await.expect("stops");
    let end = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the idle stream ended")
        .expect("the task ran");
    assert_shutting_down(end);
}

#[tokio::test]
async fn an_idle_stream_ends_when_the_service_stops_receiving() {
    ends_when_the_service_stops(|mut stream| async move { stream.next().await }).await;
}

/// Observed in review: the first poll came while the task had spent its
/// scheduling budget, so the stop signal answered Pending without
/// registering; the stream took that for a registration, never polled the
/// signal again, and an idle stream outlived the service's stop.
#[tokio::test]
async fn a_stream_first_polled_without_budget_still_ends_when_the_service_stops() {
    ends_when_the_service_stops(|mut stream| async move {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<()>();
        for _ in 0..10_000 {
            sender.send(()).expect("queued");
        }
        // Spend the task's budget on the channel, then poll the stream in
        // the same poll.
        std::future::poll_fn(|cx| {
            while tokio::task::coop::has_budget_remaining() {
                let _ = receiver.poll_recv(cx);
            }
            assert!(
                stream.poll_next_unpin(cx).is_pending(),
                "nothing to read yet"
            );
            Poll::Ready(())
        })
        .await;
        stream.next().await
    })
    .await;
}
