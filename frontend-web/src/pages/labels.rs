//! The admins' forms on the installation page (issue 18): naming it, and
//! decommissioning a recording server removed at the site. Another
//! reseller's installation is the same 404 as a missing one (core changes
//! only what the reseller owns).

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use carewatch_core::Error;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::labels::{Labels, MAX_NAME_BYTES, MAX_NOTES_BYTES};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::installation::render;
use super::login::bad_form;
use super::{Notice, PageResult, csrf_field, csrf_refused, error_page, require_admin};
use crate::AppState;
use crate::errors::status_for;
use crate::session::SignedIn;

/// The labels form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct LabelsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    notes: String,
    /// Comma- or space-separated.
    #[serde(default)]
    tags: String,
}

/// `POST /installations/{slc}/labels`: replaces every label.
pub async fn save(
    State(state): State<AppState>,
    user: SignedIn,
    slc: Result<Path<String>, PathRejection>,
    form: Result<Form<LabelsForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let slc = match slc.map_err(|_| Error::InvalidInput {
        field: "slc",
        reason: "the address does not name an installation".into(),
    }) {
        Ok(Path(slc)) => Slc::new(&slc),
        Err(e) => Err(e),
    }
    .map_err(|e| error_page(e, Some(&user)))?;
    let tags: Vec<String> = form
        .tags
        .split([',', ' '])
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let saved = async {
        let labels = Labels::new(&form.customer, &form.site, &form.notes, &tags)?;
        state.carewatch.set_labels(user.user(), &slc, &labels).await
    }
    .await;
    match saved {
        Ok(()) => {
            let notice = Notice::Done("Labels saved.".into());
            render(&state, &user, &slc, StatusCode::OK, Some(&notice)).await
        }
        Err(e @ Error::InvalidInput { .. }) => {
            render(
                &state,
                &user,
                &slc,
                status_for(&e),
                Some(&Notice::refused(&e)),
            )
            .await
        }
        // Missing or another reseller's: the installation page's own 404.
        Err(e) => Err(error_page(e, Some(&user))),
    }
}

/// The form, filled with the current labels, folded away until opened.
pub fn labels_form(user: &SignedIn, slc: &Slc, labels: &Labels) -> Markup {
    html! {
        details.labels-form {
            summary { "Edit customer, site, notes and tags" }
            form method="post" action=(format!("/installations/{slc}/labels")) {
                (csrf_field(user))
                label for="customer" { "Customer" }
                input #customer name="customer" type="text" maxlength=(MAX_NAME_BYTES)
                    value=(labels.customer());
                label for="site" { "Site" }
                input #site name="site" type="text" maxlength=(MAX_NAME_BYTES)
                    value=(labels.site());
                label for="tags" { "Tags (separated by commas)" }
                input #tags name="tags" type="text" value=(labels.tags().join(", "));
                label for="notes" { "Notes" }
                textarea #notes name="notes" rows="4" maxlength=(MAX_NOTES_BYTES) { (labels.notes()) }
                button type="submit" { "Save labels" }
            }
        }
    }
}

/// The decommission form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct DecommissionForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /installations/{slc}/servers/{server}/decommission`.
pub async fn decommission(
    State(state): State<AppState>,
    user: SignedIn,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<DecommissionForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|rejection| bad_form(&rejection, Some(&user)))?;
    if !user.csrf_matches(Some(&form.csrf)) {
        return Err(csrf_refused(Some(&user)));
    }
    require_admin(&user)?;
    let bad = |e| error_page(e, Some(&user));
    let Ok(Path((slc, server))) = path else {
        return Err(bad(Error::InvalidInput {
            field: "slc",
            reason: "the address does not name a recording server".into(),
        }));
    };
    let slc = Slc::new(&slc).map_err(bad)?;
    let server = RecordingServerId::new(&server).map_err(bad)?;
    // Missing or another reseller's: the installation page's own 404.
    let changed = state
        .carewatch
        .decommission_server(user.user(), &slc, &server)
        .await
        .map_err(bad)?;
    let notice = Notice::Done(if changed {
        format!(
            "Recording server {server} is decommissioned: it no longer counts. A message from it brings it back."
        )
    } else {
        format!("Recording server {server} was decommissioned already.")
    });
    render(&state, &user, &slc, StatusCode::OK, Some(&notice)).await
}

/// One server's "decommission" button, asking for confirmation in words.
pub fn decommission_form(user: &SignedIn, slc: &Slc, server: &RecordingServerId) -> Markup {
    html! {
        form.inline method="post"
            action=(format!("/installations/{slc}/servers/{server}/decommission")) {
            (csrf_field(user))
            button type="submit" aria-label=(format!("Decommission recording server {server}")) {
                "Decommission"
            }
        }
    }
}
