//! The validations list, and how one validation reads (also on its run's
//! page).

use maud::{Markup, html};
use poem::{
    Request, Response,
    http::StatusCode,
    web::{Data, Path, Query},
};
use serde::Deserialize;

use super::{
    UiError,
    format::{self, contract_href, query, run_href, validation_href, when},
    layout::{self, Context, Section, html_response},
    parts::{
        self, COUNT_UP_TO, DEFAULT_LIMIT, pager, parse_date, parse_paging, problems,
        validation_card,
    },
    reader, respond,
};
use crate::{
    app::{self, App},
    domain::{
        Position,
        text::filter_value,
        validation::{Validation, ValidationFilter, ValidationStatus},
    },
};

/// The validations list's query string: the API's filters.
#[derive(Debug, Default, Deserialize)]
pub struct ValidationQuery {
    contract_id: Option<String>,
    run_id: Option<String>,
    status: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl ValidationQuery {
    fn text(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or_default()
    }

    fn parse(&self) -> (ValidationFilter, u32, u64, Vec<String>) {
        let mut problems = Vec::new();
        let status = filter_value(self.status.clone()).and_then(|s| {
            let found = ValidationStatus::parse(&s);
            if found.is_none() {
                problems.push(format!(
                    "status: '{s}' is not a validation status (passed, failed, warning, skipped)"
                ));
            }
            found
        });
        let start_date = parse_date(
            "recorded on or after",
            self.start_date.as_ref(),
            &mut problems,
        );
        let end_date = parse_date("recorded before", self.end_date.as_ref(), &mut problems);
        let (limit, offset) =
            parse_paging(self.limit.as_ref(), self.offset.as_ref(), &mut problems);
        let filter = ValidationFilter {
            contract_id: filter_value(self.contract_id.clone()),
            run_id: filter_value(self.run_id.clone()),
            status,
            start_date,
            end_date,
            count_up_to: Some(COUNT_UP_TO + 1),
        };
        (filter, limit, offset, problems)
    }

    fn with_offset(&self, offset: u64, limit: u32) -> String {
        let offset = offset.to_string();
        let limit = if limit == DEFAULT_LIMIT {
            String::new()
        } else {
            limit.to_string()
        };
        query(&[
            ("contract_id", Self::text(&self.contract_id)),
            ("run_id", Self::text(&self.run_id)),
            ("status", Self::text(&self.status)),
            ("start_date", Self::text(&self.start_date)),
            ("end_date", Self::text(&self.end_date)),
            ("limit", &limit),
            ("offset", if offset == "0" { "" } else { &offset }),
        ])
    }
}

#[poem::handler]
pub async fn list_page(req: &Request, app: Data<&App>, q: Query<ValidationQuery>) -> Response {
    let ctx = match reader(&app, req).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(&Context::anonymous()),
    };
    let page = list(&app, &ctx, &q.0).await;
    respond(&ctx, page)
}

async fn list(app: &App, ctx: &Context, q: &ValidationQuery) -> Result<Response, UiError> {
    let (filter, limit, offset, found_problems) = q.parse();
    if !found_problems.is_empty() {
        let body = html! { (filter_form(q)) (problems(&found_problems)) };
        return Ok(html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::page(ctx, Section::Validations, "Validations", body),
        ));
    }
    let page = app::validations::list(app, filter, (limit, Position::Offset(offset))).await?;
    let shown = page.items.len() as u64;
    let body = html! {
        (filter_form(q))
        (pager(page.total, offset, shown, limit, |o| format!("/ui/validations{}", q.with_offset(o, limit))))
        @if page.items.is_empty() {
            p.empty { "No validations match these filters." }
        } @else {
            (table(ctx, &page.items))
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(ctx, Section::Validations, "Validations", body),
    ))
}

fn filter_form(q: &ValidationQuery) -> Markup {
    let status = q.status.as_deref().unwrap_or_default();
    html! {
        form.filters method="get" action="/ui/validations" role="search" aria-label="Filter validations" {
            (parts::text_field("v-contract", "Contract", "contract_id", &q.contract_id, None))
            (parts::text_field("v-run", "Run id", "run_id", &q.run_id, None))
            (parts::status_select("v-status", status, &ValidationStatus::ALL.map(ValidationStatus::as_str)))
            (parts::date_fields("v", "Recorded", &q.start_date, &q.end_date))
            div.actions {
                button type="submit" { "Filter" }
                a href="/ui/validations" { "Clear" }
            }
        }
    }
}

fn table(ctx: &Context, items: &[Validation]) -> Markup {
    html! {
        div.table-wrap {
            table.validations {
                caption.visually-hidden { "Validations, newest first" }
                thead {
                    tr {
                        th scope="col" { "Status" }
                        th scope="col" { "Validation" }
                        th scope="col" { "Contract" }
                        th scope="col" { "Run" }
                        th scope="col" { "Recorded" }
                        th scope="col" { "Errors" }
                        th scope="col" { "Warnings" }
                        th scope="col" { "Duration" }
                        th scope="col" { "By" }
                    }
                }
                tbody {
                    @for v in items {
                        tr {
                            td { (format::validation_badge(v.status)) }
                            td { a href=(validation_href(&v.id)) { code.id { (v.id) } } }
                            td { a href=(contract_href(&v.contract_id)) { (v.contract_id) } }
                            td {
                                @if let Some(r) = &v.run_id {
                                    a.id href={(run_href(r)) "#validations"} { (r) }
                                } @else { span.muted { "—" } }
                            }
                            td { (when(v.recorded_at, ctx.now)) }
                            td {
                                @if v.errors.is_empty() { span.muted { "0" } }
                                @else {
                                    (v.errors.len()) ": "
                                    @for (i, e) in v.errors.iter().take(3).enumerate() {
                                        @if i > 0 { ", " }
                                        code { (e.code) }
                                    }
                                }
                            }
                            td { (v.warnings.len()) }
                            td {
                                @if let Some(ms) = v.duration_ms() { (format::duration_micros(ms * 1_000)) }
                                @else { span.muted { "—" } }
                            }
                            td { (v.recorded_by) }
                        }
                    }
                }
            }
        }
    }
}

#[poem::handler]
pub async fn detail_page(req: &Request, app: Data<&App>, validation_id: Path<String>) -> Response {
    let ctx = match reader(&app, req).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(&Context::anonymous()),
    };
    let page = detail(&app, &ctx, validation_id.0).await;
    respond(&ctx, page)
}

/// One validation on its own page: for those recorded without a run, whose
/// errors no run page shows.
async fn detail(app: &App, ctx: &Context, id: String) -> Result<Response, UiError> {
    let v = app::validations::get(app, id).await?;
    let title = format!("Validation of {}", v.contract_id);
    let body = html! {
        dl.fields {
            dt { "Contract" } dd { a href=(contract_href(&v.contract_id)) { (v.contract_id) } }
            dt { "Run" }
            dd {
                @if let Some(r) = &v.run_id { a.id href=(run_href(r)) { (r) } }
                @else { span.muted { "recorded without a run" } }
            }
        }
        (validation_card(ctx, &v))
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(ctx, Section::Validations, &title, body),
    ))
}
