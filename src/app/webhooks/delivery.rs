//! The delivery worker: sends the outbox's messages after their changes
//! commit, each subscription's one at a time in order, retrying with
//! backoff and jitter until the retry window closes, then failing the
//! message and disabling the subscription.
//!
//! It holds no state a crash could lose: what is pending, when it is due
//! and how many attempts it had are all in the database, so after a
//! restart it carries on where it was (a message sent just before a crash
//! may be sent again, with the same webhook-id: at least once).

use std::{collections::HashMap, time::Duration};

use tokio::{sync::watch, task::JoinSet};
use tracing::{info, warn};

use super::send;
use crate::{
    app::{App, AppError},
    domain::webhooks::{DeliveryState, Message, next_attempt},
    store::webhooks,
};

/// How many subscriptions are sent to at once.
const MAX_IN_FLIGHT: usize = 16;
/// The longest the worker sleeps without looking at the outbox: a
/// message written by another process on the same file (the CLI's
/// redeliver) is noticed within this.
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// The pause after the outbox could not be read.
const AFTER_ERROR: Duration = Duration::from_secs(1);
/// The least time between two looks at the outbox that new messages
/// caused: under a write load every commit wakes the worker, and looking
/// after each would spend a reader and CPU the API needs. A message waits
/// this much longer at most.
const LOOK_GAP: Duration = Duration::from_millis(50);

/// Delivers until `stop` changes; what is in flight then is abandoned and
/// sent again after the next start.
pub async fn run(app: App, mut stop: watch::Receiver<()>) {
    // The subscriptions being sent to, by the task sending: a task that
    // ended in any way (a panic too) frees its subscription.
    let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    loop {
        let looked = tokio::time::Instant::now();
        let now = app.clock.now();
        let heads = app.store.read(move |c| webhooks::due_heads(c, now)).await;
        let mut pause = IDLE_LOOK;
        match heads {
            Ok(heads) => {
                for m in heads {
                    if in_flight.len() >= MAX_IN_FLIGHT {
                        break;
                    }
                    if in_flight.values().any(|id| *id == m.webhook_id) {
                        continue;
                    }
                    let app = app.clone();
                    let webhook_id = m.webhook_id.clone();
                    let task = tasks.spawn(async move {
                        let webhook_id = m.webhook_id.clone();
                        if let Err(e) = deliver(&app, m).await {
                            warn!(error = %e, %webhook_id, "webhook delivery could not be recorded");
                        }
                    });
                    in_flight.insert(task.id(), webhook_id);
                }
                if let Ok(Some(next)) = app.store.read(webhooks::next_due).await {
                    let wait = next.unix_micros() - app.clock.now().unix_micros();
                    pause = pause.min(Duration::from_micros(u64::try_from(wait).unwrap_or(0)));
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot read the webhook outbox; retrying");
                pause = AFTER_ERROR;
            }
        }
        // A subscription in flight has its head in the due list: do not
        // spin on it, wait for its task.
        if !in_flight.is_empty() && pause.is_zero() {
            pause = IDLE_LOOK;
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = app.outbox.wake.notified() => {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep_until(looked + LOOK_GAP) => {}
                }
            }
            () = tokio::time::sleep(pause) => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let mut done = Some(done);
                while let Some(ended) = done {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(e) => {
                            warn!(error = %e, "a webhook delivery task failed");
                            e.id()
                        }
                    };
                    in_flight.remove(&id);
                    done = tasks.try_join_next_with_id();
                }
            }
        }
    }
    tasks.abort_all();
}

/// Sends one message once and records what came of it.
async fn deliver(app: &App, mut m: Message) -> Result<(), AppError> {
    let id = m.webhook_id.clone();
    let Some((sub, secret)) = app
        .store
        .read(move |c| Ok::<_, AppError>(webhooks::find(c, &id)?.zip(webhooks::secret(c, &id)?)))
        .await?
    else {
        return Ok(());
    };
    let attempt = send(app, &sub.url, &secret, &mut m, app.clock.now()).await;
    let now = app.clock.now();
    let window = app.outbox.settings.retry_window;
    let mut gave_up = None;
    if attempt.succeeded() {
        m.state = DeliveryState::Delivered;
        m.next_attempt_at = None;
    } else {
        m.next_attempt_at = next_attempt(m.retry_from, now, m.attempts, window, jitter());
        if m.next_attempt_at.is_none() {
            m.state = DeliveryState::Failed;
            gave_up = Some(format!(
                "message {} ({}) failed every attempt for {}; last: {}",
                m.id,
                m.event_type,
                human(window),
                attempt.error.as_deref().unwrap_or("no answer")
            ));
        }
    }
    let (webhook_id, message_id, event) = (m.webhook_id.clone(), m.id.clone(), m.event_type);
    let (state, next) = (m.state, m.next_attempt_at);
    let error = attempt.error.clone();
    let reason = gave_up.clone();
    let recorded = app
        .store
        .write(move |tx| {
            // Deleted meanwhile (or redelivered and already sent by a
            // newer round): nothing to record.
            let Some(stored) = webhooks::find_message(tx, &m.webhook_id, &m.id)? else {
                return Ok::<_, AppError>(false);
            };
            if stored.state != DeliveryState::Pending {
                return Ok(false);
            }
            webhooks::insert_attempt(tx, &m.id, &attempt)?;
            webhooks::save_message(tx, &m)?;
            if let Some(reason) = &reason {
                webhooks::set_disabled(tx, &m.webhook_id, Some((now, reason)))?;
            }
            Ok(true)
        })
        .await?;
    if recorded {
        match gave_up {
            Some(reason) => {
                warn!(%webhook_id, %message_id, %reason, "webhook subscription disabled");
            }
            None if state == DeliveryState::Delivered => {
                info!(%webhook_id, %message_id, %event, "webhook delivered");
            }
            None => {
                info!(
                    %webhook_id, %message_id, %event,
                    error = error.as_deref().unwrap_or_default(),
                    next_attempt_at = %next.map(|t| t.to_string()).unwrap_or_default(),
                    "webhook attempt failed; retrying"
                );
            }
        }
    }
    Ok(())
}

/// A uniform draw in 0..1 for spreading retries.
fn jitter() -> f64 {
    f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else {
        format!("{s} s")
    }
}
