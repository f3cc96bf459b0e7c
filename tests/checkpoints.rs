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

/// Whether, with `options`, an idle store keeps another connection's
/// checkpoint from copying a new write back (the checkpoint thread's read
/// transaction on slot 0 of the WAL index does that); then, that the write
/// is copied all the same within 5 s.
fn idle_store_holds_the_wal_read_lock(options: &StoreOptions) -> bool {
    use r2d2_sqlite::rusqlite::Connection;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Store::open(&path, options).unwrap();
    write_burst(&store, 1);
    std::thread::sleep(Duration::from_millis(500));

    let other = Connection::open(&path).unwrap();
    // Frames in the WAL, and copied: after a checkpoint of `other`'s own,
    // tried again while the store's thread is checkpointing (-1, -1).
    let state = || -> (i64, i64) {
        loop {
            let state = other
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .unwrap();
            if state.0 >= 0 {
                return state;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // The hold is let go for each checkpoint of the thread's (about every
    // 100 ms when idle), so a try may fall in between: a few tries.
    let held = (0..5).any(|_| {
        other
            .execute("INSERT INTO t (body) VALUES ('x')", [])
            .unwrap();
        let (frames, copied) = state();
        assert!(frames > 0);
        copied < frames
    });

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (frames, copied) = state();
        if copied >= frames {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{copied} of {frames} frames copied after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(store);
    held
}

/// The server's store, with the WAL all copied, holds a read transaction
/// on its checkpoint thread between checkpoints, so that its reads take
/// the WAL read lock without a syscall; the thread lets go to copy new
/// writes at its next turn.
#[test]
fn an_idle_server_store_holds_the_wal_read_lock_and_still_copies_new_writes() {
    let options = StoreOptions {
        hold_idle_read_lock: true,
        ..StoreOptions::default()
    };
    assert!(idle_store_holds_the_wal_read_lock(&options));
}

/// A command's store (`backup`, `prune`, `keys`, `webhooks`) never holds
/// it: running beside the server, it would keep the server's checkpoints
/// from copying anything back.
#[test]
fn a_command_line_store_does_not_hold_the_wal_read_lock() {
    assert!(!idle_store_holds_the_wal_read_lock(&StoreOptions::default()));
}
