//! Master-key rotation: paging through installation keys and replacing
//! sealed values only where they still hold what was read.

use carewatch_core::Result;
use carewatch_core::ids::Slc;
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{Reseal, SealedItem};
use rusqlite::{Connection, params};

use crate::codec::{RowExt, map_err};

pub(crate) fn wrapped_keys(
    tx: &Connection,
    after: Option<(&Slc, KeyId)>,
    limit: u32,
) -> Result<Vec<(Slc, WrappedKey)>> {
    // ('', 0) sorts before every key: SLCs are never empty.
    let (slc, id) = after.map_or(("", 0), |(slc, id)| (slc.as_str(), i64::from(id.get())));
    let mut stmt = tx
        .prepare_cached(
            "SELECT slc, key_id, sealed FROM installation_keys \
             WHERE (slc, key_id) > (?1, ?2) ORDER BY slc, key_id LIMIT ?3",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query(params![slc, id, limit]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let slc = Slc::new(&row.col::<String>(0)?)?;
        out.push((
            slc,
            WrappedKey {
                id: KeyId::new(row.col(1)?),
                sealed: row.col(2)?,
            },
        ));
    }
    Ok(out)
}

pub(crate) fn master_key_check(tx: &Connection, proposed: &[u8]) -> Result<Vec<u8>> {
    tx.execute(
        "INSERT INTO master_key_check (singleton, sealed) VALUES (1, ?1)
         ON CONFLICT (singleton) DO NOTHING",
        [proposed],
    )
    .map_err(map_err)?;
    tx.query_row(
        "SELECT sealed FROM master_key_check WHERE singleton = 1",
        [],
        |row| row.get(0),
    )
    .map_err(map_err)
}

pub(crate) fn reseal(tx: &Connection, changes: &[Reseal]) -> Result<u64> {
    let mut replaced = 0;
    for change in changes {
        replaced += match &change.item {
            SealedItem::InstallationKey { slc, id } => tx
                .prepare_cached(
                    "UPDATE installation_keys SET sealed = ?3 \
                     WHERE slc = ?1 AND key_id = ?2 AND sealed = ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![slc.as_str(), id.get(), change.new, change.old])
                }),
            SealedItem::Channel(id) => tx
                .prepare_cached("UPDATE channels SET sealed = ?2 WHERE id = ?1 AND sealed = ?3")
                .and_then(|mut s| s.execute(params![id.as_str(), change.new, change.old])),
            SealedItem::MasterKeyCheck => tx.execute(
                "UPDATE master_key_check SET sealed = ?1 WHERE singleton = 1 AND sealed = ?2",
                params![change.new, change.old],
            ),
        }
        .map_err(map_err)? as u64;
    }
    Ok(replaced)
}
