//! The frame around every page: head, skip link, navigation, sign-out.

use maud::{DOCTYPE, Markup, html};

use crate::session::SignedIn;

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The overview.
    Overview,
    /// Uptime reports.
    Reports,
    /// The team.
    Team,
    /// API tokens.
    Tokens,
    /// Notification channels.
    Channels,
    /// Maintenance windows.
    Maintenance,
    /// The audit log.
    Audit,
    /// Anything else.
    None,
}

impl Nav {
    /// The entry's page.
    fn address(self) -> &'static str {
        match self {
            Self::Overview | Self::None => "/",
            Self::Reports => "/reports",
            Self::Team => "/team",
            Self::Tokens => "/tokens",
            Self::Channels => "/channels",
            Self::Maintenance => "/maintenance",
            Self::Audit => "/audit",
        }
    }

    /// The address of a page whose forms answer with the page itself: the
    /// answer to a form is shown at the form's address, and live.js puts
    /// this one in its place, so that reloading the answer reads the page
    /// instead of sending the form again (a second channel, token,
    /// invitation or window).
    fn form_page(self) -> Option<&'static str> {
        match self {
            Self::Team | Self::Tokens | Self::Channels | Self::Maintenance => Some(self.address()),
            Self::Overview | Self::Reports | Self::Audit | Self::None => None,
        }
    }
}

/// A whole page: `title` in the tab and, for a signed-in user, the
/// navigation (admin entries for admins only) and the sign-out button.
pub fn page(title: &str, user: Option<&SignedIn>, current: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Carewatch" }
                // No icon file: an empty one, so browsers do not ask for /favicon.ico.
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/site.css";
                script src="/static/live.js" defer {}
            }
            body data-page=[current.form_page()] {
                a.skip-link href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "Carewatch" }
                    @if let Some(user) = user {
                        nav aria-label="Main" {
                            ul {
                                (entry(Nav::Overview, "Overview", current))
                                (entry(Nav::Reports, "Reports", current))
                                @if user.is_admin() {
                                    (entry(Nav::Team, "Team", current))
                                    (entry(Nav::Channels, "Notifications", current))
                                    (entry(Nav::Maintenance, "Maintenance", current))
                                    (entry(Nav::Tokens, "API tokens", current))
                                    (entry(Nav::Audit, "Audit log", current))
                                }
                            }
                        }
                        div.account {
                            span.who {
                                (user.user().name)
                                " "
                                span.role { "(" (user.user().role.name()) ")" }
                            }
                            form.signout method="post" action="/logout" {
                                (super::csrf_field(user))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

fn entry(nav: Nav, label: &str, current: Nav) -> Markup {
    let href = nav.address();
    html! {
        li {
            @if nav == current {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}
