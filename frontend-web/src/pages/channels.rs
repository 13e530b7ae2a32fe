//! Notification channels (admins only): list with each channel's rules and
//! last delivery, create (a webhook's signing secret is shown once, right
//! after), send a test, delete; and the notifications given up on, with
//! their error.
//!
//! Destinations are shown as core describes them (kind and host, or the
//! addresses): a chat webhook's URL is a secret and never comes back.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use carewatch_core::ids::Slc;
use carewatch_core::notification::payload::Notification;
use carewatch_core::notification::{
    ChannelId, ChannelRules, Destination, OutboxEntry, OutboxFilter,
};
use carewatch_core::{ChannelView, Error};
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

/// Failed notifications listed on the page.
const FAILED_SHOWN: u32 = 50;
/// Chosen installations listed per channel before "and N more".
const SLCS_SHOWN: usize = 5;
/// The reminder periods offered, in minutes (core accepts 5 min to 7 days).
const REMINDERS: [(u64, &str); 6] = [
    (30, "every 30 minutes"),
    (60, "every hour"),
    (240, "every 4 hours"),
    (720, "every 12 hours"),
    (1440, "every day"),
    (10_080, "every week"),
];

/// `GET /channels`.
pub async fn page(State(state): State<AppState>, user: SignedIn) -> PageResult {
    require_admin(&user)?;
    render(
        &state,
        &user,
        StatusCode::OK,
        None,
        None,
        &CreateForm::default(),
    )
    .await
}

/// The creation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// `webhook`, `email`, `slack` or `teams`.
    #[serde(default)]
    kind: String,
    /// The URL, or the email addresses.
    #[serde(default)]
    target: String,
    /// Minutes a state must hold before it notifies.
    #[serde(default)]
    hold: String,
    /// Minutes between reminders, or `never`.
    #[serde(default)]
    reminder: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    attention: Option<String>,
    /// `all` or `chosen`.
    #[serde(default)]
    scope: String,
    /// The chosen SLCs, separated by spaces, commas or lines.
    #[serde(default)]
    slcs: String,
}

impl CreateForm {
    /// The destination the form names (core validates it).
    fn destination(&self) -> Result<Destination, Error> {
        let url = self.target.trim().to_owned();
        Ok(match self.kind.as_str() {
            "webhook" => Destination::Webhook { url },
            "slack" => Destination::Slack { url },
            "teams" => Destination::Teams { url },
            "email" => Destination::Email {
                to: split_list(&self.target).map(str::to_owned).collect(),
            },
            _ => {
                return Err(Error::InvalidInput {
                    field: "kind",
                    reason: "choose webhook, email, Slack or Teams".into(),
                });
            }
        })
    }

    /// The rules the form names (core validates them).
    fn rules(&self) -> Result<ChannelRules, Error> {
        let defaults = ChannelRules::default();
        let hold = match self.hold.trim() {
            "" => defaults.hold,
            text => minutes("hold", text)?,
        };
        let reminder = match self.reminder.trim() {
            "" | "never" => None,
            text => Some(minutes("reminder", text)?),
        };
        let installations = match self.scope.as_str() {
            "" | "all" => None,
            "chosen" => {
                let slcs = split_list(&self.slcs)
                    .map(Slc::new)
                    .collect::<Result<Vec<_>, _>>()?;
                if slcs.is_empty() {
                    return Err(Error::InvalidInput {
                        field: "installations",
                        reason: "name at least one installation (SLC), or choose all".into(),
                    });
                }
                Some(slcs)
            }
            _ => {
                return Err(Error::InvalidInput {
                    field: "scope",
                    reason: "choose all installations or chosen ones".into(),
                });
            }
        };
        Ok(ChannelRules {
            attention: self.attention.is_some(),
            installations,
            hold,
            reminder,
        })
    }
}

/// Items separated by commas, semicolons or white space.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// A whole number of minutes.
fn minutes(field: &'static str, text: &str) -> Result<Duration, Error> {
    text.parse::<u64>()
        .ok()
        .and_then(|m| m.checked_mul(60))
        .map(Duration::from_secs)
        .ok_or_else(|| Error::InvalidInput {
            field,
            reason: format!("{text:?} is not a whole number of minutes"),
        })
}

/// A channel just made: its webhook signing secret, shown once.
struct NewSecret {
    name: String,
    secret: String,
}

