//! Keeping an installation's overview line in step with its servers and
//! conditions, inside the transaction that changed them.

use carewatch_core::Error;
use carewatch_core::feed::Change;
use carewatch_core::health;
use carewatch_core::ids::Slc;
use carewatch_core::store::SummaryChange;
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use carewatch_core::store::columns::AvailabilityColumns;

use crate::codec::{self, col, rank, summary_columns};
use crate::errors::DbResult;

/// Recomputes the summary of `slc` with [`health::summarize`]; stores it and
/// returns the change if it differs from the stored one.
///
/// The installation row is locked first (`FOR NO KEY UPDATE`): a concurrent
/// writer on another server of the same installation waits here until this
/// transaction commits, and then (READ COMMITTED: each statement sees what
/// was committed before it started) reads the servers and conditions with
/// this transaction's changes in them. Without the lock, the later writer
/// would store a summary computed from a view that misses the earlier one.
/// (NO KEY: inserts that reference the installation, which take KEY SHARE
/// for their foreign key, do not wait for it.)
pub(crate) async fn refresh(
    c: &mut PgConnection,
    slc: &Slc,
    at: Timestamp,
) -> DbResult<Option<SummaryChange>> {
    let stored = query(concat!(
        "SELECT ",
        summary_columns!(),
        ", reseller_id FROM installations WHERE slc = $1 FOR NO KEY UPDATE"
    ))
    .bind(slc.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let Some(stored) = stored else {
        return Err(Error::installation_not_found(slc).into());
    };
    let (stored, reseller) = (
        codec::summary(&stored, 0)?,
        codec::reseller_id(&col::<String>(&stored, 6)?)?,
    );

    let rows = query("SELECT state, missed, unavailable_since FROM servers WHERE slc = $1")
        .bind(slc.as_str())
        .fetch_all(&mut *c)
        .await?;
    let mut servers = Vec::with_capacity(rows.len());
    for row in &rows {
        servers.push(
            AvailabilityColumns {
                state: col(row, 0)?,
                missed: col(row, 1)?,
                unavailable_since: col(row, 2)?,
            }
            .decode()?,
        );
    }
    let rows = query("SELECT code FROM conditions WHERE slc = $1 AND resolved_at IS NULL")
        .bind(slc.as_str())
        .fetch_all(&mut *c)
        .await?;
    let mut codes = Vec::with_capacity(rows.len());
    for row in &rows {
        codes.push(codec::code(&col::<String>(row, 0)?)?);
    }
    let summary = health::summarize(servers, &codes);
    if stored == summary {
        return Ok(None);
    }
    query(
        "UPDATE installations SET health = $2, worst_code = $3, servers = $4, unavailable = $5, late = $6,
             active_conditions = $7 WHERE slc = $1",
    )
    .bind(slc.as_str())
    .bind(rank(summary.health))
    .bind(summary.worst.as_ref().map(|c| c.as_str()))
    .bind(i64::from(summary.servers))
    .bind(i64::from(summary.unavailable))
    .bind(i64::from(summary.late))
    .bind(i64::from(summary.active_conditions))
    .execute(&mut *c)
    .await?;
    super::feed::append(
        c,
        slc,
        at,
        &Change::Health {
            previous: stored.health,
            summary: summary.clone(),
        },
    )
    .await?;
    Ok(Some(SummaryChange {
        slc: slc.clone(),
        reseller,
        previous: stored.health,
        summary,
        at,
    }))
}
