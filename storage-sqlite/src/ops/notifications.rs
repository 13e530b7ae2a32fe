//! Notifications: channels, the notifier's lease and
//! states, and putting entries in the outbox (the notifier's and a channel
//! test's; delivering them is in `outbox`). Each function runs inside the
//! one transaction of its store call (writes go through the one writer
//! connection, so they are serialised: a lease is decided by one statement
//! at a time).

use std::collections::{HashMap, HashSet};

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
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{
    self, RowExt, corrupt, duration, is_foreign_key_violation, is_unique_violation, map_err, ms, ts,
};

/// The error given to pending entries of a deleted channel.
const CHANNEL_DELETED: &str = "channel deleted";

pub(super) fn reseller_not_found(reseller: &ResellerId) -> Error {
    Error::NotFound {
        what: format!("reseller {reseller}"),
    }
}

fn channel_not_found(id: &ChannelId) -> Error {
    Error::NotFound {
        what: format!("channel {id}"),
    }
}

pub(super) fn channel_id(text: &str) -> Result<ChannelId> {
    ChannelId::new(text).map_err(|e| corrupt("channel id", e))
}

pub(super) fn login(text: &str) -> Result<Login> {
    Login::new(text).map_err(|e| corrupt("login", e))
}

pub(super) fn count(stored: i64, what: &str) -> Result<u32> {
    u32::try_from(stored).map_err(|e| corrupt(what, e))
}

fn event_column(id: EventId) -> Result<i64> {
    i64::try_from(id.0).map_err(|e| Error::InvalidInput {
        field: "feed position",
        reason: e.to_string(),
    })
}

/// A channel's chosen installations, one SLC per line (`None`: all).
fn installations_column(rules: &ChannelRules) -> Option<String> {
    rules
        .installations
        .as_ref()
        .map(|slcs| slcs.iter().map(Slc::as_str).collect::<Vec<_>>().join("\n"))
}

fn installations(text: Option<String>) -> Result<Option<Vec<Slc>>> {
    text.map(|text| text.lines().map(codec::slc).collect())
        .transpose()
}

// ----- channels --------------------------------------------------------------

const CHANNEL_COLUMNS: &str = "id, reseller_id, name, kind, sealed, attention, installations, \
     hold_ms, reminder_ms, created_at, created_by, last_attempt_at, last_error, failures_in_a_row";

fn channel(row: &Row<'_>) -> Result<ChannelRecord> {
    Ok(ChannelRecord {
        id: channel_id(&row.col::<String>(0)?)?,
        reseller: codec::reseller_id(&row.col::<String>(1)?)?,
        name: row.col(2)?,
        kind: row.col(3)?,
        sealed: row.col(4)?,
        rules: ChannelRules {
            attention: row.col(5)?,
            installations: installations(row.col(6)?)?,
            hold: duration(row.col(7)?),
            reminder: row.col::<Option<i64>>(8)?.map(duration),
        },
        created_at: ts(row.col(9)?),
        created_by: login(&row.col::<String>(10)?)?,
        status: DeliveryStatus {
            last_attempt_at: row.col::<Option<i64>>(11)?.map(ts),
            last_error: row.col(12)?,
            failures_in_a_row: count(row.col(13)?, "failures in a row")?,
        },
    })
}

