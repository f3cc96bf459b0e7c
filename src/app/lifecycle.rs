//! What happens to runs without a request: the reaper that fails runs whose
//! heartbeat lapsed (and forgets expired idempotency keys), and the wake-up
//! of requests waiting for a run to finish.

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::{App, AppError, webhooks::Subject};
use crate::{
    domain::{
        event::RunEvent,
        run::{LIVE_STATUSES, RunDetail},
        webhooks::run_status_event,
    },
    store::{events, idempotency, runs, validations},
};

/// Tells waiting requests that a run reached a final status, or that the
/// server is shutting down. Waiters hold a receiver, not a database
/// connection or a thread.
#[derive(Clone)]
pub struct RunWatch {
    finished: broadcast::Sender<String>,
    /// True once shutdown began: waits answer at once instead of holding
    /// the shutdown up for their whole timeout.
    stopping: Arc<watch::Sender<bool>>,
}

impl Default for RunWatch {
    fn default() -> Self {
        // A waiter that falls this far behind re-reads the run instead.
        let (finished, _) = broadcast::channel(1024);
        let (stopping, _) = watch::channel(false);
        Self {
            finished,
            stopping: Arc::new(stopping),
        }
    }
}

impl RunWatch {
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.finished.subscribe()
    }

    /// Resolves once shutdown began (at once if it already has).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            // An error means the sender is gone: nobody can stop us then.
            if rx.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Wakes every waiter, present and future, to answer now: the server
    /// is shutting down.
    pub fn shut_down(&self) {
        self.stopping.send_replace(true);
    }

    /// Called after the commit that made `run_id` final.
    pub fn finished(&self, run_id: &str) {
        // No receiver means nobody waits: not an error.
        let _ = self.finished.send(run_id.to_owned());
    }
}

/// One sweep: fail overdue runs (each with an event by `system`), forget
/// expired idempotency keys, wake the waiters of the failed runs. Returns
/// the ids failed. It runs in the single writer's transaction, so a run
/// finished a moment earlier is read as finished and left alone.
pub async fn sweep(app: &App) -> Result<Vec<String>, AppError> {
    let now = app.clock.now();
    let forget_before = now.plus_seconds(-app.settings.idempotency_retention_secs);
    let outbox = app.outbox.clone();
    let swept = app
        .store
        .write(move |tx| {
            let mut failed = Vec::new();
            let mut enqueued = 0;
            for mut run in runs::past_deadline(tx, now, LIVE_STATUSES)? {
                let Some(before) = run.expire(now) else {
                    continue;
                };
                runs::save(tx, &run)?;
                events::append(tx, &RunEvent::heartbeat_expired(&run, before))?;
                let validations = validations::refs_for_run(tx, &run.id)?;
                let detail = RunDetail { run, validations };
                enqueued += outbox.enqueue(
                    tx,
                    Subject::Run(&detail),
                    &[run_status_event(detail.run.status, true)],
                    now,
                )?;
                failed.push(detail.run.id);
            }
            let forgotten = idempotency::purge(tx, forget_before)?;
            Ok::<_, AppError>((failed, forgotten, enqueued))
        })
        .await;
    app.metrics.record_sweep(
        swept
            .as_ref()
            .ok()
            .map(|(failed, forgotten, _)| (failed.len(), *forgotten)),
    );
    let (failed, _, enqueued) = swept?;
    app.outbox.written(enqueued);
    for id in &failed {
        info!(run_id = %id, "failed run: heartbeat timed out");
        app.watch.finished(id);
    }
    Ok(failed)
}

/// Sweeps every `interval` until `stop` changes.
pub async fn run_reaper(app: App, interval: Duration, mut stop: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(interval) => {
                if let Err(e) = sweep(&app).await {
                    warn!(error = %e, "heartbeat sweep failed; retrying next interval");
                }
            }
        }
    }
}
