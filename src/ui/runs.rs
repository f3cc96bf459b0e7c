//! The runs list (the dashboard's front page) and one run's whole story.

use maud::{Markup, html};
use poem::{
    Request, Response,
    http::StatusCode,
    web::{Data, Path, Query},
};
use serde::Deserialize;

use super::{
    UiError,
    format::{self, contract_href, query, run_href, when},
    layout::{self, Context, Section, html_response},
    parts::{
        self, COUNT_UP_TO, DEFAULT_LIMIT, pager, parse_date, parse_paging, pretty, problems,
        validation_card,
    },
    reader, respond,
};
use crate::{
    app::{self, App},
    domain::{
        Position,
        run::{RunDetail, RunFilter, RunListItem, RunRecord, RunStatus},
        text::filter_value,
        time::Timestamp,
        validation::{ValidationFilter, ValidationStatus},
    },
};

/// How many events and validations the run page shows at most.
const EVENTS_SHOWN: u32 = 500;
const VALIDATIONS_SHOWN: u32 = 100;

/// The runs list's query string: the API's filters, as a form sends them
/// (an empty field is no filter).
#[derive(Debug, Default, Deserialize)]
pub struct RunQuery {
    contract_id: Option<String>,
    pipeline_name: Option<String>,
    status: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    stale: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// The filters as given, and what they mean, with a message for each one
/// that does not parse.
struct Parsed {
    filter: RunFilter,
    stale: bool,
    limit: u32,
    offset: u64,
    problems: Vec<String>,
}

impl RunQuery {
    fn parse(&self) -> Parsed {
        let mut problems = Vec::new();
        let status = filter_value(self.status.clone()).and_then(|s| {
            let found = RunStatus::parse(&s);
            if found.is_none() {
                problems.push(format!(
                    "status: '{s}' is not a run status (pending, running, completed, failed, \
                     cancelled)"
                ));
            }
            found
        });
        let start_date = parse_date(
            "started on or after",
            self.start_date.as_ref(),
            &mut problems,
        );
        let end_date = parse_date("started before", self.end_date.as_ref(), &mut problems);
        let (limit, offset) =
            parse_paging(self.limit.as_ref(), self.offset.as_ref(), &mut problems);
        Parsed {
            filter: RunFilter {
                contract_id: filter_value(self.contract_id.clone()),
                pipeline_name: filter_value(self.pipeline_name.clone()),
                status,
                start_date,
                end_date,
                stale_at: None,
                count_up_to: Some(COUNT_UP_TO + 1),
            },
            stale: matches!(self.stale.as_deref(), Some("true" | "on" | "1")),
            limit,
            offset,
            problems,
        }
    }

    fn text(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or_default()
    }

    /// The filters as a query string, with another offset.
    fn with_offset(&self, offset: u64, limit: u32) -> String {
        let offset = offset.to_string();
        let limit = if limit == DEFAULT_LIMIT {
            String::new()
        } else {
            limit.to_string()
        };
        let stale = if matches!(self.stale.as_deref(), Some("true" | "on" | "1")) {
            "true"
        } else {
            ""
        };
        query(&[
            ("contract_id", Self::text(&self.contract_id)),
            ("pipeline_name", Self::text(&self.pipeline_name)),
            ("status", Self::text(&self.status)),
            ("start_date", Self::text(&self.start_date)),
            ("end_date", Self::text(&self.end_date)),
            ("stale", stale),
            ("limit", &limit),
            ("offset", if offset == "0" { "" } else { &offset }),
        ])
    }
}

#[poem::handler]
pub async fn list_page(req: &Request, app: Data<&App>, q: Query<RunQuery>) -> Response {
    let ctx = match reader(&app, req).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(&Context::anonymous()),
    };
    let page = list(&app, &ctx, &q.0).await;
    respond(&ctx, page)
}

async fn list(app: &App, ctx: &Context, q: &RunQuery) -> Result<Response, UiError> {
    let parsed = q.parse();
    if !parsed.problems.is_empty() {
        let body = html! {
            (quick_views(ctx, q))
            (filter_form(q))
            (problems(&parsed.problems))
        };
        return Ok(html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::page(ctx, Section::Runs, "Runs", body),
        ));
    }
    let page = app::runs::list_records(
        app,
        parsed.filter,
        parsed.stale,
        (parsed.limit, Position::Offset(parsed.offset)),
    )
    .await?;
    let shown = page.items.len() as u64;
    let body = html! {
        (quick_views(ctx, q))
        (filter_form(q))
        (pager(page.total, parsed.offset, shown, parsed.limit, |o| format!("/ui{}", q.with_offset(o, parsed.limit))))
        @if page.items.is_empty() {
            p.empty { "No runs match these filters." }
        } @else {
            (runs_table(ctx, &page.items))
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(ctx, Section::Runs, "Runs", body),
    ))
}

