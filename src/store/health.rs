//! Whether the database can really be written, for the readiness probe, and
//! a log throttle for errors that repeat.
//!
//! A read (`SELECT` on sqlite_master) passes on a read-only file, a full
//! disk and most damaged files, so readiness also writes: it sets
//! `user_version` to the value it has, which dirties the header page and
//! makes the commit append a frame to the WAL, through the same writer
//! queue and commit as every request. The answer is kept for
//! `PROBE_EVERY`, so a client polling readiness cannot turn it into a
//! stream of writes. A damaged page elsewhere in the file is found by
//! `PRAGMA quick_check`, run in the background every few minutes.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::{SetupError, Store, StoreError};

/// How long a probe's answer is reused.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How often `PRAGMA quick_check` looks at every page. It reads the whole
/// file (0.26 s for 200 MB from the page cache, 9-12 s for the 1.7 GB
/// benchmark file, more from disk): far too slow per request, so it runs
/// in the background when readiness is asked and the last one is older
/// than this, and readiness reports the last finished one.
const PAGE_CHECK_EVERY: Duration = Duration::from_secs(300);

/// A check holds one read snapshot while it runs, and no checkpoint can
/// copy past it, so the WAL grows with every write meanwhile (to 0.5-1 GB
/// under flat-out creates during a 10 s check). Checks are spaced so that
/// one runs at most this share of the time: on a large file, less often
/// than `PAGE_CHECK_EVERY`.
const PAGE_CHECK_SHARE: u32 = 100;

/// When the next check is due after one that took `took`.
fn page_check_interval(took: Duration) -> Duration {
    PAGE_CHECK_EVERY.max(took.saturating_mul(PAGE_CHECK_SHARE))
}

/// `PRAGMA quick_check`'s findings (`["ok"]` when it finds nothing), on a
/// connection of its own: the check reads the whole file for seconds on a
/// large one, which would hold one of the readers' connections that long
/// and, through the readers' mapping, bring the whole file into the
/// server's RSS.
fn quick_check(path: &std::path::Path) -> Result<Vec<String>, StoreError> {
    use r2d2_sqlite::rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Why the database is not ready; the text is safe to show to anyone
/// (no path, no SQL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

#[derive(Default)]
pub(super) struct ProbeCache {
    /// The database file, whose disk's free space is checked.
    path: std::path::PathBuf,
    last: Mutex<Option<(Instant, Result<(), NotReady>)>>,
    log: Mutex<LogBackoff>,
    pages: Mutex<PageCheck>,
    running: tokio::sync::Mutex<()>,
    /// Probes run so far (for the test that they are shared).
    probes: std::sync::atomic::AtomicU64,
}

/// The background page check's state.
#[derive(Default)]
struct PageCheck {
    started: Option<Instant>,
    /// How long the last finished check took.
    took: Duration,
    running: bool,
    /// What the last finished check found wrong, if anything.
    damage: Option<String>,
}

impl ProbeCache {
    pub(super) fn new(path: &std::path::Path) -> Self {
        Self {
            path: path.to_path_buf(),
            ..Self::default()
        }
    }
}

/// Below this much free space on the database's disk the server is not
/// ready. The write probe alone cannot see a full disk: once the WAL has
/// started over, a commit reuses space the file already has, so a probe
/// succeeds on a full disk while a large write that grows the WAL fails.
/// 8 MiB holds a few batches of ordinary writes.
pub const MIN_FREE_BYTES: u64 = 8 << 20;

/// Free bytes for an unprivileged writer on the disk that holds `path`.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let stat = nix::sys::statvfs::statvfs(folder).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ by platform
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    Some(free)
}

impl Store {
    /// Reads and writes the database (see the module comment); the answer
    /// is at most `PROBE_EVERY` old.
    pub async fn check_ready(&self) -> Result<(), NotReady> {
        let fresh = || {
            self.probe
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .filter(|(at, _)| at.elapsed() < PROBE_EVERY)
                .map(|(_, result)| result)
        };
        if let Some(result) = fresh() {
            return result;
        }
        // One probe at a time: a thousand polls arriving together when the
        // answer expires wait for one write, not queue a thousand.
        let _running = self.probe.running.lock().await;
        if let Some(result) = fresh() {
            return result;
        }
        self.probe
            .probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let damage = self.page_check();
        let result = match self.ping().await {
            Ok(()) => self.write_probe().await,
            Err(e) => Err(e),
        }
        .and_then(|()| match free_bytes(&self.probe.path) {
            Some(free) if free < MIN_FREE_BYTES => Err(SetupError::DiskFull { free }.into()),
            _ => Ok(()),
        })
        .and_then(|()| match damage {
            Some(found) => Err(StoreError::Corrupt(format!(
                "quick_check found a malformed page: {found}"
            ))),
            None => Ok(()),
        })
        .map_err(|e| {
            let reason = classify(&e.to_string());
            let mut log = self
                .probe
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(repeats) = log.should_log(Instant::now()) {
                tracing::error!(error = %e, reason = %reason, repeats, "the database is not ready");
            }
            reason
        });
        if result.is_ok() {
            let mut log = self
                .probe
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(failures) = log.recovered() {
                tracing::info!(failures, "the database is ready again");
            }
        }
        *self
            .probe
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), result.clone()));
        result
    }

    /// Starts a page check in the background when one is due, and says
    /// what the last finished one found.
    fn page_check(&self) -> Option<String> {
        let mut check = self
            .probe
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = check
            .started
            .is_none_or(|at| at.elapsed() >= page_check_interval(check.took));
        if due && !check.running {
            check.started = Some(Instant::now());
            check.running = true;
            let store = self.clone();
            tokio::task::spawn_blocking(move || {
                let began = Instant::now();
                let found = quick_check(&store.probe.path)
                    .map(|lines| (lines != ["ok"]).then(|| lines.join("; ")))
                    .unwrap_or_else(|e: StoreError| Some(e.to_string()));
                let mut check = store
                    .probe
                    .pages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                check.running = false;
                check.took = began.elapsed();
                check.damage = found;
            });
        }
        check.damage.clone()
    }

    async fn write_probe(&self) -> Result<(), StoreError> {
        self.write(|c| {
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            // PRAGMA takes no bound parameters; the value is our own integer.
            c.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            Ok(())
        })
        .await
    }
}

