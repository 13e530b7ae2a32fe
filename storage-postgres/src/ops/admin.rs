//! Resellers, operators, installations and their keys.

use carewatch_core::Error;
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
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::maintenance::held_unsent;
use crate::codec::{self, col, installation_columns, rank, ts};
use crate::errors::{DbResult, on_insert};

pub(crate) async fn create_reseller(
    c: &mut PgConnection,
    r: &Reseller,
    token: &TokenHash,
) -> DbResult<()> {
    query("INSERT INTO resellers (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(r.id.as_str())
        .bind(r.name.as_str())
        .bind(&token.as_bytes()[..])
        .bind(r.created_at.as_millis())
        .execute(&mut *c)
        .await
        .map_err(|e| {
            on_insert(
                e,
                || format!("reseller {}", r.id),
                || Error::NotFound {
                    what: format!("reseller {}", r.id),
                },
            )
        })?;
    Ok(())
}

pub(crate) async fn set_reseller_token(
    c: &mut PgConnection,
    id: &ResellerId,
    token: &TokenHash,
) -> DbResult<()> {
    let changed = query("UPDATE resellers SET token_hash = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(&token.as_bytes()[..])
        .execute(&mut *c)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("reseller {id}"),
        }
        .into());
    }
    Ok(())
}

pub(crate) async fn reseller_token(
    c: &mut PgConnection,
    id: &ResellerId,
) -> DbResult<Option<TokenHash>> {
    let row = query("SELECT token_hash FROM resellers WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?;
    match row {
        Some(row) => Ok(Some(codec::token_hash(&col::<Vec<u8>>(&row, 0)?)?)),
        None => Ok(None),
    }
}

pub(crate) async fn resellers(c: &mut PgConnection) -> DbResult<Vec<Reseller>> {
    let rows = query("SELECT id, name, created_at FROM resellers ORDER BY id")
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Reseller {
                id: codec::reseller_id(&col::<String>(row, 0)?)?,
                name: col(row, 1)?,
                created_at: ts(col(row, 2)?),
            })
        })
        .collect()
}

pub(crate) async fn set_operator_token(
    c: &mut PgConnection,
    name: &ResellerId,
    token: &TokenHash,
) -> DbResult<()> {
    query(
        "INSERT INTO operators (name, token_hash) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
    )
    .bind(name.as_str())
    .bind(&token.as_bytes()[..])
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(crate) async fn operator_token(
    c: &mut PgConnection,
    name: &ResellerId,
) -> DbResult<Option<TokenHash>> {
    let row = query("SELECT token_hash FROM operators WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *c)
        .await?;
    match row {
        Some(row) => Ok(Some(codec::token_hash(&col::<Vec<u8>>(&row, 0)?)?)),
        None => Ok(None),
    }
}

pub(crate) async fn add_first_operator(
    c: &mut PgConnection,
    name: &ResellerId,
    token: &TokenHash,
) -> DbResult<bool> {
    // Two nodes inserting at once: the second waits for the first's
    // commit on the name, then inserts nothing.
    let added = query(
        "INSERT INTO operators (name, token_hash)
         SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM operators)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name.as_str())
    .bind(&token.as_bytes()[..])
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(added == 1)
}

pub(crate) async fn has_operator(c: &mut PgConnection) -> DbResult<bool> {
    let row = query("SELECT EXISTS (SELECT 1 FROM operators)")
        .fetch_one(&mut *c)
        .await?;
    col(&row, 0)
}

pub(crate) async fn register_installation(c: &mut PgConnection, i: &Installation) -> DbResult<()> {
    let pending = HealthSummary::pending();
    query(
        "INSERT INTO installations (slc, reseller_id, product, product_version, subscription_expires_at, consent,
             registered_at, health, worst_code, servers, unavailable, late, active_conditions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, 0, 0, 0)",
    )
    .bind(i.slc.as_str())
    .bind(i.reseller.as_str())
    .bind(i.product.name())
    .bind(i.product.version())
    .bind(i.subscription_expires_at.map(Timestamp::as_millis))
    .bind(i.consent)
    .bind(i.registered_at.as_millis())
    .bind(rank(pending.health))
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || format!("installation {}", i.slc),
            || Error::NotFound { what: format!("reseller {}", i.reseller) },
        )
    })?;
    super::feed::append(c, &i.slc, i.registered_at, &Change::Registered).await
}

pub(crate) async fn installation(
    c: &mut PgConnection,
    slc: &Slc,
) -> DbResult<Option<Installation>> {
    let row = query(concat!(
        "SELECT ",
        installation_columns!(),
        " FROM installations WHERE slc = $1"
    ))
    .bind(slc.as_str())
    .fetch_optional(&mut *c)
    .await?;
    row.map(|row| codec::installation(&row, 0)).transpose()
}

