//! The outbox's delivery side: claiming due entries under a lease (`FOR
//! UPDATE SKIP LOCKED`), recording how their attempts ended, and a
//! reseller's list. Each function runs inside the one transaction of its
//! store call; the lock order is the one in `notifications`.

use std::collections::{BTreeMap, BTreeSet};

use carewatch_core::ids::ResellerId;
use carewatch_core::notification::delivery::tally_by_channel;
use carewatch_core::notification::{DeliveryOutcome, OutboxEntry, OutboxFilter};
use carewatch_core::store::columns::OutcomeColumns;
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use super::notifications::{channel_id, count};
use crate::codec::{self, col, ts};
use crate::errors::{DbResult, corrupt};

macro_rules! outbox_columns {
    () => {
        "o.id, o.channel_id, o.reseller_id, o.slc, o.idempotency_key, o.body, o.created_at, \
         o.attempts, o.next_attempt_at, o.last_error, o.delivered_at, o.failed_at"
    };
}

fn outbox_entry(row: &PgRow) -> DbResult<OutboxEntry> {
    Ok(OutboxEntry {
        id: u64::try_from(col::<i64>(row, 0)?).map_err(|e| corrupt("outbox id", e))?,
        channel: channel_id(&col::<String>(row, 1)?)?,
        reseller: codec::reseller_id(&col::<String>(row, 2)?)?,
        slc: col::<Option<String>>(row, 3)?
            .as_deref()
            .map(codec::slc)
            .transpose()?,
        key: col(row, 4)?,
        body: col(row, 5)?,
        created_at: ts(col(row, 6)?),
        attempts: count(col(row, 7)?, "attempts")?,
        next_attempt_at: ts(col(row, 8)?),
        last_error: col(row, 9)?,
        delivered_at: col::<Option<i64>>(row, 10)?.map(ts),
        failed_at: col::<Option<i64>>(row, 11)?.map(ts),
    })
}

pub(crate) async fn claim_deliveries(
    c: &mut PgConnection,
    node: &str,
    now: Timestamp,
    lease: std::time::Duration,
    limit: u32,
) -> DbResult<Vec<OutboxEntry>> {
    // Rows another node is claiming right now are skipped, not waited for;
    // a row it claimed and committed is re-checked and found claimed.
    let rows = query(concat!(
        "WITH due AS (
             SELECT id FROM outbox
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2
               AND (claimed_until IS NULL OR claimed_until <= $2)
             ORDER BY next_attempt_at, id LIMIT $4
             FOR UPDATE SKIP LOCKED)
         UPDATE outbox o SET claimed_by = $1, claimed_until = $3
         FROM due WHERE o.id = due.id
         RETURNING ",
        outbox_columns!()
    ))
    .bind(node)
    .bind(now.as_millis())
    .bind(now.saturating_add(lease).as_millis())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    let mut out = rows
        .iter()
        .map(outbox_entry)
        .collect::<DbResult<Vec<_>>>()?;
    out.sort_by_key(|e| (e.next_attempt_at, e.id));
    Ok(out)
}

pub(crate) async fn release_claims(c: &mut PgConnection, node: &str, ids: &[i64]) -> DbResult<u64> {
    let released = query(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
         WHERE id = ANY($1) AND claimed_by = $2 AND delivered_at IS NULL AND failed_at IS NULL",
    )
    .bind(ids)
    .bind(node)
    .execute(&mut *c)
    .await?;
    Ok(released.rows_affected())
}

pub(crate) async fn release_every_claim(c: &mut PgConnection, node: &str) -> DbResult<u64> {
    // Once, as a node starts; the pending entries' partial indexes cover
    // the condition, so delivered entries are not read.
    let released = query(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
         WHERE claimed_by = $1 AND delivered_at IS NULL AND failed_at IS NULL",
    )
    .bind(node)
    .execute(&mut *c)
    .await?;
    Ok(released.rows_affected())
}

