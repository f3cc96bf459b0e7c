//! griot-bench: a load benchmark for griot-registry.
//!
//! Fills a temporary database through the library's store, starts the
//! release server on it, drives HTTP load over loopback, compares the
//! results with what SQLite does on its own, and prints a markdown report
//! (and writes it as JSON). With `--vs-mlflow` it compares the server with
//! MLflow's tracking server instead (`vs.rs`). See BENCHMARKS.md.
//!
//! ```sh
//! cargo build --release -p griot-registry -p griot-bench
//! cargo run --release -p griot-bench -- --out /tmp/bench-results.json
//! ```

mod cleanup;
mod client;
mod fill;
mod load;
mod mlflow;
mod raw;
mod report;
mod rng;
mod server;
mod vs;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use griot_registry::{domain::time::Timestamp, store::Durability};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DurabilityFlag {
    Normal,
    Full,
}

impl DurabilityFlag {
    fn name(self) -> &'static str {
        match self {
            DurabilityFlag::Normal => "normal",
            DurabilityFlag::Full => "full",
        }
    }

    fn store(self) -> Durability {
        match self {
            DurabilityFlag::Normal => Durability::Normal,
            DurabilityFlag::Full => Durability::Full,
        }
    }
}

/// Load benchmark for griot-registry: fills a temporary database, serves it
/// with the release binary and measures throughput, latency and memory.
#[derive(Parser, Debug)]
#[command(name = "griot-bench")]
struct Args {
    /// Runs in the database (validations: 2 for every 10 runs).
    #[arg(long, default_value_t = 1_000_000)]
    runs: u64,
    /// Distinct contracts the runs belong to.
    #[arg(long, default_value_t = 1_000)]
    contracts: u32,
    /// Distinct pipelines (each loads contracts/pipelines contracts).
    #[arg(long, default_value_t = 200)]
    pipelines: u32,
    /// Runs' started_at spread over this many days back from now.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Runs per fill transaction.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Keep-alive connections driving the load.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per HTTP scenario.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds per raw SQLite measurement.
    #[arg(long, default_value_t = 3.0)]
    raw_seconds: f64,
    /// Passed to `serve --durability`, and used for the fill and the raw
    /// measurements.
    #[arg(long, value_enum, default_value_t = DurabilityFlag::Normal)]
    durability: DurabilityFlag,
    /// The server binary [default: target/release/griot-registry].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Where the temporary folder goes [default: the system temp dir].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Threads of the load generator's runtime (it shares the machine with
    /// the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Seconds to wait, after the server is ready and the copied or filled
    /// file is flushed to disk, before the first scenario: the server's
    /// first readiness check starts an integrity check of the whole file
    /// (about 10 s of one core at 1M runs), and the kernel is still
    /// writing the fresh copy back; scenarios that run meanwhile measure
    /// those too.
    #[arg(long, default_value_t = 0.0)]
    settle_seconds: f64,
    /// Only these scenarios, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Seed of the dataset and the request sequence.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// A filled database kept between runs: when PATH exists it is copied
    /// into the temp folder instead of filling (the fill's own numbers come
    /// from PATH.json, written beside it); otherwise the fill is copied to
    /// PATH. For comparing builds on one fill: the server migrates the copy
    /// to its own schema when it opens it.
    #[arg(long, value_name = "PATH")]
    db_cache: Option<PathBuf>,
    /// Compare with MLflow's tracking server instead: both filled through
    /// their REST APIs with --mlflow-runs runs, then create, get, update
    /// and search against each (BENCHMARKS.md, "Side by side with MLflow").
    /// --scenarios then takes create, get, update, search.
    #[arg(long)]
    vs_mlflow: bool,
    /// Runs each server is filled with in --vs-mlflow.
    #[arg(long, default_value_t = 10_000)]
    mlflow_runs: u64,
    /// Passed to `mlflow server --workers` [default: MLflow's own default].
    #[arg(long, value_name = "N")]
    mlflow_workers: Option<u32>,
    /// The venv MLflow is installed into (created, with the pinned release
    /// from PyPI, if it has no `mlflow`) [default: .cache/mlflow-venv in the
    /// workspace].
    #[arg(long, value_name = "PATH")]
    mlflow_venv: Option<PathBuf>,
}

