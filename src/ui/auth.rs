//! Signing in to the dashboard when reads need a key
//! (`--require-auth-for-reads`).
//!
//! The form takes an API key and keeps it in a cookie: `HttpOnly` (no
//! script can read it), `SameSite=Strict` (no other site's page or form
//! makes the browser send it) and `Path=/ui` (the JSON API never sees it:
//! the API reads only the X-API-Key header, so a cookie can never make a
//! cross-site request to it count as signed in). Each page checks the
//! cookie exactly as the API checks the header: `Authenticator::read`, a
//! hashed lookup, so a revoked key stops working at once.
//!
//! CSRF: the dashboard only reads; its two POSTs are sign-in and sign-out.
//! Both are refused unless the browser's `Origin` header (or, where a
//! browser sends none, its `Referer`) names this very host: a form on
//! another site cannot sign a person in under someone else's key (login
//! CSRF) or out. Together with SameSite=Strict this needs no token, and so
//! no server-side session state.
//!
//! The secret is never written back into a page, a URL or the log: the
//! request log records method and path only, and the form's field is a
//! password field the page always renders empty.

use maud::html;
use poem::{
    IntoResponse, Request, Response,
    http::{StatusCode, header},
    web::{Data, Form, Query},
};
use serde::Deserialize;

use super::layout::{self, Context, Section, html_response};
use crate::{app::App, domain::keys::AuthError};

/// The cookie that holds the key.
pub const COOKIE: &str = "griot_key";

/// The API's key header, also taken by the pages.
const API_KEY_HEADER: &str = "X-API-Key";

/// The key a request presents: the dashboard's cookie, else the API's
/// header (for scripts and the benchmark).
pub fn presented_key(req: &Request) -> Option<String> {
    cookie(req).or_else(|| {
        req.headers()
            .get(API_KEY_HEADER)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    })
}

fn cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Why a key was refused, for a person at a browser rather than a client
/// sending a header.
pub fn refusal(e: &AuthError) -> String {
    match e {
        AuthError::Malformed => format!(
            "That is not an API key: a key is '{}' followed by 64 lowercase hex characters.",
            crate::domain::keys::SECRET_PREFIX
        ),
        AuthError::Unknown => "No API key with this secret exists.".to_owned(),
        AuthError::ReadsNeedKey => "This registry needs an API key to show its runs.".to_owned(),
        other => other.to_string(),
    }
}

/// Only a path of the dashboard itself is a place to go back to, so a
/// crafted link cannot send a person elsewhere after signing in.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains('\\') => n,
        _ => "/ui",
    }
}

/// The sign-in page, answered with 401 in place of a page that needs a key.
/// `why` says what was wrong with the key the browser sent; that cookie is
/// then cleared.
pub fn to_sign_in(why: Option<&str>, next: &str, cross_site: bool) -> Response {
    if cross_site && why.is_none() {
        // A link followed from another site arrives without the
        // SameSite=Strict cookie. Loading the page again from here is a
        // same-site navigation, which carries it.
        return html_response(
            StatusCode::UNAUTHORIZED,
            html! {
                (maud::DOCTYPE)
                html lang="en" {
                    head {
                        meta charset="utf-8";
                        meta http-equiv="refresh" content="0";
                        title { "Signing in · griot-registry" }
                    }
                    body { p { a href=(safe_next(Some(next))) { "Continue" } } }
                }
            },
        );
    }
    let mut resp = sign_in_page(why, safe_next(Some(next)), StatusCode::UNAUTHORIZED);
    if why.is_some() {
        clear_cookie(&mut resp);
    }
    resp
}

fn sign_in_page(why: Option<&str>, next: &str, status: StatusCode) -> Response {
    let ctx = Context {
        caller: None,
        now: crate::domain::time::Timestamp::now(),
        sign_in_needed: false,
    };
    html_response(
        status,
        layout::page(
            &ctx,
            Section::None,
            "Sign in",
            html! {
                @if let Some(why) = why {
                    div.problems role="alert" { p { (why) } }
                }
                p {
                    "This registry asks for an API key before it shows its runs. Paste a key \
                     (read or write scope, from " code { "griot-registry keys create" } "). \
                     It is kept in a cookie for this browser session, sent only to the \
                     dashboard, and never shown again."
                }
                form.sign-in method="post" action="/ui/sign-in" {
                    input type="hidden" name="next" value=(next);
                    div.field {
                        label for="api-key" { "API key" }
                        input #api-key type="password" name="api_key" required
                            autocomplete="current-password" spellcheck="false"
                            placeholder="grk_…";
                    }
                    div.actions { button type="submit" { "Sign in" } }
                }
            },
        ),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[poem::handler]
pub fn sign_in_form(q: Query<NextQuery>) -> Response {
    sign_in_page(None, safe_next(q.next.as_deref()), StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignInForm {
    api_key: String,
    next: Option<String>,
}

// Not Debug: it holds the secret.
#[poem::handler]
pub async fn sign_in(req: &Request, app: Data<&App>, form: Form<SignInForm>) -> Response {
    if let Some(refused) = cross_origin_refusal(req) {
        return refused;
    }
    let next = safe_next(form.next.as_deref());
    match app.auth.authenticate(form.api_key.trim()).await {
        Ok(_) => {
            let mut resp = see_other(next);
            let secure = if is_https(req) { "; Secure" } else { "" };
            let value = format!(
                "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict{secure}",
                form.api_key.trim()
            );
            if let Ok(v) = header::HeaderValue::from_str(&value) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(crate::app::AppError::Auth(e)) => {
            sign_in_page(Some(&refusal(&e)), next, StatusCode::UNAUTHORIZED)
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard sign-in could not check the key");
            layout::error_page(
                &Context::anonymous(),
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot sign in now",
                "The registry could not check the key; try again in a moment.",
            )
        }
    }
}

#[poem::handler]
pub fn sign_out(req: &Request) -> Response {
    if let Some(refused) = cross_origin_refusal(req) {
        return refused;
    }
    let mut resp = see_other("/ui");
    clear_cookie(&mut resp);
    resp
}

fn see_other(to: &str) -> Response {
    poem::web::Redirect::see_other(to).into_response()
}

fn clear_cookie(resp: &mut Response) {
    resp.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "griot_key=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
}

fn is_https(req: &Request) -> bool {
    req.uri().scheme_str() == Some("https")
        || req
            .headers()
            .get("X-Forwarded-Proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The answer refusing a form posted from another origin, or None when it
/// came from here: the `Origin` header (or the `Referer`'s origin where
/// there is no Origin) must name the host this request was sent to. A
/// request with neither is refused too.
fn cross_origin_refusal(req: &Request) -> Option<Response> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let authority = origin.and_then(|o| {
        let rest = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))?;
        Some(rest.split('/').next().unwrap_or(rest))
    });
    match (host, authority) {
        (Some(h), Some(a)) if h.eq_ignore_ascii_case(a) => None,
        _ => Some(layout::error_page(
            &Context::anonymous(),
            StatusCode::FORBIDDEN,
            "Refused",
            "This form must be sent from the dashboard's own page (the browser's Origin \
             header did not name this server).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/ui/runs/x?y=1")), "/ui/runs/x?y=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("/ui\\@evil")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }
}
