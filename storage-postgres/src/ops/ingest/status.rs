//! Status reports: the sign of life they carry (the locking path), then
//! the server's conditions opened, changed and resolved as the core's
//! rules say.

use carewatch_core::condition::ConditionKey;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::store::rules::{self, ActiveCondition};
use carewatch_core::store::{StatusWrite, WriteOutcome};
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use super::locks::load_server;
use super::signs::{Touch, touch_server};
use crate::codec::{self, col, ts};
use crate::errors::DbResult;
use crate::ops::{history, summary};

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
