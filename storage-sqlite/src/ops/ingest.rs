//! Ingest: admission reads, signs of life and status reports.

use carewatch_core::availability::Availability;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::{KeyId, WrappedKey};
use carewatch_core::store::rules::{self, SignJudgement};
use carewatch_core::store::{
    Admission, AdmissionVersion, HistoryKind, SignOfLife, StatusWrite, WriteOutcome,
};
use carewatch_core::{ConditionCode, Result};
use rusqlite::{Connection, params};

use super::{history, summary};
use crate::codec::{self, RowExt, map_err, ms, server_columns};
use carewatch_core::store::columns::sequence_to_column;

pub(crate) fn admission(
    tx: &Connection,
    slc: &Slc,
    server: &RecordingServerId,
    key_id: KeyId,
) -> Result<Option<Admission>> {
    // One statement for the installation, its key and the server (each
    // found by its primary key). Before the plans were settled (QPSG, in
    // connection.rs) SQLite prepared this join again on every run, so it
    // was three statements. One, with the SLC and server id not read back
    // and checked again, saves about 6% of the server's instructions per
    // heartbeat (BENCHMARKS.md, "Instructions per heartbeat").
    let mut stmt = tx
        .prepare_cached(
            "SELECT i.reseller_id, i.product, i.product_version, i.subscription_expires_at,
                    i.consent, i.registered_at,
                    k.sealed,
                    s.server_id, s.first_seen_at, s.last_seen_at, s.interval_ms, s.last_sequence,
                    s.last_digest, s.state, s.missed, s.unavailable_since, s.next_check_at,
                    s.counted_from, i.admission_version,
                    d.last_sequence, d.last_digest
             FROM installations i
             LEFT JOIN installation_keys k
               ON k.slc = i.slc AND k.key_id = ?2 AND k.retired_at IS NULL
             LEFT JOIN servers s ON s.slc = i.slc AND s.server_id = ?3
             LEFT JOIN deleted_server_cursors d ON d.slc = i.slc AND d.server_id = ?3
             WHERE i.slc = ?1",
        )
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![slc.as_str(), key_id.get(), server.as_str()])
        .map_err(map_err)?;
    let Some(row) = rows.next().map_err(map_err)? else {
        return Ok(None);
    };
    let installation = codec::installation_of(row, 0, slc.clone())?;
    let key = row
        .col::<Option<Vec<u8>>>(6)?
        .map(|sealed| WrappedKey { id: key_id, sealed });
    // `s.server_id` is NULL when the server was never heard from.
    let (server, deleted_server_cursor) = match row.col::<Option<String>>(7)? {
        Some(_) => (
            Some(codec::server_state(row, 8, slc.clone(), server.clone())?),
            None,
        ),
        None => (None, codec::cursor(row, 19)?),
    };
    Ok(Some(Admission {
        installation,
        key,
        server,
        deleted_server_cursor,
        version: AdmissionVersion(row.col(18)?),
    }))
}

