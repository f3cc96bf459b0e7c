//! `total` in list answers comes from counters the triggers keep, not from
//! counting rows: after every kind of write (create, status and pipeline
//! changes, the reaper's expiries, validations, retention's deletes) it
//! must equal a real count, for every combination of filters. The same
//! holds for each listed run's `validation_summary`, which triggers keep on
//! the run's row.

mod common;

use common::{Options, TestApp, ts};
use griot_registry::{
    app::{lifecycle, retention},
    domain::{retention::Policy, time::Clock},
};
use poem::http::StatusCode;
use r2d2_sqlite::rusqlite::{Connection, params};
use serde_json::{Value, json};

const CONTRACTS: [Option<&str>; 4] = [None, Some("c1"), Some("c2"), Some("nope")];
const PIPELINES: [Option<&str>; 4] = [None, Some("p1"), Some("p2"), Some("nope")];
const RUN_STATUSES: [Option<&str>; 6] = [
    None,
    Some("pending"),
    Some("running"),
    Some("completed"),
    Some("failed"),
    Some("cancelled"),
];
const VALIDATION_STATUSES: [Option<&str>; 5] = [
    None,
    Some("passed"),
    Some("failed"),
    Some("warning"),
    Some("skipped"),
];

/// `?a=x&b=y` of the filters that are given, with `limit=1`.
fn query(filters: &[(&str, Option<&str>)]) -> String {
    filters
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}&")))
        .collect::<String>()
        + "limit=1"
}

/// A real count of `table`'s rows matching the given equality filters.
fn real_count(conn: &Connection, table: &str, filters: &[(&str, Option<&str>)]) -> u64 {
    let mut where_sql = String::from("WHERE 1");
    let mut args: Vec<Option<&str>> = Vec::new();
    for (k, v) in filters {
        args.push(*v);
        where_sql.push_str(&format!(
            " AND (?{n} IS NULL OR {k} = ?{n})",
            n = args.len()
        ));
    }
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {table} {where_sql}"),
            r2d2_sqlite::rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )
        .unwrap();
    u64::try_from(n).unwrap()
}

async fn total(app: &TestApp, path: &str, filters: &[(&str, Option<&str>)]) -> u64 {
    let page: Value = app
        .get(&format!("{path}?{}", query(filters)))
        .await
        .expect(StatusCode::OK);
    page["total"].as_u64().expect("total")
}

