//! An installation's life: retiring a recording server (issue 18).

use carewatch_core::condition::ConditionKey;
use carewatch_core::feed::Change;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::store::HistoryKind;
use carewatch_core::store::columns::AvailabilityColumns;
use carewatch_core::store::rules::{self, ActiveCondition, ServiceChange};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::{history, ingest, summary};
use crate::codec::{self, RowExt, map_err, ts};

pub(crate) fn decommission_server(
    tx: &Connection,
    reseller: Option<&ResellerId>,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
) -> Result<bool> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT reseller_id FROM installations WHERE slc = ?1",
            [slc.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(map_err)?;
    // Another reseller's installation is as missing as one never registered.
    match (owner, reseller) {
        (None, _) => return Err(Error::installation_not_found(slc)),
        (Some(owner), Some(reseller)) if owner != reseller.as_str() => {
            return Err(Error::installation_not_found(slc));
        }
        _ => {}
    }
    let Some(current) = ingest::load_server(tx, slc, server)? else {
        return Err(Error::NotFound {
            what: format!("recording server {server} of installation {slc}"),
        });
    };
    let active = active_conditions(tx, slc, server)?;
    let Some(writes) = rules::decommission(&current.availability, &active, at) else {
        return Ok(false);
    };
    let columns = AvailabilityColumns::from(&writes.availability);
    tx.execute(
        "UPDATE servers SET state = ?3, missed = ?4, unavailable_since = ?5, next_check_at = NULL
         WHERE slc = ?1 AND server_id = ?2",
        params![
            slc.as_str(),
            server.as_str(),
            columns.state,
            columns.missed,
            columns.unavailable_since
        ],
    )
    .map_err(map_err)?;
    for (key, entry) in &writes.resolved {
        resolve(tx, slc, server, key, at)?;
        history::record(tx, slc, server, at, entry)?;
    }
    history::record(tx, slc, server, at, &HistoryKind::Decommissioned)?;
    summary::refresh(tx, slc, at)?;
    Ok(true)
}

/// A server's active conditions, in no particular order.
pub(crate) fn active_conditions(
    tx: &Connection,
    slc: &Slc,
    server: &RecordingServerId,
) -> Result<Vec<ActiveCondition>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT code, subject, detail, opened_at FROM conditions
             WHERE slc = ?1 AND server_id = ?2 AND resolved_at IS NULL",
        )
        .map_err(map_err)?;
    let mut rows = stmt
        .query([slc.as_str(), server.as_str()])
        .map_err(map_err)?;
    let mut active = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        active.push(ActiveCondition {
            key: ConditionKey {
                code: codec::code(&row.col::<String>(0)?)?,
                subject: row.col(1)?,
            },
            detail: row.col(2)?,
            opened_at: ts(row.col(3)?),
        });
    }
    Ok(active)
}

fn resolve(
    tx: &Connection,
    slc: &Slc,
    server: &RecordingServerId,
    key: &ConditionKey,
    at: Timestamp,
) -> Result<()> {
    tx.execute(
        "UPDATE conditions SET resolved_at = ?5
         WHERE slc = ?1 AND server_id = ?2 AND code = ?3 AND subject = ?4 AND resolved_at IS NULL",
        params![
            slc.as_str(),
            server.as_str(),
            key.code.as_str(),
            key.subject,
            at.as_millis()
        ],
    )
    .map_err(map_err)?;
    Ok(())
}

/// Applies [`rules::service_change`] after an installation's consent or
/// Care Plus changed at `at` (or its Care Plus ran out): parks or resumes
/// its servers.
pub(crate) fn apply_service_change(
    tx: &Connection,
    slc: &Slc,
    at: Timestamp,
) -> Result<ServiceChanged> {
    let parked: Option<i64> = tx
        .query_row(
            "SELECT parked_at FROM installations WHERE slc = ?1",
            [slc.as_str()],
            |row| row.get(0),
        )
        .map_err(map_err)?;
    let installation =
        super::admin::installation(tx, slc)?.ok_or_else(|| Error::installation_not_found(slc))?;
    let change = rules::service_change(parked.is_some(), &installation, at);
    if let Some(change) = change {
        // Each server's history says when it was not judged (an uptime
        // report counts that time as unmonitored).
        let kind = change.history(parked.map(ts), at);
        let servers: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT server_id FROM servers WHERE slc = ?1 ORDER BY server_id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([slc.as_str()], |row| row.get(0))
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(map_err)?
        };
        for server in &servers {
            history::record(tx, slc, &codec::server_id(server)?, at, &kind)?;
        }
    }
    match change {
        Some(ServiceChange::Park) => park(tx, slc, at)?,
        Some(ServiceChange::Resume) => {
            // Judged again at once, missed heartbeats counted from `at`; an
            // unavailable server stays so until it reports, its missed
            // heartbeats counted from `at` too (not through the refusal).
            tx.execute(
                "UPDATE servers SET counted_from = ?2,
                     next_check_at = CASE WHEN state IN (0, 1) THEN ?2 ELSE next_check_at END
                 WHERE slc = ?1 AND state IN (0, 1, 2)",
                params![slc.as_str(), at.as_millis()],
            )
            .map_err(map_err)?;
            tx.execute(
                "UPDATE installations SET parked_at = NULL WHERE slc = ?1",
                [slc.as_str()],
            )
            .map_err(map_err)?;
            // What could not be told while refused is looked at again now.
            super::maintenance::make_due(tx, &installation.reseller, Some(slc.as_str()), at)?;
        }
        None => {}
    }
    Ok(ServiceChanged {
        parked_before: parked.map(ts),
        installation,
    })
}

