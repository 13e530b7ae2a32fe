//! Notifications: channels, the notifier's lease and
//! states, and putting entries in the outbox (the notifier's and a channel
//! test's; delivering them is in `outbox`). Each function runs inside the
//! one transaction of its store call.
//!
//! Locks, always taken in this order: the `notifier` row (the lease, then a
//! step's commit), a channel's row (deleted by `delete_channel`, shared by a
//! commit or an enqueue that writes for it, updated by `finish_delivery`),
//! then outbox rows (claims take them with `FOR UPDATE SKIP LOCKED`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use carewatch_core::Error;
use carewatch_core::feed::EventId;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryStatus, NewOutboxEntry, NotificationState,
    NotifierCommit, NotifierMark,
};
use carewatch_core::store::columns::PhaseColumns;
use carewatch_core::store::limits;
use carewatch_core::team::Login;
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use crate::codec::{self, col, duration, ms, ts};
use crate::errors::{DbResult, corrupt, on_insert};

/// The error given to pending entries of a deleted channel.
const CHANNEL_DELETED: &str = "channel deleted";

pub(super) fn reseller_not_found(reseller: &ResellerId) -> Error {
    Error::NotFound {
        what: format!("reseller {reseller}"),
    }
}

/// Locks `reseller`'s row until COMMIT against other stores bounded by
/// `store::limits` (`NotFound` if there is no such reseller), so that a
/// count read after it stays true until the insert. NO KEY UPDATE: rows
/// that merely refer to the reseller (their foreign-key checks take KEY
/// SHARE) are not held up. The count is a statement of its own, after the
/// lock, and READ COMMITTED: it sees what the previous holder committed.
pub(super) async fn lock_reseller_for_bounded_insert(
    c: &mut PgConnection,
    reseller: &ResellerId,
) -> DbResult<()> {
    query("SELECT 1 FROM resellers WHERE id = $1 FOR NO KEY UPDATE")
        .bind(reseller.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| reseller_not_found(reseller))?;
    Ok(())
}

pub(super) fn channel_id(text: &str) -> DbResult<ChannelId> {
    Ok(ChannelId::new(text).map_err(|e| corrupt("channel id", e))?)
}

pub(super) fn login(text: &str) -> DbResult<Login> {
    Ok(Login::new(text).map_err(|e| corrupt("login", e))?)
}

pub(super) fn count(stored: i64, what: &str) -> DbResult<u32> {
    Ok(u32::try_from(stored).map_err(|e| corrupt(what, e))?)
}

fn event_column(id: EventId) -> DbResult<i64> {
    Ok(i64::try_from(id.0).map_err(|e| Error::InvalidInput {
        field: "feed position",
        reason: e.to_string(),
    })?)
}

/// A channel's chosen installations, one SLC per line (`None`: all).
fn installations_column(rules: &ChannelRules) -> Option<String> {
    rules
        .installations
        .as_ref()
        .map(|slcs| slcs.iter().map(Slc::as_str).collect::<Vec<_>>().join("\n"))
}

fn installations(text: Option<String>) -> DbResult<Option<Vec<Slc>>> {
    Ok(text
        .map(|text| text.lines().map(codec::slc).collect())
        .transpose()?)
}

// ----- channels --------------------------------------------------------------

macro_rules! channel_columns {
    () => {
        "id, reseller_id, name, kind, sealed, attention, installations, hold_ms, reminder_ms, \
         created_at, created_by, last_attempt_at, last_error, failures_in_a_row"
    };
}

fn channel(row: &PgRow) -> DbResult<ChannelRecord> {
    Ok(ChannelRecord {
        id: channel_id(&col::<String>(row, 0)?)?,
        reseller: codec::reseller_id(&col::<String>(row, 1)?)?,
        name: col(row, 2)?,
        kind: col(row, 3)?,
        sealed: col(row, 4)?,
        rules: ChannelRules {
            attention: col(row, 5)?,
            installations: installations(col(row, 6)?)?,
            hold: duration(col(row, 7)?),
            reminder: col::<Option<i64>>(row, 8)?.map(duration),
        },
        created_at: ts(col(row, 9)?),
        created_by: login(&col::<String>(row, 10)?)?,
        status: DeliveryStatus {
            last_attempt_at: col::<Option<i64>>(row, 11)?.map(ts),
            last_error: col(row, 12)?,
            failures_in_a_row: count(col(row, 13)?, "failures in a row")?,
        },
    })
}

