//! Keeping an installation's overview line in step with its servers and
//! conditions, inside the transaction that changed them.

use carewatch_core::feed::Change;
use carewatch_core::health::{self, HealthSummary};
use carewatch_core::ids::Slc;
use carewatch_core::store::SummaryChange;
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, params};

use crate::codec::{self, AvailabilityColumns, RowExt, SUMMARY_COLUMNS, map_err};

/// Recomputes the summary of `slc` with [`health::summarize`]; stores it and
/// returns the change if it differs from the stored one.
pub(crate) fn refresh(tx: &Connection, slc: &Slc, at: Timestamp) -> Result<Option<SummaryChange>> {
    let mut servers = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT state, missed, unavailable_since FROM servers WHERE slc = ?1")
            .map_err(map_err)?;
        let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            servers.push(
                AvailabilityColumns {
                    state: row.col(0)?,
                    missed: row.col(1)?,
                    unavailable_since: row.col(2)?,
                }
                .decode()?,
            );
        }
    }
    let mut codes = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT code FROM conditions WHERE slc = ?1 AND resolved_at IS NULL")
            .map_err(map_err)?;
        let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            codes.push(codec::code(&row.col::<String>(0)?)?);
        }
    }
    let summary = health::summarize(servers, &codes);

    let stored = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, reseller_id FROM installations WHERE slc = ?1"
            ))
            .map_err(map_err)?;
        let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
        match rows.next().map_err(map_err)? {
            Some(row) => (
                codec::summary(row, 0)?,
                codec::reseller_id(&row.col::<String>(6)?)?,
            ),
            None => return Err(Error::installation_not_found(slc)),
        }
    };
    let (stored, reseller): (HealthSummary, _) = stored;
    if stored == summary {
        return Ok(None);
    }
    tx.prepare_cached(
        "UPDATE installations SET health = ?2, worst_code = ?3, servers = ?4, unavailable = ?5, late = ?6,
             active_conditions = ?7 WHERE slc = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            slc.as_str(),
            summary.health.rank(),
            summary.worst.as_ref().map(|c| c.as_str().to_owned()),
            summary.servers,
            summary.unavailable,
            summary.late,
            summary.active_conditions,
        ])
    })
    .map_err(map_err)?;
    super::feed::append(
        tx,
        slc,
        at,
        &Change::Health {
            previous: stored.health,
            summary: summary.clone(),
        },
    )?;
    Ok(Some(SummaryChange {
        slc: slc.clone(),
        reseller,
        previous: stored.health,
        summary,
        at,
    }))
}
