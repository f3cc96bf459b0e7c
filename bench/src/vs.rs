//! `--vs-mlflow`: griot-registry and MLflow's tracking server side by side
//! on one machine. Both start on empty SQLite files in the temp folder, get
//! the same runs through their REST APIs over the same number of
//! connections, then the same four scenarios (create, get, update, search),
//! each server in turn, per scenario. See BENCHMARKS.md, "Side by side with
//! MLflow".

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use griot_registry::domain::{run::RunStatus, time::Timestamp};
use serde_json::{Value, json};

use crate::{
    Args, Probe, cleanup,
    client::{Conn, json_id, json_str},
    client_runtime, describe_binary,
    fill::{self, RunRef},
    load::{self, Counts, MLFLOW_API, Pair, VS_MLFLOW},
    mlflow::{self, Mlflow},
    report::{self, Machine, ScenarioRow, mib, r1, r2},
    server::{self, Server},
};

/// What the create ratio must reach (issue 16).
const CREATE_TARGET: f64 = 100.0;

/// The default venv: `.cache/mlflow-venv` in the workspace (git-ignored).
pub fn default_venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
        .join(".cache/mlflow-venv")
}

/// The pair names and their scenarios' names, for `--scenarios`.
pub fn known(name: &str) -> bool {
    VS_MLFLOW.iter().any(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    VS_MLFLOW.iter().map(|p| p.name).collect()
}

/// One run of the fill, as each API takes it.
struct Planned {
    contract: u32,
    griot: String,
    /// `runs/create`'s body without its experiment_id, which MLflow gives
    /// when it is started.
    mlflow_create: Value,
    /// MLflow's status when it is not the RUNNING that `runs/create`
    /// gives, with the end time (Unix ms) of a finished run.
    mlflow_finish: Option<(&'static str, Option<i64>)>,
}

fn mlflow_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Pending => "SCHEDULED",
        RunStatus::Running => "RUNNING",
        RunStatus::Completed => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "KILLED",
    }
}

/// The seeded dataset of the normal fill (without validations, which
/// MLflow has no counterpart for), as request bodies for both servers.
fn plan(args: &Args) -> (Vec<Planned>, Vec<(String, u64)>) {
    let opts = args.fill_options(args.mlflow_runs);
    let mut generator = fill::Generator::new(&opts);
    let mut counts: Vec<(String, u64)> = RunStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut planned = Vec::with_capacity(args.mlflow_runs as usize);
    for n in 0..args.mlflow_runs {
        let (run, contract, start) = generator.run(n);
        if let Some(c) = counts.iter_mut().find(|c| c.0 == run.status.as_str()) {
            c.1 += 1;
        }
        let mut griot = json!({
            "contract_id": run.contract_id,
            "pipeline_name": run.pipeline_name,
            "pipeline_id": run.pipeline_id,
            "status": run.status.as_str(),
            "metadata": run.metadata,
            "started_at": run.started_at.to_string(),
        });
        if let Some(done) = run.completed_at {
            griot["completed_at"] = json!(done.to_string());
        }
        let mut tags = vec![
            json!({"key": "contract_id", "value": run.contract_id}),
            json!({"key": "pipeline_name", "value": run.pipeline_name}),
            json!({"key": "pipeline_id", "value": run.pipeline_id}),
        ];
        for (k, v) in &run.metadata {
            let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            tags.push(json!({"key": k, "value": value}));
        }
        let mlflow_create = json!({
            "start_time": start / 1_000,
            "tags": tags,
        });
        let status = mlflow_status(run.status);
        planned.push(Planned {
            contract,
            griot: griot.to_string(),
            mlflow_create,
            mlflow_finish: (status != "RUNNING")
                .then(|| (status, run.completed_at.map(|t| t.unix_micros() / 1_000))),
        });
    }
    (planned, counts)
}

#[derive(Clone, Copy)]
enum System {
    Griot,
    Mlflow,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Griot => "griot-registry",
            System::Mlflow => "MLflow",
        }
    }
}

/// A fill through one server's API.
struct Filled {
    runs: Vec<RunRef>,
    requests: u64,
    counts: Counts,
    elapsed: Duration,
}

