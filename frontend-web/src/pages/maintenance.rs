//! Maintenance windows (admins only): list, create (one installation or
//! all, once or repeating daily or weekly), delete. Nothing notifies during
//! a window; the overview and the installation page say "in maintenance".
//! Times are entered and shown in UTC.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use carewatch_core::Error;
use carewatch_core::ids::Slc;
use carewatch_core::notification::maintenance::{MaintenanceWindow, WindowId};
use carewatch_core::time::Timestamp;
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page as layout};
use super::login::bad_form;
use super::{
    Notice, PageResult, csrf_field, csrf_refused, error_page, html_response, require_admin,
};
use crate::AppState;
use crate::errors::status_for;
use crate::format;
use crate::session::SignedIn;

const DAY: Duration = Duration::from_secs(86_400);
const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// `GET /maintenance`.
pub async fn page(State(state): State<AppState>, user: SignedIn) -> PageResult {
    require_admin(&user)?;
    render(&state, &user, StatusCode::OK, None, &CreateForm::default()).await
}

/// The creation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    /// `all` or `one`.
    #[serde(default)]
    scope: String,
    /// The installation, for `one`.
    #[serde(default)]
    slc: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    #[serde(default)]
    starts: String,
    /// How long, in `unit`s.
    #[serde(default)]
    length: String,
    /// `minutes`, `hours` or `days`.
    #[serde(default)]
    unit: String,
    /// `once`, `daily` or `weekly`.
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    reason: String,
}

/// What a form asks for.
struct Requested {
    slc: Option<Slc>,
    starts_at: Timestamp,
    length: Duration,
    every: Option<Duration>,
}

impl CreateForm {
    /// Reads the form (core validates the window).
    fn parse(&self) -> Result<Requested, Error> {
        let invalid = |field, reason: &str| Error::InvalidInput {
            field,
            reason: reason.into(),
        };
        let slc = match self.scope.as_str() {
            "all" => None,
            "one" => Some(Slc::new(&self.slc)?),
            _ => return Err(invalid("installation", "choose one installation or all")),
        };
        let starts_at = format::parse_datetime_local("start", &self.starts)?;
        let unit = match self.unit.as_str() {
            "minutes" => 60,
            "hours" => 3600,
            "days" => 86_400,
            _ => return Err(invalid("length", "choose minutes, hours or days")),
        };
        let length = self
            .length
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .map(Duration::from_secs)
            .ok_or_else(|| invalid("length", "a whole number"))?;
        let every = match self.repeat.as_str() {
            "once" => None,
            "daily" => Some(DAY),
            "weekly" => Some(WEEK),
            _ => return Err(invalid("repeat", "choose once, daily or weekly")),
        };
        Ok(Requested {
            slc,
            starts_at,
            length,
            every,
        })
    }
}

/// `POST /maintenance`.
pub async fn create(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<CreateForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let created = async {
        let r = form.parse()?;
        state
            .carewatch
            .create_maintenance(
                user.user(),
                r.slc.as_ref(),
                r.starts_at,
                r.length,
                r.every,
                &form.reason,
            )
            .await
    }
    .await;
    match created {
        Ok(window) => {
            let notice = Notice::Done(format!(
                "Maintenance set for {}, from {}.",
                window
                    .slc
                    .as_ref()
                    .map_or_else(|| "all installations".to_owned(), ToString::to_string),
                format::instant(window.starts_at)
            ));
            render(
                &state,
                &user,
                StatusCode::OK,
                Some(&notice),
                &CreateForm::default(),
            )
            .await
        }
        // Another reseller's installation is the same 404 as a missing one.
        Err(
            e @ (Error::InvalidInput { .. }
            | Error::NotFound { .. }
            | Error::UnknownInstallation { .. }),
        ) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                &form,
            )
            .await
        }
        Err(e) => Err(error_page(e, Some(&user))),
    }
}

/// The deletion form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

