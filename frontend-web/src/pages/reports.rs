//! Uptime reports (issue 18): `/reports`, a month's availability per
//! installation (admins and viewers), worst first, with the whole report to
//! download as CSV and JSON (`/reports/2026-11.csv`, `.json`); and the
//! figures the installation page shows for the last 30 days. The rules
//! (own downtime and maintenance excluded, the Offline rule) are core's
//! (`carewatch_core::report`).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use carewatch_core::Error;
use carewatch_core::report::{InstallationUptime, Period, Uptime, UptimeReport};
use carewatch_core::time::Timestamp;
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page as layout};
use super::{Notice, PageResult, error_page, html_response, message_page};
use crate::AppState;
use crate::format;
use crate::session::SignedIn;

/// Most installations the page lists (worst first); the downloads hold all.
pub const MAX_ROWS: usize = 500;

/// The page's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ReportParams {
    /// `YYYY-MM`; the current month when absent or empty.
    #[serde(default)]
    month: Option<String>,
}

/// The month `at` is in, as `YYYY-MM`.
fn month_of(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(..7).unwrap_or(&text).to_owned()
}

/// `GET /reports?month=2026-11`.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> PageResult {
    let bad = |e| error_page(e, Some(&user));
    let Ok(Query(params)) = params else {
        return Err(bad(Error::InvalidInput {
            field: "query",
            reason: "the address's parameters are malformed".into(),
        }));
    };
    let month = params
        .month
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| month_of(state.carewatch.now()));
    let report = match Period::parse_month(&month) {
        Ok(period) => {
            state
                .carewatch
                .uptime_report(&user.user().reseller, period)
                .await
        }
        Err(e) => Err(e),
    };
    match report {
        Ok(report) => Ok(render(&user, &month, Some(&report), None)),
        // A malformed month or one that has not begun: said on the page.
        Err(e @ Error::InvalidInput { .. }) => {
            Ok(render(&user, &month, None, Some(&Notice::refused(&e))))
        }
        Err(e) => Err(bad(e)),
    }
}

fn render(
    user: &SignedIn,
    month: &str,
    report: Option<&UptimeReport>,
    notice: Option<&Notice>,
) -> Response {
    let title = format!("Uptime report {month}");
    let status = if notice.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Uptime report" }
        form.search method="get" action="/reports" {
            label for="month" { "Month (UTC)" }
            input #month name="month" type="month" value=(month) required;
            button type="submit" { "Show" }
        }
        (Notice::render(notice))
        @if let Some(report) = report {
            (summary(month, report))
            (table(report))
        }
    };
    html_response(status, layout(&title, Some(user), Nav::Reports, body))
}

fn summary(month: &str, report: &UptimeReport) -> Markup {
    let period = report.period;
    html! {
        p {
            "From " (format::time(period.start())) " to " (format::time(period.end()))
            @if period.end() < Period::parse_month(month).map_or(period.end(), |p| p.end()) {
                " (so far)"
            }
            ". Availability is the share of the observed time that was not down: "
            "Carewatch's own downtime and your maintenance windows are excluded and shown as such, "
            "and an installation is down while every one of its counted recording servers is "
            "(the Offline rule)."
        }
        p.downloads {
            "Download the whole report, every installation and recording server: "
            a href=(format!("/reports/{month}.csv")) download { "CSV" }
            " · "
            a href=(format!("/reports/{month}.json")) download { "JSON" }
        }
    }
}

/// Worst first: the lowest availability, then those with none (nothing
/// observed), each by SLC.
fn worst_first(report: &UptimeReport) -> Vec<&InstallationUptime> {
    let mut rows: Vec<&InstallationUptime> = report.installations.iter().collect();
    rows.sort_by_key(|i| {
        (
            i.uptime
                .availability()
                .map_or(u128::MAX, |a| a.scaled_down(9)),
            i.slc.clone(),
        )
    });
    rows
}

fn table(report: &UptimeReport) -> Markup {
    let rows = worst_first(report);
    html! {
        @if rows.is_empty() {
            p.empty { "No installations are registered to you." }
        } @else {
            table.records.uptime {
                caption.visually-hidden { "Availability per installation, worst first" }
                thead {
                    tr {
                        th scope="col" { "Installation" }
                        th scope="col" { "Customer" }
                        (figure_headings())
                        th scope="col" { "Recording servers" }
                    }
                }
                tbody {
                    @for i in rows.iter().take(MAX_ROWS) {
                        tr {
                            th scope="row" data-label="Installation" {
                                a href=(format!("/installations/{}", i.slc)) { span.slc { (i.slc) } }
                            }
                            td data-label="Customer" {
                                @match (i.customer.as_str(), i.site.as_str()) {
                                    ("", "") => span.muted { "—" },
                                    (customer, "") => (customer),
                                    ("", site) => (site),
                                    (customer, site) => { (customer) " — " (site) },
                                }
                            }
                            (figure_cells(&i.uptime))
                            td data-label="Recording servers" {
                                @if i.servers.is_empty() { span.muted { "none heard from" } }
                                @for s in &i.servers {
                                    span.server-uptime { (s.server) " " (s.uptime) } " "
                                }
                            }
                        }
                    }
                }
            }
            @if rows.len() > MAX_ROWS {
                p.hint {
                    "The " (MAX_ROWS) " least available of " (rows.len())
                    " installations are listed; the downloads hold every one."
                }
            }
        }
    }
}

