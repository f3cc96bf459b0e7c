//! Retention through the real binary: `prune` (dry and not, batches,
//! refusals) and `serve --retention-days`. Rows are seeded straight into
//! the file with backdated timestamps, so no clock has to be faked.

mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::server::{Server, cli, stderr, stdout};
use griot_registry::domain::time::Timestamp;
use r2d2_sqlite::rusqlite::{self, Connection, params};

const DAY: i64 = 86_400;

fn ago(seconds: i64) -> String {
    Timestamp::now().plus_seconds(-seconds).to_string()
}

/// A migrated database file with one key (idempotency keys name one).
fn new_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("r.db");
    let out = cli(&db, &["keys", "create", "--create", "--name", "etl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    db
}

fn insert_run(c: &Connection, id: &str, status: &str, started: &str, completed: Option<&str>) {
    c.execute(
        "INSERT INTO runs (id, contract_id, status, started_at, completed_at, created_by, \
         updated_at) VALUES (?1, 'c', ?2, ?3, ?4, 'etl', ?3)",
        params![id, status, started, completed],
    )
    .unwrap();
    c.execute(
        "INSERT INTO run_events (run_id, type, to_status, actor, occurred_at) \
         VALUES (?1, 'created', ?2, 'etl', ?3)",
        params![id, status, started],
    )
    .unwrap();
}

fn insert_validation(c: &Connection, id: &str, run_id: Option<&str>, recorded: &str) {
    c.execute(
        "INSERT INTO validations (id, contract_id, run_id, status, recorded_at, recorded_by) \
         VALUES (?1, 'c', ?2, 'failed', ?3, 'etl')",
        params![id, run_id, recorded],
    )
    .unwrap();
    c.execute(
        "INSERT INTO validation_errors (validation_id, contract_id, recorded_at, code, message) \
         VALUES (?1, 'c', ?2, 'E1', 'bad')",
        params![id, recorded],
    )
    .unwrap();
}

fn insert_key_use(c: &Connection, key: &str, run_id: &str, created: &str) {
    c.execute(
        "INSERT INTO idempotency_keys (api_key_id, idempotency_key, request_hash, run_id, \
         created_at) VALUES (1, ?1, 'h', ?2, ?3)",
        params![key, run_id, created],
    )
    .unwrap();
}

/// Old finished runs (one with a second event, a validation and a key use;
/// one failed without completed_at), old live runs, a run that started
/// long ago but finished recently, and runless validations old and new.
fn seed(db: &Path) {
    let c = Connection::open(db).unwrap();
    insert_run(
        &c,
        "run_old_done",
        "completed",
        &ago(61 * DAY),
        Some(&ago(60 * DAY)),
    );
    c.execute(
        "INSERT INTO run_events (run_id, type, from_status, to_status, actor, occurred_at) \
         VALUES ('run_old_done', 'status_changed', 'running', 'completed', 'etl', ?1)",
        [ago(60 * DAY)],
    )
    .unwrap();
    insert_validation(&c, "val_of_old_done", Some("run_old_done"), &ago(60 * DAY));
    insert_key_use(&c, "k-old", "run_old_done", &ago(61 * DAY));
    insert_run(&c, "run_old_failed", "failed", &ago(90 * DAY), None);

    insert_run(&c, "run_old_running", "running", &ago(90 * DAY), None);
    insert_run(&c, "run_old_pending", "pending", &ago(90 * DAY), None);
    insert_validation(
        &c,
        "val_of_old_running",
        Some("run_old_running"),
        &ago(90 * DAY),
    );
    insert_key_use(&c, "k-expired", "run_old_running", &ago(2 * DAY));
    insert_key_use(&c, "k-fresh", "run_old_running", &ago(60));

    insert_run(
        &c,
        "run_finished_lately",
        "cancelled",
        &ago(40 * DAY),
        Some(&ago(DAY)),
    );

    insert_validation(&c, "val_old_runless", None, &ago(45 * DAY));
    insert_validation(&c, "val_new_runless", None, &ago(DAY));

    // Webhook messages: old delivered and failed ones go (with their
    // attempts); an old pending one and a recent one stay.
    c.execute(
        "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by) \
         VALUES ('whk_1', 'https://example.com/', '[\"run.failed\"]', 'standard', 'whsec_x', ?1, 'cli')",
        [ago(90 * DAY)],
    )
    .unwrap();
    for (id, state, created) in [
        ("msg_old_delivered", "delivered", ago(40 * DAY)),
        ("msg_old_failed", "failed", ago(35 * DAY)),
        ("msg_old_pending", "pending", ago(40 * DAY)),
        ("msg_new_delivered", "delivered", ago(DAY)),
    ] {
        c.execute(
            "INSERT INTO webhook_messages (id, webhook_id, event_type, subject_id, body, \
             created_at, state, retry_from) VALUES (?1, 'whk_1', 'run.failed', 'run_x', '{}', ?2, ?3, ?2)",
            params![id, created, state],
        )
        .unwrap();
        c.execute(
            "INSERT INTO webhook_attempts (message_id, attempt, attempted_at, latency_ms) \
             VALUES (?1, 1, ?2, 5)",
            params![id, created],
        )
        .unwrap();
    }
}

fn ids(db: &Path, table: &str) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let key = if table == "idempotency_keys" {
        "idempotency_key"
    } else {
        "id"
    };
    let mut stmt = c
        .prepare(&format!("SELECT {key} FROM {table} ORDER BY 1"))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, rusqlite::Error>>()
        .unwrap()
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Everything `seed` made that retention at 30 days keeps, and no orphan.
fn assert_only_kept_rows_left(db: &Path) {
    assert_eq!(
        ids(db, "runs"),
        ["run_finished_lately", "run_old_pending", "run_old_running"]
    );
    assert_eq!(
        ids(db, "validations"),
        ["val_new_runless", "val_of_old_running"]
    );
    assert_eq!(ids(db, "idempotency_keys"), ["k-fresh"]);
    assert_eq!(
        ids(db, "webhook_messages"),
        ["msg_new_delivered", "msg_old_pending"]
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM webhook_attempts"), 2);
    assert_eq!(count(db, "SELECT COUNT(*) FROM run_events"), 3);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM run_events WHERE run_id NOT IN (SELECT id FROM runs)"
        ),
        0
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM validation_errors"), 2);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM validation_errors \
             WHERE validation_id NOT IN (SELECT id FROM validations)"
        ),
        0
    );
    let c = Connection::open(db).unwrap();
    let broken: i64 = c
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
}

