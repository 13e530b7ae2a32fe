//! What resellers read: the overview and one installation's detail. Each
//! runs in one read-only REPEATABLE READ transaction: a consistent snapshot.

use carewatch_core::condition::ConditionRecord;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::labels::{LabelOrder, Labels};
use carewatch_core::store::hidden_history::hide_before;
use carewatch_core::store::{
    HealthTotals, InstallationDetail, OverviewPage, OverviewQuery, OverviewRow, PageCursor,
};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use super::history::{self, history_columns};
use crate::codec::{self, col, installation_columns, rank, server_columns, summary_columns, ts};
use crate::errors::{DbResult, corrupt};

/// One overview line; `max(last_seen_at)` is read through the servers' primary key,
/// and reads as the transfer when that hides what came before (`history_from`,
/// as [`hide_before`] does for the detail).
macro_rules! overview_select {
    () => {
        concat!(
            "SELECT slc, product, product_version, ",
            summary_columns!(),
            ", (SELECT CASE WHEN max(s.last_seen_at) IS NULL THEN NULL
                        ELSE GREATEST(max(s.last_seen_at), i.history_from) END
                FROM servers s WHERE s.slc = i.slc), ",
            "customer_name, site_name, notes, tags, consent, subscription_expires_at FROM installations i "
        )
    };
}

/// The first page: one range scan of installations_overview (reseller_id,
/// health DESC, slc) over the healths listed ($2 to $4) in index order,
/// stopping after $3 rows. A search is a filter on the rows the scan reads.
macro_rules! first_page {
    ($search:literal) => {
        concat!(
            overview_select!(),
            "WHERE reseller_id = $1 AND health >= $2 AND health <= $4",
            $search,
            " ORDER BY health DESC, slc LIMIT $3"
        )
    };
}
const FIRST_PAGE: &str = first_page!("");
const FIRST_PAGE_SEARCH: &str = first_page!(" AND strpos(coalesce(search_text, slc), $5) > 0");

/// A later page, after (health $5, slc $6): the rest of the cursor's health
/// (slc > $6), then the better healths below it, both within the healths
/// listed ($2 to $4). Each branch is a range scan of installations_overview
/// that starts right at the cursor, so page 2000 costs what page 1 does (no
/// OFFSET, no filter over skipped rows).
macro_rules! next_page {
    ($search:literal) => {
        concat!(
            "SELECT * FROM ((",
            overview_select!(),
            "WHERE reseller_id = $1 AND health = $5 AND slc > $6 AND health >= $2 AND health <= $4",
            $search,
            " ORDER BY slc LIMIT $3",
            ") UNION ALL (",
            overview_select!(),
            "WHERE reseller_id = $1 AND health < $5 AND health >= $2 AND health <= $4",
            $search,
            " ORDER BY health DESC, slc LIMIT $3",
            ")) page ORDER BY health DESC, slc LIMIT $3"
        )
    };
}
const NEXT_PAGE: &str = next_page!("");
const NEXT_PAGE_SEARCH: &str = next_page!(" AND strpos(coalesce(search_text, slc), $7) > 0");

/// A page by a label: one seek of installations_by_customer (or _by_site)
/// from the cursor's (key $5, slc $6) on, in that index's order; the
/// healths listed ($2 to $4) filter it.
macro_rules! label_page {
    ($column:literal, $seek:expr, $search:literal) => {
        concat!(
            overview_select!(),
            "WHERE reseller_id = $1 AND health >= $2 AND health <= $4",
            $seek,
            $search,
            " ORDER BY ",
            $column,
            ", slc LIMIT $3"
        )
    };
}

/// The four statements of one label order: (first page, first page with a
/// search, later page, later page with a search).
macro_rules! label_pages {
    ($column:literal) => {
        [
            label_page!($column, "", ""),
            label_page!(
                $column,
                "",
                " AND strpos(coalesce(search_text, slc), $5) > 0"
            ),
            label_page!($column, concat!(" AND (", $column, ", slc) > ($5, $6)"), ""),
            label_page!(
                $column,
                concat!(" AND (", $column, ", slc) > ($5, $6)"),
                " AND strpos(coalesce(search_text, slc), $7) > 0"
            ),
        ]
    };
}
const BY_CUSTOMER: [&str; 4] = label_pages!("customer_order");
const BY_SITE: [&str; 4] = label_pages!("site_order");

fn overview_row(row: &PgRow) -> DbResult<OverviewRow> {
    Ok(OverviewRow {
        slc: codec::slc(&col::<String>(row, 0)?)?,
        product: Product::new(&col::<String>(row, 1)?, &col::<String>(row, 2)?)
            .map_err(|e| corrupt("product", e))?,
        summary: codec::summary(row, 3)?,
        last_seen_at: col::<Option<i64>>(row, 9)?.map(ts),
        labels: labels(row, 10)?,
        consent: col(row, 14)?,
        subscription_expires_at: col::<Option<i64>>(row, 15)?.map(ts),
    })
}

