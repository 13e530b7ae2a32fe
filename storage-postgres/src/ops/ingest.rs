//! Ingest: admission reads, signs of life and status reports.
//!
//! Concurrency: every write locks the server rows it compares against
//! (`SELECT ... FOR UPDATE`, in (slc, server_id) order) before comparing
//! sequence numbers, so two nodes applying messages of one recording server
//! run one after the other and the second sees the first's result: a retry
//! sent through two nodes at once is applied once and reported as Duplicate,
//! and `last_seen_at` never moves backwards.

use std::collections::{BTreeSet, HashMap};

use carewatch_core::ConditionCode;
use carewatch_core::Result;
use carewatch_core::availability::Availability;
use carewatch_core::condition::ConditionKey;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::rules::{self, ActiveCondition, SignJudgement};
use carewatch_core::store::{
    Admission, AdmissionQuery, AdmissionVersion, HistoryKind, ServerRecord, SignOfLife,
    StatusWrite, WriteOutcome,
};
use carewatch_core::time::Timestamp;
use sqlx_core::query::{Query, query};
use sqlx_postgres::{PgArguments, PgConnection, PgRow, Postgres};

use super::{history, summary};
use crate::codec::{self, col, ms, server_columns, ts};
use crate::errors::{DbResult, into_error};
use carewatch_core::store::columns::sequence_to_column;

/// The columns an admission is read from (see [`admission_row`]).
macro_rules! admission_columns {
    () => {
        "i.slc, i.reseller_id, i.product, i.product_version, i.subscription_expires_at, i.consent,
             i.registered_at,
             k.sealed,
             s.slc, s.server_id, s.first_seen_at, s.last_seen_at, s.interval_ms, s.last_sequence,
             s.last_digest, s.state, s.missed, s.unavailable_since, s.next_check_at, s.counted_from,
             i.admission_version"
    };
}