/// The figures' column headings (see [`figure_cells`]).
pub fn figure_headings() -> Markup {
    html! {
        th scope="col" { "Availability" }
        th scope="col" { "Outages" }
        th scope="col" { "Down" }
        th scope="col" { "MTTR" }
        th scope="col" { "Own downtime excluded" }
        th scope="col" { "Maintenance excluded" }
    }
}

/// One subject's figures as table cells.
pub fn figure_cells(u: &Uptime) -> Markup {
    html! {
        td data-label="Availability" {
            @match u.availability() {
                Some(a) => strong { (a) },
                None => span.muted { "n/a (not monitored)" },
            }
        }
        td data-label="Outages" {
            (u.outages)
            @if u.ongoing { " " span.warning { "(one still going on)" } }
        }
        td data-label="Down" { (format::duration(u.down)) }
        td data-label="MTTR" {
            @match u.mttr {
                Some(mttr) => (format::duration(mttr)),
                None => span.muted { "—" },
            }
        }
        td data-label="Own downtime excluded" { (format::duration(u.excluded_own_downtime)) }
        td data-label="Maintenance excluded" { (format::duration(u.excluded_maintenance)) }
    }
}

/// The installation page's section: the last 30 days, the installation's
/// figures and its servers'.
pub fn installation_section(uptime: &InstallationUptime) -> Markup {
    let period = uptime.uptime.period;
    html! {
        h2 #uptime { "Availability, last 30 days" }
        p.hint {
            "From " (format::time(period.start())) " to now; Carewatch's own downtime and "
            "maintenance windows are excluded. "
            a href=(format!("/reports?month={}", month_of(period.end()))) { "This month's report" }
        }
        table.records.uptime {
            thead {
                tr {
                    th scope="col" { "Subject" }
                    (figure_headings())
                    th scope="col" { "Not monitored" }
                }
            }
            tbody {
                tr {
                    th scope="row" data-label="Subject" { "The installation" }
                    (figure_cells(&uptime.uptime))
                    td data-label="Not monitored" { (format::duration(uptime.uptime.unmonitored)) }
                }
                @for s in &uptime.servers {
                    tr {
                        th scope="row" data-label="Subject" { "Recording server " (s.server) }
                        (figure_cells(&s.uptime))
                        td data-label="Not monitored" { (format::duration(s.uptime.unmonitored)) }
                    }
                }
            }
        }
    }
}

/// The UTF-8 byte-order mark.
const UTF8_BOM: char = '\u{feff}';

/// `GET /reports/{month}.csv` and `.json`: the whole report as a download.
pub async fn download(
    State(state): State<AppState>,
    user: SignedIn,
    file: Result<Path<String>, PathRejection>,
) -> Result<Response, Response> {
    let no_such = || {
        message_page(
            StatusCode::NOT_FOUND,
            "there is no page at this address",
            Some(&user),
        )
    };
    let Ok(Path(file)) = file else {
        return Err(no_such());
    };
    let Some((month, format)) = file.rsplit_once('.') else {
        return Err(no_such());
    };
    let content_type = match format {
        "csv" => "text/csv; charset=utf-8",
        "json" => "application/json",
        _ => return Err(no_such()),
    };
    let bad = |e| error_page(e, Some(&user));
    let period = Period::parse_month(month).map_err(bad)?;
    let report = state
        .carewatch
        .uptime_report(&user.user().reseller, period)
        .await
        .map_err(bad)?;
    let body = if format == "csv" {
        // A byte-order mark first: a spreadsheet program opening the file
        // otherwise reads it as its local code page and garbles every
        // customer name with an accent ("MÃ¼ller"). Only this download,
        // which people open; tools read the CLI's, gRPC's or Python's CSV.
        format!("{UTF8_BOM}{}", report.to_csv())
    } else {
        report.to_json()
    };
    // The reseller id and the parsed month are plain ASCII.
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"carewatch-uptime-{}-{}.{format}\"",
        user.user().reseller,
        month_of(period.start())
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
