//! Connection hygiene and shutdown of the real binary: idle and slow
//! sockets cannot lock clients out, and SIGTERM answers every wait and
//! exits promptly.

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::server::{BIN, free_port, http};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

const KEY_HEX: &str = "5a";

fn bootstrap_key() -> String {
    format!("grk_{}", KEY_HEX.repeat(32))
}

/// `serve` on a free port, optionally under a lowered open-file limit.
struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Serve {
    fn start(db: &Path, args: &[&str], fd_limit: Option<u64>) -> Serve {
        let port = free_port();
        let log = db.with_extension(format!("{port}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .args(args)
            .env("GRIOT_BOOTSTRAP_API_KEY", bootstrap_key())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(limit) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs
            // in the child between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).map_err(std::io::Error::from)
                });
            }
        }
        let child = cmd.spawn().expect("start serve");
        let server = Serve { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(port, "GET", "/health/ready", None, None) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready: {}", server.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// The exit status, or None if the server still runs after `within`.
    fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server closes `s` (EOF or reset); the time it took, or
/// None if it stayed open for `within`. `poke` runs between reads.
fn closed_within(
    s: &mut TcpStream,
    within: Duration,
    mut poke: impl FnMut(&mut TcpStream),
) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while started.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => poke(s),
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn ten_times_the_fd_limit_in_idle_and_slow_sockets_leaves_health_answering() {
    const SERVER_FDS: u64 = 256;
    let sockets = usize::try_from(SERVER_FDS * 10).unwrap();
    // This process holds all those sockets itself.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 && hard >= 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        soft >= 3000,
        "this test needs 3000 open files; the limit is {soft}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(&dir.path().join("r.db"), &[], Some(SERVER_FDS));
    let mut idle = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let addr = ("127.0.0.1", server.port);
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                // Half of them start a request and never finish its head.
                if idle.len() % 2 == 1 {
                    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
                }
                idle.push(s);
            }
            Err(e) => panic!("connect #{} failed: {e}\n{}", idle.len(), server.log()),
        }
    }
    let started = Instant::now();
    let answer = http(server.port, "GET", "/health", None, None);
    let took = started.elapsed();
    assert!(
        matches!(answer, Ok((200, _))),
        "{answer:?} with {} idle sockets\n{}",
        idle.len(),
        server.log()
    );
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    // Readiness touches the database: files for SQLite are left too.
    let ready = http(server.port, "GET", "/health/ready", None, None);
    assert!(matches!(ready, Ok((200, _))), "{ready:?}\n{}", server.log());
}

/// The CPU time the process has used (user + system), from /proc.
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[cfg(target_os = "linux")]
#[test]
fn running_out_of_file_descriptors_neither_spins_nor_locks_clients_out() {
    const SERVER_FDS: u64 = 128;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 && hard >= 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    // A cap far above the limit: only the out-of-files path protects it.
    let server = Serve::start(
        &dir.path().join("r.db"),
        &["--max-connections", "100000"],
        Some(SERVER_FDS),
    );
    let idle: Vec<TcpStream> = (0..SERVER_FDS * 4)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let started = Instant::now();
    let answer = http(server.port, "GET", "/health", None, None);
    let took = started.elapsed();
    assert!(
        matches!(answer, Ok((200, _))),
        "{answer:?}\n{}",
        server.log()
    );
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    assert!(
        server.log().contains("out of file descriptors"),
        "{}",
        server.log()
    );
    // With the sockets still open, the server rests instead of retrying
    // accept in a loop.
    let pid = server.child.id();
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(pid) - before;
    assert!(
        used < Duration::from_millis(500),
        "used {used:?} of CPU in 1 s idle"
    );
    drop(idle);
}

#[test]
fn idle_and_slow_header_sockets_are_closed_after_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(
        &dir.path().join("r.db"),
        &[
            "--keep-alive-timeout-seconds",
            "1",
            "--header-read-timeout-seconds",
            "2",
        ],
        None,
    );
    let port = server.port;

    // A socket that never sends a byte.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10), |_| {});
    let took = took.expect("an idle socket stayed open");
    assert!(
        took >= Duration::from_millis(500),
        "closed too soon: {took:?}"
    );

    // Slowloris: a header line every 300 ms keeps bytes coming (which an
    // idle timer alone would take for activity), but the head never ends.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(10), |s| {
        let _ = s.write_all(b"X-Slow: 1\r\n");
    });
    let took = took.expect("a slow header stayed open");
    assert!(
        took >= Duration::from_millis(1500),
        "closed too soon: {took:?}"
    );

    // A keep-alive client is served twice on one connection, then closed
    // once it stays idle.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..2 {
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = kept.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    assert!(closed_within(&mut kept, Duration::from_secs(10), |_| {}).is_some());
    assert!(matches!(
        http(port, "GET", "/health", None, None),
        Ok((200, _))
    ));
}

