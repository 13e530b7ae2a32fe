//! Master-key rotation: paging through installation keys and replacing
//! sealed values only where they still hold what was read.

use carewatch_core::ids::Slc;
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{Reseal, SealedItem};
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use crate::codec::{self, col};
use crate::errors::DbResult;

pub(crate) async fn wrapped_keys(
    c: &mut PgConnection,
    after: Option<(&Slc, KeyId)>,
    limit: u32,
) -> DbResult<Vec<(Slc, WrappedKey)>> {
    // ('', 0) sorts before every key: SLCs are never empty.
    let (slc, id) = after.map_or(("", 0), |(slc, id)| (slc.as_str(), i64::from(id.get())));
    let rows = query(
        "SELECT slc, key_id, sealed FROM installation_keys \
         WHERE (slc, key_id) > ($1, $2) ORDER BY slc, key_id LIMIT $3",
    )
    .bind(slc)
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                Slc::new(&col::<String>(row, 0)?)?,
                WrappedKey {
                    id: KeyId::new(codec::key_id(col(row, 1)?)?),
                    sealed: col(row, 2)?,
                },
            ))
        })
        .collect()
}

pub(crate) async fn reseal(c: &mut PgConnection, changes: &[Reseal]) -> DbResult<u64> {
    let mut replaced = 0;
    for change in changes {
        let done = match &change.item {
            SealedItem::InstallationKey { slc, id } => query(
                "UPDATE installation_keys SET sealed = $3 \
                 WHERE slc = $1 AND key_id = $2 AND sealed = $4",
            )
            .bind(slc.as_str())
            .bind(i64::from(id.get()))
            .bind(change.new.as_slice())
            .bind(change.old.as_slice()),
            SealedItem::Channel(id) => {
                query("UPDATE channels SET sealed = $2 WHERE id = $1 AND sealed = $3")
                    .bind(id.as_str())
                    .bind(change.new.as_slice())
                    .bind(change.old.as_slice())
            }
        }
        .execute(&mut *c)
        .await?;
        replaced += done.rows_affected();
    }
    Ok(replaced)
}
