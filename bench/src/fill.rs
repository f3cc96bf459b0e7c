//! Fills a fresh database through the library's own store functions, in
//! bulk transactions: runs spread over the last `days` days, two
//! validations per ten runs, and one write API key for the load.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use griot_registry::{
    app::keys,
    domain::{
        event::RunEvent,
        ids,
        keys::KeyScope,
        metadata::Metadata,
        run::{Run, RunStatus},
        time::Timestamp,
        validation::{
            NewValidationInput, Validation, ValidationIssue, ValidationStatus, ValidationWarning,
        },
    },
    store::{Durability, Store, StoreError, StoreOptions, events, runs, validations},
};
use serde_json::json;

use crate::rng::Rng;

/// The key the load uses; it becomes created_by on what the load writes.
pub const KEY_NAME: &str = "griot-bench";

const MICROS_PER_SEC: i64 = 1_000_000;
const HOUR: i64 = 3_600 * MICROS_PER_SEC;
const DAY: i64 = 24 * HOUR;
/// Runs that started this recently may still be pending or running.
const RECENT: i64 = 6 * HOUR;

/// Error codes a failed validation reports, most common first.
const ERROR_CODES: [(&str, &str, u32); 8] = [
    ("null_values", "column has null values", 30),
    (
        "schema_mismatch",
        "column type differs from the contract",
        18,
    ),
    ("duplicate_keys", "primary key has duplicates", 14),
    ("range_violation", "values outside the allowed range", 12),
    (
        "freshness",
        "newest row is older than the freshness SLA",
        10,
    ),
    ("referential_integrity", "foreign key has no match", 7),
    ("pattern_mismatch", "values do not match the pattern", 5),
    ("row_count_drop", "row count dropped more than 50%", 4),
];
const COLUMNS: [&str; 6] = ["email", "user_id", "amount", "created_at", "country", "sku"];

pub fn contract_name(i: u32) -> String {
    format!("contract-{i:04}")
}

pub fn pipeline_name(i: u32) -> String {
    format!("pipeline-{i:03}")
}

/// The pipeline that loads contract `i`: each pipeline owns a few contracts.
pub fn pipeline_of(contract: u32, pipelines: u32) -> u32 {
    contract % pipelines
}

/// A run the load may address.
pub struct RunRef {
    pub id: String,
    pub contract: u32,
}

pub struct Filled {
    pub runs: Vec<RunRef>,
    pub validations: u64,
    pub validation_errors: u64,
    pub run_status_counts: [(RunStatus, u64); 5],
    pub validation_status_counts: [(ValidationStatus, u64); 4],
    /// `started_at` of the oldest and newest run, in Unix microseconds.
    pub window: (i64, i64),
    pub elapsed: Duration,
    pub db_bytes: u64,
    pub api_key: String,
}

pub struct FillOptions {
    pub runs: u64,
    pub contracts: u32,
    pub pipelines: u32,
    pub days: u32,
    pub batch: usize,
    pub durability: Durability,
    pub seed: u64,
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros).expect("bench timestamps are in range")
}

fn run_status(rng: &mut Rng, recent: bool) -> RunStatus {
    use RunStatus::*;
    // Recent runs are often still going; old ones are settled, with a few
    // stuck in running or pending forever.
    let (statuses, weights): ([RunStatus; 5], [u32; 5]) = if recent {
        (
            [Completed, Failed, Cancelled, Running, Pending],
            [45, 5, 1, 35, 14],
        )
    } else {
        (
            [Completed, Failed, Cancelled, Running, Pending],
            [870, 100, 15, 10, 5],
        )
    };
    statuses[rng.weighted(&weights)]
}