pub(crate) async fn finish_deliveries(
    c: &mut PgConnection,
    node: &str,
    at: Timestamp,
    finished: &[(u64, DeliveryOutcome)],
) -> DbResult<()> {
    // An entry is finished once: a second outcome for it in the same batch
    // would find it no longer claimed, so only the first counts.
    let mut seen = BTreeSet::new();
    let finished: Vec<(i64, &DeliveryOutcome)> = finished
        .iter()
        .filter_map(|(id, outcome)| Some((i64::try_from(*id).ok()?, outcome)))
        .filter(|(id, _)| seen.insert(*id))
        .collect();
    if finished.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = finished.iter().map(|(id, _)| *id).collect();
    // The channels' rows before the entries' (the lock order of
    // delete_channel), in id order, so two batches never deadlock.
    query(
        "SELECT 1 FROM channels
         WHERE id IN (SELECT channel_id FROM outbox WHERE id = ANY($1))
         ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *c)
    .await?;
    let columns: Vec<OutcomeColumns<'_>> = finished
        .iter()
        .map(|(_, outcome)| OutcomeColumns::new(outcome, at))
        .collect();
    let column = |f: fn(&OutcomeColumns<'_>) -> Option<i64>| -> Vec<Option<i64>> {
        columns.iter().map(f).collect()
    };
    // Only while the node still claims them, and only once.
    let rows = query(
        "UPDATE outbox o SET attempts = o.attempts + f.attempts, delivered_at = f.delivered_at,
             next_attempt_at = COALESCE(f.next_attempt_at, o.next_attempt_at),
             failed_at = f.failed_at, last_error = f.error,
             claimed_by = NULL, claimed_until = NULL
         FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[])
             AS f(id, delivered_at, next_attempt_at, failed_at, error, attempts)
         WHERE o.id = f.id AND o.claimed_by = $1
           AND o.delivered_at IS NULL AND o.failed_at IS NULL
         RETURNING o.id, o.channel_id",
    )
    .bind(node)
    .bind(&ids)
    .bind(column(|c| c.delivered_at))
    .bind(column(|c| c.next_attempt_at))
    .bind(column(|c| c.failed_at))
    .bind(columns.iter().map(|c| c.error).collect::<Vec<_>>())
    .bind(columns.iter().map(|c| c.attempts).collect::<Vec<_>>())
    .fetch_all(&mut *c)
    .await?;
    let mut channel_of = BTreeMap::new();
    for row in &rows {
        channel_of.insert(col::<i64>(row, 0)?, col::<String>(row, 1)?);
    }
    let recorded = finished
        .iter()
        .filter_map(|(id, outcome)| Some((channel_of.get(id)?, *outcome)));
    for tally in tally_by_channel(recorded) {
        query(
            "UPDATE channels SET last_attempt_at = $2, last_error = $3,
                 failures_in_a_row = CASE WHEN $4 THEN $5 ELSE failures_in_a_row + $5 END
             WHERE id = $1",
        )
        .bind(tally.channel.as_str())
        .bind(at.as_millis())
        .bind(tally.last_error.as_deref())
        .bind(tally.delivered)
        .bind(i64::from(tally.failures))
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub(crate) async fn outbox(
    c: &mut PgConnection,
    reseller: &ResellerId,
    filter: OutboxFilter,
    limit: u32,
) -> DbResult<Vec<OutboxEntry>> {
    let sql = match filter {
        OutboxFilter::Pending => concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o WHERE o.reseller_id = $1
               AND o.delivered_at IS NULL AND o.failed_at IS NULL
             ORDER BY o.id DESC LIMIT $2"
        ),
        OutboxFilter::Failed => concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o WHERE o.reseller_id = $1 AND o.failed_at IS NOT NULL
             ORDER BY o.id DESC LIMIT $2"
        ),
        OutboxFilter::All => concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o WHERE o.reseller_id = $1 ORDER BY o.id DESC LIMIT $2"
        ),
    };
    let rows = query(sql)
        .bind(reseller.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(outbox_entry).collect()
}
