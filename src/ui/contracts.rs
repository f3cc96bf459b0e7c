//! One contract: its pass rate over time, counts per status, the most
//! common errors, and its latest runs and validations.

use maud::html;
use poem::{
    Request, Response,
    http::StatusCode,
    web::{Data, Path, Query},
};
use serde::Deserialize;

use super::{
    UiError, chart,
    format::{self, query, run_href, when},
    layout::{self, Context, Section, html_response},
    reader, respond,
};
use crate::{
    app::{self, App},
    domain::{
        Position,
        run::RunFilter,
        text::filter_value,
        validation::{Granularity, STATS_DAYS, ValidationFilter},
    },
};

/// How many recent runs and validations the page lists.
const RECENT: u32 = 10;

#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    granularity: Option<String>,
    days: Option<String>,
}

/// The window each granularity shows unless `days` is given: two days of
/// hours, a month of days, half a year of weeks.
fn default_days(g: Granularity) -> u32 {
    match g {
        Granularity::Hour => 2,
        Granularity::Day => 30,
        Granularity::Week => 182,
    }
}

#[poem::handler]
pub async fn page(
    req: &Request,
    app: Data<&App>,
    contract_id: Path<String>,
    q: Query<StatsQuery>,
) -> Response {
    let ctx = match reader(&app, req).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(&Context::anonymous()),
    };
    let page = render(&app, &ctx, contract_id.0, &q.0).await;
    respond(&ctx, page)
}

