//! Maintenance windows: a reseller's, muting an installation (or all of
//! them) once or recurring. Each function runs inside the one transaction
//! of its store call.

use carewatch_core::Error;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId, held_until};
use carewatch_core::store::limits;
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use super::notifications::{lock_reseller_for_bounded_insert, login, reseller_not_found};
use crate::codec::{self, col, duration, ms, ts};
use crate::errors::{DbResult, corrupt, on_insert};

fn window_id(text: &str) -> DbResult<WindowId> {
    Ok(WindowId::new(text).map_err(|e| corrupt("maintenance window id", e))?)
}

/// The columns a window is made with; [`window`] reads them and then
/// `deleted_at`.
macro_rules! window_columns {
    () => {
        "id, reseller_id, slc, starts_at, length_ms, every_ms, reason, created_by, created_at"
    };
}

fn window(row: &PgRow) -> DbResult<MaintenanceWindow> {
    Ok(MaintenanceWindow {
        id: window_id(&col::<String>(row, 0)?)?,
        reseller: codec::reseller_id(&col::<String>(row, 1)?)?,
        slc: col::<Option<String>>(row, 2)?
            .as_deref()
            .map(codec::slc)
            .transpose()?,
        starts_at: ts(col(row, 3)?),
        length: duration(col(row, 4)?),
        every: col::<Option<i64>>(row, 5)?.map(duration),
        reason: col(row, 6)?,
        created_by: login(&col::<String>(row, 7)?)?,
        created_at: ts(col(row, 8)?),
        deleted_at: col::<Option<i64>>(row, 9)?.map(ts),
    })
}

pub(crate) async fn create_maintenance(
    c: &mut PgConnection,
    w: &MaintenanceWindow,
) -> DbResult<()> {
    lock_reseller_for_bounded_insert(c, &w.reseller).await?;
    if let Some(slc) = &w.slc {
        // Shared until COMMIT: the installation cannot change hands meanwhile.
        let owner = query("SELECT reseller_id FROM installations WHERE slc = $1 FOR KEY SHARE")
            .bind(slc.as_str())
            .fetch_optional(&mut *c)
            .await?;
        let owner = owner.map(|row| col::<String>(&row, 0)).transpose()?;
        if owner.as_deref() != Some(w.reseller.as_str()) {
            return Err(Error::installation_not_found(slc).into());
        }
    }
    let existing =
        maintenance_windows(c, Some(&w.reseller), Some(limits::windows_counted_since(w))).await?;
    limits::room_for_window(w, &existing)?;
    query(concat!(
        "INSERT INTO maintenance_windows (",
        window_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(w.id.as_str())
    .bind(w.reseller.as_str())
    .bind(w.slc.as_ref().map(Slc::as_str))
    .bind(w.starts_at.as_millis())
    .bind(ms(w.length))
    .bind(w.every.map(ms))
    .bind(w.reason.as_str())
    .bind(w.created_by.as_str())
    .bind(w.created_at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || format!("maintenance window {}", w.id),
            || reseller_not_found(&w.reseller),
        )
    })?;
    // A told problem is looked at next when the first window known at its
    // last tick begins: this window must be known too.
    make_due(
        c,
        &w.reseller,
        w.slc.as_ref().map(Slc::as_str),
        w.created_at,
    )
    .await
}

