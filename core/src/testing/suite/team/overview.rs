//! The overview's health filter and SLC search, with paging.

use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::ids::ResellerId;
use crate::store::{
    MAX_PAGE_SIZE, MAX_SEARCH_CHARS, OverviewPage, OverviewQuery, OverviewRow, PageCursor,
};
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;
use crate::testing::suite::{beat, refused, report, secs, slc};

/// Every page of an overview query; checks each page's totals.
async fn pages_of(fx: &Fixture, reseller: &ResellerId, query: &OverviewQuery) -> Vec<OverviewPage> {
    let mut pages: Vec<OverviewPage> = Vec::new();
    let mut query = query.clone();
    loop {
        assert!(pages.len() <= 100, "paging {query:?} does not end");
        let page = fx
            .carewatch
            .overview(reseller, &query)
            .await
            .unwrap_or_else(|e| panic!("overview {query:?}: {e}"));
        let next = page.next.clone();
        pages.push(page);
        match next {
            None => return pages,
            Some(cursor) => {
                query.after = Some(
                    PageCursor::from_token(&cursor.to_token()).expect("the cursor's token parses"),
                );
            }
        }
    }
}

/// The SLCs of rows.
fn slcs(rows: &[OverviewRow]) -> Vec<&str> {
    rows.iter().map(|r| r.slc.as_str()).collect()
}

