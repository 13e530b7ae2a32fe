//! What resellers read: the overview and one installation's detail.

use carewatch_core::Result;
use carewatch_core::condition::ConditionRecord;
use carewatch_core::health::Health;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::labels::{LabelOrder, Labels};
use carewatch_core::store::hidden_history::hide_before;
use carewatch_core::store::{
    HealthTotals, InstallationDetail, OverviewPage, OverviewQuery, OverviewRow, PageCursor,
};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::history::{self, HISTORY_COLUMNS};
use crate::codec::{
    self, INSTALLATION_COLUMNS, RowExt, SERVER_COLUMNS, SUMMARY_COLUMNS, corrupt, map_err, ts,
};

pub(crate) fn overview(
    tx: &Connection,
    reseller: &ResellerId,
    query: &OverviewQuery,
) -> Result<OverviewPage> {
    // The healths listed are one range of ranks: a range inside the
    // reseller's prefix of installations_overview.
    let (lowest, highest) = query.health_range();
    let columns = format!(
        "slc, product, product_version, {SUMMARY_COLUMNS},
         (SELECT CASE WHEN max(s.last_seen_at) IS NULL THEN NULL
                 ELSE max(max(s.last_seen_at), coalesce(i.history_from, 0)) END
          FROM servers s WHERE s.slc = i.slc),
         customer_name, site_name, notes, tags, consent, subscription_expires_at"
    );
    let mut values: Vec<Value> = vec![
        Value::Text(reseller.as_str().to_owned()),
        Value::Integer(i64::from(lowest.rank())),
        Value::Integer(i64::from(highest.rank())),
        Value::Integer(query.read_limit()),
    ];
    // Cursor values are ?5 and ?6; the search text comes after them. The
    // search is a filter on the rows the range scan reads, so paging stays
    // a seek from the cursor.
    let search = |values: &mut Vec<Value>| match query.search_pattern() {
        Some(pattern) => {
            values.push(Value::Text(pattern));
            format!(
                " AND instr(coalesce(search_text, slc), ?{}) > 0",
                values.len()
            )
        }
        None => String::new(),
    };
    let sql = match (query.order.label_order(), &query.after) {
        (None, None) => {
            let search = search(&mut values);
            format!(
                "SELECT {columns} FROM installations i
                 WHERE reseller_id = ?1 AND health >= ?2 AND health <= ?3{search}
                 ORDER BY health DESC, slc
                 LIMIT ?4"
            )
        }
        // After a cursor: the rest of the cursor's health, then the healths
        // below it, as two index seeks merged in order. One `OR`ed condition
        // instead made every page scan the list from its start. The first
        // branch tests the listed range on the parameter, not the column:
        // `health >= ?2` there made SQLite seek by the range, not by
        // (health, slc), and sort.
        (None, Some(PageCursor::Health { health, slc })) => {
            values.push(Value::Integer(i64::from(health.rank())));
            values.push(Value::Text(slc.as_str().to_owned()));
            let search = search(&mut values);
            format!(
                "SELECT {columns} FROM installations i
                 WHERE reseller_id = ?1 AND health = ?5 AND slc > ?6
                   AND ?5 BETWEEN ?2 AND ?3{search}
                 UNION ALL
                 SELECT {columns} FROM installations i
                 WHERE reseller_id = ?1 AND health < ?5 AND health >= ?2 AND health <= ?3{search}
                 ORDER BY health DESC, slc
                 LIMIT ?4"
            )
        }
        // By a label: one seek of installations_by_customer (or _by_site)
        // from the cursor's (key, slc) on; the healths listed filter it.
        (Some(label), after) => {
            let column = label_column(label);
            let seek = match after {
                None => String::new(),
                Some(PageCursor::Label { order, key, slc }) if *order == label => {
                    values.push(Value::Text(key.clone()));
                    values.push(Value::Text(slc.as_str().to_owned()));
                    format!(" AND ({column}, slc) > (?5, ?6)")
                }
                Some(_) => return Err(query.cursor_mismatch()),
            };
            let search = search(&mut values);
            format!(
                "SELECT {columns} FROM installations i
                 WHERE reseller_id = ?1 AND health >= ?2 AND health <= ?3{seek}{search}
                 ORDER BY {column}, slc
                 LIMIT ?4"
            )
        }
        (None, Some(PageCursor::Label { .. })) => {
            return Err(query.cursor_mismatch());
        }
    };
    let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
    let mut rows = stmt
        .query(params_from_iter(values.iter()))
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(OverviewRow {
            slc: codec::slc(&row.col::<String>(0)?)?,
            product: Product::new(&row.col::<String>(1)?, &row.col::<String>(2)?)
                .map_err(|e| corrupt("product", e))?,
            summary: codec::summary(row, 3)?,
            last_seen_at: row.col::<Option<i64>>(9)?.map(ts),
            labels: labels(row, 10)?,
            consent: row.col(14)?,
            subscription_expires_at: row.col::<Option<i64>>(15)?.map(ts),
        });
    }
    Ok(query.page(out, totals(tx, reseller)?))
}

