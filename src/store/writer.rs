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
//!
//! A second thread copies the WAL back into the database (checkpoints), so
//! that the writer never does: see `checkpoint_until`.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, atomic::Ordering::Relaxed, mpsc},
    thread,
    time::{Duration, Instant},
};

use r2d2_sqlite::rusqlite::{self, Connection};
use tracing::{debug, error, info};

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
    turns: Arc<Turns>,
    /// The checkpoint thread, until `empty_wal` has joined it.
    checkpoints: Arc<Mutex<Option<thread::JoinHandle<rusqlite::Result<bool>>>>>,
}

impl Writer {
    /// Starts the writer on `conn`. `checkpointer` is a second connection to
    /// the same file: it copies the WAL back into the database in a thread
    /// of its own, so that work never stalls the writes queued here.
    pub fn start(
        conn: Connection,
        checkpointer: Connection,
        stats: Arc<StoreStats>,
        hold_idle_read_lock: bool,
    ) -> Result<Self, StoreError> {
        // SQLite's own checkpoint after a commit would run here, on the
        // writer, with every queued write waiting behind it: the checkpoint
        // thread does that work instead.
        //
        // temp_store: each write's savepoint keeps the pages it changes in a
        // sub-journal, which SQLite moves to a temporary file once it passes
        // 64 KiB (one create touches more than that). That file, opened
        // anew for each batch and written page by page, was a quarter of
        // the writer's time. In memory it is truncated at every RELEASE, so
        // it holds one write's pages at most.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {JOURNAL_LIMIT}; \
             PRAGMA temp_store = MEMORY;"
        ))?;
        let turns = Arc::new(Turns::default());
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let spawn_failed = |e: std::io::Error| StoreError::Task(TaskError::Spawn(e));
        let (checkpoint_turns, checkpoint_stats) = (turns.clone(), stats.clone());
        let checkpoints = thread::Builder::new()
            .name("griot-checkpoint".into())
            .spawn(move || {
                let anchor = Anchor::new(&checkpointer, hold_idle_read_lock);
                checkpoint_until(&checkpointer, anchor, &checkpoint_turns, &checkpoint_stats)
            })
            .map_err(spawn_failed)?;
        let writer_turns = turns.clone();
        let counted = stats.clone();
        thread::Builder::new()
            .name("griot-writer".into())
            .spawn(move || {
                // However the writer ends, a panic included, the checkpoint
                // thread stops: it must not wait for a batch that will never
                // commit. Closing the last connection checkpoints what is
                // left.
                let _stop = StopOnDrop(&writer_turns);
                run(&conn, &queue, &counted, &writer_turns);
            })
            .map_err(spawn_failed)?;
        Ok(Self {
            jobs,
            stats,
            turns,
            checkpoints: Arc::new(Mutex::new(Some(checkpoints))),
        })
    }

    /// Stops the checkpoint thread, which copies the whole WAL back into
    /// the database and empties it as it ends: for a clean stop, so the
    /// file holds every acknowledged write by itself. False when a read or
    /// write still running kept part of the WAL (it is replayed at the next
    /// open, as after a crash), or when the thread had already ended.
    /// Blocks until the thread has ended.
    pub fn empty_wal(&self) -> Result<bool, StoreError> {
        self.turns.stop();
        let thread = self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match thread.map(thread::JoinHandle::join) {
            None => Ok(false),
            Some(Ok(emptied)) => Ok(emptied?),
            Some(Err(_)) => Err(StoreError::Task(TaskError::CheckpointPanicked)),
        }
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

/// Bytes the WAL file is cut back to after it starts over: above the size
/// it starts over at (`Policy::restart_frames`), so that a WAL going round
/// under load writes into blocks the file already has. Growing the file
/// again each round allocates blocks (a profile of creates at 1M runs had
/// 23% of its samples in `pwrite`, most of it at the WAL's growing end).
const JOURNAL_LIMIT: u64 = 320 << 20;

/// When the checkpoint thread acts, in WAL frames (one 4 KiB page each).
#[derive(Debug, Clone, Copy)]
struct Policy {
    /// A WAL this long is started over: the writer is held off for the
    /// last copy once the backlog is short. Each hold costs the writes
    /// queued meanwhile 0.05-0.25 s at 1M runs on the benchmark machine,
    /// so holds must be rare enough to stay out of the p99.
    restart_frames: i64,
    /// The backlog short enough to copy with the writer held off.
    finish_backlog: i64,
    /// Past this the writer is held off whatever the backlog, so the WAL
    /// stays bounded when the copying falls behind (unless a reader pins
    /// it: then holding the writer cannot help).
    bound_frames: i64,
    /// The writer is held off only after a checkpoint this quick.
    finish_within: Duration,
}

const POLICY: Policy = Policy {
    // 256 MiB: at 16 connections creating flat out (about 45,000 frames a
    // second at 1M runs) one hold every 1.5 s, so 0.2% of the creates wait
    // for one. At 64 MiB holds came every 0.4 s and the create p99 was
    // 28 ms against 19-23 ms.
    restart_frames: 65536,
    finish_backlog: 512,
    // 512 MiB.
    bound_frames: 131_072,
    finish_within: Duration::from_millis(20),
};

/// How long the checkpoint thread sleeps when the WAL is all copied, or
/// pinned by a reader.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(100);

/// How long the WAL must have been all copied, with no write since, before
/// the checkpoint thread empties its file: a burst leaves it at up to
/// `JOURNAL_LIMIT` on disk, which a quiet server has no use for.
const WAL_QUIET: Duration = Duration::from_secs(5);

/// How long emptying the WAL file waits for readers that still read from
/// it (the writer is held off meanwhile, so not long; it is tried again
/// after the next quiet spell).
const EMPTY_WAIT: Duration = Duration::from_millis(50);

/// How long it sleeps when a little is left to copy: copying a few pages
/// at a time would pay an fsync of the WAL for each few.
const CHECKPOINT_SOON: Duration = Duration::from_millis(10);

/// Where the WAL stands, as `PRAGMA wal_checkpoint` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WalState {
    /// Frames in the WAL.
    frames: i64,
    /// Of those, frames copied into the database.
    copied: i64,
}

