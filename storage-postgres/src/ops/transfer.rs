//! Moving an installation to another reseller (see
//! `Store::transfer_installation`).

use carewatch_core::Error;
use carewatch_core::feed::Change;
use carewatch_core::installation::Installation;
use carewatch_core::labels::UNLABELED_ORDER_KEY;
use carewatch_core::store::Transfer;
use carewatch_core::store::rules::check_transfer;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::{admin, feed};
use crate::errors::DbResult;

pub(crate) async fn transfer_installation(
    c: &mut PgConnection,
    t: &Transfer,
) -> DbResult<Installation> {
    let slc = t.slc.as_str();
    // The row first: a concurrent transfer or update waits for this one.
    query("SELECT 1 FROM installations WHERE slc = $1 FOR UPDATE")
        .bind(slc)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| Error::installation_not_found(&t.slc))?;
    let before = admin::installation(c, &t.slc)
        .await?
        .ok_or_else(|| Error::installation_not_found(&t.slc))?;
    check_transfer(&before, &t.to)?;
    query("SELECT 1 FROM resellers WHERE id = $1 FOR KEY SHARE")
        .bind(t.to.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: format!("reseller {}", t.to),
        })?;
    // The old reseller's last event of it, then the new one's first.
    feed::append_to(c, &t.slc, Some(&before.reseller), t.at, &Change::Removed).await?;
    feed::append(c, &t.slc, t.at, &Change::Registered).await?;
    query(
        "UPDATE installations SET reseller_id = $2,
             customer_name = '', site_name = '', notes = '', tags = '', search_text = NULL,
             customer_order = $5, site_order = $5,
             history_from = CASE WHEN $3 THEN history_from ELSE $4 END
         WHERE slc = $1",
    )
    .bind(slc)
    .bind(t.to.as_str())
    .bind(t.share_history)
    .bind(t.at.as_millis())
    .bind(UNLABELED_ORDER_KEY)
    .execute(&mut *c)
    .await?;
    // What the old reseller had set up for it goes with it.
    query("DELETE FROM maintenance_windows WHERE reseller_id = $1 AND slc = $2")
        .bind(before.reseller.as_str())
        .bind(slc)
        .execute(&mut *c)
        .await?;
    query("DELETE FROM notification_states WHERE slc = $1")
        .bind(slc)
        .execute(&mut *c)
        .await?;
    // Its notifications too, told or not: they name it, its health and
    // labels, and the old reseller must find it nowhere.
    query("DELETE FROM outbox WHERE slc = $1 AND reseller_id = $2")
        .bind(slc)
        .bind(before.reseller.as_str())
        .execute(&mut *c)
        .await?;
    admin::installation(c, &t.slc)
        .await?
        .ok_or_else(|| Error::installation_not_found(&t.slc).into())
}