/// Turns SQLite's error text into a reason an operator can act on. Read
/// as text because one path has nothing else: a pool error (r2d2) carries
/// only the text of the last connection error.
fn classify(error: &str) -> NotReady {
    let reason = if error.contains("readonly database") || error.contains("read-only") {
        "the database file is read-only, so every write fails; check the file's owner and \
         permissions (and those of its -wal and -shm files)"
    } else if error.contains("disk is full") {
        "the disk that holds the database is full (or has less than 8 MiB free), so writes \
         fail or soon will; free some space"
    } else if error.contains("malformed")
        || error.contains("not a database")
        || error.contains("quick_check")
    {
        "the database file is damaged; restore it from a backup"
    } else if error.contains("disk I/O error") {
        "reading or writing the database file fails with an I/O error; check the disk"
    } else {
        "the database cannot be queried or written; see the server log"
    };
    NotReady(reason.into())
}

/// Decides which occurrences of a repeating error get logged: the first,
/// then after 1 s, 2 s, 4 s, ... up to one every `MAX_GAP`, each saying how
/// many were left out meanwhile. A success resets it.
#[derive(Debug, Default)]
pub(crate) struct LogBackoff {
    failures: u64,
    suppressed: u64,
    next: Option<Instant>,
    gap: Duration,
}

const FIRST_GAP: Duration = Duration::from_secs(1);
const MAX_GAP: Duration = Duration::from_secs(300);

impl LogBackoff {
    /// Records a failure at `now`; `Some(left out since the last log line)`
    /// when this one should be logged.
    pub(crate) fn should_log(&mut self, now: Instant) -> Option<u64> {
        self.failures += 1;
        match self.next {
            Some(next) if now < next => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.gap = if self.next.is_none() {
                    FIRST_GAP
                } else {
                    (self.gap * 2).min(MAX_GAP)
                };
                self.next = Some(now + self.gap);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Records a success; `Some(failures before it)` if there were any.
    pub(crate) fn recovered(&mut self) -> Option<u64> {
        let failures = std::mem::take(&mut self.failures);
        *self = Self::default();
        (failures > 0).then_some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_ten_times_a_second_is_logged_a_handful_of_times() {
        let mut log = LogBackoff::default();
        let start = Instant::now();
        let mut logged = Vec::new();
        // Ten minutes of an error every 100 ms.
        for i in 0..6000u32 {
            let now = start + Duration::from_millis(100) * i;
            if let Some(left_out) = log.should_log(now) {
                logged.push((i, left_out));
            }
        }
        assert_eq!(logged[0], (0, 0), "the first is logged at once");
        assert!(logged.len() <= 12, "{} lines: {logged:?}", logged.len());
        let total: u64 = logged.iter().map(|&(_, n)| n + 1).sum();
        let since_last = 6000 - u64::from(logged.last().unwrap().0) - 1;
        assert_eq!(total + since_last, 6000, "every failure is counted");
        assert_eq!(log.recovered(), Some(6000));
        assert_eq!(log.recovered(), None);
        assert_eq!(log.should_log(start), Some(0), "a new streak logs at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn polls_arriving_together_share_one_probe() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("h.db"),
            &super::super::StoreOptions::default(),
        )
        .unwrap();
        let polls: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.check_ready().await })
            })
            .collect();
        for poll in polls {
            assert_eq!(poll.await.unwrap(), Ok(()));
        }
        assert_eq!(
            store
                .probe
                .probes
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn page_checks_of_a_large_file_are_spaced_out() {
        // A small file's check is due every five minutes; a 10 s one (a
        // 1.7 GB file) every 1,000 s, so it holds the WAL 1% of the time.
        assert_eq!(page_check_interval(Duration::ZERO), PAGE_CHECK_EVERY);
        assert_eq!(
            page_check_interval(Duration::from_millis(260)),
            PAGE_CHECK_EVERY
        );
        assert_eq!(
            page_check_interval(Duration::from_secs(10)),
            Duration::from_secs(1000)
        );
    }

    #[test]
    fn reasons_name_the_cause() {
        assert!(
            classify("attempt to write a readonly database")
                .0
                .contains("read-only")
        );
        assert!(
            classify("the commit failed: database or disk is full")
                .0
                .contains("full")
        );
        assert!(
            classify("database disk image is malformed")
                .0
                .contains("damaged")
        );
        assert!(classify("something else").0.contains("server log"));
    }
}
