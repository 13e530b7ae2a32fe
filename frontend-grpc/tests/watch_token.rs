//! A Watch stream lives only as long as the token it was opened with.

mod common;

use std::time::Duration;

use carewatch_core::ids::ResellerId;
use carewatch_core::testing::Fixture;
use carewatch_grpc::proto::dashboard_server::Dashboard;
use carewatch_grpc::proto::{self};
use carewatch_grpc::services::{DashboardService, TOKEN_RECHECK};
use common::SqliteFile;
use futures::StreamExt;
use tonic::{Code, Request};

/// Found by review: the token was checked once, when the stream opened, so
/// a leaked token's Watch kept receiving the reseller's changes after the
/// rotation meant to lock it out. It now ends with UNAUTHENTICATED within
/// [`TOKEN_RECHECK`]; a stream whose token still holds stays open.
#[tokio::test(start_paused = true)]
async fn a_watch_ends_once_its_token_is_rotated() {
    let db = SqliteFile::new();
    let fx = Fixture::open(&db).await;
    let alpha = ResellerId::new("alpha").expect("id");
    fx.reseller("alpha").await;
    let service = DashboardService::new(fx.carewatch.clone());
    let watch = |token: String| {
        let service = service.clone();
        async move {
            let mut request = Request::new(proto::WatchRequest::default());
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
            service.watch(request).await.expect("opens").into_inner()
        }
    };
    let rotate = || async {
        fx.carewatch
            .rotate_reseller_token(&alpha)
            .await
            .expect("rotates")
            .token
            .to_string()
    };

    let mut kept = watch(rotate().await).await;
    let idle = tokio::time::timeout(TOKEN_RECHECK * 3, kept.next()).await;
    assert!(idle.is_err(), "still open while its token holds: {idle:?}");

    let mut leaked = watch(rotate().await).await;
    rotate().await;
    let end = tokio::time::timeout(TOKEN_RECHECK * 2, leaked.next())
        .await
        .expect("ended within the recheck");
    match end {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    let after = tokio::time::timeout(Duration::from_secs(1), leaked.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "nothing after its end: {after:?}"
    );
}
