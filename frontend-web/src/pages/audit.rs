//! The audit log for a reseller's admins (issue 18): `/audit`, what their
//! team did (users, API tokens, channels, maintenance windows, labels,
//! decommissioning), who and when, newest first, a page at a time
//! (`?before=<id>`). The operator reads everyone's with
//! `carewatch admin audit`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use carewatch_core::Error;
use carewatch_core::audit::{Action, AuditEntry};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page as layout};
use super::{PageResult, error_page, html_response, require_admin};
use crate::AppState;
use crate::format;
use crate::session::SignedIn;

/// Entries per page.
pub const PAGE: u32 = 100;

/// The page's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    /// The next page: entries older than this id.
    #[serde(default)]
    before: Option<String>,
}

/// `GET /audit?before=<id>`.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> PageResult {
    require_admin(&user)?;
    let bad = |e| error_page(e, Some(&user));
    let Ok(Query(params)) = params else {
        return Err(bad(Error::InvalidInput {
            field: "query",
            reason: "the address's parameters are malformed".into(),
        }));
    };
    let before = match params.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            bad(Error::InvalidInput {
                field: "before",
                reason: "must be an entry id (a whole number)".into(),
            })
        })?),
    };
    let entries = state
        .carewatch
        .team_audit_log(user.user(), before, PAGE)
        .await
        .map_err(bad)?;
    let body = html! {
        h1 { "Audit log" }
        p {
            "What your team's admins did, newest first. Carewatch's operator's actions on "
            "your installations (registration, transfer, consent, Care Plus) are in its own log."
        }
        (table(&entries))
        @if entries.len() == PAGE as usize {
            @if let Some(last) = entries.last() {
                p { a href={ "/audit?before=" (last.id) } { "Older entries" } }
            }
        }
        @if before.is_some() {
            p { a href="/audit" { "Newest entries" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Audit log", Some(&user), Nav::Audit, body),
    ))
}

fn table(entries: &[AuditEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { "Nothing recorded yet." }
        } @else {
            table.records {
                thead {
                    tr {
                        th scope="col" { "When" }
                        th scope="col" { "Who" }
                        th scope="col" { "What" }
                        th scope="col" { "On" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for e in entries {
                        tr {
                            td data-label="When" { (format::time(e.record.at)) }
                            td data-label="Who" { (e.record.actor) }
                            th scope="row" data-label="What" { (describe(e.record.action)) }
                            td data-label="On" { code { (e.record.target) } }
                            td data-label="Details" { (e.record.detail) }
                        }
                    }
                }
            }
        }
    }
}

/// An action as the page says it.
fn describe(action: Action) -> &'static str {
    match action {
        Action::ResellerCreated => "Reseller created",
        Action::ResellerTokenRotated => "Reseller token replaced",
        Action::OperatorTokenIssued => "Operator token issued",
        Action::InstallationRegistered => "Installation registered",
        Action::InstallationTransferred => "Installation transferred",
        Action::ConsentChanged => "Consent changed",
        Action::SubscriptionChanged => "Care Plus changed",
        Action::ProductChanged => "Product changed",
        Action::KeyIssued => "Installation key issued",
        Action::KeyRetired => "Installation key retired",
        Action::LabelsChanged => "Labels changed",
        Action::ServerDecommissioned => "Recording server decommissioned",
        Action::UserInvited => "User invited",
        Action::UserRemoved => "User removed",
        Action::SignedIn => "Signed in",
        Action::SignInFailed => "Sign-in failed",
        Action::ApiTokenCreated => "API token created",
        Action::ApiTokenRevoked => "API token revoked",
        Action::ChannelCreated => "Notification channel created",
        Action::ChannelDeleted => "Notification channel deleted",
        Action::ChannelTested => "Test notification sent",
        Action::MaintenanceCreated => "Maintenance window created",
        Action::MaintenanceDeleted => "Maintenance window deleted",
        _ => action.name(),
    }
}
