//! The locking path of signs of life: each sign judged against its
//! server's locked row by the core's rule, then written (new servers
//! inserted, recoveries recorded, summaries refreshed).

use std::collections::{BTreeSet, HashMap};

use carewatch_core::ConditionCode;
use carewatch_core::availability::Availability;
use carewatch_core::ids::Slc;
use carewatch_core::store::columns::sequence_to_column;
use carewatch_core::store::rules::{self, SignJudgement};
use carewatch_core::store::{HistoryKind, ServerRecord, SignOfLife, WriteOutcome};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::locks::{ServerKey, load_server, lock_installations, lock_servers};
use crate::codec::ms;
use crate::errors::DbResult;
use crate::ops::{first_sight, history, summary};

/// What touching a server row did.
pub(super) enum Touch {
    /// Applied; `availability_changed` if the server was new, late or unavailable.
    Applied {
        availability_changed: bool,
    },
    Duplicate,
    Stale(u64),
}

/// A message judged against its server's (locked) row.
enum Judgement {
    /// An older sequence number, or this one with another digest.
    Stale(u64),
    /// The latest message again.
    Duplicate,
    /// Newer: the row as it is once the message is applied, and the
    /// recovery it records, if the server was unavailable.
    Newer(Box<ServerRecord>, Option<HistoryKind>),
}

/// The core's rule ([`rules::judge_sign`]), as the row it leaves.
fn judge(current: &ServerRecord, sign: &SignOfLife) -> Judgement {
    match rules::judge_sign(current, sign) {
        SignJudgement::Stale { last_accepted } => Judgement::Stale(last_accepted),
        SignJudgement::Duplicate => Judgement::Duplicate,
        SignJudgement::Newer {
            last_seen_at,
            next_check_at,
            history,
        } => Judgement::Newer(
            Box::new(ServerRecord {
                last_seen_at,
                interval: sign.interval,
                cursor: sign.cursor,
                availability: Availability::Available,
                next_check_at,
                ..current.clone()
            }),
            history,
        ),
    }
}

/// Writes the sign-of-life columns of rows judged [`Judgement::Newer`]
/// (available again, newest cursor); several in one statement.
async fn store_signs(c: &mut PgConnection, records: &[ServerRecord]) -> DbResult<()> {
    if let [r] = records {
        query(
            "UPDATE servers SET last_seen_at = GREATEST(last_seen_at, $3), interval_ms = $4, last_sequence = $5,
                 last_digest = $6, state = 0, missed = 0, unavailable_since = NULL, next_check_at = $7
             WHERE slc = $1 AND server_id = $2",
        )
        .bind(r.slc.as_str())
        .bind(r.server.as_str())
        .bind(r.last_seen_at.as_millis())
        .bind(ms(r.interval))
        .bind(sequence_to_column(r.cursor.sequence))
        .bind(&r.cursor.digest.0[..])
        .bind(r.next_check_at.map(Timestamp::as_millis))
        .execute(&mut *c)
        .await?;
        return Ok(());
    }
    if records.is_empty() {
        return Ok(());
    }
    let slcs: Vec<&str> = records.iter().map(|r| r.slc.as_str()).collect();
    let servers: Vec<&str> = records.iter().map(|r| r.server.as_str()).collect();
    let last_seen: Vec<i64> = records.iter().map(|r| r.last_seen_at.as_millis()).collect();
    let intervals: Vec<i64> = records.iter().map(|r| ms(r.interval)).collect();
    let sequences: Vec<i64> = records
        .iter()
        .map(|r| sequence_to_column(r.cursor.sequence))
        .collect();
    let digests: Vec<&[u8]> = records.iter().map(|r| &r.cursor.digest.0[..]).collect();
    let next_checks: Vec<Option<i64>> = records
        .iter()
        .map(|r| r.next_check_at.map(Timestamp::as_millis))
        .collect();
    query(
        "UPDATE servers s SET last_seen_at = GREATEST(s.last_seen_at, u.last_seen_at), interval_ms = u.interval_ms,
             last_sequence = u.last_sequence, last_digest = u.last_digest, state = 0, missed = 0,
             unavailable_since = NULL, next_check_at = u.next_check_at
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bigint[])
             AS u (slc, server_id, last_seen_at, interval_ms, last_sequence, last_digest, next_check_at)
         WHERE s.slc = u.slc AND s.server_id = u.server_id",
    )
    .bind(slcs)
    .bind(servers)
    .bind(last_seen)
    .bind(intervals)
    .bind(sequences)
    .bind(digests)
    .bind(next_checks)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The sign-of-life part of any accepted message, with the sequence rule.
