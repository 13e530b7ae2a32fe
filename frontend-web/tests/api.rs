//! The JSON API: reseller tokens and named API tokens, filters, errors, and
//! the OpenAPI description.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use carewatch_core::ConditionCode;
use carewatch_core::team::{Login, Role};
use common::Web;
use http::{Method, Request, StatusCode, header};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_and_details_installations_with_a_reseller_token() {
    let web = Web::new().await;
    let healthy = web.site("acme", "M01-C01-0001").await;
    let full = web.site("acme", "M01-C01-0002").await;
    web.site("rival", "M02-C01-0001").await;
    web.fixture
        .heartbeat(&healthy, "rs-1", 1)
        .await
        .expect("accepted");
    web.fixture
        .report(
            &full,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "100%")],
        )
        .await
        .expect("accepted");
    let token = web.reseller_token("acme").await;

    let list = web.api("/api/v1/installations", Some(&token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.headers[http::header::CACHE_CONTROL], "no-store");
    let json = list.json();
    let slcs: Vec<&str> = json["installations"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["slc"].as_str().expect("slc"))
        .collect();
    assert_eq!(
        slcs,
        ["M01-C01-0002"],
        "only what needs attention by default"
    );
    let row = &json["installations"][0];
    assert_eq!(row["health"], "critical");
    assert_eq!(row["worst_condition"], "STORAGE_FULL");
    assert_eq!(row["servers"], 1);
    assert!(row["customer_label"].is_null());
    assert!(row["last_seen_at"].as_str().expect("a time").ends_with('Z'));
    assert_eq!(json["totals"]["healthy"], 1);
    assert_eq!(json["totals"]["critical"], 1);
    assert_eq!(json["totals"]["total"], 2, "never another reseller's");
    assert!(json["next"].is_null());

    let all = web
        .api("/api/v1/installations?all=true&limit=1", Some(&token))
        .await
        .json();
    assert_eq!(all["installations"].as_array().expect("rows").len(), 1);
    let next = all["next"].as_str().expect("a next page");
    let rest = web
        .api(
            &format!("/api/v1/installations?all=true&limit=1&after={next}"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(rest["installations"][0]["slc"], "M01-C01-0001");
    let healthy_only = web
        .api("/api/v1/installations?health=healthy", Some(&token))
        .await
        .json();
    assert_eq!(healthy_only["installations"][0]["slc"], "M01-C01-0001");
    let searched = web
        .api("/api/v1/installations?all=1&q=0002", Some(&token))
        .await
        .json();
    assert_eq!(searched["installations"].as_array().expect("rows").len(), 1);

    let detail = web
        .api("/api/v1/installations/m01-c01-0002", Some(&token))
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let detail = detail.json();
    assert_eq!(detail["installation"]["slc"], "M01-C01-0002");
    assert_eq!(detail["servers"][0]["id"], "rs-1");
    assert_eq!(detail["servers"][0]["availability"], "available");
    assert_eq!(detail["servers"][0]["interval_seconds"], 60.0);
    assert_eq!(detail["active_conditions"][0]["code"], "STORAGE_FULL");
    assert_eq!(detail["active_conditions"][0]["severity"], "critical");
    assert_eq!(detail["subscription_active"], true);
    assert_eq!(detail["consent"], true);
    let kinds: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["kind"].as_str().expect("kind"))
        .collect();
    assert!(
        kinds.contains(&"condition_opened") && kinds.contains(&"first_seen"),
        "{kinds:?}"
    );

    let totals = web.api("/api/v1/totals", Some(&token)).await.json();
    assert_eq!(totals["total"], 2);
    assert_eq!(totals["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_api_tokens_read_until_revoked() {
    let web = Web::new().await;
    web.site("acme", "M01-C01-0001").await;
    web.user("acme", "boss", Role::Admin).await;
    let reseller = web.fixture.reseller("acme").await;
    let users = web.fixture.carewatch.users(&reseller).await.expect("users");
    let boss = users
        .iter()
        .find(|u| u.login == Login::new("boss").expect("valid"))
        .expect("boss");
    let issued = web
        .fixture
        .carewatch
        .create_api_token(boss, "PSA sync", None)
        .await
        .expect("creates");
    let token = issued.secret.token.to_string();
    let list = web
        .api("/api/v1/installations?all=true", Some(&token))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["installations"][0]["slc"], "M01-C01-0001");
    web.fixture
        .carewatch
        .revoke_api_token(boss, &issued.record.id)
        .await
        .expect("revokes");
    let refused = web.api("/api/v1/installations", Some(&token)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "unauthenticated");
    assert!(!refused.body.contains(&token), "never echoes the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json_with_a_code_and_a_status_per_kind() {
    let web = Web::new().await;
    web.site("acme", "M01-C01-0001").await;
    let token = web.reseller_token("acme").await;
    for (path, status, code) in [
        ("/api/v1/installations?health=purple", 400, "invalid_input"),
        ("/api/v1/installations?limit=501", 400, "invalid_input"),
        ("/api/v1/installations?after=garbage", 400, "invalid_input"),
        (
            &format!("/api/v1/installations?q={}", "A".repeat(65)),
            400,
            "invalid_input",
        ),
        ("/api/v1/installations/x", 400, "invalid_input"),
        ("/api/v1/installations/M09-C09-0009", 404, "not_found"),
        ("/api/v1/nothing", 404, "not_found"),
    ] {
        let page = web.api(path, Some(&token)).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.body);
        let json = page.json();
        assert_eq!(json["error"]["code"], code, "{path}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(page.headers[http::header::CONTENT_TYPE], "application/json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let web = Web::new().await;
    web.site("acme", "M01-C01-0001").await;
    let token = web.reseller_token("acme").await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/installations/M01-C01-0001"),
        (Method::POST, "/api/v1/installations"),
        (Method::PUT, "/api/v1/totals"),
        (Method::PATCH, "/api/v1/reports/2024-01"),
        (Method::POST, "/api/v1/openapi.json"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let page = web.send(request).await;
        assert_eq!(
            page.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {page:?}"
        );
        assert_eq!(
            page.headers[header::CONTENT_TYPE],
            "application/json",
            "{method} {path}"
        );
        let json = page.json();
        assert_eq!(
            json["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}"
        );
        // axum's `Allow`, kept: the API reads only.
        assert_eq!(page.headers[header::ALLOW], "GET,HEAD", "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unknown_api_path_is_json_even_with_nothing_after_api() {
    let web = Web::new().await;
    web.site("acme", "M01-C01-0001").await;
    let token = web.reseller_token("acme").await;
    for path in ["/api", "/api/", "/api/v2/installations", "/api/v1/nothing"] {
        let page = web.api(path, Some(&token)).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {page:?}");
        assert_eq!(
            page.headers[header::CONTENT_TYPE],
            "application/json",
            "{path}"
        );
        assert_eq!(page.json()["error"]["code"], "not_found", "{path}");
        // Without a token it is the API's JSON 401, never the login page.
        let anonymous = web.api(path, None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {anonymous:?}"
        );
        assert_eq!(
            anonymous.json()["error"]["code"],
            "unauthenticated",
            "{path}"
        );
    }
}

/// Every `$ref` in `value`.
fn refs(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    into.insert(v.as_str().expect("a string $ref").to_owned());
                }
                refs(v, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_is_valid_and_matches_the_routes() {
    let web = Web::new().await;
    let page = web.api("/api/v1/openapi.json", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let doc = page.json();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // It parses back into utoipa's model of OpenAPI.
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("an OpenAPI document");
    assert_eq!(parsed.paths.paths.len(), 4);

    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/api/v1/installations",
            "/api/v1/installations/{slc}",
            "/api/v1/reports/{month}",
            "/api/v1/totals"
        ])
    );
    // Every reference resolves, every operation is secured by a declared scheme.
    let mut all_refs = BTreeSet::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for reference in &all_refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{reference} is not defined"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let get = &item["get"];
        assert!(get.is_object(), "{path} has GET");
        assert!(get["security"][0]["bearer"].is_array(), "{path} is secured");
        // Every status the API can send on it is described.
        for status in ["200", "401", "405", "500", "503"] {
            assert!(get["responses"][status].is_object(), "{path}: {status}");
        }
    }
    let params: BTreeSet<&str> = doc["paths"]["/api/v1/installations"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        params,
        BTreeSet::from(["health", "q", "all", "sort", "after", "limit"])
    );
    // Generated clients see the types the parameters have, not text.
    let schema_of = |name: &str| {
        doc["paths"]["/api/v1/installations"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["schema"].clone())
            .expect("the parameter")
    };
    // (OpenAPI 3.1 may spell an optional one as ["integer", "null"].)
    let is = |schema: &Value, kind: &str| {
        schema["type"] == kind
            || schema["type"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == kind))
    };
    let limit = schema_of("limit");
    assert!(is(&limit, "integer"), "{limit}");
    assert_eq!(
        (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
        (Some(1.0), Some(500.0)),
        "{limit}"
    );
    let all = schema_of("all");
    assert!(is(&all, "boolean"), "{all}");

    // The served document is the one generated from the code.
    use utoipa::OpenApi;
    let generated: Value =
        serde_json::from_str(&carewatch_web::ApiDoc::openapi().to_json().expect("json"))
            .expect("json");
    assert_eq!(generated, doc);
}
