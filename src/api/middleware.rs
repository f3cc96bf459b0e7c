//! Middleware every request passes through: the body size cap and the
//! request log.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use tokio::io::AsyncReadExt;
use tracing::{Instrument, info, info_span};

use crate::api::error::{self, ApiError};

/// Past the cap, how much more of a body is read (and thrown away) before
/// answering 413, and for how long at most.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// What a request body may be.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// How long the whole body may take to arrive.
    pub timeout: Duration,
}

/// Refuses bodies over `max_bytes` with 413, whether or not the client
/// declared a Content-Length (a chunked body is counted as it is read), and
/// bodies that do not arrive within `timeout` with 408: the header-read
/// timeout ends at the head, so without this a client could hold a
/// connection (and its slot under the connection cap) by trickling a body.
///
/// The rest of a refused body is read and discarded (up to
/// `DRAIN_MAX_BYTES`, for at most `DRAIN_MAX_TIME`) before the answer goes
/// out: a client that writes its whole body before reading (Python's
/// urllib, most blocking clients) would otherwise hit a closed socket
/// mid-write and see a connection reset instead of the 413. The answer
/// then closes the connection.
pub async fn limit_body<E: Endpoint>(
    next: E,
    mut req: Request,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let max = limits.max_bytes;
    // No operation reads a body on these methods; one sent anyway is left
    // unread (the server closes the connection after answering).
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut reader = req.take_body().into_async_read();
    let limit = u64::try_from(max).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    let over = match declared {
        Some(n) if n > limit => true,
        _ => {
            let mut capped = (&mut reader).take(limit.saturating_add(1));
            match tokio::time::timeout(limits.timeout, capped.read_to_end(&mut bytes)).await {
                Ok(done) => {
                    done.map_err(|e| {
                        ApiError::new(
                            error::ErrorCode::BadRequest,
                            format!("the request body could not be read: {e}"),
                        )
                    })?;
                }
                Err(_) => {
                    let mut resp = ApiError::new(
                        error::ErrorCode::RequestTimeout,
                        format!(
                            "the request body did not arrive within {} s (see \
                             --body-timeout-seconds); send it in one go",
                            limits.timeout.as_secs()
                        ),
                    )
                    .into_response();
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    return Ok(resp);
                }
            }
            bytes.len() > max
        }
    };
    if over {
        let _ = tokio::time::timeout(
            DRAIN_MAX_TIME,
            tokio::io::copy(&mut reader.take(DRAIN_MAX_BYTES), &mut tokio::io::sink()),
        )
        .await;
        let mut resp = error::too_large().into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }
    req.set_body(bytes);
    next.call(req).await.map(IntoResponse::into_response)
}

/// One line per request: method, path, status and latency. Never the body,
/// the query string or a header, so no credential reaches the log.
pub async fn log_request<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    // Everything logged while handling the request carries its method and
    // path.
    let span = info_span!("request", %method, %path);
    let result = next
        .call(req)
        .instrument(span)
        .await
        .map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status(),
        Err(err) => err.status(),
    };
    info!(
        %method,
        %path,
        status = status.as_u16(),
        latency_ms = format_args!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    result
}

/// Adds the `Allow` header that RFC 9110 requires on a 405, listing the
/// methods the spec declares for the path.
pub async fn allow_on_405<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = next.call(req).await?.into_response();
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed_methods(&path)
    {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(resp)
}

/// A spec path: its template and its
/// methods ("GET, POST").
struct SpecPath {
    template: String,
    methods: String,
}

/// Every path of the served spec, read once from it.
fn spec_paths() -> &'static [SpecPath] {
    static TABLE: OnceLock<Vec<SpecPath>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::openapi_json()).unwrap_or_default();
        spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, ops)| {
                let methods: Vec<String> = ops
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_uppercase())
                    .collect();
                SpecPath {
                    template: template.clone(),
                    methods: methods.join(", "),
                }
            })
            .collect()
    })
}

/// The spec path `path` falls under, if any.
fn spec_path(path: &str) -> Option<&'static SpecPath> {
    spec_paths()
        .iter()
        .find(|p| matches_template(&p.template, path))
}

/// True when `path` fits `template`, where a `{name}` segment stands for
/// any one non-empty segment. It runs for every request (the metrics
/// label), so it walks both without allocating.
fn matches_template(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(t), Some(w))
                if t == w || (t.starts_with('{') && t.ends_with('}') && !w.is_empty()) => {}
            _ => return false,
        }
    }
}

fn allowed_methods(path: &str) -> Option<HeaderValue> {
    spec_path(path).and_then(|p| HeaderValue::from_str(&p.methods).ok())
}

/// The paths `build_app` serves beside the spec's: the spec and Swagger UI,
/// /metrics, and the dashboard's pages (src/ui), as templates.
pub const OUTSIDE_SPEC: [&str; 15] = [
    "/openapi.json",
    "/openapi.yaml",
    "/docs",
    "/docs/",
    "/favicon.ico",
    "/metrics",
    "/",
    "/ui",
    "/ui/runs/{run_id}",
    "/ui/validations",
    "/ui/validations/{validation_id}",
    "/ui/contracts/{contract_id}",
    "/ui/sign-in",
    "/ui/sign-out",
    "/ui/static/style.css",
];

/// The route a path is served by, as a fixed string: the spec's template
/// (`/api/v1/runs/{run_id}`), one of the paths outside the spec, or
/// `unmatched` for every other path, so that a client sending made-up
/// paths cannot add label values to the metrics.
pub fn route_template(path: &str) -> &'static str {
    if let Some(p) = spec_path(path) {
        return &p.template;
    }
    OUTSIDE_SPEC
        .into_iter()
        .find(|known| matches_template(known, path))
        .unwrap_or("unmatched")
}

/// Answers 401 when the X-API-Key header holds bytes that are not visible
/// ASCII. poem-openapi would take such a header for a missing one and say
/// "no API key", sending the person to look for a header that is there;
/// the usual cause is a curly quote or a non-breaking space picked up
/// where the key was pasted. Checked once here, for every path under
/// /api/, so reads and writes say the same.
pub async fn refuse_non_ascii_key<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let garbled = req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get_all(crate::api::auth::HEADER)
            .iter()
            .any(|v| v.to_str().is_err());
    if garbled {
        return Ok(ApiError::unauthorized(format!(
            "the X-API-Key header holds non-ASCII bytes, so it cannot be a key: a key is \
             '{}' followed by 64 lowercase hex characters; look for a stray character (a \
             curly quote, a non-breaking space) picked up where it was pasted",
            crate::domain::keys::SECRET_PREFIX
        ))
        .into_response());
    }
    next.call(req).await.map(IntoResponse::into_response)
}
