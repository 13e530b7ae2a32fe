//! What resellers read: overview, paging, installation detail, isolation and
//! the live watch.

use std::cmp::Reverse;

use super::InstallationChange;
use super::{
    accept, assert_silent, beat, condition, cursor_of, detail, event, heartbeat_msg, history_of,
    next_change, overview_all, refused, report, report_msg, rs, secs, slc, sorted_events, t,
};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::{Health, HealthSummary};
use crate::ids::{ResellerId, Slc};
use crate::store::{
    HistoryKind, MAX_PAGE_SIZE, OverviewPage, OverviewQuery, OverviewRow, PageCursor, ServerRecord,
};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START, Site};

/// The overview row an installation must have, from its detail.
async fn expected_row(fx: &Fixture, site: &Site) -> OverviewRow {
    let d = detail(fx, site).await;
    OverviewRow {
        slc: site.slc.clone(),
        product: d.installation.product.clone(),
        summary: d.summary.clone(),
        last_seen_at: d.servers.iter().map(|s| s.last_seen_at).max(),
        labels: d.labels.clone(),
        consent: d.installation.consent,
        subscription_expires_at: d.installation.subscription_expires_at,
    }
}

/// The sort position of a row: worst first, then by SLC.
fn position(health: Health, slc: &Slc) -> (Reverse<u8>, Slc) {
    (Reverse(health.rank()), slc.clone())
}

/// Every installations of `sites`, overview rows in the order given.
async fn expected_rows(fx: &Fixture, sites: &[&Site]) -> Vec<OverviewRow> {
    let mut rows = Vec::with_capacity(sites.len());
    for site in sites {
        rows.push(expected_row(fx, site).await);
    }
    rows
}

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