impl Args {
    /// How `runs` runs are generated, from the spread the flags give.
    fn fill_options(&self, runs: u64) -> fill::FillOptions {
        fill::FillOptions {
            runs,
            contracts: self.contracts,
            pipelines: self.pipelines,
            days: self.days,
            batch: self.batch,
            durability: self.durability.store(),
            seed: self.seed,
        }
    }

    fn as_flags(&self) -> String {
        let mut s = format!(
            "--runs {} --contracts {} --pipelines {} --days {} --batch {} --connections {} \
             --seconds {} --raw-seconds {} --durability {} --client-threads {} --seed {}",
            self.runs,
            self.contracts,
            self.pipelines,
            self.days,
            self.batch,
            self.connections,
            self.seconds,
            self.raw_seconds,
            self.durability.name(),
            self.client_threads,
            self.seed
        );
        if !self.scenarios.is_empty() {
            s.push_str(&format!(" --scenarios {}", self.scenarios.join(",")));
        }
        if let Some(p) = &self.db_cache {
            s.push_str(&format!(" --db-cache {}", p.display()));
        }
        if self.settle_seconds > 0.0 {
            s.push_str(&format!(" --settle-seconds {}", self.settle_seconds));
        }
        s
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("griot-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The release server next to this binary, or under this checkout.
fn server_binary(args: &Args) -> Result<PathBuf, String> {
    let path = match &args.server {
        Some(p) => p.clone(),
        None => {
            let from_exe = std::env::current_exe().ok().and_then(|exe| {
                let profile_dir = exe.parent()?;
                Some(profile_dir.parent()?.join("release").join("griot-registry"))
            });
            match from_exe {
                Some(p) if p.is_file() => p,
                // The workspace's target dir: the workspace is this crate's
                // parent folder.
                _ => Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .unwrap_or(Path::new(".."))
                    .join("target/release/griot-registry"),
            }
        }
    };
    if !path.is_file() {
        return Err(format!(
            "the server binary {} does not exist; build it first with\n\n    \
             cargo build --release -p griot-registry\n\nor point --server at one",
            path.display()
        ));
    }
    Ok(path)
}

/// The path and build time of a binary, so a report says which build it
/// measured.
fn describe_binary(path: &Path) -> String {
    let built = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| Timestamp::from_unix_micros(d.as_micros() as i64))
        .map(|t| t.to_string());
    match built {
        Some(t) => format!(
            "{} (built {} UTC)",
            path.display(),
            t.get(..19).unwrap_or(&t).replace('T', " ")
        ),
        None => path.display().to_string(),
    }
}

fn check(args: &Args) -> Result<(), String> {
    let positive = [
        ("--runs", args.runs > 0),
        ("--contracts", args.contracts > 0),
        ("--pipelines", args.pipelines > 0),
        ("--days", args.days > 0),
        ("--batch", args.batch > 0),
        ("--connections", args.connections > 0),
        ("--seconds", args.seconds > 0.0),
        ("--raw-seconds", args.raw_seconds > 0.0),
        ("--client-threads", args.client_threads > 0),
    ];
    for (flag, ok) in positive {
        if !ok {
            return Err(format!("{flag} must be positive"));
        }
    }
    if args.vs_mlflow {
        if args.mlflow_runs == 0 {
            return Err("--mlflow-runs must be positive".into());
        }
        if args.mlflow_workers == Some(0) {
            return Err("--mlflow-workers must be positive".into());
        }
        if let Some(s) = args.scenarios.iter().find(|s| !vs::known(s)) {
            return Err(format!(
                "unknown scenario '{s}' for --vs-mlflow; known: {}",
                vs::names().join(", ")
            ));
        }
        return Ok(());
    }
    for s in &args.scenarios {
        if !load::SCENARIOS.iter().any(|x| x.name == s) {
            let names: Vec<&str> = load::SCENARIOS.iter().map(|x| x.name).collect();
            return Err(format!(
                "unknown scenario '{s}'; known: {}",
                names.join(", ")
            ));
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    check(args)?;
    let server_bin = server_binary(args)?;
    if cfg!(debug_assertions) {
        eprintln!(
            "griot-bench: warning: this is a debug build of the load generator; \
             run it with `cargo run --release -p griot-bench`"
        );
    }
    if args.vs_mlflow {
        return vs::run(args, &server_bin);
    }
    let base = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let machine = report::Machine::probe(&base);
    announce(args, &machine);
    cleanup::install_signal_handler();
    let dir = cleanup::TempDir::create(&base)?;
    let db = dir.path().join("bench.db");
    let filled = match &args.db_cache {
        Some(cache) if cache.exists() => reuse_db(args, cache, &db)?,
        Some(cache) => {
            let filled = fill_db(args, &db)?;
            fill::save(&db, cache, &filled)?;
            filled
        }
        None => fill_db(args, &db)?,
    };
    let fill = fill_summary(args, &filled);
    let mut raw = measure_raw(args, dir.path(), &db, &filled.runs)?;
    let mut srv = start_server(args, &server_bin, &db, dir.path())?;
    let target = load_target(args, srv.server.addr, filled);
    let scenarios = run_scenarios(args, srv.server.pid, &target)?;
    let (_, final_hwm) = server::memory_kib(srv.server.pid);
    let stop = srv.server.stop(Duration::from_secs(10));
    let log = report::scan_log(&srv.server.log);
    // After the load, so the scenarios see the fill unchanged: one-row
    // commits into the filled file itself (its indexes at full size).
    raw.insert_filled = Some(raw::insert_rate_into(
        &db,
        args.durability.store(),
        args.raw_seconds,
        args.seed,
    )?);
    eprintln!(
        "griot-bench: raw insert into the filled file {:.0}/s",
        raw.insert_filled.as_ref().map_or(0.0, raw::Rate::per_sec)
    );

    let when = Timestamp::now().to_string();
    let rep = report::Report {
        when: when.get(..19).unwrap_or(&when).replace('T', " ") + " UTC",
        machine,
        flags: args.as_flags(),
        connections: args.connections,
        seconds: args.seconds,
        durability: args.durability.name().to_owned(),
        client_threads: args.client_threads,
        fill,
        raw_insert_schema: raw.insert_schema,
        raw_insert_bare: raw.insert_bare,
        raw_insert_filled: raw.insert_filled,
        raw_pk_read: raw.pk_read,
        server_bin: describe_binary(&server_bin),
        ready_ms: srv.ready.as_secs_f64() * 1000.0,
        idle_rss_kib: srv.idle_rss_kib,
        idle_hwm_kib: srv.idle_hwm_kib,
        final_hwm_kib: final_hwm,
        stop,
        log,
        scenarios,
    };
    write_results(&rep, &args.out)?;
    drop(srv);
    drop(dir);
    Ok(())
}

/// The machine and the flags, before anything starts.
fn announce(args: &Args, machine: &report::Machine) {
    announce_machine(machine);
    eprintln!("griot-bench: flags: {}", args.as_flags());
}

fn announce_machine(machine: &report::Machine) {
    eprintln!(
        "griot-bench: {} × {}, {:.1} GiB; temp in {} ({})",
        machine.nproc,
        machine.cpu_model,
        machine.mem_total_kib as f64 / 1024.0 / 1024.0,
        machine.tmp_dir,
        machine.tmp_fs
    );
}

fn fill_db(args: &Args, db: &Path) -> Result<fill::Filled, String> {
    eprintln!(
        "griot-bench: filling {} with {} runs through the store...",
        db.display(),
        args.runs
    );
    let filled = fill::fill(db, &args.fill_options(args.runs))?;
    eprintln!(
        "griot-bench: filled {} runs and {} validations in {:.1} s ({:.0} runs/s), {:.0} MiB",
        filled.runs.len(),
        filled.validations,
        filled.elapsed.as_secs_f64(),
        filled.runs.len() as f64 / filled.elapsed.as_secs_f64(),
        filled.db_bytes as f64 / 1024.0 / 1024.0
    );
    Ok(filled)
}

/// A copy of the database filled earlier at `cache`, in place of a fill.
fn reuse_db(args: &Args, cache: &Path, db: &Path) -> Result<fill::Filled, String> {
    eprintln!(
        "griot-bench: copying the filled database {} to {}...",
        cache.display(),
        db.display()
    );
    let filled = fill::load(cache, db)?;
    if filled.runs.len() as u64 != args.runs {
        return Err(format!(
            "{} holds {} runs, not --runs {}",
            cache.display(),
            filled.runs.len(),
            args.runs
        ));
    }
    Ok(filled)
}

/// The fill as the report shows it.
fn fill_summary(args: &Args, filled: &fill::Filled) -> report::Fill {
    report::Fill {
        runs: args.runs,
        validations: filled.validations,
        validation_errors: filled.validation_errors,
        contracts: args.contracts,
        pipelines: args.pipelines,
        days: args.days,
        batch: args.batch,
        seconds: filled.elapsed.as_secs_f64(),
        db_bytes: filled.db_bytes,
        run_statuses: filled
            .run_status_counts
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), *n))
            .collect(),
        validation_statuses: filled
            .validation_status_counts
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), *n))
            .collect(),
    }
}

