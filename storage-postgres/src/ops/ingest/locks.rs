//! Reading and locking server and installation rows, in the one order
//! every multi-row writer takes them in, so two batches cannot deadlock.

use std::collections::{BTreeSet, HashMap};

use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::ServerRecord;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use crate::codec::{self, server_columns};
use crate::errors::DbResult;

/// A server row; with `lock`, locked until the transaction ends.
pub(crate) async fn load_server(
    c: &mut PgConnection,
    slc: &Slc,
    server: &RecordingServerId,
    lock: bool,
) -> DbResult<Option<ServerRecord>> {
    let sql = if lock {
        concat!(
            "SELECT ",
            server_columns!(),
            " FROM servers WHERE slc = $1 AND server_id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            server_columns!(),
            " FROM servers WHERE slc = $1 AND server_id = $2"
        )
    };
    let row = query(sql)
        .bind(slc.as_str())
        .bind(server.as_str())
        .fetch_optional(&mut *c)
        .await?;
    row.map(|row| codec::server(&row)).transpose()
}

pub(crate) type ServerKey = (Slc, RecordingServerId);

/// Locks the rows of these servers (those that exist) in (slc, server_id)
/// order, the order every multi-row writer uses, so two batches cannot
/// deadlock on them; returns them.
pub(crate) async fn lock_servers(
    c: &mut PgConnection,
    keys: &BTreeSet<ServerKey>,
) -> DbResult<HashMap<ServerKey, ServerRecord>> {
    let mut out = HashMap::with_capacity(keys.len());
    if let [(slc, server)] = keys.iter().collect::<Vec<_>>().as_slice() {
        if let Some(record) = load_server(c, slc, server, true).await? {
            out.insert((slc.clone(), server.clone()), record);
        }
        return Ok(out);
    }
    if keys.is_empty() {
        return Ok(out);
    }
    let slcs: Vec<&str> = keys.iter().map(|(slc, _)| slc.as_str()).collect();
    let servers: Vec<&str> = keys.iter().map(|(_, server)| server.as_str()).collect();
    let rows = query(concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers WHERE (slc, server_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         ORDER BY slc, server_id FOR UPDATE"
    ))
    .bind(slcs)
    .bind(servers)
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        let record = codec::server(row)?;
        out.insert((record.slc.clone(), record.server.clone()), record);
    }
    Ok(out)
}

/// Locks these installations' rows (`FOR NO KEY UPDATE`, in SLC order), as
/// [`summary::refresh`](crate::ops::summary::refresh) would one by one:
/// taken up front by multi-row writers so their lock order is the same
/// everywhere.
pub(crate) async fn lock_installations(
    c: &mut PgConnection,
    slcs: &BTreeSet<&Slc>,
) -> DbResult<()> {
    if slcs.is_empty() {
        return Ok(());
    }
    let slcs: Vec<&str> = slcs.iter().map(|slc| slc.as_str()).collect();
    query(
        "SELECT slc FROM installations WHERE slc = ANY($1::text[]) ORDER BY slc FOR NO KEY UPDATE",
    )
    .bind(slcs)
    .fetch_all(&mut *c)
    .await?;
    Ok(())
}
