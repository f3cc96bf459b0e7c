//! Middleware every request passes through: the body size cap and the
//! request log.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response, error::ReadBodyError, http::header};
use tracing::info;

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
    let result = next.call(req).await.map(IntoResponse::into_response);
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
