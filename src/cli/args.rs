//! The command line. Every flag can also be set through a GRIOT_*
//! environment variable; the doc comments below are the `--help` text.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use crate::{
    domain::{keys::KeyScope, webhooks::WebhookFormat},
    store::Durability,
};

/// The most `--mmap-mib` can ask for, 1 TiB: the mapping reserves that much
/// address space up front (not memory), so the limit keeps a typo from
/// asking the kernel for more than a process can address.
const MAX_MMAP_MIB: u64 = 1 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "griot-registry",
    version,
    about = "A run registry for data pipelines.",
    after_help = "Logs go to stderr, filtered by GRIOT_LOG (else RUST_LOG; default `info`), \
        such as GRIOT_LOG=debug or GRIOT_LOG=griot_registry=debug,poem=warn; \
        --log-format json writes one JSON object per line."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How log lines on stderr are written: `text` for people, `json` (one
    /// object per line) for a log collector.
    #[arg(
        long,
        global = true,
        env = "GRIOT_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Print the OpenAPI spec (JSON unless --yaml).
    Openapi {
        /// Print YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
    /// Copy a live database to PATH consistently (SQLite's online backup);
    /// safe while `serve` runs.
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// Where to write the copy; must not exist yet.
        path: PathBuf,
    },
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create, list, delete and test webhook subscriptions, on the
    /// database file (no key needed; safe while `serve` runs, which picks
    /// changes up at once).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Delete finished runs (completed, failed, cancelled) that finished
    /// before now minus --older-than, with their events and validations;
    /// validations without a run recorded before then; and expired
    /// idempotency keys. Pending and running runs are never deleted. Safe
    /// while `serve` runs: it deletes in small batches.
    Prune(PruneArgs),
    /// Run a command and record it as a run: `running` while it runs, then
    /// `completed` on exit 0 or `failed` otherwise, with the exit code or
    /// signal, duration, host and program in the run's metadata.
    ///
    /// The command keeps its stdin, stdout and stderr, and exec exits with
    /// its status (128+N when signal N killed it). SIGINT, SIGTERM, SIGHUP
    /// and SIGQUIT sent to exec are passed on to the command. The API key
    /// comes from GRIOT_API_KEY; the command gets the run's id in
    /// GRIOT_RUN_ID. When the registry cannot be reached or refuses, exec
    /// says so once on stderr and the command runs all the same.
    #[command(after_help = "Example:\n  GRIOT_API_KEY=grk_... griot-registry exec \
        --contract-id contract-123 -- ./nightly-load.sh --day 2024-01-15")]
    Exec(ExecArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// The SQLite database file. `serve` and `keys create --create` create
    /// it when missing (readable by its owner only); the other commands
    /// refuse a file that does not exist.
    #[arg(long, env = "GRIOT_DB", default_value = "griot-registry.db")]
    pub db: PathBuf,
}

/// How webhook messages are sent: shared by `serve` and the `webhooks`
/// commands, so a target `create` accepts is one `serve` delivers to.
#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Allow webhook targets on loopback, private, link-local and metadata
    /// addresses (refused by default, after every DNS lookup, so a
    /// subscription cannot reach internal services). For on-premises
    /// receivers and tests. Takes 1/0, true/false, yes/no or on/off.
    #[arg(
        long,
        env = "GRIOT_ALLOW_PRIVATE_WEBHOOK_TARGETS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_webhook_targets: bool,

    /// How long a webhook message is retried, in seconds (1 to 604800),
    /// with backoff from 1 s to an hour; then it fails and its
    /// subscription is disabled until a message is redelivered.
    #[arg(
        long,
        env = "GRIOT_WEBHOOK_RETRY_SECONDS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..=604_800)
    )]
    pub webhook_retry_seconds: u64,

    /// How long one webhook attempt may take, in seconds (1 to 120),
    /// connecting and the receiver's answer included; a slower receiver's
    /// attempt counts as failed and is retried.
    #[arg(
        long,
        env = "GRIOT_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=120)
    )]
    pub webhook_timeout_seconds: u64,

    /// The URL people reach this registry at, for the links in Slack
    /// messages (such as https://griot.example.com); http:// and the
    /// listening address when omitted.
    #[arg(long, env = "GRIOT_PUBLIC_URL")]
    pub public_url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    /// Address to listen on, as IP:PORT or HOST:PORT (`localhost:8000`; a
    /// host name is resolved once at start, its IPv4 address preferred).
    /// The default accepts connections from this machine only; use
    /// 0.0.0.0:8000 to serve the network.
    #[arg(long, env = "GRIOT_BIND", default_value = "127.0.0.1:8000", value_parser = parse_bind)]
    pub bind: SocketAddr,

    /// Require an API key for reads too, not only for writes. The variable
    /// takes 1/0, true/false, yes/no or on/off.
    #[arg(
        long,
        env = "GRIOT_REQUIRE_AUTH_FOR_READS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub require_auth_for_reads: bool,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GRIOT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a request body may take to arrive once its head has (1 to
    /// 3600); a slower one gets 408 and the connection is closed.
    #[arg(
        long,
        env = "GRIOT_BODY_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub body_timeout_seconds: u64,

    /// How hard commits are pushed to disk: `normal` survives a crash of
    /// the process, `full` also survives a power loss (slower writes).
    #[arg(long, env = "GRIOT_DURABILITY", value_enum, default_value_t = DurabilityArg::Normal)]
    pub durability: DurabilityArg,

    /// An API key (grk_ followed by 64 hex characters) to register at start
    /// if it is not there yet, for automation that has no terminal.
    #[arg(long, env = "GRIOT_BOOTSTRAP_API_KEY", hide_env_values = true)]
    pub bootstrap_api_key: Option<String>,

    /// The name given to the bootstrap key.
    #[arg(
        long,
        env = "GRIOT_BOOTSTRAP_API_KEY_NAME",
        default_value = "bootstrap"
    )]
    pub bootstrap_api_key_name: String,

    /// How often, in seconds, runs whose heartbeat lapsed are failed (and
    /// expired idempotency keys forgotten).
    #[arg(long, env = "GRIOT_REAPER_INTERVAL_SECONDS", default_value_t = 10)]
    pub reaper_interval_seconds: u64,

    /// Longest a read may run, in milliseconds: past it SQLite stops the
    /// query, its connection goes back to the pool and the client gets 503
    /// with Retry-After. A read whose client disconnects stops at once.
    #[arg(
        long,
        env = "GRIOT_QUERY_TIMEOUT_MS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub query_timeout_ms: u64,

    /// MiB of the database file the readers read through one shared
    /// memory mapping instead of a syscall per page (0 turns it off; the
    /// rest of a larger file is read with syscalls). On a large file, lists
    /// whose rows lie all over it (a contract, a date range) get up to 1.8x
    /// faster. The file's pages the server has read then count in its RSS,
    /// once: they are the kernel's page cache, which it can reclaim, and
    /// which a container's memory is charged for either way.
    #[arg(
        long,
        env = "GRIOT_MMAP_MIB",
        default_value_t = 16 * 1024,
        value_parser = clap::value_parser!(u64).range(0..=MAX_MMAP_MIB)
    )]
    pub mmap_mib: u64,

    /// How long an Idempotency-Key is remembered, in hours.
    #[arg(long, env = "GRIOT_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_retention_hours: u32,

    /// Delete finished runs (with their events and validations) and
    /// validations without a run once they are this many days old, as
    /// `prune --older-than Nd` does: shortly after start, then hourly. Off
    /// when not given.
    #[arg(long, env = "GRIOT_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// Seconds between retention sweeps (for tests).
    #[arg(
        long,
        env = "GRIOT_RETENTION_INTERVAL_SECONDS",
        default_value_t = 3600,
        hide = true
    )]
    pub retention_interval_seconds: u64,

    /// Seconds that in-flight requests get to finish after SIGINT or
    /// SIGTERM; waits for a run answer at once with the run as it is. A
    /// second signal exits at once, with status 128 + the signal's number.
    #[arg(long, env = "GRIOT_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,

    /// Largest metadata a run may hold, in bytes of JSON, checked after each
    /// merge (and at creation); the same cap applies to a validation's
    /// metadata. Over it the request gets 422 and nothing is written.
    #[arg(
        long,
        env = "GRIOT_MAX_METADATA_BYTES",
        default_value_t = crate::domain::limits::DEFAULT_MAX_METADATA_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_metadata_bytes: usize,

    /// Largest metrics object a validation may hold, in bytes of JSON.
    #[arg(
        long,
        env = "GRIOT_MAX_METRICS_BYTES",
        default_value_t = crate::domain::limits::DEFAULT_MAX_METRICS_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_metrics_bytes: usize,

    /// Most errors, and most warnings, one validation may hold.
    #[arg(
        long,
        env = "GRIOT_MAX_VALIDATION_ISSUES",
        default_value_t = crate::domain::limits::DEFAULT_MAX_VALIDATION_ISSUES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_validation_issues: usize,

    /// Most bytes of stored data (metadata, changes, errors...) one list
    /// page holds. A page that would hold more is cut short: its `limit`
    /// then says how many items it has, `truncated` is true, and the next
    /// page starts at `offset + limit`.
    #[arg(
        long,
        env = "GRIOT_MAX_PAGE_BYTES",
        default_value_t = crate::domain::limits::DEFAULT_MAX_PAGE_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_page_bytes: usize,

    /// Connections open at once. Past it the oldest connection with no
    /// request in flight is closed to make room, so idle sockets cannot
    /// lock clients out; when every one is busy, new ones are closed at
    /// once. Default: the open-file limit (raised to the hard limit at
    /// start) less a quarter of it, and at least 64, kept for the database.
    #[arg(long, env = "GRIOT_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Seconds a connection may wait without a request, before its first
    /// or between keep-alive requests, before it is closed.
    #[arg(
        long,
        env = "GRIOT_KEEP_ALIVE_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub keep_alive_timeout_seconds: u64,

    /// Seconds a client has to send a request's headers once it started;
    /// a slower one (slowloris) is disconnected.
    #[arg(
        long,
        env = "GRIOT_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub header_read_timeout_seconds: u64,

    /// HTTP/2 streams (requests) one connection may have open at once.
    #[arg(
        long,
        env = "GRIOT_HTTP2_MAX_CONCURRENT_STREAMS",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub http2_max_concurrent_streams: u32,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// The data contract the run belongs to.
    #[arg(long)]
    pub contract_id: String,

    /// The pipeline's name; the command's file name (`nightly-load.sh` for
    /// `./nightly-load.sh`) when not given.
    #[arg(long)]
    pub pipeline_name: Option<String>,

    /// The orchestrator's own id for this execution.
    #[arg(long)]
    pub pipeline_id: Option<String>,

    /// The registry's URL [default: $REGISTRY_URL, else
    /// http://127.0.0.1:8000].
    #[arg(long, env = "GRIOT_URL", value_parser = crate::cli::client::parse_base_url)]
    pub url: Option<String>,

    /// Seconds between heartbeats while the command runs. The registry
    /// fails the run when three intervals pass without one (a crashed
    /// machine, a killed exec); 0 sends none and sets no such timeout.
    #[arg(
        long,
        env = "GRIOT_HEARTBEAT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    pub heartbeat_seconds: u64,

    /// A JSON object merged into the run's metadata, such as
    /// '{"team": "growth"}'. Its keys win over exec's own at creation; the
    /// outcome (exit_code, signal, duration_seconds, ...) is written last.
    #[arg(long, value_name = "JSON", value_parser = parse_metadata)]
    pub metadata: Option<Map<String, Value>>,

    /// Record the command's arguments in the metadata too. By default only
    /// the program and the number of arguments are recorded, since
    /// arguments often carry passwords or tokens.
    #[arg(long)]
    pub record_args: bool,

    /// The command to run, after `--`, and its arguments.
    #[arg(
        last = true,
        required = true,
        value_name = "COMMAND",
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

