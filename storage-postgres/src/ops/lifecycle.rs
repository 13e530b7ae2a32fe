//! An installation's life: retiring a recording server (issue 18).

use carewatch_core::Error;
use carewatch_core::feed::Change;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::store::HistoryKind;
use carewatch_core::store::columns::AvailabilityColumns;
use carewatch_core::store::rules::{self, ServiceChange};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::{history, ingest, summary};
use crate::codec::{self, col, ts};
use crate::errors::DbResult;

pub(crate) async fn decommission_server(
    c: &mut PgConnection,
    reseller: Option<&ResellerId>,
    slc: &Slc,
    server: &RecordingServerId,
    at: Timestamp,
) -> DbResult<bool> {
    let owner = query("SELECT reseller_id FROM installations WHERE slc = $1")
        .bind(slc.as_str())
        .fetch_optional(&mut *c)
        .await?
        .map(|row| col::<String>(&row, 0))
        .transpose()?;
    // Another reseller's installation is as missing as one never registered.
    match (owner, reseller) {
        (None, _) => return Err(Error::installation_not_found(slc).into()),
        (Some(owner), Some(reseller)) if owner != reseller.as_str() => {
            return Err(Error::installation_not_found(slc).into());
        }
        _ => {}
    }
    // Locked like ingest locks it: a message from it waits for this.
    let Some(current) = ingest::load_server(c, slc, server, true).await? else {
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

/// Applies [`rules::service_change`] after an installation's consent or
/// Care Plus changed at `at` (or its Care Plus ran out): parks or resumes
/// its servers. The installation's row is locked first, as every writer of
/// its line locks it.
pub(crate) async fn apply_service_change(
    c: &mut PgConnection,
    slc: &Slc,
    at: Timestamp,
) -> DbResult<()> {
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
    match rules::service_change(parked.is_some(), &installation, at) {
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
            // Judged again at once, missed heartbeats counted from `at`.
            query(
                "UPDATE servers SET counted_from = $2, next_check_at = $2
                 WHERE slc = $1 AND state IN (0, 1)",
            )
            .bind(slc.as_str())
            .bind(at.as_millis())
            .execute(&mut *c)
            .await?;
            query("UPDATE installations SET parked_at = NULL WHERE slc = $1")
                .bind(slc.as_str())
                .execute(&mut *c)
                .await?;
        }
        None => {}
    }
    Ok(())
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
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        apply_service_change(c, &slc, now).await?;
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
    Ok(u32::try_from(rows.len()).unwrap_or(u32::MAX))
}

/// Deletes what installations whose consent was withdrawn at or before
/// `before` reported (servers, conditions, history), keeping what their
/// registration needs; returns how many.
pub(crate) async fn delete_withdrawn_data(
    c: &mut PgConnection,
    before: Timestamp,
    at: Timestamp,
) -> DbResult<u32> {
    let rows = query(
        "SELECT slc FROM installations
         WHERE consent_withdrawn_at IS NOT NULL AND data_deleted_at IS NULL
             AND consent_withdrawn_at <= $1 AND NOT consent
         ORDER BY slc FOR NO KEY UPDATE",
    )
    .bind(before.as_millis())
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        for sql in [
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
    Ok(u32::try_from(rows.len()).unwrap_or(u32::MAX))
}