pub(crate) fn load_server(
    tx: &Connection,
    slc: &Slc,
    server: &RecordingServerId,
) -> Result<Option<carewatch_core::store::ServerRecord>> {
    let mut stmt = tx
        .prepare_cached(concat!(
            "SELECT ",
            server_columns!(),
            " FROM servers WHERE slc = ?1 AND server_id = ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query([slc.as_str(), server.as_str()])
        .map_err(map_err)?;
    rows.next().map_err(map_err)?.map(codec::server).transpose()
}

/// What touching a server row did.
enum Touch {
    /// Applied; `availability_changed` if the server was new, late or unavailable.
    Applied {
        availability_changed: bool,
    },
    Duplicate,
    Stale(u64),
    /// A remembered sign not in the common case (see [`SignOfLife::remembered`]).
    Readmit,
}

/// The in-place write of the common case, prepared once for a whole batch:
/// taking a statement from rusqlite's cache hashes and copies its text, and
/// putting it back does it again (about 2,000 instructions a heartbeat).
pub(crate) struct InPlace<'c> {
    statement: Option<rusqlite::CachedStatement<'c>>,
}

impl<'c> InPlace<'c> {
    pub(crate) fn new() -> Self {
        Self { statement: None }
    }

    /// The common case in one statement instead of a read and a write: the
    /// next message of a known, available, unparked server with a newer
    /// sequence (what the general path does for it, in the same columns).
    /// A sign received before the server's last one (another batch) still
    /// applies, as the general path applies it: `last_seen_at` keeps the
    /// later time, and the next check stays that time's. A remembered sign
    /// applies only while the installation's admission is still at its
    /// version (which the row carries: migration 0013). `false` if the server is in any other case, which the
    /// general path then settles (a parked server, whose installation's
    /// messages were refused, is read: a remembered admission may predate
    /// the refusal). Sequences from 2⁶³ on are stored as negative numbers;
    /// they take the general path, which compares them as unsigned.
    fn touch(&mut self, tx: &'c Connection, sign: &SignOfLife) -> Result<bool> {
        if i64::try_from(sign.cursor.sequence).is_err() {
            return Ok(false);
        }
        let statement = match &mut self.statement {
            Some(statement) => statement,
            empty => empty.insert(
                tx.prepare_cached(
                    "UPDATE servers SET last_seen_at = MAX(last_seen_at, ?3),
                         next_check_at = CASE WHEN ?3 >= last_seen_at THEN ?7 ELSE next_check_at END,
                         interval_ms = ?4, last_sequence = ?5, last_digest = ?6, missed = 0, unavailable_since = NULL
                     WHERE slc = ?1 AND server_id = ?2 AND state = 0 AND next_check_at IS NOT NULL
                         AND last_sequence >= 0 AND last_sequence < ?5
                         AND (?8 IS NULL OR admission_version = ?8)",
                )
                .map_err(map_err)?,
            ),
        };
        let (slc, server, received_at, interval, sequence, digest, next_check_at) =
            sign_parameters(sign);
        let changed = statement
            .execute(params![
                slc,
                server,
                received_at,
                interval,
                sequence,
                digest,
                next_check_at,
                sign.remembered.map(|version| version.0)
            ])
            .map_err(map_err)?;
        Ok(changed == 1)
    }
}

/// The sign-of-life part of any accepted message, with the sequence rule.
fn touch_server<'c>(
    tx: &'c Connection,
    in_place: &mut InPlace<'c>,
    sign: &SignOfLife,
) -> Result<Touch> {
    if in_place.touch(tx, sign)? {
        return Ok(Touch::Applied {
            availability_changed: false,
        });
    }
    if sign.remembered.is_some() {
        return Ok(Touch::Readmit);
    }
    let Some(current) = load_server(tx, &sign.slc, &sign.server)? else {
        tx.prepare_cached(
            "INSERT INTO servers (slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence, last_digest,
                 state, missed, unavailable_since, next_check_at)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, 0, 0, NULL, ?7)",
        )
        .and_then(|mut stmt| stmt.execute(sign_parameters(sign)))
        .map_err(map_err)?;
        history::record(
            tx,
            &sign.slc,
            &sign.server,
            sign.received_at,
            &HistoryKind::FirstSeen,
        )?;
        return Ok(Touch::Applied {
            availability_changed: true,
        });
    };
    let (last_seen, next_check, recovery) = match rules::judge_sign(&current, sign) {
        SignJudgement::Stale { last_accepted } => return Ok(Touch::Stale(last_accepted)),
        SignJudgement::Duplicate => return Ok(Touch::Duplicate),
        SignJudgement::Newer {
            last_seen_at,
            next_check_at,
            history,
        } => (last_seen_at, next_check_at, history),
    };
    tx.prepare_cached(
        "UPDATE servers SET last_seen_at = ?3, interval_ms = ?4, last_sequence = ?5, last_digest = ?6,
             state = 0, missed = 0, unavailable_since = NULL, next_check_at = ?7
         WHERE slc = ?1 AND server_id = ?2",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            sign.slc.as_str(),
            sign.server.as_str(),
            last_seen.as_millis(),
            ms(sign.interval),
            sequence_to_column(sign.cursor.sequence),
            &sign.cursor.digest.0[..],
            next_check.map(|t| t.as_millis()),
        ])
    })
    .map_err(map_err)?;
    if let Some(recovered) = recovery {
        resolve_unavailability(tx, sign, &recovered)?;
    }
    Ok(Touch::Applied {
        availability_changed: current.availability != Availability::Available,
    })
}

