//! An installation's life: retiring a recording server (issue 18).

use carewatch_core::Error;
use carewatch_core::condition::ConditionKey;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::store::HistoryKind;
use carewatch_core::store::columns::AvailabilityColumns;
use carewatch_core::store::rules::{self, ActiveCondition};
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
    let rows = query(
        "SELECT code, subject, detail, opened_at FROM conditions
         WHERE slc = $1 AND server_id = $2 AND resolved_at IS NULL ORDER BY opened_at, id",
    )
    .bind(slc.as_str())
    .bind(server.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut active = Vec::with_capacity(rows.len());
    for row in &rows {
        active.push(ActiveCondition {
            key: ConditionKey {
                code: codec::code(&col::<String>(row, 0)?)?,
                subject: col(row, 1)?,
            },
            detail: col(row, 2)?,
            opened_at: ts(col(row, 3)?),
        });
    }
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
