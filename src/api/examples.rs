//! The examples the spec shows, on every request and response schema. They
//! tell one story (the spec's daily-etl run of contract-123, its failed
//! null check, the stats it feeds), so Swagger UI's prefilled requests
//! succeed as sent and its sample answers agree with each other. Each is a
//! value of the wire type itself, so it cannot name a field the type lacks.

use poem_openapi::types::Example;
use serde_json::{Value, json};
use time::macros::datetime;

use super::{
    enums::{
        DeliveryStateBody, GranularityBody, RunStatusBody, ValidationStatusBody, WebhookEventBody,
        WebhookFormatBody,
    },
    error::{ErrorBody, ErrorCode, ErrorDetail},
    health::Health,
    runs::{
        CreateRunRequest, RunBody, RunEventBody, RunEventPage, RunFields, RunListItemBody, RunPage,
        RunWaitBody, UpdateRunRequest,
    },
    samples::{
        CONTRACT_ID, DELIVERY_ID, PIPELINE_ID, PIPELINE_NAME, RUN_ID, VALIDATION_ID, WEBHOOK_ID,
    },
    types::{DateTime, JsonObject, Name},
    validations::{
        BucketBody, CommonErrorBody, CreateValidationRequest, IssueBody, ValidationBody,
        ValidationPage, ValidationRefBody, ValidationStatsBody, ValidationSummaryBody,
    },
    webhooks::{
        AttemptBody, CreateWebhookRequest, CreatedWebhookBody, DeliveryBody, DeliveryPage,
        WebhookBody, WebhookList,
    },
};
use crate::domain::time::Timestamp;

fn object(value: Value) -> JsonObject {
    JsonObject(match value {
        Value::Object(map) => map,
        _ => Default::default(),
    })
}

fn at(t: time::OffsetDateTime) -> DateTime {
    DateTime(Timestamp::from_datetime(t))
}

fn started() -> DateTime {
    at(datetime!(2024-01-15 10:00:00 UTC))
}

fn finished() -> DateTime {
    at(datetime!(2024-01-15 10:05:00 UTC))
}

fn run_metadata() -> JsonObject {
    object(json!({
        "dag_id": "user_events_daily",
        "execution_date": "2024-01-15",
        "triggered_by": "scheduler"
    }))
}

fn live_run_fields() -> RunFields {
    RunFields {
        id: RUN_ID.into(),
        contract_id: CONTRACT_ID.into(),
        pipeline_name: Some(PIPELINE_NAME.into()),
        pipeline_id: Some(PIPELINE_ID.into()),
        status: RunStatusBody::Running,
        metadata: run_metadata(),
        started_at: started(),
        completed_at: None,
        created_by: "service-account".into(),
        updated_at: started(),
        version: 1,
        heartbeat_timeout_seconds: Some(600),
        last_heartbeat_at: Some(started()),
        heartbeat_deadline: Some(at(datetime!(2024-01-15 10:10:00 UTC))),
    }
}

fn completed_run_fields() -> RunFields {
    let mut metadata = run_metadata();
    metadata.0.insert("rows_processed".into(), json!(50000));
    metadata.0.insert("duration_seconds".into(), json!(120));
    RunFields {
        status: RunStatusBody::Completed,
        metadata,
        completed_at: Some(finished()),
        updated_at: finished(),
        version: 2,
        last_heartbeat_at: Some(finished()),
        heartbeat_deadline: None,
        ..live_run_fields()
    }
}

fn summary(failed: u64) -> ValidationSummaryBody {
    ValidationSummaryBody {
        passed: 0,
        failed,
        warning: 0,
        skipped: 0,
        total: failed,
    }
}

fn null_check() -> IssueBody {
    IssueBody {
        code: Name("null_values".into()),
        message: "email has 12 null values".into(),
        path: Some("email".into()),
        row_count: Some(12),
    }
}

impl Example for CreateRunRequest {
    fn example() -> Self {
        CreateRunRequest {
            contract_id: Name(CONTRACT_ID.into()),
            pipeline_name: Some(Name(PIPELINE_NAME.into())),
            pipeline_id: Some(Name(PIPELINE_ID.into())),
            status: Some(RunStatusBody::Running),
            metadata: Some(run_metadata()),
            started_at: None,
            completed_at: None,
            heartbeat_timeout_seconds: None,
        }
    }
}

