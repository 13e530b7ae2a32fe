//! Named read-only API tokens (admins only): create (the token is shown
//! once, right after), list, revoke.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use carewatch_core::Error;
use std::time::Duration;

use carewatch_core::team::ApiTokenRecord;
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

/// `GET /tokens`.
pub async fn page(State(state): State<AppState>, user: SignedIn) -> PageResult {
    require_admin(&user)?;
    render(&state, &user, StatusCode::OK, None, None).await
}

/// The creation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days it lasts, or empty / `never`.
    #[serde(default)]
    expires: String,
}

/// The lifetimes the form offers, in days (`None`: never), the first chosen.
const LIFETIMES: [(Option<u64>, &str); 4] = [
    (None, "Never"),
    (Some(30), "In 30 days"),
    (Some(90), "In 90 days"),
    (Some(365), "In a year"),
];

/// The form's `expires`: days, or empty / `never`.
fn lifetime(field: &str) -> Result<Option<Duration>, Error> {
    match field.trim() {
        "" | "never" => Ok(None),
        days => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(|s| Some(Duration::from_secs(s)))
            .ok_or_else(|| Error::InvalidInput {
                field: "lifetime",
                reason: "a number of days, or never".into(),
            }),
    }
}

/// A token just made: shown once.
struct NewToken {
    name: String,
    token: String,
}

/// `POST /tokens`.
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
    let created = match lifetime(&form.expires) {
        Ok(valid_for) => {
            state
                .carewatch
                .create_api_token(user.user(), &form.name, valid_for)
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(issued) => {
            let new = NewToken {
                name: issued.record.name.clone(),
                token: issued.secret.token.to_string(),
            };
            render(&state, &user, StatusCode::OK, None, Some(&new)).await
        }
        Err(e @ Error::InvalidInput { .. }) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                None,
            )
            .await
        }
        Err(e) => Err(error_page(e, Some(&user))),
    }
}

/// The revocation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

/// `POST /tokens/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    match state
        .carewatch
        .revoke_api_token(user.user(), form.id.trim())
        .await
    {
        Ok(()) => {
            let notice = Notice::Done(format!(
                "Revoked token {}: it opens nothing any more.",
                form.id.trim()
            ));
            render(&state, &user, StatusCode::OK, Some(&notice), None).await
        }
        Err(e @ (Error::InvalidInput { .. } | Error::NotFound { .. })) => {
            render(
                &state,
                &user,
                status_for(&e),
                Some(&Notice::refused(&e)),
                None,
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
    new: Option<&NewToken>,
) -> PageResult {
    let tokens = state
        .carewatch
        .api_tokens(&user.user().reseller)
        .await
        .map_err(|e| error_page(e, Some(user)))?;
    let body = html! {
        h1 { "API tokens" }
        p {
            "Read-only tokens for your own tools (ticketing, PSA): send one as "
            code { "Authorization: Bearer <token>" } " to " code { "/api/v1/…" }
            " (described in " a href="/api/v1/openapi.json" { "OpenAPI" } ")."
        }
        (Notice::render(notice))
        @if let Some(new) = new { (new_token_box(new)) }
        (tokens_table(user, &tokens, state.carewatch.now()))
        (create_form(user))
    };
    Ok(html_response(
        status,
        layout("API tokens", Some(user), Nav::Tokens, body),
    ))
}

fn new_token_box(new: &NewToken) -> Markup {
    html! {
        section.secret-once role="status" aria-labelledby="token-heading" {
            h2 #token-heading { "Token “" (new.name) "”" }
            p {
                "Copy it into your tool now. It is shown only this once: Carewatch keeps only a "
                "fingerprint of it."
            }
            label for="new-token" { "Token" }
            input #new-token.secret type="text" readonly value=(new.token);
        }
    }
}

fn tokens_table(user: &SignedIn, tokens: &[ApiTokenRecord], now: Timestamp) -> Markup {
    html! {
        h2 { "Tokens" }
        @if tokens.is_empty() {
            p.empty { "No API tokens yet." }
        } @else {
            table.records {
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Id" }
                        th scope="col" { "Created" }
                        th scope="col" { "State" }
                        th scope="col" { "Expires" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    }
                }
                tbody {
                    @for t in tokens {
                        tr {
                            th scope="row" data-label="Name" { (t.name) }
                            td data-label="Id" { code { (t.id) } }
                            td data-label="Created" {
                                (format::time(t.created_at)) " by " (t.created_by)
                            }
                            td data-label="State" {
                                @match (t.revoked_at, t.expires_at) {
                                    (Some(at), _) => { "revoked " (format::time(at)) },
                                    (None, Some(at)) if at <= now => "expired",
                                    (None, _) => "active",
                                }
                            }
                            td data-label="Expires" {
                                @match t.expires_at {
                                    Some(at) => (format::time(at)),
                                    None => "never",
                                }
                            }
                            td {
                                @if t.in_use_at(now) {
                                    form.inline method="post" action="/tokens/revoke" {
                                        (csrf_field(user))
                                        input type="hidden" name="id" value=(t.id);
                                        button.danger type="submit"
                                            aria-label=(format!("Revoke {}", t.name)) { "Revoke" }
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

fn create_form(user: &SignedIn) -> Markup {
    html! {
        h2 #create { "Create a token" }
        form.stacked method="post" action="/tokens" {
            (csrf_field(user))
            label for="token-name" { "Name (what uses it)" }
            input #token-name name="name" type="text" required maxlength="200"
                autocomplete="off" placeholder="PSA sync";
            label for="token-expires" { "Expires" }
            select #token-expires name="expires" {
                @for (days, label) in LIFETIMES {
                    option value=(days.map_or("never".to_owned(), |d| d.to_string())) { (label) }
                }
            }
            button type="submit" { "Create token" }
        }
    }
}