/// The column holding [`carewatch_core::labels::Labels::order_key`] for `order`.
fn label_column(order: LabelOrder) -> &'static str {
    match order {
        LabelOrder::Customer => "customer_order",
        LabelOrder::Site => "site_order",
    }
}

/// Labels from four columns: customer_name, site_name, notes, tags.
pub(crate) fn labels(row: &rusqlite::Row<'_>, at: usize) -> Result<Labels> {
    Labels::decode(
        row.col(at)?,
        row.col(at + 1)?,
        row.col(at + 2)?,
        &row.col::<String>(at + 3)?,
    )
}

fn totals(tx: &Connection, reseller: &ResellerId) -> Result<HealthTotals> {
    let mut stmt = tx
        .prepare_cached(
            // Kept by triggers (migration 0002), not counted per call.
            "SELECT health, installations FROM health_totals
             WHERE reseller_id = ?1 AND installations > 0",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query([reseller.as_str()]).map_err(map_err)?;
    let mut totals = HealthTotals::default();
    while let Some(row) = rows.next().map_err(map_err)? {
        let rank = u8::try_from(row.col::<i64>(0)?).map_err(|e| corrupt("health", e))?;
        let count = u32::try_from(row.col::<i64>(1)?).map_err(|e| corrupt("count", e))?;
        totals.set(
            Health::from_rank(rank).map_err(|e| corrupt("health", e))?,
            count,
        );
    }
    Ok(totals)
}

/// Several installations in one read transaction (see
/// `Store::installation_details`).
pub(crate) fn installation_details(
    tx: &Connection,
    reseller: &ResellerId,
    slcs: &[Slc],
) -> Result<Vec<InstallationDetail>> {
    let unique: std::collections::BTreeSet<&Slc> = slcs.iter().collect();
    let mut found = Vec::with_capacity(unique.len());
    for slc in unique {
        found.extend(installation_detail(tx, reseller, slc, 0)?);
    }
    Ok(found)
}

pub(crate) fn installation_detail(
    tx: &Connection,
    reseller: &ResellerId,
    slc: &Slc,
    history_limit: u32,
) -> Result<Option<InstallationDetail>> {
    let found = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {INSTALLATION_COLUMNS}, {SUMMARY_COLUMNS}, customer_name, site_name, notes, tags,
                        history_from
                 FROM installations WHERE slc = ?1 AND reseller_id = ?2"
            ))
            .map_err(map_err)?;
        let mut rows = stmt
            .query([slc.as_str(), reseller.as_str()])
            .map_err(map_err)?;
        match rows.next().map_err(map_err)? {
            Some(row) => Some((
                codec::installation(row, 0)?,
                codec::summary(row, 7)?,
                labels(row, 13)?,
                row.col::<Option<i64>>(17)?.map(ts),
            )),
            None => None,
        }
    };
    // Another reseller's installation reads exactly like a missing one.
    let Some((installation, summary, labels, hidden_before)) = found else {
        return Ok(None);
    };

    let mut servers = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {SERVER_COLUMNS} FROM servers WHERE slc = ?1 ORDER BY server_id"
            ))
            .map_err(map_err)?;
        let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            servers.push(codec::server(row)?);
        }
    }
    let mut active_conditions = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT server_id, code, subject, detail, opened_at FROM conditions
                 WHERE slc = ?1 AND resolved_at IS NULL ORDER BY opened_at, id",
            )
            .map_err(map_err)?;
        let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            active_conditions.push(ConditionRecord {
                server: codec::server_id(&row.col::<String>(0)?)?,
                code: codec::code(&row.col::<String>(1)?)?,
                subject: row.col(2)?,
                detail: row.col(3)?,
                opened_at: ts(row.col(4)?),
                resolved_at: None,
            });
        }
    }
    let mut events = Vec::new();
    // Notifications read no history: skip the query.
    if history_limit > 0 {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {HISTORY_COLUMNS} FROM history
                 WHERE slc = ?1
                   AND at >= coalesce((SELECT history_from FROM installations WHERE slc = ?1), 0)
                 ORDER BY at DESC, id DESC LIMIT ?2"
            ))
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![slc.as_str(), history_limit])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            events.extend(history::event(row)?);
        }
    }
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
