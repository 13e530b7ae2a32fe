//! Keeping an installation's overview line in step with its servers and
//! conditions, inside the transaction that changed them.

use std::collections::{BTreeMap, HashMap};

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

/// [`refresh`] for several installations, each stamped with its own time:
/// their rows locked at once in SLC order (as [`refresh`] one by one in
/// that order would), their servers and conditions read in one statement
/// each, the changed summaries written in one and their feed events
/// appended in SLC order.
pub(crate) async fn refresh_many(
    c: &mut PgConnection,
    touched: &BTreeMap<Slc, Timestamp>,
) -> DbResult<Vec<SummaryChange>> {
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let slcs: Vec<&str> = touched.keys().map(Slc::as_str).collect();
    let rows = query(concat!(
        "SELECT ",
        summary_columns!(),
        ", reseller_id, slc FROM installations WHERE slc = ANY($1::text[])
         ORDER BY slc FOR NO KEY UPDATE"
    ))
    .bind(&slcs)
    .fetch_all(&mut *c)
    .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in &rows {
        let reseller = codec::reseller_id(&col::<String>(row, 6)?)?;
        stored.insert(col::<String>(row, 7)?, (codec::summary(row, 0)?, reseller));
    }
    let mut servers: HashMap<String, Vec<_>> = HashMap::new();
    for row in &query(
        "SELECT slc, state, missed, unavailable_since FROM servers WHERE slc = ANY($1::text[])",
    )
    .bind(&slcs)
    .fetch_all(&mut *c)
    .await?
    {
        let availability = AvailabilityColumns {
            state: col(row, 1)?,
            missed: col(row, 2)?,
            unavailable_since: col(row, 3)?,
        }
        .decode()?;
        servers
            .entry(col::<String>(row, 0)?)
            .or_default()
            .push(availability);
    }
    let mut codes: HashMap<String, Vec<_>> = HashMap::new();
    for row in &query(
        "SELECT slc, code FROM conditions WHERE slc = ANY($1::text[]) AND resolved_at IS NULL",
    )
    .bind(&slcs)
    .fetch_all(&mut *c)
    .await?
    {
        let code = codec::code(&col::<String>(row, 1)?)?;
        codes.entry(col::<String>(row, 0)?).or_default().push(code);
    }
    let mut changes = Vec::new();
    for (slc, at) in touched {
        let Some((before, reseller)) = stored.remove(slc.as_str()) else {
            return Err(Error::installation_not_found(slc).into());
        };
        let summary = health::summarize(
            servers.remove(slc.as_str()).unwrap_or_default(),
            &codes.remove(slc.as_str()).unwrap_or_default(),
        );
        if before != summary {
            changes.push(SummaryChange {
                slc: slc.clone(),
                reseller,
                previous: before.health,
                summary,
                at: *at,
            });
        }
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    query(
        "UPDATE installations SET health = u.health, worst_code = u.worst_code,
             servers = u.servers, unavailable = u.unavailable, late = u.late,
             active_conditions = u.active_conditions
         FROM UNNEST($1::text[], $2::smallint[], $3::text[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[])
             AS u (slc, health, worst_code, servers, unavailable, late, active_conditions)
         WHERE installations.slc = u.slc",
    )
    .bind(changes.iter().map(|ch| ch.slc.as_str()).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|ch| rank(ch.summary.health))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|ch| ch.summary.worst.as_ref().map(|w| w.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|ch| i64::from(ch.summary.servers))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|ch| i64::from(ch.summary.unavailable))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|ch| i64::from(ch.summary.late))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|ch| i64::from(ch.summary.active_conditions))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *c)
    .await?;
    let events: Vec<(&Slc, Timestamp, Change)> = changes
        .iter()
        .map(|ch| {
            (
                &ch.slc,
                ch.at,
                Change::Health {
                    previous: ch.previous,
                    summary: ch.summary.clone(),
                },
            )
        })
        .collect();
    super::feed::append_many(c, &events).await?;
    Ok(changes)
}
