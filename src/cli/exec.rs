//! `griot-registry exec`: runs a command as a recorded run.
//!
//! The run is created `running` before the command starts, kept alive by
//! heartbeats while it runs, and marked `completed` (exit 0) or `failed`
//! (anything else) with the outcome in its metadata. The command's stdin,
//! stdout and stderr are its own, and exec exits with its status (128+N when
//! signal N killed it), so a cron line or a shell script behaves as without
//! exec. The registry is a witness, never a gate: when it cannot be reached
//! or refuses, exec says so once on stderr and the command runs anyway.

use std::{
    cell::Cell,
    future::poll_fn,
    io::ErrorKind,
    path::Path,
    process::{ExitCode, ExitStatus},
    task::Poll,
    time::Duration,
};

use clap::CommandFactory;
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::{Map, Value, json};
use tokio::{
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    time::Instant,
};

use super::client::{Registry, parse_base_url};
use crate::cli::args::{Cli, ExecArgs};

/// Every message exec writes itself starts with this.
const PREFIX: &str = "griot-registry exec";
/// The warning when there is no run to record the command in.
const UNRECORDED: &str = "running the command without recording it";
/// How long creating the run may hold the command back, retries included;
/// also how long recording the result may take.
const WRITE_BUDGET: Duration = Duration::from_secs(6);
/// The run is failed by the registry after this many heartbeat intervals of
/// silence.
const MISSED_HEARTBEATS: u64 = 3;
/// Signals passed on to the command.
const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The registry's URL when neither --url nor GRIOT_URL nor REGISTRY_URL is set.
const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Runs `args.command` as a recorded run and returns its exit status.
pub fn run(args: ExecArgs) -> ExitCode {
    let url = registry_url(args.url.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{PREFIX}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(supervise(args, url));
    ExitCode::from(code)
}

/// --url or GRIOT_URL (checked by clap), else REGISTRY_URL, else the
/// default. A bad REGISTRY_URL is a usage error, before anything runs.
fn registry_url(given: Option<String>) -> String {
    if let Some(url) = given {
        return url;
    }
    match std::env::var("REGISTRY_URL") {
        Ok(url) if !url.is_empty() => parse_base_url(&url).unwrap_or_else(|e| {
            let mut cli = Cli::command();
            cli.build();
            let exec = cli.find_subcommand_mut("exec").expect("exec is a command");
            exec.error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid REGISTRY_URL '{url}': {e}"),
            )
            .exit()
        }),
        _ => DEFAULT_URL.to_owned(),
    }
}

/// Prints the first registry problem, and only the first: one line on
/// stderr per job is informative, one per heartbeat would be noise.
#[derive(Default)]
struct Warning(Cell<bool>);

impl Warning {
    fn once(&self, what: &str, cause: &dyn std::fmt::Display) {
        if !self.0.replace(true) {
            eprintln!("{PREFIX}: {what}: {cause}");
        }
    }
}

