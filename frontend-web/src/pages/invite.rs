//! Accepting an invitation: the link is `/invite#<secret>`. The secret
//! travels in the fragment, which browsers never send, so it reaches no
//! log, no proxy and no `Referer`; `live.js` copies it into the form (and
//! takes it out of the address bar). Without JavaScript the page asks to
//! paste the code from the link.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Redirect, Response};
use carewatch_core::Error;
use carewatch_core::team::{MIN_PASSWORD_CHARS, Password};
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, page};
use super::login::{bad_form, end_previous_session, form_token, form_token_matches};
use super::{Notice, PageResult, csrf_refused, error_page, html_response};
use crate::AppState;
use crate::session::{CSRF_FIELD, PeerIp, session_cookie};

/// `GET /invite`.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = form_token(&headers, state.options.secure_cookies);
    let mut response = html_response(StatusCode::OK, invite_page(&token, "", None));
    response.headers_mut().append(header::SET_COOKIE, set);
    response
}

/// The invitation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /invite`: sets the password, creates the user, signs them in.
pub async fn submit(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    form: Result<Form<InviteForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, None))?;
    if !form_token_matches(&headers, &form.csrf) {
        return Err(csrf_refused(None));
    }
    let code = form.code.trim().trim_start_matches('#');
    // A refused password keeps the code in the form (the link's fragment
    // is gone from the address bar by now); a refused code does not.
    let refuse_with = |status: StatusCode, code: &str, message: String| {
        html_response(
            status,
            invite_page(&form.csrf, code, Some(&Notice::Refused(message))),
        )
    };
    let refuse = |status: StatusCode, message: String| refuse_with(status, code, message);
    if form.password != form.confirm {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "The two passwords differ: type the same password twice.".to_owned(),
        ));
    }
    let password = Password::new(&form.password)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, Notice::refused_text(&e)))?;
    let user = match state.carewatch.accept_invitation(code, password, ip).await {
        Ok(user) => user,
        Err(Error::Unauthenticated { .. }) => {
            return Err(refuse_with(
                StatusCode::BAD_REQUEST,
                "",
                "This invitation is not valid: it was used already, has expired, or the code \
                 was not copied whole. Ask an admin of your team for a new one."
                    .to_owned(),
            ));
        }
        Err(e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. })) => {
            return Err(refuse(
                crate::errors::status_for(&e),
                Notice::refused_text(&e),
            ));
        }
        Err(e) => return Err(error_page(e, None)),
    };
    // The new user signs in with the password just set.
    let issued = state
        .carewatch
        .sign_in(user.login.as_str(), &form.password, ip)
        .await
        .map_err(|e| error_page(e, None))?;
    end_previous_session(&state, &headers).await;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(
            &issued.secret.token,
            issued.session.expires_at,
            state.carewatch.now(),
            state.options.secure_cookies,
        ),
    );
    Ok(response)
}

fn invite_page(token: &str, code: &str, notice: Option<&Notice>) -> Markup {
    let body = html! {
        div.narrow {
            h1 { "Join your team on Carewatch" }
            p { "Choose the password you will sign in with." }
            (Notice::render(notice))
            form.stacked #invite-form method="post" action="/invite" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                div #invite-code-field {
                    label for="code" { "Invitation code" }
                    p.hint #code-hint {
                        "Paste the part of your invitation link after the “#” "
                        "(it starts with " code { "cwi." } ")."
                    }
                    input #code name="code" type="text" required autocomplete="off"
                        spellcheck="false" maxlength="200" aria-describedby="code-hint"
                        value=(code);
                }
                label for="password" { "New password" }
                p.hint #password-hint { "At least " (MIN_PASSWORD_CHARS) " characters." }
                input #password name="password" type="password" autocomplete="new-password"
                    required minlength=(MIN_PASSWORD_CHARS) maxlength="1024"
                    aria-describedby="password-hint";
                label for="confirm" { "The same password again" }
                input #confirm name="confirm" type="password" autocomplete="new-password"
                    required minlength=(MIN_PASSWORD_CHARS) maxlength="1024";
                button type="submit" { "Set password and sign in" }
            }
        }
    };
    page("Accept invitation", None, Nav::None, body)
}