pub(crate) async fn create_channel(c: &mut PgConnection, ch: &ChannelRecord) -> DbResult<()> {
    lock_reseller_for_bounded_insert(c, &ch.reseller).await?;
    let existing = query("SELECT count(*) FROM channels WHERE reseller_id = $1")
        .bind(ch.reseller.as_str())
        .fetch_one(&mut *c)
        .await?;
    let existing: i64 = col(&existing, 0)?;
    limits::room_for_channel(usize::try_from(existing).unwrap_or(usize::MAX))?;
    query(concat!(
        "INSERT INTO channels (",
        channel_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(ch.id.as_str())
    .bind(ch.reseller.as_str())
    .bind(ch.name.as_str())
    .bind(ch.kind.as_str())
    .bind(ch.sealed.as_slice())
    .bind(ch.rules.attention)
    .bind(installations_column(&ch.rules))
    .bind(ms(ch.rules.hold))
    .bind(ch.rules.reminder.map(ms))
    .bind(ch.created_at.as_millis())
    .bind(ch.created_by.as_str())
    .bind(ch.status.last_attempt_at.map(Timestamp::as_millis))
    .bind(ch.status.last_error.as_deref())
    .bind(i64::from(ch.status.failures_in_a_row))
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || format!("channel {}", ch.id),
            || reseller_not_found(&ch.reseller),
        )
    })?;
    Ok(())
}

pub(crate) async fn channels(
    c: &mut PgConnection,
    reseller: Option<&ResellerId>,
) -> DbResult<Vec<ChannelRecord>> {
    let rows = query(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM channels WHERE $1::text IS NULL OR reseller_id = $1 ORDER BY created_at, id"
    ))
    .bind(reseller.map(ResellerId::as_str))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(channel).collect()
}

pub(crate) async fn delete_channel(
    c: &mut PgConnection,
    reseller: &ResellerId,
    id: &ChannelId,
    at: Timestamp,
) -> DbResult<()> {
    // The channel's row first: it waits for a notifier commit or an enqueue
    // writing for it (they share-lock it), so the entries they add are
    // committed, and seen by the UPDATE below (a statement of its own,
    // with its own snapshot), before they are given up.
    let deleted = query("DELETE FROM channels WHERE id = $1 AND reseller_id = $2")
        .bind(id.as_str())
        .bind(reseller.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound {
            what: format!("channel {id}"),
        }
        .into());
    }
    // Already gone by the foreign key's cascade; said here too.
    query("DELETE FROM notification_states WHERE channel_id = $1")
        .bind(id.as_str())
        .execute(&mut *c)
        .await?;
    query(
        "UPDATE outbox SET failed_at = $2, last_error = $3, claimed_by = NULL, claimed_until = NULL
         WHERE channel_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
    )
    .bind(id.as_str())
    .bind(at.as_millis())
    .bind(CHANNEL_DELETED)
    .execute(&mut *c)
    .await?;
    Ok(())
}

// ----- the notifier --------------------------------------------------------------

