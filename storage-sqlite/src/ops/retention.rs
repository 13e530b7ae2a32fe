//! Deleting what is kept only for a while: finished outbox entries, and
//! audit entries past the audit retention.

use carewatch_core::Result;
use carewatch_core::time::Timestamp;
use rusqlite::{Connection, params};

use crate::codec::map_err;

/// See `Store::prune_outbox`. Entries are numbered in the order they were
/// made, so the old ones are the first ids: the scan starts at the oldest
/// and stops at the first entry made since `before` (found by walking ids
/// from the start, which visits only old entries), and pending old entries
/// are the only ones it passes over again next time.
pub(crate) fn prune_outbox(tx: &Connection, before: Timestamp, limit: u32) -> Result<u64> {
    let deleted = tx
        .prepare_cached(
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox
                 WHERE id < COALESCE(
                         (SELECT id FROM outbox WHERE created_at >= ?1 ORDER BY id LIMIT 1),
                         9223372036854775807)
                   AND created_at < ?1
                   AND (delivered_at < ?1 OR failed_at < ?1)
                 ORDER BY id LIMIT ?2)",
        )
        .map_err(map_err)?
        .execute(params![before.as_millis(), limit])
        .map_err(map_err)?;
    Ok(deleted as u64)
}

/// See `Store::prune_audit`: the oldest by time, through `audit_log_at`.
pub(crate) fn prune_audit(tx: &Connection, before: Timestamp, limit: u32) -> Result<u64> {
    let deleted = tx
        .prepare_cached(
            "DELETE FROM audit_log WHERE id IN (
                 SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)",
        )
        .map_err(map_err)?
        .execute(params![before.as_millis(), limit])
        .map_err(map_err)?;
    Ok(deleted as u64)
}
