//! One installation: its recording servers, active conditions, history,
//! subscription and consent. Another reseller's installation is the same
//! 404 page as a missing one (core answers `NotFound` for both after the
//! same lookup).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use carewatch_core::availability::Availability;
use carewatch_core::condition::ConditionRecord;
use carewatch_core::ids::Slc;
use carewatch_core::notification::maintenance::{MaintenanceWindow, in_maintenance};
use carewatch_core::store::{HistoryEvent, HistoryKind, InstallationDetail, ServerRecord};
use carewatch_core::team::Role;
use carewatch_core::time::Timestamp;
use http::StatusCode;
use maud::{Markup, html};

use super::labels::{decommission_form, labels_form};
use super::layout::{Nav, page as layout};
use super::overview::{health_badge, live_status, refusal_badge, servers_text};
use super::reports::installation_section;
use super::{Notice, PageResult, error_page, html_response};
use crate::AppState;
use crate::format;
use crate::session::SignedIn;

/// `GET /installations/{slc}`.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    slc: Result<Path<String>, PathRejection>,
) -> PageResult {
    let bad = |e| error_page(e, Some(&user));
    let slc = match slc {
        Ok(Path(slc)) => Slc::new(&slc).map_err(bad)?,
        Err(_) => {
            return Err(bad(carewatch_core::Error::InvalidInput {
                field: "slc",
                reason: "the address does not name an installation".into(),
            }));
        }
    };
    render(&state, &user, &slc, StatusCode::OK, None).await
}

/// The installation's page, with `notice` (a labels form's outcome) at
/// the top.
pub(super) async fn render(
    state: &AppState,
    user: &SignedIn,
    slc: &Slc,
    status: StatusCode,
    notice: Option<&Notice>,
) -> PageResult {
    let bad = |e| error_page(e, Some(user));
    let head = state.carewatch.latest_change().await.map_err(bad)?;
    let detail = state
        .carewatch
        .installation(&user.user().reseller, slc)
        .await
        .map_err(bad)?;
    let windows = state
        .carewatch
        .maintenance_windows(&user.user().reseller)
        .await
        .map_err(bad)?;
    let now = state.carewatch.now();
    let period = state.carewatch.rolling_period().map_err(bad)?;
    let uptime = state
        .carewatch
        .installation_uptime(&user.user().reseller, slc, period)
        .await
        .map_err(bad)?;
    let title = format!("Installation {slc}");
    let events = format!("/events?slc={slc}&after={}", head.0);
    let current = format!("/installations/{slc}");
    let body = html! {
        p.breadcrumb { a href="/" { "← Overview" } }
        h1 { "Installation " span.slc { (slc) } }
        (Notice::render(notice))
        section #installation data-live="installation" data-events=(events) data-page=(current) {
            (live_status(&current))
            div data-live-part="details" {
                (summary(&detail, &windows, now))
                (servers(&detail.servers, now, &ServerActions {
                    admin: (user.user().role == Role::Admin).then_some((user, slc)),
                    probably_removed: &|a| state.carewatch.probably_removed(a),
                }))
                (conditions(&detail.active_conditions, now))
                (history(&detail.history))
            }
        }
        (installation_section(&uptime))
        @if user.user().role == Role::Admin { (labels_form(user, slc, &detail.labels)) }
    };
    Ok(html_response(
        status,
        layout(&title, Some(user), Nav::None, body),
    ))
}

