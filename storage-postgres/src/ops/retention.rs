//! Deleting what is kept only for a while: finished outbox entries, and
//! audit entries past the audit retention.

use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use crate::errors::DbResult;

/// See `Store::prune_outbox`. Entries are numbered in the order they were
/// made, so the old ones are the first ids: the scan walks the primary key
/// from the oldest and stops at the first entry made since `before`, and
/// pending old entries are the only ones it passes over again next time.
pub(crate) async fn prune_outbox(
    c: &mut PgConnection,
    before: Timestamp,
    limit: u32,
) -> DbResult<u64> {
    let done = query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
             WHERE id < COALESCE(
                     (SELECT id FROM outbox WHERE created_at >= $1 ORDER BY id LIMIT 1),
                     9223372036854775807)
               AND created_at < $1
               AND (delivered_at < $1 OR failed_at < $1)
             ORDER BY id LIMIT $2)",
    )
    .bind(before.as_millis())
    .bind(i64::from(limit))
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected())
}

/// See `Store::prune_audit`: the oldest by time, through `audit_log_at`.
pub(crate) async fn prune_audit(
    c: &mut PgConnection,
    before: Timestamp,
    limit: u32,
) -> DbResult<u64> {
    let done = query(
        "DELETE FROM audit_log WHERE id IN (
             SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind(before.as_millis())
    .bind(i64::from(limit))
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected())
}
