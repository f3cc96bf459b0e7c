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

/// The statuses each operation documents: exactly what it can answer.
const RESPONSES: &[(&str, &[&str])] = &[
    ("health", &["200"]),
    ("ready", &["200", "503"]),
    (
        "create_run",
        &[
            "201", "200", "400", "401", "403", "413", "415", "422", "500",
        ],
    ),
    ("list_runs", &["200", "401", "422", "500"]),
    ("get_run", &["200", "401", "404", "500"]),
    (
        "update_run",
        &[
            "200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "500",
        ],
    ),
    ("heartbeat_run", &["200", "401", "403", "404", "409", "500"]),
    ("list_run_events", &["200", "401", "404", "422", "500"]),
    ("wait_for_run", &["200", "401", "404", "422", "500"]),
    (
        "record_validation",
        &["201", "400", "401", "403", "413", "415", "422", "500"],
    ),
    ("list_validations", &["200", "401", "422", "500"]),
    ("get_validation", &["200", "401", "404", "500"]),
    ("get_validation_stats", &["200", "401", "422", "500"]),
    (
        "create_webhook",
        &["201", "400", "401", "403", "413", "415", "422", "500"],
    ),
    ("list_webhooks", &["200", "401", "403", "500"]),
    ("get_webhook", &["200", "401", "403", "404", "500"]),
    ("delete_webhook", &["204", "401", "403", "404", "500"]),
    ("test_webhook", &["200", "401", "403", "404", "500"]),
    (
        "list_webhook_deliveries",
        &["200", "401", "403", "404", "422", "500"],
    ),
    (
        "redeliver_webhook_message",
        &["202", "401", "403", "404", "500"],
    ),
];

fn operations(spec: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .iter()
                .map(move |(method, op)| (format!("{method} {path}"), op))
        })
        .collect()
}

#[tokio::test]
async fn every_operation_is_documented_for_client_generators() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    let ops = operations(&spec);
    assert_eq!(ops.len(), RESPONSES.len());
    for (what, op) in ops {
        let id = op["operationId"].as_str().expect("operationId");
        assert!(op["summary"].is_string(), "{what}: summary");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{what}: tag"
        );
        let responses = op["responses"].as_object().unwrap();
        let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        let expected = RESPONSES.iter().find(|(o, _)| *o == id).unwrap().1;
        assert_eq!(documented, expected, "{what}");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json; charset=utf-8"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{what}: {status}"
                );
            }
        }
        // Swagger UI fills Try it out from examples: every parameter has one,
        // but for Idempotency-Key, which must differ between creates, and
        // cursor, which would start every Try it out mid-list.
        for param in op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] != "Idempotency-Key" && p["name"] != "cursor")
        {
            assert!(
                !param["example"].is_null(),
                "{what}: {} example",
                param["name"]
            );
        }
    }
}

/// Every object a request body reaches refuses unknown fields, and the spec
/// says so (`additionalProperties: false`), so generators and fuzzers do not
/// take a typo for a valid field.
#[tokio::test]
async fn request_bodies_are_closed_objects() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    let schemas = &spec["components"]["schemas"];
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.trim_start_matches("#/components/schemas/").to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut todo = Vec::new();
    for (_, op) in operations(&spec) {
        refs(&op["requestBody"], &mut todo);
    }
    assert!(!todo.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &schemas[&name];
        if schema["type"] == "object" {
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
        refs(&schema["properties"], &mut todo);
    }
    assert!(seen.contains("ValidationIssue"), "{seen:?}");
    // And the server does refuse them.
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/runs",
            serde_json::json!({"contract_id": "c", "contract": "typo"}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

/// openapi-python-client drops any operation or schema that uses an enum
/// through `allOf`; nothing in the spec may.
#[tokio::test]
async fn enums_are_used_in_forms_generators_accept() {
    let text = checked_in("openapi.json");
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn walk(v: &serde_json::Value, at: &str, enums: &[String]) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(parts) = map.get("allOf") {
                    let r = parts[0]["$ref"].as_str().unwrap_or_default();
                    assert!(!enums.iter().any(|e| e == r), "allOf over an enum at {at}");
                }
                for (k, child) in map {
                    walk(child, &format!("{at}/{k}"), enums);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), enums);
                }
            }
            _ => {}
        }
    }
    let enums: Vec<String> = spec["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.get("enum").is_some())
        .map(|(n, _)| format!("#/components/schemas/{n}"))
        .collect();
    assert!(enums.len() >= 4, "{enums:?}");
    walk(&spec, "", &enums);
    let from = &spec["components"]["schemas"]["RunEvent"]["properties"]["from_status"];
    assert_eq!(from["nullable"], true);
    assert_eq!(from["oneOf"][0]["$ref"], "#/components/schemas/RunStatus");
    // Header names as the server sends them.
    let created = &spec["paths"]["/api/v1/runs"]["post"]["responses"];
    assert!(created["201"]["headers"]["ETag"]["description"].is_string());
    assert!(created["200"]["headers"]["Idempotent-Replayed"]["description"].is_string());
    assert!(!text.contains("\"ETAG\""));
}

/// Stateful tools and Swagger readers find the run operations from the
/// create's answer.
#[tokio::test]
async fn create_run_links_to_what_takes_its_id() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    let links = &spec["paths"]["/api/v1/runs"]["post"]["responses"]["201"]["links"];
    let targets: Vec<&str> = links
        .as_object()
        .unwrap()
        .values()
        .map(|l| l["operationId"].as_str().unwrap())
        .collect();
    for op in [
        "get_run",
        "update_run",
        "heartbeat_run",
        "list_run_events",
        "wait_for_run",
        "record_validation",
    ] {
        assert!(targets.contains(&op), "{op} in {targets:?}");
    }
    assert_eq!(
        links["RecordValidation"]["requestBody"]["run_id"],
        "$response.body#/id"
    );
    let ids: Vec<&str> = operations(&spec)
        .iter()
        .filter_map(|(_, op)| op["operationId"].as_str())
        .collect();
    for op in targets {
        assert!(ids.contains(&op), "link to unknown operation {op}");
    }
}

/// Dates in filters are documented as what they are: a plain date is
/// accepted, so `format: date-time` alone would be a lie to generated clients.
#[tokio::test]
async fn date_filters_are_plain_strings() {
    let spec: serde_json::Value = serde_json::from_str(&checked_in("openapi.json")).unwrap();
    for path in ["/api/v1/runs", "/api/v1/validations"] {
        for param in spec["paths"][path]["get"]["parameters"].as_array().unwrap() {
            if param["name"] == "start_date" || param["name"] == "end_date" {
                assert_eq!(
                    param["schema"],
                    serde_json::json!({"anyOf": [
                        {"type": "string", "format": "date"},
                        {"type": "string", "format": "date-time"}
                    ]})
                );
                assert_eq!(param["example"].as_str().map(str::len), Some(10));
            }
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let resp = app.client.request(Method::GET, "/docs").send().await;
    resp.assert_status(StatusCode::OK);
    let html = resp.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    // The page shows the served spec, examples and links included.
    assert!(html.contains("\"links\""));
    assert!(html.contains("rel=\"icon\""));
    let icon = app.client.request(Method::GET, "/favicon.ico").send().await;
    icon.assert_status(StatusCode::OK);
    icon.assert_content_type("image/png");
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
