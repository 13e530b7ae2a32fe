//! Between PostgreSQL values and domain types. The encodings are the SQLite
//! backend's: BIGINT milliseconds, u64 sequence numbers bit for bit, the
//! same availability and history columns.

use std::time::Duration;

use carewatch_core::auth::{MessageDigest, SequenceCursor, TokenHash};
use carewatch_core::availability::Availability;
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::ServerRecord;
use carewatch_core::time::{Timestamp, duration_millis};
use carewatch_core::{ConditionCode, Result};
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

/// u64 sequence numbers are stored bit for bit in signed BIGINT; compare
/// them only after decoding ([`seq_from_sql`]), never in SQL.
pub(crate) fn seq_to_sql(sequence: u64) -> i64 {
    i64::from_ne_bytes(sequence.to_ne_bytes())
}

pub(crate) fn seq_from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
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

pub(crate) fn slc(text: &str) -> Result<Slc> {
    Slc::new(text).map_err(|e| corrupt("SLC", e))
}

pub(crate) fn server_id(text: &str) -> Result<RecordingServerId> {
    RecordingServerId::new(text).map_err(|e| corrupt("recording server id", e))
}

pub(crate) fn reseller_id(text: &str) -> Result<ResellerId> {
    ResellerId::new(text).map_err(|e| corrupt("reseller id", e))
}

pub(crate) fn code(text: &str) -> Result<ConditionCode> {
    ConditionCode::parse(text).map_err(|e| corrupt("condition code", e))
}

pub(crate) fn token_hash(bytes: &[u8]) -> Result<TokenHash> {
    TokenHash::from_slice(bytes).ok_or_else(|| corrupt("token hash", "not 32 bytes"))
}

pub(crate) fn digest(bytes: &[u8]) -> Result<MessageDigest> {
    <[u8; 32]>::try_from(bytes)
        .map(MessageDigest)
        .map_err(|_| corrupt("message digest", "not 32 bytes"))
}

pub(crate) fn key_id(stored: i64) -> Result<u32> {
    u32::try_from(stored).map_err(|e| corrupt("key id", e))
}

/// Availability as the (state, missed, unavailable_since) columns.
pub(crate) fn availability_to_sql(a: &Availability) -> (i16, i64, Option<i64>) {
    match *a {
        Availability::Pending | Availability::Available => (0, 0, None),
        Availability::Late { missed } => (1, i64::from(missed), None),
        Availability::Unavailable { since, missed } => {
            (2, i64::from(missed), Some(since.as_millis()))
        }
    }
}

pub(crate) fn availability_from_sql(
    state: i16,
    missed: i64,
    since: Option<i64>,
) -> Result<Availability> {
    let missed = u32::try_from(missed).map_err(|e| corrupt("missed count", e))?;
    match (state, since) {
        (0, _) => Ok(Availability::Available),
        (1, _) => Ok(Availability::Late { missed }),
        (2, Some(since)) => Ok(Availability::Unavailable {
            since: ts(since),
            missed,
        }),
        _ => Err(corrupt("server state", format!("state {state}"))),
    }
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

/// Columns of a server row, in the order [`server`] reads them.
macro_rules! server_columns {
    () => {
        "slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence, \
         last_digest, state, missed, unavailable_since, next_check_at"
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
            sequence: seq_from_sql(col(row, at + 5)?),
            digest: digest(&col::<Vec<u8>>(row, at + 6)?)?,
        },
        availability: availability_from_sql(
            col(row, at + 7)?,
            col(row, at + 8)?,
            col(row, at + 9)?,
        )?,
        next_check_at: col::<Option<i64>>(row, at + 10)?.map(ts),
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
            assert_eq!(seq_from_sql(seq_to_sql(s)), s);
        }
        // The bit-cast alone does not keep the order ...
        assert!(seq_to_sql(u64::MAX) < seq_to_sql(1));
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
                let flipped = (seq_to_sql(a) ^ SEQ_ORDER_FLIP) < (seq_to_sql(b) ^ SEQ_ORDER_FLIP);
                assert_eq!(flipped, a < b, "{a} < {b}");
            }
        }
    }

    #[test]
    fn availability_round_trips() {
        for a in [
            Availability::Available,
            Availability::Late { missed: 2 },
            Availability::Unavailable {
                since: ts(1_000),
                missed: 3,
            },
        ] {
            let (state, missed, since) = availability_to_sql(&a);
            assert_eq!(availability_from_sql(state, missed, since).ok(), Some(a));
        }
    }
}