async fn supervise(args: ExecArgs, url: String) -> u8 {
    let warning = Warning::default();
    let program = &args.command[0];
    let registry = match std::env::var("GRIOT_API_KEY") {
        Ok(key) if !key.is_empty() => Registry::new(&url, &key)
            .map_err(|e| warning.once(UNRECORDED, &e))
            .ok(),
        _ => {
            warning.once(UNRECORDED, &"GRIOT_API_KEY is not set");
            None
        }
    };
    let mut run_id = None;
    if let Some(registry) = &registry {
        let body = create_body(&args);
        let key = idempotency_key();
        match registry.create_run(&body, &key, WRITE_BUDGET).await {
            Ok(id) => run_id = Some(id),
            Err(e) => warning.once(UNRECORDED, &e),
        }
    }
    // Before the command starts, so a signal sent the moment after is
    // caught and passed on rather than killing exec alone.
    let mut signals = Signals::install();

    let mut command = Command::new(program);
    command.args(&args.command[1..]);
    if let Some(id) = &run_id {
        command.env("GRIOT_RUN_ID", id);
    }
    // The command's own duration, without the registry's share.
    let started = Instant::now();
    let outcome = match command.spawn() {
        Ok(mut child) => {
            let heartbeats = async {
                match (&registry, &run_id) {
                    (Some(r), Some(id)) if args.heartbeat_seconds > 0 => {
                        let every = Duration::from_secs(args.heartbeat_seconds);
                        send_heartbeats(r, id, every, &warning).await
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                status = wait_forwarding(&mut child, &mut signals) => match status {
                    Ok(status) => Outcome::of(status),
                    Err(e) => Outcome::Lost(e.to_string()),
                },
                never = heartbeats => match never {},
            }
        }
        Err(e) => {
            eprintln!("{PREFIX}: cannot run {}: {e}", program.to_string_lossy());
            Outcome::NotStarted(e)
        }
    };

    if let (Some(registry), Some(id)) = (&registry, &run_id) {
        let body = outcome.patch(started.elapsed());
        if let Err(e) = registry.update_run(id, &body, WRITE_BUDGET).await {
            warning.once(&format!("could not record the result of run {id}"), &e);
        }
    }
    outcome.exit_code()
}

/// The new run: `running`, named after the command unless told otherwise,
/// with what identifies this execution in its metadata.
fn create_body(args: &ExecArgs) -> Value {
    let program = &args.command[0];
    let mut metadata = Map::new();
    metadata.insert("command".into(), program.to_string_lossy().into());
    metadata.insert("arg_count".into(), (args.command.len() - 1).into());
    if args.record_args {
        let list = args.command[1..].iter().map(|a| a.to_string_lossy().into());
        metadata.insert("args".into(), Value::Array(list.collect()));
    }
    if let Some(host) = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
    {
        metadata.insert("host".into(), host.into());
    }
    // The caller's keys win over exec's own.
    metadata.extend(args.metadata.clone().unwrap_or_default());

    let pipeline_name = args.pipeline_name.clone().or_else(|| {
        Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    let mut body = json!({
        "contract_id": args.contract_id,
        "status": "running",
        "metadata": metadata,
    });
    if let Some(name) = pipeline_name {
        body["pipeline_name"] = name.into();
    }
    if let Some(id) = &args.pipeline_id {
        body["pipeline_id"] = id.as_str().into();
    }
    if args.heartbeat_seconds > 0 {
        body["heartbeat_timeout_seconds"] = (args.heartbeat_seconds * MISSED_HEARTBEATS).into();
    }
    body
}

/// A fresh key per exec, kept across the retries of its one create.
fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the key is still unique enough for one process's
    // retries: they all use the same one.
    let _ = getrandom::fill(&mut bytes);
    format!("exec-{}-{}", std::process::id(), hex::encode(bytes))
}

/// Heartbeats every `every` until dropped. A refusal (the run is final, the
/// key revoked) stops them; a registry that is down is tried again next
/// time. Never returns.
async fn send_heartbeats(
    registry: &Registry,
    run_id: &str,
    every: Duration,
    warning: &Warning,
) -> std::convert::Infallible {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = registry.heartbeat(run_id).await {
            warning.once(&format!("heartbeat for run {run_id} failed"), &e);
            if e.is_refusal() {
                return std::future::pending().await;
            }
        }
    }
}

/// Waits for the child, passing on the signals exec receives meanwhile.
async fn wait_forwarding(child: &mut Child, signals: &mut Signals) -> std::io::Result<ExitStatus> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    loop {
        tokio::select! {
            status = child.wait() => return status,
            sig = signals.next() => {
                if let Some(pid) = pid && should_forward(sig) {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            }
        }
    }
}

/// The child shares exec's process group, so a Ctrl-C or Ctrl-\ typed at a
/// terminal already reached it; passing SIGINT or SIGQUIT on as well would
/// deliver it twice. Sent any other way (kill, a supervisor), it is passed
/// on. SIGTERM and SIGHUP are always passed on.
fn should_forward(sig: Signal) -> bool {
    if !matches!(sig, Signal::SIGINT | Signal::SIGQUIT) {
        return true;
    }
    let foreground = std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| nix::unistd::tcgetpgrp(&tty).ok());
    foreground != Some(nix::unistd::getpgrp())
}

/// The signals exec catches while the command runs.
struct Signals(Vec<(Signal, tokio::signal::unix::Signal)>);

impl Signals {
    /// Catches the forwarded signals, except those ignored when exec
    /// started: under `nohup`, or in the background of a non-interactive
    /// shell, they stay ignored for exec and the command alike, as a shell
    /// would leave them.
    fn install() -> Self {
        Self(
            FORWARDED
                .iter()
                .filter(|&&sig| !ignored_at_start(sig))
                .filter_map(|&sig| Some((sig, signal(SignalKind::from_raw(sig as i32)).ok()?)))
                .collect(),
        )
    }

    async fn next(&mut self) -> Signal {
        poll_fn(|cx| {
            for (sig, stream) in &mut self.0 {
                if stream.poll_recv(cx).is_ready() {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Whether `sig` is ignored (SIG_IGN) right now, before exec touched it.
fn ignored_at_start(sig: Signal) -> bool {
    use nix::libc;
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with no new action, sigaction only writes the current one
    // into `current`, which is large enough and zeroed.
    let rc = unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: zeroed is a valid sigaction, and sigaction filled it in.
    rc == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// How the command ended.
#[derive(Debug)]
enum Outcome {
    Exited(i32),
    /// Killed by this signal number.
    Signalled(i32),
    /// It could not be started at all.
    NotStarted(std::io::Error),
    /// Waiting for it failed (should not happen).
    Lost(String),
}

impl Outcome {
    fn of(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(sig)) => Outcome::Signalled(sig),
            (None, None) => Outcome::Lost(format!("unexpected status {status}")),
        }
    }

    /// exec's own exit status: the command's, 128+N for signal N, and the
    /// shell's 127 (not found) or 126 (not executable) when it never ran.
    fn exit_code(&self) -> u8 {
        let code = match self {
            Outcome::Exited(code) => *code,
            Outcome::Signalled(sig) => 128 + sig,
            Outcome::NotStarted(e) if e.kind() == ErrorKind::NotFound => 127,
            Outcome::NotStarted(_) => 126,
            Outcome::Lost(_) => 1,
        };
        u8::try_from(code).unwrap_or(1)
    }

    /// The final update: status, and the outcome merged into the metadata.
    fn patch(&self, took: Duration) -> Value {
        let mut metadata = Map::new();
        let failure = match self {
            Outcome::Exited(0) => None,
            Outcome::Exited(_) => Some("nonzero_exit"),
            Outcome::Signalled(n) => {
                let name = Signal::try_from(*n)
                    .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_owned());
                metadata.insert("signal".into(), name.into());
                metadata.insert("signal_number".into(), (*n).into());
                Some("signal")
            }
            Outcome::NotStarted(e) => {
                metadata.insert(
                    "error".into(),
                    format!("cannot run the command: {e}").into(),
                );
                Some("not_started")
            }
            Outcome::Lost(e) => {
                metadata.insert("error".into(), e.as_str().into());
                Some("lost")
            }
        };
        if !matches!(self, Outcome::Signalled(_)) {
            metadata.insert("exit_code".into(), self.exit_code().into());
        }
        if let Some(reason) = failure {
            metadata.insert("failure_reason".into(), reason.into());
        }
        let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        metadata.insert("duration_seconds".into(), (millis as f64 / 1000.0).into());
        json!({
            "status": if failure.is_none() { "completed" } else { "failed" },
            "metadata": metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_become_exit_codes_and_patches() {
        let ok = Outcome::Exited(0);
        assert_eq!(ok.exit_code(), 0);
        let p = ok.patch(Duration::from_millis(2503));
        assert_eq!(p["status"], "completed");
        assert_eq!(p["metadata"]["exit_code"], 0);
        assert_eq!(p["metadata"]["duration_seconds"], 2.503);
        assert!(p["metadata"].get("failure_reason").is_none());

        let three = Outcome::Exited(3);
        assert_eq!(three.exit_code(), 3);
        let p = three.patch(Duration::ZERO);
        assert_eq!(p["status"], "failed");
        assert_eq!(p["metadata"]["exit_code"], 3);
        assert_eq!(p["metadata"]["failure_reason"], "nonzero_exit");

        let killed = Outcome::Signalled(9);
        assert_eq!(killed.exit_code(), 137);
        let p = killed.patch(Duration::ZERO);
        assert_eq!(p["metadata"]["signal"], "SIGKILL");
        assert_eq!(p["metadata"]["signal_number"], 9);
        assert!(p["metadata"].get("exit_code").is_none());

        let missing = Outcome::NotStarted(ErrorKind::NotFound.into());
        assert_eq!(missing.exit_code(), 127);
        assert_eq!(missing.patch(Duration::ZERO)["metadata"]["exit_code"], 127);
        assert_eq!(
            Outcome::NotStarted(ErrorKind::PermissionDenied.into()).exit_code(),
            126
        );
    }
}
