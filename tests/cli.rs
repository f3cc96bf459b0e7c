//! The real binary: key management commands, `serve` with bootstrap,
//! revocation while serving, graceful shutdown, and `openapi`.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use r2d2_sqlite::rusqlite;

const BIN: &str = env!("CARGO_BIN_EXE_griot-registry");

fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("GRIOT_DB")
        .output()
        .expect("run griot-registry")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn create_key(db: &Path, name: &str, scope: &str) -> String {
    let out = cli(db, &["keys", "create", "--name", name, "--scope", scope]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    assert!(secret.starts_with("grk_") && secret.len() == 68, "{secret}");
    secret
}

#[test]
fn keys_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let secret = create_key(&db, "airflow", "write");
    let reader = create_key(&db, "grafana", "read");
    assert_ne!(secret, reader);

    let out = cli(&db, &["keys", "list"]);
    assert!(out.status.success());
    let listing = stdout(&out);
    assert!(
        listing.contains("airflow") && listing.contains("grafana"),
        "{listing}"
    );
    assert!(listing.contains("write") && listing.contains("read"));
    assert!(!listing.contains(&secret) && !listing.contains(&reader));

    let dup = cli(&db, &["keys", "create", "--name", "airflow"]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));

    let out = cli(&db, &["keys", "revoke", "airflow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&cli(&db, &["keys", "list"]));
    let line = listing.lines().find(|l| l.starts_with("airflow")).unwrap();
    assert!(line.contains("yes"), "{line}");

    let missing = cli(&db, &["keys", "revoke", "nobody"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("nobody"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(db: &Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = db.with_extension(format!("{port}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .env_remove("GRIOT_BOOTSTRAP_API_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start serve");
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = server.http("GET", "/health/ready", None, None) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready: {}", server.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A minimal HTTP/1.1 exchange, enough for these checks.
    fn http(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<(u16, serde_json::Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(k) = key {
            req.push_str(&format!("X-API-Key: {k}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes())?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status: u16 = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let json = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
            .unwrap_or_default();
        Ok((status, json))
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_without_keys_warns_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let server = Server::start(&db, &[]);
    let (status, body) = server
        .http("POST", "/api/v1/runs", None, Some(r#"{"contract_id":"c"}"#))
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["detail"]["code"], "UNAUTHORIZED");
    let log = server.log();
    assert!(log.contains("no API keys exist"), "{log}");
    assert!(log.contains("keys create"), "{log}");
}

#[test]
fn bootstrap_key_is_registered_once_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let secret = format!("grk_{}", "7e".repeat(32));
    let env = [
        ("GRIOT_BOOTSTRAP_API_KEY", secret.as_str()),
        ("GRIOT_BOOTSTRAP_API_KEY_NAME", "ci-bot"),
    ];
    for round in 0..2 {
        let server = Server::start(&db, &env);
        let (status, run) = server
            .http(
                "POST",
                "/api/v1/runs",
                Some(&secret),
                Some(r#"{"contract_id":"c"}"#),
            )
            .unwrap();
        assert_eq!(status, 201, "round {round}: {run}");
        assert_eq!(run["created_by"], "ci-bot");
        let log = server.log();
        assert!(!log.contains(&secret[4..]), "the secret reached the log");
        let exit = server.terminate();
        assert!(exit.success(), "serve exits 0 on SIGTERM: {exit:?}");
    }
    let listing = stdout(&cli(&db, &["keys", "list"]));
    assert_eq!(
        listing.lines().filter(|l| l.starts_with("ci-bot")).count(),
        1
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "both runs survived the restart");
}

#[test]
fn a_key_revoked_by_the_cli_is_refused_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let secret = create_key(&db, "airflow", "write");
    let server = Server::start(&db, &[]);
    let body = Some(r#"{"contract_id":"c"}"#);
    assert_eq!(
        server
            .http("POST", "/api/v1/runs", Some(&secret), body)
            .unwrap()
            .0,
        201
    );
    let out = cli(&db, &["keys", "revoke", "airflow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, err) = server
        .http("POST", "/api/v1/runs", Some(&secret), body)
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        err["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[test]
fn requests_are_logged_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let secret = create_key(&db, "airflow", "write");
    let server = Server::start(&db, &[]);
    server
        .http(
            "POST",
            "/api/v1/runs",
            Some(&secret),
            Some(r#"{"contract_id":"secret-contract"}"#),
        )
        .unwrap();
    let log = server.log();
    assert!(
        log.contains("POST") && log.contains("/api/v1/runs") && log.contains("201"),
        "{log}"
    );
    assert!(!log.contains(&secret[4..]), "the key reached the log");
    assert!(!log.contains("secret-contract"), "the body reached the log");
}

#[test]
fn openapi_command_prints_the_checked_in_spec() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert_eq!(stdout(&out).trim_end(), file.trim_end());
    let out = Command::new(BIN)
        .args(["openapi", "--yaml"])
        .output()
        .unwrap();
    assert!(stdout(&out).starts_with("openapi: 3"), "{}", stdout(&out));
}

#[test]
fn a_database_in_a_missing_folder_is_a_clear_error() {
    let out = cli(Path::new("/nonexistent/dir/r.db"), &["keys", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
