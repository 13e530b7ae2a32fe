//! Between PostgreSQL values and domain types. The encodings are the SQLite
//! backend's: BIGINT milliseconds, u64 sequence numbers bit for bit, the
//! same availability and history columns.

use std::time::Duration;

use carewatch_core::Result;
use carewatch_core::auth::SequenceCursor;
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::ServerRecord;
use carewatch_core::store::columns::{AvailabilityColumns, sequence_from_column};
use carewatch_core::time::{Timestamp, duration_millis};
use sqlx_core::decode::Decode;
use sqlx_core::row::Row;
use sqlx_core::types::Type;
use sqlx_postgres::{PgRow, Postgres};

use crate::errors::{DbResult, corrupt};

/// Reads column `index`; a decoding failure is a storage failure.
pub(crate) fn col<'r, T>(row: &'r PgRow, index: usize) -> DbResult<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    Ok(row.try_get(index)?)
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn ms(d: Duration) -> i64 {
    duration_millis(d)
}

pub(crate) fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(crate) fn rank(health: Health) -> i16 {
    i16::from(health.rank())
}

pub(crate) fn health(stored: i16) -> Result<Health> {
    let rank = u8::try_from(stored).map_err(|e| corrupt("health", e))?;
    Health::from_rank(rank).map_err(|e| corrupt("health", e))
}

pub(crate) fn count(stored: i64) -> Result<u32> {
    u32::try_from(stored).map_err(|e| corrupt("count", e))
}

pub(crate) use carewatch_core::store::columns::{
    condition_code as code, digest, reseller_id, server_id, slc, token_hash,
};

pub(crate) fn key_id(stored: i64) -> Result<u32> {
    u32::try_from(stored).map_err(|e| corrupt("key id", e))
}

/// Columns: slc, reseller_id, product, product_version, subscription_expires_at, consent, registered_at.
macro_rules! installation_columns {
    () => {
        "slc, reseller_id, product, product_version, subscription_expires_at, consent, registered_at"
    };
}
pub(crate) use installation_columns;

pub(crate) fn installation(row: &PgRow, at: usize) -> DbResult<Installation> {
    Ok(Installation {
        slc: slc(&col::<String>(row, at)?)?,
        reseller: reseller_id(&col::<String>(row, at + 1)?)?,
        product: Product::new(&col::<String>(row, at + 2)?, &col::<String>(row, at + 3)?)
            .map_err(|e| corrupt("product", e))?,
        subscription_expires_at: col::<Option<i64>>(row, at + 4)?.map(ts),
        consent: col::<bool>(row, at + 5)?,
        registered_at: ts(col(row, at + 6)?),
    })
}

/// Columns: health, worst_code, servers, unavailable, late, active_conditions.
macro_rules! summary_columns {
    () => {
        "health, worst_code, servers, unavailable, late, active_conditions"
    };
}
pub(crate) use summary_columns;

pub(crate) fn summary(row: &PgRow, at: usize) -> DbResult<HealthSummary> {
    Ok(HealthSummary {
        health: health(col(row, at)?)?,
        worst: col::<Option<String>>(row, at + 1)?
            .as_deref()
            .map(code)
            .transpose()?,
        servers: count(col(row, at + 2)?)?,
        unavailable: count(col(row, at + 3)?)?,
        late: count(col(row, at + 4)?)?,
        active_conditions: count(col(row, at + 5)?)?,
    })
}

/// A sequence cursor from its two nullable columns (`last_sequence,
/// last_digest`) at `at`: `None` when there is none.
pub(crate) fn cursor(row: &PgRow, at: usize) -> DbResult<Option<SequenceCursor>> {
    match (
        col::<Option<i64>>(row, at)?,
        col::<Option<Vec<u8>>>(row, at + 1)?,
    ) {
        (Some(sequence), Some(stored)) => Ok(Some(SequenceCursor {
            sequence: sequence_from_column(sequence),
            digest: digest(&stored)?,
        })),
        _ => Ok(None),
    }
}

/// Columns of a server row, in the order [`server`] reads them.
macro_rules! server_columns {
    () => {
        "slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence, \
         last_digest, state, missed, unavailable_since, next_check_at, counted_from"
    };
}
pub(crate) use server_columns;

pub(crate) fn server(row: &PgRow) -> DbResult<ServerRecord> {
    server_at(row, 0)
}

/// A server row whose [`server_columns`] start at column `at`.
pub(crate) fn server_at(row: &PgRow, at: usize) -> DbResult<ServerRecord> {
    Ok(ServerRecord {
        slc: slc(&col::<String>(row, at)?)?,
        server: server_id(&col::<String>(row, at + 1)?)?,
        first_seen_at: ts(col(row, at + 2)?),
        last_seen_at: ts(col(row, at + 3)?),
        interval: duration(col(row, at + 4)?),
        cursor: SequenceCursor {
            sequence: sequence_from_column(col(row, at + 5)?),
            digest: digest(&col::<Vec<u8>>(row, at + 6)?)?,
        },
        availability: AvailabilityColumns {
            state: col(row, at + 7)?,
            missed: col(row, at + 8)?,
            unavailable_since: col(row, at + 9)?,
        }
        .decode()?,
        next_check_at: col::<Option<i64>>(row, at + 10)?.map(ts),
        counted_from: col::<Option<i64>>(row, at + 11)?.map(ts),
    })
}

/// XOR with this maps u64 order onto i64 order (it flips the sign bit of the
/// bit-for-bit stored value): `a < b` as u64 exactly when
/// `(a ^ SEQ_ORDER_FLIP) < (b ^ SEQ_ORDER_FLIP)` as i64. Single-statement
/// conditional writes compare stored sequences in SQL this way; a plain `<`
/// on the stored values would be wrong above i64::MAX.
pub(crate) const SEQ_ORDER_FLIP: i64 = i64::MIN;

#[cfg(test)]
mod tests {
    use carewatch_core::store::columns::sequence_to_column;

    use super::*;

    #[test]
    fn sequences_round_trip_bit_for_bit() {
        for s in [
            0,
            1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(sequence_from_column(sequence_to_column(s)), s);
        }
        // The bit-cast alone does not keep the order ...
        assert!(sequence_to_column(u64::MAX) < sequence_to_column(1));
    }

    #[test]
    fn flipping_the_sign_bit_keeps_the_u64_order() {
        let edges = [
            0,
            1,
            2,
            i64::MAX as u64 - 1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for a in edges {
            for b in edges {
                let flipped = (sequence_to_column(a) ^ SEQ_ORDER_FLIP)
                    < (sequence_to_column(b) ^ SEQ_ORDER_FLIP);
                assert_eq!(flipped, a < b, "{a} < {b}");
            }
        }
    }
}
