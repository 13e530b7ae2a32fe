//! Writing and reading the history table.

use carewatch_core::feed::Change;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::columns::HistoryColumns;
use carewatch_core::store::{HistoryEvent, HistoryKind};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use crate::codec::{self, col, ts};
use crate::errors::DbResult;

/// Records a history entry, and the same as a change-feed event.
pub(crate) async fn record(
    c: &mut PgConnection,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
    kind: &HistoryKind,
) -> DbResult<()> {
    super::feed::append(
        c,
        slc,
        at,
        &Change::Server {
            server: server.clone(),
            event: kind.clone(),
        },
    )
    .await?;
    let columns = HistoryColumns::from(kind);
    query(
        "INSERT INTO history (slc, at, server_id, kind, code, subject, duration_ms, missed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(slc.as_str())
    .bind(at.as_millis())
    .bind(server.as_str())
    .bind(columns.kind)
    .bind(columns.code)
    .bind(columns.subject)
    .bind(columns.duration_ms)
    .bind(columns.missed)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(crate) async fn full_history(
    c: &mut PgConnection,
    slc: &Slc,
    limit: u32,
) -> DbResult<Vec<HistoryEvent>> {
    if super::admin::installation(c, slc).await?.is_none() {
        return Err(carewatch_core::Error::installation_not_found(slc).into());
    }
    let rows = query(concat!(
        "SELECT ",
        history_columns!(),
        " FROM history WHERE slc = $1 ORDER BY at DESC, id DESC LIMIT $2"
    ))
    .bind(slc.as_str())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .filter_map(|row| event(row).transpose())
        .collect()
}

/// Columns: at, server_id, kind, code, subject, duration_ms, missed.
macro_rules! history_columns {
    () => {
        "at, server_id, kind, code, subject, duration_ms, missed"
    };
}
pub(crate) use history_columns;

/// A history row; `None` for a kind this version does not know (passed over).
pub(crate) fn event(row: &PgRow) -> DbResult<Option<HistoryEvent>> {
    let kind: String = col(row, 2)?;
    let code: Option<String> = col(row, 3)?;
    let subject: Option<String> = col(row, 4)?;
    let columns = HistoryColumns {
        kind: &kind,
        code: code.as_deref(),
        subject: subject.as_deref(),
        duration_ms: col(row, 5)?,
        missed: col(row, 6)?,
    };
    let Some(kind) = columns.decode_known()? else {
        return Ok(None);
    };
    Ok(Some(HistoryEvent {
        at: ts(col(row, 0)?),
        server: codec::server_id(&col::<String>(row, 1)?)?,
        kind,
    }))
}

/// [`record`] for several entries, in order: one statement for the feed
/// events and one for the history rows.
pub(crate) async fn record_many(
    c: &mut PgConnection,
    entries: &[(&Slc, &RecordingServerId, Timestamp, &HistoryKind)],
) -> DbResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let events: Vec<(&Slc, Timestamp, Change)> = entries
        .iter()
        .map(|(slc, server, at, kind)| {
            (
                *slc,
                *at,
                Change::Server {
                    server: (*server).clone(),
                    event: (*kind).clone(),
                },
            )
        })
        .collect();
    super::feed::append_many(c, &events).await?;
    let columns: Vec<HistoryColumns<'_>> = entries
        .iter()
        .map(|(.., kind)| HistoryColumns::from(*kind))
        .collect();
    query(
        "INSERT INTO history (slc, at, server_id, kind, code, subject, duration_ms, missed)
         SELECT slc, at, server_id, kind, code, subject, duration_ms, missed
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::bigint[])
             WITH ORDINALITY AS u (slc, at, server_id, kind, code, subject, duration_ms, missed, n)
         ORDER BY n",
    )
    .bind(entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.2.as_millis()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.1.as_str()).collect::<Vec<_>>())
    .bind(columns.iter().map(|h| h.kind).collect::<Vec<_>>())
    .bind(columns.iter().map(|h| h.code).collect::<Vec<_>>())
    .bind(columns.iter().map(|h| h.subject).collect::<Vec<_>>())
    .bind(columns.iter().map(|h| h.duration_ms).collect::<Vec<_>>())
    .bind(columns.iter().map(|h| h.missed).collect::<Vec<_>>())
    .execute(&mut *c)
    .await?;
    Ok(())
}