/// IP:PORT as is; HOST:PORT through the resolver, so `localhost:8000`
/// works. IPv4 first: that is what most clients try for `localhost`.
fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !s
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    {
        return Err(
            "expected IP:PORT or HOST:PORT, such as 127.0.0.1:8000 or localhost:8000".into(),
        );
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{s}': {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

fn parse_metadata(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(s) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("must be a JSON object, such as '{\"team\": \"growth\"}'".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityArg {
    Normal,
    Full,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Normal => Durability::Normal,
            DurabilityArg::Full => Durability::Full,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print its secret. The secret is shown this once and
    /// cannot be recovered: only its hash is stored.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// A unique name for the key; it becomes created_by on what the key
        /// writes.
        #[arg(long)]
        name: String,
        /// `write` may read and write; `read` may only read; `admin` may
        /// also manage webhooks.
        #[arg(long, value_parser = scope_parser(), default_value = "write")]
        scope: KeyScope,
        /// Create the database file if it does not exist yet (the first
        /// key of a new deployment); without it a missing file is refused.
        #[arg(long)]
        create: bool,
    },
    /// List keys: name, scope, when created and last used (kept to the
    /// minute), whether revoked. Never a secret.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key at once; a running server refuses it from the next
    /// request on.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The key's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Subscribe a URL to events and print the subscription as one JSON
    /// object on stdout, with its signing secret (`whsec_...`): shown this
    /// once.
    #[command(after_help = "Example:\n  griot-registry webhooks create --url \
        https://hooks.slack.com/services/T000/B000/XXXX --events run.failed,validation.failed \
        --format slack")]
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// Where messages are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// Comma-separated events: run.created, run.completed, run.failed,
        /// run.cancelled, run.heartbeat_expired, validation.failed,
        /// validation.warning.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Only events about this contract.
        #[arg(long)]
        contract_id: Option<String>,
        /// `standard` (Standard Webhooks JSON, signed) or `slack` (a Slack
        /// incoming-webhook message).
        #[arg(long, value_parser = format_parser(), default_value = "standard")]
        format: WebhookFormat,
        #[command(flatten)]
        delivery: WebhookArgs,
    },
    /// Print every subscription as a JSON array (never a secret).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete a subscription with its pending messages and delivery log.
    Delete {
        #[command(flatten)]
        db: DbArgs,
        /// The subscription's id (whk_...).
        id: String,
    },
    /// Send a signed `webhook.test` message now and print the outcome as
    /// JSON; exits 1 when the receiver did not answer with a 2xx.
    Test {
        #[command(flatten)]
        db: DbArgs,
        /// The subscription's id (whk_...).
        id: String,
        #[command(flatten)]
        delivery: WebhookArgs,
    },
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Delete what finished (or was recorded) longer ago than this: a whole
    /// number of days, hours, minutes or seconds, such as 90d, 12h or 30m.
    #[arg(long, value_parser = crate::domain::retention::parse_age)]
    pub older_than: i64,

    /// Count what would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How long an Idempotency-Key is remembered, in hours; older ones are
    /// deleted. The same setting as `serve`'s.
    #[arg(long, env = "GRIOT_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_retention_hours: u32,
}

/// Webhook formats as the domain names them.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = WebhookFormat> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(WebhookFormat::ALL.map(WebhookFormat::as_str))
        .try_map(|s| WebhookFormat::parse(&s).ok_or("not a webhook format"))
}

/// Key scopes as the domain names them: a new scope needs no change here.
fn scope_parser() -> impl clap::builder::TypedValueParser<Value = KeyScope> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(KeyScope::ALL.map(KeyScope::as_str))
        .try_map(|s| KeyScope::parse(&s).ok_or("not a key scope"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["griot-registry", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bind_takes_host_names() {
        let bind = serve(&["--bind", "localhost:8000"]).unwrap().bind;
        assert!(bind.ip().is_loopback(), "{bind}");
        assert_eq!(bind.port(), 8000);
        assert_eq!(
            serve(&["--bind", "[::1]:9000"]).unwrap().bind.to_string(),
            "[::1]:9000"
        );
        for bad in ["localhost", "localhost:http", ":8000"] {
            assert!(serve(&["--bind", bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn help_names_the_log_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("GRIOT_LOG"), "{help}");
        assert!(help.contains("--log-format"), "{help}");
        assert!(help.contains("GRIOT_LOG_FORMAT"), "{help}");
    }
}