/// Where an admission is read from, for an SLC, a server id and a key id:
/// the installation, its key if active, its server if known.
macro_rules! admission_from {
    ($slc:literal, $server:literal, $key:literal) => {
        concat!(
            " FROM installations i
             LEFT JOIN installation_keys k ON k.slc = i.slc AND k.key_id = ",
            $key,
            " AND k.retired_at IS NULL
             LEFT JOIN servers s ON s.slc = i.slc AND s.server_id = ",
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
const ADMISSION_ORDINAL: usize = 21;

/// An admission from a row of [`admission_columns`] (the installation found).
fn admission_row(row: &PgRow, key_id: KeyId) -> DbResult<Option<Admission>> {
    let installation = codec::installation(row, 0)?;
    let key = col::<Option<Vec<u8>>>(row, 7)?.map(|sealed| WrappedKey { id: key_id, sealed });
    let server = match col::<Option<String>>(row, 8)? {
        Some(_) => Some(codec::server_at(row, 8)?),
        None => None,
    };
    Ok(Some(Admission {
        installation,
        key,
        server,
        version: AdmissionVersion(col(row, 20)?),
    }))
}

/// The hot path of a heartbeat: an available server's newer message changes
/// only its sign-of-life columns, so one conditional UPDATE (its own
/// transaction) applies it. Returns `false`, having changed nothing, when it
/// does not apply (new, late or unavailable server; duplicate or stale
/// sequence): the caller then takes the locking path, which decides the
/// outcome. The row lock UPDATE takes re-checks the condition against the
/// latest committed row, so concurrent nodes cannot both apply one message;
/// `GREATEST` keeps `last_seen_at` from moving backwards, and the sequence
/// comparison flips the sign bit so it is the u64 order (see
/// [`codec::SEQ_ORDER_FLIP`]). Run again after an unknown outcome it changes
/// nothing (the sequence is no longer newer). A sign judged on a remembered
/// admission applies only while the installation's admission is at its
/// version and the server is not parked (a next check set).
pub(crate) async fn heartbeat_in_place(c: &mut PgConnection, sign: &SignOfLife) -> DbResult<bool> {
    let updated = query(
        "UPDATE servers SET last_seen_at = GREATEST(last_seen_at, $3),
             next_check_at = CASE WHEN $3 >= last_seen_at THEN $7 ELSE COALESCE(next_check_at, $7) END,
             interval_ms = $4, last_sequence = $5, last_digest = $6, missed = 0, unavailable_since = NULL
         WHERE slc = $1 AND server_id = $2 AND state = 0
           AND (last_sequence # $8::bigint) < ($5::bigint # $8::bigint)
           AND ($9::bigint IS NULL
                OR (next_check_at IS NOT NULL
                    AND (SELECT admission_version FROM installations WHERE slc = $1) = $9))",
    )
    .bind(sign.slc.as_str())
    .bind(sign.server.as_str())
    .bind(sign.received_at.as_millis())
    .bind(ms(sign.interval))
    .bind(sequence_to_column(sign.cursor.sequence))
    .bind(&sign.cursor.digest.0[..])
    .bind(sign.next_check_at.as_millis())
    .bind(codec::SEQ_ORDER_FLIP)
    .bind(sign.remembered.map(|v| v.0))
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// [`heartbeat_in_place`] for many heartbeats in one statement (one round
/// trip, no transaction): each server at most once (the caller sends a
/// server's second heartbeat in a batch down the locking path, where the
/// first one's result is seen). Returns, per sign, whether it was applied;
/// those not applied changed nothing and take the locking path.
///
/// The rows are updated in (slc, server_id) order, the order every other
/// multi-row writer locks them in: the arrays are sorted, and the plan this
/// statement gets on a large table (a nested loop over them, one
/// primary-key lookup each) takes the rows in array order. In arrival
/// order, a minute-start burst on PostgreSQL deadlocked this statement with
/// sweeps and locking paths holding rows in key order: 30 deadlocks in three
/// rounds of 1M servers, each found only after `deadlock_timeout` (1 s),
/// long enough for the node to find its storage stalled and record its own
/// downtime. The order rests on the plan: on a table of up to about 100,000
/// servers PostgreSQL may hash-join instead, and a hash join that spills
/// past `work_mem` takes rows out of order, so a deadlock (found after 1 s,
/// then retried) stays possible there. Locking the rows first (`FOR UPDATE`
/// above a sort, or `SKIP LOCKED`) guarantees the order whatever the plan,
/// but cost PostgreSQL 10–15% more processor time per heartbeat (one more
/// pass and a lock record per row) in interleaved runs.
pub(crate) async fn heartbeats_in_place(
    c: &mut PgConnection,
    signs: &[SignOfLife],
) -> DbResult<Vec<bool>> {
    let mut order: Vec<usize> = (0..signs.len()).collect();
    order.sort_by(|&a, &b| {
        (&signs[a].slc, &signs[a].server).cmp(&(&signs[b].slc, &signs[b].server))
    });
    let columns = SignColumns::of(order.iter().map(|&i| &signs[i]));
    let rows = columns.bind_to(query(
        "UPDATE servers s SET last_seen_at = GREATEST(s.last_seen_at, u.received_at),
             next_check_at = CASE WHEN u.received_at >= s.last_seen_at THEN u.next_check_at
                                  ELSE COALESCE(s.next_check_at, u.next_check_at) END,
             interval_ms = u.interval_ms, last_sequence = u.last_sequence,
             last_digest = u.last_digest, missed = 0, unavailable_since = NULL
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bigint[],
                     $9::bigint[])
             WITH ORDINALITY AS u (slc, server_id, received_at, interval_ms, last_sequence, last_digest, next_check_at,
                                   remembered, n)
         WHERE s.slc = u.slc AND s.server_id = u.server_id AND s.state = 0
           AND (s.last_sequence # $8::bigint) < (u.last_sequence # $8::bigint)
           AND (u.remembered IS NULL
                OR (s.next_check_at IS NOT NULL
                    AND (SELECT i.admission_version FROM installations i WHERE i.slc = u.slc) = u.remembered))
         RETURNING u.n",
    )
    )
    .bind(codec::SEQ_ORDER_FLIP)
    .bind(
        order
            .iter()
            .map(|&i| signs[i].remembered.map(|v| v.0))
            .collect::<Vec<Option<i64>>>(),
    )
    .fetch_all(&mut *c)
    .await?;
    let mut applied = vec![false; signs.len()];
    for row in &rows {
        let n = col::<i64>(row, 0)?;
        let position = usize::try_from(n - 1).ok().and_then(|k| order.get(k));
        if let Some(slot) = position.and_then(|&i| applied.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(applied)
}

/// Signs of life as the column arrays the `UNNEST` statements bind ($1 to
/// $7: slc, server, received_at, interval, sequence, digest,
/// next_check_at), in the order given.
pub(crate) struct SignColumns<'a> {
    pub(crate) slcs: Vec<&'a str>,
    pub(crate) servers: Vec<&'a str>,
    pub(crate) received: Vec<i64>,
    pub(crate) intervals: Vec<i64>,
    pub(crate) sequences: Vec<i64>,
    pub(crate) digests: Vec<&'a [u8]>,
    pub(crate) next_checks: Vec<i64>,
}

impl<'a> SignColumns<'a> {
    pub(crate) fn of(signs: impl ExactSizeIterator<Item = &'a SignOfLife>) -> Self {
        let n = signs.len();
        let mut columns = Self {
            slcs: Vec::with_capacity(n),
            servers: Vec::with_capacity(n),
            received: Vec::with_capacity(n),
            intervals: Vec::with_capacity(n),
            sequences: Vec::with_capacity(n),
            digests: Vec::with_capacity(n),
            next_checks: Vec::with_capacity(n),
        };
        for sign in signs {
            columns.slcs.push(sign.slc.as_str());
            columns.servers.push(sign.server.as_str());
            columns.received.push(sign.received_at.as_millis());
            columns.intervals.push(ms(sign.interval));
            columns
                .sequences
                .push(sequence_to_column(sign.cursor.sequence));
            columns.digests.push(&sign.cursor.digest.0[..]);
            columns.next_checks.push(sign.next_check_at.as_millis());
        }
        columns
    }

    /// `statement` with these columns bound as $1 to $7.
    pub(crate) fn bind_to(
        self,
        statement: Query<'a, Postgres, PgArguments>,
    ) -> Query<'a, Postgres, PgArguments> {
        statement
            .bind(self.slcs)
            .bind(self.servers)
            .bind(self.received)
            .bind(self.intervals)
            .bind(self.sequences)
            .bind(self.digests)
            .bind(self.next_checks)
    }
}

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
/// [`summary::refresh`] would one by one: taken up front by multi-row writers
/// so their lock order is the same everywhere.
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

/// What touching a server row did.
enum Touch {
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
async fn touch_server(
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
    let mut first_sights = super::first_sight::record_first_sights(c, batch, &mut rows).await?;
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

pub(crate) async fn apply_status_report(
    c: &mut PgConnection,
    report: &StatusWrite,
) -> DbResult<WriteOutcome> {
    let sign = &report.sign;
    let current = load_server(c, &sign.slc, &sign.server, true).await?;
    let availability_changed = match touch_server(c, sign, current).await?.0 {
        Touch::Duplicate => return Ok(WriteOutcome::Duplicate),
        Touch::Stale(last_accepted) => return Ok(WriteOutcome::Stale { last_accepted }),
        Touch::Applied {
            availability_changed,
        } => availability_changed,
    };
    // The server row is locked: nobody else changes its conditions now.
    let active = active_conditions(c, &sign.slc, &sign.server).await?;
    let writes = rules::snapshot_writes(&active, &report.snapshot, sign.received_at);
    let at = sign.received_at.as_millis();
    for (opened, history) in &writes.opened {
        query(
            "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sign.slc.as_str())
        .bind(sign.server.as_str())
        .bind(opened.code().as_str())
        .bind(opened.subject())
        .bind(opened.detail())
        .bind(at)
        .execute(&mut *c)
        .await?;
        history::record(c, &sign.slc, &sign.server, sign.received_at, history).await?;
    }
    for changed in &writes.detail_changed {
        query(
            "UPDATE conditions SET detail = $5
             WHERE slc = $1 AND server_id = $2 AND code = $3 AND subject = $4 AND resolved_at IS NULL",
        )
        .bind(sign.slc.as_str())
        .bind(sign.server.as_str())
        .bind(changed.code().as_str())
        .bind(changed.subject())
        .bind(changed.detail())
        .execute(&mut *c)
        .await?;
    }
    for (resolved, history) in &writes.resolved {
        query(
            "UPDATE conditions SET resolved_at = $5
             WHERE slc = $1 AND server_id = $2 AND code = $3 AND subject = $4 AND resolved_at IS NULL",
        )
        .bind(sign.slc.as_str())
        .bind(sign.server.as_str())
        .bind(resolved.code.as_str())
        .bind(resolved.subject.as_str())
        .bind(at)
        .execute(&mut *c)
        .await?;
        history::record(c, &sign.slc, &sign.server, sign.received_at, history).await?;
    }
    if availability_changed || !writes.is_empty() {
        return Ok(WriteOutcome::Applied(
            summary::refresh(c, &sign.slc, sign.received_at).await?,
        ));
    }
    Ok(WriteOutcome::Applied(None))
}

/// A server's active conditions (its row locked by the caller), in no
/// particular order.
pub(crate) async fn active_conditions(
    c: &mut PgConnection,
    slc: &Slc,
    server: &RecordingServerId,
) -> DbResult<Vec<ActiveCondition>> {
    let rows = query(
        "SELECT code, subject, detail, opened_at FROM conditions
         WHERE slc = $1 AND server_id = $2 AND resolved_at IS NULL",
    )
    .bind(slc.as_str())
    .bind(server.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut active = Vec::with_capacity(rows.len());
    for row in &rows {
        active.push(ActiveCondition {
            key: ConditionKey {
                code: codec::code(&col::<String>(row, 0)?)?,
                subject: col(row, 1)?,
            },
            detail: col(row, 2)?,
            opened_at: ts(col(row, 3)?),
        });
    }
    Ok(active)
}
