//! First sights in a batch of signs of life, written together.
//!
//! Heard from for the first time, a recording server gets a row, a
//! `first_seen` history entry and change-feed event, and its installation's
//! summary moves (one more server): eight statements when written one by
//! one, so a fleet appearing at once (onboarding, a restored site) queued
//! behind them at about 800 servers/s. Here the batch's new servers take
//! eight statements together. The outcomes and events are those of writing
//! them one after another: each sign gets the summary change its server
//! made ([`health::summaries_as_servers_join`]), and the feed has each
//! server's `first_seen` followed by that change, in batch order within
//! each installation. Across installations, the batch's first sights come
//! before the events of the signs written one by one (a late server's
//! recovery, say), which a reader of the feed cannot tell apart from two
//! batches committed one after the other.

use std::collections::{BTreeSet, HashMap, HashSet};

use carewatch_core::availability::Availability;
use carewatch_core::catalogue::ConditionCode;
use carewatch_core::feed::Change;
use carewatch_core::health::{self, HealthSummary};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::store::columns::{AvailabilityColumns, HistoryColumns};
use carewatch_core::store::{HistoryKind, ServerRecord, SignOfLife, SummaryChange, WriteOutcome};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::feed;
use super::ingest::{ServerKey, SignColumns, lock_servers};
use crate::codec::{self, col, rank, summary_columns};
use crate::errors::DbResult;

/// Fewer new servers than this take the one-by-one path: the batched one
/// costs as many statements for one server.
const AT_LEAST: usize = 2;

/// Writes the first sights of `batch` that can be written together and
/// returns their outcomes by position in the batch; their rows are put in
/// `rows` (the batch's locked rows), so a later sign of the same server is
/// judged against them.
///
/// An installation's new servers are written here only if none of its
/// other signs in the batch moves its summary (a late or unavailable
/// server's): those installations, and a batch with fewer than
/// [`AT_LEAST`] new servers, take the one-by-one path. The installations'
/// rows must already be locked (`lock_installations`). A row another node
/// inserted meanwhile is locked and left to the caller, which judges the
/// sign against it (should that row not be Available, its summary change
/// comes after the batch's first sights).
pub(crate) async fn record_first_sights(
    c: &mut PgConnection,
    batch: &[SignOfLife],
    rows: &mut HashMap<ServerKey, ServerRecord>,
) -> DbResult<HashMap<usize, WriteOutcome>> {
    let new = new_servers(batch, rows);
    if new.len() < AT_LEAST {
        return Ok(HashMap::new());
    }
    let inserted = insert_servers(c, batch, &new).await?;
    let raced: BTreeSet<ServerKey> = new
        .iter()
        .map(|&i| key_of(&batch[i]))
        .filter(|key| !inserted.contains(key))
        .collect();
    if !raced.is_empty() {
        let locked = lock_servers(c, &raced).await?;
        if let Some((slc, server)) = raced.iter().find(|key| !locked.contains_key(*key)) {
            return Err(carewatch_core::Error::Storage {
                message: format!(
                    "recording server {server} of {slc} vanished while it was written"
                ),
                source: None,
            }
            .into());
        }
        rows.extend(locked);
    }
    let new: Vec<usize> = new
        .into_iter()
        .filter(|&i| inserted.contains(&key_of(&batch[i])))
        .collect();
    if new.is_empty() {
        return Ok(HashMap::new());
    }

    let slcs: BTreeSet<&Slc> = new.iter().map(|&i| &batch[i].slc).collect();
    let mut before = read_installations(c, &slcs, &inserted).await?;
    let mut outcomes = HashMap::with_capacity(new.len());
    let mut events: Vec<(usize, &Slc, Timestamp, Change)> = Vec::with_capacity(2 * new.len());
    for slc in &slcs {
        let Some(installation) = before.get_mut(*slc) else {
            return Err(carewatch_core::Error::installation_not_found(slc).into());
        };
        let joining: Vec<usize> = new
            .iter()
            .copied()
            .filter(|&i| &batch[i].slc == *slc)
            .collect();
        let steps = health::summaries_as_servers_join(
            &installation.summary,
            std::mem::take(&mut installation.servers),
            &installation.codes,
            joining.len(),
        );
        let mut previous = installation.summary.health;
        for (&i, step) in joining.iter().zip(steps) {
            let sign = &batch[i];
            events.push((
                i,
                &sign.slc,
                sign.received_at,
                Change::Server {
                    server: sign.server.clone(),
                    event: HistoryKind::FirstSeen,
                },
            ));
            let change = step.map(|summary| {
                let change = SummaryChange {
                    slc: sign.slc.clone(),
                    reseller: installation.reseller.clone(),
                    previous,
                    summary,
                    at: sign.received_at,
                };
                previous = change.summary.health;
                change
            });
            if let Some(change) = &change {
                events.push((
                    i,
                    &sign.slc,
                    sign.received_at,
                    Change::Health {
                        previous: change.previous,
                        summary: change.summary.clone(),
                    },
                ));
                installation.after = Some(change.summary.clone());
            }
            outcomes.insert(i, WriteOutcome::Applied(change));
        }
    }
    // In batch order, as written one by one.
    events.sort_by_key(|(i, ..)| *i);
    let events: Vec<(&Slc, Timestamp, Change)> = events
        .into_iter()
        .map(|(_, slc, at, e)| (slc, at, e))
        .collect();
    record_history(c, batch, &new).await?;
    feed::append_many(c, &events).await?;
    store_summaries(c, &before).await?;
    for &i in &new {
        let sign = &batch[i];
        rows.insert(key_of(sign), inserted_record(sign));
    }
    Ok(outcomes)
}

