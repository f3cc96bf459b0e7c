//! Bounded rows: caps on a run's metadata and on a validation's parts, and
//! an event history that records what changed rather than copies.

mod common;

use common::{Options, TestApp};
use griot_registry::domain::limits::Limits;
use poem::http::StatusCode;
use serde_json::{Value, json};

fn capped(max_metadata_bytes: usize) -> Options {
    Options {
        limits: Limits {
            max_metadata_bytes,
            ..Limits::default()
        },
        ..Options::default()
    }
}

/// The run's events, straight from the table: (count, bytes of `changes`).
fn stored_events(app: &TestApp, run_id: &str) -> (i64, i64) {
    let id = run_id.to_owned();
    app.store
        .read_blocking(move |c| {
            Ok::<_, griot_registry::store::StoreError>(c.query_row(
                "SELECT count(*), coalesce(sum(length(changes)), 0) FROM run_events \
                 WHERE run_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("read events")
}

#[tokio::test]
async fn a_merge_over_the_cap_is_refused_and_the_run_is_unchanged() {
    let app = TestApp::with(capped(10_000)).await;
    let run = app.create_run(json!({"contract_id": "c"})).await;
    let id = run["id"].as_str().unwrap();
    for key in ["a", "b"] {
        app.update_run(id, json!({"metadata": {key: "x".repeat(4_000)}}))
            .await
            .expect(StatusCode::OK);
    }
    let before = app.get_run(id).await.expect(StatusCode::OK);
    let events_before = stored_events(&app, id);

    // Each patch is small; the third would take the merged metadata past
    // 10,000 bytes.
    let r = app
        .update_run(
            id,
            json!({"metadata": {"c": "x".repeat(4_000)}, "status": "running"}),
        )
        .await;

    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("10000"), "{}", r.message());
    let size = serde_json::to_string(&json!({
        "a": "x".repeat(4_000), "b": "x".repeat(4_000), "c": "x".repeat(4_000)
    }))
    .unwrap()
    .len();
    assert!(r.message().contains(&size.to_string()), "{}", r.message());
    let after = app.get_run(id).await.expect(StatusCode::OK);
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["metadata"], before["metadata"]);
    assert_eq!(after["status"], "pending", "the status move went too");
    assert_eq!(stored_events(&app, id), events_before, "no event written");

    // Removing a key makes room again.
    app.update_run(id, json!({"metadata": {"a": null, "c": "x".repeat(4_000)}}))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn the_default_cap_stops_growth_by_patches_under_the_body_cap() {
    let app = TestApp::spawn().await;
    let run = app.create_run(json!({"contract_id": "c"})).await;
    let id = run["id"].as_str().unwrap();
    let chunk = "x".repeat(100_000);
    let mut accepted = 0;
    let mut refused = None;
    for n in 0..5 {
        let r = app
            .update_run(id, json!({"metadata": {format!("k{n}"): chunk}}))
            .await;
        if r.status == StatusCode::OK {
            accepted += 1;
        } else {
            refused = Some(r);
            break;
        }
    }
    // 256 KiB holds two chunks of 100 KB, not three.
    assert_eq!(accepted, 2);
    let r = refused.expect("the third patch is refused");
    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("262144"), "{}", r.message());
    let stored = app.get_run(id).await.expect(StatusCode::OK);
    assert_eq!(stored["metadata"].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn a_create_over_the_cap_is_refused_and_nothing_is_stored() {
    let app = TestApp::with(capped(1_000)).await;

    let r = app
        .post(
            "/api/v1/runs",
            json!({"contract_id": "c", "metadata": {"blob": "x".repeat(1_000)}}),
        )
        .await;

    r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(r.message().contains("1000 bytes"), "{}", r.message());
    assert_eq!(app.list_runs("").await["total"], 0);
    // Just under the cap is fine.
    app.create_run(json!({"contract_id": "c", "metadata": {"blob": "x".repeat(900)}}))
        .await;
}

fn validation(extra: Value) -> Value {
    let mut body = json!({"contract_id": "c", "status": "failed"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn validations_are_capped_in_issues_metrics_and_metadata() {
    let app = TestApp::with(Options {
        limits: Limits {
            max_metadata_bytes: 2_000,
            max_metrics_bytes: 1_000,
            max_validation_issues: 3,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let issues = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"code": "E", "message": format!("issue {i}")}))
            .collect()
    };
    let refused = [
        (json!({"errors": issues(4)}), "errors has 4 entries"),
        (json!({"warnings": issues(4)}), "warnings has 4 entries"),
        (
            json!({"metrics": {"note": "x".repeat(1_000)}}),
            "over the limit of 1000 bytes",
        ),
        (
            json!({"metadata": {"note": "x".repeat(2_000)}}),
            "over the limit of 2000 bytes",
        ),
    ];
    for (extra, says) in refused {
        let r = app.post("/api/v1/validations", validation(extra)).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains(says), "{}", r.message());
    }
    let page = app.get("/api/v1/validations").await.expect(StatusCode::OK);
    assert_eq!(page["total"], 0, "nothing refused was stored");

    app.record_validation(validation(json!({
        "errors": issues(3),
        "warnings": issues(3),
        "metrics": {"note": "x".repeat(900)},
        "metadata": {"note": "x".repeat(1_900)},
    })))
    .await;
}

#[tokio::test]
async fn events_store_the_patch_not_a_copy_of_the_metadata() {
    let app = TestApp::with(capped(2 * 1024 * 1024)).await;
    let run = app.create_run(json!({"contract_id": "c"})).await;
    let id = run["id"].as_str().unwrap();
    let chunk = "x".repeat(100_000);

    for n in 0..10 {
        app.update_run(id, json!({"metadata": {format!("k{n}"): chunk}}))
            .await
            .expect(StatusCode::OK);
    }

    // Each event holds its own 100 KB patch: about 1 MB in all. Copies of
    // the whole metadata would be 100 KB + 200 KB + ... = 5.5 MB.
    let (count, bytes) = stored_events(&app, id);
    assert_eq!(count, 11, "created + 10 updates");
    assert!(
        (1_000_000..1_100_000).contains(&bytes),
        "events hold {bytes} bytes"
    );
    let events = app
        .get(&format!("/api/v1/runs/{id}/events?offset=1&limit=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        events["items"][0]["changes"],
        json!({"metadata": {"k0": chunk}})
    );
}

fn page_budget(max_page_bytes: usize) -> Options {
    Options {
        limits: Limits {
            max_page_bytes,
            ..Limits::default()
        },
        ..Options::default()
    }
}

/// Walks a list with `offset += limit` as the answers give them, and returns
/// the ids seen and the size of each page.
async fn walk(app: &TestApp, path: &str) -> (Vec<String>, Vec<usize>) {
    let (mut seen, mut sizes, mut offset) = (Vec::new(), Vec::new(), 0);
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = app
            .get(&format!("{path}{sep}limit=50&offset={offset}"))
            .await
            .expect(StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        let limit = page["limit"].as_u64().unwrap();
        if page["truncated"] == true {
            assert_eq!(
                limit as usize,
                items.len(),
                "a cut page's limit is its size"
            );
        } else {
            assert_eq!(limit, 50, "an uncut page echoes the limit asked for");
        }
        seen.extend(items.iter().map(|i| i["id"].to_string()));
        sizes.push(items.len());
        offset += limit;
        if offset >= page["total"].as_u64().unwrap() {
            return (seen, sizes);
        }
    }
}

#[tokio::test]
async fn a_page_is_cut_at_the_byte_budget_and_a_walk_sees_every_run_once() {
    let app = TestApp::with(page_budget(100_000)).await;
    let mut created = Vec::new();
    for n in 0..10 {
        let run = app
            .create_run(json!({
                "contract_id": "c",
                "started_at": format!("2024-01-{:02}T00:00:00Z", n + 1),
                "metadata": {"blob": "x".repeat(30_000)}
            }))
            .await;
        created.push(run["id"].to_string());
    }

    let first = app.list_runs("limit=50").await;
    assert_eq!(first["truncated"], true);
    assert_eq!(first["total"], 10, "total stays exact");
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert_eq!(first["limit"], 3);

    let (seen, sizes) = walk(&app, "/api/v1/runs").await;
    created.reverse(); // newest started_at first
    assert_eq!(seen, created, "every run once, in order");
    assert_eq!(sizes, [3, 3, 3, 1]);
}

#[tokio::test]
async fn an_item_larger_than_the_budget_comes_alone() {
    let app = TestApp::with(page_budget(10_000)).await;
    for _ in 0..3 {
        app.create_run(json!({"contract_id": "c", "metadata": {"blob": "x".repeat(30_000)}}))
            .await;
    }
    let (seen, sizes) = walk(&app, "/api/v1/runs").await;
    assert_eq!(sizes, [1, 1, 1]);
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn small_pages_are_not_cut() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.create_run_for("c").await;
    }
    let page = app.list_runs("limit=2").await;
    assert_eq!(page["truncated"], false);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn event_and_validation_pages_are_bounded_too() {
    let app = TestApp::with(Options {
        limits: Limits {
            max_page_bytes: 100_000,
            max_metadata_bytes: 1024 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let run = app.create_run(json!({"contract_id": "c"})).await;
    let id = run["id"].as_str().unwrap();
    for n in 0..5 {
        app.update_run(
            id,
            json!({"metadata": {format!("k{n}"): "x".repeat(30_000)}}),
        )
        .await
        .expect(StatusCode::OK);
        app.record_validation(validation(
            json!({"metadata": {"blob": "x".repeat(30_000)}}),
        ))
        .await;
    }

    let (events, sizes) = walk(&app, &format!("/api/v1/runs/{id}/events")).await;
    // The `created` event is small: it shares the first page with three
    // patches.
    assert_eq!(sizes, [4, 2]);
    assert_eq!(events.len(), 6);
    let (validations, sizes) = walk(&app, "/api/v1/validations").await;
    assert_eq!(sizes, [3, 2]);
    assert_eq!(validations.len(), 5);
}

#[test]
fn the_flags_have_the_documented_defaults_and_refuse_zero() {
    use clap::Parser;
    use griot_registry::cli::args::{Cli, Command};

    let serve = |extra: &[&str]| {
        Cli::try_parse_from(["griot-registry", "serve"].iter().chain(extra)).map(|cli| {
            match cli.command {
                Command::Serve(args) => args,
                other => panic!("parsed as {other:?}"),
            }
        })
    };
    let args = serve(&[]).unwrap();
    assert_eq!(
        (
            args.max_metadata_bytes,
            args.max_metrics_bytes,
            args.max_validation_issues,
            args.max_page_bytes
        ),
        (262_144, 262_144, 1000, 8_388_608)
    );
    let args = serve(&["--max-metadata-bytes", "1000", "--max-page-bytes", "5000"]).unwrap();
    assert_eq!((args.max_metadata_bytes, args.max_page_bytes), (1000, 5000));
    for flag in [
        "--max-metadata-bytes",
        "--max-metrics-bytes",
        "--max-validation-issues",
        "--max-page-bytes",
    ] {
        assert!(serve(&[flag, "0"]).is_err(), "{flag} 0 is refused");
    }
}
