//! `griot-registry webhooks ...`: subscriptions managed on the database
//! file, through the same use cases as the API. What they print is the
//! API's JSON for the same thing.

use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use poem_openapi::types::ToJSON;

use super::open_existing_store;
use crate::{
    api::webhooks::{CreatedWebhookBody, DeliveryBody, WebhookBody},
    app::{Settings, WebhookSettings, webhooks},
    cli::args::{WebhookArgs, WebhooksCommand},
    domain::time::Clock,
    store::StoreOptions,
};

/// The delivery settings from the flags; `bind` is the listening address,
/// the public URL's default.
pub fn settings(args: &WebhookArgs, bind: Option<SocketAddr>) -> WebhookSettings {
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        bind.map_or_else(
            || WebhookSettings::default().public_url,
            |b| format!("http://{b}"),
        )
    });
    WebhookSettings {
        allow_private_targets: args.allow_private_webhook_targets,
        retry_window: Duration::from_secs(args.webhook_retry_seconds),
        attempt_timeout: Duration::from_secs(args.webhook_timeout_seconds),
        public_url,
    }
}

pub fn run(cmd: WebhooksCommand) -> anyhow::Result<()> {
    let (db, delivery) = match &cmd {
        WebhooksCommand::Create { db, delivery, .. }
        | WebhooksCommand::Test { db, delivery, .. } => (db, Some(delivery)),
        WebhooksCommand::List { db } | WebhooksCommand::Delete { db, .. } => (db, None),
    };
    let options = StoreOptions {
        read_connections: 1,
        ..StoreOptions::default()
    };
    let store = open_existing_store(&db.db, &options)?;
    let app = crate::new_app(
        store,
        Settings {
            webhooks: delivery.map(|d| settings(d, None)).unwrap_or_default(),
            ..Settings::default()
        },
        Clock::System,
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cmd {
            WebhooksCommand::Create {
                url,
                events,
                contract_id,
                format,
                ..
            } => {
                let created =
                    webhooks::create(&app, None, &url, &events, contract_id, format).await?;
                let body = CreatedWebhookBody {
                    webhook: created.subscription.into(),
                    secret: created.secret.expose().to_owned(),
                };
                eprintln!(
                    "Created webhook {}. Its secret is shown this once; store it now.",
                    body.webhook.id
                );
                println!("{}", body.to_json_string());
            }
            WebhooksCommand::List { .. } => {
                let list: Vec<WebhookBody> = webhooks::list(&app)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                println!("{}", list.to_json_string());
            }
            WebhooksCommand::Delete { id, .. } => {
                webhooks::delete(&app, id.clone()).await?;
                eprintln!("Deleted webhook {id}.");
            }
            WebhooksCommand::Test { id, .. } => {
                let delivery = DeliveryBody::from(webhooks::test(&app, id).await?);
                println!("{}", delivery.to_json_string());
                let last = delivery.attempts.last();
                if last.is_none_or(|a| a.error.is_some()) {
                    bail!(
                        "the test message was not delivered: {}",
                        last.and_then(|a| a.error.as_deref())
                            .unwrap_or("no attempt")
                    );
                }
            }
        }
        Ok(())
    })
}
