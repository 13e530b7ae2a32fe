//! Time-driven availability changes, liveness marks and downtime windows.

use std::collections::{BTreeMap, BTreeSet};

use carewatch_core::availability::DowntimeWindow;
use carewatch_core::ids::{RecordingServerId, Slc};
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
    // Judged one by one, as if applied in order; written together below
    // (one statement per table): a regional outage's thousands of verdicts
    // are a handful of round trips, not eight per server.
    let mut written: BTreeMap<(&Slc, &RecordingServerId), (AvailabilityColumns, Option<i64>)> =
        BTreeMap::new();
    let mut opened = Vec::new();
    // Installation -> when its servers changed; its summary is refreshed once.
    let mut touched = BTreeMap::new();
    for change in changes {
        let key = (change.slc.clone(), change.server.clone());
        // A message arrived since the evaluation, the server was parked or
        // decommissioned, or it is gone: the verdict is dropped.
        let Some(current) = rows.get_mut(&key) else {
            continue;
        };
        if !rules::sweep_verdict_applies(current.last_seen_at, current.next_check_at, change) {
            continue;
        }
        let before = current.availability;
        let after = AvailabilityColumns::from(&change.availability);
        // The row as stored now (Pending is stored as Available).
        current.availability = after.decode()?;
        current.next_check_at = change.next_check_at;
        written.insert(
            (&change.slc, &change.server),
            (after, change.next_check_at.map(Timestamp::as_millis)),
        );
        if let Some(condition) =
            rules::became_unavailable(&change.server, &before, &change.availability)
        {
            opened.push((change, condition));
        }
        if before != change.availability {
            let at = touched
                .entry(change.slc.clone())
                .or_insert(change.evaluated_at);
            *at = (*at).max(change.evaluated_at);
        }
    }
    write_servers(c, &written).await?;
    open_unavailable_conditions(c, &opened).await?;
    let entries: Vec<_> = opened
        .iter()
        .map(|(change, condition)| {
            (
                &change.slc,
                &change.server,
                condition.opened_at,
                &condition.history,
            )
        })
        .collect();
    history::record_many(c, &entries).await?;
    let summary_changes = summary::refresh_many(c, &touched).await?;
    Ok(AvailabilityOutcome::Applied(summary_changes))
}

/// The servers' new availability columns and next check, one statement.
async fn write_servers(
    c: &mut PgConnection,
    written: &BTreeMap<(&Slc, &RecordingServerId), (AvailabilityColumns, Option<i64>)>,
) -> DbResult<()> {
    if written.is_empty() {
        return Ok(());
    }
    query(
        "UPDATE servers SET state = u.state, missed = u.missed,
             unavailable_since = u.unavailable_since, next_check_at = u.next_check_at
         FROM UNNEST($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[],
                     $6::bigint[])
             AS u (slc, server_id, state, missed, unavailable_since, next_check_at)
         WHERE servers.slc = u.slc AND servers.server_id = u.server_id",
    )
    .bind(
        written
            .keys()
            .map(|(slc, _)| slc.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        written
            .keys()
            .map(|(_, server)| server.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(written.values().map(|(a, _)| a.state).collect::<Vec<_>>())
    .bind(written.values().map(|(a, _)| a.missed).collect::<Vec<_>>())
    .bind(
        written
            .values()
            .map(|(a, _)| a.unavailable_since)
            .collect::<Vec<_>>(),
    )
    .bind(written.values().map(|(_, next)| *next).collect::<Vec<_>>())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The `SERVER_UNAVAILABLE` conditions of servers that became unavailable,
/// in order, one statement.
async fn open_unavailable_conditions(
    c: &mut PgConnection,
    opened: &[(&AvailabilityChange, rules::UnavailableCondition)],
) -> DbResult<()> {
    if opened.is_empty() {
        return Ok(());
    }
    query(
        "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at)
         SELECT slc, server_id, code, subject, detail, opened_at
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             WITH ORDINALITY AS u (slc, server_id, code, subject, detail, opened_at, n)
         ORDER BY n
         ON CONFLICT DO NOTHING",
    )
    .bind(
        opened
            .iter()
            .map(|(ch, _)| ch.slc.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        opened
            .iter()
            .map(|(ch, _)| ch.server.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        opened
            .iter()
            .map(|(_, o)| o.code.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        opened
            .iter()
            .map(|(_, o)| o.subject.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        opened
            .iter()
            .map(|(_, o)| o.detail.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        opened
            .iter()
            .map(|(_, o)| o.opened_at.as_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *c)
    .await?;
    Ok(())
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