async fn render(
    app: &App,
    ctx: &Context,
    contract: String,
    q: &StatsQuery,
) -> Result<Response, UiError> {
    let granularity = filter_value(q.granularity.clone())
        .and_then(|g| Granularity::parse(&g))
        .unwrap_or(Granularity::Day);
    let days = filter_value(q.days.clone())
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| STATS_DAYS.contains(d))
        .unwrap_or_else(|| default_days(granularity));
    let by_contract = RunFilter {
        contract_id: Some(contract.clone()),
        ..RunFilter::default()
    };
    let recent_runs = app::runs::list(
        app,
        by_contract.clone(),
        false,
        (RECENT, Position::Offset(0)),
    )
    .await?;
    let recent_validations = app::validations::list(
        app,
        ValidationFilter {
            contract_id: Some(contract.clone()),
            ..ValidationFilter::default()
        },
        (RECENT, Position::Offset(0)),
    )
    .await?;
    if recent_runs.total == 0 && recent_validations.total == 0 {
        return Err(UiError::NotFound(format!(
            "No runs or validations were ever recorded for contract '{contract}'."
        )));
    }
    let run_counts = app::runs::status_counts(app, contract.clone()).await?;
    let stats = app::validations::stats(app, contract.clone(), days, granularity).await?;
    let title = format!("Contract {contract}");
    let chart_title = format!(
        "Pass rate of {contract} per {}, last {days} days",
        granularity.as_str()
    );
    let body = html! {
        nav.views aria-label="Chart period" {
            ul {
                @for g in Granularity::ALL {
                    li {
                        @let href = format!("{}{}", format::contract_href(&contract), query(&[("granularity", g.as_str())]));
                        @if g == granularity {
                            a href=(href) aria-current="true" { "By " (g.as_str()) }
                        } @else {
                            a href=(href) { "By " (g.as_str()) }
                        }
                    }
                }
                li { a href={"/ui" (query(&[("contract_id", &contract)]))} { "All runs of this contract" } }
                li { a href={"/ui/validations" (query(&[("contract_id", &contract)]))} { "All validations" } }
            }
        }
        section aria-labelledby="h-trend" {
            h2 #h-trend { "Pass rate" }
            p {
                @if let Some(rate) = stats.totals.pass_rate() {
                    strong { (format::percent(rate)) } " of judged validations passed"
                } @else {
                    "No validation was judged"
                }
                " in the last " (days) " days (" (stats.totals.total()) " validations"
                @if let Some(avg) = stats.avg_duration_ms {
                    "; " (format::duration_micros((avg * 1_000.0) as i64)) " on average"
                }
                ")."
            }
            figure {
                (chart::pass_rate(&stats.buckets, granularity, &chart_title))
                figcaption { (chart_title) ". Red points had failures or warnings; grey bars are the number of validations." }
            }
            details {
                summary { "Chart data" }
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { (granularity.as_str()) }
                            th scope="col" { "Pass rate" }
                            th scope="col" { "Passed" } th scope="col" { "Failed" }
                            th scope="col" { "Warning" } th scope="col" { "Skipped" }
                        } }
                        tbody {
                            @for b in stats.buckets.iter().filter(|b| b.counts.total() > 0) {
                                tr {
                                    td { (chart::bucket_label(b, granularity)) }
                                    td { @if let Some(r) = b.counts.pass_rate() { (format::percent(r)) } @else { "—" } }
                                    td { (b.counts.passed) } td { (b.counts.failed) }
                                    td { (b.counts.warning) } td { (b.counts.skipped) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-counts" {
            h2 #h-counts { "Counts" }
            div.counts {
                div {
                    h3 { "Runs, all time" }
                    ul.tally {
                        @for (status, n) in &run_counts {
                            li {
                                a href={"/ui" (query(&[("contract_id", &contract), ("status", status.as_str())]))} {
                                    (format::run_badge(*status)) " " strong { (n) }
                                }
                            }
                        }
                    }
                }
                div {
                    h3 { "Validations, last " (days) " days" }
                    ul.tally {
                        li { (format::validation_badge(crate::domain::validation::ValidationStatus::Passed)) " " strong { (stats.totals.passed) } }
                        li { (format::validation_badge(crate::domain::validation::ValidationStatus::Failed)) " " strong { (stats.totals.failed) } }
                        li { (format::validation_badge(crate::domain::validation::ValidationStatus::Warning)) " " strong { (stats.totals.warning) } }
                        li { (format::validation_badge(crate::domain::validation::ValidationStatus::Skipped)) " " strong { (stats.totals.skipped) } }
                    }
                }
            }
        }
        section aria-labelledby="h-errors" {
            h2 #h-errors { "Most common errors, last " (days) " days" }
            @if stats.common_errors.is_empty() {
                p.muted { "No errors recorded." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Code" } th scope="col" { "Times" } th scope="col" { "Example message" } } }
                        tbody {
                            @for e in &stats.common_errors {
                                tr { td { code { (e.code) } } td { (e.count) } td { (e.sample_message) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-recent-runs" {
            h2 #h-recent-runs { "Latest runs" }
            @if recent_runs.items.is_empty() {
                p.muted { "No runs." }
            } @else {
                ul.recent {
                    @for item in &recent_runs.items {
                        li {
                            (format::run_badge(item.run.status)) " "
                            a.id href=(run_href(&item.run.id)) { (item.run.id) }
                            @if let Some(p) = &item.run.pipeline_name { " · " (p) }
                            " · " (when(item.run.started_at, ctx.now))
                            " · " (format::summary(&item.validation_summary))
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-recent-validations" {
            h2 #h-recent-validations { "Latest validations" }
            @if recent_validations.items.is_empty() {
                p.muted { "No validations." }
            } @else {
                ul.recent {
                    @for v in &recent_validations.items {
                        li {
                            (format::validation_badge(v.status)) " "
                            a href=(format::validation_href(&v.id)) { code.id { (v.id) } }
                            " · " (when(v.recorded_at, ctx.now))
                            @if let Some(r) = &v.run_id { " · run " a.id href={(run_href(r)) "#" (v.id)} { (r) } }
                            @if !v.errors.is_empty() { " · " (v.errors.len()) " errors" }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(ctx, Section::None, &title, body),
    ))
}