/// `current` is the server's row, already locked (`None`: not in the table
/// when it was locked). Returns what it did and the row as it is now.
pub(super) async fn touch_server(
    c: &mut PgConnection,
    sign: &SignOfLife,
    current: Option<ServerRecord>,
) -> DbResult<(Touch, ServerRecord)> {
    let current = match current {
        Some(current) => current,
        None => {
            // The installation before the new row, the order a batch of first
            // sights takes them in (it locks its installations, then inserts):
            // otherwise this INSERT and a batch inserting the same server
            // could each hold what the other waits for.
            query("SELECT 1 FROM installations WHERE slc = $1 FOR NO KEY UPDATE")
                .bind(sign.slc.as_str())
                .execute(&mut *c)
                .await?;
            let inserted = query(
                "INSERT INTO servers (slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence,
                     last_digest, state, missed, unavailable_since, next_check_at)
                 VALUES ($1, $2, $3, $3, $4, $5, $6, 0, 0, NULL, $7)
                 ON CONFLICT (slc, server_id) DO NOTHING",
            )
            .bind(sign.slc.as_str())
            .bind(sign.server.as_str())
            .bind(sign.received_at.as_millis())
            .bind(ms(sign.interval))
            .bind(sequence_to_column(sign.cursor.sequence))
            .bind(&sign.cursor.digest.0[..])
            .bind(sign.next_check_at.as_millis())
            .execute(&mut *c)
            .await?
            .rows_affected();
            if inserted == 1 {
                history::record(
                    c,
                    &sign.slc,
                    &sign.server,
                    sign.received_at,
                    &HistoryKind::FirstSeen,
                )
                .await?;
                let record = ServerRecord {
                    slc: sign.slc.clone(),
                    server: sign.server.clone(),
                    first_seen_at: sign.received_at,
                    last_seen_at: sign.received_at,
                    interval: sign.interval,
                    cursor: sign.cursor,
                    availability: Availability::Available,
                    next_check_at: Some(sign.next_check_at),
                    counted_from: None,
                };
                return Ok((
                    Touch::Applied {
                        availability_changed: true,
                    },
                    record,
                ));
            }
            // Another node inserted it first (and committed: ON CONFLICT
            // waited for it). Lock it and judge this message against it.
            match load_server(c, &sign.slc, &sign.server, true).await? {
                Some(current) => current,
                None => {
                    return Err(carewatch_core::Error::Storage {
                        message: format!(
                            "recording server {} of {} vanished while it was written",
                            sign.server, sign.slc
                        ),
                        source: None,
                    }
                    .into());
                }
            }
        }
    };
    let (record, recovery) = match judge(&current, sign) {
        Judgement::Stale(last_accepted) => return Ok((Touch::Stale(last_accepted), current)),
        Judgement::Duplicate => return Ok((Touch::Duplicate, current)),
        Judgement::Newer(record, recovery) => (*record, recovery),
    };
    store_signs(c, std::slice::from_ref(&record)).await?;
    if let Some(recovered) = recovery {
        resolve_unavailability(c, sign, &recovered).await?;
    }
    let touch = Touch::Applied {
        availability_changed: current.availability != Availability::Available,
    };
    Ok((touch, record))
}

