//! The audit log (see `Store::append_audit`).

use carewatch_core::Result;
use carewatch_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use carewatch_core::store::columns::{ActorColumns, audit_record};
use rusqlite::{Connection, params};

use crate::codec::{RowExt, map_err};

pub(crate) fn append_audit(tx: &Connection, record: &AuditRecord) -> Result<()> {
    let actor = ActorColumns::from(&record.actor);
    tx.prepare_cached(
        "INSERT INTO audit_log (at, actor_kind, actor_reseller, actor_name, action, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.at.as_millis(),
            actor.kind,
            actor.reseller,
            actor.name,
            record.action.name(),
            record.target,
            record.detail
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn audit_log(tx: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let before = query
        .before
        .map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
    let team = query.team.as_ref().map(|r| r.as_str());
    // Two statements, so each seeks its index (the team's, or the ids).
    let sql = if team.is_some() {
        "SELECT id, at, actor_kind, actor_reseller, actor_name, action, target, detail
         FROM audit_log WHERE actor_reseller = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
    } else {
        "SELECT id, at, actor_kind, actor_reseller, actor_name, action, target, detail
         FROM audit_log WHERE ?1 IS NULL AND id < ?2 ORDER BY id DESC LIMIT ?3"
    };
    let mut stmt = tx.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt
        .query(params![team, before, query.limit])
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let kind: String = row.col(2)?;
        let reseller: Option<String> = row.col(3)?;
        let name: String = row.col(4)?;
        let action: String = row.col(5)?;
        let actor = ActorColumns {
            kind: &kind,
            reseller: reseller.as_deref(),
            name: &name,
        };
        out.push(AuditEntry {
            id: u64::try_from(row.col::<i64>(0)?).unwrap_or(0),
            record: audit_record(row.col(1)?, actor, &action, row.col(6)?, row.col(7)?)?,
        });
    }
    Ok(out)
}
