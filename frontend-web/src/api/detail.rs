//! One installation in full (`/api/v1/installations/{slc}`): its recording
//! servers, active conditions and recent history.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use carewatch_core::availability::Availability;
use carewatch_core::catalogue::Severity;
use carewatch_core::ids::Slc;
use carewatch_core::notification::maintenance::{MaintenanceWindow, in_maintenance};
use carewatch_core::store::{HistoryKind, InstallationDetail};
use carewatch_core::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::installations::{InstallationRow, row};
use super::{ApiReader, malformed_query};
use crate::AppState;
use crate::errors::{ApiError, ErrorBody};

/// A recording server.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerJson {
    /// Its id within the installation.
    pub id: String,
    /// `pending`, `available`, `late`, `unavailable` or `decommissioned`.
    #[schema(example = "available")]
    pub availability: String,
    /// When it was retired (RFC 3339), if it is.
    pub decommissioned_at: Option<String>,
    /// Unavailable so long that it was probably removed at the site.
    pub probably_removed: bool,
    /// Heartbeats missed in a row (0 unless late or unavailable).
    pub missed_heartbeats: u32,
    /// When it became unavailable (RFC 3339), if it is.
    pub unavailable_since: Option<String>,
    /// Its last accepted message (RFC 3339).
    pub last_seen_at: String,
    /// Its first accepted message (RFC 3339).
    pub first_seen_at: String,
    /// The heartbeat interval it keeps, in seconds.
    pub interval_seconds: f64,
}

/// An active condition.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionJson {
    /// The recording server reporting it.
    pub server: String,
    /// Its code, e.g. `CAMERA_UNREACHABLE`.
    pub code: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// The code in words.
    pub description: String,
    /// What it is about (a camera, a drive …).
    pub subject: String,
    /// Free text from the recording server.
    pub detail: String,
    /// Since when (RFC 3339).
    pub opened_at: String,
}

/// One entry of the history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryJson {
    /// When (RFC 3339).
    pub at: String,
    /// The recording server.
    pub server: String,
    /// `first_seen`, `condition_opened`, `condition_resolved`,
    /// `became_unavailable`, `recovered`, `decommissioned`,
    /// `recommissioned`, `parked` (its installation's messages refused) or
    /// `resumed` (accepted again).
    pub kind: String,
    /// The condition's code (conditions only).
    pub code: Option<String>,
    /// The condition's subject (conditions only).
    pub subject: Option<String>,
    /// How long the condition was open, the server unavailable,
    /// decommissioned or refused, in seconds (`condition_resolved`,
    /// `recovered`, `recommissioned` and `resumed` only).
    pub duration_seconds: Option<f64>,
    /// Heartbeats missed (unavailable and recovered only).
    pub missed_heartbeats: Option<u32>,
}

/// Everything about one installation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationDetailJson {
    /// Its overview line.
    pub installation: InstallationRow,
    /// When its SLC was registered (RFC 3339).
    pub registered_at: String,
    /// When its Care Plus subscription ends (RFC 3339); null if it has none.
    pub subscription_expires_at: Option<String>,
    /// Whether the subscription is active now (messages are refused otherwise).
    pub subscription_active: bool,
    /// Whether the owner accepted the service.
    pub consent: bool,
    /// Its recording servers.
    pub servers: Vec<ServerJson>,
    /// Active conditions, oldest first.
    pub active_conditions: Vec<ConditionJson>,
    /// Recent history, newest first.
    pub history: Vec<HistoryJson>,
}