/// One-click views: what failed today or yesterday, what is running, what
/// went quiet.
fn quick_views(ctx: &Context, q: &RunQuery) -> Markup {
    let today = day(ctx.now);
    let yesterday = day(ctx.now.plus_seconds(-86_400));
    let tomorrow = day(ctx.now.plus_seconds(86_400));
    let views = [
        (
            "Failed today",
            query(&[
                ("status", "failed"),
                ("start_date", &today),
                ("end_date", &tomorrow),
            ]),
        ),
        (
            "Failed yesterday",
            query(&[
                ("status", "failed"),
                ("start_date", &yesterday),
                ("end_date", &today),
            ]),
        ),
        ("Running now", query(&[("status", "running")])),
        ("Stale", query(&[("stale", "true")])),
        ("All runs", String::new()),
    ];
    let current = q.with_offset(0, DEFAULT_LIMIT);
    html! {
        nav.views aria-label="Quick views" {
            ul {
                @for (label, qs) in &views {
                    li {
                        @if *qs == current {
                            a href={"/ui" (qs)} aria-current="page" { (label) }
                        } @else {
                            a href={"/ui" (qs)} { (label) }
                        }
                    }
                }
            }
        }
    }
}

/// `2024-01-15`: the UTC date of `t`.
pub fn day(t: Timestamp) -> String {
    t.to_string().get(..10).unwrap_or_default().to_owned()
}

fn filter_form(q: &RunQuery) -> Markup {
    let status = q.status.as_deref().unwrap_or_default();
    let stale = matches!(q.stale.as_deref(), Some("true" | "on" | "1"));
    html! {
        form.filters method="get" action="/ui" role="search" aria-label="Filter runs" {
            (parts::text_field("f-contract", "Contract", "contract_id", &q.contract_id, None))
            (parts::text_field("f-pipeline", "Pipeline", "pipeline_name", &q.pipeline_name, None))
            (parts::status_select("f-status", status, &RunStatus::ALL.map(RunStatus::as_str)))
            (parts::date_fields("f", "Started", &q.start_date, &q.end_date))
            div.field.check {
                input #f-stale type="checkbox" name="stale" value="true" checked[stale];
                label for="f-stale" { "Stale only (heartbeat overdue)" }
            }
            div.actions {
                button type="submit" { "Filter" }
                a href="/ui" { "Clear" }
            }
        }
    }
}

/// The runs as stored: the page shows no metadata, so none is parsed.
fn runs_table(ctx: &Context, items: &[RunListItem<RunRecord>]) -> Markup {
    html! {
        div.table-wrap {
            table.runs {
                caption.visually-hidden { "Runs, newest first" }
                thead {
                    tr {
                        th scope="col" { "Status" }
                        th scope="col" { "Run" }
                        th scope="col" { "Contract" }
                        th scope="col" { "Pipeline" }
                        th scope="col" { "Started" }
                        th scope="col" { "Duration" }
                        th scope="col" { "Validations" }
                        th scope="col" { "By" }
                    }
                }
                tbody {
                    @for item in items {
                        @let run = &item.run;
                        tr {
                            td {
                                (format::run_badge(run.status))
                                @if run.is_overdue(ctx.now) { " " span.badge.stale { "stale" } }
                            }
                            td { a.id href=(run_href(&run.id)) { (run.id) } }
                            td { a href=(contract_href(&run.contract_id)) { (run.contract_id) } }
                            td {
                                @if let Some(p) = &run.pipeline_name {
                                    a href={"/ui" (query(&[("pipeline_name", p)]))} { (p) }
                                } @else { span.muted { "—" } }
                            }
                            td { (format::when_stored(&run.started_at, ctx.now)) }
                            td { (format::stored_run_duration(run, ctx.now)) }
                            td { (format::summary(&item.validation_summary)) }
                            td { (run.created_by) }
                        }
                    }
                }
            }
        }
    }
}

#[poem::handler]
pub async fn detail_page(req: &Request, app: Data<&App>, run_id: Path<String>) -> Response {
    let ctx = match reader(&app, req).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(&Context::anonymous()),
    };
    let page = detail(&app, &ctx, run_id.0).await;
    respond(&ctx, page)
}