#[test]
fn prune_dry_run_counts_then_prune_deletes_exactly_the_old_finished_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    seed(&db);
    let before = (
        ids(&db, "runs"),
        ids(&db, "validations"),
        ids(&db, "idempotency_keys"),
        ids(&db, "webhook_messages"),
        count(&db, "SELECT COUNT(*) FROM run_events"),
        count(&db, "SELECT COUNT(*) FROM validation_errors"),
    );

    let dry = cli(&db, &["prune", "--older-than", "30d", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains(
            "Would delete 2 runs, 3 events, 2 validations, 2 idempotency keys, 2 webhook messages"
        ),
        "{}",
        stdout(&dry)
    );
    let after_dry = (
        ids(&db, "runs"),
        ids(&db, "validations"),
        ids(&db, "idempotency_keys"),
        ids(&db, "webhook_messages"),
        count(&db, "SELECT COUNT(*) FROM run_events"),
        count(&db, "SELECT COUNT(*) FROM validation_errors"),
    );
    assert_eq!(before, after_dry, "a dry run deleted something");

    let out = cli(&db, &["prune", "--older-than", "30d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "Deleted 2 runs, 3 events, 2 validations, 2 idempotency keys, 2 webhook messages"
        ),
        "{}",
        stdout(&out)
    );
    // The counts are logged too.
    let log = stderr(&out);
    assert!(log.contains("pruned") && log.contains("runs=2"), "{log}");
    assert_only_kept_rows_left(&db);

    let again = cli(&db, &["prune", "--older-than", "30d"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains(
            "Deleted 0 runs, 0 events, 0 validations, 0 idempotency keys, 0 webhook messages"
        ),
        "{}",
        stdout(&again)
    );
    assert_only_kept_rows_left(&db);
}

#[test]
fn prune_goes_through_more_than_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    {
        let mut c = Connection::open(&db).unwrap();
        let tx = c.transaction().unwrap();
        let old = ago(40 * DAY);
        for i in 0..1_201 {
            insert_run(&tx, &format!("run_{i:05}"), "completed", &old, Some(&old));
        }
        insert_run(&tx, "run_live", "running", &old, None);
        tx.commit().unwrap();
    }
    let out = cli(&db, &["prune", "--older-than", "30d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Deleted 1201 runs, 1201 events"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&db, "runs"), ["run_live"]);
}

