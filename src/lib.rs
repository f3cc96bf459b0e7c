//! griot-registry: a run registry for data pipelines.
//!
//! `build_app` assembles the HTTP application once, for the binary, the
//! tests and the spec export alike, so what is tested and exported is what
//! is served.

pub mod api;
pub mod app;
pub mod cli;
pub mod domain;
pub mod store;
pub mod ui;

use std::{future::Future, time::Duration};

use poem::{Endpoint, EndpointExt, Route, endpoint::make_sync, get, web::Html};
use tracing::info;

pub use app::App;

/// The registry's use cases over `store`, with webhook messages written as
/// the API writes runs and validations: what the binary and the tests
/// serve.
pub fn new_app(store: store::Store, settings: app::Settings, clock: domain::time::Clock) -> App {
    App::with_settings(
        store,
        settings,
        clock,
        std::sync::Arc::new(api::webhooks::WirePayloads),
    )
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, once its head has.
    pub body_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The whole application: the API, its spec at /openapi.json and
/// /openapi.yaml, Swagger UI at /docs, Prometheus metrics at /metrics and
/// the dashboard at /ui (where `/` leads), the last two outside the spec. A
/// path served here beside the spec is listed in
/// `api::middleware::OUTSIDE_SPEC` too, so its requests are counted under
/// its own route.
pub fn build_app(
    app: App,
    options: &HttpOptions,
) -> impl Endpoint<Output = poem::Response> + use<> {
    let body_limits = api::middleware::BodyLimits {
        max_bytes: options.max_body_bytes,
        timeout: options.body_timeout,
    };
    let json = api::spec_json();
    let yaml = api::spec_yaml();
    let docs = api::swagger_html();
    let metrics = app.metrics.clone();
    Route::new()
        .at(
            "/openapi.json",
            get(make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(json.clone())
            })),
        )
        .at(
            "/openapi.yaml",
            get(make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/x-yaml")
                    .header("Content-Disposition", "inline; filename=\"openapi.yaml\"")
                    .body(yaml.clone())
            })),
        )
        .at(
            "/docs",
            get(make_sync({
                let docs = docs.clone();
                move |_| Html(docs.clone())
            })),
        )
        .at("/docs/", get(make_sync(move |_| Html(docs.clone()))))
        .at("/favicon.ico", get(make_sync(|_| api::favicon())))
        .at("/metrics", get(api::metrics::scrape))
        .nest("/ui", ui::routes())
        .nest("/", api::openapi_service())
        // `/` itself is the API service's nest root, so the way to the
        // dashboard is taken before routing.
        .around(ui::front_page)
        .around(move |ep, req| api::middleware::limit_body(ep, req, body_limits))
        .around(api::middleware::refuse_non_ascii_key)
        .data(app)
        .catch_all_error(api::error::render)
        .around(api::middleware::allow_on_405)
        .around(move |ep, req| api::metrics::count_request(ep, req, metrics.clone()))
        .around(api::middleware::log_request)
        .map_to_response()
}

/// The OpenAPI spec as served, for `griot-registry openapi` and the drift
/// test.
pub fn openapi_json() -> String {
    api::spec_json()
}

pub fn openapi_yaml() -> String {
    api::spec_yaml()
}

/// Serves `app` on an already bound listener until `shutdown` resolves, then
/// stops accepting and gives in-flight requests `grace` to finish.
pub async fn run(
    app: impl Endpoint + 'static,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()> {
    let options = api::server::ServerOptions {
        grace,
        ..api::server::ServerOptions::default()
    };
    run_with_options(app, listener, shutdown, options).await
}

/// `run` with the server's limits and timeouts spelled out.
pub async fn run_with_options(
    app: impl Endpoint + 'static,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    options: api::server::ServerOptions,
) -> std::io::Result<()> {
    info!("listening on http://{}", listener.local_addr()?);
    api::server::serve(app, listener, shutdown, options).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down: no new connections; waiting for in-flight requests");
}
