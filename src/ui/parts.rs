//! Pieces several pages share: paging, the reading of filter values, the
//! problems box, a validation's card, JSON for a person.

use maud::{Markup, html};

use super::{
    format::{self, when},
    layout::Context,
};
use crate::domain::{text::filter_value, time::Timestamp, validation::Validation};

/// A labelled text input of a filter form; `placeholder` hints the format.
pub fn text_field(
    id: &str,
    label: &str,
    name: &str,
    value: &Option<String>,
    placeholder: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type="text" name=(name) placeholder=[placeholder]
                value=(value.as_deref().unwrap_or_default());
        }
    }
}

/// A labelled status select of a filter form: "any", then each of
/// `statuses`, with the one asked for selected.
pub fn status_select(id: &str, selected: &str, statuses: &[&str]) -> Markup {
    html! {
        div.field {
            label for=(id) { "Status" }
            select id=(id) name="status" {
                option value="" selected[selected.is_empty()] { "any" }
                @for s in statuses {
                    option value=(s) selected[selected == *s] { (s) }
                }
            }
        }
    }
}

/// The date range of a filter form, `what` saying which time it bounds
/// ("Started", "Recorded").
pub fn date_fields(
    prefix: &str,
    what: &str,
    start: &Option<String>,
    end: &Option<String>,
) -> Markup {
    html! {
        (text_field(&format!("{prefix}-start"), &format!("{what} on or after"), "start_date", start, Some("YYYY-MM-DD")))
        (text_field(&format!("{prefix}-end"), &format!("{what} before"), "end_date", end, Some("YYYY-MM-DD")))
    }
}

/// The page size when none is asked for, and the largest one (the API's).
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;
pub fn parse_date(
    field: &str,
    value: Option<&String>,
    problems: &mut Vec<String>,
) -> Option<Timestamp> {
    let value = filter_value(value.cloned())?;
    match Timestamp::parse_lenient(&value) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{field}: {e}"));
            None
        }
    }
}

pub fn parse_paging(
    limit: Option<&String>,
    offset: Option<&String>,
    problems: &mut Vec<String>,
) -> (u32, u64) {
    let limit = match filter_value(limit.cloned()) {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                problems.push(format!("limit: give a page size from 1 to {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    let offset = match filter_value(offset.cloned()) {
        None => 0,
        Some(o) => o.parse::<u64>().unwrap_or_else(|_| {
            problems.push("offset: give a whole number, 0 or more".to_owned());
            0
        }),
    };
    (limit, offset)
}

pub fn problems(problems: &[String]) -> Markup {
    html! {
        div.problems role="alert" {
            p { strong { "These filters could not be read:" } }
            ul { @for p in problems { li { (p) } } }
        }
    }
}

/// Lists count their matches up to this many and say "more than" past it:
/// counting a million runs costs more than rendering the page of fifty.
pub const COUNT_UP_TO: u64 = 10_000;

/// "Showing 1–50 of 1234" with links to the previous and next pages. A
/// `total` past `COUNT_UP_TO` was cut short: the count reads "more than",
/// and a full page always has a next one.
pub fn pager(
    total: u64,
    offset: u64,
    shown: u64,
    limit: u32,
    href: impl Fn(u64) -> String,
) -> Markup {
    let more = total > COUNT_UP_TO;
    let prev = (offset > 0).then(|| offset.saturating_sub(u64::from(limit)));
    let has_next = if more {
        shown > 0 && shown >= u64::from(limit)
    } else {
        offset + shown < total && shown > 0
    };
    let next = has_next.then_some(offset + shown);
    html! {
        nav.pager aria-label="Pages" {
            p {
                @if shown == 0 {
                    @if more { "More than " (COUNT_UP_TO) } @else { (total) } " matching"
                } @else {
                    "Showing " (offset + 1) "–" (offset + shown) " of "
                    @if more { "more than " (COUNT_UP_TO) } @else { (total) }
                }
            }
            @if let Some(p) = prev {
                a rel="prev" href=(href(p)) { "← Newer" }
            }
            @if let Some(n) = next {
                a rel="next" href=(href(n)) { "Older →" }
            }
        }
    }
}

/// One validation with its errors, warnings, metrics and metadata.
pub fn validation_card(ctx: &Context, v: &Validation) -> Markup {
    html! {
        article.validation id=(v.id) {
            h3 {
                (format::validation_badge(v.status)) " " code { (v.id) }
            }
            p.meta {
                "Recorded " (when(v.recorded_at, ctx.now)) " by " strong { (v.recorded_by) }
            }
            @if !v.errors.is_empty() {
                div.table-wrap {
                    table.issues {
                        caption { "Errors (" (v.errors.len()) ")" }
                        thead { tr {
                            th scope="col" { "Code" } th scope="col" { "Message" }
                            th scope="col" { "Path" } th scope="col" { "Rows" }
                        } }
                        tbody {
                            @for e in &v.errors {
                                tr {
                                    td { code { (e.code) } }
                                    td { (e.message) }
                                    td { @if let Some(p) = &e.path { code { (p) } } }
                                    td { @if let Some(n) = e.row_count { (n) } }
                                }
                            }
                        }
                    }
                }
            }
            @if !v.warnings.is_empty() {
                h4 { "Warnings (" (v.warnings.len()) ")" }
                ul.warnings {
                    @for w in &v.warnings { li { code { (w.code) } ": " (w.message) } }
                }
            }
            @if !v.metrics.is_empty() {
                h4 { "Metrics" }
                dl.metrics {
                    @for (k, value) in &v.metrics {
                        dt { (k) }
                        dd { (metric(value)) }
                    }
                }
            }
            @if !v.metadata.is_empty() {
                details {
                    summary { "Metadata" }
                    pre.json { (pretty(&v.metadata)) }
                }
            }
        }
    }
}

/// A metric's value: a plain number or string as itself, anything else as
/// JSON.
fn metric(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Metadata as indented JSON, for a `<pre>`; maud escapes it.
pub fn pretty(value: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(total: u64, offset: u64, shown: u64) -> String {
        pager(total, offset, shown, 50, |o| format!("/ui?offset={o}")).into_string()
    }

    #[test]
    fn the_pager_counts_and_links() {
        let first = pages(120, 0, 50);
        assert!(first.contains("Showing 1–50 of 120"), "{first}");
        assert!(first.contains("href=\"/ui?offset=50\""));
        assert!(!first.contains("rel=\"prev\""));
        let last = pages(120, 100, 20);
        assert!(last.contains("href=\"/ui?offset=50\""), "{last}");
        assert!(!last.contains("rel=\"next\""));
    }

    #[test]
    fn a_count_cut_short_reads_more_than() {
        let page = pages(COUNT_UP_TO + 1, 0, 50);
        assert!(page.contains("of more than 10000"), "{page}");
        assert!(page.contains("rel=\"next\""));
        let deep = pages(COUNT_UP_TO + 1, 20_000, 50);
        assert!(
            deep.contains("Showing 20001–20050 of more than 10000"),
            "{deep}"
        );
        assert!(deep.contains("href=\"/ui?offset=20050\""));
    }
}
