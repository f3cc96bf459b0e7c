//! Liveness and readiness probes.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::ApiTags;
use super::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::app::App;

#[derive(Object, Debug)]
#[oai(example)]
pub struct Health {
    /// `ok` when the service (and, for readiness, its database) works.
    pub status: String,
    /// The server's version.
    pub version: String,
}

#[derive(ApiResponse)]
enum Readiness {
    /// The service and its database answer.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The database cannot be read or written: a read-only file, a full
    /// disk, a damaged file; the message says which.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn ok() -> Health {
    Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// Answers as long as the process serves HTTP. Never needs a key.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Health> {
        Json(ok())
    }

    /// Readiness
    ///
    /// Answers 200 when the database can be read and written, 503 with the
    /// reason otherwise (a read-only file, a full disk, a damaged file).
    /// The check is rerun at most once a second. Never needs a key.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, app: Data<&App>) -> Readiness {
        match app.store.check_ready().await {
            Ok(()) => Readiness::Ready(Json(ok())),
            // Logged (with backoff) by the check.
            Err(reason) => Readiness::Unavailable(Json(ErrorBody {
                detail: ErrorDetail {
                    code: ErrorCode::Internal,
                    message: reason.0,
                },
            })),
        }
    }
}
