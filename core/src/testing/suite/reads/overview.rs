//! The overview: unhealthy installations worst first by default; paging covers all once.

use super::{all_pages, expected_rows, position};
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::{Health, HealthSummary};
use crate::store::{MAX_PAGE_SIZE, OverviewQuery, OverviewRow, PageCursor};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{beat, overview_all, refused, report, secs, slc};

/// Healthy installations are hidden by default; rows are sorted worst first
/// (Offline, Critical, Attention, Pending, Healthy), then by SLC; totals
/// count every installation of the reseller, and only its own.
pub(crate) async fn overview_lists_only_unhealthy_by_default_worst_first(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    // Registered in an order unlike the expected one.
    let healthy_b = fx.site("alpha", "M01-C01-0007").await;
    let healthy_a = fx.site("alpha", "M01-C01-0002").await;
    let pending = fx.site("alpha", "M01-C01-0005").await;
    let attention = fx.site("alpha", "M01-C01-0003").await;
    let storage = fx.site("alpha", "M01-C01-0006").await;
    let media_db = fx.site("alpha", "M01-C01-0001").await;
    let offline = fx.site("alpha", "M01-C01-0004").await;
    let foreign = fx.site("beta", "M01-C01-0000").await;

    beat(&fx, &offline, "rs-1", 1).await;
    fx.advance(secs(182));
    beat(&fx, &healthy_b, "rs-1", 1).await;
    beat(&fx, &healthy_a, "rs-1", 1).await;
    report(
        &fx,
        &attention,
        "rs-1",
        1,
        &[(ConditionCode::CameraUnreachable, "Camera 1", "timeout")],
    )
    .await;
    report(
        &fx,
        &storage,
        "rs-1",
        1,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    report(
        &fx,
        &media_db,
        "rs-1",
        1,
        &[(ConditionCode::MediaDbWriteFailed, "db", "disk error")],
    )
    .await;
    report(
        &fx,
        &foreign,
        "rs-1",
        1,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    let swept = fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(
        swept.installations_changed, 1,
        "only the silent site changes"
    );

    let expected_default =
        expected_rows(&fx, &[&offline, &media_db, &storage, &attention, &pending]).await;
    assert_eq!(
        expected_default
            .iter()
            .map(|r| r.summary.health)
            .collect::<Vec<_>>(),
        vec![
            Health::Offline,
            Health::Critical,
            Health::Critical,
            Health::Attention,
            Health::Pending
        ],
        "the test's own set-up went wrong"
    );
    assert_eq!(expected_default[0].last_seen_at, Some(START));
    assert_eq!(expected_default[4].summary, HealthSummary::pending());
    assert_eq!(expected_default[4].last_seen_at, None);

    let page = fx
        .carewatch
        .overview(&healthy_a.reseller, &OverviewQuery::default())
        .await
        .expect("the default overview");
    assert_eq!(
        page.rows, expected_default,
        "by default: every installation but the Healthy ones, worst first, then by SLC \
         (not by worst condition: M01-C01-0001's MEDIA_DB_WRITE_FAILED ranks below STORAGE_FULL)"
    );
    assert_eq!(page.next, None, "everything fits on one page");

    let all = overview_all(&fx, &healthy_a.reseller, true).await;
    let mut expected_all = expected_default.clone();
    expected_all.extend(expected_rows(&fx, &[&healthy_a, &healthy_b]).await);
    assert_eq!(
        all.rows, expected_all,
        "with Healthy ones: Healthy last, by SLC"
    );
    assert_eq!(all.next, None);
    for (health, count) in [
        (Health::Offline, 1),
        (Health::Critical, 2),
        (Health::Attention, 1),
        (Health::Pending, 1),
        (Health::Healthy, 2),
    ] {
        assert_eq!(
            (page.totals.get(health), all.totals.get(health)),
            (count, count),
            "totals of {health:?} (over all of alpha's installations, whatever is listed)"
        );
    }
    assert_eq!(
        page.totals.total(),
        7,
        "beta's installation must not count in alpha's totals"
    );

    // An installation turning Healthy leaves the default list.
    report(&fx, &attention, "rs-1", 2, &[]).await;
    let page = overview_all(&fx, &healthy_a.reseller, false).await;
    assert_eq!(
        page.rows,
        expected_rows(&fx, &[&offline, &media_db, &storage, &pending]).await,
        "an installation that turned Healthy must leave the default overview"
    );
    assert_eq!(
        (
            page.totals.get(Health::Attention),
            page.totals.get(Health::Healthy)
        ),
        (0, 3)
    );
}

/// Paging with `page_size` and the `next` cursor visits every row exactly
/// once, in order, with no empty trailing page; a page size outside
/// 1..=500 is refused.
pub(crate) async fn overview_pages_cover_everything_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let mut sites = Vec::new();
    for (text, what) in [
        ("M01-C02-0004", "critical"),
        ("M01-C02-0001", "healthy"),
        ("M01-C02-0006", "attention"),
        ("M01-C02-0002", "pending"),
        ("M01-C02-0007", "critical"),
        ("M01-C02-0003", "healthy"),
        ("M01-C02-0005", "attention"),
    ] {
        let site = fx.site("alpha", text).await;
        match what {
            "critical" => {
                report(
                    &fx,
                    &site,
                    "rs-1",
                    1,
                    &[(ConditionCode::StorageFull, "D:", "100%")],
                )
                .await;
            }
            "attention" => {
                report(
                    &fx,
                    &site,
                    "rs-1",
                    1,
                    &[(ConditionCode::LicenseOveruse, "", "12/10")],
                )
                .await;
            }
            "healthy" => {
                beat(&fx, &site, "rs-1", 1).await;
            }
            _ => {}
        }
        sites.push(site);
    }
    fx.site("beta", "M01-C02-0000").await;
    let alpha = sites[0].reseller.clone();

    let full = overview_all(&fx, &alpha, true).await;
    assert_eq!(
        full.rows.iter().map(|r| r.slc.as_str()).collect::<Vec<_>>(),
        vec![
            "M01-C02-0004",
            "M01-C02-0007",
            "M01-C02-0005",
            "M01-C02-0006",
            "M01-C02-0002",
            "M01-C02-0001",
            "M01-C02-0003"
        ],
        "the whole overview, worst first then by SLC"
    );
    let unhealthy = overview_all(&fx, &alpha, false).await;
    assert_eq!(unhealthy.rows.len(), 5);

    for include_healthy in [true, false] {
        let expected = if include_healthy { &full } else { &unhealthy };
        let n = expected.rows.len();
        for page_size in 1..=(n as u32 + 1) {
            let pages =
                all_pages(&fx, &alpha, include_healthy, page_size, page_size % 2 == 0).await;
            let label = format!("include_healthy {include_healthy}, page size {page_size}");
            assert_eq!(
                pages.len(),
                n.div_ceil(page_size as usize),
                "{label}: number of pages (no empty trailing page when the rows fill the last one)"
            );
            for (i, page) in pages.iter().enumerate() {
                let last = i + 1 == pages.len();
                let want = if last {
                    n - i * page_size as usize
                } else {
                    page_size as usize
                };
                assert_eq!(page.rows.len(), want, "{label}: rows on page {i}");
                assert_eq!(page.totals, expected.totals, "{label}: totals on page {i}");
                assert_eq!(page.next.is_some(), !last, "{label}: next on page {i}");
                if let (Some(next), Some(row)) = (&page.next, page.rows.last()) {
                    assert_eq!(
                        next,
                        &PageCursor::Health {
                            health: row.summary.health,
                            slc: row.slc.clone()
                        },
                        "{label}: next must be the position of the page's last row"
                    );
                }
            }
            let rows: Vec<OverviewRow> = pages.into_iter().flat_map(|p| p.rows).collect();
            assert_eq!(
                rows, expected.rows,
                "{label}: the pages together must be the whole overview, once, in order"
            );
        }
    }

    // `after` is a position, whether or not a row sits there.
    for (health, at) in [
        (Health::Critical, slc("ZZZZ-9999")),
        (Health::Attention, slc("M01-C02-0005")),
        (Health::Offline, slc("AAAA")),
        (Health::Healthy, slc("M01-C02-0003")),
    ] {
        let from = position(health, &at);
        let cursor = PageCursor::Health { health, slc: at };
        let page = fx
            .carewatch
            .overview(
                &alpha,
                &OverviewQuery {
                    include_healthy: true,
                    page_size: MAX_PAGE_SIZE,
                    after: Some(cursor.clone()),
                    ..OverviewQuery::default()
                },
            )
            .await
            .expect("overview after a position");
        let expected: Vec<OverviewRow> = full
            .rows
            .iter()
            .filter(|r| position(r.summary.health, &r.slc) > from)
            .cloned()
            .collect();
        assert_eq!(page.rows, expected, "the rows strictly after {cursor:?}");
        assert_eq!(page.next, None);
    }

    for page_size in [0, MAX_PAGE_SIZE + 1] {
        let err = refused(
            fx.carewatch
                .overview(
                    &alpha,
                    &OverviewQuery {
                        page_size,
                        ..OverviewQuery::default()
                    },
                )
                .await,
            &format!("an overview with page size {page_size}"),
        );
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "page size",
                    ..
                }
            ),
            "page size {page_size} must be InvalidInput(page size), got {err:?}"
        );
    }
}
