//! An installation's life: retiring a recording server (issue 18).

use carewatch_core::condition::ConditionKey;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::store::HistoryKind;
use carewatch_core::store::columns::AvailabilityColumns;
use carewatch_core::store::rules::{self, ActiveCondition};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{history, ingest, summary};
use crate::codec::{self, RowExt, map_err, ts};

pub(crate) fn decommission_server(
    tx: &Transaction<'_>,
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

fn active_conditions(
    tx: &Transaction<'_>,
    slc: &Slc,
    server: &RecordingServerId,
) -> Result<Vec<ActiveCondition>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT code, subject, detail, opened_at FROM conditions
             WHERE slc = ?1 AND server_id = ?2 AND resolved_at IS NULL ORDER BY opened_at, id",
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
    tx: &Transaction<'_>,
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
