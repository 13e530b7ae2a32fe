//! Resellers, operators, installations and their keys.

use carewatch_core::auth::TokenHash;
use carewatch_core::feed::{self, Change};
use carewatch_core::health::HealthSummary;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::Installation;
use carewatch_core::labels::{LabelOrder, Labels};
use carewatch_core::notification::maintenance;
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{InstallationUpdate, Reseller, StoredKey};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::maintenance::held_unsent;
use crate::codec::{
    self, RowExt, installation_columns, is_foreign_key_violation, is_unique_violation, map_err, ts,
};

pub(crate) fn create_reseller(tx: &Connection, r: &Reseller, token: &TokenHash) -> Result<()> {
    tx.execute(
        "INSERT INTO resellers (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            r.id.as_str(),
            r.name,
            &token.as_bytes()[..],
            r.created_at.as_millis()
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: format!("reseller {}", r.id),
            }
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

pub(crate) fn set_reseller_token(
    tx: &Connection,
    id: &ResellerId,
    token: &TokenHash,
) -> Result<()> {
    let changed = tx
        .execute(
            "UPDATE resellers SET token_hash = ?2 WHERE id = ?1",
            params![id.as_str(), &token.as_bytes()[..]],
        )
        .map_err(map_err)?;
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("reseller {id}"),
        });
    }
    Ok(())
}