/// The issues of a failed validation of `rows` rows: one error, or two
/// three times in ten; and how many rows they failed.
fn failed_issues(rng: &mut Rng, rows: u64) -> (Vec<ValidationIssue>, u64) {
    let n = 1 + usize::from(rng.chance(0.3));
    let weights: Vec<u32> = ERROR_CODES.iter().map(|e| e.2).collect();
    let mut errors = Vec::new();
    let mut rows_failed = 0;
    for _ in 0..n {
        let (code, message, _) = ERROR_CODES[rng.weighted(&weights)];
        let column = COLUMNS[rng.below(COLUMNS.len() as u64) as usize];
        let failed = 1 + rng.below(rows / 100 + 1);
        rows_failed += failed;
        errors.push(ValidationIssue {
            code: code.to_owned(),
            message: format!("{column}: {message} ({failed} rows)"),
            path: Some(column.to_owned()),
            row_count: Some(failed),
        });
    }
    (errors, rows_failed)
}

fn validation_input(
    rng: &mut Rng,
    run: &Run,
    contract: u32,
    now_micros: i64,
) -> NewValidationInput {
    use ValidationStatus::*;
    let weights: [u32; 4] = if run.status == RunStatus::Failed {
        [40, 50, 8, 2]
    } else {
        [85, 9, 5, 1]
    };
    let status = [Passed, Failed, Warning, Skipped][rng.weighted(&weights)];
    let rows = 1_000 + rng.below(2_000_000);
    let (errors, rows_failed) = if status == Failed {
        failed_issues(rng, rows)
    } else {
        (Vec::new(), 0)
    };
    let mut warnings = Vec::new();
    if status == Warning {
        warnings.push(ValidationWarning {
            code: "row_count_low".to_owned(),
            message: "row count is below the 7-day average".to_owned(),
        });
    }
    let mut metrics = Metadata::new();
    if status != Skipped {
        metrics.insert("rows_validated".into(), json!(rows));
        metrics.insert("rows_passed".into(), json!(rows - rows_failed.min(rows)));
        metrics.insert("rows_failed".into(), json!(rows_failed.min(rows)));
    }
    metrics.insert("duration_ms".into(), json!(50 + rng.below(30_000)));
    let mut metadata = Metadata::new();
    metadata.insert("suite".into(), json!(format!("suite-{}", contract % 17)));
    let started = run.started_at.unix_micros();
    let at = (started + rng.range(MICROS_PER_SEC, 30 * 60 * MICROS_PER_SEC)).min(now_micros);
    NewValidationInput {
        contract_id: run.contract_id.clone(),
        run_id: Some(run.id.clone()),
        status: Some(status),
        errors,
        warnings,
        metrics,
        metadata,
        recorded_at: Some(ts(at)),
    }
}

/// Adds one to the count of `status`.
fn tally<S: PartialEq>(counts: &mut [(S, u64)], status: &S) {
    for (s, c) in counts {
        if s == status {
            *c += 1;
        }
    }
}

/// The seeded dataset, one run at a time in time order.
pub struct Generator<'a> {
    o: &'a FillOptions,
    rng: Rng,
    now: Timestamp,
    now_micros: i64,
    /// The earliest start, and the span of time each run starts in.
    first: i64,
    slot: i64,
}

impl<'a> Generator<'a> {
    pub fn new(o: &'a FillOptions) -> Self {
        let rng = Rng::new(o.seed);
        let now = Timestamp::now();
        let now_micros = now.unix_micros();
        let span = i64::from(o.days) * DAY;
        Generator {
            o,
            rng,
            now,
            now_micros,
            first: now_micros - span,
            slot: (span / o.runs as i64).max(1),
        }
    }