pub(crate) async fn release_notifier_lease(c: &mut PgConnection, node: &str) -> DbResult<bool> {
    let done = query("UPDATE notifier SET holder = NULL, lease_until = 0 WHERE holder = $1")
        .bind(node)
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn notifier_position(c: &mut PgConnection) -> DbResult<NotifierMark> {
    let row = query("SELECT cursor, nudges FROM notifier")
        .fetch_one(&mut *c)
        .await?;
    notifier_mark(&row)
}

/// A `notifier` row's cursor and nudges (its first two columns).
fn notifier_mark(row: &PgRow) -> DbResult<NotifierMark> {
    Ok(NotifierMark {
        position: EventId(
            u64::try_from(col::<i64>(row, 0)?).map_err(|e| corrupt("notifier position", e))?,
        ),
        nudges: u64::try_from(col::<i64>(row, 1)?).map_err(|e| corrupt("notifier nudges", e))?,
    })
}

pub(crate) async fn notifier_lease(
    c: &mut PgConnection,
    node: &str,
    now: Timestamp,
    lease: std::time::Duration,
) -> DbResult<Option<NotifierMark>> {
    // One conditional UPDATE: two nodes asking together serialise on the
    // row, and the second re-checks the condition on the first one's row.
    let row = query(
        "UPDATE notifier SET holder = $1, lease_until = $3
         WHERE holder IS NULL OR holder = $1 OR lease_until <= $2
         RETURNING cursor, nudges",
    )
    .bind(node)
    .bind(now.as_millis())
    .bind(now.saturating_add(lease).as_millis())
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(notifier_mark).transpose()
}

/// Counts a nudge (states made due from outside the notifier): a step
/// that took its lease before it is not written. The `notifier` row is
/// locked here, before any state row, in the order a step's commit takes
/// them.
pub(crate) async fn nudge_notifier(c: &mut PgConnection) -> DbResult<()> {
    query("UPDATE notifier SET nudges = nudges + 1")
        .execute(&mut *c)
        .await?;
    Ok(())
}

macro_rules! state_columns {
    () => {
        "channel_id, slc, kind, health, since, told_at, reminders, changed_health, changed_at, \
         muted, recovered_at, due_at"
    };
}

fn state(row: &PgRow) -> DbResult<NotificationState> {
    let kind: String = col(row, 2)?;
    let columns = PhaseColumns {
        kind: &kind,
        health: col(row, 3)?,
        since: col(row, 4)?,
        told_at: col(row, 5)?,
        reminders: col(row, 6)?,
        changed_health: col(row, 7)?,
        changed_at: col(row, 8)?,
        muted: col(row, 9)?,
        recovered_at: col(row, 10)?,
    };
    Ok(NotificationState {
        channel: channel_id(&col::<String>(row, 0)?)?,
        slc: codec::slc(&col::<String>(row, 1)?)?,
        phase: columns.decode()?,
        due_at: col::<Option<i64>>(row, 11)?.map(ts),
    })
}

pub(crate) async fn notification_states(
    c: &mut PgConnection,
    keys: &[(ChannelId, Slc)],
) -> DbResult<Vec<NotificationState>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let channels: Vec<&str> = keys.iter().map(|(ch, _)| ch.as_str()).collect();
    let slcs: Vec<&str> = keys.iter().map(|(_, slc)| slc.as_str()).collect();
    let rows = query(concat!(
        "SELECT ",
        state_columns!(),
        " FROM notification_states
         WHERE (channel_id, slc) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         ORDER BY channel_id, slc"
    ))
    .bind(channels)
    .bind(slcs)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(state).collect()
}

pub(crate) async fn due_notification_states(
    c: &mut PgConnection,
    now: Timestamp,
    limit: u32,
) -> DbResult<Vec<NotificationState>> {
    let rows = query(concat!(
        "SELECT ",
        state_columns!(),
        " FROM notification_states WHERE due_at <= $1
         ORDER BY due_at, channel_id, slc LIMIT $2"
    ))
    .bind(now.as_millis())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(state).collect()
}

/// What a notifier write may touch now, locked until COMMIT: each stored
/// channel's reseller (key-share locked: a concurrent `delete_channel`
/// waits for this transaction, or this one finds the channel gone), and
/// each installation's reseller (key-share locked: a concurrent transfer,
/// which locks the row FOR UPDATE, waits for this transaction and then
/// deletes what it wrote, or this one sees the new owner; ingest's updates
/// of the row do not wait). States and entries of a deleted channel, or about an
/// installation that left the channel's reseller, are not written.
struct Writable {
    channels: BTreeMap<String, String>,
    owners: BTreeMap<String, String>,
}