fn summary(detail: &InstallationDetail, windows: &[MaintenanceWindow], now: Timestamp) -> Markup {
    let installation = &detail.installation;
    let summary = &detail.summary;
    let maintenance = in_maintenance(windows, &installation.slc, now);
    // The reasons of the windows in force now (core says which those are).
    let reasons: Vec<&str> = windows
        .iter()
        .filter(|w| w.covers(&installation.slc) && w.occurrence_at(now).is_some())
        .map(|w| w.reason.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    html! {
        dl.facts {
            dt { "Health" }
            dd {
                @match installation.refusal_at(now) {
                    Some(refusal) => {
                        (refusal_badge(refusal))
                        span.detail { "its health as it was when the refusal began" }
                        (health_badge(summary.health))
                    },
                    None => (health_badge(summary.health)),
                }
            }
            dt { "Maintenance" }
            dd {
                @match maintenance {
                    Some(until) => {
                        strong.in-maintenance { "in maintenance" } " until " (format::time(until))
                        ": nothing notifies"
                        @if !reasons.is_empty() { " (" (reasons.join("; ")) ")" }
                    },
                    None => span.muted { "none now" },
                }
            }
            dt { "Worst condition" }
            dd {
                @match &summary.worst {
                    Some(code) => { code { (code.as_str()) } " — " (code.description()) },
                    None => "none",
                }
            }
            dt { "Recording servers" }
            dd { (servers_text(summary.servers, summary.unavailable, summary.late)) }
            dt { "Customer" }
            dd {
                @match detail.labels.customer() {
                    "" => span.muted { "—" },
                    customer => (customer),
                }
            }
            dt { "Site" }
            dd {
                @match detail.labels.site() {
                    "" => span.muted { "—" },
                    site => (site),
                }
            }
            @if !detail.labels.tags().is_empty() {
                dt { "Tags" }
                dd { @for tag in detail.labels.tags() { span.tag { (tag) } " " } }
            }
            @if !detail.labels.notes().is_empty() {
                dt { "Notes" }
                dd.notes { (detail.labels.notes()) }
            }
            dt { "Product" }
            dd { (installation.product.name()) " " (installation.product.version()) }
            dt { "Care Plus subscription" }
            dd {
                @match installation.subscription_expires_at {
                    Some(end) if installation.subscription_active_at(now) => {
                        "active until " (format::time(end))
                    },
                    Some(end) => strong.warning { "expired " (format::time(end)) " — messages are refused" },
                    None => strong.warning { "none — messages are refused" },
                }
            }
            dt { "Consent" }
            dd {
                @if installation.consent {
                    "accepted"
                } @else {
                    strong.warning { "not given or withdrawn — messages are refused" }
                }
            }
            dt { "Registered" }
            dd { (format::time(installation.registered_at)) }
        }
    }
}

/// An availability in words: "available", "late (2 heartbeats missed)",
/// "unavailable since … (5 heartbeats missed)".
fn availability(a: &Availability) -> Markup {
    html! {
        @match a {
            Availability::Pending => span.health.health-pending { "pending (never heard from)" },
            Availability::Available => span.health.health-healthy { "available" },
            Availability::Late { missed } => span.health.health-attention {
                "late (" (format::heartbeats(*missed)) " missed)"
            },
            Availability::Unavailable { since, .. } => span.health.health-critical {
                "unavailable since " (format::time(*since))
            },
            Availability::Decommissioned { since } => span.muted {
                "decommissioned " (format::time(*since)) " (not counted)"
            },
        }
    }
}

fn missed(a: &Availability) -> u32 {
    match a {
        Availability::Late { missed } | Availability::Unavailable { missed, .. } => *missed,
        Availability::Pending | Availability::Available | Availability::Decommissioned { .. } => 0,
    }
}

/// What the servers table shows besides the servers: for an admin, the
/// decommission forms; which servers are flagged "probably removed".
struct ServerActions<'a> {
    admin: Option<(&'a SignedIn, &'a Slc)>,
    probably_removed: &'a dyn Fn(&Availability) -> bool,
}

