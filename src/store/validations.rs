//! The `validations` table, and `validation_errors`, its per-error-code index
//! for stats.

use std::collections::HashMap;

use r2d2_sqlite::rusqlite::{Connection, Row, params};
use serde_json::{Map, Value as Json, json};
use tracing::instrument;

use super::{
    StoreError,
    query::{self, Filters, Page},
    runs, stored_time,
};
use crate::domain::{
    time::Timestamp,
    validation::{
        CommonError, Granularity, StatusCounts, Validation, ValidationFilter, ValidationIssue,
        ValidationRef, ValidationStats, ValidationStatus, ValidationSummary, ValidationWarning,
        check_run_link, fill_buckets,
    },
};

const COLUMNS: &str = "id, contract_id, run_id, status, errors, warnings, metrics, metadata, \
                       recorded_at, recorded_by";

/// How many error codes the stats list.
const COMMON_ERRORS: u32 = 10;

fn status_of(text: &str) -> Result<ValidationStatus, StoreError> {
    ValidationStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown validation status '{text}'")))
}

fn json_column(column: &str, text: &str) -> Result<Json, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn object_of(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn str_field(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn errors_from_json(v: Json) -> Vec<ValidationIssue> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|e| ValidationIssue {
            code: str_field(e, "code"),
            message: str_field(e, "message"),
            path: e.get("path").and_then(Json::as_str).map(str::to_owned),
            row_count: e.get("row_count").and_then(Json::as_u64),
        })
        .collect()
}

fn warnings_from_json(v: Json) -> Vec<ValidationWarning> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|w| ValidationWarning {
            code: str_field(w, "code"),
            message: str_field(w, "message"),
        })
        .collect()
}

fn errors_to_json(errors: &[ValidationIssue]) -> Json {
    Json::Array(
        errors
            .iter()
            .map(|e| {
                let mut o = Map::new();
                o.insert("code".into(), json!(e.code));
                o.insert("message".into(), json!(e.message));
                if let Some(p) = &e.path {
                    o.insert("path".into(), json!(p));
                }
                if let Some(n) = e.row_count {
                    o.insert("row_count".into(), json!(n));
                }
                Json::Object(o)
            })
            .collect(),
    )
}

fn warnings_to_json(warnings: &[ValidationWarning]) -> Json {
    Json::Array(
        warnings
            .iter()
            .map(|w| json!({"code": w.code, "message": w.message}))
            .collect(),
    )
}

fn from_row(row: &Row<'_>) -> Result<Validation, StoreError> {
    let status: String = row.get(3)?;
    let errors: String = row.get(4)?;
    let warnings: String = row.get(5)?;
    let metrics: String = row.get(6)?;
    let metadata: String = row.get(7)?;
    let recorded_at: String = row.get(8)?;
    Ok(Validation {
        id: row.get(0)?,
        contract_id: row.get(1)?,
        run_id: row.get(2)?,
        status: status_of(&status)?,
        errors: errors_from_json(json_column("validations.errors", &errors)?),
        warnings: warnings_from_json(json_column("validations.warnings", &warnings)?),
        metrics: object_of(json_column("validations.metrics", &metrics)?),
        metadata: object_of(json_column("validations.metadata", &metadata)?),
        recorded_at: stored_time("validations.recorded_at", &recorded_at)?,
        recorded_by: row.get(9)?,
    })
}

/// Stores `v` after checking its run link inside the same transaction, so a
/// run cannot change contract (or vanish) between the check and the insert.
#[instrument(skip_all)]
pub fn insert(conn: &Connection, v: &Validation) -> Result<(), StoreError> {
    if let Some(run_id) = &v.run_id {
        let contract = runs::contract_of(conn, run_id)?;
        check_run_link(run_id, contract.as_deref(), &v.contract_id)?;
    }
    let text = |j: Json| j.to_string();
    conn.prepare_cached(&format!(
        "INSERT INTO validations ({COLUMNS}, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        v.id,
        v.contract_id,
        v.run_id,
        v.status.as_str(),
        text(errors_to_json(&v.errors)),
        text(warnings_to_json(&v.warnings)),
        text(Json::Object(v.metrics.clone())),
        text(Json::Object(v.metadata.clone())),
        v.recorded_at.to_string(),
        v.recorded_by,
        v.duration_ms(),
    ])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO validation_errors (validation_id, contract_id, recorded_at, code, message) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in &v.errors {
        stmt.execute(params![
            v.id,
            v.contract_id,
            v.recorded_at.to_string(),
            e.code,
            e.message
        ])?;
    }
    Ok(())
}

#[instrument(skip_all)]
pub fn get(conn: &Connection, id: &str) -> Result<Validation, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM validations WHERE id = ?1"))?;
    let mut rows = stmt.query(params![id])?;
    rows.next()?
        .map(from_row)
        .transpose()?
        .ok_or_else(|| StoreError::not_found("Validation", id))
}

/// A run's validations, oldest first.
pub fn refs_for_run(conn: &Connection, run_id: &str) -> Result<Vec<ValidationRef>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, status, recorded_at FROM validations WHERE run_id = ?1 \
         ORDER BY recorded_at, id",
    )?;
    let mut rows = stmt.query(params![run_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let status: String = row.get(1)?;
        let recorded_at: String = row.get(2)?;
        out.push(ValidationRef {
            id: row.get(0)?,
            status: status_of(&status)?,
            recorded_at: stored_time("validations.recorded_at", &recorded_at)?,
        });
    }
    Ok(out)
}