impl Example for UpdateRunRequest {
    fn example() -> Self {
        UpdateRunRequest {
            status: Some(RunStatusBody::Completed),
            metadata: Some(object(json!({
                "rows_processed": 50000,
                "duration_seconds": 120
            }))),
            pipeline_name: None,
            heartbeat_timeout_seconds: None,
            pipeline_id: None,
        }
    }
}

impl Example for RunBody {
    fn example() -> Self {
        RunBody {
            fields: live_run_fields(),
            validations: vec![],
        }
    }
}

impl Example for RunListItemBody {
    fn example() -> Self {
        RunListItemBody {
            fields: completed_run_fields(),
            validation_summary: summary(1),
        }
    }
}

impl Example for RunPage {
    fn example() -> Self {
        RunPage {
            items: vec![RunListItemBody::example()],
            total: 1,
            limit: 50,
            offset: 0,
            truncated: false,
            next_cursor: None,
        }
    }
}

impl Example for RunEventBody {
    fn example() -> Self {
        RunEventBody {
            id: 2,
            run_id: RUN_ID.into(),
            event_type: "status_changed".into(),
            from_status: Some(RunStatusBody::Running),
            to_status: Some(RunStatusBody::Completed),
            changes: object(json!({
                "status": "completed",
                "metadata": {"rows_processed": 50000, "duration_seconds": 120}
            })),
            actor: "service-account".into(),
            occurred_at: finished(),
        }
    }
}

impl Example for RunEventPage {
    fn example() -> Self {
        let created = RunEventBody {
            id: 1,
            event_type: "created".into(),
            from_status: None,
            to_status: Some(RunStatusBody::Running),
            changes: object(json!({
                "contract_id": CONTRACT_ID,
                "pipeline_name": PIPELINE_NAME,
                "status": "running"
            })),
            occurred_at: started(),
            ..RunEventBody::example()
        };
        RunEventPage {
            items: vec![created, RunEventBody::example()],
            total: 2,
            limit: 50,
            offset: 0,
            truncated: false,
        }
    }
}

impl Example for RunWaitBody {
    fn example() -> Self {
        RunWaitBody {
            done: true,
            run: RunBody {
                fields: completed_run_fields(),
                validations: vec![ValidationRefBody {
                    id: VALIDATION_ID.into(),
                    status: ValidationStatusBody::Failed,
                    recorded_at: at(datetime!(2024-01-15 10:04:00 UTC)),
                }],
            },
        }
    }
}

impl Example for CreateValidationRequest {
    fn example() -> Self {
        // No run_id: an example naming a run would be refused on a server
        // where that run does not exist. Links from create_run fill it in.
        CreateValidationRequest {
            contract_id: Name(CONTRACT_ID.into()),
            run_id: None,
            status: ValidationStatusBody::Failed,
            errors: Some(vec![null_check()]),
            warnings: Some(vec![]),
            metrics: Some(object(json!({
                "rows_validated": 1000,
                "rows_failed": 12,
                "duration_ms": 420
            }))),
            metadata: Some(object(json!({"check_suite": "user_events"}))),
            recorded_at: None,
        }
    }
}

impl Example for ValidationBody {
    fn example() -> Self {
        ValidationBody {
            id: VALIDATION_ID.into(),
            contract_id: CONTRACT_ID.into(),
            run_id: Some(RUN_ID.into()),
            status: ValidationStatusBody::Failed,
            errors: vec![null_check()],
            warnings: vec![],
            metrics: object(json!({
                "rows_validated": 1000,
                "rows_failed": 12,
                "duration_ms": 420
            })),
            metadata: object(json!({"check_suite": "user_events"})),
            recorded_at: at(datetime!(2024-01-15 10:04:00 UTC)),
            recorded_by: "service-account".into(),
        }
    }
}

impl Example for ValidationPage {
    fn example() -> Self {
        ValidationPage {
            items: vec![ValidationBody::example()],
            total: 1,
            limit: 50,
            offset: 0,
            truncated: false,
            next_cursor: None,
        }
    }
}

