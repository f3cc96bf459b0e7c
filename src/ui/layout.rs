//! The one layout every page shares: head with a title per page, a header
//! with the navigation and who is signed in, the main content, the style
//! sheet (embedded, served from /ui/static/style.css).

use maud::{DOCTYPE, Markup, html};
use poem::{
    IntoResponse, Response,
    http::{StatusCode, header},
    web::Html,
};

use crate::domain::time::Timestamp;

const STYLE: &str = include_str!("style.css");

/// The style sheet's address, with a digest of its content so a browser's
/// cached copy is replaced when the binary changes it.
fn style_href() -> &'static str {
    use std::sync::OnceLock;
    static HREF: OnceLock<String> = OnceLock::new();
    HREF.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(STYLE.as_bytes()));
        format!("/ui/static/style.css?v={}", &digest[..12])
    })
}

#[poem::handler]
pub fn style_sheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(STYLE)
}

/// What every page knows about the request: who reads, and when.
#[derive(Debug, Clone)]
pub struct Context {
    /// The API key's name when the person signed in (or sent a key).
    pub caller: Option<String>,
    /// The registry's clock, for "3 min ago".
    pub now: Timestamp,
    /// Reads need a key: show the way to sign in and out.
    pub sign_in_needed: bool,
}

impl Context {
    /// For pages shown before anyone is known (a 404 from the router).
    pub fn anonymous() -> Self {
        Self {
            caller: None,
            now: Timestamp::now(),
            sign_in_needed: false,
        }
    }
}

/// Which navigation entry the page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Runs,
    Validations,
    None,
}

/// A whole page: `title` names it in the tab and the heading.
pub fn page(ctx: &Context, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · griot-registry" }
                link rel="stylesheet" href=(style_href());
                link rel="icon" type="image/png" href="/favicon.ico";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/ui" { "griot-registry" }
                    nav aria-label="Main" {
                        ul {
                            li { (nav_link("/ui", "Runs", section == Section::Runs)) }
                            li { (nav_link("/ui/validations", "Validations", section == Section::Validations)) }
                            li { a href="/docs" { "API docs" } }
                        }
                    }
                    (who(ctx))
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
                footer.site {
                    "Times are UTC. " a href="/openapi.json" { "OpenAPI spec" }
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current {
            a href=(href) aria-current="page" { (label) }
        } @else {
            a href=(href) { (label) }
        }
    }
}

/// Who is signed in, with a sign-out button; or a sign-in link where reads
/// need a key.
fn who(ctx: &Context) -> Markup {
    html! {
        @if let Some(name) = &ctx.caller {
            form.who method="post" action="/ui/sign-out" {
                span { "Signed in as " strong { (name) } }
                button type="submit" { "Sign out" }
            }
        } @else if ctx.sign_in_needed {
            a.who href="/ui/sign-in" { "Sign in" }
        }
    }
}

/// An HTML answer with `status`.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut resp = Html(markup.into_string()).into_response();
    resp.set_status(status);
    resp
}

/// A page saying what went wrong, in the same style as the rest.
pub fn error_page(ctx: &Context, status: StatusCode, title: &str, message: &str) -> Response {
    html_response(
        status,
        page(
            ctx,
            Section::None,
            title,
            html! {
                p.lead { (message) }
                p { a href="/ui" { "Back to the runs" } }
            },
        ),
    )
}