/// Labels from four columns: customer_name, site_name, notes, tags.
pub(crate) fn labels(row: &PgRow, at: usize) -> DbResult<Labels> {
    Ok(Labels::decode(
        col(row, at)?,
        col(row, at + 1)?,
        col(row, at + 2)?,
        &col::<String>(row, at + 3)?,
    )?)
}

pub(crate) async fn overview(
    c: &mut PgConnection,
    reseller: &ResellerId,
    query_: &OverviewQuery,
) -> DbResult<OverviewPage> {
    // The healths listed are one range of ranks.
    let (lowest, highest) = query_.health_range();
    let search = query_.search_pattern();
    let first = query(match &query_.after {
        None => match (query_.order.label_order(), search.is_some()) {
            (None, false) => FIRST_PAGE,
            (None, true) => FIRST_PAGE_SEARCH,
            (Some(label), searching) => label_statements(label)[usize::from(searching)],
        },
        Some(PageCursor::Health { .. }) if search.is_some() => NEXT_PAGE_SEARCH,
        Some(PageCursor::Health { .. }) => NEXT_PAGE,
        Some(PageCursor::Label { order, .. }) => {
            label_statements(*order)[2 + usize::from(search.is_some())]
        }
    })
    .bind(reseller.as_str())
    .bind(rank(lowest))
    .bind(query_.read_limit())
    .bind(rank(highest));
    let q = match (&query_.after, query_.order.label_order()) {
        (None, _) => first,
        (Some(PageCursor::Health { health, slc }), None) => {
            first.bind(rank(*health)).bind(slc.as_str())
        }
        (Some(PageCursor::Label { order, key, slc }), Some(label)) if *order == label => {
            first.bind(key.as_str()).bind(slc.as_str())
        }
        (Some(_), _) => return Err(query_.cursor_mismatch().into()),
    };
    let rows = match search {
        Some(pattern) => q.bind(pattern).fetch_all(&mut *c).await?,
        None => q.fetch_all(&mut *c).await?,
    };
    let rows = rows
        .iter()
        .map(overview_row)
        .collect::<DbResult<Vec<_>>>()?;
    Ok(query_.page(rows, totals(c, reseller).await?))
}

fn label_statements(order: LabelOrder) -> &'static [&'static str; 4] {
    match order {
        LabelOrder::Customer => &BY_CUSTOMER,
        LabelOrder::Site => &BY_SITE,
    }
}

/// Counts per health, kept by triggers (migration 0002), not counted per
/// call: the reseller's five health_totals rows plus the deltas parked
/// beside them by concurrent writers, both read in this snapshot.
async fn totals(c: &mut PgConnection, reseller: &ResellerId) -> DbResult<HealthTotals> {
    let rows = query(
        "SELECT health, sum(n)::bigint FROM (
             SELECT health, installations AS n FROM health_totals WHERE reseller_id = $1
             UNION ALL
             SELECT health, delta FROM health_total_deltas WHERE reseller_id = $1
         ) t GROUP BY health HAVING sum(n) <> 0",
    )
    .bind(reseller.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut totals = HealthTotals::default();
    for row in &rows {
        let health = codec::health(col(row, 0)?)?;
        let count = u32::try_from(col::<i64>(row, 1)?).map_err(|e| corrupt("count", e))?;
        totals.set(health, count);
    }
    Ok(totals)
}

/// Several installations in one read transaction (see
/// `Store::installation_details`).
/// Several installations in three statements whatever their number (the
/// notifier reads every installation it tells about in one step): theirs,
/// their servers, their open conditions. In SLC byte order, without history.
pub(crate) async fn installation_details(
    c: &mut PgConnection,
    reseller: &ResellerId,
    slcs: &[Slc],
) -> DbResult<Vec<InstallationDetail>> {
    let wanted: Vec<&str> = slcs
        .iter()
        .map(Slc::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = query(concat!(
        "SELECT ",
        installation_columns!(),
        ", ",
        summary_columns!(),
        ", customer_name, site_name, notes, tags, history_from",
        // Another reseller's installations read exactly like missing ones.
        " FROM installations WHERE slc = ANY($1::text[]) AND reseller_id = $2 ORDER BY slc COLLATE \"C\""
    ))
    .bind(&wanted)
    .bind(reseller.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    let mut hidden_before = Vec::with_capacity(rows.len());
    for row in &rows {
        hidden_before.push(col::<Option<i64>>(row, HISTORY_FROM)?.map(ts));
        found.push(InstallationDetail {
            installation: codec::installation(row, 0)?,
            summary: codec::summary(row, 7)?,
            servers: Vec::new(),
            active_conditions: Vec::new(),
            history: Vec::new(),
            labels: labels(row, 13)?,
        });
    }
    if found.is_empty() {
        return Ok(found);
    }
    let theirs: Vec<String> = found
        .iter()
        .map(|detail| detail.installation.slc.as_str().to_owned())
        .collect();
    // Both in SLC byte order (`COLLATE "C"`, as Rust compares), as `found`
    // is: each installation's rows come in one run.
    let rows = query(concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers WHERE slc = ANY($1::text[]) ORDER BY slc COLLATE \"C\", server_id"
    ))
    .bind(&theirs)
    .fetch_all(&mut *c)
    .await?;
    let mut at = 0;
    for row in &rows {
        let server = codec::server(row)?;
        at = position_of(&found, at, &server.slc)?;
        found[at].servers.push(server);
    }
    let rows = query(
        "SELECT slc, server_id, code, subject, detail, opened_at FROM conditions
         WHERE slc = ANY($1::text[]) AND resolved_at IS NULL ORDER BY slc COLLATE \"C\", opened_at, id",
    )
    .bind(&theirs)
    .fetch_all(&mut *c)
    .await?;
    let mut at = 0;
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        at = position_of(&found, at, &slc)?;
        found[at].active_conditions.push(ConditionRecord {
            server: codec::server_id(&col::<String>(row, 1)?)?,
            code: codec::code(&col::<String>(row, 2)?)?,
            subject: col(row, 3)?,
            detail: col(row, 4)?,
            opened_at: ts(col(row, 5)?),
            resolved_at: None,
        });
    }
    for (detail, from) in found.iter_mut().zip(hidden_before) {
        if let Some(from) = from {
            hide_before(detail, from);
        }
    }
    Ok(found)
}

