//! The HTTP API: one module per OpenAPI tag, each with its operations and
//! wire types. Nothing here touches SQL; rules live in `domain`.

pub mod auth;
pub mod body;
pub mod enums;
pub mod error;
pub mod examples;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod runs;
pub mod samples;
pub mod server;
pub mod spec;
pub mod types;
pub mod validations;
pub mod webhooks;
pub mod written;

use std::sync::OnceLock;

use poem::{Response, http::header};
use poem_openapi::{OpenApiService, Tags};
use serde_json::Value;

use crate::domain::{Cursor, Position};

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
    /// Signed messages to your endpoint or Slack when runs fail or
    /// validations fail or warn. Needs an `admin` key.
    Webhooks,
}

pub type Api = (
    health::HealthApi,
    runs::RunsApi,
    validations::ValidationsApi,
    webhooks::WebhooksApi,
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
            webhooks::WebhooksApi,
        ),
        "griot-registry",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A run registry for data pipelines. It records every pipeline execution as a run \
         and the data-quality validations recorded during it, and answers what ran, \
         whether it passed and what is failing lately.\n\n\
         Writes need an API key in the `X-API-Key` header (managing webhooks, a key with \
         the `admin` scope); reads are open unless the server runs with \
         `--require-auth-for-reads`. Every error has the body \
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

/// Where a list page starts: after `offset` matches, or after the item
/// `cursor` names (the `next_cursor` of an earlier page) and `offset` more.
pub fn position(offset: u64, cursor: Option<String>) -> Result<Position, error::ApiError> {
    match cursor {
        None => Ok(Position::Offset(offset)),
        Some(c) => Ok(Position::After(Cursor::decode(&c)?, offset)),
    }
}

/// The cursor of the page after `items`, when more follow. `key` reads
/// the last item's stored time; one that does not read is a fault of the
/// file, not of the request.
pub fn next_cursor<T>(
    items: &[T],
    more: bool,
    key: impl Fn(&T) -> Option<Cursor>,
) -> Result<Option<String>, error::ApiError> {
    let Some(last) = items.last().filter(|_| more) else {
        return Ok(None);
    };
    key(last).map(|c| Some(c.encode())).ok_or_else(|| {
        error::ApiError::internal(&"the last item of the page has a stored time that does not read")
    })
}

/// The `limit` a page answers with: the one asked for, or, when the byte
/// budget cut the page short, the number of items it holds, so that a client
/// stepping `offset` by the answer's `limit` (or by the items it got) sees
/// every item once.
pub fn answered_limit(asked: u32, items: usize, truncated: bool) -> u32 {
    if truncated {
        u32::try_from(items).unwrap_or(asked)
    } else {
        asked
    }
}

/// The finished spec (see [`spec::finish`]), built once per process.
fn finished_spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        // poem-openapi serialises its own document; failing to read it back
        // is a bug in the build, caught by every test, not a request error.
        let derived = serde_json::from_str(&openapi_service().spec())
            .expect("poem-openapi's spec is valid JSON");
        spec::finish(derived)
    })
}

/// The spec as JSON, as served at /openapi.json and checked in.
pub fn spec_json() -> String {
    serde_json::to_string_pretty(finished_spec()).unwrap_or_default()
}

/// The spec as YAML, as served at /openapi.yaml and checked in.
pub fn spec_yaml() -> String {
    serde_yaml::to_string(finished_spec()).unwrap_or_default()
}

/// Swagger UI's page, showing the finished spec (poem-openapi's own page
/// embeds the derived one), with our title and icon.
pub fn swagger_html() -> String {
    let service = openapi_service();
    service
        .swagger_ui_html()
        .replacen(&service.spec(), &spec_json(), 1)
        .replacen(
            "<title>Swagger UI</title>",
            "<title>griot-registry API</title>\n    <link rel=\"icon\" type=\"image/png\" href=\"/favicon.ico\">",
            1,
        )
}

const FAVICON: &[u8] = include_bytes!("favicon.png");

/// The icon browsers ask every page's site for; without it each visit to
/// /docs logs a 404 in the browser console.
pub fn favicon() -> Response {
    Response::builder()
        .content_type("image/png")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(FAVICON)
}