/// `POST /maintenance/delete`.
pub async fn delete(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<DeleteForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let deleted = async {
        let id = WindowId::new(&form.id)?;
        state.carewatch.delete_maintenance(user.user(), &id).await?;
        Ok::<_, Error>(id)
    }
    .await;
    let empty = CreateForm::default();
    match deleted {
        Ok(id) => {
            let notice = Notice::Done(format!("Deleted maintenance window {id}."));
            render(&state, &user, StatusCode::OK, Some(&notice), &empty).await
        }
        // Another reseller's window is the same 404 as a missing one.
        Err(e @ (Error::InvalidInput { .. } | Error::NotFound { .. })) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                &empty,
            )
            .await
        }
        Err(e) => Err(error_page(e, Some(&user))),
    }
}

async fn render(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    notice: Option<&Notice>,
    form: &CreateForm,
) -> PageResult {
    let windows = state
        .carewatch
        .maintenance_windows(&user.user().reseller)
        .await
        .map_err(|e| error_page(e, Some(user)))?;
    let now = state.carewatch.now();
    let body = html! {
        h1 { "Maintenance windows" }
        p {
            "During a window nothing notifies about the installations it covers, and they "
            "show as “in maintenance”. When it ends, an installation that is still unhealthy "
            "is notified once. Times are in UTC."
        }
        (Notice::render(notice))
        (windows_table(user, &windows, now))
        (create_form(user, form, now))
    };
    Ok(html_response(
        status,
        layout("Maintenance windows", Some(user), Nav::Maintenance, body),
    ))
}

fn repeats(every: Option<Duration>) -> String {
    match every {
        None => "once".to_owned(),
        Some(DAY) => "daily".to_owned(),
        Some(WEEK) => "weekly".to_owned(),
        Some(every) => format!("every {}", format::duration(every)),
    }
}

/// Whether the window is in force now and until when, or when it next
/// begins, or that it is over (core's occurrences).
fn in_force(window: &MaintenanceWindow, now: Timestamp) -> Markup {
    html! {
        @if let Some((_, end)) = window.occurrence_at(now) {
            strong.in-maintenance { "in force" } " until " (format::time(end))
        } @else if let Some(next) = window.next_start_after(now) {
            "next from " (format::time(next))
        } @else {
            span.muted { "over" }
        }
    }
}

