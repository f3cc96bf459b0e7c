//! What each command does. `serve` builds the app through `build_app`,
//! like the tests. `exec` lives in its own module with its HTTP client.

pub mod args;
pub mod client;
pub mod exec;
pub mod telemetry;
mod webhooks;

use std::{path::Path, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use tracing::{error, info, warn};

use crate::{
    HttpOptions,
    api::server::{self, ServerOptions, Signals},
    app::AppError,
    app::Settings,
    app::{keys, lifecycle},
    build_app,
    cli::args::{Cli, Command, KeysCommand, PruneArgs, ServeArgs},
    domain::{limits::Limits, time::Clock},
    openapi_json, openapi_yaml,
    store::{self, Store, StoreError, StoreOptions},
};

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Openapi { yaml } => {
            print!(
                "{}",
                if yaml {
                    openapi_yaml()
                } else {
                    openapi_json() + "\n"
                }
            );
            Ok(())
        }
        Command::Keys(cmd) => run_keys(cmd),
        Command::Webhooks(cmd) => webhooks::run(cmd),
        Command::Backup { db, path } => backup(&db.db, &path),
        Command::Prune(args) => prune(&args),
        // It exits with the command's status, not ours.
        Command::Exec(args) => return exec::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The line printed for a failed command: the contexts added here ("cannot
/// open r.db"), then the error that ended the command. A `StoreError`
/// already says its cause in its own text ("database error: disk I/O
/// error"), so the chain stops there rather than repeat the cause after it
/// as anyhow's `{:#}` would.
fn message(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for link in err.chain() {
        parts.push(link.to_string());
        // Both already say their cause: what follows would repeat it.
        if link.is::<StoreError>() || link.is::<AppError>() {
            break;
        }
    }
    parts.join(": ")
}

fn open_store(path: &Path, options: &StoreOptions) -> anyhow::Result<Store> {
    Store::open(path, options).with_context(|| format!("cannot open {}", path.display()))
}

/// For every command but `serve` (and `keys create --create`): a mistyped
/// --db must be an error, not a new empty database.
pub(crate) fn open_existing_store(path: &Path, options: &StoreOptions) -> anyhow::Result<Store> {
    if !path.is_file() {
        bail!(
            "the database {} does not exist (check --db or GRIOT_DB); nothing was created. \
             `keys create --create` or `serve` creates a new one",
            path.display()
        );
    }
    Store::open_existing(path, options).with_context(|| format!("cannot open {}", path.display()))
}

fn backup(db: &Path, dest: &Path) -> anyhow::Result<()> {
    let options = StoreOptions {
        read_connections: 1,
        ..StoreOptions::default()
    };
    let store = open_existing_store(db, &options)?;
    store.backup_to(dest)?;
    eprintln!("Backed up {} to {}.", db.display(), dest.display());
    Ok(())
}

fn prune(args: &PruneArgs) -> anyhow::Result<()> {
    let options = StoreOptions {
        read_connections: 1,
        ..StoreOptions::default()
    };
    let store = open_existing_store(&args.db.db, &options)?;
    let policy = crate::domain::retention::Policy::new(
        crate::domain::time::Timestamp::now(),
        args.older_than,
        i64::from(args.idempotency_retention_hours) * 3600,
    );
    let counts = crate::app::retention::prune(&store, policy, args.dry_run, &|| false)?;
    // On stdout, for scripts; the log line has the same counts.
    println!(
        "{} {} runs, {} events, {} validations, {} idempotency keys, {} webhook messages \
         (finished before {}).",
        if args.dry_run {
            "Would delete"
        } else {
            "Deleted"
        },
        counts.runs,
        counts.events,
        counts.validations,
        counts.idempotency_keys,
        counts.webhook_messages,
        policy.cutoff
    );
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = StoreOptions {
        durability: args.durability.into(),
        query_timeout: Duration::from_millis(args.query_timeout_ms),
        mmap_bytes: args.mmap_mib << 20,
        hold_idle_read_lock: true,
        ..StoreOptions::default()
    };
    // Before the database is touched: a second server must not migrate or
    // bootstrap a file another one serves.
    let lock = store::lock::acquire(&args.db.db)?;
    let store = open_store(&args.db.db, &options)?;
    keys::prepare_for_serving(
        &store,
        args.bootstrap_api_key.as_deref(),
        &args.bootstrap_api_key_name,
        &args.db.db,
    )?;
    let settings = Settings {
        require_auth_for_reads: args.require_auth_for_reads,
        idempotency_retention_secs: i64::from(args.idempotency_retention_hours) * 3600,
        limits: Limits {
            max_metadata_bytes: args.max_metadata_bytes,
            max_metrics_bytes: args.max_metrics_bytes,
            max_validation_issues: args.max_validation_issues,
            max_page_bytes: args.max_page_bytes,
        },
        webhooks: webhooks::settings(&args.webhooks, Some(args.bind)),
    };
    let app = crate::new_app(store, settings, Clock::System);
    let endpoint = build_app(
        app.clone(),
        &HttpOptions {
            max_body_bytes: args.max_body_bytes,
            body_timeout: Duration::from_secs(args.body_timeout_seconds),
        },
    );
    let interval = Duration::from_secs(args.reaper_interval_seconds.max(1));
    let server_options = server_options(&args);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener =
            server::bind(args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
        let mut signals = Signals::new().context("cannot watch signals")?;
        let (stop, stopped) = tokio::sync::watch::channel(());
        let watch = app.watch.clone();
        let retention = args.retention_days.map(|days| {
            tokio::spawn(crate::app::retention::run_sweeps(
                app.store.clone(),
                i64::from(days) * 86_400,
                app.settings.idempotency_retention_secs,
                Duration::from_secs(args.retention_interval_seconds.max(1)),
                stopped.clone(),
            ))
        });
        let deliveries = tokio::spawn(crate::app::webhooks::delivery::run(
            app.clone(),
            stopped.clone(),
        ));
        let store = app.store.clone();
        let reaper = tokio::spawn(lifecycle::run_reaper(app, interval, stopped));
        let served = crate::run_with_options(
            endpoint,
            listener,
            async move {
                signals.recv().await;
                info!("shutting down: no new connections; answering waits, finishing requests");
                watch.shut_down();
                let _ = stop.send(());
                // The operator who asks twice does not want to wait.
                tokio::spawn(async move {
                    let signal = signals.recv().await;
                    warn!("second signal: exiting now, dropping requests in flight");
                    std::process::exit(128 + signal);
                });
            },
            server_options,
        )
        .await;
        let _ = reaper.await;
        let _ = deliveries.await;
        if let Some(retention) = retention {
            let _ = retention.await;
        }
        // An operator who stops the service and copies the database file
        // expects all of it in that one file.
        match tokio::task::spawn_blocking(move || store.checkpoint_for_stop()).await {
            Ok(Ok(true)) => info!("database checkpointed: the file holds every write"),
            outcome => {
                let reason = match outcome {
                    Ok(Ok(_)) => "a request or check still read or wrote".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                warn!(
                    reason,
                    "the WAL could not be emptied: the next start replays it"
                );
            }
        }
        // Held until every request has finished.
        drop(lock);
        served.inspect_err(|e| error!(error = %e, "server failed"))?;
        Ok(())
    })
}

/// The HTTP server's limits from the flags; the connection cap defaults
/// to what the open-file limit (raised first) allows.
fn server_options(args: &ServeArgs) -> ServerOptions {
    let fd_limit = server::raise_fd_limit();
    let max_connections = args.max_connections.map_or_else(
        || server::default_max_connections(fd_limit),
        |n| usize::try_from(n).unwrap_or(usize::MAX),
    );
    info!(
        open_file_limit = fd_limit,
        max_connections, "connection limits"
    );
    ServerOptions {
        max_connections,
        keep_alive_timeout: Duration::from_secs(args.keep_alive_timeout_seconds),
        header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
        http2_max_concurrent_streams: args.http2_max_concurrent_streams,
        grace: Duration::from_secs(args.shutdown_grace_seconds),
    }
}

fn run_keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let options = StoreOptions {
        read_connections: 1,
        ..StoreOptions::default()
    };
    match cmd {
        KeysCommand::Create {
            db,
            name,
            scope,
            create,
        } => {
            let store = if create {
                open_store(&db.db, &options)?
            } else {
                open_existing_store(&db.db, &options)?
            };
            let (key, secret) = keys::create(&store, &name, scope)?;
            eprintln!(
                "Created API key '{}' with the {} scope. This is the only time its secret is \
                 shown; store it now:",
                key.name, key.scope
            );
            println!("{}", secret.expose());
            Ok(())
        }
        KeysCommand::List { db } => {
            let store = open_existing_store(&db.db, &options)?;
            let list = keys::list(&store)?;
            println!(
                "{:<24} {:<6} {:<28} {:<28} REVOKED",
                "NAME", "SCOPE", "CREATED", "LAST USED"
            );
            for k in list {
                println!(
                    "{:<24} {:<6} {:<28} {:<28} {}",
                    k.name,
                    k.scope.as_str(),
                    k.created_at,
                    k.last_used_at.map_or("never".into(), |t| t.to_string()),
                    k.revoked_at.map_or("no".into(), |t| format!("yes ({t})")),
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { db, name } => {
            let store = open_existing_store(&db.db, &options)?;
            let key = keys::revoke(&store, &name)?;
            if let Some(at) = key.revoked_at {
                eprintln!("Revoked API key '{}' (at {at}).", key.name);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_printed_once_after_the_context() {
        use r2d2_sqlite::rusqlite::{Error, ffi};
        let full = || Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None);
        let err = Err::<(), _>(StoreError::from(full()))
            .context("cannot open r.db")
            .unwrap_err();
        // The error and its sources all say "database or disk is full".
        assert!(err.chain().count() > 2);
        assert_eq!(
            message(&err),
            format!("cannot open r.db: {}", StoreError::from(full()))
        );
        assert_eq!(
            message(&err).matches("full").count(),
            1,
            "{}",
            message(&err)
        );
    }

    #[test]
    fn other_errors_print_their_whole_chain() {
        let err = Err::<(), _>(std::io::Error::other("address in use"))
            .context("cannot listen on 127.0.0.1:1")
            .unwrap_err();
        assert_eq!(
            message(&err),
            "cannot listen on 127.0.0.1:1: address in use"
        );
    }
}
