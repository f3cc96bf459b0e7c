//! The one writer: a thread that owns the write connection and commits
//! concurrent writes together (group commit).
//!
//! SQLite allows one writer at a time. Writes queue here, and the thread
//! takes every write that is waiting (up to `MAX_BATCH`) into one
//! transaction, each in a savepoint of its own: a write that fails is undone
//! alone, the others commit together, and every caller is answered only
//! after the commit that holds its write, so an acknowledged write is on
//! disk. One commit for many writes is what makes this faster than a commit
//! per write: the pages a batch touches are written to the WAL once.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, atomic::Ordering::Relaxed, mpsc},
    thread,
    time::Instant,
};

use r2d2_sqlite::rusqlite::{self, Connection};
use tracing::{error, info};

use super::{StoreError, TaskError, health::LogBackoff, stats::StoreStats};

/// The most writes committed together.
const MAX_BATCH: usize = 64;

/// A queued write: run inside the open transaction, then told how the
/// transaction ended.
trait Job: Send {
    /// Runs the write; true when it succeeded and should be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's transaction has ended.
    fn finish(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>);
}

/// A write whose closure fails with `E`: a store error, or a caller's own
/// error type (a use case refusing a change by its rules) that can hold one.
struct TypedJob<T, E, F> {
    write: Option<F>,
    result: Option<Result<T, E>>,
    reply: Box<dyn FnOnce(Result<T, E>) + Send>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnOnce(&Connection) -> Result<T, E> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        // A panicking write must not take the writer (and every later write)
        // down with it.
        let result = catch_unwind(AssertUnwindSafe(|| write(conn)))
            .unwrap_or_else(|_| Err(StoreError::Task(TaskError::WritePanicked).into()));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>) {
        let outcome = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(StoreError::Task(TaskError::Commit(e)).into()),
            (None, Ok(())) => Err(StoreError::Task(TaskError::NotRun).into()),
        };
        (self.reply)(outcome);
    }
}

/// A handle on the writer thread; clones share it. The thread ends, closing
/// its connection, when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    stats: Arc<StoreStats>,
}

impl Writer {
    /// Starts the writer on `conn`. `checkpointer` is a second connection to
    /// the same file: it copies the WAL back into the database in a thread
    /// of its own, so that work never stalls the writes queued here.
    pub fn start(
        conn: Connection,
        checkpointer: Connection,
        stats: Arc<StoreStats>,
    ) -> Result<Self, StoreError> {
        // The checkpointer thread copies most of the WAL back while writes
        // go on, but it can never finish while the writer keeps appending,
        // and the WAL only starts over after a finished checkpoint: left
        // alone it grew to 7 GB in 60 s of load. So the writer still
        // checkpoints itself past RESTART_PAGES; by then most pages are
        // already copied and the inline part is short. The WAL file is
        // truncated back to JOURNAL_LIMIT when it starts over.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {RESTART_PAGES}; \
             PRAGMA journal_size_limit = {JOURNAL_LIMIT};"
        ))?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let (done, finished) = mpsc::channel::<()>();
        let spawn_failed = |e: std::io::Error| StoreError::Task(TaskError::Spawn(e));
        thread::Builder::new()
            .name("griot-checkpoint".into())
            .spawn(move || checkpoint_until(&checkpointer, &finished))
            .map_err(spawn_failed)?;
        let counted = stats.clone();
        thread::Builder::new()
            .name("griot-writer".into())
            .spawn(move || {
                run(&conn, &queue, &counted);
                // The writer is gone: stop checkpointing; closing the last
                // connection checkpoints what is left.
                drop(done);
            })
            .map_err(spawn_failed)?;
        Ok(Self { jobs, stats })
    }

    fn submit<T, E, F>(&self, write: F, reply: impl FnOnce(Result<T, E>) + Send + 'static)
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let job = Box::new(TypedJob {
            write: Some(write),
            result: None,
            reply: Box::new(reply),
        });
        // If the thread is gone the job is dropped with its reply channel,
        // and the caller sees that as "the writer stopped".
        self.stats.queued.fetch_add(1, Relaxed);
        if self.jobs.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Relaxed);
        }
    }

    /// Runs `write` in the next batch and waits, without blocking a thread,
    /// for the commit that holds it.
    pub async fn write<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(write, move |r| {
            let _ = tx.send(r);
        });
        rx.await.map_err(|_| E::from(stopped()))?
    }

    /// The same for callers outside the async runtime (the CLI).
    pub fn write_blocking<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.submit(write, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().map_err(|_| E::from(stopped()))?
    }
}