/// What the checkpoint thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Copy more at once: the backlog is long.
    Again,
    /// Hold the writer off and copy the rest, so the WAL starts over.
    Finish,
    /// Copy again after `CHECKPOINT_SOON`.
    Soon,
    /// Nothing to copy, or nothing that can be: after `CHECKPOINT_IDLE`.
    Idle,
}

/// Decides from the last two checkpoints (`before`, then `now`, which took
/// `took`) what to do. A checkpoint reports the WAL as it was when it
/// began: if the writer went on meanwhile, more is already waiting.
fn plan(policy: &Policy, before: WalState, now: WalState, took: Duration) -> Next {
    let backlog = now.frames - now.copied;
    let wrote = now.frames != before.frames;
    // All copied and nothing new: the next commit starts the WAL over by
    // itself.
    if backlog <= 0 && !wrote {
        return Next::Idle;
    }
    // No progress: a read transaction holds a snapshot older than the
    // frames left (a long read, a backup), and nothing past it can be
    // copied until it ends; holding the writer would only stop writes.
    if backlog > 0 && now.copied == before.copied && now.frames >= before.frames {
        return Next::Idle;
    }
    if now.frames >= policy.bound_frames {
        return Next::Finish;
    }
    if now.frames >= policy.restart_frames {
        // A quick checkpoint that left little means little has been
        // written since it began, so the hold copies little. It still
        // costs far more than the checkpoint before it (75-250 ms against
        // 6-10 ms at 1M runs): SQLite syncs the database file only after a
        // copy that reaches the WAL's end, so the hold flushes every page
        // copied since the WAL last started over.
        if backlog <= policy.finish_backlog && took <= policy.finish_within {
            Next::Finish
        } else {
            Next::Again
        }
    } else if backlog > policy.finish_backlog {
        Next::Again
    } else {
        Next::Soon
    }
}