pub(crate) fn create_channel(tx: &Connection, c: &ChannelRecord) -> Result<()> {
    // Writes take turns on SQLite: the count cannot change before the insert.
    let existing: i64 = tx
        .query_row(
            "SELECT count(*) FROM channels WHERE reseller_id = ?1",
            [c.reseller.as_str()],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    limits::room_for_channel(usize::try_from(existing).unwrap_or(usize::MAX))?;
    tx.execute(
        &format!(
            "INSERT INTO channels ({CHANNEL_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            c.id.as_str(),
            c.reseller.as_str(),
            c.name,
            c.kind,
            c.sealed,
            c.rules.attention,
            installations_column(&c.rules),
            ms(c.rules.hold),
            c.rules.reminder.map(ms),
            c.created_at.as_millis(),
            c.created_by.as_str(),
            c.status.last_attempt_at.map(Timestamp::as_millis),
            c.status.last_error,
            i64::from(c.status.failures_in_a_row),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: format!("channel {}", c.id),
            }
        } else if is_foreign_key_violation(&e) {
            reseller_not_found(&c.reseller)
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

pub(crate) fn channels(
    tx: &Connection,
    reseller: Option<&ResellerId>,
) -> Result<Vec<ChannelRecord>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels
             WHERE ?1 IS NULL OR reseller_id = ?1
             ORDER BY created_at, id"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query([reseller.map(ResellerId::as_str)])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(channel(row)?);
    }
    Ok(out)
}

pub(crate) fn delete_channel(
    tx: &Connection,
    reseller: &ResellerId,
    id: &ChannelId,
    at: Timestamp,
) -> Result<()> {
    let deleted = tx
        .execute(
            "DELETE FROM channels WHERE id = ?1 AND reseller_id = ?2",
            params![id.as_str(), reseller.as_str()],
        )
        .map_err(map_err)?;
    if deleted == 0 {
        return Err(channel_not_found(id));
    }
    // The foreign key cascades too; said here so it does not depend on it.
    tx.execute(
        "DELETE FROM notification_states WHERE channel_id = ?1",
        [id.as_str()],
    )
    .map_err(map_err)?;
    tx.execute(
        "UPDATE outbox SET failed_at = ?2, last_error = ?3, claimed_by = NULL, claimed_until = NULL
         WHERE channel_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
        params![id.as_str(), at.as_millis(), CHANNEL_DELETED],
    )
    .map_err(map_err)?;
    Ok(())
}

// ----- the notifier --------------------------------------------------------------

pub(crate) fn release_notifier_lease(tx: &Connection, node: &str) -> Result<bool> {
    let released = tx
        .execute(
            "UPDATE notifier SET holder = NULL, lease_until = 0
             WHERE singleton = 1 AND holder = ?1",
            [node],
        )
        .map_err(map_err)?;
    Ok(released == 1)
}

pub(crate) fn notifier_position(tx: &Connection) -> Result<NotifierMark> {
    let (cursor, nudges): (i64, i64) = tx
        .query_row(
            "SELECT cursor, nudges FROM notifier WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(map_err)?;
    notifier_mark(cursor, nudges)
}

fn notifier_mark(cursor: i64, nudges: i64) -> Result<NotifierMark> {
    Ok(NotifierMark {
        position: EventId(u64::try_from(cursor).map_err(|e| corrupt("notifier position", e))?),
        nudges: u64::try_from(nudges).map_err(|e| corrupt("notifier nudges", e))?,
    })
}

pub(crate) fn notifier_lease(
    tx: &Connection,
    node: &str,
    now: Timestamp,
    lease: std::time::Duration,
) -> Result<Option<NotifierMark>> {
    let mark: Option<(i64, i64)> = tx
        .query_row(
            "UPDATE notifier SET holder = ?1, lease_until = ?3
             WHERE singleton = 1 AND (holder IS NULL OR holder = ?1 OR lease_until <= ?2)
             RETURNING cursor, nudges",
            params![node, now.as_millis(), now.saturating_add(lease).as_millis()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(map_err)?;
    mark.map(|(cursor, nudges)| notifier_mark(cursor, nudges))
        .transpose()
}

/// Counts a nudge (states made due from outside the notifier): a step
/// that took its lease before it is not written.
pub(crate) fn nudge_notifier(tx: &Connection) -> Result<()> {
    tx.execute(
        "UPDATE notifier SET nudges = nudges + 1 WHERE singleton = 1",
        [],
    )
    .map_err(map_err)?;
    Ok(())
}

const STATE_COLUMNS: &str = "channel_id, slc, kind, health, since, told_at, reminders, \
     changed_health, changed_at, muted, recovered_at, due_at";

fn state(row: &Row<'_>) -> Result<NotificationState> {
    let kind: String = row.col(2)?;
    let columns = PhaseColumns {
        kind: &kind,
        health: row.col(3)?,
        since: row.col(4)?,
        told_at: row.col(5)?,
        reminders: row.col(6)?,
        changed_health: row.col(7)?,
        changed_at: row.col(8)?,
        muted: row.col(9)?,
        recovered_at: row.col(10)?,
    };
    Ok(NotificationState {
        channel: channel_id(&row.col::<String>(0)?)?,
        slc: codec::slc(&row.col::<String>(1)?)?,
        phase: columns.decode()?,
        due_at: row.col::<Option<i64>>(11)?.map(ts),
    })
}

pub(crate) fn notification_states(
    tx: &Connection,
    keys: &[(ChannelId, Slc)],
) -> Result<Vec<NotificationState>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM notification_states WHERE channel_id = ?1 AND slc = ?2"
        ))
        .map_err(map_err)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (channel, slc) in keys {
        if !seen.insert((channel, slc)) {
            continue;
        }
        let mut rows = stmt
            .query(params![channel.as_str(), slc.as_str()])
            .map_err(map_err)?;
        if let Some(row) = rows.next().map_err(map_err)? {
            out.push(state(row)?);
        }
    }
    Ok(out)
}

pub(crate) fn due_notification_states(
    tx: &Connection,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<NotificationState>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM notification_states
             WHERE due_at IS NOT NULL AND due_at <= ?1
             ORDER BY due_at, channel_id, slc LIMIT ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![now.as_millis(), limit])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(state(row)?);
    }
    Ok(out)
}

