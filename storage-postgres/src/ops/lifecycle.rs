//! An installation's life: retiring a recording server (issue 18).

use carewatch_core::Error;
use carewatch_core::feed::Change;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::store::HistoryKind;
use carewatch_core::store::columns::AvailabilityColumns;
use carewatch_core::store::rules::{self, ServiceChange};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::{history, ingest, summary};
use crate::codec::{self, col, ts};
use crate::errors::DbResult;

/// `NotFound` unless `slc` is registered and, if `reseller` is given, its:
/// another reseller's installation is as missing as one never registered.
/// With `locked`, the row is locked (`FOR NO KEY UPDATE`) as it is read.
async fn require_owner(
    c: &mut PgConnection,
    reseller: Option<&ResellerId>,
    slc: &Slc,
    locked: bool,
) -> DbResult<()> {
    let sql = if locked {
        "SELECT reseller_id FROM installations WHERE slc = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT reseller_id FROM installations WHERE slc = $1"
    };
    let owner = query(sql)
        .bind(slc.as_str())
        .fetch_optional(&mut *c)
        .await?
        .map(|row| col::<String>(&row, 0))
        .transpose()?;
    match (owner, reseller) {
        (Some(owner), Some(reseller)) if owner != reseller.as_str() => {
            Err(Error::installation_not_found(slc).into())
        }
        (Some(_), _) => Ok(()),
        (None, _) => Err(Error::installation_not_found(slc).into()),
    }
}

pub(crate) async fn decommission_server(
    c: &mut PgConnection,
    reseller: Option<&ResellerId>,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
) -> DbResult<bool> {
    // Another reseller's installation is refused before anything is
    // locked: its rows are neither held up (stalling its ingest) nor
    // waited for (an answer slower only when they exist).
    require_owner(c, reseller, slc, false).await?;
    // The server first, then its installation, as ingest and the sweep
    // lock them: a message from it waits for this, and no lock cycle forms.
    let current = ingest::load_server(c, slc, server, true).await?;
    // The owner read again under the installation's lock: a transfer
    // committing meanwhile is waited for, never decided against the
    // previous owner.
    require_owner(c, reseller, slc, true).await?;
    let Some(current) = current else {
        return Err(Error::NotFound {
            what: format!("recording server {server} of installation {slc}"),
        }
        .into());
    };
    let active = ingest::active_conditions(c, slc, server).await?;
    let Some(writes) = rules::decommission(&current.availability, &active, at) else {
        return Ok(false);
    };
    let columns = AvailabilityColumns::from(&writes.availability);
    query(
        "UPDATE servers SET state = $3, missed = $4, unavailable_since = $5, next_check_at = NULL
         WHERE slc = $1 AND server_id = $2",
    )
    .bind(slc.as_str())
    .bind(server.as_str())
    .bind(columns.state)
    .bind(columns.missed)
    .bind(columns.unavailable_since)
    .execute(&mut *c)
    .await?;
    for (key, entry) in &writes.resolved {
        query(
            "UPDATE conditions SET resolved_at = $5
             WHERE slc = $1 AND server_id = $2 AND code = $3 AND subject = $4 AND resolved_at IS NULL",
        )
        .bind(slc.as_str())
        .bind(server.as_str())
        .bind(key.code.as_str())
        .bind(key.subject.as_str())
        .bind(at.as_millis())
        .execute(&mut *c)
        .await?;
        history::record(c, slc, server, at, entry).await?;
    }
    history::record(c, slc, server, at, &HistoryKind::Decommissioned).await?;
    summary::refresh(c, slc, at).await?;
    Ok(true)
}