/// The raw SQLite rates the HTTP numbers are compared with.
struct RawRates {
    insert_schema: raw::Rate,
    insert_bare: raw::Rate,
    insert_filled: Option<raw::Rate>,
    pk_read: raw::Rate,
}

fn measure_raw(
    args: &Args,
    dir: &Path,
    db: &Path,
    runs: &[fill::RunRef],
) -> Result<RawRates, String> {
    eprintln!(
        "griot-bench: raw SQLite limits ({} s each)...",
        args.raw_seconds
    );
    let durability = args.durability.store();
    let insert = |table| raw::insert_rate(dir, table, durability, args.raw_seconds, args.seed);
    // In the order they always ran: the reads on the filled file first.
    let rates = RawRates {
        pk_read: raw::pk_read_rate(db, runs, durability, args.raw_seconds, args.seed)?,
        insert_schema: insert(raw::InsertTable::Schema)?,
        insert_bare: insert(raw::InsertTable::Bare)?,
        insert_filled: None,
    };
    eprintln!(
        "griot-bench: raw insert {:.0}/s (schema), {:.0}/s (bare); raw PK read {:.0}/s",
        rates.insert_schema.per_sec(),
        rates.insert_bare.per_sec(),
        rates.pk_read.per_sec()
    );
    Ok(rates)
}

