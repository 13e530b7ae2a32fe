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

pub(crate) async fn master_key_check(c: &mut PgConnection, proposed: &[u8]) -> DbResult<Vec<u8>> {
    query(
        "INSERT INTO master_key_check (singleton, sealed) VALUES (true, $1)
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(proposed)
    .execute(&mut *c)
    .await?;
    let row = query("SELECT sealed FROM master_key_check WHERE singleton")
        .fetch_one(&mut *c)
        .await?;
    col(&row, 0)
}

/// Installation keys in one statement (a step's worth, in key order, the
/// order they were read in); channels, which are few, one each.
pub(crate) async fn reseal(c: &mut PgConnection, changes: &[Reseal]) -> DbResult<u64> {
    let (mut slcs, mut ids, mut olds, mut news) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut replaced = 0;
    for change in changes {
        match &change.item {
            SealedItem::InstallationKey { slc, id } => {
                slcs.push(slc.as_str());
                ids.push(i64::from(id.get()));
                olds.push(change.old.as_slice());
                news.push(change.new.as_slice());
            }
            SealedItem::MasterKeyCheck => {
                replaced += query(
                    "UPDATE master_key_check SET sealed = $1 WHERE singleton AND sealed = $2",
                )
                .bind(change.new.as_slice())
                .bind(change.old.as_slice())
                .execute(&mut *c)
                .await?
                .rows_affected();
            }
            SealedItem::Channel(id) => {
                replaced += query("UPDATE channels SET sealed = $2 WHERE id = $1 AND sealed = $3")
                    .bind(id.as_str())
                    .bind(change.new.as_slice())
                    .bind(change.old.as_slice())
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
            }
        }
    }
    if !slcs.is_empty() {
        replaced += query(
            "UPDATE installation_keys k SET sealed = u.new
             FROM UNNEST($1::text[], $2::bigint[], $3::bytea[], $4::bytea[]) AS u (slc, key_id, old, new)
             WHERE k.slc = u.slc AND k.key_id = u.key_id AND k.sealed = u.old",
        )
        .bind(slcs)
        .bind(ids)
        .bind(olds)
        .bind(news)
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    Ok(replaced)
}