/// What a notifier write may touch now: each stored channel's reseller
/// (states and entries of a channel deleted meanwhile are not written),
/// and each installation's reseller (nor those about an installation a
/// transfer moved away from the channel's reseller meanwhile).
struct Writable<'a> {
    channels: HashMap<&'a ChannelId, String>,
    owners: HashMap<&'a Slc, String>,
}

impl Writable<'_> {
    fn read<'a>(
        tx: &Connection,
        channels: impl IntoIterator<Item = &'a ChannelId>,
        slcs: impl IntoIterator<Item = &'a Slc>,
    ) -> Result<Writable<'a>> {
        let mut channel_stmt = tx
            .prepare_cached("SELECT reseller_id FROM channels WHERE id = ?1")
            .map_err(map_err)?;
        let mut known = HashMap::new();
        for id in channels {
            if !known.contains_key(id) {
                let reseller: Option<String> = channel_stmt
                    .query_row([id.as_str()], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                if let Some(reseller) = reseller {
                    known.insert(id, reseller);
                }
            }
        }
        let mut owner_stmt = tx
            .prepare_cached("SELECT reseller_id FROM installations WHERE slc = ?1")
            .map_err(map_err)?;
        let mut owners = HashMap::new();
        for slc in slcs {
            if !owners.contains_key(slc) {
                let owner: Option<String> = owner_stmt
                    .query_row([slc.as_str()], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                if let Some(owner) = owner {
                    owners.insert(slc, owner);
                }
            }
        }
        Ok(Writable {
            channels: known,
            owners,
        })
    }

    /// A state of `channel` about `slc`: the channel exists and its reseller
    /// owns the installation.
    fn state(&self, channel: &ChannelId, slc: &Slc) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|reseller| self.owners.get(slc) == Some(reseller))
    }

    /// An entry: its channel exists and, if it is about an installation,
    /// the entry's reseller owns it.
    fn entry(&self, e: &NewOutboxEntry) -> bool {
        self.channels.contains_key(&e.channel)
            && e.slc.as_ref().is_none_or(|slc| {
                self.owners.get(slc).map(String::as_str) == Some(e.reseller.as_str())
            })
    }
}

/// Inserts the writable entries (claimed by `claim`'s node until its
/// instant, when given, unless held); the id each was inserted with, in order, `None`
/// where it was not (not writable, or its key already there).
fn insert_outbox(
    tx: &Connection,
    entries: &[NewOutboxEntry],
    writable: &Writable<'_>,
    claim: Option<(&str, Timestamp)>,
) -> Result<Vec<Option<u64>>> {
    // Not RETURNING: SQLite gathers returned rows in a temporary table,
    // some 20,000 instructions a row here; a row inserted or left alone
    // is told by the count of rows changed.
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (channel_id, reseller_id, slc, idempotency_key, body, created_at,
                 attempts, next_attempt_at, claimed_by, claimed_until, held_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?9, ?7, ?8, ?10)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .map_err(map_err)?;
    let (node, until) = claim.map_or((None, None), |(node, until)| {
        (Some(node), Some(until.as_millis()))
    });
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        if !writable.entry(e) {
            ids.push(None);
            continue;
        }
        let (node, until) = if e.held() {
            (None, None)
        } else {
            (node, until)
        };
        let inserted = stmt
            .execute(params![
                e.channel.as_str(),
                e.reseller.as_str(),
                e.slc.as_ref().map(Slc::as_str),
                e.key,
                e.body,
                e.created_at.as_millis(),
                node,
                until,
                e.first_attempt_at.as_millis(),
                e.held().then(|| e.first_attempt_at.as_millis()),
            ])
            .map_err(map_err)?;
        ids.push(if inserted == 1 {
            Some(u64::try_from(tx.last_insert_rowid()).map_err(|e| corrupt("outbox id", e))?)
        } else {
            None
        });
    }
    Ok(ids)
}

