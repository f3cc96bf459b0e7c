//! No work for the departed: a read past the query deadline, or whose
//! caller went away, is interrupted and its connection returned; the
//! client of a read past the deadline gets 503 with Retry-After.

mod common;

use std::time::{Duration, Instant};

use common::{HeldReader, client_on};
use griot_registry::store::{Store, StoreError, StoreOptions};
use poem::http::StatusCode;
use r2d2_sqlite::rusqlite::Connection;
use serde_json::Value;

/// A statement that would run for hours.
const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                    SELECT count(*) FROM (SELECT x FROM c LIMIT 1000000000000)";

fn slow(c: &Connection) -> Result<i64, StoreError> {
    Ok(c.query_row(SLOW, [], |r| r.get(0))?)
}

/// A store with one reader connection and `query_timeout`.
fn store(dir: &tempfile::TempDir, query_timeout: Duration) -> Store {
    Store::open(
        &dir.path().join("registry.db"),
        &StoreOptions {
            read_connections: 1,
            pool_timeout: Duration::from_secs(2),
            query_timeout,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// The one reader connection is free again: a quick read gets it.
async fn assert_reader_returned(store: &Store) {
    let started = Instant::now();
    while store.idle_readers() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "connection not returned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let one: i64 = store
        .read(|c| Ok::<_, StoreError>(c.query_row("SELECT 1", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(one, 1);
    // ...and holds no snapshot, which would keep checkpoints from finishing.
    let ended = store
        .read_blocking(|c| Ok::<_, StoreError>(c.is_autocommit()))
        .unwrap();
    assert!(ended, "the interrupted read's transaction is still open");
}

/// Every statement of one read sees the same snapshot: a write that commits
/// between two of them is seen by neither, and by the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sees_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, Duration::from_secs(10));
    let tables = "SELECT count(*) FROM sqlite_master";
    let writer = store.clone();
    let (before, during) = store
        .read(move |c| {
            let before: i64 = c.query_row(tables, [], |r| r.get(0))?;
            writer.write_blocking(|w| {
                w.execute_batch("CREATE TABLE written_meanwhile (x)")?;
                Ok::<_, StoreError>(())
            })?;
            let during: i64 = c.query_row(tables, [], |r| r.get(0))?;
            Ok::<_, StoreError>((before, during))
        })
        .await
        .unwrap();
    assert_eq!(before, during);
    let after: i64 = store
        .read(move |c| Ok::<_, StoreError>(c.query_row(tables, [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(after, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_the_deadline_is_interrupted_and_its_connection_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, Duration::from_millis(100));

    let started = Instant::now();
    let err = store.read(slow).await.unwrap_err();

    assert!(matches!(err, StoreError::Deadline(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.idle_readers(), 1, "returned before the answer");
    assert_reader_returned(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_caller_went_away_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, Duration::from_secs(3600));

    // The caller gives up (as poem drops the handler of a client that
    // disconnected): the read's future is dropped mid-query.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), store.read(slow)).await;
    assert!(gave_up.is_err(), "the slow read finished");

    assert_reader_returned(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_past_the_deadline_answers_503_with_retry_after() {
    // Arrange: the one reader is held, so the list waits past its deadline
    // (well before the pool's own timeout).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("registry.db"),
        &StoreOptions {
            read_connections: 1,
            pool_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_millis(100),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let held = HeldReader::take(&store);
    let client = client_on(store.clone());

    // Act
    let started = Instant::now();
    let resp = client.get("/api/v1/runs").send().await;

    // Assert
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header("Retry-After", "1");
    let body: Value = resp.0.into_body().into_json().await.unwrap();
    assert_eq!(body["detail"]["code"], "SERVICE_UNAVAILABLE", "{body:#}");
    assert_eq!(body["detail"].as_object().unwrap().len(), 2, "{body:#}");

    // The list that gave up never runs once the connection is free.
    held.release();
    assert_reader_returned(&store).await;
}