fn key_of(sign: &SignOfLife) -> ServerKey {
    (sign.slc.clone(), sign.server.clone())
}

/// Positions of the signs that are their server's first sight and can be
/// written together (see [`record_first_sights`]), in batch order.
fn new_servers(batch: &[SignOfLife], rows: &HashMap<ServerKey, ServerRecord>) -> Vec<usize> {
    // The common batch (every server known) leaves after one lookup each.
    let known: Vec<Option<&ServerRecord>> = batch.iter().map(|s| rows.get(&key_of(s))).collect();
    if known.iter().filter(|r| r.is_none()).count() < AT_LEAST {
        return Vec::new();
    }
    let moving: HashSet<&Slc> = batch
        .iter()
        .zip(&known)
        .filter(|(_, r)| r.is_some_and(|r| r.availability != Availability::Available))
        .map(|(s, _)| &s.slc)
        .collect();
    let mut seen: HashSet<(&Slc, &RecordingServerId)> = HashSet::new();
    batch
        .iter()
        .zip(&known)
        .enumerate()
        .filter(|(_, (s, r))| r.is_none() && !moving.contains(&s.slc))
        .filter(|(_, (s, _))| seen.insert((&s.slc, &s.server)))
        .map(|(i, _)| i)
        .collect()
}

/// The row a first sight inserts.
fn inserted_record(sign: &SignOfLife) -> ServerRecord {
    ServerRecord {
        slc: sign.slc.clone(),
        server: sign.server.clone(),
        first_seen_at: sign.received_at,
        last_seen_at: sign.received_at,
        interval: sign.interval,
        cursor: sign.cursor,
        availability: Availability::Available,
        next_check_at: Some(sign.next_check_at),
        counted_from: None,
    }
}

/// Inserts the rows of the servers at `new`; returns those inserted (a row
/// another node inserted first is left alone: `ON CONFLICT` waited for its
/// commit).
async fn insert_servers(
    c: &mut PgConnection,
    batch: &[SignOfLife],
    new: &[usize],
) -> DbResult<HashSet<ServerKey>> {
    let columns = SignColumns::of(new.iter().map(|&i| &batch[i]));
    let returned = columns.bind_to(query(
        "INSERT INTO servers (slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence,
             last_digest, state, missed, unavailable_since, next_check_at)
         SELECT slc, server_id, received_at, received_at, interval_ms, last_sequence, last_digest,
             0, 0, NULL, next_check_at
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bigint[])
             AS u (slc, server_id, received_at, interval_ms, last_sequence, last_digest, next_check_at)
         ORDER BY slc, server_id
         ON CONFLICT (slc, server_id) DO NOTHING
         RETURNING slc, server_id",
    )
    )
    .fetch_all(&mut *c)
    .await?;
    let mut inserted = HashSet::with_capacity(returned.len());
    for row in &returned {
        inserted.insert((
            codec::slc(&col::<String>(row, 0)?)?,
            codec::server_id(&col::<String>(row, 1)?)?,
        ));
    }
    Ok(inserted)
}

/// An installation before the batch's new servers: its stored summary, its
/// other servers and its open conditions; `after`, its summary once they
/// are in, if that differs.
struct Before {
    reseller: ResellerId,
    summary: HealthSummary,
    servers: Vec<Availability>,
    codes: Vec<ConditionCode>,
    after: Option<HealthSummary>,
}