/// Makes `reseller`'s notification states (of `slc`, or of all its
/// installations) due at `at` if they were due later or not at all: a
/// window made or deleted, or the installation's messages accepted again,
/// moves when they must next be looked at.
pub(crate) async fn make_due(
    c: &mut PgConnection,
    reseller: &ResellerId,
    slc: Option<&str>,
    at: Timestamp,
) -> DbResult<()> {
    // The notifier row first, as a step's commit locks it: the two
    // then take turns, and a step that read the states before this is not
    // written. The rows in key order, as the commit upserts them.
    super::notifications::nudge_notifier(c).await?;
    query(
        "UPDATE notification_states n SET due_at = $1
         FROM (SELECT channel_id, slc FROM notification_states
               WHERE (due_at IS NULL OR due_at > $1) AND ($3::text IS NULL OR slc = $3)
                   AND channel_id IN (SELECT id FROM channels WHERE reseller_id = $2)
               ORDER BY channel_id, slc FOR UPDATE) due
         WHERE n.channel_id = due.channel_id AND n.slc = due.slc",
    )
    .bind(at.as_millis())
    .bind(reseller.as_str())
    .bind(slc)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// `reseller`'s windows (every reseller's for `None`) not deleted; with
/// `deleted_since`, also those deleted after it that excluded something
/// (deleted after they were made and after they began): reports only.
pub(crate) async fn maintenance_windows(
    c: &mut PgConnection,
    reseller: Option<&ResellerId>,
    deleted_since: Option<Timestamp>,
) -> DbResult<Vec<MaintenanceWindow>> {
    let rows = query(concat!(
        "SELECT ",
        window_columns!(),
        ", deleted_at FROM maintenance_windows
         WHERE ($1::text IS NULL OR reseller_id = $1)
           AND (deleted_at IS NULL
                OR (deleted_at > $2 AND deleted_at > starts_at AND deleted_at > created_at))
         ORDER BY starts_at, id"
    ))
    .bind(reseller.map(ResellerId::as_str))
    .bind(deleted_since.map_or(i64::MAX, Timestamp::as_millis))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(window).collect()
}

pub(crate) async fn delete_maintenance(
    c: &mut PgConnection,
    reseller: &ResellerId,
    id: &WindowId,
    at: Timestamp,
) -> DbResult<()> {
    // Kept, marked deleted: it excluded time from reports until now.
    let deleted = query(
        "UPDATE maintenance_windows SET deleted_at = $3
         WHERE id = $1 AND reseller_id = $2 AND deleted_at IS NULL RETURNING slc",
    )
    .bind(id.as_str())
    .bind(reseller.as_str())
    .bind(at.as_millis())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = deleted else {
        return Err(Error::NotFound {
            what: format!("maintenance window {id}"),
        }
        .into());
    };
    // One deleted before it began (or was made) excluded nothing: no
    // report needs it.
    query(
        "DELETE FROM maintenance_windows
         WHERE id = $1 AND deleted_at <= greatest(starts_at, created_at)",
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await?;
    // What it muted was due at its end: due now, to be told or judged again.
    let slc = col::<Option<String>>(&row, 0)?;
    make_due(c, reseller, slc.as_deref(), at).await?;
    release_held(c, reseller, slc.as_deref(), at).await
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
async fn release_held(
    c: &mut PgConnection,
    reseller: &ResellerId,
    slc: Option<&str>,
    at: Timestamp,
) -> DbResult<()> {
    let held = query(concat!(
        "SELECT id, slc, created_at FROM outbox WHERE ",
        held_unsent!(),
        " AND reseller_id = $2 AND held_until > $1 AND ($3::text IS NULL OR slc = $3)
         ORDER BY id FOR NO KEY UPDATE"
    ))
    .bind(at.as_millis())
    .bind(reseller.as_str())
    .bind(slc)
    .fetch_all(&mut *c)
    .await?;
    if held.is_empty() {
        return Ok(());
    }
    let windows = maintenance_windows(c, Some(reseller), None).await?;
    let mut ids = Vec::with_capacity(held.len());
    let mut nexts = Vec::with_capacity(held.len());
    let mut untils = Vec::with_capacity(held.len());
    for row in &held {
        let id: i64 = col(row, 0)?;
        let slc: Option<String> = col(row, 1)?;
        let created_at = ts(col(row, 2)?);
        let until = match slc {
            Some(slc) => held_until(&windows, &codec::slc(&slc)?, created_at, at),
            None => None,
        };
        ids.push(id);
        nexts.push(until.unwrap_or(at).as_millis());
        untils.push(until.map(Timestamp::as_millis));
    }
    query(
        "UPDATE outbox o SET next_attempt_at = h.next_attempt_at, held_until = h.held_until
         FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])
             AS h (id, next_attempt_at, held_until)
         WHERE o.id = h.id",
    )
    .bind(ids)
    .bind(nexts)
    .bind(untils)
    .execute(&mut *c)
    .await?;
    Ok(())
}
