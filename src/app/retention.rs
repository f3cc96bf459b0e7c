//! Retention: one prune (the `prune` command, and each sweep of `serve
//! --retention-days`), and the background loop that repeats it.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    domain::{
        retention::{Counts, Policy},
        time::Timestamp,
    },
    store::{Store, StoreError, retention},
};

/// Deletes (or with `dry_run` counts) what `policy` allows, and logs the
/// counts. Stops early, between batches, once `stopping()`. Blocking.
pub fn prune(
    store: &Store,
    policy: Policy,
    dry_run: bool,
    stopping: &dyn Fn() -> bool,
) -> Result<Counts, StoreError> {
    let counts = if dry_run {
        store.read_blocking(|conn| retention::count_prunable(conn, &policy))?
    } else {
        retention::prune_blocking(store, policy, stopping)?
    };
    info!(
        dry_run,
        cutoff = %policy.cutoff,
        runs = counts.runs,
        events = counts.events,
        validations = counts.validations,
        idempotency_keys = counts.idempotency_keys,
        webhook_messages = counts.webhook_messages,
        "{}",
        if dry_run { "prune would delete" } else { "pruned" }
    );
    Ok(counts)
}

/// Until `stop` changes: prunes what is older than `older_than_secs`
/// shortly after start, then every `interval`.
pub async fn run_sweeps(
    store: Store,
    older_than_secs: i64,
    key_retention_secs: i64,
    interval: Duration,
    mut stop: watch::Receiver<()>,
) {
    // Not at once: start-up (migrations, the first requests) comes first.
    let mut wait = interval.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(wait) => {
                let store = store.clone();
                let policy = Policy::new(Timestamp::now(), older_than_secs, key_retention_secs);
                // A shutdown waits for one batch, not for the whole prune.
                let watching = stop.clone();
                let stopping = move || watching.has_changed().unwrap_or(true);
                let swept =
                    tokio::task::spawn_blocking(move || prune(&store, policy, false, &stopping))
                        .await;
                match swept {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(error = %e, "retention sweep failed; retrying next interval"),
                    Err(e) => warn!(error = %e, "retention sweep failed; retrying next interval"),
                }
                wait = interval;
            }
        }
    }
}