/// Every combination of run and validation filters answers the real count.
async fn assert_totals_exact(app: &TestApp, stage: &str) {
    let conn = Connection::open(app.db_path()).unwrap();
    for contract in CONTRACTS {
        for pipeline in PIPELINES {
            for status in RUN_STATUSES {
                let f = [
                    ("contract_id", contract),
                    ("pipeline_name", pipeline),
                    ("status", status),
                ];
                assert_eq!(
                    total(app, "/api/v1/runs", &f).await,
                    real_count(&conn, "runs", &f),
                    "runs total after {stage}, filters {f:?}"
                );
            }
        }
        for status in VALIDATION_STATUSES {
            let f = [("contract_id", contract), ("status", status)];
            assert_eq!(
                total(app, "/api/v1/validations", &f).await,
                real_count(&conn, "validations", &f),
                "validations total after {stage}, filters {f:?}"
            );
        }
    }
    // Filters the counters do not serve still count exactly.
    let runs: Value = app
        .get("/api/v1/runs?start_date=2024-01-01T00:00:00Z&status=completed&limit=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        runs["total"].as_u64().unwrap(),
        u64::try_from(
            conn.query_row(
                "SELECT count(*) FROM runs WHERE status = 'completed' AND started_at >= ?1",
                params!["2024-01-01T00:00:00.000000Z"],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        )
        .unwrap(),
        "a date range after {stage}"
    );
    assert_summaries_exact(app, &conn, stage).await;
}

/// Every listed run's `validation_summary` equals a real count of its
/// validations by status.
async fn assert_summaries_exact(app: &TestApp, conn: &Connection, stage: &str) {
    let page: Value = app
        .get("/api/v1/runs?limit=1000")
        .await
        .expect(StatusCode::OK);
    let runs = page["items"].as_array().unwrap();
    assert_eq!(runs.len() as u64, page["total"].as_u64().unwrap());
    for run in runs {
        let id = run["id"].as_str().unwrap();
        let summary = &run["validation_summary"];
        let mut total = 0;
        for status in ["passed", "failed", "warning", "skipped"] {
            let real: i64 = conn
                .query_row(
                    "SELECT count(*) FROM validations WHERE run_id = ?1 AND status = ?2",
                    params![id, status],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                summary[status].as_i64(),
                Some(real),
                "{status} validations of {id} after {stage}: {summary}"
            );
            total += real;
        }
        assert_eq!(summary["total"].as_i64(), Some(total), "{summary}");
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn totals_equal_real_counts_after_every_kind_of_write() {
    let app = TestApp::with(Options {
        clock: Clock::fixed(ts("2024-01-15T10:00:00Z")),
        ..Default::default()
    })
    .await;
    assert_totals_exact(&app, "nothing").await;

    // Creates: every status, with and without a pipeline.
    let mut ids = Vec::new();
    for (i, contract) in ["c1", "c2", "c1", "c3"].into_iter().enumerate() {
        for (j, status) in ["pending", "running", "completed", "failed", "cancelled"]
            .into_iter()
            .enumerate()
        {
            let mut body = json!({"contract_id": contract, "status": status});
            if (i + j) % 3 != 0 {
                body["pipeline_name"] = json!(if j % 2 == 0 { "p1" } else { "p2" });
            }
            if status == "running" {
                body["heartbeat_timeout_seconds"] = json!(60);
            }
            ids.push(id_of(&app.create_run(body).await));
        }
    }
    assert_totals_exact(&app, "creates").await;

    // Updates: a status change, a pipeline change, both, metadata only.
    app.update_run(&ids[0], json!({"status": "running"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(&ids[5], json!({"pipeline_name": "p2"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(
        &ids[10],
        json!({"status": "completed", "pipeline_name": "p1"}),
    )
    .await
    .expect(StatusCode::OK);
    app.update_run(&ids[15], json!({"metadata": {"k": 1}}))
        .await
        .expect(StatusCode::OK);
    assert_totals_exact(&app, "updates").await;

    // Validations, linked and not.
    for (i, status) in ["passed", "failed", "warning", "skipped", "passed"]
        .into_iter()
        .enumerate()
    {
        let mut body = json!({"contract_id": "c1", "status": status});
        if i % 2 == 0 {
            body["run_id"] = json!(ids[0]);
        }
        app.record_validation(body).await;
        app.record_validation(json!({"contract_id": "c2", "status": status}))
            .await;
    }
    assert_totals_exact(&app, "validations").await;

    // The reaper fails the running runs whose heartbeat lapsed.
    app.clock.set(ts("2024-01-15T10:05:00Z"));
    let failed = lifecycle::sweep(&app.state()).await.unwrap();
    assert!(!failed.is_empty());
    assert_totals_exact(&app, "the reaper's expiries").await;

    // Retention deletes the finished runs, with their validations, and the
    // old validations without a run; newer runs stay.
    app.clock.set(ts("2024-03-01T10:00:00Z"));
    let late = id_of(
        &app.create_run(json!({"contract_id": "c1", "pipeline_name": "p1"}))
            .await,
    );
    app.update_run(&late, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    let counts = retention::prune(
        &app.state().store,
        Policy::new(ts("2024-03-01T00:00:00Z"), 30 * 86_400, 86_400),
        false,
        &|| false,
    )
    .unwrap();
    assert!(counts.runs > 0 && counts.validations > 0, "{counts:?}");
    assert_totals_exact(&app, "a prune").await;
}

/// A file with the schema up to (not including) migration `next`, at
/// user_version `next - 1`, holding a few runs and validations written
/// under that schema (so by its triggers, if it has any).
fn file_before_migration(path: &std::path::Path, next: u32) {
    let schema = include_str!("../schema.sql");
    let before = &schema[..schema.find(&format!("\n-- migration: {next}\n")).unwrap()];
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(before).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", next - 1))
        .unwrap();
    for (i, (contract, pipeline, status)) in [
        ("c1", Some("p1"), "completed"),
        ("c1", None, "running"),
        ("c2", Some("p1"), "failed"),
        ("c2", Some("p2"), "completed"),
        ("c1", Some("p2"), "pending"),
        ("c3", Some("p1"), "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        conn.execute(
            "INSERT INTO runs (id, contract_id, pipeline_name, status, started_at, \
             created_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'old', ?5)",
            params![
                format!("run_{i:026}"),
                contract,
                pipeline,
                status,
                "2024-01-15T10:00:00.000000Z"
            ],
        )
        .unwrap();
        // Two validations of most runs, one of none.
        for (j, status) in ["passed", "failed", "warning", "passed"]
            .into_iter()
            .enumerate()
        {
            let run = (i % 3 != 2).then(|| format!("run_{:026}", (i + j) % (i + 1)));
            conn.execute(
                "INSERT INTO validations (id, contract_id, run_id, status, recorded_at, \
                 recorded_by) VALUES (?1, ?2, ?3, ?4, '2024-01-15T10:00:00.000000Z', 'old')",
                params![format!("val_{i:02}{j:024}"), contract, run, status],
            )
            .unwrap();
        }
    }
    // A change under the old triggers too, so migration 5 meets counters
    // that have moved.
    conn.execute(
        "UPDATE runs SET status = 'completed', pipeline_name = 'p1' WHERE id = ?1",
        params![format!("run_{:026}", 4)],
    )
    .unwrap();
}

#[tokio::test]
async fn a_migrated_file_counts_its_existing_rows() {
    // Rows written before the counters existed are counted by the
    // migration that adds them.
    let dir = tempfile::tempdir().unwrap();
    file_before_migration(&dir.path().join("registry.db"), 4);
    let app = TestApp::in_dir(dir, Options::default());
    assert_totals_exact(&app, "the migration").await;
}

#[tokio::test]
async fn a_migrated_file_counts_each_runs_validations() {
    // Validations recorded before runs kept their own counts are counted
    // onto their runs by migration 7, and counted on after it.
    let dir = tempfile::tempdir().unwrap();
    file_before_migration(&dir.path().join("registry.db"), 7);
    let app = TestApp::in_dir(dir, Options::default());
    assert_totals_exact(&app, "migration 7").await;
    let run = format!("run_{:026}", 1);
    app.record_validation(json!({"contract_id": "c1", "status": "skipped", "run_id": run}))
        .await;
    assert_totals_exact(&app, "a validation after migration 7").await;
}

#[tokio::test]
async fn a_migrated_file_counts_each_contract() {
    // Migration 8 counts the rows of each contract (and, for runs, each
    // contract with a pipeline) it finds, and the counters move with
    // writes after it.
    let dir = tempfile::tempdir().unwrap();
    file_before_migration(&dir.path().join("registry.db"), 8);
    let app = TestApp::in_dir(dir, Options::default());
    assert_totals_exact(&app, "migration 8").await;
    app.create_run(json!({"contract_id": "c2", "pipeline_name": "p2", "status": "running"}))
        .await;
    app.record_validation(json!({"contract_id": "c2", "status": "failed"}))
        .await;
    assert_totals_exact(&app, "writes after migration 8").await;
}

#[tokio::test]
async fn moving_a_validation_moves_its_count() {
    // No endpoint changes a validation's run or status, but the triggers
    // count such a change, so no future writer can leave a run's counts
    // wrong.
    let dir = tempfile::tempdir().unwrap();
    file_before_migration(&dir.path().join("registry.db"), 7);
    let app = TestApp::in_dir(dir, Options::default());
    let conn = Connection::open(app.db_path()).unwrap();
    for change in [
        "UPDATE validations SET status = 'skipped' WHERE status = 'failed'",
        "UPDATE validations SET run_id = 'run_00000000000000000000000003' WHERE run_id IS NULL",
        "UPDATE validations SET run_id = NULL WHERE id LIKE 'val_01%'",
        "DELETE FROM validations WHERE status = 'warning'",
    ] {
        let changed = conn.execute(change, []).unwrap();
        assert!(changed > 0, "{change} changed nothing");
        assert_totals_exact(&app, change).await;
    }
}

#[tokio::test]
async fn narrowing_the_counters_keeps_totals_exact() {
    // A file whose counters were kept for every key (migration 4) keeps
    // exact totals once migration 5 drops the keys with a contract, and
    // through writes after it.
    let dir = tempfile::tempdir().unwrap();
    file_before_migration(&dir.path().join("registry.db"), 5);
    let app = TestApp::in_dir(dir, Options::default());
    assert_totals_exact(&app, "migration 5").await;
    {
        let conn = Connection::open(app.db_path()).unwrap();
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM run_counts WHERE dims & 1 AND dims NOT IN (1, 3)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // Migration 8 brings back the contract alone and with a pipeline,
        // no key with a status.
        assert_eq!(kept, 0, "no counter keyed by contract and status is left");
    }

    let id = id_of(
        &app.create_run(json!({"contract_id": "c1", "pipeline_name": "p2", "status": "running"}))
            .await,
    );
    app.update_run(&id, json!({"status": "failed", "pipeline_name": "p1"}))
        .await
        .expect(StatusCode::OK);
    app.update_run(&format!("run_{:026}", 1), json!({"status": "cancelled"}))
        .await
        .expect(StatusCode::OK);
    app.record_validation(json!({"contract_id": "c1", "status": "warning", "run_id": id}))
        .await;
    assert_totals_exact(&app, "writes after migration 5").await;
}