/// What [`apply_service_change`] read: when the installation was parked
/// before it (`None`: it was not), and the installation.
pub(crate) struct ServiceChanged {
    pub(crate) parked_before: Option<Timestamp>,
    pub(crate) installation: Installation,
}

/// Stops judging an installation's servers (those not unavailable or
/// retired keep what they show).
fn park(tx: &Connection, slc: &Slc, at: Timestamp) -> Result<()> {
    tx.execute(
        "UPDATE servers SET next_check_at = NULL WHERE slc = ?1 AND state IN (0, 1)",
        [slc.as_str()],
    )
    .map_err(map_err)?;
    tx.execute(
        "UPDATE installations SET parked_at = ?2 WHERE slc = ?1",
        params![slc.as_str(), at.as_millis()],
    )
    .map_err(map_err)?;
    Ok(())
}

/// The installations whose Care Plus ended at or before `?1` and that are
/// not parked yet (through the partial index `installations_expiring`).
macro_rules! expired {
    () => {
        " FROM installations WHERE parked_at IS NULL AND subscription_expires_at IS NOT NULL
             AND subscription_expires_at <= ?1"
    };
}

/// Whether [`park_expired`] would park anything at `now`.
pub(crate) fn any_expired(tx: &Connection, now: Timestamp) -> Result<bool> {
    tx.prepare_cached(concat!("SELECT EXISTS (SELECT 1", expired!(), ")"))
        .and_then(|mut stmt| stmt.query_row([now.as_millis()], |row| row.get(0)))
        .map_err(map_err)
}

/// Parks the installations whose Care Plus ended at or before `now`.
pub(crate) fn park_expired(tx: &Connection, now: Timestamp) -> Result<u32> {
    let expired: Vec<(String, i64)> = {
        let mut stmt = tx
            .prepare_cached(concat!("SELECT slc, subscription_expires_at", expired!()))
            .map_err(map_err)?;
        let rows = stmt
            .query_map([now.as_millis()], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(map_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(map_err)?
    };
    for (slc, ended) in &expired {
        let slc = codec::slc(slc)?;
        apply_service_change(tx, &slc, now)?;
        // Watchers and live pages learn that it ran out.
        super::feed::append(
            tx,
            &slc,
            now,
            &Change::Subscription {
                expires_at: Some(ts(*ended)),
            },
        )?;
    }
    Ok(u32::try_from(expired.len()).unwrap_or(u32::MAX))
}

/// Deletes what installations whose consent was withdrawn at or before
/// `before` reported (servers, conditions, history), keeping what their
/// registration needs and their servers' sequence cursors; returns how many.
pub(crate) fn delete_withdrawn_data(
    tx: &Connection,
    before: Timestamp,
    at: Timestamp,
) -> Result<u32> {
    let due: Vec<String> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT slc FROM installations
                 WHERE consent_withdrawn_at IS NOT NULL AND data_deleted_at IS NULL
                     AND consent_withdrawn_at <= ?1 AND consent = 0",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([before.as_millis()], |row| row.get(0))
            .map_err(map_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(map_err)?
    };
    for slc in &due {
        // Each server's cursor outlives its row: a message captured before
        // must stay a replay once consent is given again.
        tx.prepare_cached(
            "INSERT INTO deleted_server_cursors (slc, server_id, last_sequence, last_digest)
             SELECT slc, server_id, last_sequence, last_digest FROM servers WHERE slc = ?1
             ON CONFLICT (slc, server_id) DO UPDATE
                 SET last_sequence = excluded.last_sequence, last_digest = excluded.last_digest",
        )
        .and_then(|mut stmt| stmt.execute([slc]))
        .map_err(map_err)?;
        for table in ["conditions", "history", "servers"] {
            tx.execute(&format!("DELETE FROM {table} WHERE slc = ?1"), [slc])
                .map_err(map_err)?;
        }
        tx.execute(
            "UPDATE installations SET data_deleted_at = ?2 WHERE slc = ?1",
            params![slc, at.as_millis()],
        )
        .map_err(map_err)?;
        summary::refresh(tx, &codec::slc(slc)?, at)?;
    }
    Ok(u32::try_from(due.len()).unwrap_or(u32::MAX))
}
