//! Middleware every request passes through: the body size cap and the
//! request log.

use std::{sync::OnceLock, time::Instant};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    error::ReadBodyError,
    http::{HeaderValue, StatusCode, header},
};
use tracing::{Instrument, info, info_span};

use crate::error::{self, ApiError};

/// Refuses bodies over `max` bytes with 413, whether or not the client
/// declared a Content-Length (a chunked body is counted as it is read).
pub async fn limit_body<E: Endpoint>(
    next: E,
    mut req: Request,
    max: usize,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(error::too_large().into());
    }
    let body = req.take_body();
    let bytes = body.into_bytes_limit(max).await.map_err(|e| match e {
        ReadBodyError::PayloadTooLarge => poem::Error::from(error::too_large()),
        other => poem::Error::from(ApiError::new(
            error::ErrorCode::BadRequest,
            format!("the request body could not be read: {other}"),
        )),
    })?;
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

/// (path template split into segments, "GET, POST") for every spec path.
type MethodTable = Vec<(Vec<String>, String)>;

fn allowed_methods(path: &str) -> Option<HeaderValue> {
    static TABLE: OnceLock<MethodTable> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::openapi_json()).unwrap_or_default();
        spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, ops)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let methods: Vec<String> = ops
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_uppercase())
                    .collect();
                (segments, methods.join(", "))
            })
            .collect()
    });
    let wanted: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .find(|(segments, _)| {
            segments.len() == wanted.len()
                && segments.iter().zip(&wanted).all(|(t, w)| {
                    t == w || (t.starts_with('{') && t.ends_with('}') && !w.is_empty())
                })
        })
        .and_then(|(_, methods)| HeaderValue::from_str(methods).ok())
}