/// Follows `next` from the first page; returns every page.
async fn all_pages(
    fx: &Fixture,
    reseller: &ResellerId,
    include_healthy: bool,
    page_size: u32,
    through_token: bool,
) -> Vec<OverviewPage> {
    let mut pages: Vec<OverviewPage> = Vec::new();
    let mut after = None;
    loop {
        assert!(
            pages.len() <= 100,
            "paging with size {page_size} does not end: {pages:#?}"
        );
        let query = OverviewQuery {
            include_healthy,
            page_size,
            after: after.clone(),
            ..OverviewQuery::default()
        };
        let page = fx
            .carewatch
            .overview(reseller, &query)
            .await
            .unwrap_or_else(|e| panic!("overview page {} (size {page_size}): {e}", pages.len()));
        let next = page.next.clone();
        pages.push(page);
        match next {
            None => return pages,
            Some(cursor) if through_token => {
                after = Some(
                    PageCursor::from_token(&cursor.to_token())
                        .unwrap_or_else(|e| panic!("the next cursor's token does not parse: {e}")),
                );
            }
            Some(cursor) => after = Some(cursor),
        }
    }
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

/// The detail: servers by id with their state, active conditions oldest
/// first, history newest first and limited to the newest events.
pub(crate) async fn installation_detail_has_servers_conditions_and_history(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    let empty = detail(&fx, &site).await;
    assert_eq!(
        (
            empty.summary.clone(),
            empty.servers.len(),
            empty.active_conditions.len(),
            empty.history.len()
        ),
        (HealthSummary::pending(), 0, 0, 0),
        "a new installation has nothing yet"
    );
    assert_eq!(
        Some(empty.installation.clone()),
        fx.store
            .installation(&site.slc)
            .await
            .expect("installation"),
        "the detail's installation must be the stored one"
    );

    let b1 = heartbeat_msg(&site, "rs-b", 1);
    accept(&fx, b1, "rs-b's first heartbeat").await;
    fx.advance(secs(5));
    accept(
        &fx,
        report_msg(
            &site,
            "rs-a",
            1,
            &[
                (ConditionCode::CameraUnreachable, "Camera 7", "timeout"),
                (ConditionCode::StorageFull, "D:", "100%"),
            ],
        ),
        "rs-a's first report",
    )
    .await;
    fx.advance(secs(5));
    let a2 = report_msg(
        &site,
        "rs-a",
        2,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    );
    accept(&fx, a2.clone(), "rs-a's second report").await;
    fx.advance(secs(5));
    let b2 = heartbeat_msg(&site, "rs-b", 2);
    accept(&fx, b2.clone(), "rs-b's second heartbeat").await;

    let d = detail(&fx, &site).await;
    assert_eq!(
        d.servers,
        vec![
            ServerRecord {
                slc: site.slc.clone(),
                server: rs("rs-a"),
                first_seen_at: t(5),
                last_seen_at: t(10),
                interval: INTERVAL,
                cursor: cursor_of(&a2),
                availability: Availability::Available,
                next_check_at: Some(t(10).saturating_add(INTERVAL + JITTER)),
                counted_from: None,
            },
            ServerRecord {
                slc: site.slc.clone(),
                server: rs("rs-b"),
                first_seen_at: START,
                last_seen_at: t(15),
                interval: INTERVAL,
                cursor: cursor_of(&b2),
                availability: Availability::Available,
                next_check_at: Some(t(15).saturating_add(INTERVAL + JITTER)),
                counted_from: None,
            },
        ],
        "servers by id (rs-a before rs-b though heard from later), each exactly as stored"
    );
    assert_eq!(
        d.active_conditions,
        vec![condition(
            "rs-a",
            ConditionCode::StorageFull,
            "D:",
            "100%",
            t(5)
        )],
        "only STORAGE_FULL is still active"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::StorageFull),
            servers: 2,
            unavailable: 0,
            late: 0,
            active_conditions: 1,
        }
    );
    let newest = event(
        t(10),
        "rs-a",
        HistoryKind::ConditionResolved {
            code: ConditionCode::CameraUnreachable,
            subject: "Camera 7".into(),
            open_for: secs(5),
        },
    );
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-b", HistoryKind::FirstSeen),
            event(t(5), "rs-a", HistoryKind::FirstSeen),
            event(
                t(5),
                "rs-a",
                HistoryKind::ConditionOpened {
                    code: ConditionCode::CameraUnreachable,
                    subject: "Camera 7".into()
                }
            ),
            event(
                t(5),
                "rs-a",
                HistoryKind::ConditionOpened {
                    code: ConditionCode::StorageFull,
                    subject: "D:".into()
                }
            ),
            newest.clone(),
        ]),
        "the whole history"
    );
    assert_eq!(
        d.history.first(),
        Some(&newest),
        "the history is newest first"
    );
    assert_eq!(
        d.history.last(),
        Some(&event(START, "rs-b", HistoryKind::FirstSeen)),
        "the oldest event comes last"
    );

    for limit in [1u32, 2, 4] {
        let limited = fx
            .store
            .installation_detail(&site.reseller, &site.slc, limit)
            .await
            .expect("installation_detail")
            .expect("the reseller's own installation");
        assert_eq!(
            limited.history.len(),
            limit as usize,
            "history_limit {limit}: the newest {limit} events"
        );
        assert_eq!(
            limited.history[0], newest,
            "history_limit {limit}: newest first"
        );
        assert!(
            limited.history.iter().all(|e| d.history.contains(e))
                && limited
                    .history
                    .iter()
                    .all(|e| e.at >= d.history[limit as usize - 1].at),
            "history_limit {limit}: must be the newest events: {:#?}",
            limited.history
        );
        assert_eq!(
            (
                &limited.installation,
                &limited.summary,
                &limited.servers,
                &limited.active_conditions
            ),
            (
                &d.installation,
                &d.summary,
                &d.servers,
                &d.active_conditions
            ),
            "history_limit {limit} must limit only the history"
        );
    }

    let err = refused(
        fx.carewatch
            .installation(&site.reseller, &slc("M99-C99-9999"))
            .await,
        "the detail of an SLC that does not exist",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
}

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
