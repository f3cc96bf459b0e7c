//! MLflow's tracking server for the side-by-side comparison: a venv with
//! the pinned release from PyPI, the server as a process group, and its
//! CPU and memory summed over that group (it runs as several processes).

use std::{
    fs::File,
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{cleanup, server};

/// The release the comparison was checked with (on CPython 3.11); the
/// newest whose `mlflow-skinny` dependency was on the package index when
/// this was written.
pub const VERSION: &str = "3.17.2";

/// What the venv holds, as its own interpreter reports it.
pub struct Installed {
    pub mlflow: String,
    pub python: String,
}

/// The Python to make a venv with: 3.11 if it is there, the one Python 3
/// otherwise.
fn python() -> &'static str {
    let has = |name: &str| {
        Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("python3.11") {
        "python3.11"
    } else {
        "python3"
    }
}

fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<(), String> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("cannot {what}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "could not {what} ({status}); {} ends with:\n{}",
            log.display(),
            server::log_tail(log)
        ));
    }
    Ok(())
}

/// Makes the venv and installs MLflow into it unless it already has an
/// `mlflow` command; then asks it which versions it holds.
pub fn ensure_venv(venv: &Path) -> Result<Installed, String> {
    let mlflow = venv.join("bin/mlflow");
    if !mlflow.is_file() {
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let log = venv.with_extension("install.log");
        let py = python();
        eprintln!(
            "griot-bench: installing mlflow=={VERSION} from PyPI into {} with {py} \
             (a few minutes; log in {})...",
            venv.display(),
            log.display()
        );
        run_logged(
            Command::new(py).arg("-m").arg("venv").arg(venv),
            &log,
            "create the venv",
        )?;
        run_logged(
            Command::new(venv.join("bin/pip"))
                .arg("install")
                .arg(format!("mlflow=={VERSION}")),
            &log,
            &format!("pip install mlflow=={VERSION}"),
        )?;
    }
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg("import sys, mlflow; print(mlflow.__version__, sys.version.split()[0])")
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the venv's python: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    match (out.status.success(), words.next(), words.next()) {
        (true, Some(m), Some(p)) => {
            if m != VERSION {
                eprintln!(
                    "griot-bench: warning: {} holds mlflow {m}, not the pinned {VERSION}",
                    venv.display()
                );
            }
            Ok(Installed {
                mlflow: m.to_owned(),
                python: p.to_owned(),
            })
        }
        _ => Err(format!(
            "{} has no working mlflow (import failed); remove it to reinstall",
            venv.display()
        )),
    }
}

/// MLflow's server: `mlflow server`, which starts uvicorn, which starts
/// its workers; all in one process group of their own.
pub struct Mlflow {
    child: Option<Child>,
    /// The group's id: the pid of `mlflow server`.
    pub pgid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// The command line, as the report shows it.
    pub command: String,
}

