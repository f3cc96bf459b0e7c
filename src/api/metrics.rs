//! `GET /metrics` for Prometheus, and the middleware that counts every
//! request by its route template. Not part of the OpenAPI spec: it is for
//! the operator's scraper, not for API clients.

use std::{sync::Arc, time::Instant};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{Method, header},
    web::Data,
};

use crate::{
    api::{auth, error::ApiError, middleware},
    app::{
        App,
        metrics::{self, Metrics, RequestLabels},
    },
};

/// The metrics, in the OpenMetrics text format. Open like other reads:
/// with `--require-auth-for-reads` it needs a key, sent in `X-API-Key` or
/// as `Authorization: Bearer <key>` (what Prometheus's `authorization`
/// setting sends).
#[poem::handler]
pub async fn scrape(req: &Request, Data(app): Data<&App>) -> Response {
    let presented = req
        .headers()
        .get(auth::HEADER)
        .or_else(|| req.headers().get(header::AUTHORIZATION))
        .map(|value| {
            let value = value.to_str().unwrap_or_default();
            value.strip_prefix("Bearer ").unwrap_or(value).trim()
        });
    if let Err(e) = app.auth.read(presented).await {
        return ApiError::from(e).into_response();
    }
    match app.metrics.render().await {
        Ok(text) => Response::builder()
            .content_type(metrics::CONTENT_TYPE)
            .body(text),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Counts the request and its latency under its route template (the
/// spec's path, such as `/api/v1/runs/{run_id}`, or `unmatched`), method
/// and final status.
pub async fn count_request<E: Endpoint>(
    next: E,
    req: Request,
    metrics: Arc<Metrics>,
) -> poem::Result<Response> {
    let route = middleware::route_template(req.uri().path());
    let method = method_label(req.method());
    let started = Instant::now();
    let result = next.call(req).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status(),
        Err(err) => err.status(),
    };
    let labels = RequestLabels {
        route,
        method,
        status: status.as_u16(),
    };
    metrics.record_request(&labels, started.elapsed());
    result
}

/// The method as a label: the standard ones by name, anything else
/// `other`, so a client inventing methods cannot add label values.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}
