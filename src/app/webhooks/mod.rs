//! Webhooks: managing subscriptions, the outbox the other use cases write
//! in their own transactions, and the delivery worker.
//!
//! A change that causes an event (a run created or finished, a failed or
//! warning validation) calls [`Outbox::enqueue`] inside the transaction
//! that makes the change: a committed change always has its messages, a
//! refused or rolled-back one never does. The worker ([`delivery`]) sends
//! them after the commit, so delivery never slows a write.

pub mod delivery;
mod message;
pub mod transport;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use hyper::header::HeaderName;
use serde_json::json;
use tokio::sync::Notify;

use super::{App, AppError};
use crate::{
    domain::{
        Page,
        ids::{new_message_id, new_webhook_id},
        keys::Caller,
        run::RunDetail,
        time::Timestamp,
        validation::Validation,
        webhooks::{
            Attempt, Delivery, DeliveryState, EventType, Message, NewSubscription, SigningSecret,
            Subscription,
        },
    },
    store::{Connection, StoreError, webhooks},
};

pub use message::Payloads;
use transport::Transport;

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Targets on loopback, private, link-local or metadata addresses are
    /// allowed (`--allow-private-webhook-targets`).
    pub allow_private_targets: bool,
    /// How long a message is retried before it fails and its subscription
    /// is disabled.
    pub retry_window: Duration,
    /// How long one attempt may take, connecting and the answer included.
    pub attempt_timeout: Duration,
    /// Where people reach this registry, for links in messages.
    pub public_url: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            retry_window: Duration::from_secs(24 * 3600),
            attempt_timeout: Duration::from_secs(15),
            public_url: "http://127.0.0.1:8000".into(),
        }
    }
}

/// The outbox's side of the app: how event data is written, what wakes
/// the worker, and the HTTP client it sends with.
pub struct Outbox {
    payloads: Arc<dyn Payloads>,
    settings: WebhookSettings,
    wake: Notify,
    transport: OnceLock<Transport>,
}

/// What an event is about.
pub enum Subject<'a> {
    Run(&'a RunDetail),
    Validation(&'a Validation),
}

impl Subject<'_> {
    fn contract_id(&self) -> &str {
        match self {
            Subject::Run(d) => &d.run.contract_id,
            Subject::Validation(v) => &v.contract_id,
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Run(d) => &d.run.id,
            Subject::Validation(v) => &v.id,
        }
    }
}

impl Outbox {
    pub fn new(payloads: Arc<dyn Payloads>, settings: WebhookSettings) -> Self {
        Self {
            payloads,
            settings,
            wake: Notify::new(),
            transport: OnceLock::new(),
        }
    }

    fn transport(&self) -> &Transport {
        self.transport.get_or_init(|| {
            Transport::new(
                self.settings.allow_private_targets,
                self.settings.attempt_timeout,
            )
        })
    }

