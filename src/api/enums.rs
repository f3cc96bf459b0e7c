//! The wire mirrors of the domain's string enums: the same values, with the
//! documentation Swagger UI shows for each.

use super::types::wire_enum;
use crate::domain::{
    run::RunStatus,
    validation::{Granularity, ValidationStatus},
    webhooks::{DeliveryState, EventType, WebhookFormat},
};

wire_enum! {
    /// Where a run is in its life. `completed`, `failed` and `cancelled` are
    /// final.
    #[oai(rename = "RunStatus", rename_all = "lowercase")]
    pub enum RunStatusBody mirrors RunStatus {
        /// Scheduled but not started.
        Pending,
        /// Currently executing.
        Running,
        /// Finished successfully.
        Completed,
        /// Encountered an error.
        Failed,
        /// Was cancelled.
        Cancelled,
    }
}

wire_enum! {
    /// The outcome of a validation.
    #[oai(rename = "ValidationStatus", rename_all = "lowercase")]
    pub enum ValidationStatusBody mirrors ValidationStatus {
        /// Every check passed.
        Passed,
        /// At least one check failed.
        Failed,
        /// Passed, with warnings.
        Warning,
        /// The checks were not run.
        Skipped,
    }
}

wire_enum! {
    /// The width of a stats bucket, aligned to UTC: the hour, midnight, or
    /// Monday midnight.
    #[oai(rename = "Granularity", rename_all = "lowercase")]
    pub enum GranularityBody mirrors Granularity {
        Hour,
        Day,
        Week,
    }
}

wire_enum! {
    /// What a webhook subscription can hear of.
    #[oai(rename = "WebhookEvent")]
    pub enum WebhookEventBody mirrors EventType {
        /// A run was created.
        #[oai(rename = "run.created")]
        RunCreated,
        /// A run reached `completed`.
        #[oai(rename = "run.completed")]
        RunCompleted,
        /// A run reached `failed`; also a heartbeat expiry, for a
        /// subscription that does not list `run.heartbeat_expired`.
        #[oai(rename = "run.failed")]
        RunFailed,
        /// A run reached `cancelled`.
        #[oai(rename = "run.cancelled")]
        RunCancelled,
        /// The server failed a run whose heartbeat lapsed.
        #[oai(rename = "run.heartbeat_expired")]
        RunHeartbeatExpired,
        /// A validation was recorded as `failed`.
        #[oai(rename = "validation.failed")]
        ValidationFailed,
        /// A validation was recorded as `warning`.
        #[oai(rename = "validation.warning")]
        ValidationWarning,
        /// Sent by the test action only; a subscription cannot list it.
        #[oai(rename = "webhook.test")]
        WebhookTest,
    }
}

wire_enum! {
    /// How a webhook's messages are written.
    #[oai(rename = "WebhookFormat", rename_all = "lowercase")]
    pub enum WebhookFormatBody mirrors WebhookFormat {
        /// Standard Webhooks: a JSON body `{"type", "timestamp", "data"}`,
        /// signed in the `webhook-signature` header.
        Standard,
        /// A Slack incoming-webhook message (`{"text": ...}`): pipeline,
        /// contract, status and a link to the run.
        Slack,
    }
}

wire_enum! {
    /// Where a webhook message is in its delivery.
    #[oai(rename = "DeliveryState", rename_all = "lowercase")]
    pub enum DeliveryStateBody mirrors DeliveryState {
        /// Waiting for its first or next attempt.
        Pending,
        /// The receiver answered with a 2xx status.
        Delivered,
        /// Every attempt failed until the retry window closed.
        Failed,
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{ParseFromParameter, ToJSON, Type};
    use serde_json::Value;

    use super::*;
    use crate::{api::types::allowed_values, domain::enums::StringEnum};

    /// The wire enum `B` lists exactly the domain's strings, in its order,
    /// and every value goes through the wire and back unchanged.
    fn assert_mirrors<D, B>()
    where
        D: StringEnum + From<B>,
        B: Type
            + ToJSON
            + ParseFromParameter
            + serde::de::DeserializeOwned
            + From<D>
            + Copy
            + PartialEq
            + std::fmt::Debug,
    {
        let strings: Vec<&str> = D::all().iter().map(|d| d.as_str()).collect();
        assert_eq!(allowed_values::<B>(), strings.join(", "), "{}", B::name());
        for &d in D::all() {
            let b = B::from(d);
            assert_eq!(D::from(b), d);
            assert_eq!(b.to_json(), Some(Value::from(d.as_str())), "{d:?}");
            assert_eq!(B::parse_from_parameter(d.as_str()).ok(), Some(b), "{d:?}");
            let read: B = serde_json::from_value(Value::from(d.as_str())).unwrap();
            assert_eq!(read, b);
        }
    }

    #[test]
    fn mirrors_carry_the_domain_strings() {
        assert_mirrors::<RunStatus, RunStatusBody>();
        assert_mirrors::<ValidationStatus, ValidationStatusBody>();
        assert_mirrors::<Granularity, GranularityBody>();
        assert_mirrors::<EventType, WebhookEventBody>();
        assert_mirrors::<WebhookFormat, WebhookFormatBody>();
        assert_mirrors::<DeliveryState, DeliveryStateBody>();
    }
}
