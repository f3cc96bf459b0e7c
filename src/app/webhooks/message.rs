//! What a message's body says: the Standard Webhooks envelope around the
//! run or validation as the API returns it, or a Slack message.

use serde_json::{Value, json};

use super::{Subject, WebhookSettings};
use crate::domain::{
    run::RunDetail,
    time::Timestamp,
    validation::Validation,
    webhooks::{EventType, Subscription, WebhookFormat},
};

/// Renders runs and validations as the API returns them. The API layer
/// implements it (its wire types are the one definition of that shape);
/// the app only calls it, so the outbox holds what `GET` would answer.
pub trait Payloads: Send + Sync {
    fn run(&self, detail: &RunDetail) -> Value;
    fn validation(&self, validation: &Validation) -> Value;
}

/// The body sent to `sub` for `event`, fixed when the change is made.
pub(super) fn body(
    sub: &Subscription,
    event: EventType,
    at: Timestamp,
    data: &Value,
    subject: &Subject<'_>,
    settings: &WebhookSettings,
) -> String {
    match sub.format {
        WebhookFormat::Standard => standard(event, at, data),
        WebhookFormat::Slack => slack(&slack_text(event, subject, &settings.public_url)),
    }
}

/// The test action's body.
pub(super) fn test_body(
    sub: &Subscription,
    at: Timestamp,
    data: &Value,
    settings: &WebhookSettings,
) -> String {
    match sub.format {
        WebhookFormat::Standard => standard(EventType::WebhookTest, at, data),
        WebhookFormat::Slack => slack(&format!(
            ":wave: Test message from griot-registry ({}): this channel will hear of the \
             events subscription `{}` listens to.",
            escape(&settings.public_url),
            escape(&sub.id)
        )),
    }
}

fn standard(event: EventType, at: Timestamp, data: &Value) -> String {
    json!({
        "type": event.as_str(),
        "timestamp": at.to_string(),
        "data": data,
    })
    .to_string()
}

fn slack(text: &str) -> String {
    json!({ "text": text }).to_string()
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_text(event: EventType, subject: &Subject<'_>, public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    match subject {
        Subject::Run(d) => {
            let run = &d.run;
            let (icon, what) = match event {
                EventType::RunCreated => (":arrow_forward:", "Run started"),
                EventType::RunCompleted => (":white_check_mark:", "Run completed"),
                EventType::RunCancelled => (":no_entry_sign:", "Run cancelled"),
                EventType::RunHeartbeatExpired => {
                    (":x:", "Run failed: no heartbeat within its timeout")
                }
                _ => (":x:", "Run failed"),
            };
            let pipeline = run.pipeline_name.as_deref().unwrap_or("(no pipeline name)");
            let mut text = format!(
                "{icon} *{what}*: pipeline *{}*, contract *{}*, status `{}`. <{base}/ui/runs/{}|{}>",
                escape(pipeline),
                escape(&run.contract_id),
                run.status,
                escape(&run.id),
                escape(&run.id),
            );
            if let Some(reason) = run
                .metadata
                .get(crate::domain::run::FAILURE_REASON)
                .and_then(Value::as_str)
            {
                text.push_str(&format!("\nReason: {}", escape(reason)));
            }
            text
        }
        Subject::Validation(v) => {
            let (icon, what) = if event == EventType::ValidationWarning {
                (":warning:", "Validation warning")
            } else {
                (":x:", "Validation failed")
            };
            let mut text = format!(
                "{icon} *{what}*: contract *{}*, {} error(s), {} warning(s). <{base}/ui/validations/{}|{}>",
                escape(&v.contract_id),
                v.errors.len(),
                v.warnings.len(),
                escape(&v.id),
                escape(&v.id),
            );
            if let Some(run_id) = &v.run_id {
                text.push_str(&format!(
                    " (run <{base}/ui/runs/{}|{}>)",
                    escape(run_id),
                    escape(run_id)
                ));
            }
            for issue in v.errors.iter().take(3) {
                text.push_str(&format!(
                    "\n• `{}`: {}",
                    escape(&issue.code),
                    escape(&issue.message)
                ));
            }
            text
        }
    }
}
