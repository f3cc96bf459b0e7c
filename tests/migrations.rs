//! A database written by an older schema version upgrades in place on
//! start, without losing a row.

mod common;

use common::{Options, TestApp};
use griot_registry::store::latest_version;
use poem::http::StatusCode;
use r2d2_sqlite::rusqlite::{Connection, params};
use serde_json::json;

/// The part of schema.sql up to (not including) migration `next`.
fn schema_before(next: i64) -> String {
    let schema = include_str!("../schema.sql");
    let mark = format!("\n-- migration: {next}\n");
    schema[..schema.find(&mark).expect("migration marker")].to_owned()
}

#[tokio::test]
async fn a_version_1_file_upgrades_without_losing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&schema_before(2)).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute(
            "INSERT INTO runs (id, contract_id, pipeline_name, status, metadata, started_at, \
             created_by, updated_at) VALUES (?1, 'c', 'etl', 'running', '{\"k\": 1}', ?2, 'old-key', ?2)",
            params!["run_01HQ0000000000000000000000", "2024-01-15T10:00:00.000000Z"],
        )
        .unwrap();
    }

    let app = TestApp::in_dir(dir, Options::default());

    let conn = Connection::open(app.db_path()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, latest_version());

    let run = app
        .get_run("run_01HQ0000000000000000000000")
        .await
        .expect(StatusCode::OK);
    assert_eq!(run["metadata"], json!({"k": 1}));
    assert_eq!(run["created_by"], "old-key");
    assert_eq!(run["validations"], json!([]));

    // The new tables work on the upgraded file.
    app.record_validation(json!({"contract_id": "c", "status": "passed", "run_id": run["id"]}))
        .await;
    let run = app
        .get_run("run_01HQ0000000000000000000000")
        .await
        .expect(StatusCode::OK);
    assert_eq!(run["validations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_file_from_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", latest_version() + 1))
        .unwrap();
    let err = griot_registry::store::Store::open(&path, &Default::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn reopening_an_up_to_date_file_changes_nothing() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    let app = app.restart().restart();
    assert_eq!(
        app.get_run(run["id"].as_str().unwrap())
            .await
            .expect(StatusCode::OK),
        run
    );
}

/// The migration that added webhooks and the admin scope.
const WEBHOOKS_MIGRATION: i64 = 6;

#[tokio::test]
async fn keys_keep_working_through_the_admin_scope_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let secret = griot_registry::domain::keys::Secret::generate().unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&schema_before(WEBHOOKS_MIGRATION))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", WEBHOOKS_MIGRATION - 1))
            .unwrap();
        conn.execute(
            "INSERT INTO api_keys (name, scope, secret_hash, created_at) \
             VALUES ('old-bot', 'write', ?1, '2024-01-15T10:00:00.000000Z')",
            params![secret.hash()],
        )
        .unwrap();
    }
    let app = TestApp::in_dir(dir, Options::default());
    let created = app
        .request(
            poem::http::Method::POST,
            "/api/v1/runs",
            Some(secret.expose()),
            Some(json!({"contract_id": "c"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created["created_by"], "old-bot");
    // The widened scope check takes admin keys.
    griot_registry::app::keys::create(
        &app.store,
        "ops",
        griot_registry::domain::keys::KeyScope::Admin,
    )
    .unwrap();
}

/// The migration that rewrote the IN-list checks as comparisons.
const CHECKS_MIGRATION: i64 = 9;

/// Whether `conn` compiles an insert of a run into a temporary B-tree (the
/// IN list of the status check, before migration 9).
fn run_insert_builds_a_temporary_btree(conn: &Connection) -> bool {
    let mut stmt = conn
        .prepare("EXPLAIN INSERT INTO runs (id, status) VALUES (?1, ?2)")
        .unwrap();
    let mut rows = stmt.raw_query();
    let mut found = false;
    while let Some(row) = rows.next().unwrap() {
        found |= row.get::<_, String>("opcode").unwrap() == "OpenEphemeral";
    }
    found
}

#[tokio::test]
async fn the_check_rewrite_keeps_every_row_and_reaches_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let id = "run_01HQ0000000000000000000000";
    // A connection that has parsed the old schema, as a CLI running beside
    // the server would have.
    let beside = Connection::open(&path).unwrap();
    beside
        .execute_batch(&schema_before(CHECKS_MIGRATION))
        .unwrap();
    beside
        .execute_batch(&format!("PRAGMA user_version = {}", CHECKS_MIGRATION - 1))
        .unwrap();
    beside
        .execute(
            "INSERT INTO runs (id, contract_id, status, started_at, created_by, updated_at) \
             VALUES (?1, 'c', 'failed', '2024-01-15T10:00:00.000000Z', 'k', \
             '2024-01-15T10:00:00.000000Z')",
            params![id],
        )
        .unwrap();
    assert!(run_insert_builds_a_temporary_btree(&beside));

    let app = TestApp::in_dir(dir, Options::default());

    // Its next statement finds the schema cookie bumped, and it parses the
    // new text (EXPLAIN alone compiles with what the connection has).
    let runs: i64 = beside
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
    assert!(!run_insert_builds_a_temporary_btree(&beside));
    let refused = beside
        .execute(
            "INSERT INTO runs (id, contract_id, status, started_at, created_by, updated_at) \
             VALUES ('run_x', 'c', 'done', 't', 'k', 't')",
            [],
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("CHECK constraint failed"),
        "{refused}"
    );
    let check: String = beside
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(beside);

    let run = app.get_run(id).await.expect(StatusCode::OK);
    assert_eq!(run["status"], "failed");
    let page = app.list_runs("status=failed").await;
    assert_eq!(page["total"], 1);
}
