//! The JSON API for resellers' own tools (PSA, ticketing): `/api/v1/…`,
//! read-only, authenticated with `Authorization: Bearer <token>` (the
//! reseller's token or a named API token). Errors are
//! `{"error": {"code", "message"}}` with a status per kind. The OpenAPI
//! description is generated from these types and handlers (utoipa) and
//! served at `/api/v1/openapi.json`.

mod report;

use std::sync::LazyLock;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use carewatch_core::Error;
use carewatch_core::availability::Availability;
use carewatch_core::catalogue::Severity;
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::installation::Refusal;
use carewatch_core::labels::Labels;
use carewatch_core::notification::maintenance::{MaintenanceWindow, in_maintenance};
use carewatch_core::store::{HealthTotals, HistoryKind, InstallationDetail, OverviewQuery};
use carewatch_core::time::Timestamp;
use http::request::Parts;
use http::{HeaderValue, header};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::errors::{ApiError, ErrorBody, ErrorDetail};
use crate::query::OverviewParams;
use crate::session::peer_ip;
pub use report::{
    InstallationUptimeJson, PeriodJson, ServerUptimeJson, UptimeJson, UptimeReportJson, report,
};

/// The reseller a bearer token opens.
#[derive(Debug)]
pub struct ApiReader(pub ResellerId);

impl FromRequestParts<AppState> for ApiReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(Error::Unauthenticated {
                reason: "send a token as `Authorization: Bearer <token>`",
            })?;
        let reseller = state
            .carewatch
            .authenticate_reader(token, peer_ip(parts))
            .await?;
        Ok(Self(reseller))
    }
}

/// A health, by its stable name.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthName {
    /// Every server available, nothing wrong.
    Healthy,
    /// Registered, no recording server has reported yet.
    Pending,
    /// A late server or a warning.
    Attention,
    /// A critical condition or an unavailable server.
    Critical,
    /// Every recording server unavailable at once (possibly the site's link).
    Offline,
}

impl From<Health> for HealthName {
    fn from(health: Health) -> Self {
        match health {
            Health::Healthy => Self::Healthy,
            Health::Pending => Self::Pending,
            Health::Attention => Self::Attention,
            Health::Critical => Self::Critical,
            Health::Offline => Self::Offline,
        }
    }
}

/// What an installation runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductJson {
    /// e.g. `XProtect Corporate`.
    pub name: String,
    /// e.g. `2016 R3`.
    pub version: String,
}

impl From<&Product> for ProductJson {
    fn from(product: &Product) -> Self {
        Self {
            name: product.name().to_owned(),
            version: product.version().to_owned(),
        }
    }
}

/// One installation's overview line.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationRow {
    /// Its Software License Code.
    #[schema(example = "M01-C01-0001")]
    pub slc: String,
    /// "Customer — Site" as the reseller named it; null if not named.
    #[schema(example = "Müller GmbH — Harbour")]
    pub customer_label: Option<String>,
    /// What the reseller calls it.
    pub labels: LabelsJson,
    /// Why its messages are refused, if they are: `consent_withdrawn` or
    /// `subscription_expired` (its servers are not judged meanwhile; its
    /// health is as it was when the refusal began).
    #[schema(example = json!(null))]
    pub refused: Option<String>,
    /// Its health.
    pub health: HealthName,
    /// The health in words.
    #[schema(example = "Critical")]
    pub health_label: String,
    /// Its worst active condition's code, e.g. `STORAGE_FULL`.
    pub worst_condition: Option<String>,
    /// Recording servers known.
    pub servers: u32,
    /// Of which unavailable.
    pub servers_unavailable: u32,
    /// Of which late.
    pub servers_late: u32,
    /// Active conditions (derived `SERVER_UNAVAILABLE` ones included).
    pub active_conditions: u32,
    /// The latest message from any of its servers (RFC 3339), if any.
    #[schema(example = "2026-01-01T12:00:05.123Z")]
    pub last_seen_at: Option<String>,
    /// What it runs.
    pub product: ProductJson,
    /// In one of the reseller's maintenance windows (nothing notifies)
    /// until this instant (RFC 3339); null if not in maintenance now.
    #[schema(example = "2026-01-01T14:00:00.000Z")]
    pub maintenance_until: Option<String>,
}