/// WAL pages after which the writer checkpoints inline (32 MiB of 4 KiB
/// pages).
const RESTART_PAGES: u32 = 8000;

/// Bytes the WAL file is cut back to after it starts over.
const JOURNAL_LIMIT: u64 = 64 << 20;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// PASSIVE checkpoints never wait for the writer or readers; what they
/// cannot copy now is copied next time.
/// A failure that lasts (a read-only file) is logged with backoff, not
/// ten times a second.
fn checkpoint_until(conn: &Connection, finished: &mpsc::Receiver<()>) {
    let mut log = LogBackoff::default();
    while let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(CHECKPOINT_EVERY) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {
                if let Some(failures) = log.recovered() {
                    info!(failures, "WAL checkpoints work again");
                }
            }
            Err(e) => {
                if let Some(left_out) = log.should_log(std::time::Instant::now()) {
                    error!(
                        error = %e,
                        left_out,
                        "WAL checkpoint failed; retrying (repeats are logged less often)"
                    );
                }
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Task(TaskError::WriterStopped)
}

fn run(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Job>>, stats: &StoreStats) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        stats.queued.fetch_sub(size as i64, Relaxed);
        let began = Instant::now();
        let committed = commit_batch(conn, batch);
        stats.record_batch(size, began.elapsed(), committed);
    }
}

/// Runs and commits one batch; false when its transaction failed.
fn commit_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>) -> bool {
    let fail_all = |batch: Vec<Box<dyn Job>>, e: rusqlite::Error| {
        error!(error = %e, "a write transaction failed");
        let e = Arc::new(e);
        for job in batch {
            job.finish(Err(e.clone()));
        }
        false
    };
    // IMMEDIATE takes the write lock up front, so a read-then-write job
    // cannot fail halfway on a lock upgrade.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return fail_all(batch, e);
    }
    for job in &mut batch {
        let step = conn.execute_batch("SAVEPOINT job").and_then(|()| {
            if job.run(conn) {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        });
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return fail_all(batch, e);
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(Arc::new);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let committed = commit.is_ok();
    for job in batch {
        job.finish(commit.clone());
    }
    committed
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::super::{Store, StoreOptions};
    use super::*;

    #[test]
    fn a_failing_write_is_undone_alone_and_the_rest_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db"), &StoreOptions::default()).unwrap();
        store
            .write_blocking(|c| Ok::<_, StoreError>(c.execute_batch("CREATE TABLE t (n INTEGER)")?))
            .unwrap();
        // Many threads write at once, so writes share batches.
        let barrier = Arc::new(Barrier::new(32));
        let threads: Vec<_> = (0..32)
            .map(|n: i64| {
                let (store, barrier) = (store.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    store.write_blocking(move |c| {
                        c.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        if n % 2 == 1 {
                            return Err(StoreError::Corrupt(format!("odd {n}")));
                        }
                        Ok(n)
                    })
                })
            })
            .collect();
        for (n, t) in threads.into_iter().enumerate() {
            let result = t.join().unwrap();
            assert_eq!(result.is_ok(), n % 2 == 0, "write {n}: {result:?}");
        }
        let kept: Vec<i64> = store
            .read_blocking(|c| {
                let mut stmt = c.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok::<_, StoreError>(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert_eq!(kept, (0..32).step_by(2).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db"), &StoreOptions::default()).unwrap();
        let err = store
            .write_blocking(|_| -> Result<(), StoreError> { panic!("boom") })
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        store.write_blocking(|_| Ok::<_, StoreError>(())).unwrap();
    }
}
