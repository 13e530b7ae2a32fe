//! Writing and reading the history table.

use carewatch_core::Result;
use carewatch_core::feed::Change;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::columns::HistoryColumns;
use carewatch_core::store::{HistoryEvent, HistoryKind};
use carewatch_core::time::Timestamp;
use rusqlite::{Connection, Row, params};

use crate::codec::{self, RowExt, map_err, ts};

/// Records a history entry, and the same as a change-feed event.
pub(crate) fn record(
    tx: &Connection,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
    kind: &HistoryKind,
) -> Result<()> {
    super::feed::append(
        tx,
        slc,
        at,
        &Change::Server {
            server: server.clone(),
            event: kind.clone(),
        },
    )?;
    let c = HistoryColumns::from(kind);
    tx.prepare_cached(
        "INSERT INTO history (slc, at, server_id, kind, code, subject, duration_ms, missed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            slc.as_str(),
            at.as_millis(),
            server.as_str(),
            c.kind,
            c.code,
            c.subject,
            c.duration_ms,
            c.missed
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn full_history(tx: &Connection, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
    if super::admin::installation(tx, slc)?.is_none() {
        return Err(carewatch_core::Error::installation_not_found(slc));
    }
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {HISTORY_COLUMNS} FROM history WHERE slc = ?1
             ORDER BY at DESC, id DESC LIMIT ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query(params![slc.as_str(), limit]).map_err(map_err)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        events.extend(event(row)?);
    }
    Ok(events)
}

/// Columns: at, server_id, kind, code, subject, duration_ms, missed.
pub(crate) const HISTORY_COLUMNS: &str = "at, server_id, kind, code, subject, duration_ms, missed";

/// A history row; `None` for a kind this version does not know (passed over).
pub(crate) fn event(row: &Row<'_>) -> Result<Option<HistoryEvent>> {
    let (kind, code, subject): (String, Option<String>, Option<String>) =
        (row.col(2)?, row.col(3)?, row.col(4)?);
    let columns = HistoryColumns {
        kind: &kind,
        code: code.as_deref(),
        subject: subject.as_deref(),
        duration_ms: row.col(5)?,
        missed: row.col(6)?,
    };
    let Some(kind) = columns.decode_known()? else {
        return Ok(None);
    };
    Ok(Some(HistoryEvent {
        at: ts(row.col(0)?),
        server: codec::server_id(&row.col::<String>(1)?)?,
        kind,
    }))
}
