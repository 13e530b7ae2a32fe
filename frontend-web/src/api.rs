//! The JSON API for resellers' own tools (PSA, ticketing): `/api/v1/…`,
//! read-only, authenticated with `Authorization: Bearer <token>` (the
//! reseller's token or a named API token). Errors are
//! `{"error": {"code", "message"}}` with a status per kind. The OpenAPI
//! description is generated from these types and handlers (utoipa) and
//! served at `/api/v1/openapi.json`.

mod detail;
mod installations;
mod report;

use std::sync::LazyLock;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use carewatch_core::Error;
use carewatch_core::ids::ResellerId;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::errors::{ApiError, ErrorBody, ErrorDetail};
use crate::session::peer_ip;
pub use detail::{ConditionJson, HistoryJson, InstallationDetailJson, ServerJson, detail};
pub use installations::{
    HealthName, InstallationList, InstallationRow, LabelsJson, ProductJson, Totals, list, totals,
};
pub use report::{
    InstallationUptimeJson, PeriodJson, ServerUptimeJson, UptimeJson, UptimeReportJson, report,
};

/// The reseller a bearer token opens.
#[derive(Debug)]
pub struct ApiReader(pub ResellerId);

impl FromRequestParts<AppState> for ApiReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(carewatch_core::auth::bearer_token)
            .ok_or(Error::Unauthenticated {
                reason: "send a token as `Authorization: Bearer <token>`",
            })?;
        let reseller = state
            .carewatch
            .authenticate_reader(token, peer_ip(parts))
            .await?;
        Ok(Self(reseller))
    }
}

fn malformed_query() -> ApiError {
    ApiError(Error::InvalidInput {
        field: "query",
        reason: "the address's parameters are malformed".into(),
    })
}

/// Any other `/api/…` path: 401 without a token, else 404, both JSON.
pub async fn not_found(_reader: ApiReader) -> ApiError {
    ApiError(Error::NotFound {
        what: "API endpoint".into(),
    })
}

/// A documented `/api/…` path asked with a method it does not answer: 405
/// in the API's JSON error shape rather than axum's empty body. axum adds
/// the `Allow` header (the route's methods) to what this returns.
pub async fn method_not_allowed(method: Method) -> Response {
    // No core error kind fits: the method is HTTP's business, not Carewatch's.
    let body = ErrorBody {
        error: ErrorDetail {
            code: "method_not_allowed".to_owned(),
            message: format!(
                "{method} is not allowed here: the API is read-only, see the Allow header"
            ),
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// The OpenAPI description of this API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Carewatch reseller API",
        description = "Read-only access to a reseller's installations, their health and \
                       uptime reports, for PSA and ticketing tools. Authenticate with `Authorization: Bearer <token>`: \
                       the reseller's token or a named API token created on the Tokens page.",
        version = "1"
    ),
    paths(installations::list, detail::detail, installations::totals, report::report),
    components(schemas(
        InstallationList, InstallationRow, InstallationDetailJson, Totals, HealthName, LabelsJson,
        ProductJson, ServerJson, ConditionJson, HistoryJson, ErrorBody, ErrorDetail,
        UptimeReportJson, PeriodJson, InstallationUptimeJson, ServerUptimeJson, UptimeJson
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "installations", description = "The reseller's installations"),
        (name = "reports", description = "Uptime reports: availability, outages and MTTR")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths name.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cwr.… or cwa.…")
                    .description(Some("The reseller's token or a named read-only API token"))
                    .build(),
            ),
        );
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// `GET /api/v1/openapi.json`: public, like the static files (it describes
/// the API and holds nothing of anybody's).
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON.as_str(),
    )
        .into_response()
}
