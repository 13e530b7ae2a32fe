//! Recording and reading the audit log ([`crate::audit`]).

use std::fmt::Display;

use super::Carewatch;
use crate::audit::{self, Action, Actor, AuditEntry, AuditQuery, AuditRecord};
use crate::error::Result;
use crate::ids::ResellerId;
use crate::team::{self, User};

impl Carewatch {
    /// Records an action that succeeded, by `actor` (`None`: the operator
    /// acting now, [`audit::as_operator`]). A record that cannot be written
    /// does not undo the action: it is logged in full instead, as an error.
    pub(super) async fn audited(
        &self,
        actor: Option<&User>,
        action: Action,
        target: impl Display,
        detail: impl Display,
    ) {
        let actor = actor.map_or_else(audit::current_operator, Actor::user);
        let record = AuditRecord::new(
            self.now(),
            actor,
            action,
            &target.to_string(),
            &detail.to_string(),
        );
        if let Err(e) = self.inner.store.append_audit(&record).await {
            tracing::error!(
                error = %e, actor = %record.actor, action = record.action.name(),
                target = %record.target, detail = %record.detail,
                "an action succeeded but its audit record could not be written"
            );
        }
    }

    /// The audit log as the operator reads it: everyone's actions, or one
    /// reseller's team's (`team`), newest first, older than `before` (the
    /// id of the last entry of the previous page).
    pub async fn audit_log(
        &self,
        team: Option<&ResellerId>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.inner
            .store
            .audit_log(&AuditQuery {
                team: team.cloned(),
                before,
                limit: limit.clamp(1, audit::MAX_PAGE),
            })
            .await
    }

    /// The audit log as a reseller admin reads it: its own team's actions.
    /// `PermissionDenied` for a viewer.
    pub async fn team_audit_log(
        &self,
        acting: &User,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        team::require_admin(acting)?;
        self.audit_log(Some(&acting.reseller), before, limit).await
    }
}