impl Writable {
    async fn lock<'a>(
        c: &mut PgConnection,
        channels: impl IntoIterator<Item = &'a ChannelId>,
        slcs: impl IntoIterator<Item = &'a Slc>,
    ) -> DbResult<Self> {
        let ids: BTreeSet<&str> = channels.into_iter().map(ChannelId::as_str).collect();
        let slcs: BTreeSet<&str> = slcs.into_iter().map(Slc::as_str).collect();
        let mut writable = Self {
            channels: BTreeMap::new(),
            owners: BTreeMap::new(),
        };
        if !ids.is_empty() {
            let rows = query(
                "SELECT id, reseller_id FROM channels WHERE id = ANY($1::text[])
                 ORDER BY id FOR KEY SHARE",
            )
            .bind(ids.into_iter().collect::<Vec<_>>())
            .fetch_all(&mut *c)
            .await?;
            for row in &rows {
                writable
                    .channels
                    .insert(col::<String>(row, 0)?, col::<String>(row, 1)?);
            }
        }
        if !slcs.is_empty() {
            let rows = query(
                "SELECT slc, reseller_id FROM installations WHERE slc = ANY($1::text[])
                 ORDER BY slc FOR KEY SHARE",
            )
            .bind(slcs.into_iter().collect::<Vec<_>>())
            .fetch_all(&mut *c)
            .await?;
            for row in &rows {
                writable
                    .owners
                    .insert(col::<String>(row, 0)?, col::<String>(row, 1)?);
            }
        }
        Ok(writable)
    }

    /// A state of `channel` about `slc`: the channel exists and its reseller
    /// owns the installation.
    fn state(&self, channel: &str, slc: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|reseller| self.owners.get(slc) == Some(reseller))
    }

    /// An entry: its channel exists and, if it is about an installation,
    /// the entry's reseller owns it.
    fn entry(&self, e: &NewOutboxEntry) -> bool {
        self.channels.contains_key(e.channel.as_str())
            && e.slc.as_ref().is_none_or(|slc| {
                self.owners.get(slc.as_str()).map(String::as_str) == Some(e.reseller.as_str())
            })
    }
}

/// The outbox insert: the entries in the given order, a key already there
/// (or twice) left alone; `$7`, `$8` the claim, if any, taken by the
/// entries not held (`$10`).
macro_rules! insert_outbox_sql {
    () => {
        "INSERT INTO outbox (channel_id, reseller_id, slc, idempotency_key, body, created_at,
             attempts, next_attempt_at, claimed_by, claimed_until, held_until)
         SELECT e.channel_id, e.reseller_id, e.slc, e.idempotency_key, e.body, e.created_at,
             0, e.first_attempt_at,
             CASE WHEN e.held THEN NULL ELSE $7 END, CASE WHEN e.held THEN NULL ELSE $8 END,
             CASE WHEN e.held THEN e.first_attempt_at END
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                 $9::bigint[], $10::boolean[])
             WITH ORDINALITY AS e (channel_id, reseller_id, slc, idempotency_key, body, created_at,
                 first_attempt_at, held, n)
         ORDER BY e.n
         ON CONFLICT (idempotency_key) DO NOTHING"
    };
}

