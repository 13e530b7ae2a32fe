//! Writing and reading the history table.

use carewatch_core::Error;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::{HistoryEvent, HistoryKind};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use crate::codec::{self, col, ms, ts};
use crate::errors::{DbResult, corrupt};

pub(crate) async fn record(
    c: &mut PgConnection,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
    kind: &HistoryKind,
) -> DbResult<()> {
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
        HistoryKind::BecameUnavailable { missed } => (
            "became_unavailable",
            None,
            None,
            None,
            Some(i64::from(*missed)),
        ),
        HistoryKind::Recovered {
            unavailable_for,
            missed,
        } => (
            "recovered",
            None,
            None,
            Some(ms(*unavailable_for)),
            Some(i64::from(*missed)),
        ),
    };
    query(
        "INSERT INTO history (slc, at, server_id, kind, code, subject, duration_ms, missed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(slc.as_str())
    .bind(at.as_millis())
    .bind(server.as_str())
    .bind(name)
    .bind(code)
    .bind(subject)
    .bind(duration)
    .bind(missed)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Columns: at, server_id, kind, code, subject, duration_ms, missed.
macro_rules! history_columns {
    () => {
        "at, server_id, kind, code, subject, duration_ms, missed"
    };
}
pub(crate) use history_columns;

pub(crate) fn event(row: &PgRow) -> DbResult<HistoryEvent> {
    let kind_name: String = col(row, 2)?;
    let code = || -> DbResult<_> {
        Ok(codec::code(
            &col::<Option<String>>(row, 3)?.unwrap_or_default(),
        )?)
    };
    let subject = || -> DbResult<String> { Ok(col::<Option<String>>(row, 4)?.unwrap_or_default()) };
    let duration =
        || -> DbResult<_> { Ok(codec::duration(col::<Option<i64>>(row, 5)?.unwrap_or(0))) };
    let missed = || -> DbResult<u32> {
        Ok(u32::try_from(col::<Option<i64>>(row, 6)?.unwrap_or(0))
            .map_err(|e| corrupt("missed count", e))?)
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
            }
            .into());
        }
    };
    Ok(HistoryEvent {
        at: ts(col(row, 0)?),
        server: codec::server_id(&col::<String>(row, 1)?)?,
        kind,
    })
}