/// `?1` to `?7` of the statements that write a sign of life as it came:
/// SLC, server, received at, interval, sequence, digest, next check.
fn sign_parameters(sign: &SignOfLife) -> (&str, &str, i64, i64, i64, &[u8], i64) {
    (
        sign.slc.as_str(),
        sign.server.as_str(),
        sign.received_at.as_millis(),
        ms(sign.interval),
        sequence_to_column(sign.cursor.sequence),
        &sign.cursor.digest.0[..],
        sign.next_check_at.as_millis(),
    )
}

fn resolve_unavailability(
    tx: &Connection,
    sign: &SignOfLife,
    recovered: &HistoryKind,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE conditions SET resolved_at = ?4
         WHERE slc = ?1 AND server_id = ?2 AND code = ?3 AND resolved_at IS NULL",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            sign.slc.as_str(),
            sign.server.as_str(),
            ConditionCode::ServerUnavailable.as_str(),
            sign.received_at.as_millis()
        ])
    })
    .map_err(map_err)?;
    history::record(tx, &sign.slc, &sign.server, sign.received_at, recovered)
}

pub(crate) fn record_sign_of_life<'c>(
    tx: &'c Connection,
    in_place: &mut InPlace<'c>,
    sign: &SignOfLife,
) -> Result<WriteOutcome> {
    match touch_server(tx, in_place, sign)? {
        Touch::Readmit => Ok(WriteOutcome::Readmit),
        Touch::Duplicate => Ok(WriteOutcome::Duplicate),
        Touch::Stale(last_accepted) => Ok(WriteOutcome::Stale { last_accepted }),
        Touch::Applied {
            availability_changed: false,
        } => Ok(WriteOutcome::Applied(None)),
        Touch::Applied {
            availability_changed: true,
        } => Ok(WriteOutcome::Applied(summary::refresh(
            tx,
            &sign.slc,
            sign.received_at,
        )?)),
    }
}

pub(crate) fn apply_status_report(tx: &Connection, report: &StatusWrite) -> Result<WriteOutcome> {
    let sign = &report.sign;
    // Only a heartbeat is judged on a remembered admission.
    if sign.remembered.is_some() {
        return Ok(WriteOutcome::Readmit);
    }
    let availability_changed = match touch_server(tx, &mut InPlace::new(), sign)? {
        Touch::Readmit => return Ok(WriteOutcome::Readmit),
        Touch::Duplicate => return Ok(WriteOutcome::Duplicate),
        Touch::Stale(last_accepted) => return Ok(WriteOutcome::Stale { last_accepted }),
        Touch::Applied {
            availability_changed,
        } => availability_changed,
    };
    let active = super::lifecycle::active_conditions(tx, &sign.slc, &sign.server)?;
    let writes = rules::snapshot_writes(&active, &report.snapshot, sign.received_at);
    let at = sign.received_at.as_millis();
    for (opened, history) in &writes.opened {
        tx.prepare_cached(
            "INSERT INTO conditions (slc, server_id, code, subject, detail, opened_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![sign.slc.as_str(), sign.server.as_str(), opened.code().as_str(), opened.subject(), opened.detail(), at])
        })
        .map_err(map_err)?;
        history::record(tx, &sign.slc, &sign.server, sign.received_at, history)?;
    }
    for changed in &writes.detail_changed {
        tx.prepare_cached(
            "UPDATE conditions SET detail = ?5
             WHERE slc = ?1 AND server_id = ?2 AND code = ?3 AND subject = ?4 AND resolved_at IS NULL",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![sign.slc.as_str(), sign.server.as_str(), changed.code().as_str(), changed.subject(), changed.detail()])
        })
        .map_err(map_err)?;
    }
    for (resolved, history) in &writes.resolved {
        tx.prepare_cached(
            "UPDATE conditions SET resolved_at = ?5
             WHERE slc = ?1 AND server_id = ?2 AND code = ?3 AND subject = ?4 AND resolved_at IS NULL",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![sign.slc.as_str(), sign.server.as_str(), resolved.code.as_str(), resolved.subject, at])
        })
        .map_err(map_err)?;
        history::record(tx, &sign.slc, &sign.server, sign.received_at, history)?;
    }
    if availability_changed || !writes.is_empty() {
        return Ok(WriteOutcome::Applied(summary::refresh(
            tx,
            &sign.slc,
            sign.received_at,
        )?));
    }
    Ok(WriteOutcome::Applied(None))
}
