//! Run lifecycle: safe retries, the event history, If-Match versions,
//! heartbeats and the reaper, stale runs, and waiting for a run.

mod common;

use std::sync::Arc;

use common::{Options, TestApp, ts};
use griot_registry::{
    app::{keys, lifecycle},
    domain::{keys::KeyScope, time::Clock},
};
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_with_key(app: &TestApp, idem: &str, body: Value) -> common::Reply {
    let key = app.write_key.clone();
    app.raw(
        Method::POST,
        "/api/v1/runs",
        &[
            ("X-API-Key", &key),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", idem),
        ],
        body.to_string(),
    )
    .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn events(app: &TestApp, run_id: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/runs/{run_id}/events"))
        .await
        .expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_replayed_create_returns_the_same_run_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"contract_id": "c", "status": "running", "metadata": {"a": 1, "b": 2}});
    let first = create_with_key(&app, "key-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());

    // The same body with its keys in another order is the same request.
    let same = json!({"metadata": {"b": 2, "a": 1}, "status": "running", "contract_id": "c"});
    let again = create_with_key(&app, "key-1", same).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(id_of(&again.body), id_of(&first.body));
    assert_eq!(app.list_runs("").await["total"], 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    create_with_key(&app, "key-1", json!({"contract_id": "c"})).await;
    let r = create_with_key(&app, "key-1", json!({"contract_id": "other"})).await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("key-1"), "{}", r.message());
    assert_eq!(app.list_runs("").await["total"], 1);
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_api_key_that_sent_them() {
    let app = TestApp::spawn().await;
    let (_, other) = keys::create(&app.store, "other-bot", KeyScope::Write).unwrap();
    create_with_key(&app, "shared", json!({"contract_id": "c"})).await;
    let r = app
        .raw(
            Method::POST,
            "/api/v1/runs",
            &[
                ("X-API-Key", other.expose()),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "shared"),
            ],
            json!({"contract_id": "c"}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.list_runs("").await["total"], 2);
}

#[tokio::test]
async fn concurrent_creates_with_one_key_make_one_run() {
    let app = Arc::new(TestApp::spawn().await);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                create_with_key(&app, "once", json!({"contract_id": "c"}))
                    .await
                    .body
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(id_of(&t.await.unwrap()));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.list_runs("").await["total"], 1);
}

#[tokio::test]
async fn keys_are_forgotten_after_the_retention() {
    let app = TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-15T10:00:00Z")),
        ..Default::default()
    })
    .await;
    let body = json!({"contract_id": "c", "started_at": "2024-01-15T09:00:00Z"});
    let first = create_with_key(&app, "k", body.clone()).await;
    app.clock.set(ts("2024-01-16T09:59:00Z"));
    assert_eq!(
        create_with_key(&app, "k", body.clone()).await.status,
        StatusCode::OK
    );
    app.clock.set(ts("2024-01-16T10:01:00Z"));
    let later = create_with_key(&app, "k", body).await;
    assert_eq!(later.status, StatusCode::CREATED);
    assert_ne!(id_of(&later.body), id_of(&first.body));
}

#[tokio::test]
async fn malformed_idempotency_keys_are_refused() {
    let app = TestApp::spawn().await;
    let long = "k".repeat(256);
    let r = create_with_key(&app, &long, json!({"contract_id": "c"})).await;
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("Idempotency-Key"));
    // Bytes that are not text must not be taken as "no key".
    let key = app.write_key.clone();
    let req = app
        .client
        .request(Method::POST, "/api/v1/runs")
        .header("X-API-Key", key.as_str())
        .header("Content-Type", "application/json")
        .header(
            "Idempotency-Key",
            poem::http::HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        )
        .body(json!({"contract_id": "c"}).to_string());
    assert_eq!(
        req.send().await.0.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.list_runs("").await["total"], 0);
}