fn windows_table(user: &SignedIn, windows: &[MaintenanceWindow], now: Timestamp) -> Markup {
    html! {
        h2 { "Windows" }
        @if windows.is_empty() {
            p.empty { "No maintenance windows." }
        } @else {
            table.records.windows {
                thead {
                    tr {
                        th scope="col" { "Installation" }
                        th scope="col" { "Starts" }
                        th scope="col" { "Lasts" }
                        th scope="col" { "Repeats" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Set by" }
                        th scope="col" { "Now" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    }
                }
                tbody {
                    @for w in windows {
                        tr id=(format!("window-{}", w.id)) {
                            th scope="row" data-label="Installation" {
                                @match &w.slc {
                                    Some(slc) => a.slc href=(format!("/installations/{slc}")) { (slc) },
                                    None => "all installations",
                                }
                            }
                            td data-label="Starts" { (format::time(w.starts_at)) }
                            td data-label="Lasts" { (format::duration(w.length)) }
                            td data-label="Repeats" { (repeats(w.every)) }
                            td data-label="Reason" {
                                @if w.reason.is_empty() { span.muted { "—" } } @else { (w.reason) }
                            }
                            td data-label="Set by" {
                                (w.created_by) span.detail { (format::time(w.created_at)) }
                            }
                            td data-label="Now" { (in_force(w, now)) }
                            td {
                                form.inline method="post" action="/maintenance/delete" {
                                    (csrf_field(user))
                                    input type="hidden" name="id" value=(w.id);
                                    button.danger type="submit"
                                        aria-label=(format!("Delete the window {}", w.id)) { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(user: &SignedIn, form: &CreateForm, now: Timestamp) -> Markup {
    let one = form.scope == "one";
    let starts = if form.starts.trim().is_empty() {
        format::datetime_local(now)
    } else {
        form.starts.clone()
    };
    let length = if form.length.trim().is_empty() {
        "2"
    } else {
        form.length.as_str()
    };
    let unit = if form.unit.is_empty() {
        "hours"
    } else {
        form.unit.as_str()
    };
    let repeat = if form.repeat.is_empty() {
        "once"
    } else {
        form.repeat.as_str()
    };
    html! {
        h2 #create { "Set a maintenance window" }
        form.stacked method="post" action="/maintenance" {
            (csrf_field(user))
            fieldset {
                legend { "For" }
                label.choice {
                    input type="radio" name="scope" value="all" checked[!one];
                    " all installations"
                }
                label.choice {
                    input type="radio" name="scope" value="one" checked[one];
                    " one installation:"
                }
                label.visually-hidden for="new-window-slc" { "SLC of the installation" }
                input #new-window-slc name="slc" type="text" maxlength="64" spellcheck="false"
                    autocomplete="off" placeholder="M01-C01-123-45" value=(form.slc);
            }
            label for="new-window-starts" { "Starts (UTC)" }
            input #new-window-starts name="starts" type="datetime-local" required value=(starts);
            label for="new-window-length" { "Lasts" }
            span.inline-fields {
                input #new-window-length name="length" type="number" min="1" step="1" required
                    value=(length);
                label.visually-hidden for="new-window-unit" { "Unit" }
                select #new-window-unit name="unit" {
                    option value="minutes" selected[unit == "minutes"] { "minutes" }
                    option value="hours" selected[unit == "hours"] { "hours" }
                    option value="days" selected[unit == "days"] { "days" }
                }
            }
            label for="new-window-repeat" { "Repeats" }
            select #new-window-repeat name="repeat" {
                option value="once" selected[repeat == "once"] { "once" }
                option value="daily" selected[repeat == "daily"] { "daily" }
                option value="weekly" selected[repeat == "weekly"] { "weekly" }
            }
            label for="new-window-reason" { "Reason (shown with the window)" }
            input #new-window-reason name="reason" type="text" maxlength="200" autocomplete="off"
                placeholder="Firmware update" value=(form.reason);
            button type="submit" { "Set maintenance window" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(scope: &str, slc: &str, length: &str, unit: &str, repeat: &str) -> CreateForm {
        CreateForm {
            scope: scope.into(),
            slc: slc.into(),
            starts: "2026-01-01T22:00".into(),
            length: length.into(),
            unit: unit.into(),
            repeat: repeat.into(),
            ..CreateForm::default()
        }
    }

    #[test]
    fn forms_become_windows() {
        let weekly = form("one", "M01-C01-0001", "90", "minutes", "weekly")
            .parse()
            .expect("valid");
        assert_eq!(
            weekly.slc.map(|s| s.to_string()).as_deref(),
            Some("M01-C01-0001")
        );
        assert_eq!(weekly.length, Duration::from_secs(5400));
        assert_eq!(weekly.every, Some(WEEK));
        assert_eq!(format::datetime_local(weekly.starts_at), "2026-01-01T22:00");
        let all = form("all", "ignored", "2", "days", "once")
            .parse()
            .expect("valid");
        assert!(all.slc.is_none() && all.every.is_none());
        assert_eq!(all.length, 2 * DAY);
        for bad in [
            form("", "", "2", "hours", "once"),
            form("one", "x", "2", "hours", "once"),
            form("all", "", "two", "hours", "once"),
            form("all", "", "2", "fortnights", "once"),
            form("all", "", "2", "hours", "hourly"),
            form("all", "", "99999999999999999", "days", "once"),
        ] {
            assert!(bad.parse().is_err(), "{bad:?}");
        }
        assert_eq!(repeats(Some(DAY)), "daily");
        assert_eq!(repeats(Some(Duration::from_secs(7200))), "every 2 h");
    }
}
