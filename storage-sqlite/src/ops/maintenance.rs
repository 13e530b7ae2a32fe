//! Maintenance windows: a reseller's, muting an installation (or all of
//! them) once or recurring. Each function runs inside the one transaction
//! of its store call.

use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId, held_until};
use carewatch_core::store::limits;
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::notifications::{login, reseller_not_found};
use crate::codec::{
    self, RowExt, corrupt, duration, is_foreign_key_violation, is_unique_violation, map_err, ms, ts,
};

fn window_id(text: &str) -> Result<WindowId> {
    WindowId::new(text).map_err(|e| corrupt("maintenance window id", e))
}

/// The columns a window is made with; [`window`] reads them and then
/// `deleted_at`.
const WINDOW_COLUMNS: &str =
    "id, reseller_id, slc, starts_at, length_ms, every_ms, reason, created_by, created_at";

fn window(row: &Row<'_>) -> Result<MaintenanceWindow> {
    Ok(MaintenanceWindow {
        id: window_id(&row.col::<String>(0)?)?,
        reseller: codec::reseller_id(&row.col::<String>(1)?)?,
        slc: row
            .col::<Option<String>>(2)?
            .as_deref()
            .map(codec::slc)
            .transpose()?,
        starts_at: ts(row.col(3)?),
        length: duration(row.col(4)?),
        every: row.col::<Option<i64>>(5)?.map(duration),
        reason: row.col(6)?,
        created_by: login(&row.col::<String>(7)?)?,
        created_at: ts(row.col(8)?),
        deleted_at: row.col::<Option<i64>>(9)?.map(ts),
    })
}

pub(crate) fn create_maintenance(tx: &Connection, w: &MaintenanceWindow) -> Result<()> {
    if let Some(slc) = &w.slc {
        let owner: Option<String> = tx
            .query_row(
                "SELECT reseller_id FROM installations WHERE slc = ?1",
                [slc.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_err)?;
        if owner.as_deref() != Some(w.reseller.as_str()) {
            return Err(Error::installation_not_found(slc));
        }
    }
    // Writes take turns on SQLite: the windows cannot change before the insert.
    let existing = maintenance_windows(
        tx,
        Some(&w.reseller),
        Some(limits::windows_counted_since(w)),
    )?;
    limits::room_for_window(w, &existing)?;
    tx.execute(
        &format!(
            "INSERT INTO maintenance_windows ({WINDOW_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            w.id.as_str(),
            w.reseller.as_str(),
            w.slc.as_ref().map(Slc::as_str),
            w.starts_at.as_millis(),
            ms(w.length),
            w.every.map(ms),
            w.reason,
            w.created_by.as_str(),
            w.created_at.as_millis(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: format!("maintenance window {}", w.id),
            }
        } else if is_foreign_key_violation(&e) {
            reseller_not_found(&w.reseller)
        } else {
            map_err(e)
        }
    })?;
    // A told problem is looked at next when the first window known at its
    // last tick begins: this window must be known too.
    make_due(
        tx,
        &w.reseller,
        w.slc.as_ref().map(Slc::as_str),
        w.created_at,
    )
}

/// Makes `reseller`'s notification states (of `slc`, or of all its
/// installations) due at `at` if they were due later or not at all: a
/// window made or deleted, or the installation's messages accepted again,
/// moves when they must next be looked at.
pub(crate) fn make_due(
    tx: &Connection,
    reseller: &ResellerId,
    slc: Option<&str>,
    at: Timestamp,
) -> Result<()> {
    super::notifications::nudge_notifier(tx)?;
    tx.execute(
        "UPDATE notification_states SET due_at = ?1
         WHERE (due_at IS NULL OR due_at > ?1) AND (?3 IS NULL OR slc = ?3)
             AND channel_id IN (SELECT id FROM channels WHERE reseller_id = ?2)",
        params![at.as_millis(), reseller.as_str(), slc],
    )
    .map_err(map_err)?;
    Ok(())
}

