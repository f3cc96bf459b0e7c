//! `GET /metrics`: the exposition format, and that each metric moves when
//! what it counts happens.

mod common;

use std::collections::BTreeMap;

use common::{Options, TestApp, ts};
use griot_registry::{
    app::{lifecycle, retention},
    domain::{retention::Policy, time::Clock, time::Timestamp},
};
use poem::http::{Method, StatusCode};
use serde_json::json;

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape. Strict: every line must be a comment
/// (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`), blank, or a sample, and the
/// text must end with `# EOF`.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "unknown comment: {line}"
            );
            continue;
        }
        samples.push(parse_sample(line));
    }
    samples
}

fn bad<T>(line: &str) -> T {
    panic!("not `name{{labels}} value`: {line}")
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| bad(line));
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| bad(line)),
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| bad(line))),
        None => (series, ""),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name: {line}"
    );
    let mut parsed = BTreeMap::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| bad(line));
        let end = after.find('"').unwrap_or_else(|| bad(line));
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name: {line}"
        );
        parsed.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    Sample {
        name: name.to_owned(),
        labels: parsed,
        value,
    }
}

/// The value of the sample `name` whose labels include `labels`; 0 when
/// there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} names several: {found:?}"
    );
    found.first().map_or(0.0, |s| s.value)
}

async fn scrape_text(app: &TestApp, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut req = app.client.get("/metrics");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.0;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().into_string().await.unwrap();
    (status, content_type, body)
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let (status, _, body) = scrape_text(app, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    parse(&body)
}

/// An app whose clock stands still at 2024-01-15T10:00:00Z.
async fn app_in_2024() -> TestApp {
    TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-15T10:00:00Z")),
        ..Default::default()
    })
    .await
}

fn requests(samples: &[Sample], route: &str, method: &str, status: &str) -> f64 {
    let labels = [("route", route), ("method", method), ("status", status)];
    value(samples, "griot_http_requests_total", &labels)
}