#[tokio::test]
async fn a_backfilled_run_is_not_overdue_on_arrival() {
    let app = TestApp::spawn().await;
    let run = app
        .create_run(json!({
            "contract_id": "c", "status": "running",
            "started_at": "2020-01-01T00:00:00Z", "heartbeat_timeout_seconds": 3600
        }))
        .await;
    assert!(
        run["heartbeat_deadline"].as_str().unwrap() > "2026",
        "{run}"
    );
    assert_eq!(
        common::ids(&app.list_runs("stale=true").await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn every_change_is_an_event_with_its_actor_in_order() {
    let app = TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-15T10:00:00Z")),
        ..Default::default()
    })
    .await;
    let run = app
        .create_run(json!({"contract_id": "c", "heartbeat_timeout_seconds": 60}))
        .await;
    let id = id_of(&run);
    app.update_run(&id, json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(
        &id,
        json!({"metadata": {"rows": 5}, "pipeline_name": "etl"}),
    )
    .await
    .expect(StatusCode::OK);
    // Refused and no-op updates leave no event.
    app.update_run(&id, json!({"status": "pending"}))
        .await
        .expect_error(StatusCode::CONFLICT, "INVALID_TRANSITION");
    app.update_run(&id, json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.clock.set(ts("2024-01-15T10:05:00Z"));
    let failed = lifecycle::sweep(&app.state()).await.unwrap();
    assert_eq!(failed, vec![id.clone()]);

    let evs = events(&app, &id).await;
    let summary: Vec<(String, Value, Value, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["from_status"].clone(),
                e["to_status"].clone(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        summary,
        vec![
            (
                s("created"),
                Value::Null,
                json!("pending"),
                s("pipeline-bot")
            ),
            (
                s("status_changed"),
                json!("pending"),
                json!("running"),
                s("pipeline-bot")
            ),
            (
                s("updated"),
                json!("running"),
                json!("running"),
                s("pipeline-bot")
            ),
            (
                s("heartbeat_expired"),
                json!("running"),
                json!("failed"),
                s("system")
            ),
        ]
    );
    assert_eq!(
        evs[2]["changes"],
        json!({"metadata": {"rows": 5}, "pipeline_name": "etl"})
    );
    assert_eq!(
        evs[3]["changes"]["metadata"]["failure_reason"],
        "heartbeat_timeout"
    );

    let page = app
        .get(&format!("/api/v1/runs/{id}/events?limit=2&offset=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"][0]["type"], "status_changed");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // The run's version counts its changes: created, 2 updates, the expiry.
    let run = app.get_run(&id).await.expect(StatusCode::OK);
    assert_eq!(run["version"], 4);
}

#[tokio::test]
async fn events_of_an_unknown_run_are_404() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/runs/run_nope/events")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn if_match_guards_against_lost_updates() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_run_for("c").await);
    let got = app.get_run(&id).await;
    assert_eq!(got.headers["etag"], "\"1\"");

    let key = app.write_key.clone();
    let patch = |if_match: &'static str, body: Value| {
        let app = &app;
        let key = key.clone();
        let id = id.clone();
        async move {
            app.raw(
                Method::PATCH,
                &format!("/api/v1/runs/{id}"),
                &[
                    ("X-API-Key", &key),
                    ("Content-Type", "application/json"),
                    ("If-Match", if_match),
                ],
                body.to_string(),
            )
            .await
        }
    };
    let ok = patch("\"1\"", json!({"metadata": {"a": 1}})).await;
    assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.body);
    assert_eq!(ok.headers["etag"], "\"2\"");

    let stale = patch("\"1\"", json!({"metadata": {"b": 1}})).await;
    stale.expect_error(StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED");
    assert!(stale.message().contains("version 2"), "{}", stale.message());

    // A weak tag never matches If-Match (RFC 9110); a list matches any of
    // its strong tags.
    patch("W/\"2\"", json!({"metadata": {"x": 1}}))
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED");
    assert_eq!(
        patch("\"9\", \"2\"", json!({"metadata": {"c": 1}}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        patch("*", json!({"metadata": {"d": 1}})).await.status,
        StatusCode::OK
    );
    patch("yesterday", json!({"metadata": {"e": 1}}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    let run = app.get_run(&id).await.expect(StatusCode::OK);
    assert_eq!(
        run["metadata"],
        json!({"a": 1, "c": 1, "d": 1}),
        "the stale write was not applied"
    );
    assert_eq!(
        events(&app, &id).await.len(),
        4,
        "no event without its change"
    );
}

#[tokio::test]
async fn heartbeats_push_the_deadline_and_lapsed_runs_are_failed() {
    let app = TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-15T10:00:00Z")),
        ..Default::default()
    })
    .await;
    let body =
        |t: u32| json!({"contract_id": "c", "status": "running", "heartbeat_timeout_seconds": t});
    let beating = id_of(&app.create_run(body(60)).await);
    let silent = id_of(&app.create_run(body(60)).await);
    let finished = id_of(&app.create_run(body(60)).await);
    let patched = id_of(&app.create_run(body(60)).await);
    let untimed = id_of(&app.create_run_for("c").await);
    assert_eq!(
        app.get_run(&silent).await.expect(StatusCode::OK)["heartbeat_deadline"],
        "2024-01-15T10:01:00.000000Z"
    );

    app.clock.set(ts("2024-01-15T10:00:50Z"));
    let hb = app
        .post(&format!("/api/v1/runs/{beating}/heartbeat"), json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(hb["last_heartbeat_at"], "2024-01-15T10:00:50.000000Z");
    assert_eq!(hb["version"], 1, "a heartbeat is not a change");
    app.update_run(&finished, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(&patched, json!({"metadata": {"progress": 0.5}}))
        .await
        .expect(StatusCode::OK);

    app.clock.set(ts("2024-01-15T10:01:10Z"));
    let stale = app.list_runs("stale=true").await;
    assert_eq!(common::ids(&stale), vec![silent.clone()]);

    let failed = lifecycle::sweep(&app.state()).await.unwrap();
    assert_eq!(failed, vec![silent.clone()]);
    let run = app.get_run(&silent).await.expect(StatusCode::OK);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["metadata"]["failure_reason"], "heartbeat_timeout");
    assert_eq!(run["completed_at"], "2024-01-15T10:01:10.000000Z");
    for alive in [&beating, &patched, &untimed] {
        assert_ne!(
            app.get_run(alive).await.expect(StatusCode::OK)["status"],
            "failed"
        );
    }
    assert_eq!(
        app.get_run(&finished).await.expect(StatusCode::OK)["status"],
        "completed"
    );
    assert_eq!(
        common::ids(&app.list_runs("stale=true").await),
        Vec::<String>::new()
    );

    // A final run takes no heartbeats.
    app.post(&format!("/api/v1/runs/{silent}/heartbeat"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "INVALID_TRANSITION");
}

#[tokio::test]
async fn heartbeat_timeouts_are_checked_and_can_be_removed() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/v1/runs",
        json!({"contract_id": "c", "heartbeat_timeout_seconds": 0}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let id = id_of(
        &app.create_run(json!({"contract_id": "c", "heartbeat_timeout_seconds": 30}))
            .await,
    );
    let run = app
        .update_run(&id, json!({"heartbeat_timeout_seconds": 0}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(run["heartbeat_timeout_seconds"], Value::Null);
    assert_eq!(run["heartbeat_deadline"], Value::Null);
}

#[tokio::test]
async fn wait_answers_at_once_for_a_final_run() {
    let app = TestApp::spawn().await;
    let id = id_of(
        &app.create_run(json!({"contract_id": "c", "status": "completed"}))
            .await,
    );
    let r = app
        .get(&format!("/api/v1/runs/{id}/wait?timeout=60"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["done"], true);
    assert_eq!(r["run"]["status"], "completed");
}

#[tokio::test]
async fn wait_times_out_with_the_run_as_it_is() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_run_for("c").await);
    let r = app
        .get(&format!("/api/v1/runs/{id}/wait?timeout=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["done"], false);
    assert_eq!(r["run"]["status"], "pending");
    app.get(&format!("/api/v1/runs/{id}/wait?timeout=61"))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    app.get("/api/v1/runs/run_nope/wait?timeout=0")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn wait_wakes_when_another_request_finishes_the_run() {
    let app = Arc::new(TestApp::spawn().await);
    let id = id_of(
        &app.create_run(json!({"contract_id": "c", "status": "running"}))
            .await,
    );
    let waiter = {
        let (app, id) = (app.clone(), id.clone());
        tokio::spawn(async move {
            app.get(&format!("/api/v1/runs/{id}/wait?timeout=60"))
                .await
                .expect(StatusCode::OK)
        })
    };
    // Another run finishing must not wake this waiter with a wrong answer.
    let other = id_of(&app.create_run_for("c").await);
    app.update_run(&other, json!({"status": "cancelled"}))
        .await
        .expect(StatusCode::OK);
    tokio::task::yield_now().await;
    app.update_run(&id, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), waiter)
        .await
        .expect("the waiter was not woken")
        .unwrap();
    assert_eq!(r["done"], true);
    assert_eq!(r["run"]["status"], "failed");
}
