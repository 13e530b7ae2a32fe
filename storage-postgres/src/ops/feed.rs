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

/// Appends `events` in order (one statement); committed (or not) with the
/// caller's transaction, each read as its installation's owner's.
pub(crate) async fn append_many(
    c: &mut PgConnection,
    events: &[(&Slc, Timestamp, Change)],
) -> DbResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let columns: Vec<ChangeColumns<'_>> = events
        .iter()
        .map(|(_, _, change)| ChangeColumns::from(change))
        .collect();
    let history = |f: fn(&HistoryColumns<'_>) -> Option<i64>| -> Vec<Option<i64>> {
        columns
            .iter()
            .map(|c| c.history.as_ref().and_then(f))
            .collect()
    };
    let history_text =
        |f: for<'a> fn(&HistoryColumns<'a>) -> Option<&'a str>| -> Vec<Option<&str>> {
            columns
                .iter()
                .map(|c| c.history.as_ref().and_then(f))
                .collect()
        };
    let summary = |f: fn(&SummaryColumns<'_>) -> i64| -> Vec<Option<i64>> {
        columns.iter().map(|c| c.summary.as_ref().map(f)).collect()
    };
    let at: Vec<i64> = events.iter().map(|(_, at, _)| at.as_millis()).collect();
    let slcs: Vec<&str> = events.iter().map(|(slc, ..)| slc.as_str()).collect();
    let kinds: Vec<&str> = columns.iter().map(|c| c.kind).collect();
    let servers: Vec<Option<&str>> = columns.iter().map(|c| c.server_id).collect();
    let previous: Vec<Option<i64>> = columns.iter().map(|c| c.previous_health).collect();
    let worst: Vec<Option<&str>> = columns
        .iter()
        .map(|c| c.summary.as_ref().and_then(|s| s.worst))
        .collect();
    let accepted: Vec<Option<bool>> = columns.iter().map(|c| c.accepted).collect();
    let until: Vec<Option<i64>> = columns.iter().map(|c| c.until).collect();
    query(
        "INSERT INTO changes (at, slc, kind, server_id, code, subject, duration_ms, missed,
             previous_health, health, worst_code, servers, unavailable, late, active_conditions,
             accepted, until_at)
         SELECT at, slc, kind, server_id, code, subject, duration_ms, missed, previous_health,
             health, worst_code, servers, unavailable, late, active_conditions, accepted, until_at
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[],
                     $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::boolean[],
                     $17::bigint[])
             WITH ORDINALITY AS u (at, slc, kind, server_id, code, subject, duration_ms, missed,
                 previous_health, health, worst_code, servers, unavailable, late,
                 active_conditions, accepted, until_at, n)
         ORDER BY n",
    )
    .bind(at)
    .bind(slcs)
    .bind(kinds)
    .bind(servers)
    .bind(history_text(|h| h.code))
    .bind(history_text(|h| h.subject))
    .bind(history(|h| h.duration_ms))
    .bind(history(|h| h.missed))
    .bind(previous)
    .bind(summary(|s| s.health))
    .bind(worst)
    .bind(summary(|s| s.servers))
    .bind(summary(|s| s.unavailable))
    .bind(summary(|s| s.late))
    .bind(summary(|s| s.active_conditions))
    .bind(accepted)
    .bind(until)
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

pub(crate) async fn prune(
    c: &mut PgConnection,
    before: Timestamp,
    through: EventId,
) -> DbResult<u64> {
    let done = query("DELETE FROM changes WHERE at < $1 AND id <= $2")
        .bind(before.as_millis())
        .bind(i64::try_from(through.0).unwrap_or(i64::MAX))
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected())
}
