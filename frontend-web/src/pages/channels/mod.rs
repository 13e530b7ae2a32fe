//! Notification channels (admins only): list with each channel's rules and
//! last delivery, create (a webhook's signing secret is shown once, right
//! after), send a test, delete; and the notifications given up on, with
//! their error.
//!
//! Destinations are shown as core describes them (kind and host, or the
//! addresses): a chat webhook's URL is a secret and never comes back.

mod form;
mod view;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::Response;
use carewatch_core::Error;
use carewatch_core::notification::{ChannelId, OutboxFilter};
use http::StatusCode;
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, page as layout};
use super::login::bad_form;
use super::{Notice, PageResult, csrf_refused, error_page, html_response, require_admin};
use crate::AppState;
use crate::errors::status_for;
use crate::session::SignedIn;
use form::create_form;
use view::{channels_table, failed_table, secret_box};

pub use form::CreateForm;

/// Failed notifications listed on the page.
const FAILED_SHOWN: u32 = 50;

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
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
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
            let page = render(
                &state,
                &user,
                StatusCode::OK,
                Some(&notice),
                secret.as_ref(),
                &CreateForm::default(),
            )
            .await;
            match (page, secret) {
                // The channel is made; its secret is shown only now, so a
                // failed read of the list must not take it with the page.
                (Err(_), Some(secret)) => Ok(secret_only(&user, &notice, &secret)),
                (page, _) => page,
            }
        }
        // A chosen installation that is not the reseller's: NotFound, told
        // beside the form as it was filled in.
        Err(
            e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. } | Error::NotFound { .. }),
        ) => {
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
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
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

/// A made channel's signing secret on its own, when the rest of the page
/// could not be read.
fn secret_only(user: &SignedIn, notice: &Notice, secret: &NewSecret) -> Response {
    let body = html! {
        h1 { "Notification channels" }
        (Notice::render(Some(notice)))
        (secret_box(secret))
        p { "The list of channels could not be read just now. " a href="/channels" { "Reload it" } " once you have kept the secret." }
    };
    html_response(
        StatusCode::OK,
        layout("Notification channels", Some(user), Nav::Channels, body),
    )
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
