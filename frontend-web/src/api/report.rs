//! `GET /api/v1/reports/{month}`: a month's uptime report as JSON, the
//! format `carewatch_core::report` documents (version 1), typed here so the
//! OpenAPI description shows it (a test checks both serialise alike).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use carewatch_core::report::{InstallationUptime, JSON_VERSION, Period, Uptime, UptimeReport};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiReader, malformed_query};
use crate::AppState;
use crate::errors::{ApiError, ErrorBody};

/// An installation's or a recording server's figures over the period.
/// The seconds partition it: `unmonitored_s + excluded_own_downtime_s +
/// excluded_maintenance_s + observed_s`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UptimeJson {
    /// `(observed − down) / observed` in percent, rounded down to 3
    /// decimals (100 only without any down time); null when nothing was
    /// observed.
    #[schema(example = 99.95)]
    pub availability_percent: Option<f64>,
    /// The time availability is judged on, in seconds.
    pub observed_s: f64,
    /// Outage time within the observed time, in seconds.
    pub down_s: f64,
    /// Outages with observed time in the period.
    pub outages: u32,
    /// Their length within the period, excluded stretches included.
    pub outage_time_s: f64,
    /// Mean time to recovery of the outages that ended with a recovery in
    /// the period, without excluded time; null if none did.
    pub mttr_s: Option<f64>,
    /// Whether an outage was still going on at the period's end.
    pub ongoing: bool,
    /// Carewatch's own downtime, in seconds.
    pub excluded_own_downtime_s: f64,
    /// The reseller's maintenance windows (where not own downtime).
    pub excluded_maintenance_s: f64,
    /// Before first heard from, while decommissioned, or while Carewatch
    /// refused the installation's messages (Care Plus ended, consent
    /// withdrawn).
    pub unmonitored_s: f64,
}

/// Seconds, exact to the millisecond.
fn seconds(d: std::time::Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

impl From<&Uptime> for UptimeJson {
    fn from(u: &Uptime) -> Self {
        Self {
            availability_percent: u.availability().map(|a| a.scaled_down(3) as f64 / 1000.0),
            observed_s: seconds(u.observed),
            down_s: seconds(u.down),
            outages: u.outages,
            outage_time_s: seconds(u.outage_time),
            mttr_s: u.mttr.map(seconds),
            ongoing: u.ongoing,
            excluded_own_downtime_s: seconds(u.excluded_own_downtime),
            excluded_maintenance_s: seconds(u.excluded_maintenance),
            unmonitored_s: seconds(u.unmonitored),
        }
    }
}

/// A recording server's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerUptimeJson {
    /// The recording server.
    #[schema(example = "rs-1")]
    pub server: String,
    /// Its figures.
    pub uptime: UptimeJson,
}

/// An installation's figures (down while every counted server is: the
/// Offline rule) and its servers', decommissioned ones included.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationUptimeJson {
    /// Its Software License Code.
    #[schema(example = "M01-C01-0001")]
    pub slc: String,
    /// The customer from its labels; empty when not set.
    pub customer: String,
    /// The site from its labels; empty when not set.
    pub site: String,
    /// Its figures.
    pub uptime: UptimeJson,
    /// Its recording servers', by id.
    pub servers: Vec<ServerUptimeJson>,
}

impl From<&InstallationUptime> for InstallationUptimeJson {
    fn from(i: &InstallationUptime) -> Self {
        Self {
            slc: i.slc.to_string(),
            customer: i.customer.clone(),
            site: i.site.clone(),
            uptime: (&i.uptime).into(),
            servers: i
                .servers
                .iter()
                .map(|s| ServerUptimeJson {
                    server: s.server.to_string(),
                    uptime: (&s.uptime).into(),
                })
                .collect(),
        }
    }
}

/// The period `[start, end)`, RFC 3339 UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodJson {
    /// Its first instant.
    #[schema(example = "2026-11-01T00:00:00.000Z")]
    pub start: String,
    /// The first instant after it (now, for a month not over yet).
    #[schema(example = "2026-12-01T00:00:00.000Z")]
    pub end: String,
}