impl Mlflow {
    /// Starts the server in `dir` on a SQLite file there, with its default
    /// server and artifact settings (`workers` if given), and waits for its
    /// `/health` to answer 200. Returns it and the time that took.
    pub fn start(
        venv: &Path,
        dir: &Path,
        workers: Option<u32>,
    ) -> Result<(Mlflow, Duration), String> {
        let port = server::free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = dir.join("mlflow.log");
        let out =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut args = vec![
            "server".to_owned(),
            "--backend-store-uri".to_owned(),
            format!("sqlite:///{}", dir.join("mlflow.db").display()),
            "--host".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
        ];
        if let Some(w) = workers {
            args.extend(["--workers".to_owned(), w.to_string()]);
        }
        let bin = venv.join("bin/mlflow");
        let command = format!("{} {}", bin.display(), args.join(" "));
        let spawned = Instant::now();
        let child = Command::new(&bin)
            .args(&args)
            // Its default artifact store (./mlartifacts) lands in the temp
            // folder; the load writes no artifacts.
            .current_dir(dir)
            // There is no network here; a telemetry thread would only spend
            // CPU on failing to send.
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pgid = child.id();
        cleanup::set_group(Some(pgid));
        let mut m = Mlflow {
            child: Some(child),
            pgid,
            addr,
            log,
            command,
        };
        // It runs its database migrations and imports a large package tree
        // in each worker first: tens of seconds on a busy machine.
        let deadline = spawned + Duration::from_secs(300);
        loop {
            if server::probe(addr, "/health") == Some(200) {
                return Ok((m, spawned.elapsed()));
            }
            if let Some(child) = m.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                m.child = None;
                cleanup::signal_group(pgid, "KILL");
                cleanup::set_group(None);
                return Err(format!(
                    "mlflow server exited ({status}) before it was ready; its log ends with:\n{}",
                    server::log_tail(&m.log)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "mlflow server was not ready after 300 s; its log ends with:\n{}",
                    server::log_tail(&m.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pids in the server's process group.
    pub fn members(&self) -> Vec<u32> {
        group_members(self.pgid)
    }

    /// User and system CPU ticks summed over the group's live processes.
    pub fn cpu_ticks(&self) -> (u64, u64) {
        self.members()
            .iter()
            .map(|p| server::cpu_ticks(&p.to_string()))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Waits until the group uses less than a tenth of a core over a
    /// second, at most `max`; how long that took. Its `/health` answers
    /// before its job runner has started its consumers, each of which
    /// imports MLflow again: seconds of CPU each, which would otherwise be
    /// spent during the first fill.
    pub fn wait_quiet(&self, max: Duration) -> Duration {
        let started = Instant::now();
        let tps = server::ticks_per_sec();
        let ticks = |pids: &[u32]| -> Vec<(u32, u64)> {
            pids.iter()
                .map(|p| {
                    let (u, s) = server::cpu_ticks(&p.to_string());
                    (*p, u + s)
                })
                .collect()
        };
        let mut before = ticks(&self.members());
        while started.elapsed() < max {
            std::thread::sleep(Duration::from_secs(1));
            let after = ticks(&self.members());
            // A process that started in between counts from zero: it is
            // busy starting up.
            let used: u64 = after
                .iter()
                .map(|(p, t)| {
                    let was = before.iter().find(|b| b.0 == *p).map_or(0, |b| b.1);
                    t.saturating_sub(was)
                })
                .sum();
            if used * 10 < tps {
                break;
            }
            before = after;
        }
        started.elapsed()
    }

    /// PSS summed over the group's live processes, and how many there are.
    pub fn pss_kib(&self) -> (u64, usize) {
        let members = self.members();
        (members.iter().map(|p| pss_kib(*p)).sum(), members.len())
    }

    /// SIGTERM to the whole group, SIGKILL to whatever is left after
    /// `grace`. Returns how it went.
    pub fn stop(&mut self, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        cleanup::signal_group(self.pgid, "TERM");
        let deadline = Instant::now() + grace;
        let outcome = loop {
            let left = self.members().len();
            match child.try_wait() {
                Ok(Some(status)) if left == 0 => {
                    break format!("exited on SIGTERM ({status}), with all its processes");
                }
                Ok(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    cleanup::signal_group(self.pgid, "KILL");
                    let _ = child.wait();
                    break format!(
                        "{left} of its processes still running {grace:?} after SIGTERM; killed"
                    );
                }
            }
        };
        cleanup::set_group(None);
        outcome
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            cleanup::signal_group(self.pgid, "KILL");
            let _ = child.wait();
            cleanup::set_group(None);
        }
    }
}

/// Every live process whose process group is `pgid` (field 5 of
/// /proc/<pid>/stat), zombies left out.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
            let mut fields = after.split_whitespace();
            let state = fields.next();
            let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            state != Some("Z") && group == Some(pgid)
        })
        .collect()
}

/// Proportional set size of `pid` in KiB: its private pages plus its share
/// of pages it shares. Unlike VmRSS it adds up over processes that share
/// pages (MLflow's workers are forks of one interpreter image).
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// How the server runs, from its process group: the command line of the
/// uvicorn supervisor (if that is what serves it), how many workers it was
/// told to run and how many worker processes it spawned (none for one
/// worker: uvicorn then serves in its own process), and how many processes
/// the group holds.
pub struct Processes {
    pub http_server: Option<String>,
    pub workers_flag: Option<u32>,
    pub workers: usize,
    pub total: usize,
}

pub fn describe_processes(m: &Mlflow) -> Processes {
    let mut p = Processes {
        http_server: None,
        workers_flag: None,
        workers: 0,
        total: 0,
    };
    for pid in m.members() {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cmd = args.join(" ");
        p.total += 1;
        if cmd.contains("-m uvicorn") || cmd.contains("-m gunicorn") {
            p.workers_flag = args
                .iter()
                .position(|a| a == "--workers" || a == "-w")
                .and_then(|i| args.get(i + 1)?.parse().ok());
            p.http_server = Some(cmd);
        } else if cmd.contains("multiprocessing.spawn") || cmd.contains("gunicorn: worker") {
            // uvicorn's workers are multiprocessing children of its
            // supervisor; the resource tracker beside them is not one.
            p.workers += 1;
        }
    }
    p
}
