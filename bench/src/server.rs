//! The server under test: the release binary as a child process, its
//! readiness, memory and CPU as /proc reports them, and a guard that kills
//! it whatever happens to the bench.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::cleanup;

pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// One blocking GET, `Connection: close`; the status code.
pub fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut head[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    std::str::from_utf8(&head[..got])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Server {
    /// Spawns `bin serve` on `db` and waits for /health/ready to answer 200.
    /// Returns the server and the time from spawn to that 200.
    pub fn start(
        bin: &Path,
        db: &Path,
        durability: &str,
        log: PathBuf,
    ) -> Result<(Server, Duration), String> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log_file =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let spawned = Instant::now();
        let child = Command::new(bin)
            .arg("serve")
            .arg("--db")
            .arg(db)
            .arg("--bind")
            .arg(addr.to_string())
            .arg("--durability")
            .arg(durability)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        cleanup::set_server(Some(pid));
        let mut server = Server {
            child: Some(child),
            pid,
            addr,
            log,
        };
        let deadline = spawned + Duration::from_secs(120);
        loop {
            if probe(addr, "/health/ready") == Some(200) {
                return Ok((server, spawned.elapsed()));
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                server.child = None;
                cleanup::set_server(None);
                return Err(format!(
                    "the server exited ({status}) before it was ready; its log ends with:\n{}",
                    log_tail(&server.log)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server was not ready after 120 s; its log ends with:\n{}",
                    log_tail(&server.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns
    /// how it exited.
    pub fn stop(&mut self, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + grace;
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => break format!("exited on SIGTERM ({status})"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break format!("did not exit within {grace:?} of SIGTERM; killed");
                }
            }
        };
        cleanup::set_server(None);
        outcome
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            cleanup::set_server(None);
        }
    }
}

/// VmRSS and VmHWM of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User and system CPU time of `pid` (or of this process with "self"), in
/// clock ticks.
pub fn cpu_ticks(pid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    (get(11), get(12))
}

/// Clock ticks per second, as getconf says (100 nearly everywhere).
pub fn ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