/// Inserts the writable entries (claimed by `claim`'s node until its
/// instant, when given); the id each was inserted with, in order, `None`
/// where it was not (not writable, or its key already there).
async fn insert_outbox(
    c: &mut PgConnection,
    entries: &[NewOutboxEntry],
    writable: &Writable,
    claim: Option<(&str, Timestamp)>,
) -> DbResult<Vec<Option<u64>>> {
    let written: Vec<&NewOutboxEntry> = entries.iter().filter(|e| writable.entry(e)).collect();
    if written.is_empty() {
        return Ok(vec![None; entries.len()]);
    }
    let channel: Vec<&str> = written.iter().map(|e| e.channel.as_str()).collect();
    let reseller: Vec<&str> = written.iter().map(|e| e.reseller.as_str()).collect();
    let slc: Vec<Option<&str>> = written
        .iter()
        .map(|e| e.slc.as_ref().map(Slc::as_str))
        .collect();
    let key: Vec<&str> = written.iter().map(|e| e.key.as_str()).collect();
    let body: Vec<&str> = written.iter().map(|e| e.body.as_str()).collect();
    let created: Vec<i64> = written.iter().map(|e| e.created_at.as_millis()).collect();
    let first_attempts: Vec<i64> = written
        .iter()
        .map(|e| e.first_attempt_at.as_millis())
        .collect();
    let held: Vec<bool> = written.iter().map(|e| e.held()).collect();
    let (node, until) = claim.map_or((None, None), |(node, until)| {
        (Some(node), Some(until.as_millis()))
    });
    // In the given order, so ids follow it; a key already there (or twice
    // here) is left alone. The ids are returned only for a claim: nobody
    // else asks for them.
    let insert = query(if claim.is_some() {
        concat!(insert_outbox_sql!(), " RETURNING id, idempotency_key")
    } else {
        insert_outbox_sql!()
    })
    .bind(channel)
    .bind(reseller)
    .bind(slc)
    .bind(key)
    .bind(body)
    .bind(created)
    .bind(node)
    .bind(until)
    .bind(first_attempts)
    .bind(held);
    if claim.is_none() {
        insert.execute(&mut *c).await?;
        return Ok(vec![None; entries.len()]);
    }
    let rows = insert.fetch_all(&mut *c).await?;
    let mut inserted: HashMap<String, u64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = col(row, 0)?;
        let id = u64::try_from(id).map_err(|e| corrupt("outbox id", e))?;
        inserted.insert(col(row, 1)?, id);
    }
    // The first writable entry with a key is the one inserted (rows go in
    // in `ORDINALITY` order; were it otherwise, a later duplicate of a key
    // would get the id, and duplicates carry the same body).
    Ok(entries
        .iter()
        .map(|e| {
            if writable.entry(e) {
                inserted.remove(&e.key)
            } else {
                None
            }
        })
        .collect())
}

/// The ids of the inserted entries as [`insert_outbox`] gives them, or
/// `None` when the commit is refused.
pub(crate) async fn commit_notifications(
    c: &mut PgConnection,
    commit: &NotifierCommit,
) -> DbResult<Option<Vec<Option<u64>>>> {
    // The lease row, locked until COMMIT: the lease cannot pass to another
    // node, nor another step commit, between this check and the writes.
    let row = query("SELECT holder, cursor, nudges FROM notifier FOR UPDATE")
        .fetch_one(&mut *c)
        .await?;
    let holder: Option<String> = col(&row, 0)?;
    let cursor: i64 = col(&row, 1)?;
    let nudges: i64 = col(&row, 2)?;
    if holder.as_deref() != Some(commit.node.as_str())
        || cursor != event_column(commit.from.position)?
        || u64::try_from(nudges).ok() != Some(commit.from.nudges)
    {
        return Ok(None);
    }
    let writable = Writable::lock(
        &mut *c,
        commit
            .states
            .iter()
            .map(|s| &s.channel)
            .chain(commit.outbox.iter().map(|e| &e.channel)),
        commit
            .states
            .iter()
            .map(|s| &s.slc)
            .chain(commit.outbox.iter().filter_map(|e| e.slc.as_ref())),
    )
    .await?;

    // One state per pair (the last given wins), Quiet ones deleted.
    let mut states: BTreeMap<(&str, &str), &NotificationState> = BTreeMap::new();
    for s in &commit.states {
        states.insert((s.channel.as_str(), s.slc.as_str()), s);
    }
    let (mut quiet_channels, mut quiet_slcs) = (Vec::new(), Vec::new());
    let mut upserts = Vec::new();
    for ((channel, slc), s) in states {
        match PhaseColumns::of(&s.phase) {
            None => {
                quiet_channels.push(channel);
                quiet_slcs.push(slc);
            }
            Some(p) if writable.state(channel, slc) => upserts.push((channel, slc, p, s.due_at)),
            Some(_) => {}
        }
    }
    if !quiet_channels.is_empty() {
        query(
            "DELETE FROM notification_states
             WHERE (channel_id, slc) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(quiet_channels)
        .bind(quiet_slcs)
        .execute(&mut *c)
        .await?;
    }
    if !upserts.is_empty() {
        query(concat!(
            "INSERT INTO notification_states (",
            state_columns!(),
            ") SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                 $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::boolean[],
                 $11::bigint[], $12::bigint[])
             ON CONFLICT (channel_id, slc) DO UPDATE SET
                 kind = excluded.kind, health = excluded.health, since = excluded.since,
                 told_at = excluded.told_at, reminders = excluded.reminders,
                 changed_health = excluded.changed_health, changed_at = excluded.changed_at,
                 muted = excluded.muted, recovered_at = excluded.recovered_at,
                 due_at = excluded.due_at"
        ))
        .bind(upserts.iter().map(|u| u.0).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.1).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.kind).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.health).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.since).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.told_at).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.reminders).collect::<Vec<_>>())
        .bind(
            upserts
                .iter()
                .map(|u| u.2.changed_health)
                .collect::<Vec<_>>(),
        )
        .bind(upserts.iter().map(|u| u.2.changed_at).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.muted).collect::<Vec<_>>())
        .bind(upserts.iter().map(|u| u.2.recovered_at).collect::<Vec<_>>())
        .bind(
            upserts
                .iter()
                .map(|u| u.3.map(Timestamp::as_millis))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *c)
        .await?;
    }
    let claim = commit
        .claim_until
        .map(|until| (commit.node.as_str(), until));
    let ids = insert_outbox(&mut *c, &commit.outbox, &writable, claim).await?;
    query("UPDATE notifier SET cursor = $1")
        .bind(event_column(commit.to)?)
        .execute(&mut *c)
        .await?;
    Ok(Some(ids))
}

