//! Validations: record, read, list, and a contract's trends.

use std::collections::HashMap;

use super::{App, AppError, webhooks::Subject};
use crate::{
    domain::{
        Page, Position,
        keys::Caller,
        validation::{
            Granularity, NewValidationInput, StatusCounts, Validation, ValidationFilter,
            ValidationRecord, ValidationStats, check_run_link, fill_buckets,
        },
        webhooks::validation_event,
    },
    store::{Connection, StoreError, runs, validations},
};

/// How many error codes the stats list.
const COMMON_ERRORS: u32 = 10;

/// Records a validation for `caller`. Its run link is checked inside the
/// transaction that stores it, so the run cannot change contract (or
/// vanish) between the check and the insert.
pub async fn record(
    app: &App,
    caller: &Caller,
    input: NewValidationInput,
) -> Result<Validation, AppError> {
    let validation = input.into_validation(&caller.name, app.clock.now())?;
    // Like a new run, a validation's size depends on the request alone:
    // checked before the write is queued.
    app.settings.limits.check_validation(&validation)?;
    let outbox = app.outbox.clone();
    let (validation, enqueued) = app
        .store
        .write(move |tx| {
            if let Some(run_id) = &validation.run_id {
                let contract = runs::contract_of(tx, run_id)?;
                check_run_link(run_id, contract.as_deref(), &validation.contract_id)?;
            }
            validations::insert(tx, &validation)?;
            let enqueued = outbox.enqueue(
                tx,
                Subject::Validation(&validation),
                &[validation_event(validation.status)],
                validation.recorded_at,
            )?;
            Ok::<_, AppError>((validation, enqueued))
        })
        .await?;
    app.outbox.written(enqueued);
    Ok(validation)
}

pub async fn get(app: &App, id: String) -> Result<Validation, AppError> {
    app.store
        .read(move |c| {
            validations::find(c, &id)?.ok_or_else(|| AppError::not_found("Validation", &id))
        })
        .await
}

/// [`get`], as reads answer with it: metrics and metadata not parsed.
pub async fn get_record(app: &App, id: String) -> Result<ValidationRecord, AppError> {
    app.store
        .read(move |c| {
            validations::find_record(c, &id)?.ok_or_else(|| AppError::not_found("Validation", &id))
        })
        .await
}

/// Validations matching `filter`, newest first.
pub async fn list(
    app: &App,
    filter: ValidationFilter,
    page: (u32, Position),
) -> Result<Page<Validation>, AppError> {
    list_as(app, filter, page, validations::list).await
}

/// [`list`], each validation as reads answer with it.
pub async fn list_records(
    app: &App,
    filter: ValidationFilter,
    page: (u32, Position),
) -> Result<Page<ValidationRecord>, AppError> {
    list_as(app, filter, page, validations::list_records).await
}

type ListValidations<T> =
    fn(&Connection, &ValidationFilter, (u32, &Position), usize) -> Result<Page<T>, StoreError>;

async fn list_as<T: Send + 'static>(
    app: &App,
    filter: ValidationFilter,
    page: (u32, Position),
    list: ListValidations<T>,
) -> Result<Page<T>, AppError> {
    let max_bytes = app.settings.limits.max_page_bytes;
    Ok(app
        .store
        .read(move |c| list(c, &filter, (page.0, &page.1), max_bytes))
        .await?)
}

/// Trends for one contract over the last `days` days up to now: counts per
/// status and per bucket (every bucket of the window, so a chart has no
/// gaps), the mean duration, and the most common error codes.
pub async fn stats(
    app: &App,
    contract_id: String,
    days: u32,
    granularity: Granularity,
) -> Result<ValidationStats, AppError> {
    let now = app.clock.now();
    let window_start = now.plus_seconds(-i64::from(days) * 86_400);
    let window = (window_start, now);
    app.store
        .read(move |c| {
            let found = validations::counts_by_bucket(c, &contract_id, window, granularity)?;
            let mut totals = StatusCounts::default();
            let mut by_bucket: HashMap<i64, StatusCounts> = HashMap::new();
            for (bucket, status, n) in found {
                totals.add(status, n);
                by_bucket.entry(bucket).or_default().add(status, n);
            }
            let found: Vec<(i64, StatusCounts)> = by_bucket.into_iter().collect();
            let avg_duration_ms = validations::avg_duration_ms(c, &contract_id, window)?;
            let common_errors = validations::common_errors(c, &contract_id, window, COMMON_ERRORS)?;
            Ok::<_, AppError>(ValidationStats {
                days,
                granularity,
                window_start,
                window_end: now,
                totals,
                avg_duration_ms: avg_duration_ms.map(|a| (a * 100.0).round() / 100.0),
                buckets: fill_buckets(granularity, window_start, now, &found),
                common_errors,
                contract_id,
            })
        })
        .await
}