/// A reseller's uptime report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UptimeReportJson {
    /// The format's version: 1. A change that breaks readers gets a new one.
    #[schema(example = 1)]
    pub version: u32,
    /// Whose.
    #[schema(example = "acme")]
    pub reseller: String,
    /// The period.
    pub period: PeriodJson,
    /// The installations, by SLC.
    pub installations: Vec<InstallationUptimeJson>,
}

impl From<&UptimeReport> for UptimeReportJson {
    fn from(r: &UptimeReport) -> Self {
        Self {
            version: JSON_VERSION,
            reseller: r.reseller.to_string(),
            period: PeriodJson {
                start: r.period.start().to_string(),
                end: r.period.end().to_string(),
            },
            installations: r.installations.iter().map(Into::into).collect(),
        }
    }
}

/// A month's uptime report
///
/// Availability, outages, down time and MTTR per installation and recording
/// server over a calendar month (UTC), with Carewatch's own downtime and the
/// reseller's maintenance windows excluded and shown as such. A month not
/// over yet is reported up to now.
#[utoipa::path(
    get,
    path = "/api/v1/reports/{month}",
    tag = "reports",
    params(("month" = String, Path, description = "A calendar month, YYYY-MM", example = "2026-11")),
    responses(
        (status = 200, description = "The report", body = UptimeReportJson),
        (status = 400, description = "Not a month, or one that has not begun", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 405, description = "Only GET (and HEAD)", body = ErrorBody),
        (status = 500, description = "Storage failed (the operator's log says why)", body = ErrorBody),
        (status = 503, description = "Storage unavailable: retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    ApiReader(reseller): ApiReader,
    month: Result<Path<String>, PathRejection>,
) -> Result<Json<UptimeReportJson>, ApiError> {
    let Path(month) = month.map_err(|_| malformed_query())?;
    let period = Period::parse_month(&month)?;
    let report = state.carewatch.uptime_report(&reseller, period).await?;
    Ok(Json((&report).into()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
    use carewatch_core::labels::Labels;
    use carewatch_core::report::{InstallationHistory, MonitoredServer};
    use carewatch_core::store::{HistoryEvent, HistoryKind};
    use carewatch_core::time::Timestamp;

    use super::*;

    #[test]
    fn the_typed_json_is_cores_json() {
        let period = Period::parse_month("2026-11").expect("month");
        let at = |minutes: u64| {
            period
                .start()
                .saturating_add(Duration::from_secs(minutes * 60))
        };
        let server = RecordingServerId::new("rs-1").expect("id");
        let event = |minutes, kind| HistoryEvent {
            at: at(minutes),
            server: server.clone(),
            kind,
        };
        let installations = [
            InstallationHistory {
                slc: Slc::new("M01-C01-0001").expect("slc"),
                labels: Labels::new("Müller, \"Nord\"", "Hafen", "", &[]).expect("labels"),
                servers: vec![MonitoredServer {
                    server: server.clone(),
                    first_seen_at: Timestamp::from_millis(0),
                }],
                history: vec![
                    event(10, HistoryKind::BecameUnavailable { missed: 3 }),
                    event(
                        17,
                        HistoryKind::Recovered {
                            unavailable_for: Duration::from_millis(420_250),
                            missed: 7,
                        },
                    ),
                    event(100, HistoryKind::BecameUnavailable { missed: 3 }),
                ],
            },
            InstallationHistory {
                slc: Slc::new("M01-C01-0002").expect("slc"),
                labels: Labels::default(),
                servers: vec![],
                history: vec![],
            },
        ];
        let report = UptimeReport::build(
            &ResellerId::new("acme").expect("id"),
            period,
            &installations,
            &[],
            &[],
        );
        let typed = serde_json::to_value(UptimeReportJson::from(&report)).expect("serialises");
        assert_eq!(typed, report.to_json_value());
    }
}