/// The column of `history_from` after the installation, summary and label
/// columns of the detail reads.
const HISTORY_FROM: usize = 17;

/// Where installation `slc` is in `found` (in SLC order), looking from
/// `from` on: rows sorted by SLC come in the same order.
fn position_of(
    found: &[InstallationDetail],
    from: usize,
    slc: &Slc,
) -> carewatch_core::Result<usize> {
    let mut at = from;
    while found
        .get(at)
        .is_some_and(|detail| detail.installation.slc.as_str() < slc.as_str())
    {
        at += 1;
    }
    match found.get(at) {
        Some(detail) if detail.installation.slc == *slc => Ok(at),
        _ => Err(crate::errors::corrupt(
            "row",
            format_args!("{slc} was not asked for"),
        )),
    }
}

pub(crate) async fn installation_detail(
    c: &mut PgConnection,
    reseller: &ResellerId,
    slc: &Slc,
    history_limit: u32,
) -> DbResult<Option<InstallationDetail>> {
    let found = query(concat!(
        "SELECT ",
        installation_columns!(),
        ", ",
        summary_columns!(),
        ", customer_name, site_name, notes, tags, history_from",
        " FROM installations WHERE slc = $1 AND reseller_id = $2"
    ))
    .bind(slc.as_str())
    .bind(reseller.as_str())
    .fetch_optional(&mut *c)
    .await?;
    // Another reseller's installation reads exactly like a missing one.
    let Some(found) = found else {
        return Ok(None);
    };
    let installation = codec::installation(&found, 0)?;
    let summary = codec::summary(&found, 7)?;
    let labels = labels(&found, 13)?;
    let hidden_before = col::<Option<i64>>(&found, HISTORY_FROM)?.map(ts);

    let rows = query(concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers WHERE slc = $1 ORDER BY server_id"
    ))
    .bind(slc.as_str())
    .fetch_all(&mut *c)
    .await?;
    let servers = rows
        .iter()
        .map(codec::server)
        .collect::<DbResult<Vec<_>>>()?;

    let rows = query(
        "SELECT server_id, code, subject, detail, opened_at FROM conditions
         WHERE slc = $1 AND resolved_at IS NULL ORDER BY opened_at, id",
    )
    .bind(slc.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut active_conditions = Vec::with_capacity(rows.len());
    for row in &rows {
        active_conditions.push(ConditionRecord {
            server: codec::server_id(&col::<String>(row, 0)?)?,
            code: codec::code(&col::<String>(row, 1)?)?,
            subject: col(row, 2)?,
            detail: col(row, 3)?,
            opened_at: ts(col(row, 4)?),
            resolved_at: None,
        });
    }

    // Notifications read no history: skip the round trip.
    let events = if history_limit == 0 {
        Vec::new()
    } else {
        let rows = query(concat!(
            "SELECT ",
            history_columns!(),
            " FROM history
             WHERE slc = $1
               AND at >= coalesce((SELECT history_from FROM installations WHERE slc = $1), 0)
             ORDER BY at DESC, id DESC LIMIT $2"
        ))
        .bind(slc.as_str())
        .bind(i64::from(history_limit))
        .fetch_all(&mut *c)
        .await?;
        rows.iter()
            .filter_map(|row| history::event(row).transpose())
            .collect::<DbResult<Vec<_>>>()?
    };
    let mut detail = InstallationDetail {
        installation,
        summary,
        servers,
        active_conditions,
        history: events,
        labels,
    };
    if let Some(from) = hidden_before {
        hide_before(&mut detail, from);
    }
    Ok(Some(detail))
}