impl Filled {
    fn runs_per_sec(&self) -> f64 {
        self.runs.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct FillJob {
    system: System,
    addr: SocketAddr,
    /// The write key (griot) or the experiment id (MLflow).
    key: String,
    planned: Arc<Vec<Planned>>,
    next: AtomicUsize,
    done: AtomicUsize,
    started: Instant,
    ids: Mutex<Vec<Option<String>>>,
}

/// One request of the fill; the body on a 2xx, an error kind and sample
/// otherwise.
async fn send(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Result<Vec<u8>, (String, String)> {
    if conn.as_ref().is_none_or(|c| c.closed) {
        *conn = Some(
            Conn::connect(addr)
                .await
                .map_err(|e| ("io".to_owned(), e.to_string()))?,
        );
    }
    let Some(c) = conn.as_mut() else {
        return Err(("io".to_owned(), "no connection".to_owned()));
    };
    match c.request("POST", path, key, Some(body)).await {
        Ok(r) if (200..300).contains(&r.status) => Ok(r.body),
        Ok(r) => Err((
            format!("{} {path}", r.status),
            String::from_utf8_lossy(&r.body).into_owned(),
        )),
        Err(e) => {
            *conn = None;
            Err((format!("io {path}"), e.to_string()))
        }
    }
}

/// Takes runs off the shared plan until none is left: one request per run
/// for griot, `runs/create` and (unless it stays RUNNING) `runs/update`
/// for MLflow.
async fn fill_worker(job: Arc<FillJob>, n: usize) -> (Counts, u64) {
    let mut conn = None;
    let mut counts = Counts::default();
    let mut requests = 0u64;
    let mut last_report = Instant::now();
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        let Some(p) = job.planned.get(i) else {
            break;
        };
        let id = match job.system {
            System::Griot => {
                requests += 1;
                send(
                    &mut conn,
                    job.addr,
                    "/api/v1/runs",
                    Some(&job.key),
                    &p.griot,
                )
                .await
                .and_then(|body| json_id(&body).ok_or_else(no_id(&body)))
            }
            System::Mlflow => {
                requests += 1;
                let mut body = p.mlflow_create.clone();
                body["experiment_id"] = json!(job.key);
                let created = send(
                    &mut conn,
                    job.addr,
                    &format!("{MLFLOW_API}/runs/create"),
                    None,
                    &body.to_string(),
                )
                .await
                .and_then(|body| json_str(&body, "run_id").ok_or_else(no_id(&body)));
                match (created, p.mlflow_finish) {
                    (Ok(id), Some((status, end))) => {
                        requests += 1;
                        let end = end.map_or(String::new(), |e| format!(r#","end_time":{e}"#));
                        let body = format!(r#"{{"run_id":"{id}","status":"{status}"{end}}}"#);
                        send(
                            &mut conn,
                            job.addr,
                            &format!("{MLFLOW_API}/runs/update"),
                            None,
                            &body,
                        )
                        .await
                        .map(|_| id)
                    }
                    (created, _) => created,
                }
            }
        };
        counts.answered += 1;
        match id {
            Ok(id) => {
                if let Some(slot) = job
                    .ids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(i)
                {
                    *slot = Some(id);
                }
            }
            Err((kind, sample)) => counts.error(kind, || sample),
        }
        let done = job.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 0 && last_report.elapsed() >= Duration::from_secs(10) {
            let secs = job.started.elapsed().as_secs_f64();
            eprintln!(
                "  {}: {done}/{} runs in {secs:.0} s ({:.0} runs/s)",
                job.system.name(),
                job.planned.len(),
                done as f64 / secs
            );
            last_report = Instant::now();
        }
    }
    (counts, requests)
}

fn no_id(body: &[u8]) -> impl FnOnce() -> (String, String) + '_ {
    move || {
        (
            "no run id in the answer".to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        )
    }
}

/// Sends the whole plan to one server over `connections` connections;
/// `key` is griot's write key or MLflow's experiment id.
async fn fill_rest(
    system: System,
    addr: SocketAddr,
    key: &str,
    planned: Arc<Vec<Planned>>,
    connections: usize,
) -> Result<Filled, String> {
    let total = planned.len();
    let job = Arc::new(FillJob {
        system,
        addr,
        key: key.to_owned(),
        planned,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        started: Instant::now(),
        ids: Mutex::new(vec![None; total]),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|n| tokio::spawn(fill_worker(Arc::clone(&job), n)))
        .collect();
    let mut counts = Counts::default();
    let mut requests = 0;
    for t in tasks {
        let (c, r) = t.await.map_err(|e| format!("a fill task failed: {e}"))?;
        counts.merge(c);
        requests += r;
    }
    let elapsed = job.started.elapsed();
    let ids = std::mem::take(
        &mut *job
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let runs: Vec<RunRef> = ids
        .into_iter()
        .zip(job.planned.iter())
        .filter_map(|(id, p)| {
            Some(RunRef {
                id: id?,
                contract: p.contract,
            })
        })
        .collect();
    if runs.is_empty() {
        return Err(format!(
            "the fill of {} created no run; errors: {:?}",
            system.name(),
            counts.samples
        ));
    }
    Ok(Filled {
        runs,
        requests,
        counts,
        elapsed,
    })
}

/// The experiment the runs go into: MLflow wants one per run.
async fn create_experiment(addr: SocketAddr) -> Result<String, String> {
    let mut conn = Conn::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to MLflow: {e}"))?;
    let resp = conn
        .request(
            "POST",
            &format!("{MLFLOW_API}/experiments/create"),
            None,
            Some(r#"{"name":"griot-bench"}"#),
        )
        .await
        .map_err(|e| format!("experiments/create: {e}"))?;
    match json_str(&resp.body, "experiment_id") {
        Some(id) if resp.status == 200 => Ok(id),
        _ => Err(format!(
            "experiments/create answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )),
    }
}

/// One scenario on one server, and the CPU the other (idle) server used
/// meanwhile.
struct Side {
    row: ScenarioRow,
    other_cpu_pct: f64,
}

struct PairRow {
    pair: &'static Pair,
    griot: Side,
    mlflow: Side,
}

impl PairRow {
    fn ratio(&self) -> f64 {
        self.griot.row.result.per_sec() / self.mlflow.row.result.per_sec().max(1e-9)
    }
}

/// What MLflow's log said: its access lines by status class, and its
/// warnings, errors and tracebacks.
#[derive(Default)]
struct MlflowLog {
    access_lines: u64,
    status_4xx: u64,
    status_5xx: u64,
    warning: u64,
    error: u64,
    traceback: u64,
    samples: Vec<String>,
}

fn scan_mlflow_log(path: &Path) -> MlflowLog {
    let mut s = MlflowLog::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut in_traceback = false;
    for line in text.lines() {
        if in_traceback {
            // Its log lines start with the date (2026/11/27 ...); a
            // traceback's lines do not.
            let log_line = line.get(4..5) == Some("/") && line.starts_with("20");
            if !log_line {
                // The unindented lines of a traceback are what was raised
                // (one per chained exception), the line worth keeping.
                let raised = !line.is_empty()
                    && !line.starts_with(' ')
                    && !line.starts_with("Traceback")
                    && !line.starts_with("During handling")
                    && !line.starts_with("The above exception");
                if raised && s.samples.len() < 12 {
                    s.samples.push(line.chars().take(300).collect());
                }
                continue;
            }
            in_traceback = false;
        }
        // uvicorn's access line: ... "POST /api/... HTTP/1.1" 200 OK
        let status = line
            .split_once("HTTP/1.1\" ")
            .map(|(_, rest)| rest.chars().next());
        let mut note = false;
        match status {
            Some(first) => {
                s.access_lines += 1;
                if first == Some('4') {
                    s.status_4xx += 1;
                    note = true;
                } else if first == Some('5') {
                    s.status_5xx += 1;
                    note = true;
                }
            }
            None => {
                if line.contains(" WARNING") {
                    s.warning += 1;
                    note = true;
                }
                if line.contains(" ERROR") {
                    s.error += 1;
                    note = true;
                }
                if line.starts_with("Traceback") {
                    s.traceback += 1;
                    in_traceback = true;
                    note = true;
                }
            }
        }
        if note && s.samples.len() < 8 {
            s.samples.push(line.chars().take(300).collect());
        }
    }
    s
}

struct Report {
    when: String,
    machine: Machine,
    flags: String,
    connections: usize,
    seconds: f64,
    client_threads: usize,
    griot_bin: String,
    griot_ready_ms: f64,
    griot_stop: String,
    griot_log: report::LogSummary,
    installed: mlflow::Installed,
    venv: PathBuf,
    mlflow_command: String,
    processes: mlflow::Processes,
    mlflow_ready_s: f64,
    mlflow_settle_s: f64,
    mlflow_stop: String,
    mlflow_log: MlflowLog,
    statuses: Vec<(String, u64)>,
    fill_griot: Filled,
    fill_mlflow: Filled,
    rows: Vec<PairRow>,
}

pub fn run(args: &Args, server_bin: &Path) -> Result<(), String> {
    let venv = args.mlflow_venv.clone().unwrap_or_else(default_venv);
    let installed = mlflow::ensure_venv(&venv)?;
    eprintln!(
        "griot-bench: mlflow {} on Python {} in {}",
        installed.mlflow,
        installed.python,
        venv.display()
    );
    let base = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let machine = Machine::probe(&base);
    crate::announce_machine(&machine);
    let flags = flags(args);
    eprintln!("griot-bench: flags: {flags}");
    cleanup::install_signal_handler();
    let dir = cleanup::TempDir::create(&base)?;
    let db = dir.path().join("griot.db");
    let api_key = fill::create_empty(&db, args.durability.store())?;
    let (mut griot, griot_ready) = Server::start(
        server_bin,
        &db,
        args.durability.name(),
        dir.path().join("server.log"),
    )?;
    eprintln!(
        "griot-bench: griot-registry pid {} ready on {} in {:.0} ms",
        griot.pid,
        griot.addr,
        griot_ready.as_secs_f64() * 1000.0
    );
    let rt = client_runtime(args.client_threads)?;
    let (planned, statuses) = plan(args);
    let planned = Arc::new(planned);

    eprintln!(
        "griot-bench: filling griot-registry with {} runs over {} connections...",
        args.mlflow_runs, args.connections
    );
    let fill_griot = rt.block_on(fill_rest(
        System::Griot,
        griot.addr,
        &api_key,
        Arc::clone(&planned),
        args.connections,
    ))?;
    report_fill(System::Griot, &fill_griot);

    // Started after griot's fill, so that its start-up (tens of seconds of
    // CPU) does not run during that fill.
    eprintln!("griot-bench: starting mlflow server (it takes a while)...");
    let (mut ml, ml_ready) = Mlflow::start(&venv, dir.path(), args.mlflow_workers)?;
    let settle = ml.wait_quiet(Duration::from_secs(180));
    let processes = mlflow::describe_processes(&ml);
    eprintln!(
        "griot-bench: mlflow server group {} ready on {} in {:.1} s, quiet {:.1} s later: \
         {} worker processes, {} processes",
        ml.pgid,
        ml.addr,
        ml_ready.as_secs_f64(),
        settle.as_secs_f64(),
        processes.workers,
        processes.total
    );
    let experiment = rt.block_on(create_experiment(ml.addr))?;
    eprintln!(
        "griot-bench: filling MLflow with the same {} runs...",
        args.mlflow_runs
    );
    let fill_mlflow = rt.block_on(fill_rest(
        System::Mlflow,
        ml.addr,
        &experiment,
        planned,
        args.connections,
    ))?;
    report_fill(System::Mlflow, &fill_mlflow);

    let target = |addr, api_key: &str, experiment_id, runs: &[RunRef]| {
        Arc::new(load::Target {
            addr,
            api_key: api_key.to_owned(),
            experiment_id,
            runs: Arc::new(
                runs.iter()
                    .map(|r| RunRef {
                        id: r.id.clone(),
                        contract: r.contract,
                    })
                    .collect(),
            ),
            contracts: args.contracts,
            pipelines: args.pipelines,
            window: (0, 0),
            seed: args.seed,
            pending: Mutex::new(Vec::new()),
        })
    };
    let griot_target = target(griot.addr, &api_key, None, &fill_griot.runs);
    let ml_target = target(ml.addr, "", Some(experiment), &fill_mlflow.runs);

    let tps = server::ticks_per_sec() as f64;
    let griot_pid = griot.pid;
    // Memory as PSS (in both of the row's memory fields): summed over
    // MLflow's processes it counts shared pages once, as VmRSS would not;
    // for griot's one process it is about its VmRSS.
    let griot_pss = || {
        let k = mlflow::pss_kib(griot_pid);
        (k, k)
    };
    let ml_pss = || {
        let k = ml.pss_kib().0;
        (k, k)
    };
    let griot_probe = Probe {
        cpu_ticks: &|| server::cpu_ticks(&griot_pid.to_string()),
        memory_kib: &griot_pss,
        memory_label: "PSS",
    };
    let ml_probe = Probe {
        cpu_ticks: &|| ml.cpu_ticks(),
        memory_kib: &ml_pss,
        memory_label: "PSS",
    };
    let mut rows = Vec::new();
    for (i, pair) in VS_MLFLOW.iter().enumerate() {
        if !args.scenarios.is_empty() && !args.scenarios.iter().any(|s| s == pair.name) {
            continue;
        }
        // The same index for both: each connection makes the same random
        // choices against either server.
        let index = 1_000 + i;
        let side = |s: System| -> Result<Side, String> {
            let (probe, other, target, scenario) = match s {
                System::Griot => (&griot_probe, &ml_probe, &griot_target, &pair.griot),
                System::Mlflow => (&ml_probe, &griot_probe, &ml_target, &pair.mlflow),
            };
            eprintln!(
                "griot-bench: {} on {} ({})...",
                pair.name,
                s.name(),
                scenario.what
            );
            let other_before = (other.cpu_ticks)();
            let t0 = Instant::now();
            let row = crate::measure_scenario(args, &rt, tps, probe, target, scenario, index)?;
            let other_after = (other.cpu_ticks)();
            let ticks =
                (other_after.0 + other_after.1).saturating_sub(other_before.0 + other_before.1);
            std::thread::sleep(Duration::from_millis(300));
            Ok(Side {
                row,
                other_cpu_pct: ticks as f64 / tps / t0.elapsed().as_secs_f64() * 100.0,
            })
        };
        let griot_side = side(System::Griot)?;
        let mlflow_side = side(System::Mlflow)?;
        rows.push(PairRow {
            pair,
            griot: griot_side,
            mlflow: mlflow_side,
        });
    }

    let griot_stop = griot.stop(Duration::from_secs(10));
    let mlflow_stop = ml.stop(Duration::from_secs(15));
    let when = Timestamp::now().to_string();
    let rep = Report {
        when: when.get(..19).unwrap_or(&when).replace('T', " ") + " UTC",
        machine,
        flags,
        connections: args.connections,
        seconds: args.seconds,
        client_threads: args.client_threads,
        griot_bin: describe_binary(server_bin),
        griot_ready_ms: griot_ready.as_secs_f64() * 1000.0,
        griot_stop,
        griot_log: report::scan_log(&griot.log),
        installed,
        venv,
        mlflow_command: ml.command.clone(),
        processes,
        mlflow_ready_s: ml_ready.as_secs_f64(),
        mlflow_settle_s: settle.as_secs_f64(),
        mlflow_stop,
        mlflow_log: scan_mlflow_log(&ml.log),
        statuses,
        fill_griot,
        fill_mlflow,
        rows,
    };
    println!("{}", rep.markdown());
    let text = serde_json::to_string_pretty(&rep.json())
        .map_err(|e| format!("cannot encode the results: {e}"))?;
    std::fs::write(&args.out, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!("griot-bench: results written to {}", args.out.display());
    drop(griot);
    drop(ml);
    drop(dir);
    Ok(())
}

fn report_fill(s: System, f: &Filled) {
    eprintln!(
        "griot-bench: {}: {} runs in {:.1} s ({:.0} runs/s, {:.0} requests/s), {} errors",
        s.name(),
        f.runs.len(),
        f.elapsed.as_secs_f64(),
        f.runs_per_sec(),
        f.requests_per_sec(),
        f.counts.error_total()
    );
}

/// The flags that shape this mode's results.
fn flags(args: &Args) -> String {
    let mut s = format!(
        "--vs-mlflow --mlflow-runs {} --contracts {} --pipelines {} --days {} --connections {} \
         --seconds {} --durability {} --client-threads {} --seed {}",
        args.mlflow_runs,
        args.contracts,
        args.pipelines,
        args.days,
        args.connections,
        args.seconds,
        args.durability.name(),
        args.client_threads,
        args.seed
    );
    if let Some(w) = args.mlflow_workers {
        s.push_str(&format!(" --mlflow-workers {w}"));
    }
    if !args.scenarios.is_empty() {
        s.push_str(&format!(" --scenarios {}", args.scenarios.join(",")));
    }
    s
}

fn ms(sorted_us: &[u32], q: f64) -> f64 {
    load::quantile_ms(sorted_us, q)
}

impl Report {
    fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(
            o,
            "# griot-registry and MLflow's tracking server, side by side\n"
        );
        let _ = writeln!(o, "`griot-bench {}` on {}.\n", self.flags, self.when);
        let _ = writeln!(
            o,
            "Machine: {} × {} (nproc {}), {:.1} GiB RAM, Linux {}; temp files in {} ({}). \
             Both servers and the load generator share these CPUs.\n",
            m.nproc,
            m.cpu_model,
            m.nproc,
            m.mem_total_kib as f64 / 1024.0 / 1024.0,
            m.kernel,
            m.tmp_dir,
            m.tmp_fs
        );
        let _ = writeln!(
            o,
            "- griot-registry: `{}`, `serve --durability {}` on a fresh SQLite file; \
             ready in {:.0} ms; filled before MLflow was started.",
            self.griot_bin,
            self.durability(),
            self.griot_ready_ms
        );
        let p = &self.processes;
        let _ = writeln!(
            o,
            "- MLflow {} (from PyPI, Python {}, venv `{}`): `{}` with `MLFLOW_DISABLE_TELEMETRY=true`; \
             its `/health` answered {:.1} s after the start, and its processes were quiet \
             (under 10% of a core) {:.1} s later. It serves through `{}`: {} worker{} ({} worker processes spawned; \
             {} processes in its group in all, with its job runner and that runner's consumers).",
            self.installed.mlflow,
            self.installed.python,
            self.venv.display(),
            self.mlflow_command,
            self.mlflow_ready_s,
            self.mlflow_settle_s,
            p.http_server
                .as_deref()
                .unwrap_or("(no uvicorn or gunicorn found)"),
            p.workers_flag.map_or("?".to_owned(), |w| w.to_string()),
            if p.workers_flag == Some(1) { "" } else { "s" },
            p.workers,
            p.total
        );
        let _ = writeln!(o);
        self.md_fill(&mut o);
        self.md_scenarios(&mut o);
        self.md_target(&mut o);
        self.md_errors(&mut o);
        let g = &self.griot_log;
        let l = &self.mlflow_log;
        let _ = writeln!(
            o,
            "Logs: griot-registry {} request lines, {} with a 5xx status, {} WARN, {} ERROR; \
             MLflow {} access lines, {} 4xx, {} 5xx, {} WARNING, {} ERROR, {} tracebacks.",
            g.request_lines,
            g.status_5xx,
            g.warn,
            g.error,
            l.access_lines,
            l.status_4xx,
            l.status_5xx,
            l.warning,
            l.error,
            l.traceback
        );
        for s in g.samples.iter().chain(&l.samples) {
            let _ = writeln!(o, "    {s}");
        }
        let _ = writeln!(
            o,
            "\nStop: griot-registry {}; MLflow {}.",
            self.griot_stop, self.mlflow_stop
        );
        o
    }

    fn durability(&self) -> &str {
        self.flags
            .split("--durability ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or("normal")
    }

    fn md_fill(&self, o: &mut String) {
        let (g, m) = (&self.fill_griot, &self.fill_mlflow);
        let _ = writeln!(
            o,
            "## Fill through the REST APIs ({} runs each, {} connections)\n",
            self.statuses.iter().map(|s| s.1).sum::<u64>(),
            self.connections
        );
        let _ = writeln!(
            o,
            "| server | runs created | HTTP requests | errors | seconds | runs/s | requests/s |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
        for (s, f) in [(System::Griot, g), (System::Mlflow, m)] {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {:.1} | {:.0} | {:.0} |",
                s.name(),
                f.runs.len(),
                f.requests,
                f.counts.error_total(),
                f.elapsed.as_secs_f64(),
                f.runs_per_sec(),
                f.requests_per_sec()
            );
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "\nThe same seeded runs ({}) over the last days, each with its contract, pipeline \
             name and id and 2-3 metadata keys. griot-registry: one `POST /api/v1/runs` per run \
             (status, started_at and completed_at in the request). MLflow: `runs/create` \
             (start_time; the run's fields and metadata as tags), then `runs/update` (status, \
             end_time) for every run that is not RUNNING, as its create takes no status. \
             Runs per second: griot-registry {:.1}x MLflow's.\n",
            statuses.join(", "),
            g.runs_per_sec() / m.runs_per_sec().max(1e-9)
        );
    }

    fn md_scenarios(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "## Scenarios ({} keep-alive connections, {} s each, client on {} thread{}; \
             griot-registry first, then MLflow, per scenario)\n",
            self.connections,
            self.seconds,
            self.client_threads,
            if self.client_threads == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            o,
            "| scenario | griot req/s | griot p50 ms | griot p99 ms | griot errors | MLflow req/s \
             | MLflow p50 ms | MLflow p99 ms | MLflow errors | griot / MLflow req/s |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let (g, m) = (&r.griot.row.result, &r.mlflow.row.result);
            let _ = writeln!(
                o,
                "| {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {:.2} | {:.2} | {} | {:.1}x |",
                r.pair.name,
                g.per_sec(),
                ms(&g.latencies_us, 0.5),
                ms(&g.latencies_us, 0.99),
                g.counts.error_total(),
                m.per_sec(),
                ms(&m.latencies_us, 0.5),
                ms(&m.latencies_us, 0.99),
                m.counts.error_total(),
                r.ratio()
            );
        }
        let _ = writeln!(
            o,
            "\n| scenario | griot-registry request | MLflow request |\n|---|---|---|"
        );
        for r in &self.rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                r.pair.name, r.pair.griot.what, r.pair.mlflow.what
            );
        }
        let _ = writeln!(
            o,
            "\n| scenario | griot CPU | MLflow CPU (idle) | MLflow CPU | griot CPU (idle) | client \
             CPU (griot / MLflow) | griot PSS after | MLflow PSS after (sum) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let (g, m) = (&r.griot, &r.mlflow);
            let _ = writeln!(
                o,
                "| {} | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% / {:.0}% | {:.1} MiB | {:.1} MiB |",
                r.pair.name,
                g.row.server_cpu_pct,
                g.other_cpu_pct,
                m.row.server_cpu_pct,
                m.other_cpu_pct,
                g.row.client_cpu_pct,
                m.row.client_cpu_pct,
                mib(g.row.rss_after_kib),
                mib(m.row.rss_after_kib)
            );
        }
        let _ = writeln!(
            o,
            "\nCPU: 100% = one core busy for the whole scenario; MLflow's is summed over its \
             process group, and so is its PSS (memory, shared pages counted once). \"(idle)\" \
             is the other server, not under load, during the same \
             scenario. Latency runs from writing the request to reading the last body byte; \
             every non-2xx answer and every I/O error is an error.\n"
        );
    }

    fn md_target(&self, o: &mut String) {
        let Some(create) = self.rows.iter().find(|r| r.pair.name == "create") else {
            return;
        };
        let ratio = create.ratio();
        let _ = writeln!(
            o,
            "Target (issue 16): griot-registry creates at least {CREATE_TARGET:.0}x MLflow's \
             rate: {ratio:.1}x, {}.\n",
            if ratio >= CREATE_TARGET {
                "met"
            } else {
                "MISSED"
            }
        );
    }

    fn md_errors(&self, o: &mut String) {
        let mut lines = Vec::new();
        for (what, c) in [
            ("fill griot-registry", &self.fill_griot.counts),
            ("fill MLflow", &self.fill_mlflow.counts),
        ] {
            for (k, v) in &c.samples {
                lines.push(format!(
                    "- {what}: {k} ({}): `{}`",
                    c.errors[k],
                    v.replace('`', "'").replace('\n', " ")
                ));
            }
        }
        for r in &self.rows {
            for side in [&r.griot, &r.mlflow] {
                let c = &side.row.result.counts;
                for (k, v) in &c.samples {
                    lines.push(format!(
                        "- {}: {k} ({}): `{}`",
                        side.row.result.name,
                        c.errors[k],
                        v.replace('`', "'").replace('\n', " ")
                    ));
                }
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(o, "## Errors (count, first body)\n");
            for l in lines {
                let _ = writeln!(o, "{l}");
            }
            let _ = writeln!(o);
        }
    }

    fn json(&self) -> Value {
        let m = &self.machine;
        let fill = |f: &Filled| {
            json!({
                "runs_created": f.runs.len(),
                "http_requests": f.requests,
                "errors": f.counts.errors,
                "error_samples": f.counts.samples,
                "seconds": r2(f.elapsed.as_secs_f64()),
                "runs_per_sec": r1(f.runs_per_sec()),
                "requests_per_sec": r1(f.requests_per_sec()),
            })
        };
        let side = |s: &Side| {
            let mut v = report::scenario_json(&s.row);
            if let Some(o) = v.as_object_mut() {
                o.remove("server_vmhwm_mib_after");
                o.remove("server_vmrss_mib_after");
                o.insert(
                    "server_pss_mib_after".into(),
                    json!(r1(mib(s.row.rss_after_kib))),
                );
                o.insert("other_server_cpu_pct".into(), json!(r1(s.other_cpu_pct)));
            }
            v
        };
        let l = &self.mlflow_log;
        let create_ratio = self
            .rows
            .iter()
            .find(|r| r.pair.name == "create")
            .map(PairRow::ratio);
        json!({
            "mode": "vs-mlflow",
            "when": self.when,
            "machine": m.json(),
            "flags": self.flags,
            "connections": self.connections,
            "seconds_per_scenario": self.seconds,
            "client_threads": self.client_threads,
            "griot": {
                "server_binary": self.griot_bin,
                "ready_ms": r1(self.griot_ready_ms),
                "stop": self.griot_stop,
                "log": {
                    "request_lines": self.griot_log.request_lines,
                    "status_5xx_lines": self.griot_log.status_5xx,
                    "warn_lines": self.griot_log.warn,
                    "error_lines": self.griot_log.error,
                    "samples": self.griot_log.samples,
                },
            },
            "mlflow": {
                "version": self.installed.mlflow,
                "python": self.installed.python,
                "venv": self.venv.display().to_string(),
                "command": self.mlflow_command,
                "env": {"MLFLOW_DISABLE_TELEMETRY": "true"},
                "http_server": self.processes.http_server,
                "workers": self.processes.workers_flag,
                "worker_processes_spawned": self.processes.workers,
                "processes": self.processes.total,
                "ready_s": r2(self.mlflow_ready_s),
                "quiet_after_ready_s": r2(self.mlflow_settle_s),
                "stop": self.mlflow_stop,
                "log": {
                    "access_lines": l.access_lines,
                    "status_4xx_lines": l.status_4xx,
                    "status_5xx_lines": l.status_5xx,
                    "warning_lines": l.warning,
                    "error_lines": l.error,
                    "tracebacks": l.traceback,
                    "samples": l.samples,
                },
            },
            "fill": {
                "run_statuses": self.statuses.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "griot": fill(&self.fill_griot),
                "mlflow": fill(&self.fill_mlflow),
                "runs_per_sec_ratio": r2(self.fill_griot.runs_per_sec() / self.fill_mlflow.runs_per_sec().max(1e-9)),
            },
            "scenarios": self.rows.iter().map(|r| json!({
                "name": r.pair.name,
                "griot": side(&r.griot),
                "mlflow": side(&r.mlflow),
                "requests_per_sec_ratio": r2(r.ratio()),
            })).collect::<Vec<_>>(),
            "target": {
                "create_ratio_at_least": CREATE_TARGET,
                "create_ratio": create_ratio.map(r2),
                "met": create_ratio.map(|r| r >= CREATE_TARGET),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_log_keeps_what_a_traceback_raised() {
        let dir = std::env::temp_dir().join(format!("griot-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("mlflow.log");
        std::fs::write(
            &log,
            "2026/11/27 14:45:14 INFO:     127.0.0.1:1 - \"POST /api/2.0/mlflow/runs/create HTTP/1.1\" 200 OK\n\
             2026/11/27 14:45:14 ERROR mlflow.server: Exception on /api/2.0/mlflow/runs/search [POST]\n\
             Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\n\
             sqlite3.OperationalError: database is locked\n\n\
             The above exception was the direct cause of the following exception:\n\n\
             Traceback (most recent call last):\n  File \"y.py\", line 2, in h\n\
             sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n\
             2026/11/27 14:45:15 INFO:     127.0.0.1:2 - \"POST /api/2.0/mlflow/runs/search HTTP/1.1\" 500 Internal Server Error\n",
        )
        .unwrap();
        let s = scan_mlflow_log(&log);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((s.access_lines, s.status_5xx, s.status_4xx), (2, 1, 0));
        // One chain of two exceptions is one traceback in the log.
        assert_eq!((s.error, s.traceback), (1, 1));
        assert!(
            s.samples
                .iter()
                .any(|l| l == "sqlite3.OperationalError: database is locked")
        );
        assert!(
            s.samples
                .iter()
                .any(|l| l.starts_with("sqlalchemy.exc.OperationalError"))
        );
        assert!(
            s.samples
                .iter()
                .any(|l| l.ends_with("500 Internal Server Error"))
        );
    }

    #[test]
    fn json_str_reads_pretty_printed_answers() {
        let body =
            b"{\n  \"run\": {\n    \"info\": {\n      \"run_id\": \"86c7acbd\"\n    }\n  }\n}";
        assert_eq!(json_str(body, "run_id").as_deref(), Some("86c7acbd"));
        assert_eq!(
            json_str(br#"{"experiment_id":"1"}"#, "experiment_id").as_deref(),
            Some("1")
        );
        assert_eq!(json_str(br#"{"run_id": 5}"#, "run_id"), None);
        assert_eq!(json_str(br#"{"other":"x"}"#, "run_id"), None);
    }
}
