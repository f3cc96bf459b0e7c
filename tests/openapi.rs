//! The checked-in spec under openapi/ is the served one, byte for byte.
//! When this fails, regenerate with:
//!   cargo run -- openapi > openapi/openapi.json
//!   cargo run -- openapi --yaml > openapi/openapi.yaml

mod common;

use common::TestApp;
use poem::http::{Method, StatusCode};

fn checked_in(name: &str) -> String {
    let path = format!("{}/openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn served(app: &TestApp, path: &str) -> String {
    let resp = app.client.request(Method::GET, path).send().await;
    resp.assert_status(StatusCode::OK);
    resp.0.into_body().into_string().await.unwrap()
}

#[tokio::test]
async fn served_json_spec_matches_the_checked_in_file() {
    let app = TestApp::spawn().await;
    let served = served(&app, "/openapi.json").await;
    assert!(
        served.trim_end() == checked_in("openapi.json").trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn served_yaml_spec_matches_the_checked_in_file() {
    let app = TestApp::spawn().await;
    let served = served(&app, "/openapi.yaml").await;
    assert!(
        served.trim_end() == checked_in("openapi.yaml").trim_end(),
        "openapi/openapi.yaml is stale: run `cargo run -- openapi --yaml > openapi/openapi.yaml`"
    );
}

#[tokio::test]
async fn every_operation_is_documented_for_client_generators() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    let mut seen = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            seen += 1;
            let what = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{what}: operationId");
            assert!(op["summary"].is_string(), "{what}: summary");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{what}: tag"
            );
            let responses = op["responses"].as_object().unwrap();
            if path.starts_with("/api/v1") {
                for status in ["400", "401", "404", "422"] {
                    let schema =
                        &responses[status]["content"]["application/json; charset=utf-8"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Error",
                        "{what}: {status}"
                    );
                }
                if method != "get" {
                    assert!(
                        responses.contains_key("409") && responses.contains_key("413"),
                        "{what}"
                    );
                }
            }
        }
    }
    assert_eq!(seen, 13);
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let resp = app.client.request(Method::GET, "/docs").send().await;
    resp.assert_status(StatusCode::OK);
    let html = resp.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
}

/// Regressions found by schemathesis: the published request schemas must
/// say what the server accepts and refuses.
#[tokio::test]
async fn request_schemas_state_what_the_server_enforces() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    let schemas = &spec["components"]["schemas"];
    for (object, field) in [
        ("CreateRunRequest", "contract_id"),
        ("CreateRunRequest", "pipeline_name"),
        ("UpdateRunRequest", "pipeline_id"),
        ("CreateValidationRequest", "contract_id"),
        ("ValidationIssue", "code"),
    ] {
        let f = &schemas[object]["properties"][field];
        assert_eq!(f["minLength"], 1, "{object}.{field}");
        assert_eq!(f["maxLength"], 255, "{object}.{field}");
        assert!(
            f["pattern"].is_string(),
            "{object}.{field}: no blank or control characters"
        );
    }
    // Null is accepted for every optional request field, as "not given".
    for (object, field) in [
        ("CreateRunRequest", "status"),
        ("CreateRunRequest", "completed_at"),
        ("UpdateRunRequest", "metadata"),
        ("CreateValidationRequest", "recorded_at"),
    ] {
        assert_eq!(
            schemas[object]["properties"][field]["nullable"], true,
            "{object}.{field}"
        );
    }
    assert_eq!(schemas["UpdateRunRequest"]["minProperties"], 1);
}