#[test]
fn prune_refuses_a_missing_database_and_a_bad_age() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let out = cli(&db, &["prune", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("typo.db") && err.contains("does not exist"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "prune created {left:?}");

    let db = new_db(dir.path());
    for bad in ["30", "30w", "0d", "-3d"] {
        let out = cli(&db, &["prune", "--older-than", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--older-than"), "{}", stderr(&out));
    }
}

#[test]
fn serve_with_retention_days_prunes_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    seed(&db);
    let server = Server::start(
        &db,
        &[
            ("GRIOT_RETENTION_DAYS", "30"),
            ("GRIOT_RETENTION_INTERVAL_SECONDS", "1"),
            ("GRIOT_IDEMPOTENCY_RETENTION_HOURS", "24"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids(&db, "runs").contains(&"run_old_done".to_owned())
        || ids(&db, "idempotency_keys").contains(&"k-expired".to_owned())
        || ids(&db, "validations").contains(&"val_old_runless".to_owned())
    {
        assert!(Instant::now() < deadline, "never pruned: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_only_kept_rows_left(&db);
    assert!(server.log().contains("pruned"), "{}", server.log());
    assert!(server.terminate().success());
}

#[test]
fn serve_without_retention_days_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    seed(&db);
    let server = Server::start(
        &db,
        &[
            ("GRIOT_RETENTION_INTERVAL_SECONDS", "1"),
            ("GRIOT_REAPER_INTERVAL_SECONDS", "1"),
        ],
    );
    // Long enough for a sweep at the 1-second interval, had one been on.
    std::thread::sleep(Duration::from_secs(3));
    assert!(server.terminate().success());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs"), 5);
    assert!(ids(&db, "validations").contains(&"val_old_runless".to_owned()));
}

#[test]
fn shutdown_stops_a_long_sweep_between_batches() {
    const RUNS: i64 = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    {
        let mut c = Connection::open(&db).unwrap();
        let tx = c.transaction().unwrap();
        let old = ago(40 * DAY);
        for i in 0..RUNS {
            insert_run(&tx, &format!("run_{i:07}"), "completed", &old, Some(&old));
        }
        tx.commit().unwrap();
    }
    let server = Server::start(
        &db,
        &[
            ("GRIOT_RETENTION_DAYS", "30"),
            ("GRIOT_RETENTION_INTERVAL_SECONDS", "1"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT COUNT(*) FROM runs") == RUNS {
        assert!(Instant::now() < deadline, "never pruned: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Deleting them all takes seconds; the server must not wait for that.
    assert!(server.terminate().success());
    let left = count(&db, "SELECT COUNT(*) FROM runs");
    assert!(left > 0, "shutdown waited for the whole prune");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_events WHERE run_id NOT IN (SELECT id FROM runs)"
        ),
        0,
        "a batch was cut in half"
    );
}