fn servers(servers: &[ServerRecord], now: Timestamp, actions: &ServerActions<'_>) -> Markup {
    html! {
        h2 #servers { "Recording servers" }
        @if servers.is_empty() {
            p.empty { "No recording server has reported yet." }
        } @else {
            table.records {
                thead {
                    tr {
                        th scope="col" { "Server" }
                        th scope="col" { "Availability" }
                        th scope="col" { "Missed heartbeats" }
                        th scope="col" { "Last seen" }
                        th scope="col" { "Interval" }
                        th scope="col" { "First seen" }
                        @if actions.admin.is_some() { th scope="col" { "Removed at the site?" } }
                    }
                }
                tbody {
                    @for s in servers {
                        tr {
                            th scope="row" data-label="Server" { (s.server) }
                            td data-label="Availability" {
                                (availability(&s.availability))
                                @if (actions.probably_removed)(&s.availability) {
                                    strong.warning.detail { "probably removed: decommission it if so" }
                                }
                            }
                            td data-label="Missed heartbeats" { (missed(&s.availability)) }
                            td data-label="Last seen" { (format::ago(s.last_seen_at, now)) }
                            td data-label="Interval" { (format::duration(s.interval)) }
                            td data-label="First seen" { (format::time(s.first_seen_at)) }
                            @if let Some((user, slc)) = actions.admin {
                                td data-label="Removed at the site?" {
                                    @if matches!(s.availability, Availability::Decommissioned { .. }) {
                                        span.muted { "—" }
                                    } @else {
                                        (decommission_form(user, slc, &s.server))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn conditions(conditions: &[ConditionRecord], now: Timestamp) -> Markup {
    html! {
        h2 #conditions { "Active conditions" }
        @if conditions.is_empty() {
            p.empty { "None: nothing is reported wrong." }
        } @else {
            table.records {
                thead {
                    tr {
                        th scope="col" { "Condition" }
                        th scope="col" { "Subject" }
                        th scope="col" { "Server" }
                        th scope="col" { "Since" }
                        th scope="col" { "Detail" }
                    }
                }
                tbody {
                    @for c in conditions {
                        tr {
                            th scope="row" data-label="Condition" {
                                code { (c.code.as_str()) }
                                span.detail { (c.code.description()) }
                            }
                            td data-label="Subject" { (c.subject) }
                            td data-label="Server" { (c.server) }
                            td data-label="Since" {
                                (format::time(c.opened_at))
                                span.detail { "for " (format::duration(now.since(c.opened_at))) }
                            }
                            td data-label="Detail" {
                                @if c.detail.is_empty() { span.muted { "—" } } @else { (c.detail) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a history entry says.
fn happened(kind: &HistoryKind) -> Markup {
    html! {
        @match kind {
            HistoryKind::FirstSeen => "reported for the first time",
            HistoryKind::ConditionOpened { code, subject } => {
                "opened " code { (code.as_str()) } " on " (subject)
            },
            HistoryKind::ConditionResolved { code, subject, open_for } => {
                "resolved " code { (code.as_str()) } " on " (subject)
                " after " (format::duration(*open_for))
            },
            HistoryKind::BecameUnavailable { missed } => {
                strong { "became unavailable" } " (" (format::heartbeats(*missed)) " missed in a row)"
            },
            HistoryKind::Recovered { unavailable_for, missed } => {
                strong { "recovered" } " after " (format::duration(*unavailable_for))
                " unavailable (" (format::heartbeats(*missed)) " missed)"
            },
            HistoryKind::Decommissioned => {
                strong { "decommissioned" } " (removed at the site; its conditions resolved)"
            },
            HistoryKind::Recommissioned { decommissioned_for } => {
                strong { "reported again" } " after " (format::duration(*decommissioned_for))
                " decommissioned: it counts again"
            },
            HistoryKind::Parked => {
                strong { "not judged" } ": messages refused (Care Plus ended or consent withdrawn)"
            },
            HistoryKind::Resumed { parked_for } => {
                strong { "judged again" } ": messages accepted after "
                (format::duration(*parked_for)) " refused"
            },
        }
    }
}

fn history(events: &[HistoryEvent]) -> Markup {
    html! {
        h2 #history { "History" }
        @if events.is_empty() {
            p.empty { "Nothing has happened yet." }
        } @else {
            ol.timeline reversed {
                @for e in events {
                    li {
                        (format::time(e.at)) " · "
                        span.server { (e.server) } " "
                        (happened(&e.kind))
                    }
                }
            }
        }
    }
}