/// `POST /channels`.
pub async fn create(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<CreateForm>, FormRejection>,
) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(bad_form(Some(&user)));
    };
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let created = async {
        let destination = form.destination()?;
        let rules = form.rules()?;
        state
            .carewatch
            .create_channel(user.user(), &form.name, destination, rules)
            .await
    }
    .await;
    match created {
        Ok((record, secret)) => {
            let notice = Notice::Done(format!(
                "Created channel “{}”. Send a test to check it reaches you.",
                record.name
            ));
            let secret = secret.map(|s| NewSecret {
                name: record.name.clone(),
                secret: s.to_string(),
            });
            render(
                &state,
                &user,
                StatusCode::OK,
                Some(&notice),
                secret.as_ref(),
                &CreateForm::default(),
            )
            .await
        }
        Err(e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. })) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                None,
                &form,
            )
            .await
        }
        Err(e) => Err(error_page(e, Some(&user))),
    }
}

/// The fields of a form that acts on one channel (test, delete).
#[derive(Debug, Default, Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

/// `POST /channels/test`.
pub async fn test(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<ChannelForm>, FormRejection>,
) -> PageResult {
    act(state, user, form, Action::Test).await
}

/// `POST /channels/delete`.
pub async fn delete(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<ChannelForm>, FormRejection>,
) -> PageResult {
    act(state, user, form, Action::Delete).await
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Test,
    Delete,
}

async fn act(
    state: AppState,
    user: SignedIn,
    form: Result<Form<ChannelForm>, FormRejection>,
    action: Action,
) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(bad_form(Some(&user)));
    };
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let done = async {
        let id = ChannelId::new(&form.id)?;
        match action {
            Action::Test => {
                state.carewatch.test_channel(user.user(), &id).await?;
                Ok(format!(
                    "A test notification is on its way to channel {id}; its result shows \
                     under “Last delivery” (reload the page)."
                ))
            }
            Action::Delete => {
                state.carewatch.delete_channel(user.user(), &id).await?;
                Ok(format!(
                    "Deleted channel {id}; its waiting notifications are given up."
                ))
            }
        }
    }
    .await;
    let empty = CreateForm::default();
    match done {
        Ok(text) => {
            render(
                &state,
                &user,
                StatusCode::OK,
                Some(&Notice::Done(text)),
                None,
                &empty,
            )
            .await
        }
        // Another reseller's channel is the same 404 as a missing one.
        Err(e @ (Error::InvalidInput { .. } | Error::NotFound { .. })) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                None,
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
    secret: Option<&NewSecret>,
    form: &CreateForm,
) -> PageResult {
    let reseller = &user.user().reseller;
    let fail = |e| error_page(e, Some(user));
    let channels = state.carewatch.channels(reseller).await.map_err(fail)?;
    let failed = state
        .carewatch
        .outbox(reseller, OutboxFilter::Failed, FAILED_SHOWN)
        .await
        .map_err(fail)?;
    let body = html! {
        h1 { "Notification channels" }
        p {
            "Where Carewatch tells you when an installation turns Critical or Offline (and, "
            "if you ask, Attention), when it recovers, and once after a maintenance window "
            "if it is still unhealthy. A site that goes Offline is one message, not one per "
            "server. Quiet hours: " a href="/maintenance" { "maintenance windows" } "."
        }
        (Notice::render(notice))
        @if let Some(secret) = secret { (secret_box(secret)) }
        (channels_table(user, &channels))
        (failed_table(&channels, &failed))
        (create_form(user, form))
    };
    Ok(html_response(
        status,
        layout("Notification channels", Some(user), Nav::Channels, body),
    ))
}

fn secret_box(new: &NewSecret) -> Markup {
    html! {
        section.secret-once role="status" aria-labelledby="secret-heading" {
            h2 #secret-heading { "Signing secret of “" (new.name) "”" }
            p {
                "Give it to the receiving system now: it checks each request's "
                code { "Carewatch-Signature" } " header with it. It is shown only this once."
            }
            label for="signing-secret" { "Signing secret" }
            input #signing-secret.secret type="text" readonly value=(new.secret);
        }
    }
}

/// What the channel notifies about, in words.
fn about(rules: &ChannelRules) -> String {
    if rules.attention {
        "Attention, Critical, Offline and recoveries".to_owned()
    } else {
        "Critical, Offline and recoveries".to_owned()
    }
}

fn scope(rules: &ChannelRules) -> Markup {
    html! {
        @match &rules.installations {
            None => "all installations",
            Some(slcs) => {
                @for (i, slc) in slcs.iter().take(SLCS_SHOWN).enumerate() {
                    @if i > 0 { ", " }
                    a.slc href=(format!("/installations/{slc}")) { (slc) }
                }
                @if slcs.len() > SLCS_SHOWN {
                    " and " (slcs.len() - SLCS_SHOWN) " more"
                }
            },
        }
    }
}

