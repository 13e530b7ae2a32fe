//! The change feed: appending an event inside the writing transaction, and
//! reading events in order.

use carewatch_core::Result;
use carewatch_core::feed::{self, Change, ChangeEvent, EventId};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::columns::{ChangeColumns, HistoryColumns, SummaryColumns};
use carewatch_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{self, RowExt, map_err, ts};

/// Appends one event; committed (or not) with the caller's transaction.
pub(crate) fn append(tx: &Connection, slc: &Slc, at: Timestamp, change: &Change) -> Result<()> {
    append_to(tx, slc, None, at, change)
}

/// Appends one event for `reseller` whoever owns the installation when it
/// is read (`None`: its owner then).
pub(crate) fn append_to(
    tx: &Connection,
    slc: &Slc,
    reseller: Option<&ResellerId>,
    at: Timestamp,
    change: &Change,
) -> Result<()> {
    let c = ChangeColumns::from(change);
    let h = c.history;
    let s = c.summary;
    tx.prepare_cached(
        "INSERT INTO changes (at, slc, kind, server_id, code, subject, duration_ms, missed,
             previous_health, health, worst_code, servers, unavailable, late, active_conditions,
             accepted, until_at, reseller_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            at.as_millis(),
            slc.as_str(),
            c.kind,
            c.server_id,
            h.and_then(|h| h.code),
            h.and_then(|h| h.subject),
            h.and_then(|h| h.duration_ms),
            h.and_then(|h| h.missed),
            c.previous_health,
            s.map(|s| s.health),
            s.and_then(|s| s.worst),
            s.map(|s| s.servers),
            s.map(|s| s.unavailable),
            s.map(|s| s.late),
            s.map(|s| s.active_conditions),
            c.accepted,
            c.until,
            reseller.map(ResellerId::as_str),
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

/// The newest id ever given (AUTOINCREMENT keeps it when rows are pruned).
pub(crate) fn head(tx: &Connection) -> Result<EventId> {
    let seq: Option<i64> = tx
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
        .map_err(map_err)?;
    Ok(EventId(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0))))
}

pub(crate) fn changes(tx: &Connection, after: EventId, limit: u32) -> Result<Vec<ChangeEvent>> {
    let head = head(tx)?;
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT min(id) FROM changes")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(map_err)?;
    let oldest = oldest.map(|id| EventId(u64::try_from(id).unwrap_or(0)));
    feed::check_resume(after, oldest, head)?;
    let after = i64::try_from(after.0).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(
            "SELECT c.id, c.at, c.slc, coalesce(c.reseller_id, i.reseller_id), c.kind, c.server_id, c.code, c.subject,
                 c.duration_ms, c.missed, c.previous_health, c.health, c.worst_code, c.servers,
                 c.unavailable, c.late, c.active_conditions, c.accepted, c.until_at
             FROM changes c JOIN installations i ON i.slc = c.slc
             WHERE c.id > ?1
               AND (c.reseller_id IS NOT NULL OR i.history_from IS NULL
                    OR c.at >= i.history_from)
             ORDER BY c.id LIMIT ?2",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query(params![after, limit]).map_err(map_err)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        events.push(event(row)?);
    }
    Ok(events)
}

fn event(row: &Row<'_>) -> Result<ChangeEvent> {
    let kind: String = row.col(4)?;
    let server_id: Option<String> = row.col(5)?;
    let code: Option<String> = row.col(6)?;
    let subject: Option<String> = row.col(7)?;
    let worst: Option<String> = row.col(12)?;
    let health: Option<i64> = row.col(11)?;
    let duration_ms: Option<i64> = row.col(8)?;
    let missed: Option<i64> = row.col(9)?;
    let columns = ChangeColumns {
        kind: &kind,
        server_id: server_id.as_deref(),
        history: server_id.as_ref().map(|_| HistoryColumns {
            kind: &kind,
            code: code.as_deref(),
            subject: subject.as_deref(),
            duration_ms,
            missed,
        }),
        previous_health: row.col(10)?,
        summary: match health {
            Some(health) => Some(SummaryColumns {
                health,
                worst: worst.as_deref(),
                servers: row.col(13)?,
                unavailable: row.col(14)?,
                late: row.col(15)?,
                active_conditions: row.col(16)?,
            }),
            None => None,
        },
        accepted: row.col(17)?,
        until: row.col(18)?,
    };
    Ok(ChangeEvent {
        id: EventId(u64::try_from(row.col::<i64>(0)?).unwrap_or(0)),
        at: ts(row.col(1)?),
        slc: codec::slc(&row.col::<String>(2)?)?,
        reseller: codec::reseller_id(&row.col::<String>(3)?)?,
        change: columns.decode()?,
    })
}

pub(crate) fn prune(tx: &Connection, before: Timestamp, through: EventId) -> Result<u64> {
    let deleted = tx
        .execute(
            "DELETE FROM changes WHERE at < ?1 AND id <= ?2",
            [
                before.as_millis(),
                i64::try_from(through.0).unwrap_or(i64::MAX),
            ],
        )
        .map_err(map_err)?;
    Ok(deleted as u64)
}
