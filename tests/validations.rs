//! The Validations API: recording, reading, listing, stats, and the run
//! object's view of its validations.

mod common;

use common::{Options, TestApp, ids, snapshot_settings, ts};
use griot_registry::domain::time::Clock;
use poem::http::StatusCode;
use serde_json::{Value, json};

fn full_validation(run_id: &str) -> Value {
    json!({
        "contract_id": "user-events",
        "run_id": run_id,
        "status": "failed",
        "errors": [
            {"code": "null_values", "message": "email has 12 nulls", "path": "email", "row_count": 12},
            {"code": "type_mismatch", "message": "age is not an integer"}
        ],
        "warnings": [{"code": "row_count_drop", "message": "30% fewer rows than yesterday"}],
        "metrics": {"rows_validated": 1000, "rows_passed": 988, "rows_failed": 12, "duration_ms": 420, "p95_ms": 3.5},
        "metadata": {"task": "validate_users"}
    })
}

#[tokio::test]
async fn record_answers_201_with_the_full_record() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("user-events").await;
    let v = app
        .record_validation(full_validation(run["id"].as_str().unwrap()))
        .await;
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("val_") && id.len() == 30, "{id}");
    assert_eq!(v["recorded_by"], "pipeline-bot");
    assert_eq!(v["metrics"]["p95_ms"], 3.5, "other metrics are kept");
    assert_eq!(
        app.get(&format!("/api/v1/validations/{id}"))
            .await
            .expect(StatusCode::OK),
        v
    );
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("validation", v, {
            ".id" => "[validation_id]",
            ".run_id" => "[run_id]",
            ".recorded_at" => "[timestamp]",
        });
    });
}

#[tokio::test]
async fn minimal_record_has_empty_lists_and_objects() {
    let app = TestApp::spawn().await;
    let v = app
        .record_validation(json!({"contract_id": "c", "status": "skipped"}))
        .await;
    assert_eq!(v["run_id"], Value::Null);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["warnings"], json!([]));
    assert_eq!(v["metrics"], json!({}));
    assert_eq!(v["metadata"], json!({}));
}

#[tokio::test]
async fn unknown_validation_is_404() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/validations/val_nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn refusals_name_the_problem_and_store_nothing() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("orders").await;
    let run_id = run["id"].as_str().unwrap();
    let cases = [
        (
            json!({"contract_id": "c", "status": "passed", "run_id": "run_missing"}),
            "run_missing",
        ),
        (
            json!({"contract_id": "other", "status": "passed", "run_id": run_id}),
            "orders",
        ),
        (json!({"contract_id": "c"}), "status"),
        (json!({"contract_id": "c", "status": "great"}), "status"),
        (
            json!({"contract_id": "", "status": "passed"}),
            "contract_id",
        ),
        (
            json!({"contract_id": "c", "status": "failed", "errors": [{"code": "x"}]}),
            "message",
        ),
        (
            json!({"contract_id": "c", "status": "failed", "errors": [{"message": "m"}]}),
            "code",
        ),
        (
            json!({"contract_id": "c", "status": "failed", "errors": [{"code": "", "message": "m"}]}),
            "errors[0].code",
        ),
        (
            json!({"contract_id": "c", "status": "failed", "warnings": [{"code": "w"}]}),
            "message",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "metrics": {"rows_failed": -1}}),
            "rows_failed",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "metrics": {"duration_ms": 1.5}}),
            "duration_ms",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "metrics": {"rows_validated": "10"}}),
            "rows_validated",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "metrics": [1]}),
            "metrics",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "metadata": 3}),
            "metadata",
        ),
        (
            json!({"contract_id": "c", "status": "passed", "recorded_at": "later"}),
            "recorded_at",
        ),
    ];
    for (body, word) in cases {
        let r = app.post("/api/v1/validations", body.clone()).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains(word), "{body}: {}", r.message());
    }
    let page = app.get("/api/v1/validations").await.expect(StatusCode::OK);
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn validations_can_be_recorded_on_final_runs() {
    let app = TestApp::spawn().await;
    for status in ["completed", "failed", "cancelled"] {
        let run = app
            .create_run(json!({"contract_id": "c", "status": status}))
            .await;
        app.record_validation(json!({"contract_id": "c", "status": "passed", "run_id": run["id"]}))
            .await;
    }
}

#[tokio::test]
async fn the_run_lists_its_validations_oldest_first_and_lists_summarise_them() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    let run_id = run["id"].as_str().unwrap();
    let other = app.create_run_for("c").await;

    let before = app.get_run(run_id).await.expect(StatusCode::OK);
    assert_eq!(before["validations"], json!([]));

    let mut recorded = Vec::new();
    for (status, at) in [
        ("passed", "2024-01-15T10:02:00Z"),
        ("failed", "2024-01-15T10:01:00Z"),
        ("warning", "2024-01-15T10:03:00Z"),
        ("failed", "2024-01-15T10:04:00Z"),
    ] {
        let v = app
            .record_validation(
                json!({"contract_id": "c", "status": status, "run_id": run_id, "recorded_at": at}),
            )
            .await;
        recorded.push((at, v["id"].as_str().unwrap().to_owned(), status));
    }
    recorded.sort();

    let after = app.get_run(run_id).await.expect(StatusCode::OK);
    let listed: Vec<(String, String)> = after["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = recorded
        .iter()
        .map(|(_, id, s)| (id.clone(), s.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        after["validations"][0].as_object().unwrap().len(),
        3,
        "id, status, recorded_at"
    );

    let page = app.list_runs("").await;
    let summary_of = |id: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| &i["id"] == id)
            .unwrap()["validation_summary"]
            .clone()
    };
    assert_eq!(
        summary_of(&run["id"]),
        json!({"passed": 1, "failed": 2, "warning": 1, "skipped": 0, "total": 4})
    );
    assert_eq!(summary_of(&other["id"])["total"], 0);
}

