//! SQLite storage: the connection pools, the schema migrations, and one
//! module per table. All SQL lives below this folder, always parameterised.

pub mod events;
pub mod health;
pub mod idempotency;
mod interrupt;
pub mod keys;
pub mod lock;
mod mapped;
pub mod query;
pub mod retention;
pub mod runs;
pub(crate) mod sql;
pub mod stats;
mod threads;
pub mod validations;
pub mod webhooks;
mod writer;

use std::{
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use r2d2::Pool;
use r2d2_sqlite::rusqlite::{self, ErrorCode, OpenFlags, TransactionBehavior};
use tracing::info;

/// The connection a use case's transaction runs on.
pub use r2d2_sqlite::rusqlite::Connection;

/// The schema, embedded so the binary carries its own migrations.
const SCHEMA: &str = include_str!("../../schema.sql");

/// Page cache per connection, in KiB. Hot index pages stay in memory
/// instead of being read again with a syscall (or from the mapping).
const CACHE_KIB: u32 = 8 * 1024;

/// How long a connection waits on a lock held by another process (the CLI
/// creating a key while the server runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for reads run inline (`Store::read_key`): one per async
/// worker on a small machine; a worker that finds both taken uses the pool.
const INLINE_CONNECTIONS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),

    #[error("stored data could not be read: {0}")]
    Corrupt(String),

    /// The file could not be opened, migrated or copied as asked.
    #[error(transparent)]
    Setup(#[from] SetupError),

    /// The thread that ran the work failed; its Display says how.
    #[error("database task failed: {0}")]
    Task(TaskError),

    /// A read ran past the query deadline and was interrupted.
    #[error("the query ran past its deadline of {} ms and was stopped", .0.as_millis())]
    Deadline(Duration),
}

/// Why the database file could not be opened, migrated, locked or copied
/// (or, for readiness, why its disk cannot take writes). Each message
/// names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the database {} does not exist", path.display())]
    DatabaseMissing { path: PathBuf },

    #[error(
        "cannot create the database {}: the folder {} does not exist",
        db.display(),
        folder.display()
    )]
    MissingFolder { db: PathBuf, folder: PathBuf },

    #[error("cannot create the database {}: {error}", path.display())]
    CreateDatabase {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("could not switch {} to WAL journal mode (got '{mode}')", path.display())]
    WalUnavailable { path: PathBuf, mode: String },

    #[error(
        "the database was written by a newer griot-registry (schema version {found}; this \
         binary knows up to {known}); upgrade the binary instead"
    )]
    NewerSchema { found: i64, known: i64 },

    #[error("schema.sql is malformed: migration {found} found where {expected} was expected")]
    MalformedSchema { found: i64, expected: i64 },

    #[error(
        "{} already exists; choose a new path so no file is overwritten",
        path.display()
    )]
    BackupExists { path: PathBuf },

    #[error("cannot create {}: {error}", path.display())]
    CreateBackup {
        path: PathBuf,
        error: std::io::Error,
    },

    /// `serve`'s lock file (see `lock`) could not be opened, locked or
    /// written; `action` says which.
    #[error("cannot {action} the lock file {}: {error}", path.display())]
    LockFile {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "cannot serve {}: the folder {} does not exist",
        db.display(),
        folder.display()
    )]
    LockFolderMissing { db: PathBuf, folder: PathBuf },

    #[error(
        "another griot-registry server{} already serves {}; only one server may use a \
         database file at a time (it holds the lock on {})",
        pid.map_or_else(String::new, |pid| format!(" (pid {pid})")),
        db.display(),
        lock.display()
    )]
    AlreadyServed {
        db: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },

    #[error("only {free} bytes are free on the disk that holds the database: the disk is full")]
    DiskFull { free: u64 },
}

