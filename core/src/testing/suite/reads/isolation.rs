//! Tenant isolation: a reseller reads and watches only its own installations.

use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::{Health, HealthSummary};
use crate::store::{MAX_PAGE_SIZE, OverviewQuery, PageCursor};
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;
use crate::testing::suite::{
    InstallationChange, assert_silent, beat, detail, next_change, overview_all, refused, report,
    secs, slc,
};

/// Another reseller's installation is indistinguishable from a missing one:
/// not in the overview or totals, `NotFound` with the same message, and its
/// changes never reach the other reseller's watch.
pub(crate) async fn tenant_isolation_hides_other_resellers_installations(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("beta", "M02-C01-0001").await;
    report(
        &fx,
        &a,
        "rs-1",
        1,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    beat(&fx, &b, "rs-1", 1).await;
    let beta = b.reseller.clone();

    let page = overview_all(&fx, &beta, true).await;
    assert_eq!(
        page.rows.iter().map(|r| r.slc.clone()).collect::<Vec<_>>(),
        vec![b.slc.clone()],
        "beta's overview must list only beta's installation"
    );
    assert_eq!(
        (page.totals.total(), page.totals.get(Health::Critical)),
        (1, 0),
        "alpha's Critical installation must not count in beta's totals"
    );
    assert!(
        overview_all(&fx, &beta, false).await.rows.is_empty(),
        "beta's default overview: its one installation is Healthy"
    );
    let after_a = fx
        .carewatch
        .overview(
            &beta,
            &OverviewQuery {
                include_healthy: true,
                page_size: MAX_PAGE_SIZE,
                after: Some(PageCursor::Health {
                    health: Health::Offline,
                    slc: slc("AAAA"),
                }),
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("beta's overview after a cursor");
    assert_eq!(
        after_a
            .rows
            .iter()
            .map(|r| r.slc.clone())
            .collect::<Vec<_>>(),
        vec![b.slc.clone()],
        "a cursor must not reach another reseller's rows"
    );
    assert_eq!(
        overview_all(&fx, &a.reseller, false)
            .await
            .rows
            .iter()
            .map(|r| r.slc.clone())
            .collect::<Vec<_>>(),
        vec![a.slc.clone()]
    );

    let missing = slc("M09-C09-0009");
    let foreign = refused(
        fx.carewatch.installation(&beta, &a.slc).await,
        "beta reading alpha's installation",
    );
    let absent = refused(
        fx.carewatch.installation(&beta, &missing).await,
        "beta reading an SLC that does not exist",
    );
    assert!(
        matches!(foreign, Error::NotFound { .. }) && matches!(absent, Error::NotFound { .. }),
        "both must be NotFound: {foreign:?} / {absent:?}"
    );
    assert_eq!(
        foreign.to_string(),
        absent.to_string().replace(missing.as_str(), a.slc.as_str()),
        "another reseller's installation must read exactly like a missing one"
    );
    assert_eq!(
        fx.store
            .installation_detail(&beta, &a.slc, 50)
            .await
            .expect("installation_detail"),
        None,
        "the store must not return another reseller's installation"
    );
    assert_eq!(
        fx.store
            .installation_detail(&a.reseller, &b.slc, 50)
            .await
            .expect("installation_detail"),
        None,
        "nor the other way round"
    );

    let foreign = refused(
        fx.carewatch.watch(&beta, Some(&a.slc), None).await,
        "beta watching alpha's installation",
    );
    let absent = refused(
        fx.carewatch.watch(&beta, Some(&missing), None).await,
        "beta watching an SLC that does not exist",
    );
    assert!(
        matches!(foreign, Error::NotFound { .. }),
        "watching another reseller's installation must be NotFound, got {foreign:?}"
    );
    assert_eq!(
        foreign.to_string(),
        absent.to_string().replace(missing.as_str(), a.slc.as_str()),
        "watching another reseller's installation must read exactly like a missing one"
    );

    let mut beta_all = fx
        .carewatch
        .watch(&beta, None, None)
        .await
        .expect("beta's watch");
    let mut alpha_all = fx
        .carewatch
        .watch(&a.reseller, None, None)
        .await
        .expect("alpha's watch");
    let mut alpha_one = fx
        .carewatch
        .watch(&a.reseller, Some(&a.slc), None)
        .await
        .expect("alpha's watch of its installation");
    fx.advance(secs(1));
    let ack = report(&fx, &a, "rs-1", 2, &[]).await;
    let change = InstallationChange {
        slc: a.slc.clone(),
        previous: Health::Critical,
        summary: detail(&fx, &a).await.summary,
        at: ack.received_at,
    };
    assert_eq!(change.summary.health, Health::Healthy);
    assert_eq!(next_change(&mut alpha_all, "alpha's watch").await, change);
    assert_eq!(
        next_change(&mut alpha_one, "alpha's watch of its installation").await,
        change
    );
    assert_silent(
        &mut beta_all,
        "beta's watch while alpha's installation changed",
    )
    .await;

    report(
        &fx,
        &b,
        "rs-1",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 1", "timeout")],
    )
    .await;
    let change = next_change(&mut beta_all, "beta's watch").await;
    assert_eq!(
        (change.slc, change.previous, change.summary.health),
        (b.slc.clone(), Health::Healthy, Health::Attention)
    );
    assert_silent(
        &mut alpha_all,
        "alpha's watch while beta's installation changed",
    )
    .await;
    assert_silent(&mut alpha_one, "alpha's single-installation watch").await;
}

/// Changes arrive on the watch stream within a second, as the new overview
/// line: from ingest and from the sweep; only for the watcher's own
/// installations (or the one it follows); a write that changes no overview
/// line sends nothing.
pub(crate) async fn watch_streams_changes_of_own_installations_only(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let a1 = fx.site("alpha", "M01-C01-0001").await;
    let a2 = fx.site("alpha", "M01-C01-0002").await;
    let b = fx.site("beta", "M02-C01-0001").await;
    for site in [&a1, &a2, &b] {
        beat(&fx, site, "rs-1", 1).await;
    }
    let alpha = a1.reseller.clone();
    let mut all = fx
        .carewatch
        .watch(&alpha, None, None)
        .await
        .expect("alpha's watch");
    let mut only_a1 = fx
        .carewatch
        .watch(&alpha, Some(&a1.slc), None)
        .await
        .expect("alpha's watch of one installation");
    let mut beta = fx
        .carewatch
        .watch(&b.reseller, None, None)
        .await
        .expect("beta's watch");

    fx.advance(secs(1));
    let ack = report(
        &fx,
        &a1,
        "rs-1",
        2,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    let expected = InstallationChange {
        slc: a1.slc.clone(),
        previous: Health::Healthy,
        summary: detail(&fx, &a1).await.summary,
        at: ack.received_at,
    };
    assert_eq!(
        expected.summary,
        HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::StorageFull),
            servers: 1,
            unavailable: 0,
            late: 0,
            active_conditions: 1,
        }
    );
    assert_eq!(
        next_change(&mut all, "STORAGE_FULL on a1, alpha's watch").await,
        expected
    );
    assert_eq!(
        next_change(&mut only_a1, "STORAGE_FULL on a1, a1's watch").await,
        expected
    );

    let ack = report(
        &fx,
        &a2,
        "rs-1",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 2", "timeout")],
    )
    .await;
    assert_eq!(
        next_change(&mut all, "CAMERA_UNREACHABLE on a2").await,
        InstallationChange {
            slc: a2.slc.clone(),
            previous: Health::Healthy,
            summary: detail(&fx, &a2).await.summary,
            at: ack.received_at,
        }
    );
    report(
        &fx,
        &a2,
        "rs-1",
        3,
        &[(ConditionCode::CameraUnreachable, "Camera 2", "timeout")],
    )
    .await;
    assert_silent(&mut all, "a report that changes no overview line").await;
    assert_silent(&mut only_a1, "changes of a2 on a1's watch").await;
    assert_silent(&mut beta, "alpha's changes on beta's watch").await;

    // Time-driven changes are streamed too: everybody turns late.
    fx.advance(secs(62));
    let swept = fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(swept.evaluated, 3, "all three servers are due");
    let mut got = vec![
        next_change(&mut all, "the sweep, alpha's watch (first)").await,
        next_change(&mut all, "the sweep, alpha's watch (second)").await,
    ];
    got.sort_by(|x, y| x.slc.cmp(&y.slc));
    assert_eq!(
        got.iter()
            .map(|c| (c.slc.clone(), c.previous, c.summary.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                a1.slc.clone(),
                Health::Critical,
                detail(&fx, &a1).await.summary
            ),
            (
                a2.slc.clone(),
                Health::Attention,
                detail(&fx, &a2).await.summary
            ),
        ],
        "the sweep's changes of alpha's installations, as their new overview lines"
    );
    let swept_at = fx.carewatch.now();
    assert!(
        got.iter().all(|c| c.summary.late == 1 && c.at == swept_at),
        "each sweep change has one late server and is dated when the sweep evaluated it: {got:?}"
    );
    let change = next_change(&mut only_a1, "the sweep, a1's watch").await;
    assert_eq!(change, got[0], "a1's watch gets the same change as alpha's");
    let change = next_change(&mut beta, "the sweep, beta's watch").await;
    assert_eq!(
        (change.slc, change.previous, change.summary),
        (
            b.slc.clone(),
            Health::Healthy,
            detail(&fx, &b).await.summary
        )
    );
    assert_silent(&mut all, "after the sweep's changes").await;
    assert_silent(&mut only_a1, "after the sweep's change of a1").await;
    assert_silent(&mut beta, "after the sweep's change of b").await;
}