    /// Run `n`, the contract it belongs to and its start in Unix
    /// microseconds.
    pub fn run(&mut self, n: u64) -> (Run, u32, i64) {
        let rng = &mut self.rng;
        // Runs arrive in time order, as they would in production: one per
        // slot, at a random point inside it.
        let start = self.first + n as i64 * self.slot + rng.below(self.slot as u64) as i64;
        let start = start.min(self.now_micros - MICROS_PER_SEC);
        let contract = rng.below(u64::from(self.o.contracts)) as u32;
        let pipeline = pipeline_of(contract, self.o.pipelines);
        let status = run_status(rng, self.now_micros - start < RECENT);
        let duration = rng.range(30 * MICROS_PER_SEC, 2 * HOUR);
        let completed_at = status
            .is_final()
            .then(|| ts((start + duration).min(self.now_micros)));
        let mut metadata = Metadata::new();
        metadata.insert("dag_id".into(), json!(pipeline_name(pipeline)));
        let trigger = if rng.chance(0.9) {
            "scheduled"
        } else {
            "manual"
        };
        metadata.insert("trigger".into(), json!(trigger));
        if status == RunStatus::Completed {
            metadata.insert("rows_processed".into(), json!(rng.below(5_000_000)));
        }
        let started_at = ts(start);
        let run = Run {
            id: ids::new_run_id(),
            contract_id: contract_name(contract),
            pipeline_name: Some(pipeline_name(pipeline)),
            pipeline_id: Some(format!("{trigger}__{started_at}")),
            status,
            metadata,
            started_at,
            completed_at,
            created_by: KEY_NAME.to_owned(),
            updated_at: completed_at.unwrap_or(started_at),
            version: 1,
            heartbeat_timeout_seconds: None,
            last_heartbeat_at: None,
        };
        (run, contract, start)
    }

    /// Runs `from..to` and their validations (runs 3 and 7 of every ten),
    /// counted into `out`.
    fn batch(
        &mut self,
        from: u64,
        to: u64,
        out: &mut Filled,
    ) -> Result<(Vec<Run>, Vec<Validation>), String> {
        let mut runs = Vec::with_capacity((to - from) as usize);
        let mut vals = Vec::new();
        for n in from..to {
            let (run, contract, start) = self.run(n);
            if n % 10 == 3 || n % 10 == 7 {
                let v = validation_input(&mut self.rng, &run, contract, self.now_micros)
                    .into_validation(KEY_NAME, self.now)
                    .map_err(|e| format!("generated an invalid validation: {e}"))?;
                vals.push(v);
            }
            out.window.0 = out.window.0.min(start);
            out.window.1 = out.window.1.max(start);
            tally(&mut out.run_status_counts, &run.status);
            out.runs.push(RunRef {
                id: run.id.clone(),
                contract,
            });
            runs.push(run);
        }
        for v in &vals {
            out.validation_errors += v.errors.len() as u64;
            tally(&mut out.validation_status_counts, &v.status);
        }
        out.validations += vals.len() as u64;
        Ok((runs, vals))
    }
}