/// The server under test, ready, with how long that took and its memory
/// when idle.
struct Running {
    server: server::Server,
    ready: Duration,
    idle_rss_kib: u64,
    idle_hwm_kib: u64,
}

fn start_server(args: &Args, bin: &Path, db: &Path, dir: &Path) -> Result<Running, String> {
    let (server, ready) =
        server::Server::start(bin, db, args.durability.name(), dir.join("server.log"))?;
    std::thread::sleep(Duration::from_millis(300));
    let (idle_rss_kib, idle_hwm_kib) = server::memory_kib(server.pid);
    if args.settle_seconds > 0.0 {
        eprintln!(
            "griot-bench: flushing the file and settling for {} s",
            args.settle_seconds
        );
        // sync(1) flushes every filesystem: simpler than finding the file's.
        let _ = std::process::Command::new("sync").status();
        std::thread::sleep(Duration::from_secs_f64(args.settle_seconds));
    }
    eprintln!(
        "griot-bench: server pid {} ready on {} in {:.0} ms; idle VmRSS {:.1} MiB",
        server.pid,
        server.addr,
        ready.as_secs_f64() * 1000.0,
        idle_rss_kib as f64 / 1024.0
    );
    Ok(Running {
        server,
        ready,
        idle_rss_kib,
        idle_hwm_kib,
    })
}

/// What the load's connections share: the server and the filled runs.
fn load_target(args: &Args, addr: SocketAddr, filled: fill::Filled) -> Arc<load::Target> {
    Arc::new(load::Target {
        addr,
        api_key: filled.api_key,
        experiment_id: None,
        runs: Arc::new(filled.runs),
        contracts: args.contracts,
        pipelines: args.pipelines,
        window: filled.window,
        seed: args.seed,
        pending: Mutex::new(Vec::new()),
    })
}

