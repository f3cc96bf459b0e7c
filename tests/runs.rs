//! The Runs API over HTTP, in-process, each test on its own database file.

mod common;

use common::{TestApp, ids, snapshot_settings};
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn create_answers_201_with_the_full_run() {
    let app = TestApp::spawn().await;

    let run = app
        .create_run(json!({
            "contract_id": "contract-123",
            "pipeline_name": "daily-etl",
            "pipeline_id": "airflow-dag-123",
            "status": "running",
            "metadata": {"dag_id": "user_events_daily", "execution_date": "2024-01-15", "triggered_by": "scheduler"}
        }))
        .await;

    let id = run["id"].as_str().unwrap();
    assert!(id.starts_with("run_") && id.len() == 30, "{id}");
    assert_eq!(run["status"], "running");
    assert_eq!(run["created_by"], "pipeline-bot");
    assert_eq!(run["completed_at"], Value::Null);
    assert_eq!(run["validations"], json!([]));
    assert_eq!(run["metadata"]["dag_id"], "user_events_daily");
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("created_run", run, {
            ".id" => "[run_id]",
            ".started_at" => "[timestamp]",
            ".updated_at" => "[timestamp]",
        });
    });
}

#[tokio::test]
async fn minimal_create_defaults_to_pending_now() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("contract-123").await;
    assert_eq!(run["status"], "pending");
    assert_eq!(run["metadata"], json!({}));
    assert_eq!(run["pipeline_name"], Value::Null);
    assert_eq!(run["pipeline_id"], Value::Null);
    let started = run["started_at"].as_str().unwrap();
    assert!(
        started.ends_with('Z') && started.len() == "2024-01-15T10:00:00.000000Z".len(),
        "{started}"
    );
}

#[tokio::test]
async fn null_optional_fields_are_taken_as_not_given() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({
            "contract_id": "c", "pipeline_name": null, "pipeline_id": null, "status": null,
            "metadata": null, "started_at": null, "completed_at": null
        }))
        .await;
    assert_eq!(run["status"], "pending");
    assert_eq!(run["metadata"], json!({}));
}

#[tokio::test]
async fn ids_sort_by_creation() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(
            app.create_run_for("c").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut sorted = made.clone();
    sorted.sort();
    assert_eq!(made, sorted);
}

#[tokio::test]
async fn backfilled_started_at_is_kept_in_utc() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({"contract_id": "c", "started_at": "2024-01-15T10:00:00+02:00"}))
        .await;
    assert_eq!(run["started_at"], "2024-01-15T08:00:00.000000Z");
}

#[tokio::test]
async fn created_in_a_final_status_has_completed_at() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({
            "contract_id": "c", "status": "completed",
            "started_at": "2024-01-15T10:00:00Z", "completed_at": "2024-01-15T10:05:00Z"
        }))
        .await;
    assert_eq!(run["completed_at"], "2024-01-15T10:05:00.000000Z");

    let run = app
        .create_run(json!({"contract_id": "c", "status": "failed"}))
        .await;
    assert!(run["completed_at"].is_string());
}

#[tokio::test]
async fn completed_at_is_refused_when_it_makes_no_sense() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/runs",
            json!({"contract_id": "c", "status": "running", "completed_at": "2024-01-15T10:05:00Z"}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let r = app
        .post(
            "/api/v1/runs",
            json!({"contract_id": "c", "status": "completed",
                   "started_at": "2024-01-15T10:00:00Z", "completed_at": "2024-01-14T10:00:00Z"}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("before started_at"), "{}", r.message());
}

#[tokio::test]
async fn get_returns_the_run_and_404s_unknown_ids() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    let id = run["id"].as_str().unwrap();

    let got = app.get_run(id).await.expect(StatusCode::OK);
    assert_eq!(got, run);

    let missing = app.get_run("run_01HZZZZZZZZZZZZZZZZZZZZZZZ").await;
    missing.expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert!(missing.message().contains("run_01HZZZZZZZZZZZZZZZZZZZZZZZ"));
    snapshot_settings().bind(|| insta::assert_json_snapshot!("run_not_found", missing.body));
}