/// `reseller`'s windows (every reseller's for `None`) not deleted; with
/// `deleted_since`, also those deleted after it that excluded something
/// (deleted after they were made and after they began): reports only.
pub(crate) fn maintenance_windows(
    tx: &Connection,
    reseller: Option<&ResellerId>,
    deleted_since: Option<Timestamp>,
) -> Result<Vec<MaintenanceWindow>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {WINDOW_COLUMNS}, deleted_at FROM maintenance_windows
             WHERE (?1 IS NULL OR reseller_id = ?1)
               AND (deleted_at IS NULL
                    OR (deleted_at > ?2 AND deleted_at > starts_at AND deleted_at > created_at))
             ORDER BY starts_at, id"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![
            reseller.map(ResellerId::as_str),
            deleted_since.map_or(i64::MAX, Timestamp::as_millis)
        ])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(window(row)?);
    }
    Ok(out)
}

pub(crate) fn delete_maintenance(
    tx: &Connection,
    reseller: &ResellerId,
    id: &WindowId,
    at: Timestamp,
) -> Result<()> {
    // Kept, marked deleted: it excluded time from reports until now.
    let deleted: Option<Option<String>> = tx
        .query_row(
            "UPDATE maintenance_windows SET deleted_at = ?3
             WHERE id = ?1 AND reseller_id = ?2 AND deleted_at IS NULL RETURNING slc",
            params![id.as_str(), reseller.as_str(), at.as_millis()],
            |row| row.get(0),
        )
        .optional()
        .map_err(map_err)?;
    let Some(slc) = deleted else {
        return Err(Error::NotFound {
            what: format!("maintenance window {id}"),
        });
    };
    // One deleted before it began (or was made) excluded nothing: no
    // report needs it.
    tx.execute(
        "DELETE FROM maintenance_windows WHERE id = ?1 AND deleted_at <= max(starts_at, created_at)",
        [id.as_str()],
    )
    .map_err(map_err)?;
    // What it muted was due at its end: due now, to be told or judged again.
    make_due(tx, reseller, slc.as_deref(), at)?;
    release_held(tx, reseller, slc.as_deref(), at)
}

/// The outbox entries held until maintenance ends and never tried
/// (`NewOutboxEntry::held`): what a window's deletion moves and a renewal
/// gives up (the partial index `outbox_held` covers the first three).
macro_rules! held_unsent {
    () => {
        "held_until IS NOT NULL AND delivered_at IS NULL AND failed_at IS NULL
         AND attempts = 0 AND claimed_by IS NULL"
    };
}
pub(crate) use held_unsent;

/// Moves `reseller`'s entries held for maintenance (`held_until`) about
/// `slc` (all for `None`) to the end of the maintenance still holding them
/// once a window is deleted at `at` (`maintenance::held_until`), or to
/// `at` if none is.
fn release_held(
    tx: &Connection,
    reseller: &ResellerId,
    slc: Option<&str>,
    at: Timestamp,
) -> Result<()> {
    let held: Vec<(i64, Option<String>, i64)> = {
        let mut stmt = tx
            .prepare_cached(concat!(
                "SELECT id, slc, created_at FROM outbox WHERE ",
                held_unsent!(),
                " AND reseller_id = ?2 AND held_until > ?1 AND (?3 IS NULL OR slc = ?3)"
            ))
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![at.as_millis(), reseller.as_str(), slc], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(map_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(map_err)?
    };
    if held.is_empty() {
        return Ok(());
    }
    let windows = maintenance_windows(tx, Some(reseller), None)?;
    let mut update = tx
        .prepare_cached("UPDATE outbox SET next_attempt_at = ?2, held_until = ?3 WHERE id = ?1")
        .map_err(map_err)?;
    for (id, slc, created_at) in held {
        let until = match slc {
            Some(slc) => held_until(&windows, &codec::slc(&slc)?, ts(created_at), at),
            None => None,
        };
        update
            .execute(params![
                id,
                until.unwrap_or(at).as_millis(),
                until.map(Timestamp::as_millis)
            ])
            .map_err(map_err)?;
    }
    Ok(())
}
