//! The hot path of heartbeats: an available server's newer sign of life
//! applied by one conditional UPDATE (one statement for a batch), no
//! transaction; what does not apply takes the locking path (`signs`).

use carewatch_core::store::SignOfLife;
use carewatch_core::store::columns::sequence_to_column;
use sqlx_core::query::{Query, query};
use sqlx_postgres::{PgArguments, PgConnection, Postgres};

use crate::codec::{self, col, ms};
use crate::errors::DbResult;

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
/// version. A parked server (no next check) takes the locking path, where
/// [`carewatch_core::store::rules::judge_sign`] keeps it parked.
pub(crate) async fn heartbeat_in_place(c: &mut PgConnection, sign: &SignOfLife) -> DbResult<bool> {
    let updated = query(
        "UPDATE servers SET last_seen_at = GREATEST(last_seen_at, $3),
             next_check_at = CASE WHEN $3 >= last_seen_at THEN $7 ELSE COALESCE(next_check_at, $7) END,
             interval_ms = $4, last_sequence = $5, last_digest = $6, missed = 0, unavailable_since = NULL
         WHERE slc = $1 AND server_id = $2 AND state = 0
           AND (last_sequence # $8::bigint) < ($5::bigint # $8::bigint)
           AND next_check_at IS NOT NULL
           AND ($9::bigint IS NULL
                OR (SELECT admission_version FROM installations WHERE slc = $1) = $9)",
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
           AND s.next_check_at IS NOT NULL
           AND (u.remembered IS NULL
                OR (SELECT i.admission_version FROM installations i WHERE i.slc = u.slc) = u.remembered)
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