fn detail_json(
    detail: &InstallationDetail,
    windows: &[MaintenanceWindow],
    now: Timestamp,
    probably_removed: impl Fn(&Availability) -> bool,
) -> InstallationDetailJson {
    let installation = &detail.installation;
    let last_seen = detail.last_seen_at();
    InstallationDetailJson {
        installation: row(
            &installation.slc,
            &detail.labels,
            installation.refusal_at(now),
            &installation.product,
            &detail.summary,
            last_seen,
            in_maintenance(windows, &installation.slc, now),
        ),
        registered_at: installation.registered_at.to_string(),
        subscription_expires_at: installation.subscription_expires_at.map(|t| t.to_string()),
        subscription_active: installation.subscription_active_at(now),
        consent: installation.consent,
        servers: detail
            .servers
            .iter()
            .map(|s| {
                let (missed, since) = match s.availability {
                    Availability::Late { missed } => (missed, None),
                    Availability::Unavailable { since, missed } => {
                        (missed, Some(since.to_string()))
                    }
                    Availability::Pending
                    | Availability::Available
                    | Availability::Decommissioned { .. } => (0, None),
                };
                ServerJson {
                    id: s.server.to_string(),
                    availability: s.availability.name().to_owned(),
                    decommissioned_at: match s.availability {
                        Availability::Decommissioned { since } => Some(since.to_string()),
                        _ => None,
                    },
                    probably_removed: probably_removed(&s.availability),
                    missed_heartbeats: missed,
                    unavailable_since: since,
                    last_seen_at: s.last_seen_at.to_string(),
                    first_seen_at: s.first_seen_at.to_string(),
                    interval_seconds: s.interval.as_secs_f64(),
                }
            })
            .collect(),
        active_conditions: detail
            .active_conditions
            .iter()
            .map(|c| ConditionJson {
                server: c.server.to_string(),
                code: c.code.as_str().to_owned(),
                severity: match c.code.severity() {
                    Severity::Critical => "critical",
                    Severity::Warning => "warning",
                }
                .to_owned(),
                description: c.code.description().to_owned(),
                subject: c.subject.clone(),
                detail: c.detail.clone(),
                opened_at: c.opened_at.to_string(),
            })
            .collect(),
        history: detail
            .history
            .iter()
            .map(|e| {
                let mut entry = HistoryJson {
                    at: e.at.to_string(),
                    server: e.server.to_string(),
                    kind: e.kind.name().to_owned(),
                    code: None,
                    subject: None,
                    duration_seconds: None,
                    missed_heartbeats: None,
                };
                match &e.kind {
                    HistoryKind::ConditionOpened { code, subject } => {
                        entry.code = Some(code.as_str().to_owned());
                        entry.subject = Some(subject.clone());
                    }
                    HistoryKind::ConditionResolved {
                        code,
                        subject,
                        open_for,
                    } => {
                        entry.code = Some(code.as_str().to_owned());
                        entry.subject = Some(subject.clone());
                        entry.duration_seconds = Some(open_for.as_secs_f64());
                    }
                    HistoryKind::BecameUnavailable { missed } => {
                        entry.missed_heartbeats = Some(*missed);
                    }
                    HistoryKind::Recovered {
                        unavailable_for,
                        missed,
                    } => {
                        entry.duration_seconds = Some(unavailable_for.as_secs_f64());
                        entry.missed_heartbeats = Some(*missed);
                    }
                    HistoryKind::Recommissioned { decommissioned_for } => {
                        entry.duration_seconds = Some(decommissioned_for.as_secs_f64());
                    }
                    HistoryKind::Resumed { parked_for } => {
                        entry.duration_seconds = Some(parked_for.as_secs_f64());
                    }
                    HistoryKind::FirstSeen | HistoryKind::Decommissioned | HistoryKind::Parked => {}
                }
                entry
            })
            .collect(),
    }
}

/// One installation
///
/// Its recording servers, active conditions and recent history. Another
/// reseller's installation is `not_found`, exactly like a missing one.
#[utoipa::path(
    get,
    path = "/api/v1/installations/{slc}",
    tag = "installations",
    params(("slc" = String, Path, description = "The installation's Software License Code", example = "M01-C01-0001")),
    responses(
        (status = 200, description = "The installation", body = InstallationDetailJson),
        (status = 400, description = "Not an SLC", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such installation of yours", body = ErrorBody),
        (status = 405, description = "Only GET (and HEAD)", body = ErrorBody),
        (status = 500, description = "Storage failed (the operator's log says why)", body = ErrorBody),
        (status = 503, description = "Storage unavailable: retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn detail(
    State(state): State<AppState>,
    ApiReader(reseller): ApiReader,
    slc: Result<Path<String>, PathRejection>,
) -> Result<Json<InstallationDetailJson>, ApiError> {
    let Path(slc) = slc.map_err(|_| malformed_query())?;
    let slc = Slc::new(&slc)?;
    let detail = state.carewatch.installation(&reseller, &slc).await?;
    let windows = state.carewatch.maintenance_windows(&reseller).await?;
    Ok(Json(detail_json(
        &detail,
        &windows,
        state.carewatch.now(),
        |a| state.carewatch.probably_removed(a),
    )))
}