/// How the thread that ran a read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("a database read panicked")]
    ReadPanicked,

    #[error("a database write panicked")]
    WritePanicked,

    /// Shared by every write of the batch the commit held.
    #[error("the commit failed: {0}")]
    Commit(std::sync::Arc<rusqlite::Error>),

    #[error("the write was not run")]
    NotRun,

    #[error("cannot start a database thread: {0}")]
    Spawn(std::io::Error),

    #[error("the database writer stopped")]
    WriterStopped,

    #[error("the WAL checkpoint thread panicked")]
    CheckpointPanicked,
}

/// True when SQLite could not take the lock it needed.
fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// True when `err` is a broken UNIQUE constraint.
pub fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation
            && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// synchronous=NORMAL with WAL: a commit survives a crash of the process;
    /// the last commits before a power loss or OS crash may be lost.
    #[default]
    Normal,
    /// synchronous=FULL: every commit is fsynced, and survives a power loss.
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Reader connections, and the threads reads run on (`threads`).
    pub read_connections: u32,
    /// How long a read waits for a free reader connection before it fails
    /// with `StoreError::Pool` (which the API answers with 503).
    pub pool_timeout: Duration,
    /// How long a read (`Store::read`) may run before SQLite interrupts it
    /// and it fails with `StoreError::Deadline`.
    pub query_timeout: Duration,
    /// How much of the file the readers read through their shared mapping
    /// (`mapped`, set as SQLite's `mmap_size`); 0 reads every page with a
    /// syscall.
    pub mmap_bytes: u64,
    /// Whether the checkpoint thread holds a read transaction while the
    /// WAL is all copied, so that this process's reads take the WAL read
    /// lock without a syscall (`writer::Anchor`). For the server only: held
    /// by a command that runs beside it, it would keep the server's
    /// checkpoints from copying anything back for as long as it runs.
    pub hold_idle_read_lock: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            read_connections: 8,
            pool_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_secs(5),
            mmap_bytes: 16 << 30,
            hold_idle_read_lock: false,
        }
    }
}

/// The database: a pool of readers and a single writer thread. SQLite
/// allows one writer at a time, so writes queue for the writer (which
/// commits them in groups, see `writer`) instead of fighting over the file
/// lock and timing out under load.
#[derive(Clone)]
pub struct Store {
    readers: Pool<Readers>,
    read_threads: std::sync::Arc<threads::ReadThreads>,
    /// Connections for `read_key`'s reads, run on the calling thread.
    inline: std::sync::Arc<[std::sync::Mutex<Connection>]>,
    writer: writer::Writer,
    probe: std::sync::Arc<health::ProbeCache>,
    stats: std::sync::Arc<stats::StoreStats>,
    /// The database file, whose `-wal` companion's size is reported.
    path: std::sync::Arc<std::path::Path>,
    query_timeout: Duration,
}

/// Opens the reader connections, through the shared-mapping VFS.
struct Readers {
    path: PathBuf,
    init: Box<ConnectionInit>,
}

type ConnectionInit = dyn Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync;

impl r2d2::ManageConnection for Readers {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> rusqlite::Result<Connection> {
        let mut conn = if mapped::register() {
            Connection::open_with_flags_and_vfs(&self.path, OpenFlags::default(), mapped::VFS_NAME)?
        } else {
            Connection::open(&self.path)?
        };
        (self.init)(&mut conn)?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        create_private(path)?;
        Self::open_file(path, options)
    }

