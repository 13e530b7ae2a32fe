//! Moving an installation to another reseller (see
//! `Store::transfer_installation`).

use carewatch_core::feed::Change;
use carewatch_core::installation::Installation;
use carewatch_core::labels::UNLABELED_ORDER_KEY;
use carewatch_core::store::Transfer;
use carewatch_core::store::rules::check_transfer;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::{admin, feed};
use crate::codec::map_err;

pub(crate) fn transfer_installation(tx: &Connection, t: &Transfer) -> Result<Installation> {
    let slc = t.slc.as_str();
    let before =
        admin::installation(tx, &t.slc)?.ok_or_else(|| Error::installation_not_found(&t.slc))?;
    check_transfer(&before, &t.to)?;
    let reseller_exists = tx
        .query_row(
            "SELECT 1 FROM resellers WHERE id = ?1",
            [t.to.as_str()],
            |_| Ok(()),
        )
        .optional()
        .map_err(map_err)?;
    if reseller_exists.is_none() {
        return Err(Error::NotFound {
            what: format!("reseller {}", t.to),
        });
    }
    // The old reseller's last event of it, then the new one's first.
    feed::append_to(tx, &t.slc, Some(&before.reseller), t.at, &Change::Removed)?;
    feed::append(tx, &t.slc, t.at, &Change::Registered)?;
    tx.execute(
        "UPDATE installations SET reseller_id = ?2,
             customer_name = '', site_name = '', notes = '', tags = '', search_text = NULL,
             customer_order = ?5, site_order = ?5,
             history_from = CASE WHEN ?3 THEN history_from ELSE ?4 END
         WHERE slc = ?1",
        params![
            slc,
            t.to.as_str(),
            t.share_history,
            t.at.as_millis(),
            UNLABELED_ORDER_KEY
        ],
    )
    .map_err(map_err)?;
    // What the old reseller had set up for it goes with it.
    tx.execute(
        "DELETE FROM maintenance_windows WHERE reseller_id = ?1 AND slc = ?2",
        params![before.reseller.as_str(), slc],
    )
    .map_err(map_err)?;
    tx.execute("DELETE FROM notification_states WHERE slc = ?1", [slc])
        .map_err(map_err)?;
    // Its notifications too, told or not: they name it, its health and
    // labels, and the old reseller must find it nowhere.
    tx.execute(
        "DELETE FROM outbox WHERE slc = ?1 AND reseller_id = ?2",
        params![slc, before.reseller.as_str()],
    )
    .map_err(map_err)?;
    admin::installation(tx, &t.slc)?.ok_or_else(|| Error::installation_not_found(&t.slc))
}
