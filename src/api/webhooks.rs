//! The Webhooks API: subscriptions that hear of failed runs and
//! validations, their delivery log, and the actions to test and redeliver.
//! Every operation needs a key with the `admin` scope.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    ApiTags,
    auth::ApiKeyAuth,
    body::JsonBody,
    default_limit,
    enums::{DeliveryStateBody, WebhookEventBody, WebhookFormatBody},
    error::{OpError, can},
    page_bounds,
    runs::RunBody,
    samples,
    types::{DateTime, Name},
    validations::ValidationBody,
};
use crate::{
    app::{self, App, Payloads},
    domain::{
        Page,
        run::RunDetail,
        validation::Validation,
        webhooks::{Attempt, Delivery, Subscription, WebhookFormat},
    },
};

/// A new subscription. Unknown fields are refused.
#[derive(Object, Deserialize, Debug)]
#[oai(rename = "CreateWebhookRequest", deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where messages are POSTed: an http or https URL. Targets on
    /// loopback, private, link-local or cloud-metadata addresses are
    /// refused unless the server runs with
    /// `--allow-private-webhook-targets` (checked again after every DNS
    /// lookup).
    // domain::webhooks::MAX_URL_LEN; tests/constraints.rs ties them.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: String,
    /// The events to send; at least one.
    #[oai(validator(min_items = 1))]
    pub events: Vec<WebhookEventBody>,
    /// Only events about this contract; every contract when omitted.
    #[oai(nullable)]
    pub contract_id: Option<Name>,
    /// How messages are written; `standard` when omitted. Use `slack` for
    /// a Slack incoming-webhook URL.
    #[oai(nullable)]
    pub format: Option<WebhookFormatBody>,
}

/// A webhook subscription.
#[derive(Object, Debug)]
#[oai(rename = "Webhook", example)]
pub struct WebhookBody {
    /// `whk_` followed by a ULID.
    pub id: String,
    pub url: String,
    pub events: Vec<WebhookEventBody>,
    /// Only events about this contract, when set.
    #[oai(nullable)]
    pub contract_id: Option<String>,
    pub format: WebhookFormatBody,
    pub created_at: DateTime,
    /// The name of the API key that created it (`cli` for the command
    /// line).
    pub created_by: String,
    /// False once persistent failure disabled it: no new events are
    /// queued and pending ones wait. Redelivering a message enables it.
    pub enabled: bool,
    #[oai(nullable)]
    pub disabled_at: Option<DateTime>,
    /// Why it was disabled.
    #[oai(nullable)]
    pub disabled_reason: Option<String>,
}

impl From<Subscription> for WebhookBody {
    fn from(s: Subscription) -> Self {
        Self {
            enabled: s.disabled_at.is_none(),
            id: s.id,
            url: s.url,
            events: s.events.into_iter().map(Into::into).collect(),
            contract_id: s.contract_id,
            format: s.format.into(),
            created_at: s.created_at.into(),
            created_by: s.created_by,
            disabled_at: s.disabled_at.map(Into::into),
            disabled_reason: s.disabled_reason,
        }
    }
}

/// A subscription just created, with its signing secret: shown this once,
/// never again.
#[derive(Object, Debug)]
#[oai(rename = "CreatedWebhook", example)]
pub struct CreatedWebhookBody {
    #[oai(flatten)]
    pub webhook: WebhookBody,
    /// `whsec_` and the base64 of 32 random bytes. Verify each message's
    /// `webhook-signature` with it (any Standard Webhooks library does).
    pub secret: String,
}

/// Every subscription, oldest first.
#[derive(Object, Debug)]
#[oai(rename = "WebhookList", example)]
pub struct WebhookList {
    pub items: Vec<WebhookBody>,
}

/// One attempt at sending a message.
#[derive(Object, Debug)]
#[oai(rename = "DeliveryAttempt")]
pub struct AttemptBody {
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempted_at: DateTime,
    /// The receiver's status code; null when no answer came.
    #[oai(nullable)]
    pub response_status: Option<u16>,
    /// Why it failed; null for a 2xx answer.
    #[oai(nullable)]
    pub error: Option<String>,
    /// From sending to the end of the answer, in milliseconds.
    pub latency_ms: u64,
}

