//! What must not outlive the bench: the server process (and in the MLflow
//! comparison, MLflow's process group) and the temporary folder. Normal exits and errors clean up through `TempDir`'s and
//! `Server`'s drops; Ctrl-C and SIGTERM through `install_signal_handler`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

struct State {
    server: Option<u32>,
    /// A process group to kill whole: MLflow's server forks a uvicorn
    /// supervisor, its workers and a job runner, which a kill of the first
    /// process alone would leave running.
    group: Option<u32>,
    dir: Option<PathBuf>,
}

static STATE: Mutex<State> = Mutex::new(State {
    server: None,
    group: None,
    dir: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn set_server(pid: Option<u32>) {
    state().server = pid;
}

pub fn set_group(pgid: Option<u32>) {
    state().group = pgid;
}

/// Sends `signal` ("TERM", "KILL") to every process of group `pgid`.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(std::process::Stdio::null())
        .status();
}

/// A folder removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn create(base: &Path) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!("griot-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| format!("cannot create the folder {}: {e}", path.display()))?;
        state().dir = Some(path.clone());
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        state().dir = None;
    }
}

/// On SIGINT or SIGTERM: kill the server, remove the folder, exit 130.
pub fn install_signal_handler() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                () = term => {},
            }
        });
        let (server, group, dir) = {
            let s = state();
            (s.server, s.group, s.dir.clone())
        };
        if let Some(pgid) = group {
            signal_group(pgid, "KILL");
        }
        if let Some(pid) = server {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("griot-bench: interrupted; server stopped and temporary files removed");
        std::process::exit(130);
    });
}
