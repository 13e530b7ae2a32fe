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
    rows.iter().map(event).collect()
}

/// Columns: at, server_id, kind, code, subject, duration_ms, missed.
macro_rules! history_columns {
    () => {
        "at, server_id, kind, code, subject, duration_ms, missed"
    };
}
pub(crate) use history_columns;

pub(crate) fn event(row: &PgRow) -> DbResult<HistoryEvent> {
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
    Ok(HistoryEvent {
        at: ts(col(row, 0)?),
        server: codec::server_id(&col::<String>(row, 1)?)?,
        kind: columns.decode()?,
    })
}