impl From<Attempt> for AttemptBody {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            attempted_at: a.attempted_at.into(),
            response_status: a.response_status,
            error: a.error,
            latency_ms: a.latency_ms,
        }
    }
}

/// One event on its way to a subscription, with every attempt.
#[derive(Object, Debug)]
#[oai(rename = "Delivery", example)]
pub struct DeliveryBody {
    /// The `webhook-id` header: the same on every attempt, so receivers
    /// can drop repeats.
    pub id: String,
    pub event: WebhookEventBody,
    /// The run or validation the event is about.
    pub subject_id: String,
    pub state: DeliveryStateBody,
    pub created_at: DateTime,
    /// When the next attempt is due; null unless pending.
    #[oai(nullable)]
    pub next_attempt_at: Option<DateTime>,
    #[oai(nullable)]
    pub delivered_at: Option<DateTime>,
    /// Oldest first.
    pub attempts: Vec<AttemptBody>,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        let m = d.message;
        Self {
            id: m.id,
            event: m.event_type.into(),
            subject_id: m.subject_id,
            state: m.state.into(),
            created_at: m.created_at.into(),
            next_attempt_at: m.next_attempt_at.map(Into::into),
            delivered_at: m.delivered_at.map(Into::into),
            attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// One page of a subscription's deliveries.
#[derive(Object, Debug)]
#[oai(rename = "DeliveryPage", example)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<DeliveryBody>,
    /// How many messages the subscription has, across all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

#[derive(ApiResponse)]
enum CreatedWebhook {
    /// The subscription was created. Store its secret now.
    #[oai(status = 201)]
    Created(Json<CreatedWebhookBody>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The subscription, its pending messages and its log are gone.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
enum Redelivered {
    /// The message is queued again, with the same webhook-id.
    #[oai(status = 202)]
    Accepted(Json<DeliveryBody>),
}

pub struct WebhooksApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook
    ///
    /// Subscribes a URL to events: runs created, completed, failed,
    /// cancelled or failed by a lapsed heartbeat, and validations recorded
    /// as failed or warning, optionally for one contract. Messages follow
    /// the Standard Webhooks spec: a POST with `{"type", "timestamp",
    /// "data"}` (data is the run or validation as the API returns it) and
    /// the headers `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature`, signed with the secret in the answer (shown
    /// this once). Delivery is at least once, in order per subscription,
    /// retried with backoff for a day (`--webhook-retry-seconds`); a
    /// message is written in the same transaction as its change, so it
    /// survives a crash. Needs an `admin` key.
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create_webhook(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        body: JsonBody<CreateWebhookRequest>,
    ) -> Result<CreatedWebhook, OpError<{ can::WRITE | can::BODY | can::INTERNAL }>> {
        let caller = auth.admin()?;
        let b = body.0;
        let events: Vec<String> = b
            .events
            .into_iter()
            .map(|e| {
                crate::domain::webhooks::EventType::from(e)
                    .as_str()
                    .to_owned()
            })
            .collect();
        let created = app::webhooks::create(
            &app,
            Some(&caller),
            &b.url,
            &events,
            b.contract_id.map(|c| c.0),
            b.format.map_or(WebhookFormat::Standard, Into::into),
        )
        .await?;
        Ok(CreatedWebhook::Created(Json(CreatedWebhookBody {
            webhook: created.subscription.into(),
            secret: created.secret.expose().to_owned(),
        })))
    }

    /// List webhooks
    ///
    /// Every subscription, oldest first, with whether it is enabled. Never
    /// a secret. Needs an `admin` key.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list_webhooks(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
    ) -> Result<Json<WebhookList>, OpError<{ can::WRITE | can::INTERNAL }>> {
        auth.admin()?;
        let items = app::webhooks::list(&app).await?;
        Ok(Json(WebhookList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Get a webhook
    ///
    /// One subscription, without its secret. Needs an `admin` key.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "get",
        operation_id = "get_webhook"
    )]
    async fn get_webhook(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The subscription's id.
        #[oai(example = "samples::webhook_id")]
        webhook_id: Path<String>,
    ) -> Result<Json<WebhookBody>, OpError<{ can::WRITE | can::NOT_FOUND | can::INTERNAL }>> {
        auth.admin()?;
        Ok(Json(app::webhooks::get(&app, webhook_id.0).await?.into()))
    }

    /// Delete a webhook
    ///
    /// Stops the subscription at once; its pending messages and delivery
    /// log are deleted with it. Needs an `admin` key.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete_webhook(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The subscription's id.
        #[oai(example = "samples::webhook_id")]
        webhook_id: Path<String>,
    ) -> Result<Deleted, OpError<{ can::WRITE | can::NOT_FOUND | can::INTERNAL }>> {
        auth.admin()?;
        app::webhooks::delete(&app, webhook_id.0).await?;
        Ok(Deleted::Deleted)
    }

    /// Send a test message
    ///
    /// Sends a signed `webhook.test` message to the subscription's URL now
    /// and answers with the outcome (one attempt, not retried; it is also
    /// in the delivery log). Needs an `admin` key.
    #[oai(
        path = "/webhooks/:webhook_id/test",
        method = "post",
        operation_id = "test_webhook"
    )]
    async fn test_webhook(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The subscription's id.
        #[oai(example = "samples::webhook_id")]
        webhook_id: Path<String>,
    ) -> Result<Json<DeliveryBody>, OpError<{ can::WRITE | can::NOT_FOUND | can::INTERNAL }>> {
        auth.admin()?;
        Ok(Json(app::webhooks::test(&app, webhook_id.0).await?.into()))
    }

