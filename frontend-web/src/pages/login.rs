//! Signing in and out.
//!
//! The login form is protected against cross-site posting by a double-submit
//! cookie (there is no session yet to derive a token from). Core throttles
//! failed attempts per login and per address and makes every failure read
//! the same; this page shows one message for all of them.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Redirect, Response};
use carewatch_core::Error;
use carewatch_core::team::issue_secret;
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page};
use super::{Notice, PageResult, csrf_refused, error_page, html_response};
use crate::AppState;
use crate::session::{
    CSRF_FIELD, FORM_COOKIE, PeerIp, SESSION_COOKIE, SignedIn, cookie, delete_cookie,
    session_cookie, set_cookie, tokens_match,
};

/// How long the signed-out forms' cookie lives: long enough to type.
const FORM_COOKIE_SECS: u64 = 3600;

/// The single message for every failed sign-in.
pub const SIGN_IN_FAILED: &str = "Wrong login or password.";

/// The double-submit value of a signed-out form: the browser's existing
/// cookie (so a form open in another tab keeps working), or a new one; and
/// the cookie to set, which gives the form its full hour again.
pub fn form_token(headers: &HeaderMap, secure: bool) -> (String, http::HeaderValue) {
    let token = match cookie(headers, FORM_COOKIE).filter(|v| is_form_token(v)) {
        Some(existing) => existing.to_owned(),
        None => issue_secret("cwf").token.to_string(),
    };
    let set = set_cookie(FORM_COOKIE, &token, FORM_COOKIE_SECS, secure);
    (token, set)
}

/// Whether a double-submit value has the shape this module makes.
fn is_form_token(value: &str) -> bool {
    value
        .strip_prefix("cwf.")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a signed-out form's token matches its cookie.
pub fn form_token_matches(headers: &HeaderMap, presented: &str) -> bool {
    cookie(headers, FORM_COOKIE)
        .filter(|v| is_form_token(v))
        .is_some_and(|expected| tokens_match(expected, Some(presented)))
}

/// `GET /login`.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let secure = state.options.secure_cookies;
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && state.carewatch.session(secret).await.is_ok()
    {
        return Redirect::to("/").into_response();
    }
    let (token, set) = form_token(&headers, secure);
    let mut response = html_response(StatusCode::OK, login_page(&token, "", None));
    response.headers_mut().append(header::SET_COOKIE, set);
    response
}

/// Signing in (or in by an invitation) ends the session the browser's old
/// cookie names, whose cookie the caller replaces: left alive, it would stay
/// usable by whoever copied it. A cookie that opens nothing (malformed,
/// expired) is refused as unauthenticated: no matter.
pub(super) async fn end_previous_session(state: &AppState, headers: &HeaderMap) {
    if let Some(old) = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty())
        && let Err(e) = state.carewatch.sign_out(old).await
        && !matches!(e, Error::Unauthenticated { .. })
    {
        tracing::warn!(error = %e, "the previous session could not be ended at sign-in");
    }
}

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: signs in, sets the session cookie, goes to the overview.
pub async fn submit(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> PageResult {
    let secure = state.options.secure_cookies;
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, None))?;
    if !form_token_matches(&headers, &form.csrf) {
        return Err(csrf_refused(None));
    }
    match state
        .carewatch
        .sign_in(&form.login, &form.password, ip)
        .await
    {
        Ok(issued) => {
            end_previous_session(&state, &headers).await;
            let now = state.carewatch.now();
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(&issued.secret.token, issued.session.expires_at, now, secure),
            );
            Ok(response)
        }
        Err(Error::Unauthenticated { .. }) => Err(html_response(
            StatusCode::UNAUTHORIZED,
            login_page(
                &form.csrf,
                &form.login,
                Some(&Notice::Refused(SIGN_IN_FAILED.to_owned())),
            ),
        )),
        Err(e) => Err(error_page(e, None)),
    }
}

/// The fields of a form with nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session and deletes the cookie.
pub async fn logout(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    state
        .carewatch
        .sign_out(user.secret())
        .await
        .map_err(|e| error_page(e, Some(&user)))?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        delete_cookie(SESSION_COOKIE, state.options.secure_cookies),
    );
    Ok(response)
}

/// The page for a form that could not be read: too large (413), or not a
/// form, or not this one (400).
pub fn bad_form(rejection: &FormRejection, user: Option<&SignedIn>) -> Response {
    // A body over `DefaultBodyLimit` fails to buffer with axum's 413: say
    // so, rather than blame the form's contents.
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return super::message_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the form is too large: at most {} KiB",
                crate::MAX_BODY_BYTES / 1024
            ),
            user,
        );
    }
    super::message_page(
        StatusCode::BAD_REQUEST,
        "this request did not carry the form it should: nothing was changed",
        user,
    )
}

fn login_page(token: &str, login: &str, notice: Option<&Notice>) -> Markup {
    let body = html! {
        div.narrow {
            h1 { "Sign in" }
            p { "Sign in to see which of your customers' installations need attention." }
            (Notice::render(notice))
            form.stacked method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label for="login" { "Login (email or name)" }
                input #login name="login" type="text" autocomplete="username" required
                    maxlength="254" value=(login) autofocus;
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password"
                    required maxlength="1024";
                button type="submit" { "Sign in" }
            }
            p.hint { "New to the team? Open the invitation link an admin sent you." }
        }
    };
    page("Sign in", None, Nav::None, body)
}
