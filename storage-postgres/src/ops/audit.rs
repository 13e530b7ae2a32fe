//! The audit log (see `Store::append_audit`).

use carewatch_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use carewatch_core::store::columns::{ActorColumns, audit_record};
use sqlx_core::query::query;
use sqlx_postgres::PgConnection;

use crate::codec::col;
use crate::errors::DbResult;

pub(crate) async fn append_audit(c: &mut PgConnection, record: &AuditRecord) -> DbResult<()> {
    let actor = ActorColumns::from(&record.actor);
    query(
        "INSERT INTO audit_log (at, actor_kind, actor_reseller, actor_name, action, target, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.at.as_millis())
    .bind(actor.kind)
    .bind(actor.reseller)
    .bind(actor.name)
    .bind(record.action.name())
    .bind(record.target.as_str())
    .bind(record.detail.as_str())
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(crate) async fn audit_log(
    c: &mut PgConnection,
    filter: &AuditQuery,
) -> DbResult<Vec<AuditEntry>> {
    let before = filter
        .before
        .map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
    let team = filter.team.as_ref().map(|r| r.as_str());
    let sql = if team.is_some() {
        "SELECT id, at, actor_kind, actor_reseller, actor_name, action, target, detail
         FROM audit_log WHERE actor_reseller = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    } else {
        "SELECT id, at, actor_kind, actor_reseller, actor_name, action, target, detail
         FROM audit_log WHERE $1::text IS NULL AND id < $2 ORDER BY id DESC LIMIT $3"
    };
    let rows = query(sql)
        .bind(team)
        .bind(before)
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = col(row, 2)?;
        let reseller: Option<String> = col(row, 3)?;
        let name: String = col(row, 4)?;
        let action: String = col(row, 5)?;
        let actor = ActorColumns {
            kind: &kind,
            reseller: reseller.as_deref(),
            name: &name,
        };
        out.push(AuditEntry {
            id: u64::try_from(col::<i64>(row, 0)?).unwrap_or(0),
            record: audit_record(col(row, 1)?, actor, &action, col(row, 6)?, col(row, 7)?)?,
        });
    }
    Ok(out)
}
