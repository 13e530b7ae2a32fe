//! The page's parts as HTML: the signing secret shown once, the channels
//! with their rules and last delivery, and the failed notifications.

use carewatch_core::ChannelView;
use carewatch_core::notification::payload::Notification;
use carewatch_core::notification::{ChannelRules, OutboxEntry};
use maud::{Markup, html};

use super::super::csrf_field;
use super::{FAILED_SHOWN, NewSecret};
use crate::format;
use crate::session::SignedIn;

/// Chosen installations listed per channel before "and N more".
const SLCS_SHOWN: usize = 5;

pub(super) fn secret_box(new: &NewSecret) -> Markup {
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

pub(super) fn channels_table(user: &SignedIn, channels: &[ChannelView]) -> Markup {
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

pub(super) fn failed_table(channels: &[ChannelView], failed: &[OutboxEntry]) -> Markup {
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