#[tokio::test]
async fn list_filters_and_orders_newest_first() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("a").await;
    for (contract, status, at, on_run) in [
        ("a", "passed", "2024-01-10T00:00:00Z", true),
        ("a", "failed", "2024-01-11T00:00:00Z", true),
        ("a", "failed", "2024-01-12T00:00:00Z", false),
        ("b", "passed", "2024-01-13T00:00:00Z", false),
        ("b", "skipped", "2024-01-14T00:00:00Z", false),
    ] {
        let mut body = json!({"contract_id": contract, "status": status, "recorded_at": at});
        if on_run {
            body["run_id"] = run["id"].clone();
        }
        app.record_validation(body).await;
    }
    let days = |q: &str| {
        let app = &app;
        let q = q.to_owned();
        async move {
            let page = app
                .get(&format!("/api/v1/validations?{q}"))
                .await
                .expect(StatusCode::OK);
            let days: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["recorded_at"].as_str().unwrap()[8..10].to_owned())
                .collect();
            assert_eq!(page["total"], days.len(), "{q}");
            days
        }
    };
    assert_eq!(days("").await, ["14", "13", "12", "11", "10"]);
    assert_eq!(days("contract_id=a").await, ["12", "11", "10"]);
    assert_eq!(
        days(&format!("run_id={}", run["id"].as_str().unwrap())).await,
        ["11", "10"]
    );
    assert_eq!(days("status=failed").await, ["12", "11"]);
    assert_eq!(
        days("start_date=2024-01-12&end_date=2024-01-14").await,
        ["13", "12"]
    );
    assert_eq!(
        days("contract_id=a&status=failed&start_date=2024-01-12").await,
        ["12"]
    );

    let page = app
        .get("/api/v1/validations?limit=2&offset=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(page["total"], 5);
    assert_eq!(ids(&page).len(), 2);
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("validation_page", page, {
            ".items[].id" => "[validation_id]",
            ".next_cursor" => "[cursor]",
        });
    });
    app.get("/api/v1/validations?limit=0")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

/// Stats on a fixed clock: "now" is Wednesday 2024-01-17 12:30 UTC.
async fn stats_app() -> TestApp {
    let app = TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-17T12:30:00Z")),
        ..Default::default()
    })
    .await;
    let records = [
        // this hour and the previous ones
        ("passed", "2024-01-17T12:10:00Z", Some(100), vec![]),
        (
            "failed",
            "2024-01-17T12:20:00Z",
            Some(300),
            vec![("null_values", "email has nulls")],
        ),
        ("warning", "2024-01-17T10:05:00Z", None, vec![]),
        // earlier days
        (
            "failed",
            "2024-01-16T09:00:00Z",
            Some(200),
            vec![("null_values", "id has nulls"), ("schema", "extra column")],
        ),
        ("skipped", "2024-01-15T09:00:00Z", None, vec![]),
        // the previous week
        ("passed", "2024-01-12T09:00:00Z", None, vec![]),
        (
            "failed",
            "2024-01-10T09:00:00Z",
            None,
            vec![("null_values", "x has nulls")],
        ),
        // outside a 30-day window
        (
            "failed",
            "2023-11-01T09:00:00Z",
            Some(99999),
            vec![("ancient", "old")],
        ),
    ];
    for (status, at, duration, errors) in records {
        let mut body = json!({"contract_id": "orders", "status": status, "recorded_at": at});
        if let Some(d) = duration {
            body["metrics"] = json!({"duration_ms": d});
        }
        body["errors"] = errors
            .iter()
            .map(|(c, m)| json!({"code": c, "message": m}))
            .collect();
        app.record_validation(body).await;
    }
    // Another contract must not leak in.
    app.record_validation(json!({"contract_id": "payments", "status": "failed", "recorded_at": "2024-01-17T12:00:00Z"}))
        .await;
    app
}

async fn stats(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/validations/stats/orders?{query}"))
        .await
        .expect(StatusCode::OK)
}