/// `health` lists only installations of that health; `search` only those
/// whose SLC contains the text, in any case (literally: `%` and `_` are
/// not wildcards); both combine with each other and with paging, whose
/// pages cover exactly the filtered rows once, in order; totals stay over
/// all of the reseller's installations; a search with a control character
/// or longer than 64 characters is refused.
pub(crate) async fn overview_filters_by_health_and_searches_slcs(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let offline = fx.site("alpha", "X17-B00-0001").await;
    beat(&fx, &offline, "rs-1", 1).await;
    fx.advance(secs(182));
    let mut sites = Vec::new();
    for (text, what) in [
        ("M01-C03-0004", "critical"),
        ("M01-C03-0001", "healthy"),
        ("X17-C03-0006", "attention"),
        ("M01-C03-0002", "pending"),
        ("X17-B00-0007", "critical"),
        ("M01-B00-0003", "healthy"),
        ("M01-C03-0005", "attention"),
        ("X17-C03-0008", "critical"),
        ("M01-C03-0009", "pending"),
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
    let foreign = fx.site("beta", "X17-C03-0000").await;
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
    let alpha = offline.reseller.clone();

    let everything = OverviewQuery {
        include_healthy: true,
        page_size: MAX_PAGE_SIZE,
        ..OverviewQuery::default()
    };
    let full = fx
        .carewatch
        .overview(&alpha, &everything)
        .await
        .expect("the whole overview");
    assert_eq!(
        slcs(&full.rows),
        vec![
            "X17-B00-0001",
            "M01-C03-0004",
            "X17-B00-0007",
            "X17-C03-0008",
            "M01-C03-0005",
            "X17-C03-0006",
            "M01-C03-0002",
            "M01-C03-0009",
            "M01-B00-0003",
            "M01-C03-0001",
        ],
        "the test's own set-up went wrong"
    );
    let healths: Vec<Health> = full.rows.iter().map(|r| r.summary.health).collect();
    assert_eq!(
        healths,
        vec![
            Health::Offline,
            Health::Critical,
            Health::Critical,
            Health::Critical,
            Health::Attention,
            Health::Attention,
            Health::Pending,
            Health::Pending,
            Health::Healthy,
            Health::Healthy,
        ],
        "the test's own set-up went wrong"
    );

    // Spot checks, written out.
    let one = |health: Option<Health>, search: Option<&str>, include_healthy: bool| OverviewQuery {
        include_healthy,
        health,
        search: search.map(str::to_owned),
        page_size: MAX_PAGE_SIZE,
        ..OverviewQuery::default()
    };
    for (query, expected, what) in [
        (
            one(Some(Health::Critical), None, false),
            vec!["M01-C03-0004", "X17-B00-0007", "X17-C03-0008"],
            "only Critical",
        ),
        (
            one(Some(Health::Healthy), None, false),
            vec!["M01-B00-0003", "M01-C03-0001"],
            "only Healthy, though include_healthy is false",
        ),
        (
            one(None, Some("x17"), false),
            vec![
                "X17-B00-0001",
                "X17-B00-0007",
                "X17-C03-0008",
                "X17-C03-0006",
            ],
            "a search in lower case, not beta's X17-C03-0000",
        ),
        (
            one(None, Some(" b00-000 "), true),
            vec!["X17-B00-0001", "X17-B00-0007", "M01-B00-0003"],
            "a search is trimmed; Healthy ones with include_healthy",
        ),
        (
            one(None, Some("b00"), false),
            vec!["X17-B00-0001", "X17-B00-0007"],
            "a search lists no Healthy one unless asked",
        ),
        (
            one(Some(Health::Critical), Some("c03"), false),
            vec!["M01-C03-0004", "X17-C03-0008"],
            "a health and a search together",
        ),
        (
            one(Some(Health::Offline), Some("C03"), false),
            vec![],
            "nothing matches both",
        ),
        (
            one(None, Some("   "), true),
            slcs(&full.rows),
            "a blank search is no search",
        ),
        (one(None, Some("%"), true), vec![], "'%' is not a wildcard"),
        (
            one(None, Some("M01_C03"), true),
            vec![],
            "'_' is not a wildcard",
        ),
        (
            one(None, Some("x17-c03-0006"), true),
            vec!["X17-C03-0006"],
            "a whole SLC",
        ),
    ] {
        let page = fx
            .carewatch
            .overview(&alpha, &query)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(slcs(&page.rows), expected, "{what}");
        assert_eq!(page.next, None, "{what}");
        assert_eq!(page.totals, full.totals, "{what}: totals are unfiltered");
    }

    // Every combination, paged with every size: exactly the filtered rows.
    let mut filters = vec![None];
    filters.extend(Health::ALL.map(Some));
    for health in filters {
        for search in [None, Some("c03"), Some("X17-"), Some("zzz")] {
            for include_healthy in [false, true] {
                let base = OverviewQuery {
                    include_healthy,
                    health,
                    search: search.map(str::to_owned),
                    ..OverviewQuery::default()
                };
                let pattern = base.search_pattern();
                let expected: Vec<OverviewRow> = full
                    .rows
                    .iter()
                    .filter(|r| {
                        base.lists(r.summary.health)
                            && pattern
                                .as_deref()
                                .is_none_or(|p| r.slc.as_str().contains(p))
                    })
                    .cloned()
                    .collect();
                let n = expected.len();
                for page_size in 1..=(n as u32 + 1) {
                    let label = format!(
                        "health {health:?}, search {search:?}, include_healthy {include_healthy}, page size {page_size}"
                    );
                    let query = OverviewQuery {
                        page_size,
                        ..base.clone()
                    };
                    let pages = pages_of(&fx, &alpha, &query).await;
                    assert_eq!(
                        pages.len(),
                        n.div_ceil(page_size as usize).max(1),
                        "{label}: number of pages"
                    );
                    for page in &pages {
                        assert_eq!(page.totals, full.totals, "{label}: totals are unfiltered");
                        assert!(page.rows.len() <= page_size as usize, "{label}");
                    }
                    let rows: Vec<OverviewRow> = pages.into_iter().flat_map(|p| p.rows).collect();
                    assert_eq!(
                        rows, expected,
                        "{label}: the pages together are the filtered rows, once, in order"
                    );
                }
            }
        }
    }

    // A cursor outside the filtered healths: before them, all; after, none.
    let critical = |after: PageCursor| OverviewQuery {
        after: Some(after),
        ..one(Some(Health::Critical), Some("C03"), false)
    };
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Offline,
                slc: slc("AAAA"),
            }),
        )
        .await
        .expect("after an Offline position");
    assert_eq!(slcs(&page.rows), vec!["M01-C03-0004", "X17-C03-0008"]);
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Critical,
                slc: slc("M01-C03-0004"),
            }),
        )
        .await
        .expect("after the first Critical one");
    assert_eq!(slcs(&page.rows), vec!["X17-C03-0008"]);
    let page = fx
        .carewatch
        .overview(
            &alpha,
            &critical(PageCursor::Health {
                health: Health::Attention,
                slc: slc("AAAA"),
            }),
        )
        .await
        .expect("after an Attention position");
    assert!(page.rows.is_empty(), "{:?}", slcs(&page.rows));

    // Refused searches.
    for (search, what) in [
        ("C03\u{7}".to_owned(), "a control character"),
        ("C03\n".to_owned(), "a line break"),
        ("C".repeat(MAX_SEARCH_CHARS + 1), "65 characters"),
    ] {
        let err = refused(
            fx.carewatch
                .overview(
                    &alpha,
                    &OverviewQuery {
                        search: Some(search),
                        ..OverviewQuery::default()
                    },
                )
                .await,
            what,
        );
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "search",
                    ..
                }
            ),
            "a search with {what} must be InvalidInput(search), got {err:?}"
        );
    }
    let longest = fx
        .carewatch
        .overview(
            &alpha,
            &OverviewQuery {
                search: Some("C".repeat(MAX_SEARCH_CHARS)),
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("a search of 64 characters is fine");
    assert!(longest.rows.is_empty());
}