    /// List a webhook's deliveries
    ///
    /// The subscription's messages, newest first, each with its state
    /// (pending, delivered, failed), when the next attempt is due, and
    /// every attempt: when, the receiver's status code or why there was
    /// none, and the latency. Needs an `admin` key.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn list_webhook_deliveries(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The subscription's id.
        #[oai(example = "samples::webhook_id")]
        webhook_id: Path<String>,
        /// Page size: 1 to 1000.
        #[oai(
            default = "default_limit",
            example = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        /// How many messages to skip.
        #[oai(default, example = "samples::zero", validator(minimum(value = "0")))]
        offset: Query<i64>,
    ) -> Result<
        Json<DeliveryPage>,
        OpError<{ can::WRITE | can::NOT_FOUND | can::INVALID | can::INTERNAL }>,
    > {
        auth.admin()?;
        let (limit, offset) = page_bounds(limit.0, offset.0);
        let page: Page<Delivery> =
            app::webhooks::deliveries(&app, webhook_id.0, (limit, offset)).await?;
        Ok(Json(DeliveryPage {
            items: page.items.into_iter().map(Into::into).collect(),
            total: page.total,
            limit,
            offset,
        }))
    }

    /// Redeliver a message
    ///
    /// Queues a message again, delivered or not, with the same webhook-id
    /// (receivers that already have it can drop it). It keeps its place in
    /// the subscription's order (oldest first), so it goes before messages
    /// made after it that are still pending, and its retry window (a day
    /// by default) starts over. A subscription that persistent failure
    /// disabled is enabled again. Needs an `admin` key.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliver_webhook_message"
    )]
    async fn redeliver(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The subscription's id.
        #[oai(example = "samples::webhook_id")]
        webhook_id: Path<String>,
        /// The message's id (its `webhook-id`).
        #[oai(example = "samples::delivery_id")]
        delivery_id: Path<String>,
    ) -> Result<Redelivered, OpError<{ can::WRITE | can::NOT_FOUND | can::INTERNAL }>> {
        auth.admin()?;
        let d = app::webhooks::redeliver(&app, webhook_id.0, delivery_id.0).await?;
        Ok(Redelivered::Accepted(Json(d.into())))
    }
}

/// Runs and validations in webhook messages, as `GET` returns them.
pub struct WirePayloads;

impl Payloads for WirePayloads {
    fn run(&self, detail: &RunDetail) -> Value {
        use poem_openapi::types::ToJSON;
        RunBody::from(detail.clone()).to_json().unwrap_or_default()
    }

    fn validation(&self, validation: &Validation) -> Value {
        use poem_openapi::types::ToJSON;
        ValidationBody::from(validation.clone())
            .to_json()
            .unwrap_or_default()
    }
}