#[tokio::test]
async fn metrics_answer_in_the_openmetrics_text_format_and_every_line_parses() {
    let app = TestApp::spawn().await;
    app.create_run_for("c").await;

    let (status, content_type, body) = scrape_text(&app, &[]).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let samples = parse(&body);
    for name in [
        "griot_http_requests_total",
        "griot_http_request_duration_seconds_count",
        "griot_writer_queue_depth",
        "griot_writer_batch_size_count",
        "griot_writer_commit_duration_seconds_count",
        "griot_writer_failed_batches_total",
        "griot_db_pool_wait_duration_seconds_count",
        "griot_db_pool_timeouts_total",
        "griot_db_pool_connections",
        "griot_db_wal_size_bytes",
        "griot_runs",
        "griot_retention_deleted_total",
    ] {
        assert!(
            samples.iter().any(|s| s.name == name),
            "{name} missing:\n{body}"
        );
    }
    // Every metric has its HELP and TYPE.
    let families = body.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = body.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(families, helps, "{body}");
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    let id = run["id"].as_str().unwrap();
    app.update_run(id, json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.list_runs("").await;
    app.list_runs("limit=1").await;
    app.get_run("no-such-run")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");

    let samples = scrape(&app).await;

    assert_eq!(requests(&samples, "/api/v1/runs", "POST", "201"), 1.0);
    assert_eq!(
        requests(&samples, "/api/v1/runs/{run_id}", "PATCH", "200"),
        1.0
    );
    assert_eq!(requests(&samples, "/api/v1/runs", "GET", "200"), 2.0);
    assert_eq!(
        requests(&samples, "/api/v1/runs/{run_id}", "GET", "404"),
        1.0
    );
    let labels = [
        ("route", "/api/v1/runs"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(
        value(
            &samples,
            "griot_http_request_duration_seconds_count",
            &labels
        ),
        2.0
    );
    let inf = [
        ("route", "/api/v1/runs"),
        ("method", "GET"),
        ("status", "200"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        value(&samples, "griot_http_request_duration_seconds_bucket", &inf),
        2.0
    );
    // No label holds a run id.
    assert!(
        samples
            .iter()
            .all(|s| !s.labels.values().any(|v| v.contains(id))),
        "a run id became a label"
    );
    // The scrape itself is counted once it is answered.
    let again = scrape(&app).await;
    assert_eq!(requests(&again, "/metrics", "GET", "200"), 1.0);
}

#[tokio::test]
async fn unknown_paths_and_methods_share_one_label() {
    let app = TestApp::spawn().await;
    for path in [
        "/nope/1",
        "/nope/2",
        "/api/v1/whatever",
        "/api/v1/runs/a/b/c",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    app.raw(
        Method::from_bytes(b"BREW").unwrap(),
        "/api/v1/runs",
        &[],
        poem::Body::empty(),
    )
    .await;

    let samples = scrape(&app).await;

    assert_eq!(requests(&samples, "unmatched", "GET", "404"), 4.0);
    let brewed = samples
        .iter()
        .filter(|s| {
            s.name == "griot_http_requests_total"
                && s.labels.get("method").map(String::as_str) == Some("other")
        })
        .count();
    assert_eq!(brewed, 1);
    assert!(
        samples
            .iter()
            .all(|s| !s.labels.values().any(|v| v.contains("nope") || v == "BREW")),
        "a client's path or method became a label"
    );
}

#[tokio::test]
async fn dashboard_pages_are_counted_under_their_route_template() {
    let app = TestApp::spawn().await;
    let run = app.create_run(json!({"contract_id": "c1"})).await;
    let id = run["id"].as_str().unwrap();
    for path in [
        "/ui".to_owned(),
        format!("/ui/runs/{id}"),
        "/ui/runs/run_missing".to_owned(),
        "/ui/contracts/c1".to_owned(),
    ] {
        app.page(&path).await;
    }

    let samples = scrape(&app).await;

    assert_eq!(requests(&samples, "/ui", "GET", "200"), 1.0);
    assert_eq!(requests(&samples, "/ui/runs/{run_id}", "GET", "200"), 1.0);
    assert_eq!(requests(&samples, "/ui/runs/{run_id}", "GET", "404"), 1.0);
    assert_eq!(
        requests(&samples, "/ui/contracts/{contract_id}", "GET", "200"),
        1.0
    );
    assert!(
        samples
            .iter()
            .all(|s| !s.labels.values().any(|v| v.contains(id))),
        "a run id became a label"
    );
}

#[tokio::test]
async fn writer_batches_and_commits_are_counted() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let batches_before = value(&before, "griot_writer_batch_size_count", &[]);
    let writes_before = value(&before, "griot_writer_batch_size_sum", &[]);

    for contract in ["a", "b", "c"] {
        app.create_run_for(contract).await;
    }
    let after = scrape(&app).await;

    let writes = value(&after, "griot_writer_batch_size_sum", &[]) - writes_before;
    assert!(writes >= 3.0, "{writes} writes counted");
    assert!(value(&after, "griot_writer_batch_size_count", &[]) > batches_before);
    assert!(value(&after, "griot_writer_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(value(&after, "griot_writer_commit_duration_seconds_sum", &[]) > 0.0);
    // Every awaited write has left the queue; the key's last-use touch,
    // written off the request path, may still be in it.
    assert!(value(&after, "griot_writer_queue_depth", &[]) <= 1.0);
    assert_eq!(value(&after, "griot_writer_failed_batches_total", &[]), 0.0);
    // Reads went through the pool, and the WAL holds the writes.
    assert!(value(&after, "griot_db_pool_wait_duration_seconds_count", &[]) > 0.0);
    assert!(value(&after, "griot_db_wal_size_bytes", &[]) > 0.0);
}

#[tokio::test]
async fn runs_by_status_match_the_data() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for contract in ["a", "b", "c", "d"] {
        ids.push(
            app.create_run_for(contract).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.update_run(&ids[0], json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(&ids[1], json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(&ids[1], json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);

    let samples = scrape(&app).await;

    let runs = |status| value(&samples, "griot_runs", &[("status", status)]);
    assert_eq!(runs("pending"), 2.0);
    assert_eq!(runs("running"), 1.0);
    assert_eq!(runs("completed"), 1.0);
    // Statuses without runs are there, at 0.
    assert!(
        samples
            .iter()
            .any(|s| s.name == "griot_runs" && s.labels["status"] == "cancelled")
    );
    assert_eq!(runs("cancelled"), 0.0);
}

#[tokio::test]
async fn reaper_sweeps_and_the_runs_they_fail_are_counted() {
    let app = app_in_2024().await;
    let run = app
        .create_run(json!({"contract_id": "c", "heartbeat_timeout_seconds": 60}))
        .await;
    let id = run["id"].as_str().unwrap();
    app.update_run(id, json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    lifecycle::sweep(&app.state()).await.unwrap();
    app.clock.set(ts("2024-01-15T10:05:00Z"));
    let failed = lifecycle::sweep(&app.state()).await.unwrap();
    assert_eq!(failed, vec![id.to_owned()]);

    let samples = scrape(&app).await;

    assert_eq!(
        value(&samples, "griot_reaper_sweeps_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(value(&samples, "griot_reaper_runs_failed_total", &[]), 1.0);
    assert_eq!(
        value(&samples, "griot_reaper_idempotency_keys_expired_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn retention_deletions_are_counted_by_kind() {
    // Runs made and finished in 2024 are old by the real clock the prune
    // uses.
    let app = app_in_2024().await;
    for contract in ["a", "b"] {
        let id = app.create_run_for(contract).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.update_run(&id, json!({"status": "running"}))
            .await
            .expect(StatusCode::OK);
        app.update_run(&id, json!({"status": "completed"}))
            .await
            .expect(StatusCode::OK);
        app.record_validation(json!({
            "contract_id": contract,
            "run_id": id,
            "status": "passed",
        }))
        .await;
    }
    let store = app.store.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let policy = Policy::new(Timestamp::now(), 30 * 24 * 3600, 24 * 3600);
        retention::prune(&store, policy, false, &|| false)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(counts.runs, 2);

    let samples = scrape(&app).await;

    let deleted = |kind| value(&samples, "griot_retention_deleted_total", &[("kind", kind)]);
    assert_eq!(deleted("runs"), 2.0);
    assert_eq!(deleted("events"), counts.events as f64);
    assert!(deleted("events") >= 6.0, "{}", deleted("events"));
    assert_eq!(deleted("validations"), counts.validations as f64);
    assert_eq!(deleted("validations"), 2.0);
    assert_eq!(deleted("idempotency_keys"), counts.idempotency_keys as f64);
}

#[tokio::test]
async fn metrics_need_a_key_when_reads_do() {
    let app = TestApp::with(Options {
        require_auth_for_reads: true,
        ..Default::default()
    })
    .await;

    let (anonymous, _, body) = scrape_text(&app, &[]).await;
    assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{body}");
    let (bad, _, _) = scrape_text(&app, &[("X-API-Key", "grk_nope")]).await;
    assert_eq!(bad, StatusCode::UNAUTHORIZED);

    let read_key = app.read_key.clone();
    let (with_header, _, body) = scrape_text(&app, &[("X-API-Key", &read_key)]).await;
    assert_eq!(with_header, StatusCode::OK, "{body}");
    parse(&body);
    let bearer = format!("Bearer {read_key}");
    let (with_bearer, _, _) = scrape_text(&app, &[("Authorization", &bearer)]).await;
    assert_eq!(with_bearer, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_open_when_reads_are() {
    let app = TestApp::spawn().await;
    let (status, _, _) = scrape_text(&app, &[]).await;
    assert_eq!(status, StatusCode::OK);
}
