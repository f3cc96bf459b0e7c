//! `serve --mmap-mib`: the readers read the file through one memory mapping
//! that all of them share (on by default, 16 GiB of the file), so the
//! process holds the file's pages once however many readers touch them,
//! and what they read through it is what was written, as the file grows.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use griot_registry::store::{Connection, Store, StoreError, StoreOptions};

/// Runs `f` on each of the pool's `n` reader connections, all held at
/// once so that each is a different connection.
fn on_every_reader<T>(store: &Store, n: u32, f: &dyn Fn(&Connection) -> T) -> Vec<T> {
    fn hold<T>(store: &Store, left: u32, f: &dyn Fn(&Connection) -> T, seen: &mut Vec<T>) {
        if left == 0 {
            return;
        }
        store
            .read_blocking(|c| {
                seen.push(f(c));
                hold(store, left - 1, f, seen);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
    let mut seen = Vec::new();
    hold(store, n, f, &mut seen);
    seen
}

fn mmap_size(c: &Connection) -> i64 {
    c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap()
}

/// This process's mappings of `path`: (length in bytes, resident KiB)
/// each, from /proc/self/smaps.
fn mappings_of(path: &Path) -> Vec<(u64, u64)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut found = Vec::new();
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(5) != Some(name) {
            continue;
        }
        let range = line.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let len = u64::from_str_radix(end, 16).unwrap() - u64::from_str_radix(start, 16).unwrap();
        let rss = lines
            .by_ref()
            .find_map(|l| l.strip_prefix("Rss:"))
            .map(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
            .unwrap();
        found.push((len, rss));
    }
    found
}

/// Moves every committed page into the database file itself, so that
/// readers read them from the file (the mapping) rather than the WAL.
fn checkpoint(path: &Path) {
    let c = Connection::open(path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // busy = 1 while the store's own checkpoint thread is at it.
        let busy: i64 = c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the WAL could not be checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The table `add_rows` fills.
const BLOBS: &str = "CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)";

fn four_readers() -> StoreOptions {
    StoreOptions {
        read_connections: 4,
        ..StoreOptions::default()
    }
}

/// A store at `path` with one table of the test's own, made by `ddl`.
fn store_with_table(path: &Path, options: &StoreOptions, ddl: &'static str) -> Store {
    let store = Store::open(path, options).unwrap();
    store
        .write_blocking(move |c| {
            c.execute_batch(ddl)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    store
}

/// Adds `n` rows of 3,000 bytes each, whose content follows from the id.
fn add_rows(store: &Store, n: u32) {
    store
        .write_blocking(move |c| {
            c.execute(
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1) \
                 INSERT INTO blobs (body) SELECT NULL FROM k",
                [n],
            )?;
            c.execute(
                "UPDATE blobs SET body = printf('%.3000c', char(65 + id % 26)) WHERE body IS NULL",
                [],
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// How many rows hold exactly what `add_rows` wrote.
fn intact_rows(c: &Connection) -> i64 {
    c.query_row(
        "SELECT count(*) FROM blobs WHERE body = printf('%.3000c', char(65 + id % 26))",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn readers_map_16_gib_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("registry.db"), &StoreOptions::default()).unwrap();
    assert_eq!(on_every_reader(&store, 8, &mmap_size), vec![16 << 30; 8]);
}

#[test]
fn every_reader_maps_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        read_connections: 3,
        mmap_bytes: 64 << 20,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.path().join("registry.db"), &options).unwrap();
    assert_eq!(on_every_reader(&store, 3, &mmap_size), vec![64 << 20; 3]);
}

#[test]
fn all_readers_share_one_mapping_and_read_what_was_written_as_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = store_with_table(&path, &four_readers(), BLOBS);

    add_rows(&store, 300);
    checkpoint(&path);
    assert_eq!(on_every_reader(&store, 4, &intact_rows), vec![300; 4]);
    let first = mappings_of(&path);
    assert_eq!(first.len(), 1, "{first:?}");

    // Ten times the file the mapping was made on: its new pages are read
    // through the same mapping, with no remap.
    add_rows(&store, 3000);
    checkpoint(&path);
    assert_eq!(on_every_reader(&store, 4, &intact_rows), vec![3300; 4]);
    let after = mappings_of(&path);
    assert_eq!(after.len(), 1, "one mapping for four readers: {after:?}");
    let (len, resident_kib) = after[0];
    assert_eq!(len, 16 << 30);
    // 3,300 rows of 3,000 bytes were read through it: about 10 MB of
    // pages, once, although four readers read each.
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;
    assert!(
        resident_kib >= 9_000 && resident_kib <= file_kib,
        "resident {resident_kib} KiB of a {file_kib} KiB file"
    );
}

#[test]
fn with_mmap_off_nothing_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = store_with_table(
        &path,
        &StoreOptions {
            read_connections: 3,
            mmap_bytes: 0,
            ..StoreOptions::default()
        },
        BLOBS,
    );
    add_rows(&store, 300);
    checkpoint(&path);
    assert_eq!(on_every_reader(&store, 3, &mmap_size), vec![0; 3]);
    assert_eq!(on_every_reader(&store, 3, &intact_rows), vec![300; 3]);
    assert_eq!(mappings_of(&path), vec![]);
}

/// Readers reading through the mapping while the writer rewrites and
/// appends pages and the checkpoint thread copies them into the file under
/// the readers: every snapshot a reader sees is whole. Each row keeps
/// a + b = 100 and every write moves one unit from b to a on rows all
/// over the table, so a torn or stale page would break a sum.
#[test]
fn reads_through_the_mapping_see_whole_snapshots_while_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = store_with_table(
        &path,
        &four_readers(),
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER NOT NULL, \
         b INTEGER NOT NULL, pad BLOB NOT NULL)",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (rows, sum, broken): (i64, i64, i64) = store
                        .read_blocking(|c| {
                            Ok::<_, StoreError>(c.query_row(
                                "SELECT count(*), coalesce(sum(a + b), 0), \
                                 count(*) FILTER (WHERE a + b != 100) FROM t",
                                [],
                                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                            )?)
                        })
                        .unwrap();
                    assert_eq!(
                        (sum, broken),
                        (rows * 100, 0),
                        "a reader saw a torn snapshot"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let began = Instant::now();
    let mut writes = 0;
    while began.elapsed() < Duration::from_secs(3) {
        store
            .write_blocking(|c| {
                c.execute(
                    "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 20) \
                     INSERT INTO t (a, b, pad) SELECT 0, 100, zeroblob(2000) FROM k",
                    [],
                )?;
                c.execute(
                    "UPDATE t SET a = a + 1, b = b - 1 WHERE id % 7 = abs(random()) % 7",
                    [],
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        writes += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: Vec<u32> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        writes > 50 && reads.iter().all(|&n| n > 10),
        "{writes} writes, reads {reads:?}"
    );
    // The readers did read through the mapping, and only the one.
    let mapped = mappings_of(&path);
    assert!(mapped.len() == 1 && mapped[0].1 > 0, "{mapped:?}");
}
