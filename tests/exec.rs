//! `griot-registry exec`: the real binary runs real commands against a real
//! server, and the runs it records are read back over HTTP.

mod common;

use std::{
    borrow::BorrowMut,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::server::{BIN, Server, free_port};
use serde_json::Value;
use tempfile::TempDir;

const KEY: &str = "grk_5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// A server with a write key named `cron`, on its own temporary database.
struct Registry {
    server: Server,
    _dir: TempDir,
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(
            &dir.path().join("r.db"),
            &[
                ("GRIOT_BOOTSTRAP_API_KEY", KEY),
                ("GRIOT_BOOTSTRAP_API_KEY_NAME", "cron"),
            ],
        );
        Self { server, _dir: dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The runs of a contract, newest first.
    fn runs(&self, contract: &str) -> Vec<Value> {
        let (status, page) = self
            .server
            .http(
                "GET",
                &format!("/api/v1/runs?contract_id={contract}"),
                None,
                None,
            )
            .unwrap();
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    /// The one run of a contract, in full.
    fn only_run(&self, contract: &str) -> Value {
        let runs = self.runs(contract);
        assert_eq!(runs.len(), 1, "{runs:?}");
        let id = runs[0]["id"].as_str().unwrap();
        let (status, run) = self
            .server
            .http("GET", &format!("/api/v1/runs/{id}"), None, None)
            .unwrap();
        assert_eq!(status, 200, "{run}");
        run
    }
}

/// `griot-registry exec --url URL <args>`, with the test key, and nothing
/// from the environment that could point it elsewhere.
fn exec(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("exec")
        .args(["--url", url])
        .args(args)
        .env("GRIOT_API_KEY", KEY)
        .env_remove("GRIOT_URL")
        .env_remove("REGISTRY_URL")
        .env_remove("GRIOT_HEARTBEAT_SECONDS")
        .env_remove("GRIOT_LOG")
        .env_remove("RUST_LOG");
    cmd
}

fn run(mut cmd: impl BorrowMut<Command>) -> Output {
    cmd.borrow_mut().output().expect("run griot-registry exec")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_0_completes_the_run_with_its_metadata() {
    let reg = Registry::start();
    let out = run(exec(
        &reg.url(),
        &[
            "--contract-id",
            "c-ok",
            "--metadata",
            r#"{"team": "growth", "command": "mine"}"#,
            "--",
            "sh",
            "-c",
            "printf '%s' \"$GRIOT_RUN_ID\"",
            "secret-argument",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing to say when all went well");

    let run = reg.only_run("c-ok");
    assert_eq!(out.stdout, run["id"].as_str().unwrap().as_bytes());
    assert_eq!(run["status"], "completed");
    assert_eq!(run["created_by"], "cron");
    assert_eq!(run["pipeline_name"], "sh", "defaults to the command's name");
    assert_eq!(run["heartbeat_timeout_seconds"], 90);
    let m = &run["metadata"];
    assert_eq!(m["exit_code"], 0);
    assert_eq!(m["team"], "growth");
    assert_eq!(m["command"], "mine", "--metadata wins over exec's keys");
    assert_eq!(m["arg_count"], 3);
    assert!(
        !run.to_string().contains("secret-argument"),
        "arguments are not recorded by default: {run}"
    );
    assert!(m["host"].as_str().is_some_and(|h| !h.is_empty()), "{m}");
    assert!(m["duration_seconds"].as_f64().is_some(), "{m}");
    assert!(m.get("failure_reason").is_none(), "{m}");
}

#[test]
fn exit_3_fails_the_run_and_is_passed_through() {
    let reg = Registry::start();
    let out = run(exec(
        &reg.url(),
        &[
            "--contract-id",
            "c-three",
            "--pipeline-name",
            "nightly",
            "--pipeline-id",
            "cron-42",
            "--record-args",
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
    ));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run = reg.only_run("c-three");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["pipeline_name"], "nightly");
    assert_eq!(run["pipeline_id"], "cron-42");
    assert_eq!(run["metadata"]["exit_code"], 3);
    assert_eq!(run["metadata"]["failure_reason"], "nonzero_exit");
    assert_eq!(run["metadata"]["args"], serde_json::json!(["-c", "exit 3"]));
}

#[test]
fn a_command_killed_by_a_signal_fails_the_run_with_the_signal() {
    let reg = Registry::start();
    let out = run(exec(
        &reg.url(),
        &["--contract-id", "c-kill", "--", "sh", "-c", "kill -KILL $$"],
    ));
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
    let run = reg.only_run("c-kill");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["metadata"]["signal"], "SIGKILL");
    assert_eq!(run["metadata"]["signal_number"], 9);
    assert_eq!(run["metadata"]["failure_reason"], "signal");
}

#[test]
fn sigterm_sent_to_exec_is_passed_on_to_the_command() {
    let reg = Registry::start();
    let mut child = exec(
        &reg.url(),
        &[
            "--contract-id",
            "c-term",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the command stopped"
    );
    assert_eq!(out.status.code(), Some(128 + 15), "{}", stderr(&out));
    let run = reg.only_run("c-term");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["metadata"]["signal"], "SIGTERM");
    assert_eq!(run["metadata"]["signal_number"], 15);
}

#[test]
fn a_signal_ignored_at_start_stays_ignored_as_under_nohup() {
    let reg = Registry::start();
    // `trap "" HUP` then exec: what nohup does.
    let mut child = Command::new("sh")
        .args(["-c", r#"trap "" HUP; exec "$@""#, "sh", BIN, "exec"])
        .args(["--url", &reg.url(), "--contract-id", "c-nohup", "--"])
        .args(["sh", "-c", "echo started; sleep 1; echo survived"])
        .env("GRIOT_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    let kill = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "survived\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(reg.only_run("c-nohup")["status"], "completed");
}

#[test]
fn a_registry_that_is_down_warns_once_and_the_command_runs_untouched() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = run(exec(
        &closed,
        &[
            "--contract-id",
            "c-down",
            "--heartbeat-seconds",
            "1",
            "--",
            "sh",
            "-c",
            r"printf 'line one\n\001\377 no newline'; sleep 1.5; exit 5",
        ],
    ));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(out.stdout, b"line one\n\x01\xff no newline");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one warning: {err}");
    assert!(err.starts_with("griot-registry exec: "), "{err}");
    assert!(err.contains(&closed), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn a_refused_key_warns_once_and_the_command_still_runs() {
    let reg = Registry::start();
    let wrong = format!("grk_{}", "0".repeat(64));
    let out = run(exec(
        &reg.url(),
        &["--contract-id", "c-key", "--", "sh", "-c", "echo hi"],
    )
    .env("GRIOT_API_KEY", &wrong));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hi\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("401") && err.contains("UNAUTHORIZED"), "{err}");
    assert!(!err.contains(&wrong[4..]), "the key is never printed");
    assert!(reg.runs("c-key").is_empty());
}

#[test]
fn heartbeats_are_sent_while_the_command_runs() {
    let reg = Registry::start();
    let out = run(exec(
        &reg.url(),
        &[
            "--contract-id",
            "c-beat",
            "--heartbeat-seconds",
            "1",
            "--",
            "sleep",
            "2.5",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = reg.only_run("c-beat");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["heartbeat_timeout_seconds"], 3);
    assert!(run["last_heartbeat_at"].is_string(), "{run}");
    let log = reg.server.log();
    let beats = log
        .lines()
        .filter(|l| l.contains("/heartbeat") && l.contains("200"))
        .count();
    assert!(beats >= 2, "{beats} heartbeats in:\n{log}");
}

#[test]
fn bad_metadata_is_a_usage_error_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let closed = format!("http://127.0.0.1:{}", free_port());
    for bad in ["[1, 2]", "{not json", "\"text\""] {
        let out = run(exec(
            &closed,
            &["--contract-id", "c", "--metadata", bad, "--", "touch"],
        )
        .arg(&marker));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--metadata"), "{}", stderr(&out));
        assert!(!Path::new(&marker).exists(), "{bad}: the command ran");
    }
}

#[test]
fn a_missing_command_is_recorded_and_exits_127() {
    let reg = Registry::start();
    let out = run(exec(
        &reg.url(),
        &["--contract-id", "c-missing", "--", "/nonexistent/griot-job"],
    ));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("cannot run /nonexistent/griot-job"));
    let run = reg.only_run("c-missing");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["pipeline_name"], "griot-job");
    assert_eq!(run["metadata"]["failure_reason"], "not_started");
}