impl Example for ValidationStatsBody {
    fn example() -> Self {
        let day = |d: time::OffsetDateTime, passed: u64, failed: u64| BucketBody {
            start: at(d),
            counts: ValidationSummaryBody {
                passed,
                failed,
                warning: 0,
                skipped: 0,
                total: passed + failed,
            },
            pass_rate: (passed + failed > 0)
                .then(|| (passed as f64 * 10000.0 / (passed + failed) as f64).round() / 100.0),
        };
        ValidationStatsBody {
            contract_id: CONTRACT_ID.into(),
            days: 2,
            granularity: GranularityBody::Day,
            window_start: at(datetime!(2024-01-14 10:30:00 UTC)),
            window_end: at(datetime!(2024-01-16 10:30:00 UTC)),
            totals: ValidationSummaryBody {
                passed: 3,
                failed: 1,
                warning: 0,
                skipped: 0,
                total: 4,
            },
            pass_rate: Some(75.0),
            avg_duration_ms: Some(398.5),
            buckets: vec![
                day(datetime!(2024-01-14 00:00 UTC), 2, 0),
                day(datetime!(2024-01-15 00:00 UTC), 1, 1),
                day(datetime!(2024-01-16 00:00 UTC), 0, 0),
            ],
            common_errors: vec![CommonErrorBody {
                code: "null_values".into(),
                count: 1,
                sample_message: "email has 12 null values".into(),
            }],
        }
    }
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            detail: ErrorDetail {
                code: ErrorCode::InvalidTransition,
                message: "run 'run_01HM7ZK2T1B8W3QX5V6Y9N4R2C' is completed, a final status; \
                          it cannot become running"
                    .into(),
            },
        }
    }
}

impl Example for Health {
    fn example() -> Self {
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A subscription's example target: a public name, so the example passes
/// the private-address check (deliveries to it fail, which the log shows).
const WEBHOOK_URL: &str = "https://hooks.example.com/griot";

impl Example for CreateWebhookRequest {
    fn example() -> Self {
        CreateWebhookRequest {
            url: WEBHOOK_URL.into(),
            events: vec![
                WebhookEventBody::RunFailed,
                WebhookEventBody::ValidationFailed,
            ],
            contract_id: Some(Name(CONTRACT_ID.into())),
            format: Some(WebhookFormatBody::Standard),
        }
    }
}

impl Example for WebhookBody {
    fn example() -> Self {
        WebhookBody {
            id: WEBHOOK_ID.into(),
            url: WEBHOOK_URL.into(),
            events: vec![
                WebhookEventBody::RunFailed,
                WebhookEventBody::ValidationFailed,
            ],
            contract_id: Some(CONTRACT_ID.into()),
            format: WebhookFormatBody::Standard,
            created_at: at(datetime!(2024-01-14 09:00:00 UTC)),
            created_by: "admin".into(),
            enabled: true,
            disabled_at: None,
            disabled_reason: None,
        }
    }
}

impl Example for CreatedWebhookBody {
    fn example() -> Self {
        CreatedWebhookBody {
            webhook: WebhookBody::example(),
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD1ve6cFv7PbU=".into(),
        }
    }
}

impl Example for WebhookList {
    fn example() -> Self {
        WebhookList {
            items: vec![WebhookBody::example()],
        }
    }
}

impl Example for DeliveryBody {
    fn example() -> Self {
        DeliveryBody {
            id: DELIVERY_ID.into(),
            event: WebhookEventBody::RunFailed,
            subject_id: RUN_ID.into(),
            state: DeliveryStateBody::Delivered,
            created_at: finished(),
            next_attempt_at: None,
            delivered_at: at(datetime!(2024-01-15 10:05:02 UTC)).into(),
            attempts: vec![
                AttemptBody {
                    attempt: 1,
                    attempted_at: finished(),
                    response_status: Some(503),
                    error: Some("answered 503".into()),
                    latency_ms: 87,
                },
                AttemptBody {
                    attempt: 2,
                    attempted_at: at(datetime!(2024-01-15 10:05:01 UTC)),
                    response_status: Some(200),
                    error: None,
                    latency_ms: 64,
                },
            ],
        }
    }
}

impl Example for DeliveryPage {
    fn example() -> Self {
        DeliveryPage {
            items: vec![DeliveryBody::example()],
            total: 1,
            limit: 50,
            offset: 0,
        }
    }
}
