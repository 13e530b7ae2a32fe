//! What resellers read: overview, paging, installation detail, isolation and
//! the live watch.

mod installation_detail;
mod isolation;
mod overview;

pub(crate) use installation_detail::*;
pub(crate) use isolation::*;
pub(crate) use overview::*;

use std::cmp::Reverse;

use super::detail;
use crate::health::Health;
use crate::ids::{ResellerId, Slc};
use crate::store::{OverviewPage, OverviewQuery, OverviewRow, PageCursor};
use crate::testing::fixture::{Fixture, Site};

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