#[tokio::test]
async fn stats_by_day_over_the_default_window() {
    let app = stats_app().await;
    let s = stats(&app, "").await;
    assert_eq!(s["days"], 30);
    assert_eq!(s["granularity"], "day");
    assert_eq!(s["window_end"], "2024-01-17T12:30:00.000000Z");
    assert_eq!(s["window_start"], "2023-12-18T12:30:00.000000Z");
    assert_eq!(
        s["totals"],
        json!({"passed": 2, "failed": 3, "warning": 1, "skipped": 1, "total": 7})
    );
    assert_eq!(s["pass_rate"], 33.33, "2 passed of 6 not skipped");
    assert_eq!(s["avg_duration_ms"], 200.0, "(100 + 300 + 200) / 3");
    let buckets = s["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len(),
        31,
        "2023-12-18 through 2024-01-17, gaps included"
    );
    assert_eq!(buckets[0]["start"], "2023-12-18T00:00:00.000000Z");
    let last = &buckets[30];
    assert_eq!(last["start"], "2024-01-17T00:00:00.000000Z");
    assert_eq!(
        last["counts"],
        json!({"passed": 1, "failed": 1, "warning": 1, "skipped": 0, "total": 3})
    );
    assert_eq!(last["pass_rate"], 33.33);
    let empty = &buckets[1];
    assert_eq!(empty["counts"]["total"], 0);
    assert_eq!(empty["pass_rate"], Value::Null);
    assert_eq!(
        s["common_errors"],
        json!([
            {"code": "null_values", "count": 3, "sample_message": "x has nulls"},
            {"code": "schema", "count": 1, "sample_message": "extra column"}
        ])
    );
    // Keep the snapshot short: only the buckets that hold something.
    let mut trimmed = s.clone();
    trimmed["buckets"] = buckets
        .iter()
        .filter(|b| b["counts"]["total"] != 0)
        .cloned()
        .collect();
    snapshot_settings().bind(|| insta::assert_json_snapshot!("stats_by_day", trimmed));
}

#[tokio::test]
async fn stats_by_hour_and_week() {
    let app = stats_app().await;
    let s = stats(&app, "days=1&granularity=hour").await;
    let buckets = s["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 25, "11:00 yesterday through 12:00 today");
    assert_eq!(buckets[0]["start"], "2024-01-16T12:00:00.000000Z");
    let at = |hour: &str| {
        buckets
            .iter()
            .find(|b| b["start"] == format!("2024-01-17T{hour}:00:00.000000Z"))
            .unwrap()["counts"]["total"]
            .clone()
    };
    assert_eq!(at("12"), 2);
    assert_eq!(at("11"), 0);
    assert_eq!(at("10"), 1);
    assert_eq!(s["totals"]["total"], 3);

    let s = stats(&app, "days=14&granularity=week").await;
    let starts: Vec<&str> = s["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    // Weeks start on Monday: Jan 1, Jan 8, Jan 15 (2024-01-03 12:30 is in the first).
    assert_eq!(
        starts,
        [
            "2024-01-01T00:00:00.000000Z",
            "2024-01-08T00:00:00.000000Z",
            "2024-01-15T00:00:00.000000Z"
        ]
    );
    let totals: Vec<u64> = s["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["counts"]["total"].as_u64().unwrap())
        .collect();
    assert_eq!(totals, [0, 2, 5]);
}

#[tokio::test]
async fn stats_follow_the_clock() {
    let app = stats_app().await;
    app.clock.set(ts("2024-02-20T00:00:00Z"));
    let s = stats(&app, "days=7").await;
    assert_eq!(s["totals"]["total"], 0);
}

#[tokio::test]
async fn stats_for_an_unknown_contract_are_zeros() {
    let app = TestApp::spawn().await;
    let s = app
        .get("/api/v1/validations/stats/nobody?days=7")
        .await
        .expect(StatusCode::OK);
    assert_eq!(s["totals"]["total"], 0);
    assert_eq!(s["pass_rate"], Value::Null);
    assert_eq!(s["avg_duration_ms"], Value::Null);
    assert_eq!(s["common_errors"], json!([]));
    assert_eq!(s["buckets"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn stats_parameters_are_checked() {
    let app = TestApp::spawn().await;
    for (q, word) in [
        ("days=0", "at least 1"),
        ("days=367", "at most 366"),
        ("days=x", "whole number"),
        ("granularity=month", "'month' is not one of hour, day, week"),
    ] {
        let r = app.get(&format!("/api/v1/validations/stats/c?{q}")).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains(word), "{q}: {}", r.message());
    }
    app.get("/api/v1/validations/stats/c?days=366&granularity=hour")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_recorded_at_in_the_future_is_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/validations",
            json!({"contract_id": "c", "status": "passed", "recorded_at": "2999-01-01"}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("in the future"), "{}", r.message());
}

#[tokio::test]
async fn a_recorded_at_before_1970_or_a_spoofing_error_code_is_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/validations",
            json!({"contract_id": "c", "status": "passed", "recorded_at": "1969-07-20"}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("recorded_at"), "{}", r.message());
    assert!(r.message().contains("before 1970"), "{}", r.message());

    let r = app
        .post(
            "/api/v1/validations",
            json!({"contract_id": "c", "status": "failed",
                   "errors": [{"code": "not_null\u{202e}", "message": "m"}]}),
        )
        .await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("errors[0].code"), "{}", r.message());
    assert!(r.message().contains("U+202E"), "{}", r.message());
}