async fn detail(app: &App, ctx: &Context, id: String) -> Result<Response, UiError> {
    let detail = app::runs::get(app, id.clone()).await?;
    let events = app::runs::events(app, id.clone(), (EVENTS_SHOWN, 0)).await?;
    let validations = app::validations::list(
        app,
        ValidationFilter {
            run_id: Some(id.clone()),
            ..ValidationFilter::default()
        },
        (VALIDATIONS_SHOWN, Position::Offset(0)),
    )
    .await?;
    let RunDetail { run, .. } = &detail;
    let title = format!(
        "Run of {}",
        run.pipeline_name.as_deref().unwrap_or(&run.contract_id)
    );
    let failed = validations
        .items
        .iter()
        .filter(|v| v.status == ValidationStatus::Failed)
        .count();
    let body = html! {
        p.lead {
            (format::run_badge(run.status))
            @if run.is_overdue(ctx.now) { " " span.badge.stale { "stale" } }
            " " code { (run.id) }
        }
        section aria-labelledby="h-fields" {
            h2 #h-fields { "Details" }
            dl.fields {
                dt { "Contract" } dd { a href=(contract_href(&run.contract_id)) { (run.contract_id) } }
                dt { "Pipeline" }
                dd {
                    @if let Some(p) = &run.pipeline_name {
                        a href={"/ui" (query(&[("pipeline_name", p)]))} { (p) }
                    } @else { span.muted { "not reported" } }
                }
                dt { "Pipeline run id" }
                dd { @if let Some(p) = &run.pipeline_id { code { (p) } } @else { span.muted { "not reported" } } }
                dt { "Started" } dd { (when(run.started_at, ctx.now)) }
                dt { "Completed" }
                dd { @if let Some(c) = run.completed_at { (when(c, ctx.now)) } @else { span.muted { "not yet" } } }
                dt { "Duration" } dd { (format::run_duration(run, ctx.now)) }
                dt { "Created by" } dd { (run.created_by) }
                dt { "Last changed" } dd { (when(run.updated_at, ctx.now)) }
                dt { "Version" } dd { (run.version) }
            }
        }
        section aria-labelledby="h-heartbeat" {
            h2 #h-heartbeat { "Heartbeat" }
            dl.fields {
                dt { "Timeout" }
                dd {
                    @if let Some(t) = run.heartbeat_timeout_seconds {
                        (format::duration_micros(i64::from(t) * 1_000_000))
                    } @else { span.muted { "none: the run never goes stale" } }
                }
                dt { "Last sign of life" }
                dd {
                    @if let Some(h) = run.last_heartbeat_at { (when(h, ctx.now)) }
                    @else { span.muted { "none recorded" } }
                }
                dt { "Deadline" }
                dd {
                    @if let Some(d) = run.heartbeat_deadline() {
                        (when(d, ctx.now))
                        @if run.is_overdue(ctx.now) {
                            " " span.badge.stale { "overdue" }
                        } @else {
                            " " span.badge.ok { "on time" }
                        }
                    } @else if run.status.is_final() {
                        span.muted { "none: the run is " (run.status.as_str()) }
                    } @else {
                        span.muted { "none" }
                    }
                }
            }
        }
        section aria-labelledby="h-metadata" {
            h2 #h-metadata { "Metadata" }
            @if run.metadata.is_empty() {
                p.muted { "No metadata." }
            } @else {
                pre.json { (pretty(&run.metadata)) }
            }
        }
        section aria-labelledby="h-events" {
            h2 #h-events { "History" }
            ol.timeline {
                @for e in &events.items {
                    li {
                        (when(e.occurred_at, ctx.now))
                        span.event { (e.event_type.as_str().replace('_', " ")) }
                        @if let (Some(from), Some(to)) = (e.from_status, e.to_status) {
                            @if from != to { " " (format::run_badge(from)) " → " (format::run_badge(to)) }
                        } @else if let Some(to) = e.to_status {
                            " as " (format::run_badge(to))
                        }
                        " by " strong.actor { (e.actor) }
                        @if !e.changes.is_empty() {
                            details {
                                summary { "Changes" }
                                pre.json { (pretty(&e.changes)) }
                            }
                        }
                    }
                }
            }
            @if events.total > events.items.len() as u64 {
                p.muted { (events.total - events.items.len() as u64) " later events are not shown." }
            }
        }
        section aria-labelledby="h-validations" {
            h2 #h-validations {
                "Validations (" (validations.total) ")"
            }
            @if validations.items.is_empty() {
                p.muted { "No validations were recorded during this run." }
            } @else {
                @if failed > 0 { p { strong { (failed) " failed." } } }
                @for v in &validations.items { (validation_card(ctx, v)) }
                @if validations.total > validations.items.len() as u64 {
                    p { a href={"/ui/validations" (query(&[("run_id", &run.id)]))} { "All validations of this run" } }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(ctx, Section::Runs, &title, body),
    ))
}
