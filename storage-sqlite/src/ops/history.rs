//! Writing and reading the history table.

use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::{HistoryEvent, HistoryKind};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Row, Transaction, params};

use crate::codec::{self, RowExt, corrupt, map_err, ms, ts};

pub(crate) fn record(
    tx: &Transaction<'_>,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
    kind: &HistoryKind,
) -> Result<()> {
    let (name, code, subject, duration, missed) = match kind {
        HistoryKind::FirstSeen => ("first_seen", None, None, None, None),
        HistoryKind::ConditionOpened { code, subject } => (
            "condition_opened",
            Some(code.as_str()),
            Some(subject.as_str()),
            None,
            None,
        ),
        HistoryKind::ConditionResolved {
            code,
            subject,
            open_for,
        } => (
            "condition_resolved",
            Some(code.as_str()),
            Some(subject.as_str()),
            Some(ms(*open_for)),
            None,
        ),
        HistoryKind::BecameUnavailable { missed } => {
            ("became_unavailable", None, None, None, Some(*missed))
        }
        HistoryKind::Recovered {
            unavailable_for,
            missed,
        } => (
            "recovered",
            None,
            None,
            Some(ms(*unavailable_for)),
            Some(*missed),
        ),
    };
    tx.prepare_cached(
        "INSERT INTO history (slc, at, server_id, kind, code, subject, duration_ms, missed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            slc.as_str(),
            at.as_millis(),
            server.as_str(),
            name,
            code,
            subject,
            duration,
            missed
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

/// Columns: at, server_id, kind, code, subject, duration_ms, missed.
pub(crate) const HISTORY_COLUMNS: &str = "at, server_id, kind, code, subject, duration_ms, missed";

pub(crate) fn event(row: &Row<'_>) -> Result<HistoryEvent> {
    let kind_name: String = row.col(2)?;
    let code = || -> Result<_> { codec::code(&row.col::<Option<String>>(3)?.unwrap_or_default()) };
    let subject = || -> Result<String> { Ok(row.col::<Option<String>>(4)?.unwrap_or_default()) };
    let duration = || -> Result<_> { Ok(codec::duration(row.col::<Option<i64>>(5)?.unwrap_or(0))) };
    let missed = || -> Result<u32> {
        u32::try_from(row.col::<Option<i64>>(6)?.unwrap_or(0))
            .map_err(|e| corrupt("missed count", e))
    };
    let kind = match kind_name.as_str() {
        "first_seen" => HistoryKind::FirstSeen,
        "condition_opened" => HistoryKind::ConditionOpened {
            code: code()?,
            subject: subject()?,
        },
        "condition_resolved" => HistoryKind::ConditionResolved {
            code: code()?,
            subject: subject()?,
            open_for: duration()?,
        },
        "became_unavailable" => HistoryKind::BecameUnavailable { missed: missed()? },
        "recovered" => HistoryKind::Recovered {
            unavailable_for: duration()?,
            missed: missed()?,
        },
        other => {
            return Err(Error::Storage {
                message: format!("unknown history kind {other:?}"),
                source: None,
            });
        }
    };
    Ok(HistoryEvent {
        at: ts(row.col(0)?),
        server: codec::server_id(&row.col::<String>(1)?)?,
        kind,
    })
}