    /// Writes the messages a change causes, in the change's transaction.
    /// `events` lists the ways the change can be told, each as alternatives
    /// most specific first (see `Subscription::choose`). Returns how many
    /// messages were written; call [`Outbox::written`] after the commit
    /// when it is not zero.
    pub fn enqueue(
        &self,
        tx: &Connection,
        subject: Subject<'_>,
        events: &[&[EventType]],
        at: Timestamp,
    ) -> Result<usize, StoreError> {
        if events.iter().all(|e| e.is_empty()) {
            return Ok(0);
        }
        let mut data = None;
        let mut written = 0;
        for sub in webhooks::active(tx)? {
            for alternatives in events {
                let Some(event) = sub.choose(subject.contract_id(), alternatives) else {
                    continue;
                };
                let data = data.get_or_insert_with(|| match &subject {
                    Subject::Run(d) => self.payloads.run(d),
                    Subject::Validation(v) => self.payloads.validation(v),
                });
                let body = message::body(&sub, event, at, data, &subject, &self.settings);
                webhooks::insert_message(tx, &new_message(&sub.id, event, subject.id(), body, at))?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Wakes the worker: messages were committed.
    pub fn written(&self, count: usize) {
        if count > 0 {
            self.wake.notify_one();
        }
    }
}

fn new_message(
    webhook_id: &str,
    event: EventType,
    subject_id: &str,
    body: String,
    at: Timestamp,
) -> Message {
    Message {
        id: new_message_id(),
        webhook_id: webhook_id.to_owned(),
        event_type: event,
        subject_id: subject_id.to_owned(),
        body,
        created_at: at,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: Some(at),
        retry_from: at,
        delivered_at: None,
    }
}

/// A subscription as created: with its secret, shown this once.
pub struct Created {
    pub subscription: Subscription,
    pub secret: SigningSecret,
}

/// Creates a subscription. `caller` is None for the CLI, which works on
/// the database file and needs no key.
pub async fn create(
    app: &App,
    caller: Option<&Caller>,
    url: &str,
    events: &[String],
    contract_id: Option<String>,
    format: crate::domain::webhooks::WebhookFormat,
) -> Result<Created, AppError> {
    let new = NewSubscription::new(
        url,
        events,
        contract_id,
        format,
        app.outbox.settings.allow_private_targets,
    )?;
    let subscription = Subscription {
        id: new_webhook_id(),
        url: new.url,
        events: new.events,
        contract_id: new.contract_id,
        format: new.format,
        created_at: app.clock.now(),
        created_by: caller.map_or_else(|| "cli".to_owned(), |c| c.name.clone()),
        disabled_at: None,
        disabled_reason: None,
    };
    let secret = SigningSecret::generate()?;
    let (sub, key) = (subscription.clone(), secret.clone());
    app.store
        .write(move |tx| webhooks::insert(tx, &sub, &key))
        .await?;
    Ok(Created {
        subscription,
        secret,
    })
}

pub async fn list(app: &App) -> Result<Vec<Subscription>, AppError> {
    Ok(app.store.read(webhooks::list).await?)
}

pub async fn get(app: &App, id: String) -> Result<Subscription, AppError> {
    app.store.read(move |c| found(c, &id)).await
}

fn found(conn: &Connection, id: &str) -> Result<Subscription, AppError> {
    webhooks::find(conn, id)?.ok_or_else(|| AppError::not_found("Webhook", id))
}

/// Deletes a subscription, its pending messages and its delivery log.
pub async fn delete(app: &App, id: String) -> Result<(), AppError> {
    app.store
        .write(move |tx| {
            if webhooks::delete(tx, &id)? {
                Ok(())
            } else {
                Err(AppError::not_found("Webhook", &id))
            }
        })
        .await
}

/// A subscription's messages, newest first, with their attempts.
pub async fn deliveries(
    app: &App,
    id: String,
    page: (u32, u64),
) -> Result<Page<Delivery>, AppError> {
    app.store
        .read(move |c| {
            found(c, &id)?;
            Ok(webhooks::deliveries(c, &id, page)?)
        })
        .await
}

/// Queues a message again, with the same webhook-id, in its place in the
/// subscription's order (oldest first); its retry window starts over. A subscription that persistent
/// failure disabled is enabled again: redelivering is how an operator says
/// the receiver is fixed.
pub async fn redeliver(
    app: &App,
    webhook_id: String,
    message_id: String,
) -> Result<Delivery, AppError> {
    let now = app.clock.now();
    let delivery = app
        .store
        .write(move |tx| {
            found(tx, &webhook_id)?;
            let mut m = webhooks::find_message(tx, &webhook_id, &message_id)?
                .ok_or_else(|| AppError::not_found("Delivery", &message_id))?;
            m.state = DeliveryState::Pending;
            m.next_attempt_at = Some(now);
            m.retry_from = now;
            m.delivered_at = None;
            webhooks::save_message(tx, &m)?;
            webhooks::set_disabled(tx, &webhook_id, None)?;
            let attempts = webhooks::attempts(tx, &m.id)?;
            Ok::<_, AppError>(Delivery {
                message: m,
                attempts,
            })
        })
        .await?;
    app.outbox.written(1);
    Ok(delivery)
}

/// Sends a `webhook.test` message now, signed like any other, and records
/// it in the delivery log with its one attempt (a test is not retried).
pub async fn test(app: &App, id: String) -> Result<Delivery, AppError> {
    let now = app.clock.now();
    let (sub, secret) = app
        .store
        .read({
            let id = id.clone();
            move |c| {
                let sub = found(c, &id)?;
                let secret =
                    webhooks::secret(c, &id)?.ok_or_else(|| AppError::not_found("Webhook", &id))?;
                Ok::<_, AppError>((sub, secret))
            }
        })
        .await?;
    let data = json!({
        "webhook_id": sub.id,
        "message": "A test message from griot-registry: this endpoint receives its webhooks.",
    });
    let body = message::test_body(&sub, now, &data, &app.outbox.settings);
    let mut m = new_message(&sub.id, EventType::WebhookTest, &sub.id, body, now);
    let attempt = send(app, &sub.url, &secret, &mut m, app.clock.now()).await;
    m.state = if attempt.succeeded() {
        DeliveryState::Delivered
    } else {
        DeliveryState::Failed
    };
    m.next_attempt_at = None;
    let delivery = Delivery {
        message: m.clone(),
        attempts: vec![attempt.clone()],
    };
    app.store
        .write(move |tx| {
            webhooks::insert_message(tx, &m)?;
            webhooks::insert_attempt(tx, &m.id, &attempt)
        })
        .await?;
    Ok(delivery)
}

/// One attempt at `m`: signed with a fresh timestamp (receivers refuse
/// old ones), the same webhook-id as every other attempt. Counts the
/// attempt on `m` and sets `delivered_at` on success.
async fn send(
    app: &App,
    url: &str,
    secret: &SigningSecret,
    m: &mut Message,
    now: Timestamp,
) -> Attempt {
    let ts = now.unix_seconds();
    let headers = [
        (HeaderName::from_static("webhook-id"), m.id.clone()),
        (HeaderName::from_static("webhook-timestamp"), ts.to_string()),
        (
            HeaderName::from_static("webhook-signature"),
            secret.sign(&m.id, ts, m.body.as_bytes()),
        ),
    ];
    let sent = app
        .outbox
        .transport()
        .post(url, &headers, m.body.clone())
        .await;
    m.attempts += 1;
    let attempt = Attempt {
        attempt: m.attempts,
        attempted_at: now,
        response_status: sent.status,
        error: sent.error,
        latency_ms: u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
    };
    if attempt.succeeded() {
        m.delivered_at = Some(app.clock.now());
    }
    app.metrics.record_delivery(&attempt, sent.latency);
    attempt
}
