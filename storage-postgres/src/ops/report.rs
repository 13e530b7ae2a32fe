//! What an uptime report reads (issue 18): a reseller's installations, their
//! recording servers and the availability entries of their history over a
//! period, in one read-only REPEATABLE READ transaction (a consistent
//! snapshot).
//!
//! The history is read through `history_recent (slc, at DESC, id DESC)`:
//! - the period's entries: one range of the index per installation;
//! - each server's state when the period begins: its latest availability
//!   entry before the start, a backward scan of the installation's range
//!   that stops at the first one (… LIMIT 1), and its latest parked or
//!   resumed entry (a probe of the partial index `history_refusals`), then
//!   the entries at those instants (a seek). They stay per-server index
//!   probes whatever the table statistics say (see `before!`).

use std::collections::HashMap;

use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::report::{InstallationHistory, MonitoredServer, Period};
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::history;
use super::reads::labels;
use crate::codec::{self, col, ts};
use crate::errors::DbResult;

/// The kinds that say whether a server is available or retired
/// (`HistoryColumns::kind`), without parentheses.
macro_rules! availability_list {
    () => {
        "'became_unavailable', 'recovered', 'decommissioned', 'recommissioned'"
    };
}

/// The kinds that say whether its messages are refused, without
/// parentheses.
macro_rules! refusal_list {
    () => {
        "'parked', 'resumed'"
    };
}

/// The history kinds a report reads: both.
macro_rules! kinds {
    () => {
        concat!("(", availability_list!(), ", ", refusal_list!(), ")")
    };
}

macro_rules! availability_kinds {
    () => {
        concat!("(", availability_list!(), ")")
    };
}

/// The predicate of the partial index `history_refusals`, so a server
/// never parked costs one probe of an empty range.
macro_rules! refusal_kinds {
    () => {
        concat!("(", refusal_list!(), ")")
    };
}

/// The installations: every one of reseller $1, or only $2.
macro_rules! installations {
    ($one:literal) => {
        concat!(
            "SELECT slc, customer_name, site_name, notes, tags FROM installations i
             WHERE reseller_id = $1",
            $one
        )
    };
}

macro_rules! servers {
    ($one:literal) => {
        concat!(
            "SELECT s.slc, s.server_id, greatest(s.first_seen_at, coalesce(i.history_from, 0))
             FROM installations i JOIN servers s ON s.slc = i.slc
             WHERE i.reseller_id = $1",
            $one
        )
    };
}

/// Columns as `history::event`, then the SLC.
macro_rules! entry_columns {
    () => {
        "h.at, h.server_id, h.kind, h.code, h.subject, h.duration_ms, h.missed, h.slc"
    };
}

/// The entries in the period [$3, $4).
macro_rules! within {
    ($one:literal) => {
        concat!(
            "SELECT ",
            entry_columns!(),
            " FROM installations i JOIN history h ON h.slc = i.slc
             WHERE i.reseller_id = $1",
            $one,
            " AND h.at >= $3 AND h.at < $4 AND h.kind IN ",
            kinds!()
        )
    };
}

/// Each server's latest availability entry before $3 and its latest
/// refusal entry (parked or resumed), and any others at those instants.
/// The latest instants first (materialized), then a parameterized seek per
/// server (OFFSET 0 keeps the LATERAL subquery from being flattened into a
/// hash join over the whole history table). The ORDER BY follows the index,
/// so the backward scan stops at the first entry that matches.
macro_rules! before {
    ($one:literal) => {
        concat!(
            "WITH latest AS MATERIALIZED (
                 SELECT s.slc, s.server_id, (
                     SELECT b.at FROM history b
                     WHERE b.slc = s.slc AND b.at < $3 AND b.server_id = s.server_id
                       AND b.kind IN ",
            availability_kinds!(),
            " ORDER BY b.at DESC LIMIT 1) AS at, (
                     SELECT r.at FROM history r
                     WHERE r.slc = s.slc AND r.server_id = s.server_id AND r.at < $3
                       AND r.kind IN ",
            refusal_kinds!(),
            " ORDER BY r.at DESC LIMIT 1) AS refused_at
                 FROM installations i JOIN servers s ON s.slc = i.slc
                 WHERE i.reseller_id = $1",
            $one,
            ") SELECT ",
            entry_columns!(),
            " FROM latest l CROSS JOIN LATERAL (
                 SELECT * FROM history h
                 WHERE h.slc = l.slc AND h.at IN (l.at, l.refused_at)
                   AND h.server_id = l.server_id
                   AND h.kind IN ",
            kinds!(),
            " OFFSET 0) h"
        )
    };
}

/// The statements for every installation (`$2` unused: NULL) and for one.
struct Statements {
    installations: &'static str,
    servers: &'static str,
    within: &'static str,
    before: &'static str,
}

const ALL: Statements = Statements {
    installations: installations!(" AND $2::text IS NULL"),
    servers: servers!(" AND $2::text IS NULL"),
    within: within!(" AND $2::text IS NULL"),
    before: before!(" AND $2::text IS NULL"),
};

const ONE: Statements = Statements {
    installations: installations!(" AND slc = $2"),
    servers: servers!(" AND i.slc = $2"),
    within: within!(" AND i.slc = $2"),
    before: before!(" AND i.slc = $2"),
};

pub(crate) async fn uptime_histories(
    c: &mut PgConnection,
    reseller: &ResellerId,
    only: Option<&Slc>,
    period: Period,
) -> DbResult<Vec<InstallationHistory>> {
    // The planner's cost for 30,000 per-server probes passes jit_above_cost,
    // and compiling the plan took longer (about 260 ms) than the probes do.
    // For this transaction only.
    query("SET LOCAL jit = off").execute(&mut *c).await?;
    let sql = if only.is_some() { &ONE } else { &ALL };
    let only = only.map(Slc::as_str);
    let (start, end) = (period.start().as_millis(), period.end().as_millis());

    let rows = query(sql.installations)
        .bind(reseller.as_str())
        .bind(only)
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let text: String = col(row, 0)?;
        out.push(InstallationHistory {
            slc: codec::slc(&text)?,
            labels: labels(row, 1)?,
            servers: Vec::new(),
            history: Vec::new(),
        });
        index.insert(text, out.len() - 1);
    }
    if out.is_empty() {
        return Ok(out);
    }

    let rows = query(sql.servers)
        .bind(reseller.as_str())
        .bind(only)
        .fetch_all(&mut *c)
        .await?;
    for row in &rows {
        let Some(&i) = index.get(&col::<String>(row, 0)?) else {
            continue;
        };
        out[i].servers.push(MonitoredServer {
            server: codec::server_id(&col::<String>(row, 1)?)?,
            first_seen_at: ts(col(row, 2)?),
        });
    }

    let within = query(sql.within)
        .bind(reseller.as_str())
        .bind(only)
        .bind(start)
        .bind(end)
        .fetch_all(&mut *c)
        .await?;
    let before = query(sql.before)
        .bind(reseller.as_str())
        .bind(only)
        .bind(start)
        .fetch_all(&mut *c)
        .await?;
    for row in within.iter().chain(&before) {
        let Some(&i) = index.get(&col::<String>(row, 7)?) else {
            continue;
        };
        out[i].history.extend(history::event(row)?);
    }
    Ok(out)
}
