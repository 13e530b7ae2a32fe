//! The overview of installations: each installation's line, the totals per
//! health, and the handlers that list them (`/api/v1/installations`,
//! `/api/v1/totals`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::ids::Slc;
use carewatch_core::installation::Product;
use carewatch_core::installation::Refusal;
use carewatch_core::labels::Labels;
use carewatch_core::notification::maintenance::in_maintenance;
use carewatch_core::store::{HealthTotals, OverviewQuery};
use carewatch_core::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiReader, malformed_query};
use crate::AppState;
use crate::errors::{ApiError, ErrorBody};
use crate::query::OverviewParams;

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
pub(super) fn row(
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
        (status = 405, description = "Only GET (and HEAD)", body = ErrorBody),
        (status = 500, description = "Storage failed (the operator's log says why)", body = ErrorBody),
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
        (status = 405, description = "Only GET (and HEAD)", body = ErrorBody),
        (status = 500, description = "Storage failed (the operator's log says why)", body = ErrorBody),
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