/// The load generator's runtime: `threads` worker threads, or the current
/// thread alone for one.
fn client_runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the client runtime: {e}"))
}

/// Every selected scenario in turn against the server `pid`.
fn run_scenarios(
    args: &Args,
    pid: u32,
    target: &Arc<load::Target>,
) -> Result<Vec<report::ScenarioRow>, String> {
    let rt = client_runtime(args.client_threads)?;
    let tps = server::ticks_per_sec() as f64;
    let mut rows = Vec::new();
    for (i, scenario) in load::SCENARIOS.iter().enumerate() {
        if !args.scenarios.is_empty() && !args.scenarios.iter().any(|s| s == scenario.name) {
            continue;
        }
        eprintln!("griot-bench: {} ({})...", scenario.name, scenario.what);
        rows.push(run_scenario(args, &rt, tps, pid, target, scenario, i)?);
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(rows)
}

/// One scenario, with the CPU the server and the load generator spent on it
/// and the server's memory after it.
fn run_scenario(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    ticks_per_sec: f64,
    pid: u32,
    target: &Arc<load::Target>,
    scenario: &'static load::Scenario,
    index: usize,
) -> Result<report::ScenarioRow, String> {
    let server = Probe {
        cpu_ticks: &|| server::cpu_ticks(&pid.to_string()),
        memory_kib: &|| server::memory_kib(pid),
        memory_label: "VmHWM",
    };
    measure_scenario(args, rt, ticks_per_sec, &server, target, scenario, index)
}

/// How to read a server's CPU time (user, system ticks) and memory (two
/// figures in KiB, the row's VmRSS and VmHWM in the normal mode): of one
/// process, or summed over a process group.
pub struct Probe<'a> {
    pub cpu_ticks: &'a dyn Fn() -> (u64, u64),
    pub memory_kib: &'a dyn Fn() -> (u64, u64),
    /// What the second memory figure is, for the progress line.
    pub memory_label: &'static str,
}

/// One scenario against the server `probe` reads, with the CPU it and the
/// load generator spent on it and its memory after it.
fn measure_scenario(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    ticks_per_sec: f64,
    probe: &Probe<'_>,
    target: &Arc<load::Target>,
    scenario: &'static load::Scenario,
    index: usize,
) -> Result<report::ScenarioRow, String> {
    let server_cpu = (probe.cpu_ticks)();
    let client_cpu = server::cpu_ticks("self");
    let t0 = Instant::now();
    let result = rt.block_on(load::run_scenario(
        target,
        scenario,
        index,
        args.connections,
        Duration::from_secs_f64(args.seconds),
    ))?;
    let wall = t0.elapsed().as_secs_f64();
    let server_after = (probe.cpu_ticks)();
    let client_after = server::cpu_ticks("self");
    let pct = |ticks: u64| ticks as f64 / ticks_per_sec / wall * 100.0;
    let (rss, hwm) = (probe.memory_kib)();
    eprintln!(
        "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} {:.1} MiB",
        result.per_sec(),
        load::quantile_ms(&result.latencies_us, 0.5),
        load::quantile_ms(&result.latencies_us, 0.99),
        result.counts.error_total(),
        probe.memory_label,
        hwm as f64 / 1024.0
    );
    Ok(report::ScenarioRow {
        result,
        rss_after_kib: rss,
        hwm_after_kib: hwm,
        server_cpu_pct: pct(
            (server_after.0 + server_after.1).saturating_sub(server_cpu.0 + server_cpu.1)
        ),
        server_sys_pct: pct(server_after.1.saturating_sub(server_cpu.1)),
        client_cpu_pct: pct(client_after.0 + client_after.1 - client_cpu.0 - client_cpu.1),
    })
}

/// The markdown report to stdout, the JSON to `out`.
fn write_results(rep: &report::Report, out: &Path) -> Result<(), String> {
    println!("{}", rep.markdown());
    let text = serde_json::to_string_pretty(&rep.json())
        .map_err(|e| format!("cannot encode the results: {e}"))?;
    std::fs::write(out, text + "\n").map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("griot-bench: results written to {}", out.display());
    Ok(())
}
