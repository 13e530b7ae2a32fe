//! Time-driven availability changes, liveness marks and downtime windows.

use std::collections::BTreeMap;

use carewatch_core::availability::{Availability, DowntimeWindow};
use carewatch_core::store::{AvailabilityChange, HistoryKind, ServerRecord, SummaryChange};
use carewatch_core::time::Timestamp;
use carewatch_core::{ConditionCode, Result};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{history, summary};
use crate::codec::{self, AvailabilityColumns, RowExt, SERVER_COLUMNS, corrupt, map_err, ts};

pub(crate) fn due_servers(
    tx: &Transaction<'_>,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<ServerRecord>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE next_check_at <= ?1 ORDER BY next_check_at, slc, server_id LIMIT ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![now.as_millis(), limit])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(codec::server(row)?);
    }
    Ok(out)
}

pub(crate) fn apply_availability(
    tx: &Transaction<'_>,
    changes: &[AvailabilityChange],
) -> Result<Vec<SummaryChange>> {
    // Installation -> when its servers changed; its summary is refreshed once.
    let mut touched = BTreeMap::new();
    for change in changes {
        let current = tx
            .prepare_cached(
                "SELECT last_seen_at, state, missed, unavailable_since FROM servers WHERE slc = ?1 AND server_id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row([change.slc.as_str(), change.server.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i16>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
                })
                .optional()
            })
            .map_err(map_err)?;
        // A message arrived since the evaluation (or the server is gone): it wins.
        let Some((last_seen, state, missed, since)) = current else {
            continue;
        };
        if last_seen != change.expected_last_seen.as_millis() {
            continue;
        }
        let before = AvailabilityColumns {
            state,
            missed,
            unavailable_since: since,
        }
        .decode()?;
        let after = AvailabilityColumns::from(&change.availability);
        tx.prepare_cached(
            "UPDATE servers SET state = ?3, missed = ?4, unavailable_since = ?5, next_check_at = ?6
             WHERE slc = ?1 AND server_id = ?2",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                change.slc.as_str(),
                change.server.as_str(),
                after.state,
                after.missed,
                after.unavailable_since,
                change.next_check_at.map(Timestamp::as_millis)
            ])
        })
        .map_err(map_err)?;
        if let Availability::Unavailable { since, missed } = change.availability
            && !matches!(before, Availability::Unavailable { .. })
        {
            tx.prepare_cached(
                "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at) VALUES (?1, ?2, ?3, ?2, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    change.slc.as_str(),
                    change.server.as_str(),
                    ConditionCode::ServerUnavailable.as_str(),
                    format!("missed {missed} heartbeats in a row"),
                    since.as_millis()
                ])
            })
            .map_err(map_err)?;
            history::record(
                tx,
                &change.slc,
                &change.server,
                since,
                &HistoryKind::BecameUnavailable { missed },
            )?;
        }
        if before != change.availability {
            let at = touched
                .entry(change.slc.clone())
                .or_insert(change.evaluated_at);
            *at = (*at).max(change.evaluated_at);
        }
    }
    let mut summary_changes = Vec::new();
    for (slc, at) in touched {
        if let Some(change) = summary::refresh(tx, &slc, at)? {
            summary_changes.push(change);
        }
    }
    Ok(summary_changes)
}

pub(crate) fn mark_alive(
    tx: &Transaction<'_>,
    node: &str,
    at: Timestamp,
) -> Result<Option<Timestamp>> {
    let previous: Option<i64> = tx
        .query_row("SELECT max(alive_at) FROM liveness", [], |r| r.get(0))
        .map_err(map_err)?;
    tx.execute(
        "INSERT INTO liveness (node, alive_at) VALUES (?1, ?2)
         ON CONFLICT (node) DO UPDATE SET alive_at = max(alive_at, excluded.alive_at)",
        params![node, at.as_millis()],
    )
    .map_err(map_err)?;
    Ok(previous.map(ts))
}

pub(crate) fn record_downtime(tx: &Transaction<'_>, window: DowntimeWindow) -> Result<()> {
    tx.execute(
        "INSERT INTO downtime (start_at, end_at) VALUES (?1, ?2)",
        params![window.start().as_millis(), window.end().as_millis()],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn downtime(tx: &Transaction<'_>, after: Timestamp) -> Result<Vec<DowntimeWindow>> {
    let mut stmt = tx
        .prepare_cached("SELECT start_at, end_at FROM downtime WHERE end_at > ?1 ORDER BY start_at")
        .map_err(map_err)?;
    let mut rows = stmt.query([after.as_millis()]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(
            DowntimeWindow::new(ts(row.col(0)?), ts(row.col(1)?))
                .map_err(|e| corrupt("downtime window", e))?,
        );
    }
    Ok(out)
}