#[test]
fn past_the_cap_with_every_connection_busy_newcomers_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(&dir.path().join("r.db"), &["--max-connections", "2"], None);
    let id = create_running_run(server.port);
    let port = server.port;
    // Two waits fill the cap with requests in flight.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let path = format!("/api/v1/runs/{id}/wait?timeout=3");
            std::thread::spawn(move || http(port, "GET", &path, None, None))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = third.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let took = closed_within(&mut third, Duration::from_secs(2), |_| {});
    assert!(
        took.is_some(),
        "a connection past the cap was served or kept"
    );
    for waiter in waiters {
        let (status, body) = waiter.join().unwrap().unwrap();
        assert_eq!(
            (status, &body["done"]),
            (200, &serde_json::json!(false)),
            "{body}"
        );
    }
    // Room again once they are answered.
    assert!(matches!(
        http(port, "GET", "/health", None, None),
        Ok((200, _))
    ));
}

#[test]
fn http2_connections_are_told_the_stream_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(
        &dir.path().join("r.db"),
        &["--http2-max-concurrent-streams", "7"],
        None,
    );
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // h2c with prior knowledge: the preface, then an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    // The server's first frame is its SETTINGS.
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 4, "not a SETTINGS frame: {head:?}");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS is 0x3.
    assert!(settings.contains(&(3, 7)), "{settings:?}");
}

fn create_running_run(port: u16) -> String {
    let (status, run) = http(
        port,
        "POST",
        "/api/v1/runs",
        Some(&bootstrap_key()),
        Some(r#"{"contract_id":"c","status":"running"}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

#[test]
fn sigterm_answers_every_wait_and_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // The grace period is long, so a prompt exit shows that nothing waits
    // it out.
    let mut server = Serve::start(
        &dir.path().join("r.db"),
        &["--shutdown-grace-seconds", "30"],
        None,
    );
    let id = create_running_run(server.port);
    let port = server.port;
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let path = format!("/api/v1/runs/{id}/wait?timeout=60");
            std::thread::spawn(move || http(port, "GET", &path, None, None))
        })
        .collect();
    // Let the waits reach the server (setup, not an assertion).
    std::thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    server.signal("TERM");
    let exit = server.exit_within(Duration::from_secs(20));
    let took = signalled.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("serve did not stop\n{}", server.log()));
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for waiter in waiters {
        let (status, body) = waiter.join().unwrap().expect("the wait got no answer");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["done"], false, "{body}");
        assert_eq!(body["run"]["id"], id.as_str(), "{body}");
        assert_eq!(body["run"]["status"], "running", "{body}");
    }
}

#[test]
fn a_second_signal_during_a_slow_shutdown_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Serve::start(
        &dir.path().join("r.db"),
        &["--shutdown-grace-seconds", "60"],
        None,
    );
    // A request in flight that will not finish by itself: a body promised
    // and never sent.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(
        b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"contract",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    server.signal("TERM");
    assert!(
        server.exit_within(Duration::from_secs(1)).is_none(),
        "the first signal should wait for the request in flight\n{}",
        server.log()
    );
    let signalled = Instant::now();
    server.signal("TERM");
    let exit = server
        .exit_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("a second SIGTERM did not stop serve\n{}", server.log()));
    assert!(signalled.elapsed() < Duration::from_secs(3));
    // 128 + SIGTERM, as a shell reports a process killed by it.
    assert_eq!(
        exit.code(),
        Some(143),
        "{exit:?} (signal {:?})",
        exit.signal()
    );
    drop(slow);
}

#[test]
fn a_body_that_trickles_in_is_cut_off_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(
        &dir.path().join("r.db"),
        &["--body-timeout-seconds", "1"],
        None,
    );
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The head arrives at once; the body promises 100 bytes and sends 10,
    // then a byte at a time, each before any idle timer would fire.
    slow.write_all(
        format!(
            "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"contract",
            bootstrap_key()
        )
        .as_bytes(),
    )
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let _ = slow.write_all(b" ");
        slow.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the trickling body was never cut off"
        );
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"REQUEST_TIMEOUT\""), "{text}");
    assert!(text.contains("--body-timeout-seconds"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "cut off too soon"
    );
    // Nothing was created, and the server still answers.
    assert!(matches!(
        http(server.port, "GET", "/api/v1/runs", None, None),
        Ok((200, body)) if body["total"] == 0
    ));
}