pub(crate) fn reseller_token(tx: &Connection, id: &ResellerId) -> Result<Option<TokenHash>> {
    let stored: Option<Vec<u8>> = tx
        .query_row(
            "SELECT token_hash FROM resellers WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    stored.map(|bytes| codec::token_hash(&bytes)).transpose()
}

pub(crate) fn resellers(tx: &Connection) -> Result<Vec<Reseller>> {
    let mut stmt = tx
        .prepare_cached("SELECT id, name, created_at FROM resellers ORDER BY id")
        .map_err(map_err)?;
    let mut rows = stmt.query([]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(Reseller {
            id: codec::reseller_id(&row.col::<String>(0)?)?,
            name: row.col(1)?,
            created_at: ts(row.col(2)?),
        });
    }
    Ok(out)
}

pub(crate) fn set_operator_token(
    tx: &Connection,
    name: &ResellerId,
    token: &TokenHash,
) -> Result<()> {
    tx.execute(
        "INSERT INTO operators (name, token_hash) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
        params![name.as_str(), &token.as_bytes()[..]],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn operator_token(tx: &Connection, name: &ResellerId) -> Result<Option<TokenHash>> {
    let stored: Option<Vec<u8>> = tx
        .query_row(
            "SELECT token_hash FROM operators WHERE name = ?1",
            [name.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    stored.map(|bytes| codec::token_hash(&bytes)).transpose()
}

pub(crate) fn add_first_operator(
    tx: &Connection,
    name: &ResellerId,
    token: &TokenHash,
) -> Result<bool> {
    let added = tx
        .execute(
            "INSERT INTO operators (name, token_hash)
             SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM operators)
             ON CONFLICT (name) DO NOTHING",
            params![name.as_str(), &token.as_bytes()[..]],
        )
        .map_err(map_err)?;
    Ok(added == 1)
}

pub(crate) fn has_operator(tx: &Connection) -> Result<bool> {
    tx.query_row("SELECT EXISTS (SELECT 1 FROM operators)", [], |r| r.get(0))
        .map_err(map_err)
}

pub(crate) fn register_installation(tx: &Connection, i: &Installation) -> Result<()> {
    let pending = HealthSummary::pending();
    tx.execute(
        "INSERT INTO installations (slc, reseller_id, product, product_version, subscription_expires_at, consent,
             registered_at, health, worst_code, servers, unavailable, late, active_conditions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 0, 0, 0, 0)",
        params![
            i.slc.as_str(),
            i.reseller.as_str(),
            i.product.name(),
            i.product.version(),
            i.subscription_expires_at.map(Timestamp::as_millis),
            i.consent,
            i.registered_at.as_millis(),
            pending.health.rank(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists { what: format!("installation {}", i.slc) }
        } else if is_foreign_key_violation(&e) {
            Error::NotFound { what: format!("reseller {}", i.reseller) }
        } else {
            map_err(e)
        }
    })?;
    super::feed::append(tx, &i.slc, i.registered_at, &Change::Registered)
}

pub(crate) fn installation(tx: &Connection, slc: &Slc) -> Result<Option<Installation>> {
    let mut stmt = tx
        .prepare_cached(concat!(
            "SELECT ",
            installation_columns!(),
            " FROM installations WHERE slc = ?1"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
    rows.next()
        .map_err(map_err)?
        .map(|row| codec::installation(row, 0))
        .transpose()
}

pub(crate) fn update_installation(
    tx: &Connection,
    slc: &Slc,
    update: &InstallationUpdate,
    at: Timestamp,
) -> Result<Installation> {
    let changed = match update {
        InstallationUpdate::Subscription(until) => tx.execute(
            "UPDATE installations SET subscription_expires_at = ?2 WHERE slc = ?1",
            params![slc.as_str(), until.map(Timestamp::as_millis)],
        ),
        // Withdrawing starts the retention of its data (kept from the first
        // withdrawal); accepting again ends it.
        InstallationUpdate::Consent(accepted) => tx.execute(
            "UPDATE installations SET consent = ?2,
                 consent_withdrawn_at = CASE WHEN ?2 THEN NULL ELSE coalesce(consent_withdrawn_at, ?3) END,
                 data_deleted_at = CASE WHEN ?2 THEN NULL ELSE data_deleted_at END
             WHERE slc = ?1",
            params![slc.as_str(), accepted, at.as_millis()],
        ),
        InstallationUpdate::Product(p) => tx.execute(
            "UPDATE installations SET product = ?2, product_version = ?3 WHERE slc = ?1",
            params![slc.as_str(), p.name(), p.version()],
        ),
    }
    .map_err(map_err)?;
    if changed == 0 {
        return Err(Error::installation_not_found(slc));
    }
    if let Some(change) = feed::installation_change(update) {
        super::feed::append(tx, slc, at, &change)?;
    }
    // The update does not touch parked_at: what the service change read
    // is how it stood before.
    let changed = super::lifecycle::apply_service_change(tx, slc, at)?;
    if let Some(change) =
        feed::expiry_owed(update, changed.parked_before, &changed.installation, at)
    {
        super::feed::append(tx, slc, at, &change)?;
    }
    if maintenance::gives_up_held_notices(update, &changed.installation, at) {
        tx.execute(
            concat!(
                "UPDATE outbox SET failed_at = ?2, last_error = ?3, held_until = NULL
                 WHERE slc = ?1 AND ",
                held_unsent!()
            ),
            params![
                slc.as_str(),
                at.as_millis(),
                maintenance::RENEWED_WHILE_HELD
            ],
        )
        .map_err(map_err)?;
    }
    Ok(changed.installation)
}

pub(crate) fn set_labels(
    tx: &Connection,
    reseller: &ResellerId,
    slc: &Slc,
    labels: &Labels,
    at: Timestamp,
) -> Result<()> {
    let search = (!labels.is_empty()).then(|| labels.search_text(slc));
    let changed = tx
        .execute(
            "UPDATE installations
             SET customer_name = ?3, site_name = ?4, notes = ?5, tags = ?6, search_text = ?7,
                 customer_order = ?8, site_order = ?9
             WHERE slc = ?1 AND reseller_id = ?2",
            params![
                slc.as_str(),
                reseller.as_str(),
                labels.customer(),
                labels.site(),
                labels.notes(),
                labels.encode_tags(),
                search,
                labels.order_key(LabelOrder::Customer),
                labels.order_key(LabelOrder::Site),
            ],
        )
        .map_err(map_err)?;
    // Another reseller's installation is as missing as one never registered.
    if changed == 0 {
        return Err(Error::installation_not_found(slc));
    }
    super::feed::append(tx, slc, at, &Change::Labels)
}

pub(crate) fn add_installation_key(
    tx: &Connection,
    slc: &Slc,
    key: &WrappedKey,
    at: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO installation_keys (slc, key_id, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![slc.as_str(), key.id.get(), key.sealed, at.as_millis()],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: format!("key {} of installation {slc}", key.id),
            }
        } else if is_foreign_key_violation(&e) {
            Error::installation_not_found(slc)
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

pub(crate) fn installation_keys(tx: &Connection, slc: &Slc) -> Result<Vec<StoredKey>> {
    let mut stmt = tx
        .prepare_cached("SELECT key_id, sealed, created_at, retired_at FROM installation_keys WHERE slc = ?1 ORDER BY key_id")
        .map_err(map_err)?;
    let mut rows = stmt.query([slc.as_str()]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(StoredKey {
            wrapped: WrappedKey {
                id: KeyId::new(row.col(0)?),
                sealed: row.col(1)?,
            },
            created_at: ts(row.col(2)?),
            retired_at: row.col::<Option<i64>>(3)?.map(ts),
        });
    }
    Ok(out)
}

pub(crate) fn retire_installation_key(
    tx: &Connection,
    slc: &Slc,
    id: KeyId,
    at: Timestamp,
) -> Result<()> {
    let changed = tx
        .execute(
            "UPDATE installation_keys SET retired_at = COALESCE(retired_at, ?3) WHERE slc = ?1 AND key_id = ?2",
            params![slc.as_str(), id.get(), at.as_millis()],
        )
        .map_err(map_err)?;
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("key {id} of installation {slc}"),
        });
    }
    Ok(())
}
