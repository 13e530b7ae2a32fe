//! What a message is admitted on: its installation, its key if active and
//! its server if known, read in one statement, alone or for a batch.

use carewatch_core::Result;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::{Admission, AdmissionQuery, AdmissionVersion};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use crate::codec::{self, col};
use crate::errors::{DbResult, into_error};

/// The columns an admission is read from (see [`admission_row`]).
macro_rules! admission_columns {
    () => {
        "i.slc, i.reseller_id, i.product, i.product_version, i.subscription_expires_at, i.consent,
             i.registered_at,
             k.sealed,
             s.slc, s.server_id, s.first_seen_at, s.last_seen_at, s.interval_ms, s.last_sequence,
             s.last_digest, s.state, s.missed, s.unavailable_since, s.next_check_at, s.counted_from,
             i.admission_version, d.last_sequence, d.last_digest"
    };
}

/// Where an admission is read from, for an SLC, a server id and a key id:
/// the installation, its key if active, its server if known, else the
/// cursor it left when its data was deleted, if any.
macro_rules! admission_from {
    ($slc:literal, $server:literal, $key:literal) => {
        concat!(
            " FROM installations i
             LEFT JOIN installation_keys k ON k.slc = i.slc AND k.key_id = ",
            $key,
            " AND k.retired_at IS NULL
             LEFT JOIN servers s ON s.slc = i.slc AND s.server_id = ",
            $server,
            " LEFT JOIN deleted_server_cursors d ON d.slc = i.slc AND d.server_id = ",
            $server,
            " WHERE i.slc = ",
            $slc
        )
    };
}

/// Everything ingest needs, in one statement (one snapshot, one round trip).
pub(crate) async fn admission(
    c: &mut PgConnection,
    slc: &Slc,
    server: &RecordingServerId,
    key_id: KeyId,
) -> DbResult<Option<Admission>> {
    let row = query(concat!(
        "SELECT ",
        admission_columns!(),
        admission_from!("$1", "$2", "$3")
    ))
    .bind(slc.as_str())
    .bind(server.as_str())
    .bind(i64::from(key_id.get()))
    .fetch_optional(&mut *c)
    .await?;
    match row {
        Some(row) => admission_row(&row, key_id),
        None => Ok(None),
    }
}

/// [`admission`] for many messages in one statement: the queries are
/// unnested in order (`WITH ORDINALITY`) and each one runs the single
/// lookup's own query (`LEFT JOIN LATERAL`, with its parameters taken from
/// the query's row instead of $1..$3), so the answers are the same by
/// construction, and each is three primary-key probes whatever the size of
/// the tables (a plain join let the planner hash whole tables). One
/// snapshot for the batch; a row that does not decode fails only its query.
pub(crate) async fn admissions(
    c: &mut PgConnection,
    queries: &[AdmissionQuery],
) -> DbResult<Vec<Result<Option<Admission>>>> {
    let slcs: Vec<&str> = queries.iter().map(|q| q.slc.as_str()).collect();
    let servers: Vec<&str> = queries.iter().map(|q| q.server.as_str()).collect();
    let keys: Vec<i64> = queries.iter().map(|q| i64::from(q.key.get())).collect();
    let rows = query(concat!(
        "SELECT a.*, q.n
         FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS q (slc, server_id, key_id, n)
         LEFT JOIN LATERAL (SELECT ",
        admission_columns!(),
        admission_from!("q.slc", "q.server_id", "q.key_id"),
        ") a ON true
         ORDER BY q.n"
    ))
    .bind(slcs)
    .bind(servers)
    .bind(keys)
    .fetch_all(&mut *c)
    .await?;
    let in_order = rows.len() == queries.len()
        && rows
            .iter()
            .zip(1i64..)
            .all(|(row, n)| col::<i64>(row, ADMISSION_ORDINAL).is_ok_and(|got| got == n));
    if !in_order {
        return Err(carewatch_core::Error::Storage {
            message: format!(
                "{} admission queries read {} rows, not one each in order",
                queries.len(),
                rows.len()
            ),
            source: None,
        }
        .into());
    }
    Ok(rows
        .iter()
        .zip(queries)
        .map(|(row, q)| {
            if col::<Option<String>>(row, 0).map_err(into_error)?.is_none() {
                return Ok(None);
            }
            admission_row(row, q.key).map_err(into_error)
        })
        .collect())
}

/// The column of the batched query's ordinal (after [`admission_columns`]).
const ADMISSION_ORDINAL: usize = 23;

/// An admission from a row of [`admission_columns`] (the installation found).
fn admission_row(row: &PgRow, key_id: KeyId) -> DbResult<Option<Admission>> {
    let installation = codec::installation(row, 0)?;
    let key = col::<Option<Vec<u8>>>(row, 7)?.map(|sealed| WrappedKey { id: key_id, sealed });
    let (server, deleted_server_cursor) = match col::<Option<String>>(row, 8)? {
        Some(_) => (Some(codec::server_at(row, 8)?), None),
        None => (None, codec::cursor(row, 21)?),
    };
    Ok(Some(Admission {
        installation,
        key,
        server,
        deleted_server_cursor,
        version: AdmissionVersion(col(row, 20)?),
    }))
}
