//! The physical limits the HTTP numbers are compared with: one-row commits
//! and primary-key reads straight through rusqlite, no server in between.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use griot_registry::store::Durability;
use r2d2_sqlite::rusqlite::{Connection, params};

use crate::{
    fill::{RunRef, open_store},
    rng::Rng,
};

pub struct Rate {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn sync_pragma(d: Durability) -> &'static str {
    match d {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    }
}

/// Opens `path` the way the store does: WAL, the durability's synchronous
/// level, foreign keys on.
fn open_like_store(path: &Path, durability: Durability) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("{} would not switch to WAL", path.display()));
    }
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
        sync_pragma(durability)
    ))
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// A bare table with the columns and primary key of `runs`, and none of
/// its secondary indexes or CHECKs.
const BARE_RUNS: &str = "CREATE TABLE runs (
    id TEXT PRIMARY KEY NOT NULL, contract_id TEXT NOT NULL, pipeline_name TEXT,
    pipeline_id TEXT, status TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
    started_at TEXT NOT NULL, completed_at TEXT, created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL) STRICT;";

/// Which `runs` table the raw insert goes to.
#[derive(Clone, Copy)]
pub enum InsertTable {
    /// The real one: created by `Store::open` from schema.sql, so it has the
    /// CHECKs and all five secondary indexes.
    Schema,
    /// Columns and primary key only.
    Bare,
}

/// A fresh file in `dir` with the `runs` table `table`.
fn create_insert_db(
    dir: &Path,
    table: InsertTable,
    durability: Durability,
) -> Result<PathBuf, String> {
    let name = match table {
        InsertTable::Schema => "raw-insert-schema.db",
        InsertTable::Bare => "raw-insert-bare.db",
    };
    let path = dir.join(name);
    match table {
        InsertTable::Schema => {
            drop(open_store(&path, durability)?);
        }
        InsertTable::Bare => {
            let c = open_like_store(&path, durability)?;
            c.execute_batch(BARE_RUNS).map_err(|e| e.to_string())?;
        }
    }
    Ok(path)
}

/// One-row INSERT transactions, each its own BEGIN IMMEDIATE ... COMMIT,
/// for `seconds`, into a fresh file in `dir`.
pub fn insert_rate(
    dir: &Path,
    table: InsertTable,
    durability: Durability,
    seconds: f64,
    seed: u64,
) -> Result<Rate, String> {
    let path = create_insert_db(dir, table, durability)?;
    insert_rate_into(&path, durability, seconds, seed)
}

/// One-row INSERT transactions into the `runs` table of the database at
/// `path`, for `seconds`.
pub fn insert_rate_into(
    path: &Path,
    durability: Durability,
    seconds: f64,
    seed: u64,
) -> Result<Rate, String> {
    let conn = open_like_store(path, durability)?;
    let mut begin = conn.prepare("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let mut commit = conn.prepare("COMMIT").map_err(|e| e.to_string())?;
    let mut insert = conn
        .prepare(
            "INSERT INTO runs (id, contract_id, pipeline_name, pipeline_id, status, metadata, \
             started_at, completed_at, created_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(|e| e.to_string())?;
    let mut rng = Rng::fork(seed, 7_001);
    let now = griot_registry::domain::time::Timestamp::now().to_string();
    let limit = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < limit {
        let id = griot_registry::domain::ids::new_run_id();
        let c = rng.below(1_000);
        begin.execute([]).map_err(|e| e.to_string())?;
        insert
            .execute(params![
                id,
                format!("contract-{c:04}"),
                format!("pipeline-{:03}", c % 200),
                "scheduled__x",
                "pending",
                r#"{"dag_id":"pipeline-000","trigger":"scheduled"}"#,
                now,
                None::<String>,
                "griot-bench",
                now,
            ])
            .map_err(|e| e.to_string())?;
        commit.execute([]).map_err(|e| e.to_string())?;
        ops += 1;
    }
    Ok(Rate {
        ops,
        elapsed: started.elapsed(),
    })
}

/// Reads whole `runs` rows by primary key, random ids, one prepared
/// statement on one connection, for `seconds`.
pub fn pk_read_rate(
    db: &Path,
    runs: &[RunRef],
    durability: Durability,
    seconds: f64,
    seed: u64,
) -> Result<Rate, String> {
    let conn = open_like_store(db, durability)?;
    let mut stmt = conn
        .prepare(
            "SELECT id, contract_id, pipeline_name, pipeline_id, status, metadata, \
             started_at, completed_at, created_by, updated_at FROM runs WHERE id = ?1",
        )
        .map_err(|e| e.to_string())?;
    let mut rng = Rng::fork(seed, 7_002);
    let limit = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut ops = 0u64;
    let mut bytes = 0usize;
    while started.elapsed() < limit {
        let r = &runs[rng.below(runs.len() as u64) as usize];
        let n = stmt
            .query_row([&r.id], |row| {
                let mut n = 0;
                for i in 0..10 {
                    let v: Option<String> = row.get(i)?;
                    n += v.map_or(0, |s| s.len());
                }
                Ok(n)
            })
            .map_err(|e| format!("reading run {}: {e}", r.id))?;
        bytes += n;
        ops += 1;
    }
    if bytes == 0 {
        return Err("the primary-key reads returned nothing".into());
    }
    Ok(Rate {
        ops,
        elapsed: started.elapsed(),
    })
}