    /// Opens the database at `path` like `open`, but refuses to create it:
    /// for commands where a mistyped path must not quietly become a new,
    /// empty database.
    pub fn open_existing(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(SetupError::DatabaseMissing {
                path: path.to_owned(),
            }
            .into());
        }
        Self::open_file(path, options)
    }

    fn open_file(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            return Err(SetupError::MissingFolder {
                db: path.to_owned(),
                folder: parent.to_owned(),
            }
            .into());
        }
        let sync = options.durability.pragma();
        let init = move |c: &mut Connection| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            stable_plans(c)?;
            c.execute_batch(&format!(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; \
                 PRAGMA cache_size = -{CACHE_KIB};"
            ))
        };

        let mut conn = Connection::open(path)?;
        init(&mut conn)?;
        // WAL lets readers run beside the writer; it is a property of the
        // file, so setting it once here covers every connection.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SetupError::WalUnavailable {
                path: path.to_owned(),
                mode,
            }
            .into());
        }
        migrate(&mut conn)?;
        let mut checkpointer = Connection::open(path)?;
        init(&mut checkpointer)?;
        let stats = std::sync::Arc::new(stats::StoreStats::default());
        let writer = writer::Writer::start(
            conn,
            checkpointer,
            stats.clone(),
            options.hold_idle_read_lock,
        )?;

        // Only readers map the file, through one mapping they share
        // (`mapped`); without that VFS, each would map it on its own and
        // RSS would count the file once per reader, so they map nothing.
        let mmap = if mapped::register() {
            options.mmap_bytes
        } else {
            0
        };
        let manager = Readers {
            path: path.to_owned(),
            init: Box::new(move |c| {
                init(c)?;
                c.execute_batch(&format!("PRAGMA mmap_size = {mmap}"))
            }),
        };
        // Set up as the readers are, through the same mapping: a get run
        // reads a random run's pages here.
        let inline = (0..INLINE_CONNECTIONS)
            .map(|_| {
                let conn = r2d2::ManageConnection::connect(&manager)?;
                // No busy handler (the readers wait up to 5 s): it would
                // sleep on an async worker. A busy file sends the read to
                // the read threads instead.
                conn.busy_timeout(Duration::ZERO)?;
                conn.execute_batch("PRAGMA query_only = ON")?;
                Ok(std::sync::Mutex::new(conn))
            })
            .collect::<Result<_, StoreError>>()?;
        let readers = Pool::builder()
            .max_size(options.read_connections.max(1))
            // r2d2 would run an empty statement on every checkout to see
            // the connection still works; a connection to a local file does
            // not go stale, and the check cost a tenth of a get_run.
            .test_on_check_out(false)
            .min_idle(Some(1))
            .connection_timeout(options.pool_timeout)
            .build(manager)?;
        Ok(Self {
            readers,
            read_threads: std::sync::Arc::new(threads::ReadThreads::start(
                options.read_connections,
            )?),
            inline,
            writer,
            probe: std::sync::Arc::new(health::ProbeCache::new(path)),
            stats,
            path: path.into(),
            query_timeout: options.query_timeout,
        })
    }

    /// The store's own counters (writer, reader pool, retention).
    pub fn stats(&self) -> &stats::StoreStats {
        &self.stats
    }

    /// Reader connections (open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.readers.state();
        (state.connections, state.idle_connections)
    }

    /// The size of the write-ahead log file in bytes (0 when there is
    /// none), read with one `stat`.
    pub fn wal_bytes(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }

    /// Runs `f` on a reader connection, on the read threads. `f` fails
    /// with a store error or with the caller's own error type.
    ///
    /// No work for the departed: if the returned future is dropped (the
    /// client went away) or the read (its wait in the queue and for a
    /// connection included) runs past the query deadline, SQLite interrupts
    /// its statement, so the connection goes back to the pool at once; past
    /// the deadline the read fails with `StoreError::Deadline`.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        let cancel = interrupt::Cancel::default();
        let on_drop = cancel.on_drop();
        let cancel_side = cancel.clone();
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        self.read_threads.run(move || {
            let read = store.reader().map_err(E::from).and_then(|conn| {
                // Ended however `f` ends, a panic included, and once no
                // interrupt can reach it any more (`_armed` drops first).
                let _snapshot = EndSnapshot(&conn);
                let _armed = cancel.arm(&conn)?;
                begin_snapshot(&conn).map_err(E::from)?;
                f(&conn)
            });
            let _ = answer.send(read);
        });
        let joined = match tokio::time::timeout(self.query_timeout, &mut answered).await {
            Ok(joined) => joined,
            Err(_) => {
                // A read that has its connection is waited for, so the
                // connection is back in the pool before the answer goes
                // out; one still waiting for a connection will not run.
                if cancel_side.stop().await {
                    let _ = answered.await;
                }
                on_drop.disarm();
                return Err(StoreError::Deadline(self.query_timeout).into());
            }
        };
        on_drop.disarm();
        joined.map_err(|_| E::from(StoreError::Task(TaskError::ReadPanicked)))?
    }

    /// Runs `f`, a read of a few rows found by a unique key, right on the
    /// calling thread when one of the inline connections is free, and like
    /// [`Store::read`] otherwise.
    ///
    /// Every write authenticates its key this way: handing the lookup to
    /// the read threads and back cost more than the lookup itself (two
    /// thread wake-ups; creates 1.15x without them, BENCHMARKS.md). Only
    /// for reads whose size is bounded by the schema: an inline read has no
    /// deadline, and the async worker it runs on serves nothing else
    /// meanwhile.
    pub async fn read_key<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match self.try_inline(&f) {
            Some(read) => read,
            None => self.read(f).await,
        }
    }

    /// Runs `inline` right on the calling thread, as [`Store::read_key`]
    /// does, for a read whose size only the data can tell: `inline` reads a
    /// bounded amount and answers `None` when that was not all, and then
    /// `whole` runs like [`Store::read`], with its deadline.
    ///
    /// A get run goes this way: one row and a run's few validations
    /// (BENCHMARKS.md, "Reads on threads of their own"). `inline` runs
    /// outside any transaction (see `try_inline`); `whole` in one.
    pub async fn read_bounded<T, E, I, F>(&self, inline: I, whole: F) -> Result<T, E>
    where
        I: Fn(&Connection) -> Result<Option<T>, StoreError>,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match self.try_inline(&inline) {
            Some(Ok(Some(read))) => Ok(read),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(None)) | None => self.read(whole).await,
        }
    }

    /// `f` on a free inline connection; `None` when both are taken or the
    /// file is busy (the caller then reads on the read threads, which wait
    /// for it).
    ///
    /// No BEGIN here: `f` runs outside any transaction, so one statement is
    /// one snapshot, and a read of several keeps its first statement on its
    /// row while it runs the others (`runs::with_record`). A BEGIN and a
    /// COMMIT around a one-statement read were two more statements for
    /// nothing (BENCHMARKS.md, "Get run in one statement, and fewer
    /// temporary B-trees").
    fn try_inline<T>(
        &self,
        f: &impl Fn(&Connection) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        for slot in self.inline.iter() {
            let conn = match slot.try_lock() {
                Ok(conn) => conn,
                // A read that panicked still ended its transaction (below).
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            let read = {
                // Should `f` open a transaction, it is ended however `f`
                // ends: one left open would keep every later checkpoint
                // from finishing.
                let _snapshot = EndSnapshot(&conn);
                f(&conn)
            };
            match read {
                Err(StoreError::Sqlite(e)) if is_busy(&e) => return None,
                read => return Some(read),
            }
        }
        None
    }

    /// Empties the WAL into the database file for a clean stop: see
    /// [`writer::Writer::empty_wal`].
    pub fn checkpoint_for_stop(&self) -> Result<bool, StoreError> {
        self.writer.empty_wal()
    }

    /// The reader connections idle in the pool (for tests and health).
    pub fn idle_readers(&self) -> u32 {
        self.readers.state().idle_connections
    }

    /// Runs `f` in a write transaction and answers once it has committed.
    /// If `f` fails, nothing it wrote is kept.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(f).await
    }

    /// For callers that are already off the async executor (the CLI).
    pub fn read_blocking<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.reader()?;
        f(&conn)
    }

    /// A reader connection from the pool, its wait recorded for /metrics.
    fn reader(&self) -> Result<r2d2::PooledConnection<Readers>, StoreError> {
        let asked = std::time::Instant::now();
        let conn = self.readers.get();
        self.stats.record_pool_wait(asked.elapsed(), conn.is_ok());
        Ok(conn?)
    }

    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write_blocking(f)
    }

    /// Writes a consistent copy of the live database to `dest` with SQLite's
    /// online backup API. The copy is taken in one step under a read
    /// transaction, so it is one moment's snapshot; in WAL mode writers go
    /// on meanwhile.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        // Created here, owner-only and never over an existing file; SQLite
        // takes an empty file as a new database.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SetupError::BackupExists {
                    path: dest.to_owned(),
                }
                .into());
            }
            Err(error) => {
                return Err(SetupError::CreateBackup {
                    path: dest.to_owned(),
                    error,
                }
                .into());
            }
        }
        let conn = self.readers.get()?;
        let mut target = Connection::open(dest)?;
        {
            let backup = rusqlite::backup::Backup::new(&conn, &mut target)?;
            // -1 copies every page in one step: one consistent snapshot.
            backup.step(-1)?;
        }
        // The copy is a plain rollback-journal file: a single file to move.
        let mode: String = target.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
        let ok: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" || !mode.eq_ignore_ascii_case("delete") {
            return Err(StoreError::Corrupt(format!(
                "the backup at {} failed its integrity check: {ok}",
                dest.display()
            )));
        }
        Ok(())
    }

    /// A cheap query that proves the file is readable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