/// Reads `slcs` as they were before the servers in `inserted` (whose rows
/// this transaction has just written) joined them.
async fn read_installations(
    c: &mut PgConnection,
    slcs: &BTreeSet<&Slc>,
    inserted: &HashSet<ServerKey>,
) -> DbResult<HashMap<Slc, Before>> {
    let names: Vec<&str> = slcs.iter().map(|slc| slc.as_str()).collect();
    let mut out: HashMap<Slc, Before> = HashMap::with_capacity(slcs.len());
    let rows = query(concat!(
        "SELECT slc, ",
        summary_columns!(),
        ", reseller_id FROM installations WHERE slc = ANY($1::text[])"
    ))
    .bind(&names)
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        out.insert(
            codec::slc(&col::<String>(row, 0)?)?,
            Before {
                summary: codec::summary(row, 1)?,
                reseller: codec::reseller_id(&col::<String>(row, 7)?)?,
                servers: Vec::new(),
                codes: Vec::new(),
                after: None,
            },
        );
    }
    let rows = query(
        "SELECT slc, server_id, state, missed, unavailable_since FROM servers
         WHERE slc = ANY($1::text[])",
    )
    .bind(&names)
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        let key = (
            codec::slc(&col::<String>(row, 0)?)?,
            codec::server_id(&col::<String>(row, 1)?)?,
        );
        if inserted.contains(&key) {
            continue;
        }
        let availability = AvailabilityColumns {
            state: col(row, 2)?,
            missed: col(row, 3)?,
            unavailable_since: col(row, 4)?,
        }
        .decode()?;
        if let Some(before) = out.get_mut(&key.0) {
            before.servers.push(availability);
        }
    }
    let rows = query(
        "SELECT slc, code FROM conditions WHERE slc = ANY($1::text[]) AND resolved_at IS NULL",
    )
    .bind(&names)
    .fetch_all(&mut *c)
    .await?;
    for row in &rows {
        let slc = codec::slc(&col::<String>(row, 0)?)?;
        let code = codec::code(&col::<String>(row, 1)?)?;
        if let Some(before) = out.get_mut(&slc) {
            before.codes.push(code);
        }
    }
    Ok(out)
}

/// The `first_seen` history entries of the servers at `new`.
async fn record_history(c: &mut PgConnection, batch: &[SignOfLife], new: &[usize]) -> DbResult<()> {
    let columns = HistoryColumns::from(&HistoryKind::FirstSeen);
    let slcs: Vec<&str> = new.iter().map(|&i| batch[i].slc.as_str()).collect();
    let at: Vec<i64> = new
        .iter()
        .map(|&i| batch[i].received_at.as_millis())
        .collect();
    let servers: Vec<&str> = new.iter().map(|&i| batch[i].server.as_str()).collect();
    query(
        "INSERT INTO history (slc, at, server_id, kind)
         SELECT slc, at, server_id, $4 FROM UNNEST($1::text[], $2::bigint[], $3::text[])
             AS u (slc, at, server_id)",
    )
    .bind(slcs)
    .bind(at)
    .bind(servers)
    .bind(columns.kind)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Stores the summaries the new servers moved.
async fn store_summaries(c: &mut PgConnection, before: &HashMap<Slc, Before>) -> DbResult<()> {
    let moved: Vec<(&Slc, &HealthSummary)> = before
        .iter()
        .filter_map(|(slc, b)| b.after.as_ref().map(|after| (slc, after)))
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    let slcs: Vec<&str> = moved.iter().map(|(slc, _)| slc.as_str()).collect();
    let health: Vec<i16> = moved.iter().map(|(_, s)| rank(s.health)).collect();
    let worst: Vec<Option<&str>> = moved
        .iter()
        .map(|(_, s)| s.worst.as_ref().map(ConditionCode::as_str))
        .collect();
    let count = |f: fn(&HealthSummary) -> u32| -> Vec<i64> {
        moved.iter().map(|(_, s)| i64::from(f(s))).collect()
    };
    query(
        "UPDATE installations i SET health = u.health, worst_code = u.worst_code, servers = u.servers,
             unavailable = u.unavailable, late = u.late, active_conditions = u.active_conditions
         FROM UNNEST($1::text[], $2::smallint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
             AS u (slc, health, worst_code, servers, unavailable, late, active_conditions)
         WHERE i.slc = u.slc",
    )
    .bind(slcs)
    .bind(health)
    .bind(worst)
    .bind(count(|s| s.servers))
    .bind(count(|s| s.unavailable))
    .bind(count(|s| s.late))
    .bind(count(|s| s.active_conditions))
    .execute(&mut *c)
    .await?;
    Ok(())
}
