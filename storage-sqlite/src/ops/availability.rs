//! Time-driven availability changes, liveness marks and downtime windows.

use std::collections::BTreeMap;

use carewatch_core::Result;
use carewatch_core::availability::DowntimeWindow;
use carewatch_core::liveness::{self, LivenessMark, NodeLiveness};
use carewatch_core::store::rules;
use carewatch_core::store::{
    AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog, ServerRecord,
};
use carewatch_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{history, summary};
use crate::codec::{self, AvailabilityColumns, RowExt, SERVER_COLUMNS, corrupt, map_err, ts};

pub(crate) fn due_servers(
    tx: &Connection,
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
    tx: &Connection,
    changes: &[AvailabilityChange],
    epoch: DowntimeEpoch,
) -> Result<AvailabilityOutcome> {
    // One writer at a time: nobody can record a window after this check.
    if downtime_epoch(tx)? != epoch {
        return Ok(AvailabilityOutcome::DowntimeChanged);
    }
    // Installation -> when its servers changed; its summary is refreshed once.
    let mut touched = BTreeMap::new();
    for change in changes {
        let current = tx
            .prepare_cached(
                "SELECT last_seen_at, state, missed, unavailable_since, next_check_at FROM servers WHERE slc = ?1 AND server_id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row([change.slc.as_str(), change.server.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i16>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .optional()
            })
            .map_err(map_err)?;
        // A message arrived since the evaluation, the server was parked or
        // decommissioned, or it is gone: the verdict is dropped.
        let Some((last_seen, state, missed, since, next_check)) = current else {
            continue;
        };
        if !rules::sweep_verdict_applies(
            Timestamp::from_millis(last_seen),
            next_check.map(Timestamp::from_millis),
            change,
        ) {
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
        if let Some(opened) =
            rules::became_unavailable(&change.server, &before, &change.availability)
        {
            tx.prepare_cached(
                "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    change.slc.as_str(),
                    change.server.as_str(),
                    opened.code.as_str(),
                    opened.subject,
                    opened.detail,
                    opened.opened_at.as_millis()
                ])
            })
            .map_err(map_err)?;
            history::record(
                tx,
                &change.slc,
                &change.server,
                opened.opened_at,
                &opened.history,
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
    Ok(AvailabilityOutcome::Applied(summary_changes))
}

/// Reads every node's liveness, records the gap the core's rule finds and
/// writes the mark, in one (write, so exclusive) transaction.
pub(crate) fn mark_alive(tx: &Connection, mark: &LivenessMark) -> Result<Option<DowntimeWindow>> {
    let mut stmt = tx
        .prepare_cached("SELECT node, alive_at, stopped FROM liveness")
        .map_err(map_err)?;
    let mut rows = stmt.query([]).map_err(map_err)?;
    let mut nodes = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        nodes.push(NodeLiveness {
            node: row.col(0)?,
            alive_at: ts(row.col(1)?),
            stopped: row.col::<i64>(2)? != 0,
        });
    }
    let window = liveness::gap_before(mark, &nodes);
    if let Some(window) = window {
        record_downtime(tx, window)?;
    }
    // An older mark landing after a clean stop keeps the stop.
    tx.prepare_cached(
        "INSERT INTO liveness (node, alive_at, stopped) VALUES (?1, ?2, 0)
         ON CONFLICT (node) DO UPDATE SET
             stopped = stopped AND excluded.alive_at < alive_at,
             alive_at = max(alive_at, excluded.alive_at)",
    )
    .and_then(|mut stmt| stmt.execute(params![mark.node, mark.at.as_millis()]))
    .map_err(map_err)?;
    Ok(window)
}

pub(crate) fn mark_stopped(tx: &Connection, node: &str, at: Timestamp) -> Result<()> {
    tx.execute(
        "INSERT INTO liveness (node, alive_at, stopped) VALUES (?1, ?2, 1)
         ON CONFLICT (node) DO UPDATE SET stopped = 1, alive_at = max(alive_at, excluded.alive_at)",
        params![node, at.as_millis()],
    )
    .map_err(map_err)?;
    Ok(())
}

/// The newest window's rowid (windows are never deleted, so it only grows).
fn downtime_epoch(tx: &Connection) -> Result<DowntimeEpoch> {
    tx.prepare_cached("SELECT coalesce(max(rowid), 0) FROM downtime")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map(DowntimeEpoch)
        .map_err(map_err)
}

pub(crate) fn record_downtime(tx: &Connection, window: DowntimeWindow) -> Result<()> {
    tx.execute(
        "INSERT INTO downtime (start_at, end_at) VALUES (?1, ?2)",
        params![window.start().as_millis(), window.end().as_millis()],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn downtime(tx: &Connection, after: Timestamp) -> Result<DowntimeLog> {
    let epoch = downtime_epoch(tx)?;
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
    Ok(DowntimeLog {
        windows: out,
        epoch,
    })
}