/// Creates the database file, if it is missing, readable by its owner
/// only: runs and keys' metadata are nobody else's business. SQLite gives
/// the WAL and shared-memory files the database file's mode, so they
/// follow. An existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    if path
        .parent()
        .is_some_and(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        // Store::open_file names the missing folder.
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(SetupError::CreateDatabase {
            path: path.to_owned(),
            error,
        }
        .into()),
    }
}

/// One numbered section of schema.sql.
struct Migration<'a> {
    version: i64,
    sql: &'a str,
}

/// Splits schema.sql into its sections: a section starts at a line that is
/// exactly `-- migration: N` and runs to the next such line.
fn migrations() -> Vec<Migration<'static>> {
    const MARK: &str = "-- migration: ";
    let mut out: Vec<Migration<'static>> = Vec::new();
    let mut offset = 0;
    let mut current: Option<(i64, usize)> = None;
    for line in SCHEMA.split_inclusive('\n') {
        let version = line
            .strip_prefix(MARK)
            .and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(version) = version {
            if let Some((v, start)) = current.take() {
                out.push(Migration {
                    version: v,
                    sql: &SCHEMA[start..offset],
                });
            }
            current = Some((version, offset + line.len()));
        }
        offset += line.len();
    }
    if let Some((v, start)) = current {
        out.push(Migration {
            version: v,
            sql: &SCHEMA[start..],
        });
    }
    out
}

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    migrations().last().map_or(0, |m| m.version)
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = latest_version();
    if current > latest {
        return Err(SetupError::NewerSchema {
            found: current,
            known: latest,
        }
        .into());
    }
    for (expected, m) in (1..).zip(migrations()) {
        if m.version != expected {
            return Err(SetupError::MalformedSchema {
                found: m.version,
                expected,
            }
            .into());
        }
        if m.version <= current {
            continue;
        }
        // Said before, as a migration that rewrites rows takes a while on a
        // large file (migration 7: about 11 s at a million runs).
        info!(version = m.version, "applying database migration");
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(m.sql)?;
        // PRAGMA takes no bound parameters; the version is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", m.version))?;
        tx.commit()?;
        info!(version = m.version, "applied database migration");
    }
    Ok(())
}

