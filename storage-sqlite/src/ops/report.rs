//! What an uptime report reads (issue 18): a reseller's installations, their
//! recording servers and the availability entries of their history over a
//! period, in one read transaction.
//!
//! The history is read through `history_recent (slc, at DESC, id DESC)`:
//! - the period's entries: one range of the index per installation;
//! - each server's state when the period begins: its latest availability
//!   entry before the start, a backward scan of the installation's range
//!   that stops at the first one (a few entries back for a server with an
//!   outage now and then), and its latest parked or resumed entry (a probe
//!   of the partial index `history_refusals`), then the entries at those
//!   instants (a seek).

use std::collections::HashMap;

use carewatch_core::Result;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::report::{InstallationHistory, MonitoredServer, Period};
use rusqlite::{Connection, params};

use super::history::{self, HISTORY_COLUMNS};
use super::reads::labels;
use crate::codec::{self, RowExt, map_err, ts};

/// The kinds that say whether a server is available or retired
/// (`HistoryColumns::kind`).
macro_rules! availability_kinds {
    () => {
        "'became_unavailable', 'recovered', 'decommissioned', 'recommissioned'"
    };
}

/// The kinds that say whether its messages are refused: the predicate of
/// the partial index `history_refusals`, so a server never parked costs
/// one probe of an empty range.
macro_rules! refusal_kinds {
    () => {
        "'parked', 'resumed'"
    };
}

const AVAILABILITY_KINDS: &str = concat!("(", availability_kinds!(), ")");
const REFUSAL_KINDS: &str = concat!("(", refusal_kinds!(), ")");
/// The history kinds a report reads: both.
const KINDS: &str = concat!("(", availability_kinds!(), ", ", refusal_kinds!(), ")");

pub(crate) fn uptime_histories(
    tx: &Connection,
    reseller: &ResellerId,
    only: Option<&Slc>,
    period: Period,
) -> Result<Vec<InstallationHistory>> {
    // Every installation of the reseller, or one (by its primary key).
    let one = if only.is_some() {
        "i.slc = ?2"
    } else {
        "?2 IS NULL"
    };
    let only = only.map(Slc::as_str);
    let (start, end) = (period.start().as_millis(), period.end().as_millis());

    let mut out = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT slc, customer_name, site_name, notes, tags FROM installations i
                 WHERE reseller_id = ?1 AND {one}"
            ))
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![reseller.as_str(), only])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let text: String = row.col(0)?;
            index.insert(text.clone(), out.len());
            out.push(InstallationHistory {
                slc: codec::slc(&text)?,
                labels: labels(row, 1)?,
                servers: Vec::new(),
                history: Vec::new(),
            });
        }
    }
    if out.is_empty() {
        return Ok(out);
    }
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT s.slc, s.server_id, max(s.first_seen_at, coalesce(i.history_from, 0))
                 FROM installations i JOIN servers s ON s.slc = i.slc
                 WHERE i.reseller_id = ?1 AND {one}"
            ))
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![reseller.as_str(), only])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let Some(&i) = index.get(&row.col::<String>(0)?) else {
                continue;
            };
            out[i].servers.push(MonitoredServer {
                server: codec::server_id(&row.col::<String>(1)?)?,
                first_seen_at: ts(row.col(2)?),
            });
        }
    }
    // The entries in the period, then each server's latest before it (and
    // any others at that instant). Columns as history::event, then slc.
    let within = format!(
        "SELECT {columns}, h.slc
         FROM installations i JOIN history h ON h.slc = i.slc
         WHERE i.reseller_id = ?1 AND {one}
           AND h.at >= ?3 AND h.at < ?4 AND h.kind IN {KINDS}",
        columns = prefixed("h", HISTORY_COLUMNS),
    );
    // Materialized first, then joined (CROSS JOIN keeps that order): one
    // backward scan per server, then a seek by (slc, at). Joined directly,
    // SQLite read each installation's whole history and ran the scan for
    // every entry.
    let before = format!(
        "WITH latest AS MATERIALIZED (
             SELECT s.slc, s.server_id, (
                 SELECT b.at FROM history b
                 WHERE b.slc = s.slc AND b.at < ?3 AND b.server_id = s.server_id
                   AND b.kind IN {AVAILABILITY_KINDS}
                 ORDER BY b.at DESC LIMIT 1) AS at, (
                 SELECT r.at FROM history r
                 WHERE r.slc = s.slc AND r.server_id = s.server_id AND r.at < ?3
                   AND r.kind IN {REFUSAL_KINDS}
                 ORDER BY r.at DESC LIMIT 1) AS refused_at
             FROM installations i JOIN servers s ON s.slc = i.slc
             WHERE i.reseller_id = ?1 AND {one})
         SELECT {columns}, h.slc
         FROM latest l CROSS JOIN history h ON h.slc = l.slc AND h.at IN (l.at, l.refused_at)
         WHERE h.server_id = l.server_id AND h.kind IN {KINDS}",
        columns = prefixed("h", HISTORY_COLUMNS),
    );
    for (sql, args) in [
        (within, params![reseller.as_str(), only, start, end]),
        (before, params![reseller.as_str(), only, start]),
    ] {
        let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
        let mut rows = stmt.query(args).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let Some(&i) = index.get(&row.col::<String>(7)?) else {
                continue;
            };
            out[i].history.extend(history::event(row)?);
        }
    }
    Ok(out)
}

/// `a, b` as `t.a, t.b`.
fn prefixed(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