fn last_delivery(view: &ChannelView) -> Markup {
    let status = &view.record.status;
    html! {
        @match (status.last_attempt_at, &status.last_error) {
            (None, _) => span.muted { "none yet" },
            (Some(at), None) => { span.delivered { "delivered" } " " (format::time(at)) },
            (Some(at), Some(error)) => {
                span.warning { "failed" } " " (format::time(at))
                span.detail { (error) }
            },
        }
        @if status.failing() {
            strong.failing {
                "Failing: " (status.failures_in_a_row) " attempts in a row"
            }
        }
    }
}

fn channels_table(user: &SignedIn, channels: &[ChannelView]) -> Markup {
    html! {
        h2 { "Channels" }
        @if channels.is_empty() {
            p.empty { "No channels yet: nobody is notified. Create one below." }
        } @else {
            table.records.channels {
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Destination" }
                        th scope="col" { "Rules" }
                        th scope="col" { "Last delivery" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    }
                }
                tbody {
                    @for c in channels {
                        @let r = &c.record;
                        tr id=(format!("channel-{}", r.id)) class=[r.status.failing().then_some("failing")] {
                            th scope="row" data-label="Name" {
                                (r.name)
                                span.detail { code { (r.id) } }
                            }
                            td data-label="Destination" {
                                (c.destination)
                                span.detail { "kind: " (r.kind) }
                            }
                            td data-label="Rules" {
                                ul.rules {
                                    li { (about(&r.rules)) }
                                    li { "for " (scope(&r.rules)) }
                                    li { "after holding " (format::duration(r.rules.hold)) }
                                    li {
                                        @match r.rules.reminder {
                                            Some(every) => { "reminders every " (format::duration(every)) },
                                            None => "no reminders",
                                        }
                                    }
                                }
                            }
                            td data-label="Last delivery" { (last_delivery(c)) }
                            td.actions {
                                form.inline method="post" action="/channels/test" {
                                    (csrf_field(user))
                                    input type="hidden" name="id" value=(r.id);
                                    button.secondary type="submit"
                                        aria-label=(format!("Send a test to {}", r.name)) { "Send a test" }
                                }
                                " "
                                form.inline method="post" action="/channels/delete" {
                                    (csrf_field(user))
                                    input type="hidden" name="id" value=(r.id);
                                    button.danger type="submit"
                                        aria-label=(format!("Delete {}", r.name)) { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The notification's kind and title, from its JSON body.
fn what(entry: &OutboxEntry) -> Markup {
    match Notification::from_json(&entry.body) {
        Ok(n) => html! { (n.kind) span.detail { (n.title) } },
        Err(_) => html! { span.muted { "unreadable" } },
    }
}

fn failed_table(channels: &[ChannelView], failed: &[OutboxEntry]) -> Markup {
    let name_of = |entry: &OutboxEntry| {
        channels
            .iter()
            .find(|c| c.record.id == entry.channel)
            .map_or_else(|| entry.channel.to_string(), |c| c.record.name.clone())
    };
    html! {
        h2 #failed { "Failed notifications" }
        @if failed.is_empty() {
            p.empty { "None: every notification was delivered or is still being tried." }
        } @else {
            p {
                "Given up on after repeated attempts (newest first, at most " (FAILED_SHOWN) "). "
                "Fix the channel, then send a test."
            }
            table.records.failed {
                thead {
                    tr {
                        th scope="col" { "Given up" }
                        th scope="col" { "Channel" }
                        th scope="col" { "Installation" }
                        th scope="col" { "Notification" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Last error" }
                    }
                }
                tbody {
                    @for e in failed {
                        tr {
                            th scope="row" data-label="Given up" {
                                (format::time(e.failed_at.unwrap_or(e.created_at)))
                            }
                            td data-label="Channel" { (name_of(e)) }
                            td data-label="Installation" {
                                @match &e.slc {
                                    Some(slc) => a.slc href=(format!("/installations/{slc}")) { (slc) },
                                    None => span.muted { "— (a test)" },
                                }
                            }
                            td data-label="Notification" { (what(e)) }
                            td data-label="Attempts" { (e.attempts) }
                            td data-label="Last error" {
                                @match &e.last_error {
                                    Some(error) => (error),
                                    None => span.muted { "—" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(user: &SignedIn, form: &CreateForm) -> Markup {
    let kind = form.kind.as_str();
    // A URL may be a secret (chat webhooks): a refused form does not echo it.
    let target = if kind == "email" {
        form.target.as_str()
    } else {
        ""
    };
    let hold = if form.hold.trim().is_empty() {
        (ChannelRules::default().hold.as_secs() / 60).to_string()
    } else {
        form.hold.clone()
    };
    let chosen = form.scope == "chosen";
    html! {
        h2 #create { "Create a channel" }
        form.stacked method="post" action="/channels" {
            (csrf_field(user))
            label for="new-channel-name" { "Name" }
            input #new-channel-name name="name" type="text" required maxlength="200"
                autocomplete="off" placeholder="On-call webhook" value=(form.name);
            label for="new-channel-kind" { "Kind" }
            select #new-channel-kind name="kind" {
                option value="webhook" selected[kind == "webhook" || kind.is_empty()] {
                    "Webhook — signed JSON to your system"
                }
                option value="email" selected[kind == "email"] { "Email" }
                option value="slack" selected[kind == "slack"] { "Slack incoming webhook" }
                option value="teams" selected[kind == "teams"] { "Microsoft Teams incoming webhook" }
            }
            label for="new-channel-target" { "URL, or email addresses" }
            input #new-channel-target name="target" type="text" required maxlength="4096"
                autocomplete="off" spellcheck="false" value=(target)
                aria-describedby="new-channel-target-hint";
            p #new-channel-target-hint.hint {
                "An https:// URL for a webhook, Slack or Teams (kept encrypted; shown "
                "afterwards by its host only), or up to 20 addresses separated by commas."
            }
            fieldset {
                legend { "Notify about" }
                label.choice {
                    input type="checkbox" name="attention" value="on" checked[form.attention.is_some()];
                    " also installations needing attention (Critical, Offline and recoveries always)"
                }
            }
            fieldset {
                legend { "For" }
                label.choice {
                    input type="radio" name="scope" value="all" checked[!chosen];
                    " all installations"
                }
                label.choice {
                    input type="radio" name="scope" value="chosen" checked[chosen];
                    " only these installations:"
                }
                label.visually-hidden for="new-channel-slcs" { "SLCs of the chosen installations" }
                textarea #new-channel-slcs name="slcs" rows="2" spellcheck="false"
                    placeholder="M01-C01-123-45, M01-C01-678-90" { (form.slcs) }
            }
            label for="new-channel-hold" { "Hold (minutes)" }
            input #new-channel-hold name="hold" type="number" min="0" max="1440" step="1"
                required value=(hold) aria-describedby="new-channel-hold-hint";
            p #new-channel-hold-hint.hint {
                "A state must last this long before it notifies; a recovery within it sends nothing."
            }
            label for="new-channel-reminder" { "Reminders while unresolved" }
            select #new-channel-reminder name="reminder" {
                option value="never" selected[form.reminder.is_empty() || form.reminder == "never"] { "never" }
                @for (minutes, label) in REMINDERS {
                    option value=(minutes) selected[form.reminder == minutes.to_string()] { (label) }
                }
            }
            button type="submit" { "Create channel" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> CreateForm {
        let mut form = CreateForm {
            kind: "webhook".into(),
            target: "https://hooks.example.net/x".into(),
            ..CreateForm::default()
        };
        for (key, value) in fields {
            let value = (*value).to_owned();
            match *key {
                "kind" => form.kind = value,
                "target" => form.target = value,
                "hold" => form.hold = value,
                "reminder" => form.reminder = value,
                "attention" => form.attention = Some(value),
                "scope" => form.scope = value,
                "slcs" => form.slcs = value,
                _ => unreachable!("no field {key}"),
            }
        }
        form
    }

    #[test]
    fn forms_become_destinations_and_rules() {
        let email = form(&[
            ("kind", "email"),
            ("target", "a@x.example, b@x.example;\nc@x.example"),
        ]);
        assert_eq!(
            email.destination().ok(),
            Some(Destination::Email {
                to: vec![
                    "a@x.example".into(),
                    "b@x.example".into(),
                    "c@x.example".into()
                ]
            })
        );
        assert!(form(&[("kind", "pigeon")]).destination().is_err());
        let defaults = form(&[]).rules().ok();
        assert_eq!(defaults, Some(ChannelRules::default()));
        let chosen = form(&[
            ("scope", "chosen"),
            ("slcs", "M01-C01-0001 M01-C01-0002"),
            ("hold", "5"),
            ("reminder", "60"),
            ("attention", "on"),
        ])
        .rules()
        .expect("valid");
        assert_eq!(chosen.installations.map(|s| s.len()), Some(2));
        assert_eq!(chosen.hold, Duration::from_secs(300));
        assert_eq!(chosen.reminder, Some(Duration::from_secs(3600)));
        assert!(chosen.attention);
        for bad in [
            &[("scope", "chosen")][..],
            &[("scope", "chosen"), ("slcs", "x")],
            &[("scope", "some")],
            &[("hold", "-1")],
            &[("hold", "2.5")],
            &[("reminder", "often")],
        ] {
            assert!(form(bad).rules().is_err(), "{bad:?}");
        }
    }
}