/// What a reseller calls an installation ("" and [] when not set).
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelsJson {
    /// The customer's name.
    pub customer: String,
    /// The site's name.
    pub site: String,
    /// Free-text notes.
    pub notes: String,
    /// Tags: lower case, sorted, each once.
    pub tags: Vec<String>,
}

impl From<&Labels> for LabelsJson {
    fn from(labels: &Labels) -> Self {
        Self {
            customer: labels.customer().to_owned(),
            site: labels.site().to_owned(),
            notes: labels.notes().to_owned(),
            tags: labels.tags().to_vec(),
        }
    }
}

#[allow(clippy::too_many_arguments)] // a row's parts, each from its own source
fn row(
    slc: &Slc,
    labels: &Labels,
    refusal: Option<Refusal>,
    product: &Product,
    summary: &HealthSummary,
    last_seen_at: Option<Timestamp>,
    maintenance_until: Option<Timestamp>,
) -> InstallationRow {
    InstallationRow {
        slc: slc.to_string(),
        customer_label: Some(labels.title()).filter(|t| !t.is_empty()),
        labels: labels.into(),
        refused: refusal.map(|r| r.name().to_owned()),
        health: summary.health.into(),
        health_label: summary.health.label().to_owned(),
        worst_condition: summary.worst.as_ref().map(|c| c.as_str().to_owned()),
        servers: summary.servers,
        servers_unavailable: summary.unavailable,
        servers_late: summary.late,
        active_conditions: summary.active_conditions,
        last_seen_at: last_seen_at.map(|t| t.to_string()),
        product: product.into(),
        maintenance_until: maintenance_until.map(|t| t.to_string()),
    }
}

/// Installations per health, over all of the reseller's installations.
#[derive(Debug, Serialize, ToSchema)]
pub struct Totals {
    /// Healthy installations.
    pub healthy: u32,
    /// Pending installations.
    pub pending: u32,
    /// Installations needing attention.
    pub attention: u32,
    /// Critical installations.
    pub critical: u32,
    /// Offline installations.
    pub offline: u32,
    /// All installations.
    pub total: u32,
}

impl From<&HealthTotals> for Totals {
    fn from(totals: &HealthTotals) -> Self {
        Self {
            healthy: totals.get(Health::Healthy),
            pending: totals.get(Health::Pending),
            attention: totals.get(Health::Attention),
            critical: totals.get(Health::Critical),
            offline: totals.get(Health::Offline),
            total: totals.total(),
        }
    }
}

/// A page of installations, worst first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationList {
    /// The rows.
    pub installations: Vec<InstallationRow>,
    /// Pass as `after` for the next page; null on the last one.
    pub next: Option<String>,
    /// Counts per health over all installations.
    pub totals: Totals,
}

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
    /// `became_unavailable` or `recovered`.
    pub kind: String,
    /// The condition's code (conditions only).
    pub code: Option<String>,
    /// The condition's subject (conditions only).
    pub subject: Option<String>,
    /// How long the condition was open, or the server unavailable, in
    /// seconds (resolved and recovered only).
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
                    kind: String::new(),
                    code: None,
                    subject: None,
                    duration_seconds: None,
                    missed_heartbeats: None,
                };
                entry.kind = match &e.kind {
                    HistoryKind::FirstSeen => "first_seen",
                    HistoryKind::ConditionOpened { code, subject } => {
                        entry.code = Some(code.as_str().to_owned());
                        entry.subject = Some(subject.clone());
                        "condition_opened"
                    }
                    HistoryKind::ConditionResolved {
                        code,
                        subject,
                        open_for,
                    } => {
                        entry.code = Some(code.as_str().to_owned());
                        entry.subject = Some(subject.clone());
                        entry.duration_seconds = Some(open_for.as_secs_f64());
                        "condition_resolved"
                    }
                    HistoryKind::BecameUnavailable { missed } => {
                        entry.missed_heartbeats = Some(*missed);
                        "became_unavailable"
                    }
                    HistoryKind::Recovered {
                        unavailable_for,
                        missed,
                    } => {
                        entry.duration_seconds = Some(unavailable_for.as_secs_f64());
                        entry.missed_heartbeats = Some(*missed);
                        "recovered"
                    }
                    HistoryKind::Decommissioned => "decommissioned",
                    HistoryKind::Recommissioned { decommissioned_for } => {
                        entry.duration_seconds = Some(decommissioned_for.as_secs_f64());
                        "recommissioned"
                    }
                }
                .to_owned();
                entry
            })
            .collect(),
    }
}

