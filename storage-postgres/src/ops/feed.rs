//! The change feed: appending an event inside the writing transaction (it is
//! numbered at COMMIT, see the migration), and reading events in order.

use carewatch_core::feed::{self, Change, ChangeEvent, EventId};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::store::columns::{ChangeColumns, HistoryColumns, SummaryColumns};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use crate::codec::{self, col, ts};
use crate::errors::DbResult;

/// Appends one event; committed (or not) with the caller's transaction.
pub(crate) async fn append(
    c: &mut PgConnection,
    slc: &Slc,
    at: Timestamp,
    change: &Change,
) -> DbResult<()> {
    append_to(c, slc, None, at, change).await
}

/// Appends one event for `reseller` whoever owns the installation when it
/// is read (`None`: its owner then).
pub(crate) async fn append_to(
    c: &mut PgConnection,
    slc: &Slc,
    reseller: Option<&ResellerId>,
    at: Timestamp,
    change: &Change,
) -> DbResult<()> {
    let columns = ChangeColumns::from(change);
    let h = columns.history;
    let s = columns.summary;
    query(
        "INSERT INTO changes (at, slc, kind, server_id, code, subject, duration_ms, missed,
             previous_health, health, worst_code, servers, unavailable, late, active_conditions,
             accepted, until_at, reseller_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(at.as_millis())
    .bind(slc.as_str())
    .bind(columns.kind)
    .bind(columns.server_id)
    .bind(h.and_then(|h| h.code))
    .bind(h.and_then(|h| h.subject))
    .bind(h.and_then(|h| h.duration_ms))
    .bind(h.and_then(|h| h.missed))
    .bind(columns.previous_health)
    .bind(s.map(|s| s.health))
    .bind(s.and_then(|s| s.worst))
    .bind(s.map(|s| s.servers))
    .bind(s.map(|s| s.unavailable))
    .bind(s.map(|s| s.late))
    .bind(s.map(|s| s.active_conditions))
    .bind(columns.accepted)
    .bind(columns.until)
    .bind(reseller.map(ResellerId::as_str))
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn event_id(id: i64) -> EventId {
    EventId(u64::try_from(id).unwrap_or(0))
}

/// The newest id ever given.
pub(crate) async fn head(c: &mut PgConnection) -> DbResult<EventId> {
    let row = query("SELECT last FROM change_head")
        .fetch_one(&mut *c)
        .await?;
    Ok(event_id(col(&row, 0)?))
}

pub(crate) async fn changes(
    c: &mut PgConnection,
    after: EventId,
    limit: u32,
) -> DbResult<Vec<ChangeEvent>> {
    let row = query("SELECT (SELECT last FROM change_head), (SELECT min(id) FROM changes)")
        .fetch_one(&mut *c)
        .await?;
    let head = event_id(col(&row, 0)?);
    let oldest: Option<i64> = col(&row, 1)?;
    feed::check_resume(after, oldest.map(event_id), head)?;
    let rows = query(
        "SELECT c.id, c.at, c.slc, coalesce(c.reseller_id, i.reseller_id), c.kind, c.server_id, c.code, c.subject,
             c.duration_ms, c.missed, c.previous_health, c.health, c.worst_code, c.servers,
             c.unavailable, c.late, c.active_conditions, c.accepted, c.until_at
         FROM changes c JOIN installations i ON i.slc = c.slc
         WHERE c.id > $1
           AND (c.reseller_id IS NOT NULL OR i.history_from IS NULL OR c.at >= i.history_from)
         ORDER BY c.id LIMIT $2",
    )
    .bind(i64::try_from(after.0).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(event).collect()
}

fn event(row: &PgRow) -> DbResult<ChangeEvent> {
    let kind: String = col(row, 4)?;
    let server_id: Option<String> = col(row, 5)?;
    let code: Option<String> = col(row, 6)?;
    let subject: Option<String> = col(row, 7)?;
    let health: Option<i64> = col(row, 11)?;
    let worst: Option<String> = col(row, 12)?;
    let columns = ChangeColumns {
        kind: &kind,
        server_id: server_id.as_deref(),
        history: match server_id {
            Some(_) => Some(HistoryColumns {
                kind: &kind,
                code: code.as_deref(),
                subject: subject.as_deref(),
                duration_ms: col(row, 8)?,
                missed: col(row, 9)?,
            }),
            None => None,
        },
        previous_health: col(row, 10)?,
        summary: match health {
            Some(health) => Some(SummaryColumns {
                health,
                worst: worst.as_deref(),
                servers: col(row, 13)?,
                unavailable: col(row, 14)?,
                late: col(row, 15)?,
                active_conditions: col(row, 16)?,
            }),
            None => None,
        },
        accepted: col(row, 17)?,
        until: col(row, 18)?,
    };
    Ok(ChangeEvent {
        id: event_id(col(row, 0)?),
        at: ts(col(row, 1)?),
        slc: codec::slc(&col::<String>(row, 2)?)?,
        reseller: codec::reseller_id(&col::<String>(row, 3)?)?,
        change: columns.decode()?,
    })
}

pub(crate) async fn prune(c: &mut PgConnection, before: Timestamp) -> DbResult<u64> {
    let done = query("DELETE FROM changes WHERE at < $1")
        .bind(before.as_millis())
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected())
}
