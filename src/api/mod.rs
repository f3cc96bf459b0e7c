//! The HTTP API: one module per OpenAPI tag, each with its operations and
//! wire types. Nothing here touches SQL; rules live in `domain`.

pub mod auth;
pub mod body;
pub mod health;
pub mod runs;
pub mod types;
pub mod validations;

use poem_openapi::{OpenApiService, Tags};

/// Groups of operations, as Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Pipeline executions: create one when a pipeline starts, update it as
    /// it goes, and list what ran.
    Runs,
    /// Data-quality check results recorded during runs, and their trends.
    Validations,
    /// Liveness and readiness of the service.
    Health,
}

pub type Api = (
    health::HealthApi,
    runs::RunsApi,
    validations::ValidationsApi,
);

/// The OpenAPI service. Its title, version and server URL are fixed so the
/// exported spec is stable; the server URL is relative so the spec works on
/// whatever host and port the registry is reached at.
pub fn openapi_service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            runs::RunsApi,
            validations::ValidationsApi,
        ),
        "griot-registry",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A run registry for data pipelines. It records every pipeline execution as a run \
         and the data-quality validations recorded during it, and answers what ran, \
         whether it passed and what is failing lately.\n\n\
         Writes need an API key in the `X-API-Key` header; reads are open unless the \
         server runs with `--require-auth-for-reads`. Every error has the body \
         `{\"detail\": {\"code\": \"...\", \"message\": \"...\"}}`.",
    )
    .server("/")
}

pub fn default_limit() -> i64 {
    50
}

/// Bounds already checked by the parameter validators.
pub fn page_bounds(limit: i64, offset: i64) -> (u32, u64) {
    (
        u32::try_from(limit).unwrap_or(1),
        u64::try_from(offset).unwrap_or(0),
    )
}
