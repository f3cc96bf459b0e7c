//! The command line. Every flag can also be set through a GRIOT_*
//! environment variable; the doc comments below are the `--help` text.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::Durability;

#[derive(Parser, Debug)]
#[command(
    name = "griot-registry",
    version,
    about = "A run registry for data pipelines."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
}

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// The SQLite database file; created on first use.
    #[arg(long, env = "GRIOT_DB", default_value = "griot-registry.db")]
    pub db: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on. The default accepts connections from this
    /// machine only; use 0.0.0.0:8000 to serve the network.
    #[arg(long, env = "GRIOT_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Require an API key for reads too, not only for writes.
    #[arg(long, env = "GRIOT_REQUIRE_AUTH_FOR_READS")]
    pub require_auth_for_reads: bool,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GRIOT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

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

    /// How long an Idempotency-Key is remembered, in hours.
    #[arg(long, env = "GRIOT_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_retention_hours: u32,

    /// Seconds that in-flight requests get to finish after SIGINT or SIGTERM.
    #[arg(long, env = "GRIOT_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
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
        /// `write` may read and write; `read` may only read.
        #[arg(long, value_enum, default_value_t = ScopeArg::Write)]
        scope: ScopeArg,
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeArg {
    Read,
    Write,
}
