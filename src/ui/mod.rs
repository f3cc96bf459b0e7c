//! The dashboard: server-rendered HTML pages over the same use cases the
//! API calls (`app::runs`, `app::validations`), for a person with a browser.
//!
//! Templates are maud: the markup is a Rust macro checked at compile time,
//! and every value spliced into it is HTML-escaped (nothing here uses
//! `PreEscaped`, maud's way out). Askama would also escape by default, but
//! keeps templates in separate files with a syntax of their own; maud's
//! markup holds plain Rust (`match`, `if let`, helper functions that return
//! `Markup`), so the compiler, clippy and the architecture test check it
//! like the rest of the code. It brings no runtime dependency besides
//! `itoa`.
//!
//! The pages need no JavaScript and load nothing from elsewhere: the style
//! sheet is embedded in the binary and served from /ui/static/, and charts
//! are SVG drawn here (`chart.rs`). Every answer carries a strict
//! Content-Security-Policy (no script at all, styles only from this
//! server), so even a value that escaped escaping could not run.
//!
//! Routes live outside the OpenAPI service: the spec describes the JSON API
//! only, and stays as it was.

mod auth;
mod chart;
mod contracts;
mod format;
mod layout;
mod parts;
mod runs;
mod validations;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get,
    http::{Method, StatusCode, header},
    web::Redirect,
};

use crate::{
    app::{App, AppError},
    domain::keys::AuthError,
};

pub use auth::COOKIE;

/// The dashboard's routes, to be nested at `/ui`. Anything else under it
/// answers the dashboard's own 404 page, and any error the framework raises
/// (a method not allowed, a body too large) an HTML page of its status.
pub fn routes() -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/", get(runs::list_page))
        .at("/runs/:run_id", get(runs::detail_page))
        .at("/validations", get(validations::list_page))
        .at("/validations/:validation_id", get(validations::detail_page))
        .at("/contracts/:contract_id", get(contracts::page))
        .at("/sign-in", get(auth::sign_in_form).post(auth::sign_in))
        .at("/sign-out", poem::post(auth::sign_out))
        .at("/static/style.css", get(layout::style_sheet))
        .catch_all_error(framework_error)
        .after(|resp| async move { Ok(secured(resp?)) })
}

/// `/`: the dashboard is the front page. Every other request goes on.
pub async fn front_page<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if req.uri().path() == "/" && matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(Redirect::see_other("/ui").into_response());
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Headers every dashboard answer carries: no script may run, styles come
/// only from here, no other site may frame the page, and a page shown to a
/// signed-in person is not kept by a shared cache.
fn secured(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

/// Why a page could not be shown.
#[derive(Debug)]
enum UiError {
    /// The person must sign in first (or again): `why` says why.
    SignIn {
        why: Option<String>,
        next: String,
        /// The request came from a link on another site, so a
        /// SameSite=Strict cookie was not sent with it.
        cross_site: bool,
    },
    /// A run or contract that is not there.
    NotFound(String),
    /// A use case refused or failed.
    App(AppError),
}

impl From<AppError> for UiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound { kind, id } => {
                UiError::NotFound(format!("{kind} '{id}' not found"))
            }
            other => UiError::App(other),
        }
    }
}

impl UiError {
    /// The page for this error: sign-in is a redirect, the rest a page in
    /// the dashboard's style with the status the API would answer.
    fn into_response(self, ctx: &layout::Context) -> Response {
        match self {
            UiError::SignIn {
                why,
                next,
                cross_site,
            } => auth::to_sign_in(why.as_deref(), &next, cross_site),
            UiError::NotFound(what) => {
                layout::error_page(ctx, StatusCode::NOT_FOUND, "Not found", &what)
            }
            UiError::App(AppError::Busy(e)) => {
                tracing::warn!(error = %e, "dashboard page: storage busy");
                layout::error_page(
                    ctx,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    "The registry is too busy to answer right now; reload the page in a moment.",
                )
            }
            UiError::App(AppError::Domain(e)) => layout::error_page(
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot show this",
                &e.to_string(),
            ),
            UiError::App(AppError::Auth(e)) => {
                auth::to_sign_in(Some(&auth::refusal(&e)), "/ui", false)
            }
            UiError::App(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                layout::error_page(
                    ctx,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The registry could not show this page; the server's log says why.",
                )
            }
        }
    }
}

/// Renders the result of a page: the page itself, or its error as a page.
fn respond(ctx: &layout::Context, page: Result<Response, UiError>) -> Response {
    page.unwrap_or_else(|e| e.into_response(ctx))
}

/// Decides whether the request may read, and who is reading: the cookie set
/// by the sign-in form, else an X-API-Key header, each checked by the same
/// `Authenticator` as the API's header (a hashed lookup). Without either,
/// reads pass unless the server requires a key for them.
async fn reader(app: &App, req: &Request) -> Result<layout::Context, UiError> {
    let presented = auth::presented_key(req);
    let next = req
        .uri()
        .path_and_query()
        .map_or("/ui".to_owned(), |p| p.as_str().to_owned());
    let cross_site = req
        .headers()
        .get("Sec-Fetch-Site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    match app.auth.read(presented.as_deref()).await {
        Ok(caller) => Ok(layout::Context {
            caller: caller.map(|c| c.name),
            now: app.clock.now(),
            sign_in_needed: app.settings.require_auth_for_reads,
        }),
        Err(AppError::Auth(AuthError::ReadsNeedKey)) => Err(UiError::SignIn {
            why: None,
            next,
            cross_site,
        }),
        Err(AppError::Auth(e)) => Err(UiError::SignIn {
            why: Some(auth::refusal(&e)),
            next,
            cross_site,
        }),
        Err(e) => Err(e.into()),
    }
}

/// An error raised before or around a handler (no such page, method not
/// allowed, a body over the cap) as a page in the dashboard's style.
async fn framework_error(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let ctx = layout::Context::anonymous();
    if status == StatusCode::NOT_FOUND {
        return layout::error_page(
            &ctx,
            status,
            "Not found",
            "There is no such page in the dashboard.",
        );
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    layout::error_page(
        &ctx,
        status,
        reason,
        &format!("The request was refused: {reason}."),
    )
}
