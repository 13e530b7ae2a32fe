//! # carewatch-web
//!
//! The reseller's web dashboard: server-rendered pages (maud, compiled in),
//! live updates by server-sent events from the change feed, sign-in for a
//! reseller's team, and a read-only JSON API with its OpenAPI description.
//!
//! It translates between HTTP and [`Carewatch`]; the rules (who may see
//! what, roles, throttling, health) are in `carewatch-core`.
//!
//! ```no_run
//! # async fn serve(carewatch: carewatch_core::Carewatch, grpc: axum::Router) {
//! let router = grpc.merge(carewatch_web::router(carewatch, carewatch_web::WebOptions::default()));
//! # }
//! ```
//!
//! The router has no fallback of its own (gRPC's router keeps its
//! `Unimplemented` one) but a catch-all route: unknown paths get a 404 page
//! (or a gRPC `Unimplemented` for gRPC requests), so it merges with the gRPC
//! routes and serves both on one listener.

mod api;
mod assets;
mod errors;
mod format;
mod headers;
mod live;
mod pages;
mod query;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{any, get, post};
use carewatch_core::Carewatch;

pub use api::ApiDoc;
pub use headers::CONTENT_SECURITY_POLICY;
pub use session::{CSRF_FIELD, FORM_COOKIE, SESSION_COOKIE, csrf_token};

/// How the web front end behaves.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Whether the server speaks HTTPS: cookies then carry `Secure` (sent
    /// over HTTPS only) and responses `Strict-Transport-Security`. Turn it
    /// off only for a plaintext server on loopback.
    pub secure_cookies: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        Self {
            secure_cookies: true,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    carewatch: Carewatch,
    options: Arc<WebOptions>,
    /// Overview rows rendered for live updates, shared by every open page.
    rows: Arc<live::RowCache>,
}

/// Largest request body accepted: forms hold a few short fields.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The web front end's routes, with security headers on every response.
/// Merge it with the gRPC router to serve both on one listener; its paths
/// (`/`, `/login`, `/installations/…`, `/reports…`, `/api/v1/…`, `/static/…` …) never
/// look like a gRPC service's (`/carewatch.v1.Dashboard/…`).
pub fn router(carewatch: Carewatch, options: WebOptions) -> Router {
    // The same knowledge as the cookies' `Secure`: set exactly when serving TLS.
    let tls = options.secure_cookies;
    let state = AppState {
        carewatch,
        options: Arc::new(options),
        rows: Arc::default(),
    };
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route(
            "/invite",
            get(pages::invite::form).post(pages::invite::submit),
        )
        .route("/installations/{slc}", get(pages::installation::page))
        .route("/installations/{slc}/labels", post(pages::labels::save))
        .route(
            "/installations/{slc}/servers/{server}/decommission",
            post(pages::labels::decommission),
        )
        .route("/reports", get(pages::reports::page))
        .route("/reports/{file}", get(pages::reports::download))
        .route("/team", get(pages::team::page))
        .route("/team/invite", post(pages::team::invite))
        .route("/team/remove", post(pages::team::remove))
        .route(
            "/tokens",
            get(pages::tokens::page).post(pages::tokens::create),
        )
        .route("/tokens/revoke", post(pages::tokens::revoke))
        .route("/audit", get(pages::audit::page))
        .route(
            "/channels",
            get(pages::channels::page).post(pages::channels::create),
        )
        .route("/channels/test", post(pages::channels::test))
        .route("/channels/delete", post(pages::channels::delete))
        .route(
            "/maintenance",
            get(pages::maintenance::page).post(pages::maintenance::create),
        )
        .route("/maintenance/delete", post(pages::maintenance::delete))
        .route("/events", get(live::events))
        .route("/static/site.css", get(assets::css))
        .route("/static/live.js", get(assets::js))
        // A wrong method on an API path is a JSON 405 (with axum's `Allow`).
        .route(
            "/api/v1/installations",
            get(api::list).fallback(api::method_not_allowed),
        )
        .route(
            "/api/v1/installations/{slc}",
            get(api::detail).fallback(api::method_not_allowed),
        )
        .route(
            "/api/v1/totals",
            get(api::totals).fallback(api::method_not_allowed),
        )
        .route(
            "/api/v1/reports/{month}",
            get(api::report).fallback(api::method_not_allowed),
        )
        .route(
            "/api/v1/openapi.json",
            get(api::openapi).fallback(api::method_not_allowed),
        )
        // A wildcard never matches an empty remainder: without these two,
        // `/api` and `/api/` would fall through to the pages' catch-all.
        .route("/api", any(api::not_found))
        .route("/api/", any(api::not_found))
        .route("/api/{*rest}", any(api::not_found))
        .route("/{*rest}", any(pages::not_found))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(move |response: Response| {
            headers::secure(response, tls)
        }))
}