/// A PASSIVE checkpoint: copies what no reader still needs from the WAL,
/// without waiting for the writer or readers; `None` when another
/// checkpoint runs (a second process).
fn checkpoint(conn: &Connection) -> rusqlite::Result<Option<WalState>> {
    let (busy, frames, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((busy == 0).then_some(WalState { frames, copied }))
}

/// Copies the WAL back into the database while writes go on, so that
/// neither the writer nor a write waiting for it ever does that work.
///
/// SQLite starts the WAL over (writes from its beginning again) only at a
/// commit that finds every frame copied, and while the writer appends a
/// copy never catches up: left alone the WAL grew to 7 GB in 60 s. So when
/// little is left, the writer is held off between two batches while the
/// rest is copied (`Next::Finish`), rarely (see `POLICY`). The writer
/// checkpointing itself past a WAL size instead (SQLite's autocheckpoint,
/// as before) put that copy, and a sort of every frame in the WAL on each
/// commit past the size even when nothing could be copied, in front of
/// the queued writes: create p99 76-113 ms at 1M runs, against 19-23 ms
/// (BENCHMARKS.md, "Write tails").
///
/// A failure that lasts (a read-only file) is logged with backoff, not
/// at every attempt.
fn checkpoint_until(
    conn: &Connection,
    anchor: Anchor<'_>,
    turns: &Turns,
    stats: &StoreStats,
) -> rusqlite::Result<bool> {
    let mut log = LogBackoff::default();
    let mut before = WalState::default();
    let mut quiet_since = None;
    loop {
        anchor.release();
        let began = Instant::now();
        let result = checkpoint(conn);
        let all_copied = matches!(result, Ok(Some(now)) if now.copied >= now.frames);
        let took = began.elapsed();
        let next = match result {
            Ok(Some(now)) => {
                if let Some(failures) = log.recovered() {
                    info!(failures, "WAL checkpoints work again");
                }
                let settled = now.frames > 0 && now.copied >= now.frames && now == before;
                quiet_since = settled.then(|| quiet_since.unwrap_or(began));
                if quiet_since.is_some_and(|since| since.elapsed() >= WAL_QUIET) {
                    if let Err(e) = held(turns, stats, || truncate_wal(conn, EMPTY_WAIT)) {
                        debug!(error = %e, "the quiet WAL could not be emptied; trying later");
                    }
                    quiet_since = None;
                }
                let next = plan(&POLICY, before, now, took);
                before = now;
                if next == Next::Finish
                    && let Ok(Some(after)) = held(turns, stats, || checkpoint(conn))
                {
                    before = after;
                }
                next
            }
            Ok(None) => Next::Idle,
            Err(e) => {
                if let Some(left_out) = log.should_log(Instant::now()) {
                    error!(
                        error = %e,
                        left_out,
                        "WAL checkpoint failed; retrying (repeats are logged less often)"
                    );
                }
                Next::Idle
            }
        };
        let pause = match next {
            Next::Again => Duration::ZERO,
            Next::Finish | Next::Soon => CHECKPOINT_SOON,
            Next::Idle => CHECKPOINT_IDLE,
        };
        if next == Next::Idle && all_copied {
            anchor.hold();
        }
        if turns.sleep(pause) {
            // The writer has ended, or the server is stopping: one last copy
            // of everything, which also empties the WAL.
            anchor.release();
            return truncate_wal(conn, super::BUSY_TIMEOUT);
        }
    }
}

/// A read transaction the checkpoint thread holds while it sleeps with the
/// WAL all copied, so that reads meanwhile take their WAL read lock
/// without a syscall.
///
/// A read takes a shared lock on one of the WAL index's read slots as it
/// starts and drops it as it ends; SQLite makes that an `fcntl` on the
/// `-shm` file only when no other connection of the process holds the same
/// slot. With the WAL all copied every read takes slot 0, so one
/// connection that holds it turns two syscalls per read (a get run's, a
/// key lookup's) into a counter under a mutex (BENCHMARKS.md, "The WAL
/// read lock, held once for the process"). Slot 0 keeps no frame from
/// being written, only from being copied back: it is let go before every
/// checkpoint, and held only when there was nothing to copy. (Should a
/// commit land between that checkpoint and the hold, the hold is on that
/// commit's slot instead and keeps later frames from being copied for one
/// idle pause, 100 ms.)
struct Anchor<'a> {
    conn: &'a Connection,
    /// Off in command-line stores (`StoreOptions::hold_idle_read_lock`).
    enabled: bool,
}

impl<'a> Anchor<'a> {
    fn new(conn: &'a Connection, enabled: bool) -> Self {
        Self { conn, enabled }
    }

    fn hold(&self) {
        if !self.enabled || !self.conn.is_autocommit() {
            return;
        }
        // BEGIN alone takes no lock: the first read does.
        let began = self.conn.execute_batch("BEGIN").and_then(|()| {
            self.conn
                .query_row("SELECT 1 FROM sqlite_schema LIMIT 1", [], |_| Ok(()))
        });
        if let Err(e) = began {
            debug!(error = %e, "no read transaction to hold the WAL read lock with");
            self.release();
        }
    }

    fn release(&self) {
        if self.conn.is_autocommit() {
            return;
        }
        let ended = self
            .conn
            .execute_batch("COMMIT")
            .or_else(|_| self.conn.execute_batch("ROLLBACK"));
        if let Err(e) = ended {
            error!(error = %e, "the checkpoint thread's read transaction could not be ended");
        }
    }
}

/// Runs `f` with the writer held off between two batches, the wait for the
/// hold and `f` counted as one hold in the metrics.
fn held<T>(turns: &Turns, stats: &StoreStats, f: impl FnOnce() -> T) -> T {
    let asked = Instant::now();
    let hold = turns.hold();
    let done = f();
    drop(hold);
    stats.record_checkpoint_hold(asked.elapsed());
    done
}

/// Copies all of the WAL into the database and cuts its file to nothing,
/// waiting up to `wait` for readers still reading from it; false when
/// they did not finish in time (or another process was checkpointing).
fn truncate_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<bool> {
    conn.busy_timeout(wait)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    Ok(busy? == 0)
}

