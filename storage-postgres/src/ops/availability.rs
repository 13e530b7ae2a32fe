//! Time-driven availability changes, liveness marks and downtime windows.

use std::collections::{BTreeMap, BTreeSet};

use carewatch_core::availability::DowntimeWindow;
use carewatch_core::liveness::{self, LivenessMark, NodeLiveness};
use carewatch_core::store::rules;
use carewatch_core::store::{
    AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, DowntimeLog, ServerRecord,
};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::ingest::lock_servers;
use super::{history, summary};
use carewatch_core::store::columns::AvailabilityColumns;

use crate::codec::{self, col, server_columns, ts};
use crate::errors::{DbResult, corrupt};

pub(crate) async fn due_servers(
    c: &mut PgConnection,
    now: Timestamp,
    limit: u32,
) -> DbResult<Vec<ServerRecord>> {
    // A range scan of the partial index servers_due, from its start to `now`.
    // Ties (same millisecond) in (slc, server_id) order, as SQLite returns
    // them (its index entries end with the primary key): an incremental sort
    // of each tie group, no full sort.
    let rows = query(concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers WHERE next_check_at IS NOT NULL AND next_check_at <= $1
         ORDER BY next_check_at, slc, server_id LIMIT $2"
    ))
    .bind(now.as_millis())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(codec::server).collect()
}

pub(crate) async fn apply_availability(
    c: &mut PgConnection,
    changes: &[AvailabilityChange],
    epoch: DowntimeEpoch,
) -> DbResult<AvailabilityOutcome> {
    if lock_downtime_epoch(c).await? != epoch {
        return Ok(AvailabilityOutcome::DowntimeChanged);
    }
    // Every server row concerned is locked first, in key order: a message
    // being applied meanwhile either committed before (then last_seen_at
    // differs and the change is dropped) or waits for this transaction.
    let keys = changes
        .iter()
        .map(|ch| (ch.slc.clone(), ch.server.clone()))
        .collect::<BTreeSet<_>>();
    let mut rows = lock_servers(c, &keys).await?;
    // Installation -> when its servers changed; its summary is refreshed once.
    let mut touched = BTreeMap::new();
    for change in changes {
        let key = (change.slc.clone(), change.server.clone());
        // A message arrived since the evaluation (or the server is gone): it wins.
        let Some(current) = rows.get_mut(&key) else {
            continue;
        };
        if current.last_seen_at != change.expected_last_seen {
            continue;
        }
        let before = current.availability;
        let after = AvailabilityColumns::from(&change.availability);
        query(
            "UPDATE servers SET state = $3, missed = $4, unavailable_since = $5, next_check_at = $6
             WHERE slc = $1 AND server_id = $2",
        )
        .bind(change.slc.as_str())
        .bind(change.server.as_str())
        .bind(after.state)
        .bind(after.missed)
        .bind(after.unavailable_since)
        .bind(change.next_check_at.map(Timestamp::as_millis))
        .execute(&mut *c)
        .await?;
        // The row as stored now (Pending is stored as Available).
        current.availability = after.decode()?;
        current.next_check_at = change.next_check_at;
        if let Some(opened) =
            rules::became_unavailable(&change.server, &before, &change.availability)
        {
            query(
                "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT DO NOTHING",
            )
            .bind(change.slc.as_str())
            .bind(change.server.as_str())
            .bind(opened.code.as_str())
            .bind(opened.subject.as_str())
            .bind(opened.detail.as_str())
            .bind(opened.opened_at.as_millis())
            .execute(&mut *c)
            .await?;
            history::record(
                c,
                &change.slc,
                &change.server,
                opened.opened_at,
                &opened.history,
            )
            .await?;
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
        if let Some(change) = summary::refresh(c, &slc, at).await? {
            summary_changes.push(change);
        }
    }
    Ok(AvailabilityOutcome::Applied(summary_changes))
}

/// Reads every node's liveness, records the gap the core's rule finds and
/// writes the mark, in one transaction. The table is locked (SHARE ROW
/// EXCLUSIVE conflicts with itself) so nodes marking at the same moment take
/// turns: the second sees the first's mark (and its window).
pub(crate) async fn mark_alive(
    c: &mut PgConnection,
    mark: &LivenessMark,
) -> DbResult<Option<DowntimeWindow>> {
    query("LOCK TABLE liveness IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *c)
        .await?;
    let rows = query("SELECT node, alive_at, stopped FROM liveness")
        .fetch_all(&mut *c)
        .await?;
    let nodes = rows
        .iter()
        .map(|row| {
            Ok(NodeLiveness {
                node: col(row, 0)?,
                alive_at: ts(col(row, 1)?),
                stopped: col(row, 2)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    let window = liveness::gap_before(mark, &nodes);
    if let Some(window) = window {
        record_downtime(c, window).await?;
    }
    // An older mark landing after a clean stop keeps the stop.
    query(
        "INSERT INTO liveness (node, alive_at, stopped) VALUES ($1, $2, false)
         ON CONFLICT (node) DO UPDATE SET
             stopped = liveness.stopped AND excluded.alive_at < liveness.alive_at,
             alive_at = GREATEST(liveness.alive_at, excluded.alive_at)",
    )
    .bind(mark.node.as_str())
    .bind(mark.at.as_millis())
    .execute(&mut *c)
    .await?;
    Ok(window)
}

pub(crate) async fn mark_stopped(c: &mut PgConnection, node: &str, at: Timestamp) -> DbResult<()> {
    query("LOCK TABLE liveness IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *c)
        .await?;
    query(
        "INSERT INTO liveness (node, alive_at, stopped) VALUES ($1, $2, true)
         ON CONFLICT (node) DO UPDATE SET
             stopped = true, alive_at = GREATEST(liveness.alive_at, excluded.alive_at)",
    )
    .bind(node)
    .bind(at.as_millis())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The epoch of the downtime windows: the newest window's id. Taken with
/// the table locked in SHARE mode, which waits for a transaction recording
/// a window and makes it wait for this one: a sweep's verdicts and a new
/// window never interleave.
pub(crate) async fn lock_downtime_epoch(c: &mut PgConnection) -> DbResult<DowntimeEpoch> {
    query("LOCK TABLE downtime IN SHARE MODE")
        .execute(&mut *c)
        .await?;
    epoch(c).await
}

async fn epoch(c: &mut PgConnection) -> DbResult<DowntimeEpoch> {
    let row = query("SELECT coalesce(max(id), 0) FROM downtime")
        .fetch_one(&mut *c)
        .await?;
    Ok(DowntimeEpoch(col(&row, 0)?))
}

pub(crate) async fn record_downtime(c: &mut PgConnection, window: DowntimeWindow) -> DbResult<()> {
    query("INSERT INTO downtime (start_at, end_at) VALUES ($1, $2)")
        .bind(window.start().as_millis())
        .bind(window.end().as_millis())
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(crate) async fn downtime(c: &mut PgConnection, after: Timestamp) -> DbResult<DowntimeLog> {
    let epoch = epoch(c).await?;
    let rows =
        query("SELECT start_at, end_at FROM downtime WHERE end_at > $1 ORDER BY start_at, id")
            .bind(after.as_millis())
            .fetch_all(&mut *c)
            .await?;
    let windows = rows
        .iter()
        .map(|row| {
            Ok(DowntimeWindow::new(ts(col(row, 0)?), ts(col(row, 1)?))
                .map_err(|e| corrupt("downtime window", e))?)
        })
        .collect::<DbResult<_>>()?;
    Ok(DowntimeLog { windows, epoch })
}
