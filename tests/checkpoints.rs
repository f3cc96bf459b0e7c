//! The checkpoint thread: the WAL reaches the database file while the
//! store stays open (nothing else copies it now that the writer does not),
//! and its holds of the writer are visible in /metrics.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use griot_registry::store::{Store, StoreError, StoreOptions};

/// Creates table `t` and writes `commits` commits of 20 rows of 1,000
/// bytes each.
fn write_burst(store: &Store, commits: usize) {
    store
        .write_blocking(|c| {
            c.execute_batch("CREATE TABLE t (body TEXT NOT NULL)")?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    for _ in 0..commits {
        store
            .write_blocking(|c| {
                let mut insert = c.prepare_cached("INSERT INTO t (body) VALUES (?1)")?;
                for _ in 0..20 {
                    insert.execute([&"x".repeat(1000)])?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}

#[test]
fn committed_writes_reach_the_database_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    let empty = std::fs::metadata(&path).unwrap().len();
    // About 4 MB in many commits, as a busy server writes.
    write_burst(&store, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() < empty + (3 << 20) {
        assert!(
            Instant::now() < deadline,
            "the WAL was not copied into the database file within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a burst the WAL file stays as long as the burst made it (up to
/// 320 MiB); once writes stop for a few seconds it is emptied, and the
/// writes are all in the database file.
#[test]
fn a_quiet_store_empties_its_wal_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let wal = dir.path().join("q.db-wal");
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    write_burst(&store, 100);
    assert!(std::fs::metadata(&wal).unwrap().len() > 1 << 20);
    let stopped = Instant::now();
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the WAL file was not emptied within 20 s of the last write"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not before the quiet spell: a server between two writes keeps it.
    assert!(
        stopped.elapsed() >= Duration::from_secs(4),
        "{:?}",
        stopped.elapsed()
    );
    let rows: i64 = store
        .read_blocking(|c| {
            Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
        })
        .unwrap();
    assert_eq!(rows, 2000);
}

#[tokio::test]
async fn the_writer_holds_show_in_the_metrics() {
    let app = TestApp::spawn().await;
    app.create_run_for("c").await;
    let body = app
        .client
        .get("/metrics")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    assert!(
        body.lines()
            .any(|l| l.starts_with("griot_writer_checkpoint_hold_duration_seconds_count ")),
        "{body}"
    );
}