/// Whose turn it is between the writer and the checkpoint thread.
#[derive(Default)]
struct Turns {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    /// A batch's transaction is open.
    writing: bool,
    /// The checkpoint thread holds the writer off.
    held: bool,
    /// The writer has ended.
    stopped: bool,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer, before a batch: waits out a hold.
    fn begin_write(&self) {
        let state = self.lock();
        let mut state = self
            .changed
            .wait_while(state, |s| s.held)
            .unwrap_or_else(PoisonError::into_inner);
        state.writing = true;
    }

    fn end_write(&self) {
        self.lock().writing = false;
        self.changed.notify_all();
    }

    /// Holds the writer off once its open batch (if any) has committed,
    /// until the returned guard drops.
    fn hold(&self) -> Hold<'_> {
        let mut state = self.lock();
        state.held = true;
        drop(
            self.changed
                .wait_while(state, |s| s.writing && !s.stopped)
                .unwrap_or_else(PoisonError::into_inner),
        );
        Hold(self)
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Sleeps up to `pause`; true once the writer has ended.
    fn sleep(&self, pause: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, pause, |s| !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        state.stopped
    }
}

/// Tells the checkpoint thread the writer has ended, when dropped.
struct StopOnDrop<'a>(&'a Turns);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct Hold<'a>(&'a Turns);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.lock().held = false;
        self.0.changed.notify_all();
    }
}

fn stopped() -> StoreError {
    StoreError::Task(TaskError::WriterStopped)
}

fn run(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Job>>, stats: &StoreStats, turns: &Turns) {
    while let Ok(first) = queue.recv() {
        turns.begin_write();
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
        turns.end_write();
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

    const TEST_POLICY: Policy = Policy {
        restart_frames: 1000,
        finish_backlog: 10,
        bound_frames: 5000,
        finish_within: Duration::from_millis(20),
    };

    fn wal(frames: i64, copied: i64) -> WalState {
        WalState { frames, copied }
    }

    fn plan_after(before: WalState, now: WalState, took_ms: u64) -> Next {
        plan(&TEST_POLICY, before, now, Duration::from_millis(took_ms))
    }

    #[test]
    fn a_copied_wal_nobody_writes_to_is_left_alone() {
        assert_eq!(plan_after(wal(2000, 2000), wal(2000, 2000), 1), Next::Idle);
        assert_eq!(plan_after(wal(0, 0), wal(0, 0), 0), Next::Idle);
    }

    #[test]
    fn a_wal_pinned_by_a_reader_never_holds_the_writer() {
        // Nothing copied since the last time although frames are waiting,
        // even past the bound: only the reader's end can help.
        assert_eq!(plan_after(wal(4000, 100), wal(4100, 100), 1), Next::Idle);
        assert_eq!(plan_after(wal(9000, 0), wal(9500, 0), 1), Next::Idle);
    }

    #[test]
    fn a_long_wal_is_finished_only_after_a_quick_checkpoint_that_caught_up() {
        assert_eq!(plan_after(wal(900, 900), wal(1200, 1195), 5), Next::Finish);
        // Caught up, but the checkpoint took long: as much again was
        // written meanwhile, so copy once more before holding the writer.
        assert_eq!(plan_after(wal(900, 900), wal(1200, 1200), 50), Next::Again);
        assert_eq!(plan_after(wal(900, 900), wal(1200, 1100), 5), Next::Again);
        // The writer went on while it copied: still worth the finish.
        assert_eq!(
            plan_after(wal(1100, 1100), wal(1200, 1200), 5),
            Next::Finish
        );
    }

    #[test]
    fn a_short_wal_is_copied_as_it_grows() {
        assert_eq!(plan_after(wal(100, 100), wal(300, 300), 1), Next::Soon);
        assert_eq!(plan_after(wal(100, 100), wal(300, 250), 1), Next::Again);
        // Started over since the last checkpoint.
        assert_eq!(plan_after(wal(1200, 1200), wal(40, 40), 1), Next::Soon);
    }

    #[test]
    fn past_the_bound_the_writer_is_held_whatever_the_backlog() {
        assert_eq!(
            plan_after(wal(4000, 3000), wal(6000, 4000), 500),
            Next::Finish
        );
    }

    #[test]
    fn a_hold_waits_for_the_open_batch_and_holds_the_next() {
        let turns = Arc::new(Turns::default());
        turns.begin_write();
        let holder = {
            let turns = turns.clone();
            thread::spawn(move || {
                let hold = turns.hold();
                // The batch has ended; the writer cannot start another.
                assert!(!turns.lock().writing);
                thread::sleep(Duration::from_millis(50));
                drop(hold);
            })
        };
        while !turns.lock().held {
            thread::yield_now();
        }
        turns.end_write();
        let asked = Instant::now();
        turns.begin_write();
        assert!(
            asked.elapsed() >= Duration::from_millis(20),
            "the writer waited"
        );
        turns.end_write();
        holder.join().unwrap();
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