/// Counts per status for each of `run_ids`, in one query for the whole page.
/// The ids travel as one JSON array, so the statement text never changes and
/// stays prepared.
pub fn summaries_for_runs(
    conn: &Connection,
    run_ids: &[&str],
) -> Result<HashMap<String, ValidationSummary>, StoreError> {
    let mut out: HashMap<String, ValidationSummary> = HashMap::new();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let ids = serde_json::to_string(run_ids)
        .map_err(|e| StoreError::Corrupt(format!("run ids could not be encoded: {e}")))?;
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, status, count(*) FROM validations \
         WHERE run_id IN (SELECT value FROM json_each(?1)) GROUP BY run_id, status",
    )?;
    let mut rows = stmt.query(params![ids])?;
    while let Some(row) = rows.next()? {
        let run_id: String = row.get(0)?;
        let status: String = row.get(1)?;
        let n: i64 = row.get(2)?;
        out.entry(run_id)
            .or_default()
            .add(status_of(&status)?, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

fn filters(filter: &ValidationFilter) -> Filters {
    let mut f = Filters::default();
    f.bind_some("contract_id =", filter.contract_id.as_ref());
    f.bind_some("run_id =", filter.run_id.as_ref());
    f.bind_some("status =", filter.status.map(ValidationStatus::as_str));
    f.bind_some("recorded_at >=", filter.start_date);
    f.bind_some("recorded_at <", filter.end_date);
    f
}

/// What one validation costs of a page's byte budget: its names, errors,
/// warnings, metrics and metadata as stored, and an allowance for the rest.
const VALIDATION_WEIGHT: query::Weight = query::Weight {
    text_columns: &[1, 2, 4, 5, 6, 7, 9],
    overhead: 256,
};

/// One page of validations, newest first with ties broken by id, and the
/// number the filter matches; cut short before `max_bytes`.
#[instrument(skip_all)]
pub fn list(
    conn: &Connection,
    filter: &ValidationFilter,
    (limit, offset): (u32, u64),
    max_bytes: usize,
) -> Result<Page<Validation>, StoreError> {
    query::page_within(
        conn,
        "validations",
        COLUMNS,
        &filters(filter),
        "recorded_at DESC, id DESC",
        (limit, offset),
        (max_bytes, VALIDATION_WEIGHT),
        from_row,
    )
}

/// Trends for one contract over `[now - days, now]`, computed by SQLite:
/// counts per status and per bucket, the mean duration, and the most common
/// error codes.
#[instrument(skip_all)]
pub fn stats(
    conn: &Connection,
    contract_id: &str,
    days: u32,
    granularity: Granularity,
    now: Timestamp,
) -> Result<ValidationStats, StoreError> {
    let window_start = now.plus_seconds(-i64::from(days) * 86_400);
    let (from, to) = (window_start.to_string(), now.to_string());

    let mut stmt = conn.prepare_cached(
        "SELECT ((unixepoch(recorded_at) - ?4) / ?5) * ?5 + ?4 AS bucket, status, count(*) \
         FROM validations \
         WHERE contract_id = ?1 AND recorded_at >= ?2 AND recorded_at <= ?3 \
         GROUP BY bucket, status",
    )?;
    let mut rows = stmt.query(params![
        contract_id,
        from,
        to,
        granularity.origin_secs(),
        granularity.width_secs()
    ])?;
    let mut totals = StatusCounts::default();
    let mut by_bucket: HashMap<i64, StatusCounts> = HashMap::new();
    while let Some(row) = rows.next()? {
        let bucket: i64 = row.get(0)?;
        let status = status_of(&row.get::<_, String>(1)?)?;
        let n = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
        totals.add(status, n);
        by_bucket.entry(bucket).or_default().add(status, n);
    }
    let found: Vec<(i64, StatusCounts)> = by_bucket.into_iter().collect();

    let avg_duration_ms: Option<f64> = conn
        .prepare_cached(
            "SELECT avg(duration_ms) FROM validations \
             WHERE contract_id = ?1 AND recorded_at >= ?2 AND recorded_at <= ?3",
        )?
        .query_row(params![contract_id, from, to], |r| r.get(0))?;

    let mut stmt = conn.prepare_cached(
        "SELECT code, count(*) AS n, max(message) FROM validation_errors \
         WHERE contract_id = ?1 AND recorded_at >= ?2 AND recorded_at <= ?3 \
         GROUP BY code ORDER BY n DESC, code LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![contract_id, from, to, COMMON_ERRORS])?;
    let mut common_errors = Vec::new();
    while let Some(row) = rows.next()? {
        common_errors.push(CommonError {
            code: row.get(0)?,
            count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
            sample_message: row.get(2)?,
        });
    }

    Ok(ValidationStats {
        contract_id: contract_id.to_owned(),
        days,
        granularity,
        window_start,
        window_end: now,
        totals,
        avg_duration_ms: avg_duration_ms.map(|a| (a * 100.0).round() / 100.0),
        buckets: fill_buckets(granularity, window_start, now, &found),
        common_errors,
    })
}