pub(crate) async fn enqueue_notifications(
    c: &mut PgConnection,
    entries: &[NewOutboxEntry],
) -> DbResult<()> {
    let writable = Writable::lock(
        &mut *c,
        entries.iter().map(|e| &e.channel),
        entries.iter().filter_map(|e| e.slc.as_ref()),
    )
    .await?;
    insert_outbox(&mut *c, entries, &writable, None).await?;
    Ok(())
}

/// A channel's test, bounded per channel (`store::limits`).
pub(crate) async fn enqueue_channel_test(
    c: &mut PgConnection,
    entry: &NewOutboxEntry,
) -> DbResult<()> {
    lock_reseller_for_bounded_insert(c, &entry.reseller).await?;
    let owner = query("SELECT reseller_id FROM channels WHERE id = $1")
        .bind(entry.channel.as_str())
        .fetch_optional(&mut *c)
        .await?
        .map(|row| col::<String>(&row, 0))
        .transpose()?;
    if owner.as_deref() != Some(entry.reseller.as_str()) {
        return Err(Error::NotFound {
            what: format!("channel {}", entry.channel),
        }
        .into());
    }
    let prefix = limits::test_key_prefix(&entry.channel);
    let pending = query(
        "SELECT count(*) FROM outbox
         WHERE channel_id = $1 AND delivered_at IS NULL AND failed_at IS NULL
           AND left(idempotency_key, length($2)) = $2",
    )
    .bind(entry.channel.as_str())
    .bind(&prefix)
    .fetch_one(&mut *c)
    .await?;
    let pending: i64 = col(&pending, 0)?;
    let give_up = limits::tests_to_give_up(usize::try_from(pending).unwrap_or(usize::MAX));
    if give_up > 0 {
        query(
            "UPDATE outbox SET failed_at = $3, last_error = $4, claimed_by = NULL, claimed_until = NULL
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE channel_id = $1 AND delivered_at IS NULL AND failed_at IS NULL
                   AND left(idempotency_key, length($2)) = $2
                 ORDER BY id LIMIT $5)",
        )
        .bind(entry.channel.as_str())
        .bind(&prefix)
        .bind(entry.created_at.as_millis())
        .bind(limits::TEST_REPLACED)
        .bind(i64::try_from(give_up).unwrap_or(i64::MAX))
        .execute(&mut *c)
        .await?;
    }
    enqueue_notifications(c, std::slice::from_ref(entry)).await
}

// ----- the outbox ------------------------------------------------------------------
