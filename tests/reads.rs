//! Where reads run: lists on the store's read threads, a queue in front of
//! the reader connections; a get run on the async worker itself when the
//! run has few validations, on the read threads when it has many.

mod common;

use std::time::Duration;

use common::{HeldReader, TestApp, client_on};
use griot_registry::{
    app::keys,
    domain::keys::KeyScope,
    store::{Store, StoreError, StoreOptions, TaskError},
};
use poem::http::StatusCode;
use serde_json::{Value, json};

fn store(dir: &tempfile::TempDir, read_connections: u32) -> Store {
    Store::open(
        &dir.path().join("registry.db"),
        &StoreOptions {
            read_connections,
            pool_timeout: Duration::from_millis(500),
            query_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn select_one(c: &r2d2_sqlite::rusqlite::Connection) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT 1", [], |r| r.get(0))?)
}

/// More reads at once than there are threads to run them: each waits in
/// the queue and is answered (a thread left asleep with work queued would
/// show as a read past its deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_beyond_the_thread_count_queue_and_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 2);

    for _ in 0..20 {
        let reads: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.read(select_one).await })
            })
            .collect();
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), 1);
        }
    }
}

/// A read that panics fails alone: its caller gets an error, its connection
/// goes back to the pool with no transaction open, and the thread that ran
/// it serves the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_panics_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1);

    let err = store
        .read(|c| {
            select_one(c)?;
            panic!("a bug in a read");
            #[allow(unreachable_code)]
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap_err();

    assert!(
        matches!(err, StoreError::Task(TaskError::ReadPanicked)),
        "{err}"
    );
    assert_eq!(store.read(select_one).await.unwrap(), 1);
    let ended = store
        .read_blocking(|c| Ok::<_, StoreError>(c.is_autocommit()))
        .unwrap();
    assert!(ended, "the panicked read's transaction is still open");
}

/// With every reader connection held, a list waits and fails with 503, but
/// a get run is still answered: it is read on the async worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_run_is_answered_while_every_reader_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1);
    let (_, key) = keys::create(&store, "bot", KeyScope::Write).unwrap();
    let client = client_on(store.clone());
    let created: Value = client
        .post("/api/v1/runs")
        .header("X-API-Key", key.expose())
        .body_json(&json!({"contract_id": "c"}))
        .send()
        .await
        .0
        .into_body()
        .into_json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let held = HeldReader::take(&store);

    let got = client.get(format!("/api/v1/runs/{id}")).send().await;
    got.assert_status_is_ok();
    let got: Value = got.0.into_body().into_json().await.unwrap();
    assert_eq!(got["id"], created["id"]);
    let missing = client
        .get("/api/v1/runs/01JAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await;
    missing.assert_status(StatusCode::NOT_FOUND);
    client
        .get("/api/v1/runs")
        .send()
        .await
        .assert_status(StatusCode::SERVICE_UNAVAILABLE);

    held.release();
}

/// A get run answers with all of the run's validations, oldest first, on
/// either side of the bound past which it is read on the read threads.
#[tokio::test]
async fn a_run_with_many_validations_is_answered_whole() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    let run_id = run["id"].as_str().unwrap();

    let mut recorded = Vec::new();
    for i in 0..66 {
        // Recorded newest first, so the order comes from the read.
        let s = 100 - i;
        let at = format!("2024-01-15T10:{:02}:{:02}Z", s / 60, s % 60);
        let v = app
            .record_validation(
                json!({"contract_id": "c", "status": "passed", "run_id": run_id, "recorded_at": at}),
            )
            .await;
        recorded.insert(0, v["id"].as_str().unwrap().to_owned());
        if matches!(recorded.len(), 63..=66) {
            let got = app.get_run(run_id).await.expect(StatusCode::OK);
            let listed: Vec<&str> = got["validations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap())
                .collect();
            assert_eq!(listed, recorded, "with {} validations", recorded.len());
        }
    }
}

/// A statement with a bound LIMIT and OFFSET, as every list page has, is
/// planned once: binding a new page does not make SQLite parse and plan it
/// again (it did, a quarter of a list's time, before the readers set the
/// query planner stability guarantee).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_not_planned_again_for_each_limit_and_offset() {
    use r2d2_sqlite::rusqlite::{StatementStatus, params};

    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1);

    let replanned = store
        .read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM runs WHERE contract_id = ?1 \
                 ORDER BY started_at DESC, id DESC LIMIT ?2 OFFSET ?3",
            )?;
            for page in 0..5 {
                let mut rows = stmt.query(params!["c", 50 + page, page * 50])?;
                while rows.next()?.is_some() {}
            }
            Ok::<_, StoreError>(stmt.get_status(StatementStatus::RePrepare))
        })
        .await
        .unwrap();

    assert_eq!(replanned, 0);
}

/// A get run reads outside any transaction on the async worker; its run
/// and validations still come from one snapshot, because the run's
/// statement stays on its row while the validations are read. A validation
/// committed in between is not half-seen: the count and the list agree.
#[test]
fn a_run_and_its_validations_are_read_in_one_snapshot() {
    use griot_registry::store::{runs, validations};
    use r2d2_sqlite::rusqlite::{Connection, params};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    drop(store(&dir, 1));
    let writer = Connection::open(&path).unwrap();
    let id = "run_01HQ0000000000000000000000";
    writer
        .execute(
            "INSERT INTO runs (id, contract_id, status, started_at, created_by, updated_at) \
             VALUES (?1, 'c', 'running', 't', 'k', 't')",
            params![id],
        )
        .unwrap();
    let validation = |n: u32| {
        writer.execute(
            "INSERT INTO validations (id, contract_id, run_id, status, recorded_at, recorded_by) \
             VALUES (?1, 'c', ?2, 'passed', ?3, 'k')",
            params![format!("val_{n}"), id, format!("2024-01-15T10:00:0{n}Z")],
        )
    };
    validation(1).unwrap();

    let reader = Connection::open(&path).unwrap();
    let seen = runs::with_record(&reader, id, |run, count| {
        validation(2)?;
        let listed = validations::refs_for_run_upto(&reader, id, 64)?.unwrap();
        Ok((run.id, count, listed.len()))
    })
    .unwrap()
    .unwrap();
    assert_eq!(seen, (id.to_owned(), 1, 1));
    assert!(reader.is_autocommit());

    let after = runs::with_record(&reader, id, |_, count| {
        Ok((
            count,
            validations::refs_for_run_upto(&reader, id, 64)?
                .unwrap()
                .len(),
        ))
    })
    .unwrap()
    .unwrap();
    assert_eq!(after, (2, 2));
    assert_eq!(
        runs::with_record(&reader, "run_missing", |_, n| Ok(n)).unwrap(),
        None
    );
}