/// Locks every server row of `slc`, in key order. Ingest, the sweep and a
/// decommission lock servers before their installation; a writer that
/// changes an installation and then its servers locks them first too, or
/// the two would wait for each other (a deadlock, found only after
/// `deadlock_timeout`, long enough to stall ingest past its limit).
pub(crate) async fn lock_installation_servers(c: &mut PgConnection, slc: &Slc) -> DbResult<()> {
    query("SELECT 1 FROM servers WHERE slc = $1 ORDER BY server_id FOR UPDATE")
        .bind(slc.as_str())
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Locks the server rows of every installation in `rows`, in key order,
/// before a writer that goes through several installations locks any of
/// them: locking each installation's servers as it came to it would hold
/// installation A while waiting for a server of B, which an ingest batch
/// holding that server and adding a new server to A (it locks A) waits on.
async fn lock_servers_of(c: &mut PgConnection, rows: &[sqlx_postgres::PgRow]) -> DbResult<()> {
    // The installations' SLCs are each row's first column.
    let slcs = rows
        .iter()
        .map(|row| col::<String>(row, 0))
        .collect::<DbResult<Vec<_>>>()?;
    query("SELECT 1 FROM servers WHERE slc = ANY($1) ORDER BY slc, server_id FOR UPDATE")
        .bind(&slcs)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Applies [`rules::service_change`] after an installation's consent or
/// Care Plus changed at `at` (or its Care Plus ran out): parks or resumes
/// its servers; what it did. Its servers are locked first, then its
/// installation (see [`lock_installation_servers`]).
pub(crate) async fn apply_service_change(
    c: &mut PgConnection,
    slc: &Slc,
    at: Timestamp,
) -> DbResult<ServiceChanged> {
    lock_installation_servers(c, slc).await?;
    let parked = query("SELECT parked_at FROM installations WHERE slc = $1 FOR NO KEY UPDATE")
        .bind(slc.as_str())
        .fetch_optional(&mut *c)
        .await?
        .map(|row| col::<Option<i64>>(&row, 0))
        .transpose()?
        .ok_or_else(|| Error::installation_not_found(slc))?;
    let installation = super::admin::installation(c, slc)
        .await?
        .ok_or_else(|| Error::installation_not_found(slc))?;
    let change = rules::service_change(parked.is_some(), &installation, at);
    if let Some(change) = change {
        // Each server's history says when it was not judged (an uptime
        // report counts that time as unmonitored).
        let kind = change.history(parked.map(ts), at);
        let servers = query("SELECT server_id FROM servers WHERE slc = $1 ORDER BY server_id")
            .bind(slc.as_str())
            .fetch_all(&mut *c)
            .await?
            .iter()
            .map(|row| Ok(codec::server_id(&col::<String>(row, 0)?)?))
            .collect::<DbResult<Vec<RecordingServerId>>>()?;
        let entries: Vec<_> = servers
            .iter()
            .map(|server| (slc, server, at, &kind))
            .collect();
        history::record_many(c, &entries).await?;
    }
    match change {
        Some(ServiceChange::Park) => {
            query("UPDATE servers SET next_check_at = NULL WHERE slc = $1 AND state IN (0, 1)")
                .bind(slc.as_str())
                .execute(&mut *c)
                .await?;
            query("UPDATE installations SET parked_at = $2 WHERE slc = $1")
                .bind(slc.as_str())
                .bind(at.as_millis())
                .execute(&mut *c)
                .await?;
        }
        Some(ServiceChange::Resume) => {
            // Judged again at once, missed heartbeats counted from `at`; an
            // unavailable server stays so until it reports, its missed
            // heartbeats counted from `at` too (not through the refusal).
            query(
                "UPDATE servers SET counted_from = $2,
                     next_check_at = CASE WHEN state IN (0, 1) THEN $2 ELSE next_check_at END
                 WHERE slc = $1 AND state IN (0, 1, 2)",
            )
            .bind(slc.as_str())
            .bind(at.as_millis())
            .execute(&mut *c)
            .await?;
            query("UPDATE installations SET parked_at = NULL WHERE slc = $1")
                .bind(slc.as_str())
                .execute(&mut *c)
                .await?;
            // What could not be told while refused is looked at again now.
            super::maintenance::make_due(c, &installation.reseller, Some(slc.as_str()), at).await?;
        }
        None => {}
    }
    Ok(ServiceChanged {
        change,
        parked_before: parked.map(ts),
        installation,
    })
}

/// What [`apply_service_change`] did, and what it read: when the
/// installation was parked before it (`None`: it was not), and the
/// installation.
pub(crate) struct ServiceChanged {
    pub(crate) change: Option<ServiceChange>,
    pub(crate) parked_before: Option<Timestamp>,
    pub(crate) installation: Installation,
}

/// Parks the installations whose Care Plus ended at or before `now`.
pub(crate) async fn park_expired(c: &mut PgConnection, now: Timestamp) -> DbResult<u32> {
    let rows = query(
        "SELECT slc, subscription_expires_at FROM installations
         WHERE parked_at IS NULL AND subscription_expires_at IS NOT NULL
             AND subscription_expires_at <= $1
         ORDER BY slc",
    )
    .bind(now.as_millis())
    .fetch_all(&mut *c)
    .await?;
    lock_servers_of(c, &rows).await?;
    let mut parked = 0u32;
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        // Candidates are read unlocked: another node's sweep may have
        // parked this one meanwhile, and told it; tell it once.
        if apply_service_change(c, &slc, now).await?.change != Some(ServiceChange::Park) {
            continue;
        }
        parked += 1;
        // Watchers and live pages learn that it ran out.
        super::feed::append(
            c,
            &slc,
            now,
            &Change::Subscription {
                expires_at: Some(ts(col(row, 1)?)),
            },
        )
        .await?;
    }
    Ok(parked)
}

/// Deletes what installations whose consent was withdrawn at or before
/// `before` reported (servers, conditions, history), keeping what their
/// registration needs and their servers' sequence cursors; returns how many.
pub(crate) async fn delete_withdrawn_data(
    c: &mut PgConnection,
    before: Timestamp,
    at: Timestamp,
) -> DbResult<u32> {
    let rows = query(
        "SELECT slc FROM installations
         WHERE consent_withdrawn_at IS NOT NULL AND data_deleted_at IS NULL
             AND consent_withdrawn_at <= $1 AND NOT consent
         ORDER BY slc",
    )
    .bind(before.as_millis())
    .fetch_all(&mut *c)
    .await?;
    lock_servers_of(c, &rows).await?;
    let mut deleted = 0u32;
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        // Servers, then the installation (see lock_installation_servers),
        // which is checked again under its lock: consent given back
        // meanwhile keeps the data.
        lock_installation_servers(c, &slc).await?;
        let still_due = query(
            "SELECT 1 FROM installations
             WHERE slc = $2 AND consent_withdrawn_at IS NOT NULL AND data_deleted_at IS NULL
                 AND consent_withdrawn_at <= $1 AND NOT consent
             FOR NO KEY UPDATE",
        )
        .bind(before.as_millis())
        .bind(slc.as_str())
        .fetch_optional(&mut *c)
        .await?;
        if still_due.is_none() {
            continue;
        }
        deleted += 1;
        for sql in [
            // Each server's cursor outlives its row: a message captured
            // before must stay a replay once consent is given again.
            "INSERT INTO deleted_server_cursors (slc, server_id, last_sequence, last_digest)
             SELECT slc, server_id, last_sequence, last_digest FROM servers WHERE slc = $1
             ON CONFLICT (slc, server_id) DO UPDATE
                 SET last_sequence = excluded.last_sequence, last_digest = excluded.last_digest",
            "DELETE FROM conditions WHERE slc = $1",
            "DELETE FROM history WHERE slc = $1",
            "DELETE FROM servers WHERE slc = $1",
        ] {
            query(sql).bind(slc.as_str()).execute(&mut *c).await?;
        }
        query("UPDATE installations SET data_deleted_at = $2 WHERE slc = $1")
            .bind(slc.as_str())
            .bind(at.as_millis())
            .execute(&mut *c)
            .await?;
        summary::refresh(c, &slc, at).await?;
    }
    Ok(deleted)
}