/// The ids of the inserted entries as [`insert_outbox`] gives them, or
/// `None` when the commit is refused.
pub(crate) fn commit_notifications(
    tx: &Connection,
    commit: &NotifierCommit,
) -> Result<Option<Vec<Option<u64>>>> {
    let (holder, cursor, nudges): (Option<String>, i64, i64) = tx
        .query_row(
            "SELECT holder, cursor, nudges FROM notifier WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(map_err)?;
    if holder.as_deref() != Some(commit.node.as_str())
        || cursor != event_column(commit.from.position)?
        || u64::try_from(nudges).ok() != Some(commit.from.nudges)
    {
        return Ok(None);
    }
    let writable = Writable::read(
        tx,
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
    )?;
    let mut upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO notification_states ({STATE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (channel_id, slc) DO UPDATE SET
                 kind = excluded.kind, health = excluded.health, since = excluded.since,
                 told_at = excluded.told_at, reminders = excluded.reminders,
                 changed_health = excluded.changed_health, changed_at = excluded.changed_at,
                 muted = excluded.muted, recovered_at = excluded.recovered_at,
                 due_at = excluded.due_at"
        ))
        .map_err(map_err)?;
    let mut delete = tx
        .prepare_cached("DELETE FROM notification_states WHERE channel_id = ?1 AND slc = ?2")
        .map_err(map_err)?;
    for s in &commit.states {
        match PhaseColumns::of(&s.phase) {
            None => {
                delete
                    .execute(params![s.channel.as_str(), s.slc.as_str()])
                    .map_err(map_err)?;
            }
            Some(_) if !writable.state(&s.channel, &s.slc) => {}
            Some(p) => {
                upsert
                    .execute(params![
                        s.channel.as_str(),
                        s.slc.as_str(),
                        p.kind,
                        p.health,
                        p.since,
                        p.told_at,
                        p.reminders,
                        p.changed_health,
                        p.changed_at,
                        p.muted,
                        p.recovered_at,
                        s.due_at.map(Timestamp::as_millis),
                    ])
                    .map_err(map_err)?;
            }
        }
    }
    let claim = commit
        .claim_until
        .map(|until| (commit.node.as_str(), until));
    let ids = insert_outbox(tx, &commit.outbox, &writable, claim)?;
    tx.execute(
        "UPDATE notifier SET cursor = ?1 WHERE singleton = 1",
        [event_column(commit.to)?],
    )
    .map_err(map_err)?;
    Ok(Some(ids))
}

pub(crate) fn enqueue_notifications(tx: &Connection, entries: &[NewOutboxEntry]) -> Result<()> {
    let writable = Writable::read(
        tx,
        entries.iter().map(|e| &e.channel),
        entries.iter().filter_map(|e| e.slc.as_ref()),
    )?;
    insert_outbox(tx, entries, &writable, None)?;
    Ok(())
}

/// A channel's test, bounded per channel (`store::limits`).
pub(crate) fn enqueue_channel_test(tx: &Connection, entry: &NewOutboxEntry) -> Result<()> {
    // Writes take turns on SQLite: the count cannot change before the insert.
    let owner: Option<String> = tx
        .query_row(
            "SELECT reseller_id FROM channels WHERE id = ?1",
            [entry.channel.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    if owner.as_deref() != Some(entry.reseller.as_str()) {
        return Err(channel_not_found(&entry.channel));
    }
    let prefix = limits::test_key_prefix(&entry.channel);
    let pending: i64 = tx
        .query_row(
            "SELECT count(*) FROM outbox
             WHERE channel_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL
               AND substr(idempotency_key, 1, length(?2)) = ?2",
            params![entry.channel.as_str(), prefix],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    let give_up = limits::tests_to_give_up(usize::try_from(pending).unwrap_or(usize::MAX));
    if give_up > 0 {
        tx.execute(
            "UPDATE outbox SET failed_at = ?3, last_error = ?4, claimed_by = NULL, claimed_until = NULL
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE channel_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL
                   AND substr(idempotency_key, 1, length(?2)) = ?2
                 ORDER BY id LIMIT ?5)",
            params![
                entry.channel.as_str(),
                prefix,
                entry.created_at.as_millis(),
                limits::TEST_REPLACED,
                i64::try_from(give_up).unwrap_or(i64::MAX)
            ],
        )
        .map_err(map_err)?;
    }
    enqueue_notifications(tx, std::slice::from_ref(entry))
}
