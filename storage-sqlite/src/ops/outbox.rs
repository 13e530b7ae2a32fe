//! The outbox's delivery side: claiming due entries under a lease, recording
//! how their attempts ended, and a reseller's list. Each function runs
//! inside the one transaction of its store call (writes go through the one
//! writer connection, so a claim is decided by one statement at a time).

use carewatch_core::Result;
use carewatch_core::ids::ResellerId;
use carewatch_core::notification::delivery::tally_by_channel;
use carewatch_core::notification::{DeliveryOutcome, OutboxEntry, OutboxFilter};
use carewatch_core::store::columns::OutcomeColumns;
use carewatch_core::time::Timestamp;
use rusqlite::{Connection, Row, params};

use super::notifications::{channel_id, count};
use crate::codec::{self, RowExt, corrupt, map_err, ts};

const OUTBOX_COLUMNS: &str = "id, channel_id, reseller_id, slc, idempotency_key, body, \
     created_at, attempts, next_attempt_at, last_error, delivered_at, failed_at";

fn outbox_entry(row: &Row<'_>) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: u64::try_from(row.col::<i64>(0)?).map_err(|e| corrupt("outbox id", e))?,
        channel: channel_id(&row.col::<String>(1)?)?,
        reseller: codec::reseller_id(&row.col::<String>(2)?)?,
        slc: row
            .col::<Option<String>>(3)?
            .as_deref()
            .map(codec::slc)
            .transpose()?,
        key: row.col(4)?,
        body: row.col(5)?,
        created_at: ts(row.col(6)?),
        attempts: count(row.col(7)?, "attempts")?,
        next_attempt_at: ts(row.col(8)?),
        last_error: row.col(9)?,
        delivered_at: row.col::<Option<i64>>(10)?.map(ts),
        failed_at: row.col::<Option<i64>>(11)?.map(ts),
    })
}

pub(crate) fn claim_deliveries(
    tx: &Connection,
    node: &str,
    now: Timestamp,
    lease: std::time::Duration,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "UPDATE outbox SET claimed_by = ?1, claimed_until = ?3
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?2
                   AND (claimed_until IS NULL OR claimed_until <= ?2)
                 ORDER BY next_attempt_at, id LIMIT ?4)
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![
            node,
            now.as_millis(),
            now.saturating_add(lease).as_millis(),
            limit
        ])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(outbox_entry(row)?);
    }
    out.sort_by_key(|e| (e.next_attempt_at, e.id));
    Ok(out)
}

pub(crate) fn release_claims(tx: &Connection, node: &str, ids: &[u64]) -> Result<u64> {
    let mut stmt = tx
        .prepare_cached(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
             WHERE id = ?1 AND claimed_by = ?2 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .map_err(map_err)?;
    let mut released = 0;
    for &id in ids {
        // An id past i64 names no row.
        let Ok(id) = i64::try_from(id) else { continue };
        released += stmt.execute(params![id, node]).map_err(map_err)? as u64;
    }
    Ok(released)
}

pub(crate) fn release_every_claim(tx: &Connection, node: &str) -> Result<u64> {
    // Through the pending entries' index: delivered ones, kept for the
    // reseller to see, may be most of the table.
    let released = tx
        .prepare_cached(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
             WHERE id IN (
                 SELECT id FROM outbox INDEXED BY outbox_due
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND claimed_by = ?1)",
        )
        .map_err(map_err)?
        .execute([node])
        .map_err(map_err)?;
    Ok(released as u64)
}

pub(crate) fn finish_deliveries(
    tx: &Connection,
    node: &str,
    at: Timestamp,
    finished: &[(u64, DeliveryOutcome)],
) -> Result<()> {
    // Not RETURNING: SQLite gathers returned rows in a temporary table,
    // dearer than reading the one column again by id.
    let mut finish = tx
        .prepare_cached(
            "UPDATE outbox SET attempts = attempts + ?7, delivered_at = ?3,
                 next_attempt_at = COALESCE(?4, next_attempt_at), failed_at = ?5,
                 last_error = ?6, claimed_by = NULL, claimed_until = NULL
             WHERE id = ?1 AND claimed_by = ?2 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .map_err(map_err)?;
    let mut channel_of = tx
        .prepare_cached("SELECT channel_id FROM outbox WHERE id = ?1")
        .map_err(map_err)?;
    let mut recorded: Vec<(String, &DeliveryOutcome)> = Vec::with_capacity(finished.len());
    for (id, outcome) in finished {
        let Ok(id) = i64::try_from(*id) else {
            continue;
        };
        let columns = OutcomeColumns::new(outcome, at);
        // Only while the node still claims it, and only once.
        let changed = finish
            .execute(params![
                id,
                node,
                columns.delivered_at,
                columns.next_attempt_at,
                columns.failed_at,
                columns.error,
                columns.attempts
            ])
            .map_err(map_err)?;
        if changed == 1 {
            let channel: String = channel_of.query_row([id], |r| r.get(0)).map_err(map_err)?;
            recorded.push((channel, outcome));
        }
    }
    let mut status = tx
        .prepare_cached(
            "UPDATE channels SET last_attempt_at = ?2, last_error = ?3,
                 failures_in_a_row = CASE WHEN ?4 THEN ?5 ELSE failures_in_a_row + ?5 END
             WHERE id = ?1",
        )
        .map_err(map_err)?;
    for tally in tally_by_channel(recorded.iter().map(|(c, o)| (c, *o))) {
        status
            .execute(params![
                tally.channel,
                at.as_millis(),
                tally.last_error,
                tally.delivered,
                tally.failures
            ])
            .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) fn outbox(
    tx: &Connection,
    reseller: &ResellerId,
    filter: OutboxFilter,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let only = match filter {
        OutboxFilter::Pending => "AND delivered_at IS NULL AND failed_at IS NULL",
        OutboxFilter::Failed => "AND failed_at IS NOT NULL",
        OutboxFilter::All => "",
    };
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE reseller_id = ?1 {only}
             ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![reseller.as_str(), limit])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(outbox_entry(row)?);
    }
    Ok(out)
}
