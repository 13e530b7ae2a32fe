//! The creation form: its fields, how they become a destination and rules,
//! and the form itself as HTML.

use std::time::Duration;

use carewatch_core::Error;
use carewatch_core::ids::Slc;
use carewatch_core::notification::{ChannelRules, Destination};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::csrf_field;
use crate::session::SignedIn;

/// The reminder periods offered, in minutes (core accepts 5 min to 7 days).
const REMINDERS: [(u64, &str); 6] = [
    (30, "every 30 minutes"),
    (60, "every hour"),
    (240, "every 4 hours"),
    (720, "every 12 hours"),
    (1440, "every day"),
    (10_080, "every week"),
];

/// The creation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) name: String,
    /// `webhook`, `email`, `slack` or `teams`.
    #[serde(default)]
    pub(super) kind: String,
    /// The URL, or the email addresses.
    #[serde(default)]
    pub(super) target: String,
    /// Minutes a state must hold before it notifies.
    #[serde(default)]
    pub(super) hold: String,
    /// Minutes between reminders, or `never`.
    #[serde(default)]
    pub(super) reminder: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub(super) attention: Option<String>,
    /// `all` or `chosen`.
    #[serde(default)]
    pub(super) scope: String,
    /// The chosen SLCs, separated by spaces, commas or lines.
    #[serde(default)]
    pub(super) slcs: String,
}

impl CreateForm {
    /// The destination the form names (core validates it).
    pub(super) fn destination(&self) -> Result<Destination, Error> {
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
    pub(super) fn rules(&self) -> Result<ChannelRules, Error> {
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

pub(super) fn create_form(user: &SignedIn, form: &CreateForm) -> Markup {
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
                "An https:// URL for a webhook, Slack or Teams (http:// is taken too, "
                "and sends in the clear; kept encrypted; shown afterwards by its host "
                "only), or up to 20 addresses separated by commas."
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