#[tokio::test]
async fn patch_merges_metadata_as_a_merge_patch() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({
            "contract_id": "c", "status": "running",
            "metadata": {"dag_id": "user_events_daily", "tmp": 1, "nested": {"a": 1, "b": 2}}
        }))
        .await;
    let id = run["id"].as_str().unwrap();

    let updated = app
        .update_run(
            id,
            json!({"status": "completed", "metadata": {
                "rows_processed": 50000, "duration_seconds": 120, "tmp": null, "nested": {"b": null, "c": 3}
            }}),
        )
        .await
        .expect(StatusCode::OK);

    assert_eq!(
        updated["metadata"],
        json!({"dag_id": "user_events_daily", "nested": {"a": 1, "c": 3},
               "rows_processed": 50000, "duration_seconds": 120})
    );
    assert_eq!(updated["status"], "completed");
    assert!(updated["completed_at"].is_string());
    assert_eq!(app.get_run(id).await.expect(StatusCode::OK), updated);
}

#[tokio::test]
async fn patch_changes_pipeline_fields() {
    let app = TestApp::spawn().await;
    let id = app.create_run_for("c").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .update_run(
            &id,
            json!({"pipeline_name": "renamed", "pipeline_id": "ext-9"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["pipeline_name"], "renamed");
    assert_eq!(r["pipeline_id"], "ext-9");
    assert_eq!(r["status"], "pending");
}

#[tokio::test]
async fn null_and_absent_fields_both_leave_values_alone() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({"contract_id": "c", "pipeline_name": "p", "metadata": {"k": 1}}))
        .await;
    let id = run["id"].as_str().unwrap();
    let r = app
        .update_run(
            id,
            json!({"status": "running", "pipeline_name": null, "metadata": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["pipeline_name"], "p");
    assert_eq!(r["metadata"], json!({"k": 1}));
    assert_eq!(r["status"], "running");
}

#[tokio::test]
async fn empty_or_all_null_patch_is_422() {
    let app = TestApp::spawn().await;
    let id = app.create_run_for("c").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [
        json!({}),
        json!({"status": null, "metadata": null, "pipeline_name": null, "pipeline_id": null}),
    ] {
        let r = app.update_run(&id, body).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains("empty"), "{}", r.message());
    }
}

#[tokio::test]
async fn patch_of_unknown_run_is_404() {
    let app = TestApp::spawn().await;
    app.update_run("run_nope", json!({"status": "running"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

const STATUSES: [&str; 5] = ["pending", "running", "completed", "failed", "cancelled"];

fn allowed(from: &str, to: &str) -> bool {
    from == to
        || from == "pending"
        || (from == "running" && matches!(to, "completed" | "failed" | "cancelled"))
}

#[tokio::test]
async fn every_transition_is_allowed_or_refused_with_409() {
    let app = TestApp::spawn().await;
    for from in STATUSES {
        for to in STATUSES {
            let id = app
                .create_run(json!({"contract_id": "c", "status": from}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let before = app.get_run(&id).await.expect(StatusCode::OK);
            let r = app.update_run(&id, json!({"status": to})).await;
            if allowed(from, to) {
                let run = r.expect(StatusCode::OK);
                assert_eq!(run["status"], to, "{from} -> {to}");
                let is_final = matches!(to, "completed" | "failed" | "cancelled");
                assert_eq!(run["completed_at"].is_string(), is_final, "{from} -> {to}");
            } else {
                r.expect_error(StatusCode::CONFLICT, "INVALID_TRANSITION");
                assert!(
                    r.message().contains(from) && r.message().contains(to),
                    "{from} -> {to}: {}",
                    r.message()
                );
                // Nothing was written by the refused request.
                assert_eq!(app.get_run(&id).await.expect(StatusCode::OK), before);
            }
        }
    }
}

#[tokio::test]
async fn repeating_the_current_status_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .create_run(json!({"contract_id": "c", "status": "completed"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.get_run(&id).await.expect(StatusCode::OK);
    let after = app
        .update_run(&id, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(before, after, "completed_at and updated_at are unchanged");
}

#[tokio::test]
async fn a_refused_transition_with_metadata_writes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .create_run(json!({"contract_id": "c", "status": "failed", "metadata": {"a": 1}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.update_run(&id, json!({"status": "running", "metadata": {"b": 2}}))
        .await
        .expect_error(StatusCode::CONFLICT, "INVALID_TRANSITION");
    assert_eq!(
        app.get_run(&id).await.expect(StatusCode::OK)["metadata"],
        json!({"a": 1})
    );
}

async fn seed_for_filters(app: &TestApp) {
    for (contract, pipeline, status, started) in [
        ("c1", "etl", "completed", "2024-01-10T00:00:00Z"),
        ("c1", "etl", "failed", "2024-01-11T00:00:00Z"),
        ("c1", "dbt", "running", "2024-01-12T00:00:00Z"),
        ("c2", "etl", "failed", "2024-01-13T00:00:00Z"),
        ("c2", "dbt", "completed", "2024-01-14T00:00:00Z"),
        ("c3", "etl", "pending", "2024-01-15T00:00:00Z"),
    ] {
        app.create_run(json!({
            "contract_id": contract, "pipeline_name": pipeline, "status": status, "started_at": started
        }))
        .await;
    }
}

fn contracts_and_days(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}@{}",
                i["contract_id"].as_str().unwrap(),
                &i["started_at"].as_str().unwrap()[8..10]
            )
        })
        .collect()
}

#[tokio::test]
async fn list_filters_alone_and_combined() {
    let app = TestApp::spawn().await;
    seed_for_filters(&app).await;

    let cases: &[(&str, &[&str])] = &[
        ("", &["c3@15", "c2@14", "c2@13", "c1@12", "c1@11", "c1@10"]),
        ("contract_id=c1", &["c1@12", "c1@11", "c1@10"]),
        ("pipeline_name=dbt", &["c2@14", "c1@12"]),
        ("status=failed", &["c2@13", "c1@11"]),
        (
            "start_date=2024-01-12",
            &["c3@15", "c2@14", "c2@13", "c1@12"],
        ),
        ("end_date=2024-01-12", &["c1@11", "c1@10"]),
        (
            "start_date=2024-01-11&end_date=2024-01-13",
            &["c1@12", "c1@11"],
        ),
        ("contract_id=c1&status=failed", &["c1@11"]),
        ("contract_id=c2&pipeline_name=etl&status=failed", &["c2@13"]),
        (
            "contract_id=c1&pipeline_name=etl&start_date=2024-01-11T00:00:00Z",
            &["c1@11"],
        ),
        ("contract_id=nobody", &[]),
    ];
    for (query, expected) in cases {
        let page = app.list_runs(query).await;
        assert_eq!(&contracts_and_days(&page), expected, "query: {query}");
        assert_eq!(page["total"], expected.len(), "query: {query}");
    }
}

#[tokio::test]
async fn list_items_carry_a_validation_summary() {
    let app = TestApp::spawn().await;
    seed_for_filters(&app).await;
    let page = app.list_runs("limit=1").await;
    assert_eq!(
        page["items"][0]["validation_summary"],
        json!({"passed": 0, "failed": 0, "warning": 0, "skipped": 0, "total": 0})
    );
    assert!(page["items"][0].get("validations").is_none());
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("run_list_page", page, {
            ".items[].id" => "[run_id]",
            ".next_cursor" => "[cursor]",
            ".items[].updated_at" => "[timestamp]",
        });
    });
}

#[tokio::test]
async fn filters_are_trimmed_and_empty_ones_ignored() {
    let app = TestApp::spawn().await;
    seed_for_filters(&app).await;
    assert_eq!(app.list_runs("contract_id=%20c1%20").await["total"], 3);
    assert_eq!(
        app.list_runs("contract_id=&pipeline_name=").await["total"],
        6
    );
}

#[tokio::test]
async fn a_started_at_within_clock_skew_is_accepted() {
    let app = TestApp::spawn().await;
    let soon = griot_registry::domain::time::Timestamp::now().plus_seconds(600);
    let run = app
        .create_run(json!({"contract_id": "c", "started_at": soon.to_string()}))
        .await;
    assert_eq!(run["started_at"], soon.to_string());
}

#[tokio::test]
async fn dates_accept_every_documented_form() {
    let app = TestApp::spawn().await;
    seed_for_filters(&app).await;
    // Each names the same instant, 2024-01-12T00:00:00Z.
    for form in [
        "2024-01-12",
        "2024-01-12T00:00:00Z",
        "2024-01-12T00:00:00",
        "2024-01-12T02:00:00%2B02:00",
        // An unencoded "+" arrives as a space.
        "2024-01-12T02:00:00+02:00",
        "2024-01-11T23:00:00-01:00",
    ] {
        let page = app.list_runs(&format!("start_date={form}")).await;
        assert_eq!(page["total"], 4, "start_date={form}");
    }
}

#[tokio::test]
async fn bad_dates_are_422_with_the_accepted_forms() {
    let app = TestApp::spawn().await;
    for bad in ["yesterday", "2024-13-45", "15/01/2024", ""] {
        let r = app.get(&format!("/api/v1/runs?end_date={bad}")).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(
            r.message().contains("end_date") && r.message().contains("YYYY-MM-DD"),
            "{bad}: {}",
            r.message()
        );
    }
}

#[tokio::test]
async fn pagination_edges() {
    let app = TestApp::spawn().await;
    // Same started_at for all: order must fall back to the id.
    let mut made = Vec::new();
    for _ in 0..7 {
        let run = app
            .create_run(json!({"contract_id": "c", "started_at": "2024-01-01T00:00:00Z"}))
            .await;
        made.push(run["id"].as_str().unwrap().to_owned());
    }
    made.reverse();

    let mut seen = Vec::new();
    for offset in (0..7).step_by(3) {
        let page = app.list_runs(&format!("limit=3&offset={offset}")).await;
        assert_eq!(page["limit"], 3);
        assert_eq!(page["offset"], offset);
        assert_eq!(page["total"], 7);
        seen.extend(ids(&page));
    }
    assert_eq!(seen, made, "pages neither skip nor repeat, newest first");

    let last = app.list_runs("limit=3&offset=6").await;
    assert_eq!(ids(&last).len(), 1);
    let past = app.list_runs("offset=100").await;
    assert_eq!(ids(&past), Vec::<String>::new());
    assert_eq!(past["total"], 7);

    let defaults = app.list_runs("").await;
    assert_eq!(defaults["limit"], 50);
    assert_eq!(defaults["offset"], 0);
    assert_eq!(app.list_runs("limit=1000").await["limit"], 1000);
    assert_eq!(
        app.list_runs("limit=1").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for (query, word) in [
        ("limit=0", "at least 1"),
        ("limit=1001", "at most 1000"),
        ("limit=abc", "whole number"),
        ("offset=-1", "at least 0"),
        (
            "status=bogus",
            "'bogus' is not one of pending, running, completed, failed, cancelled",
        ),
    ] {
        let r = app.get(&format!("/api/v1/runs?{query}")).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains(word), "{query}: {}", r.message());
    }
}

#[tokio::test]
async fn bad_bodies_are_refused_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let key = app.write_key.clone();
    let json_header = [
        ("X-API-Key", key.as_str()),
        ("Content-Type", "application/json"),
    ];
    let cases: &[(&str, StatusCode, &str, &str)] = &[
        (
            "{\"contract_id\":",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "not valid JSON",
        ),
        (
            "{\"contract_id\": \"c\"} trailing",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "not valid JSON",
        ),
        (
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "empty",
        ),
        (
            "[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "JSON object",
        ),
        // serde would read a struct from an array, field by position.
        (
            "[\"c\", \"p\", null, \"running\"]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "JSON object",
        ),
        (
            "\"c\"",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "JSON object",
        ),
        (
            "[1,",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "not valid JSON",
        ),
        (
            "{\"contract_id\": \"c\", \"started_at\": \"2999-01-01\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "in the future",
        ),
        (
            "{\"contract_id\": \"c\", \"started_at\": \"0000-01-01T00:00:00Z\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "started_at (0000-01-01T00:00:00.000000Z) is before 1970",
        ),
        (
            "{\"contract_id\": \"c\", \"status\": \"completed\", \"completed_at\": \"1969-12-31T23:59:59Z\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "completed_at (1969-12-31T23:59:59.000000Z) is before 1970",
        ),
        (
            "{\"contract_id\": \"evil\\u202egnp.exe\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "contract_id must not contain control or invisible formatting characters (found U+202E)",
        ),
        (
            "{\"contract_id\": \"c\", \"pipeline_name\": \"nightly\\u200b\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "pipeline_name must not contain control or invisible formatting characters (found U+200B)",
        ),
        (
            "{}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "contract_id",
        ),
        (
            "{\"contract_id\": \"\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "contract_id",
        ),
        (
            "{\"contract_id\": \"   \"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "contract_id",
        ),
        (
            "{\"contract_id\": 5}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "contract_id",
        ),
        (
            "{\"contract_id\": \"c\", \"status\": \"done\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "status",
        ),
        // Valid JSON of the wrong type is a 422 naming the field, not "not
        // valid JSON".
        (
            "{\"contract_id\": \"c\", \"status\": 1}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "`status`: invalid type: integer `1`, expected a string",
        ),
        (
            "{\"contract_id\": \"c\", \"status\": true}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "`status`: invalid type: boolean",
        ),
        (
            "{\"contract_id\": \"c\", \"status\": [\"running\"]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "`status`: invalid type: sequence",
        ),
        (
            "{\"contract_id\": \"c\", \"status\": \"bogus\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "'bogus' is not one of pending, running, completed, failed, cancelled",
        ),
        (
            "{\"contract_id\": \"c\", \"metadata\": [1]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "metadata",
        ),
        (
            "{\"contract_id\": \"c\", \"metadata\": \"x\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "metadata",
        ),
        (
            "{\"contract_id\": \"c\", \"started_at\": \"soon\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "started_at",
        ),
        (
            "{\"contract_id\": \"c\", \"pipline_name\": \"typo\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "pipline_name",
        ),
    ];
    for (body, status, code, word) in cases {
        let r = app
            .raw(Method::POST, "/api/v1/runs", &json_header, body.to_string())
            .await;
        r.expect_error(*status, code);
        assert!(r.message().contains(word), "{body}: {}", r.message());
    }
    let long = "x".repeat(256);
    app.post("/api/v1/runs", json!({"contract_id": long}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // Not one of those requests stored anything.
    assert_eq!(app.list_runs("").await["total"], 0);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let key = app.write_key.clone();
    let r = app
        .raw(
            Method::POST,
            "/api/v1/runs",
            &[
                ("X-API-Key", &key),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "contract_id=c",
        )
        .await;
    r.expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
    assert!(r.message().contains("application/json"));
}

#[tokio::test]
async fn bodies_over_the_cap_are_413() {
    let app = TestApp::with(common::Options {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let big = json!({"contract_id": "c", "metadata": {"blob": "x".repeat(2000)}});
    let r = app.post("/api/v1/runs", big).await;
    r.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    // Chunked, without a Content-Length, is counted as it is read.
    let key = app.write_key.clone();
    let stream = futures_stream(format!(
        "{{\"contract_id\":\"c\",\"metadata\":{{\"b\":\"{}\"}}}}",
        "y".repeat(4000)
    ));
    let r = app
        .raw(
            Method::POST,
            "/api/v1/runs",
            &[("X-API-Key", &key), ("Content-Type", "application/json")],
            stream,
        )
        .await;
    r.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.list_runs("").await["total"], 0);
    app.create_run_for("small").await;
}

fn futures_stream(s: String) -> poem::Body {
    // An AsyncRead body has no known length, like a chunked upload.
    poem::Body::from_async_read(std::io::Cursor::new(s.into_bytes()))
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nothing")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    let r = app
        .request(Method::DELETE, "/api/v1/runs", None, None)
        .await;
    r.expect_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST, GET");
    let r = app
        .request(Method::PUT, "/api/v1/runs/run_x", None, None)
        .await;
    r.expect_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "GET, PATCH");
}

#[tokio::test]
async fn a_restart_on_the_same_file_finds_every_run() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for i in 0..10 {
        let run = app
            .create_run(json!({"contract_id": format!("c{i}"), "metadata": {"i": i}}))
            .await;
        made.push(run);
    }
    let id = made[0]["id"].as_str().unwrap().to_owned();
    let patched = app
        .update_run(&id, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    made[0] = patched;

    let app = app.restart();
    for run in &made {
        let got = app
            .get_run(run["id"].as_str().unwrap())
            .await
            .expect(StatusCode::OK);
        assert_eq!(&got, run);
    }
    assert_eq!(app.list_runs("").await["total"], 10);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let h = app.get("/health").await.expect(StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    let r = app.get("/health/ready").await.expect(StatusCode::OK);
    assert_eq!(r["status"], "ok");
}

#[tokio::test]
async fn concurrent_patches_of_different_keys_keep_every_key() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let id = app.create_run_for("c").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            app.update_run(&id, json!({"metadata": {format!("k{i}"): i}}))
                .await
                .expect(StatusCode::OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let run = app.get_run(&id).await.expect(StatusCode::OK);
    let keys = run["metadata"].as_object().unwrap();
    assert_eq!(keys.len(), 20, "{keys:?}");
}

/// Creates a run from a body sent as is (text the json! macro cannot build).
async fn create_raw(app: &TestApp, body: String) -> common::Reply {
    app.raw(
        Method::POST,
        "/api/v1/runs",
        &[
            ("X-API-Key", &app.write_key),
            ("Content-Type", "application/json"),
        ],
        poem::Body::from(body),
    )
    .await
}

#[tokio::test]
async fn deep_nesting_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for levels in [70, 127, 200, 5000] {
        let body = format!(
            "{{\"contract_id\": \"c\", \"metadata\": {{\"a\": {}1{}}}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        );
        let r = create_raw(&app, body).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains("`metadata`"), "{}", r.message());
        assert!(r.message().contains("64 levels"), "{}", r.message());
    }
    // Just under the limit is stored.
    let body = format!(
        "{{\"contract_id\": \"c\", \"metadata\": {}1{}}}",
        "{\"a\": ".repeat(62),
        "}".repeat(62)
    );
    create_raw(&app, body).await.expect(StatusCode::CREATED);
    assert_eq!(app.list_runs("").await["total"], 1);
}