/// Plans that do not depend on the values bound to a statement. Without
/// this, the SQLite we bundle (3.53) reads a bound LIMIT or OFFSET while
/// planning and marks the statement to be planned again whenever that
/// parameter is bound anew: every page of every list was parsed and planned
/// again, a quarter of a list's time (BENCHMARKS.md, "Reads on threads of
/// their own"). No plan of ours needs the values: the plan tests in
/// `runs.rs` and `validations.rs` run with this set.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// An empty database in memory, set up as the store sets up its own
/// connections: for the tests of plans and schema.
#[cfg(test)]
pub(crate) fn test_connection() -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    stable_plans(&conn).expect("QPSG");
    migrate(&mut conn).expect("migrate");
    conn
}

/// Starts a read transaction, so that every statement of one read (a page,
/// its count and its validation summaries) sees the same snapshot of the
/// file, and SQLite takes its WAL read lock once per read rather than once
/// per statement.
fn begin_snapshot(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    Ok(())
}

/// Ends the read's transaction when dropped, whatever became of the read,
/// so that no connection goes back to the pool holding a snapshot (which
/// would keep checkpoints from finishing).
struct EndSnapshot<'a>(&'a Connection);

impl Drop for EndSnapshot<'_> {
    fn drop(&mut self) {
        let conn = self.0;
        if conn.is_autocommit() {
            return;
        }
        let ended = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .or_else(|_| conn.execute_batch("ROLLBACK").map(|()| 0));
        if let Err(e) = ended {
            tracing::error!(error = %e, "a read transaction could not be ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_sections_are_numbered_in_order() {
        let ms = migrations();
        assert!(!ms.is_empty());
        for (i, m) in ms.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            // Each section holds SQL, not only comments (migration 5 only
            // deletes rows, so this cannot look for CREATE).
            assert!(
                m.sql.lines().any(|l| {
                    let l = l.trim();
                    !l.is_empty() && !l.starts_with("--")
                }),
                "migration {} holds no statement",
                m.version
            );
        }
    }

    /// Whether compiling `sql` (the programs of its triggers included)
    /// yields a temporary B-tree: SQLite's EXPLAIN lists those programs too.
    fn builds_a_temporary_btree(conn: &Connection, sql: &str) -> bool {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        // Parameters left unbound: the program is listed, not run.
        let mut rows = stmt.raw_query();
        let mut opcodes: Vec<String> = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            opcodes.push(row.get("opcode").unwrap());
        }
        assert!(opcodes.len() > 3, "{sql}: {opcodes:?}");
        opcodes.iter().any(|op| op == "OpenEphemeral")
    }

    /// Migration 9: no write of a run, its events, a validation or a
    /// webhook message builds an IN list as a temporary B-tree, checks and
    /// counter triggers included.
    #[test]
    fn writes_build_no_temporary_btrees() {
        let conn = test_connection();
        for sql in [
            "INSERT INTO runs (id, contract_id, pipeline_name, status, started_at, created_by, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            "UPDATE runs SET pipeline_name = ?2, status = ?3, metadata = ?4 WHERE id = ?1",
            "DELETE FROM runs WHERE id = ?1",
            "INSERT INTO run_events (run_id, type, actor, occurred_at) VALUES (?1, ?2, ?3, ?4)",
            "INSERT INTO validations (id, contract_id, run_id, status, recorded_at, recorded_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            "UPDATE validations SET status = ?2 WHERE id = ?1",
            "DELETE FROM validations WHERE id = ?1",
            "INSERT INTO webhook_messages (id, webhook_id, event_type, subject_id, body, \
             created_at, state, retry_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            "UPDATE webhook_messages SET state = ?2 WHERE seq = ?1",
        ] {
            assert!(!builds_a_temporary_btree(&conn, sql), "{sql}");
        }
        // The same test does see one where SQLite builds it.
        assert!(builds_a_temporary_btree(
            &conn,
            "SELECT 1 WHERE ?1 IN ('a', 'b', 'c')"
        ));
    }

    /// The rewritten checks refuse what the IN lists refused, and accept
    /// every value they accepted.
    #[test]
    fn the_rewritten_checks_refuse_what_they_refused() {
        let conn = test_connection();
        let run = |id: &str, status: &str| {
            conn.execute(
                "INSERT INTO runs (id, contract_id, status, started_at, created_by, updated_at) \
                 VALUES (?1, 'c', ?2, 't', 'k', 't')",
                [id, status],
            )
        };
        let refused = |r: rusqlite::Result<usize>| {
            r.unwrap_err()
                .to_string()
                .contains("CHECK constraint failed")
        };
        for (i, status) in ["pending", "running", "completed", "failed", "cancelled"]
            .iter()
            .enumerate()
        {
            run(&format!("run_{i}"), status).unwrap();
        }
        assert!(refused(run("run_x", "done")));
        assert!(refused(run("run_y", "Pending")));
        let event = |kind: &str| {
            conn.execute(
                "INSERT INTO run_events (run_id, type, actor, occurred_at) \
                 VALUES ('run_0', ?1, 'k', 't')",
                [kind],
            )
        };
        for kind in ["created", "status_changed", "updated", "heartbeat_expired"] {
            event(kind).unwrap();
        }
        assert!(refused(event("deleted")));
        let validation = |id: &str, status: &str| {
            conn.execute(
                "INSERT INTO validations (id, contract_id, run_id, status, recorded_at, \
                 recorded_by) VALUES (?1, 'c', 'run_0', ?2, 't', 'k')",
                [id, status],
            )
        };
        for (i, status) in ["passed", "failed", "warning", "skipped"]
            .iter()
            .enumerate()
        {
            validation(&format!("val_{i}"), status).unwrap();
        }
        assert!(refused(validation("val_x", "error")));
        conn.execute(
            "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by) \
             VALUES ('wh_1', 'https://x', '[]', 'standard', 's', 't', 'k')",
            [],
        )
        .unwrap();
        let message = |id: &str, state: &str| {
            conn.execute(
                "INSERT INTO webhook_messages (id, webhook_id, event_type, subject_id, body, \
                 created_at, state, retry_from) VALUES (?1, 'wh_1', 'e', 's', '{}', 't', ?2, 't')",
                [id, state],
            )
        };
        for (i, state) in ["pending", "delivered", "failed"].iter().enumerate() {
            message(&format!("msg_{i}"), state).unwrap();
        }
        assert!(refused(message("msg_x", "queued")));
        // The counters the rewritten triggers keep: contract 'c' has one
        // validation of each status.
        let n: i64 = conn
            .query_row(
                "SELECT n FROM validation_counts WHERE dims = 1 AND contract_id = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 4);
    }

    /// A key read finds what the writer committed last, inline or, with
    /// every inline connection taken, through the pool.
    #[tokio::test]
    async fn a_key_read_sees_the_last_commit_on_either_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db"), &StoreOptions::default()).unwrap();
        let count = |c: &Connection| {
            Ok(c.query_row("SELECT count(*) FROM api_keys", [], |r| r.get::<_, i64>(0))?)
        };
        let add = |n: i64| {
            let store = store.clone();
            async move {
                store
                    .write(move |c| {
                        c.execute(
                            "INSERT INTO api_keys (name, scope, secret_hash, created_at) \
                             VALUES (?1, 'write', ?1, '2026-01-01T00:00:00.000000Z')",
                            [format!("k{n}")],
                        )?;
                        Ok::<_, StoreError>(())
                    })
                    .await
                    .unwrap();
            }
        };
        add(1).await;
        assert_eq!(store.read_key(count).await.unwrap(), 1);
        {
            let _taken: Vec<_> = store.inline.iter().map(|m| m.lock().unwrap()).collect();
            add(2).await;
            assert_eq!(store.read_key(count).await.unwrap(), 2);
        }
        add(3).await;
        assert_eq!(store.read_key(count).await.unwrap(), 3);
    }
}
