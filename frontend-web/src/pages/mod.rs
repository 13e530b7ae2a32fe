//! The HTML pages: one module per page, a shared layout, error pages.

pub mod audit;
pub mod channels;
pub mod installation;
pub mod invite;
pub mod labels;
pub mod layout;
pub mod login;
pub mod maintenance;
pub mod overview;
pub mod reports;
pub mod team;
pub mod tokens;

use axum::extract::{FromRequestParts, State};
use axum::response::{Html, IntoResponse, Response};
use carewatch_core::Error;
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};

use crate::AppState;
use crate::errors::{decorate, log_if_internal, status_for, title_for};
use crate::session::SignedIn;
use layout::{Nav, page};

/// A page handler's result: the page, or an error page / redirect.
pub type PageResult = Result<Response, Response>;

/// An HTML response with a status.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// The error page for a Carewatch error. Its body depends only on the
/// error and the user, so "not found" reads the same whatever the cause.
pub fn error_page(error: Error, user: Option<&SignedIn>) -> Response {
    log_if_internal(&error);
    let status = status_for(&error);
    let mut response = message_page(status, &error.to_string(), user);
    decorate(&error, &mut response);
    // A 401 page is for people, not a challenge for a Bearer client.
    response.headers_mut().remove(header::WWW_AUTHENTICATE);
    response
}

/// A page that says one thing, with a status.
pub fn message_page(status: StatusCode, message: &str, user: Option<&SignedIn>) -> Response {
    let title = title_for(status);
    let body = html! {
        h1 { (title) }
        p.error-message role="alert" { (capitalised(message)) "." }
        p { a href="/" { "Back to the overview" } }
    };
    html_response(status, page(title, user, Nav::None, body))
}

/// The refusal of a form whose CSRF token is missing or wrong: nothing was
/// changed.
pub fn csrf_refused(user: Option<&SignedIn>) -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "this form expired or did not come from this site, so nothing was changed: \
         go back, reload the page and try again",
        user,
    )
}

/// The refusal of an admin page to a viewer (core's rule: only admins
/// manage the team and tokens).
// A response is what a handler's `?` needs here; boxing it would only move
// the allocation into every caller.
#[allow(clippy::result_large_err)]
pub fn require_admin(user: &SignedIn) -> Result<(), Response> {
    carewatch_core::team::require_admin(user.user()).map_err(|e| error_page(e, Some(user)))
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Any other path: a 404 page for a signed-in user, the login page for
/// anybody else (so probing paths teaches nothing), and for a gRPC client
/// the `Unimplemented` status it expects.
pub async fn not_found(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let is_grpc = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if is_grpc {
        return grpc_unimplemented();
    }
    match SignedIn::from_request_parts(&mut parts, &state).await {
        Ok(user) => message_page(
            StatusCode::NOT_FOUND,
            "there is no page at this address",
            Some(&user),
        ),
        Err(to_login) => to_login,
    }
}

/// What tonic answers for an unknown gRPC method.
fn grpc_unimplemented() -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The hidden CSRF field of a signed-in user's form.
pub fn csrf_field(user: &SignedIn) -> Markup {
    html! { input type="hidden" name=(crate::session::CSRF_FIELD) value=(user.csrf()); }
}

/// An inline notice above a form: a success or an error, announced to
/// screen readers.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Something worked.
    Done(String),
    /// Something was refused.
    Refused(String),
}

impl Notice {
    /// The refusal of `error`, in words.
    pub fn refused(error: &Error) -> Self {
        Self::Refused(Self::refused_text(error))
    }

    /// An error as a sentence.
    pub fn refused_text(error: &Error) -> String {
        format!("{}.", capitalised(&error.to_string()))
    }

    /// The notice's markup.
    pub fn render(notice: Option<&Self>) -> Markup {
        html! {
            @match notice {
                Some(Self::Done(text)) => p.notice.done role="status" { (text) },
                Some(Self::Refused(text)) => p.notice.refused role="alert" { (text) },
                None => {},
            }
        }
    }
}