/// Opens (or creates, with the schema) the database at `path` through the
/// library's store, with one reader.
pub fn open_store(path: &Path, durability: Durability) -> Result<Store, String> {
    Store::open(
        path,
        &StoreOptions {
            durability,
            read_connections: 1,
            ..StoreOptions::default()
        },
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// A fresh database and the write key the load uses.
fn create(db: &Path, durability: Durability) -> Result<(Store, String), String> {
    let store =
        open_store(db, durability).map_err(|e| format!("cannot create the database {e}"))?;
    let (_, secret) = keys::create(&store, KEY_NAME, KeyScope::Write)
        .map_err(|e| format!("cannot create the API key: {e}"))?;
    let api_key = secret.expose().to_owned();
    Ok((store, api_key))
}

/// A fresh database that holds only the load's write key, for a server
/// that is then filled through its API; the key.
pub fn create_empty(db: &Path, durability: Durability) -> Result<String, String> {
    create(db, durability).map(|(_, api_key)| api_key)
}

pub fn fill(db: &Path, o: &FillOptions) -> Result<Filled, String> {
    let started = Instant::now();
    let (store, api_key) = create(db, o.durability)?;
    let mut generator = Generator::new(o);
    let mut out = Filled {
        runs: Vec::with_capacity(o.runs as usize),
        validations: 0,
        validation_errors: 0,
        run_status_counts: RunStatus::ALL.map(|s| (s, 0)),
        validation_status_counts: ValidationStatus::ALL.map(|s| (s, 0)),
        window: (i64::MAX, i64::MIN),
        elapsed: Duration::ZERO,
        db_bytes: 0,
        api_key,
    };
    let mut last_report = Instant::now();
    let mut i: u64 = 0;
    while i < o.runs {
        let end = (i + o.batch as u64).min(o.runs);
        let (batch_runs, batch_vals) = generator.batch(i, end, &mut out)?;
        store
            .write_blocking(move |tx| {
                for r in &batch_runs {
                    runs::insert(tx, r)?;
                    events::append(tx, &RunEvent::created(r))?;
                }
                for v in &batch_vals {
                    validations::insert(tx, v)?;
                }
                Ok::<_, StoreError>(())
            })
            .map_err(|e| format!("fill failed at run {i}: {e}"))?;
        i = end;
        if last_report.elapsed() >= Duration::from_secs(5) {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  filled {i}/{} runs in {secs:.0} s ({:.0} runs/s)",
                o.runs,
                i as f64 / secs
            );
            last_report = Instant::now();
        }
    }
    // Closing the last connection checkpoints the WAL into the main file;
    // that is part of the fill.
    drop(store);
    out.elapsed = started.elapsed();
    out.db_bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    Ok(out)
}

/// The sidecar of a kept fill: what `Filled` holds beyond the rows.
fn sidecar(cache: &Path) -> std::path::PathBuf {
    let mut name = cache.as_os_str().to_owned();
    name.push(".json");
    name.into()
}

/// Keeps a copy of the freshly filled `db` at `cache` (and its numbers and
/// API key beside it) for `load`.
pub fn save(db: &Path, cache: &Path, filled: &Filled) -> Result<(), String> {
    std::fs::copy(db, cache).map_err(|e| format!("cannot copy to {}: {e}", cache.display()))?;
    let counts = |v: &[(String, u64)]| {
        serde_json::Map::from_iter(v.iter().map(|(s, n)| (s.clone(), json!(n))))
    };
    let runs: Vec<(String, u64)> = filled
        .run_status_counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), *n))
        .collect();
    let vals: Vec<(String, u64)> = filled
        .validation_status_counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), *n))
        .collect();
    let meta = json!({
        "validations": filled.validations,
        "validation_errors": filled.validation_errors,
        "run_statuses": counts(&runs),
        "validation_statuses": counts(&vals),
        "window": [filled.window.0, filled.window.1],
        "seconds": filled.elapsed.as_secs_f64(),
        "db_bytes": filled.db_bytes,
        "api_key": filled.api_key,
    });
    std::fs::write(sidecar(cache), meta.to_string())
        .map_err(|e| format!("cannot write {}: {e}", sidecar(cache).display()))
}

/// Copies the fill kept at `cache` to `db` and reads back what the load
/// needs: the runs in fill order, the window, the API key.
pub fn load(cache: &Path, db: &Path) -> Result<Filled, String> {
    let text = std::fs::read_to_string(sidecar(cache))
        .map_err(|e| format!("cannot read {}: {e}", sidecar(cache).display()))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", sidecar(cache).display()))?;
    std::fs::copy(cache, db).map_err(|e| format!("cannot copy {}: {e}", cache.display()))?;
    let conn = r2d2_sqlite::rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare("SELECT id, contract_id FROM runs ORDER BY rowid")
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let id: String = row.get(0).map_err(|e| e.to_string())?;
        let contract: String = row.get(1).map_err(|e| e.to_string())?;
        let contract = contract
            .strip_prefix("contract-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unexpected contract id {contract}"))?;
        runs.push(RunRef { id, contract });
    }
    let u = |key: &str| meta[key].as_u64().unwrap_or(0);
    let count = |key: &str, s: &str| meta[key][s].as_u64().unwrap_or(0);
    Ok(Filled {
        runs,
        validations: u("validations"),
        validation_errors: u("validation_errors"),
        run_status_counts: RunStatus::ALL.map(|s| (s, count("run_statuses", s.as_str()))),
        validation_status_counts: ValidationStatus::ALL
            .map(|s| (s, count("validation_statuses", s.as_str()))),
        window: (
            meta["window"][0].as_i64().unwrap_or(0),
            meta["window"][1].as_i64().unwrap_or(0),
        ),
        elapsed: Duration::from_secs_f64(meta["seconds"].as_f64().unwrap_or(0.0)),
        db_bytes: u("db_bytes"),
        api_key: meta["api_key"].as_str().unwrap_or_default().to_owned(),
    })
}