pub(crate) async fn update_installation(
    c: &mut PgConnection,
    slc: &Slc,
    update: &InstallationUpdate,
    at: Timestamp,
) -> DbResult<Installation> {
    // Its servers before its row: the service change below writes both.
    super::lifecycle::lock_installation_servers(c, slc).await?;
    let changed = match update {
        InstallationUpdate::Subscription(until) => {
            query("UPDATE installations SET subscription_expires_at = $2 WHERE slc = $1")
                .bind(slc.as_str())
                .bind(until.map(Timestamp::as_millis))
                .execute(&mut *c)
                .await?
        }
        // Withdrawing starts the retention of its data (kept from the first
        // withdrawal); accepting again ends it.
        InstallationUpdate::Consent(accepted) => {
            query(
                "UPDATE installations SET consent = $2,
                     consent_withdrawn_at = CASE WHEN $2 THEN NULL ELSE coalesce(consent_withdrawn_at, $3) END,
                     data_deleted_at = CASE WHEN $2 THEN NULL ELSE data_deleted_at END
                 WHERE slc = $1",
            )
            .bind(slc.as_str())
            .bind(*accepted)
            .bind(at.as_millis())
            .execute(&mut *c)
            .await?
        }
        InstallationUpdate::Product(p) => {
            query("UPDATE installations SET product = $2, product_version = $3 WHERE slc = $1")
                .bind(slc.as_str())
                .bind(p.name())
                .bind(p.version())
                .execute(&mut *c)
                .await?
        }
    }
    .rows_affected();
    if changed == 0 {
        return Err(Error::installation_not_found(slc).into());
    }
    if let Some(change) = feed::installation_change(update) {
        super::feed::append(c, slc, at, &change).await?;
    }
    // The update does not touch parked_at: what the service change read
    // is how it stood before.
    let changed = super::lifecycle::apply_service_change(c, slc, at).await?;
    if let Some(change) =
        feed::expiry_owed(update, changed.parked_before, &changed.installation, at)
    {
        super::feed::append(c, slc, at, &change).await?;
    }
    if maintenance::gives_up_held_notices(update, &changed.installation, at) {
        query(concat!(
            "UPDATE outbox SET failed_at = $2, last_error = $3, held_until = NULL
             WHERE slc = $1 AND ",
            held_unsent!()
        ))
        .bind(slc.as_str())
        .bind(at.as_millis())
        .bind(maintenance::RENEWED_WHILE_HELD)
        .execute(&mut *c)
        .await?;
    }
    Ok(changed.installation)
}

pub(crate) async fn set_labels(
    c: &mut PgConnection,
    reseller: &ResellerId,
    slc: &Slc,
    labels: &Labels,
    at: Timestamp,
) -> DbResult<()> {
    let search = (!labels.is_empty()).then(|| labels.search_text(slc));
    let changed = query(
        "UPDATE installations
         SET customer_name = $3, site_name = $4, notes = $5, tags = $6, search_text = $7,
             customer_order = $8, site_order = $9
         WHERE slc = $1 AND reseller_id = $2",
    )
    .bind(slc.as_str())
    .bind(reseller.as_str())
    .bind(labels.customer())
    .bind(labels.site())
    .bind(labels.notes())
    .bind(labels.encode_tags())
    .bind(search)
    .bind(labels.order_key(LabelOrder::Customer))
    .bind(labels.order_key(LabelOrder::Site))
    .execute(&mut *c)
    .await?
    .rows_affected();
    // Another reseller's installation is as missing as one never registered.
    if changed == 0 {
        return Err(Error::installation_not_found(slc).into());
    }
    super::feed::append(c, slc, at, &Change::Labels).await
}

pub(crate) async fn add_installation_key(
    c: &mut PgConnection,
    slc: &Slc,
    key: &WrappedKey,
    at: Timestamp,
) -> DbResult<()> {
    query(
        "INSERT INTO installation_keys (slc, key_id, sealed, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(slc.as_str())
    .bind(i64::from(key.id.get()))
    .bind(key.sealed.as_slice())
    .bind(at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || format!("key {} of installation {slc}", key.id),
            || Error::installation_not_found(slc),
        )
    })?;
    Ok(())
}

pub(crate) async fn installation_keys(c: &mut PgConnection, slc: &Slc) -> DbResult<Vec<StoredKey>> {
    let rows = query(
        "SELECT key_id, sealed, created_at, retired_at FROM installation_keys WHERE slc = $1 ORDER BY key_id",
    )
    .bind(slc.as_str())
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredKey {
                wrapped: WrappedKey {
                    id: KeyId::new(codec::key_id(col(row, 0)?)?),
                    sealed: col(row, 1)?,
                },
                created_at: ts(col(row, 2)?),
                retired_at: col::<Option<i64>>(row, 3)?.map(ts),
            })
        })
        .collect()
}

pub(crate) async fn retire_installation_key(
    c: &mut PgConnection,
    slc: &Slc,
    id: KeyId,
    at: Timestamp,
) -> DbResult<()> {
    let changed = query(
        "UPDATE installation_keys SET retired_at = COALESCE(retired_at, $3) WHERE slc = $1 AND key_id = $2",
    )
    .bind(slc.as_str())
    .bind(i64::from(id.get()))
    .bind(at.as_millis())
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("key {id} of installation {slc}"),
        }
        .into());
    }
    Ok(())
}