fn malformed_query() -> ApiError {
    ApiError(Error::InvalidInput {
        field: "query",
        reason: "the address's parameters are malformed".into(),
    })
}

/// List installations
///
/// The reseller's installations, worst first unless `sort` says customer
/// or site; by default only those that are not Healthy. Page with `after`
/// (the previous page's `next`, which continues the same sort).
#[utoipa::path(
    get,
    path = "/api/v1/installations",
    tag = "installations",
    params(OverviewParams),
    responses(
        (status = 200, description = "A page of installations", body = InstallationList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "Storage unavailable: retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiReader(reseller): ApiReader,
    params: Result<Query<OverviewParams>, QueryRejection>,
) -> Result<Json<InstallationList>, ApiError> {
    let Query(params) = params.map_err(|_| malformed_query())?;
    let query = params.to_query()?;
    let page = state.carewatch.overview(&reseller, &query).await?;
    let windows = state.carewatch.maintenance_windows(&reseller).await?;
    let now = state.carewatch.now();
    Ok(Json(InstallationList {
        installations: page
            .rows
            .iter()
            .map(|r| {
                let until = in_maintenance(&windows, &r.slc, now);
                row(
                    &r.slc,
                    &r.labels,
                    r.refusal_at(now),
                    &r.product,
                    &r.summary,
                    r.last_seen_at,
                    until,
                )
            })
            .collect(),
        next: page.next.as_ref().map(|c| c.to_token()),
        totals: (&page.totals).into(),
    }))
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

/// Totals per health
///
/// How many of the reseller's installations have each health.
#[utoipa::path(
    get,
    path = "/api/v1/totals",
    tag = "installations",
    responses(
        (status = 200, description = "Counts per health", body = Totals),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "Storage unavailable: retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn totals(
    State(state): State<AppState>,
    ApiReader(reseller): ApiReader,
) -> Result<Json<Totals>, ApiError> {
    let query = OverviewQuery {
        page_size: 1,
        ..OverviewQuery::default()
    };
    let page = state.carewatch.overview(&reseller, &query).await?;
    Ok(Json((&page.totals).into()))
}

/// Any other `/api/…` path: 401 without a token, else 404, both JSON.
pub async fn not_found(_reader: ApiReader) -> ApiError {
    ApiError(Error::NotFound {
        what: "API endpoint".into(),
    })
}

/// The OpenAPI description of this API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Carewatch reseller API",
        description = "Read-only access to a reseller's installations, their health and \
                       uptime reports, for PSA and ticketing tools. Authenticate with `Authorization: Bearer <token>`: \
                       the reseller's token or a named API token created on the Tokens page.",
        version = "1"
    ),
    paths(list, detail, totals, report::report),
    components(schemas(
        InstallationList, InstallationRow, InstallationDetailJson, Totals, HealthName, LabelsJson,
        ProductJson, ServerJson, ConditionJson, HistoryJson, ErrorBody, ErrorDetail,
        UptimeReportJson, PeriodJson, InstallationUptimeJson, ServerUptimeJson, UptimeJson
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "installations", description = "The reseller's installations"),
        (name = "reports", description = "Uptime reports: availability, outages and MTTR")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths name.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cwr.… or cwa.…")
                    .description(Some("The reseller's token or a named read-only API token"))
                    .build(),
            ),
        );
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// `GET /api/v1/openapi.json`: public, like the static files (it describes
/// the API and holds nothing of anybody's).
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON.as_str(),
    )
        .into_response()
}