async fn resolve_unavailability(
    c: &mut PgConnection,
    sign: &SignOfLife,
    recovered: &HistoryKind,
) -> DbResult<()> {
    query(
        "UPDATE conditions SET resolved_at = $4
         WHERE slc = $1 AND server_id = $2 AND code = $3 AND resolved_at IS NULL",
    )
    .bind(sign.slc.as_str())
    .bind(sign.server.as_str())
    .bind(ConditionCode::ServerUnavailable.as_str())
    .bind(sign.received_at.as_millis())
    .execute(&mut *c)
    .await?;
    history::record(c, &sign.slc, &sign.server, sign.received_at, recovered).await
}

async fn record_sign_of_life(
    c: &mut PgConnection,
    sign: &SignOfLife,
    current: Option<ServerRecord>,
) -> DbResult<(WriteOutcome, ServerRecord)> {
    let (touch, record) = touch_server(c, sign, current).await?;
    let outcome = match touch {
        Touch::Duplicate => WriteOutcome::Duplicate,
        Touch::Stale(last_accepted) => WriteOutcome::Stale { last_accepted },
        Touch::Applied {
            availability_changed: false,
        } => WriteOutcome::Applied(None),
        Touch::Applied {
            availability_changed: true,
        } => WriteOutcome::Applied(summary::refresh(c, &sign.slc, sign.received_at).await?),
    };
    Ok((outcome, record))
}

/// Heartbeats, in one transaction: the servers' rows are locked at once (in
/// key order), then each sign is judged against the row as the signs before
/// it in the batch left it.
pub(crate) async fn record_signs_of_life(
    c: &mut PgConnection,
    batch: &[SignOfLife],
) -> DbResult<Vec<WriteOutcome>> {
    let keys: BTreeSet<ServerKey> = batch
        .iter()
        .map(|s| (s.slc.clone(), s.server.clone()))
        .collect();
    let mut rows = lock_servers(c, &keys).await?;
    if batch.len() > 1 {
        // Installations whose summary may be refreshed (a new, late or
        // unavailable server): locked now, in order, not one by one later.
        let refreshing: BTreeSet<&Slc> = batch
            .iter()
            .filter(|s| {
                rows.get(&(s.slc.clone(), s.server.clone()))
                    .is_none_or(|r| r.availability != Availability::Available)
            })
            .map(|s| &s.slc)
            .collect();
        lock_installations(c, &refreshing).await?;
    }
    // New servers written together (each sign's outcome as if one by one).
    let mut first_sights = first_sight::record_first_sights(c, batch, &mut rows).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    // Heartbeats of servers that were available change nothing but the row's
    // sign-of-life columns: judged here, written together at the end (one
    // statement for the batch). Nothing else reads those columns in between:
    // a summary depends only on availability, which stays Available.
    let mut plain: Vec<ServerRecord> = Vec::new();
    let mut plain_index: HashMap<ServerKey, usize> = HashMap::new();
    for (i, sign) in batch.iter().enumerate() {
        if let Some(outcome) = first_sights.remove(&i) {
            outcomes.push(outcome);
            continue;
        }
        let key = (sign.slc.clone(), sign.server.clone());
        let current = rows.remove(&key);
        let (outcome, record) = match current {
            Some(current) if current.availability == Availability::Available => {
                match judge(&current, sign) {
                    Judgement::Stale(last_accepted) => {
                        (WriteOutcome::Stale { last_accepted }, current)
                    }
                    Judgement::Duplicate => (WriteOutcome::Duplicate, current),
                    // An available server records no recovery.
                    Judgement::Newer(record, _) => {
                        match plain_index.get(&key) {
                            Some(&i) => plain[i] = (*record).clone(),
                            None => {
                                plain_index.insert(key.clone(), plain.len());
                                plain.push((*record).clone());
                            }
                        }
                        (WriteOutcome::Applied(None), *record)
                    }
                }
            }
            other => record_sign_of_life(c, sign, other).await?,
        };
        rows.insert(key, record);
        outcomes.push(outcome);
    }
    store_signs(c, &plain).await?;
    Ok(outcomes)
}
