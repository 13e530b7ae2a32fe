//! The team (admins only): users with their roles, inviting (the one-time
//! link is shown once, right after), removing (their sessions end at once).

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use carewatch_core::Error;
use carewatch_core::team::{Login, Role, User};
use http::{HeaderMap, StatusCode, Uri, header};
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

/// `GET /team`.
pub async fn page(State(state): State<AppState>, user: SignedIn) -> PageResult {
    require_admin(&user)?;
    render(
        &state,
        &user,
        StatusCode::OK,
        None,
        None,
        &InviteForm::default(),
    )
    .await
}

/// The invitation form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// An invitation just made: shown once.
struct Invitation {
    link: String,
    login: String,
    expires: carewatch_core::time::Timestamp,
}

/// `POST /team/invite`.
pub async fn invite(
    State(state): State<AppState>,
    user: SignedIn,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<InviteForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let invited = async {
        let login = Login::new(&form.login)?;
        let role = Role::parse(&form.role)?;
        state
            .carewatch
            .invite_user(
                &user.user().reseller,
                &login,
                &form.name,
                role,
                Some(user.user()),
            )
            .await
    }
    .await;
    match invited {
        Ok(issued) => {
            let invitation = Invitation {
                link: format!(
                    "{}/invite#{}",
                    origin(&uri, &headers, state.options.secure_cookies),
                    issued.secret.token.as_str()
                ),
                login: issued.user.login.to_string(),
                expires: issued.expires_at,
            };
            render(
                &state,
                &user,
                StatusCode::OK,
                None,
                Some(&invitation),
                &InviteForm::default(),
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

/// The removal form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
}

/// `POST /team/remove`.
pub async fn remove(
    State(state): State<AppState>,
    user: SignedIn,
    form: Result<Form<RemoveForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let removed = async {
        let login = Login::new(&form.login)?;
        state.carewatch.remove_user(user.user(), &login).await?;
        Ok::<_, Error>(login)
    }
    .await;
    let empty = InviteForm::default();
    match removed {
        Ok(login) => {
            let notice = Notice::Done(format!("Removed {login}; their sessions have ended."));
            render(&state, &user, StatusCode::OK, Some(&notice), None, &empty).await
        }
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

/// `https://host:port` as the browser reached this server, for links to
/// hand on. The host is the request's own (HTTP/2 authority or `Host`).
fn origin(uri: &Uri, headers: &HeaderMap, secure: bool) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let scheme = if secure { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn render(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    notice: Option<&Notice>,
    invitation: Option<&Invitation>,
    form: &InviteForm,
) -> PageResult {
    let users = state
        .carewatch
        .users(&user.user().reseller)
        .await
        .map_err(|e| error_page(e, Some(user)))?;
    let body = html! {
        h1 { "Team" }
        (Notice::render(notice))
        @if let Some(invitation) = invitation { (invitation_box(invitation)) }
        (users_table(user, &users))
        (invite_form(user, form))
    };
    Ok(html_response(
        status,
        layout("Team", Some(user), Nav::Team, body),
    ))
}

fn invitation_box(invitation: &Invitation) -> Markup {
    html! {
        section.secret-once role="status" aria-labelledby="invitation-heading" {
            h2 #invitation-heading { "Invitation for " (invitation.login) }
            p {
                "Send this link to " (invitation.login) " yourself. It works once, until "
                (format::time(invitation.expires)) ". It is shown only now: Carewatch keeps "
                "only a fingerprint of it."
            }
            label for="invitation-link" { "Invitation link" }
            input #invitation-link.secret type="text" readonly value=(invitation.link);
        }
    }
}

fn users_table(current: &SignedIn, users: &[User]) -> Markup {
    html! {
        h2 { "Users" }
        table.records {
            thead {
                tr {
                    th scope="col" { "Login" }
                    th scope="col" { "Name" }
                    th scope="col" { "Role" }
                    th scope="col" { "Since" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                }
            }
            tbody {
                @for u in users {
                    tr {
                        th scope="row" data-label="Login" { (u.login) }
                        td data-label="Name" { (u.name) }
                        td data-label="Role" { (u.role.name()) }
                        td data-label="Since" { (format::time(u.created_at)) }
                        td {
                            @if u.login == current.user().login {
                                span.muted { "you" }
                            } @else {
                                form.inline method="post" action="/team/remove" {
                                    (csrf_field(current))
                                    input type="hidden" name="login" value=(u.login);
                                    button.danger type="submit"
                                        aria-label=(format!("Remove {}", u.login)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn invite_form(user: &SignedIn, form: &InviteForm) -> Markup {
    let role = if form.role == Role::Admin.name() {
        Role::Admin
    } else {
        Role::Viewer
    };
    html! {
        h2 #invite { "Invite someone" }
        form.stacked method="post" action="/team/invite" {
            (csrf_field(user))
            label for="invite-login" { "Login (email or name)" }
            input #invite-login name="login" type="text" required maxlength="254"
                autocomplete="off" value=(form.login);
            label for="invite-name" { "Name shown to the team" }
            input #invite-name name="name" type="text" required maxlength="200"
                autocomplete="off" value=(form.name);
            label for="invite-role" { "Role" }
            select #invite-role name="role" {
                option value="viewer" selected[role == Role::Viewer] { "viewer — reads" }
                option value="admin" selected[role == Role::Admin] {
                    "admin — also manages the team and API tokens"
                }
            }
            button type="submit" { "Create invitation link" }
        }
    }
}
