//! The `validations` table, and `validation_errors`, its per-error-code index
//! for stats.

use std::sync::LazyLock;

use r2d2_sqlite::rusqlite::{Connection, Row, params};
use serde_json::{Map, Value as Json, json};
use tracing::instrument;

use super::{
    StoreError,
    query::{self, Filters, Page},
    sql::{self, columns},
};
use crate::domain::{
    Position,
    metadata::JsonText,
    time::Timestamp,
    validation::{
        CommonError, Granularity, Validation, ValidationFilter, ValidationIssue, ValidationRecord,
        ValidationRef, ValidationStatus, ValidationWarning,
    },
};

columns!(
    id,
    contract_id,
    run_id,
    status,
    errors,
    warnings,
    metrics,
    metadata,
    recorded_at,
    recorded_by,
);

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
    Ok(Validation {
        id: row.get(Col::id.at())?,
        contract_id: row.get(Col::contract_id.at())?,
        run_id: row.get(Col::run_id.at())?,
        status: row.get(Col::status.at())?,
        errors: errors_from_json(sql::json(row, Col::errors.at())?),
        warnings: warnings_from_json(sql::json(row, Col::warnings.at())?),
        metrics: object_of(sql::json(row, Col::metrics.at())?),
        metadata: object_of(sql::json(row, Col::metadata.at())?),
        recorded_at: row.get(Col::recorded_at.at())?,
        recorded_by: row.get(Col::recorded_by.at())?,
    })
}

/// A validation as reads answer with it. Metrics and metadata stay text;
/// errors and warnings are read only when there are some, as most
/// validations have none.
fn record_from_row(row: &Row<'_>) -> Result<ValidationRecord, StoreError> {
    let list = |col: Col| -> Result<Json, StoreError> {
        if row.get_ref(col.at())?.as_bytes().ok() == Some(b"[]".as_slice()) {
            Ok(Json::Array(Vec::new()))
        } else {
            sql::json(row, col.at())
        }
    };
    Ok(ValidationRecord {
        id: row.get(Col::id.at())?,
        contract_id: row.get(Col::contract_id.at())?,
        run_id: row.get(Col::run_id.at())?,
        status: row.get(Col::status.at())?,
        errors: errors_from_json(list(Col::errors)?),
        warnings: warnings_from_json(list(Col::warnings)?),
        metrics: object_text(row, Col::metrics)?,
        metadata: object_text(row, Col::metadata)?,
        recorded_at: row.get(Col::recorded_at.at())?,
        recorded_by: row.get(Col::recorded_by.at())?,
    })
}

/// Metrics and metadata are objects on the wire, but the table only checks
/// that they are JSON: anything else reads as `{}`, as [`from_row`] reads it.
fn object_text(row: &Row<'_>, col: Col) -> Result<JsonText, StoreError> {
    let text: JsonText = row.get(col.at())?;
    Ok(if text.0.trim_start().starts_with('{') {
        text
    } else {
        JsonText("{}".to_owned())
    })
}

/// Stores `v`, and one row per error code for the stats.
#[instrument(level = "debug", skip_all)]
pub fn insert(conn: &Connection, v: &Validation) -> Result<(), StoreError> {
    let text = |j: Json| j.to_string();
    conn.prepare_cached(&format!(
        "INSERT INTO validations ({COLUMNS}, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        v.id,
        v.contract_id,
        v.run_id,
        v.status,
        text(errors_to_json(&v.errors)),
        text(warnings_to_json(&v.warnings)),
        text(Json::Object(v.metrics.clone())),
        text(Json::Object(v.metadata.clone())),
        v.recorded_at,
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
            v.recorded_at,
            e.code,
            e.message
        ])?;
    }
    Ok(())
}

/// Reads one row by id: built once, as reads by id are the hottest
/// statement.
static FIND: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM validations WHERE id = ?1"));

#[instrument(level = "debug", skip_all)]
pub fn find(conn: &Connection, id: &str) -> Result<Option<Validation>, StoreError> {
    query::by_id(conn, &FIND, id, from_row)
}

/// A validation as reads answer with it.
#[instrument(level = "debug", skip_all)]
pub fn find_record(conn: &Connection, id: &str) -> Result<Option<ValidationRecord>, StoreError> {
    query::by_id(conn, &FIND, id, record_from_row)
}

/// A run's validations, oldest first.
pub fn refs_for_run(conn: &Connection, run_id: &str) -> Result<Vec<ValidationRef>, StoreError> {
    refs(conn, run_id, i64::MAX)
}

/// A run's validations, oldest first, if it has at most `max`; `None`
/// (having read `max + 1`) if it has more.
pub fn refs_for_run_upto(
    conn: &Connection,
    run_id: &str,
    max: usize,
) -> Result<Option<Vec<ValidationRef>>, StoreError> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX - 1) + 1;
    let refs = refs(conn, run_id, limit)?;
    Ok((refs.len() <= max).then_some(refs))
}

fn refs(conn: &Connection, run_id: &str, limit: i64) -> Result<Vec<ValidationRef>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, status, recorded_at FROM validations WHERE run_id = ?1 \
         ORDER BY recorded_at, id LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![run_id, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(ValidationRef {
            id: row.get(0)?,
            status: row.get(1)?,
            recorded_at: row.get(2)?,
        });
    }
    Ok(out)
}

/// How many validations match `filter`, read from `validation_counts` when
/// it filters by status only, or not at all; `None` when the rows must be
/// counted (a contract's, or a run's, few validations through an index; a
/// date range).
fn counted(conn: &Connection, filter: &ValidationFilter) -> Result<Option<u64>, StoreError> {
    if filter.start_date.is_some() || filter.end_date.is_some() || filter.run_id.is_some() {
        return Ok(None);
    }
    query::counter(
        conn,
        "validation_counts",
        &[
            (
                "contract_id",
                query::DIM_CONTRACT,
                filter.contract_id.as_deref(),
            ),
            (
                "status",
                query::DIM_STATUS,
                filter.status.map(ValidationStatus::as_str),
            ),
        ],
    )
}

fn filters(filter: &ValidationFilter) -> Filters {
    let mut f = Filters::default();
    f.bind_some("contract_id =", filter.contract_id.as_ref());
    f.bind_some("run_id =", filter.run_id.as_ref());
    f.bind_some("status =", filter.status.map(ValidationStatus::as_str));
    f.bind_some("recorded_at >=", filter.start_date);
    f.bind_some("recorded_at <", filter.end_date);
    f.cap_count(filter.count_up_to);
    f
}

/// What one validation costs of a page's byte budget: its names, errors,
/// warnings, metrics and metadata as stored, and an allowance for the rest.
const VALIDATION_WEIGHT: query::Weight = query::Weight {
    text_columns: &[
        Col::contract_id.at(),
        Col::run_id.at(),
        Col::errors.at(),
        Col::warnings.at(),
        Col::metrics.at(),
        Col::metadata.at(),
        Col::recorded_by.at(),
    ],
    overhead: 256,
};

/// One page of validations, newest first with ties broken by id, and the
/// number the filter matches; cut short before `max_bytes`.
#[instrument(level = "debug", skip_all)]
pub fn list(
    conn: &Connection,
    filter: &ValidationFilter,
    page: (u32, &Position),
    max_bytes: usize,
) -> Result<Page<Validation>, StoreError> {
    list_as(conn, filter, page, max_bytes, from_row)
}

/// [`list`], each validation as reads answer with it.
#[instrument(level = "debug", skip_all)]
pub fn list_records(
    conn: &Connection,
    filter: &ValidationFilter,
    page: (u32, &Position),
    max_bytes: usize,
) -> Result<Page<ValidationRecord>, StoreError> {
    list_as(conn, filter, page, max_bytes, record_from_row)
}

fn list_as<T>(
    conn: &Connection,
    filter: &ValidationFilter,
    (limit, position): (u32, &Position),
    max_bytes: usize,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut filters = filters(filter);
    let offset = filters.start_at(position, "recorded_at");
    query::page_within(
        conn,
        "validations",
        COLUMNS,
        &filters,
        counted(conn, filter)?,
        "recorded_at DESC, id DESC",
        (limit, offset),
        (max_bytes, VALIDATION_WEIGHT),
        map,
    )
}

/// Counts per status in each `granularity` bucket of `[from, to]` for one
/// contract, computed by SQLite; only buckets with validations appear, keyed
/// by the bucket's start in seconds since the epoch.
#[instrument(level = "debug", skip_all)]
pub fn counts_by_bucket(
    conn: &Connection,
    contract_id: &str,
    (from, to): (Timestamp, Timestamp),
    granularity: Granularity,
) -> Result<Vec<(i64, ValidationStatus, u64)>, StoreError> {
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
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((
            row.get(0)?,
            row.get(1)?,
            u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        ));
    }
    Ok(out)
}

/// The mean duration of one contract's validations in `[from, to]`.
pub fn avg_duration_ms(
    conn: &Connection,
    contract_id: &str,
    (from, to): (Timestamp, Timestamp),
) -> Result<Option<f64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT avg(duration_ms) FROM validations \
             WHERE contract_id = ?1 AND recorded_at >= ?2 AND recorded_at <= ?3",
        )?
        .query_row(params![contract_id, from, to], |r| r.get(0))?)
}

/// One contract's `limit` most frequent error codes in `[from, to]`, most
/// frequent first, each with one of its messages.
pub fn common_errors(
    conn: &Connection,
    contract_id: &str,
    (from, to): (Timestamp, Timestamp),
    limit: u32,
) -> Result<Vec<CommonError>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT code, count(*) AS n, max(message) FROM validation_errors \
         WHERE contract_id = ?1 AND recorded_at >= ?2 AND recorded_at <= ?3 \
         GROUP BY code ORDER BY n DESC, code LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![contract_id, from, to, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(CommonError {
            code: row.get(0)?,
            count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
            sample_message: row.get(2)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list shape (each filter alone, every pair, all three, none,
    /// each with and without a date range) reads through an index in list
    /// order: no full scan, no sort of the matches.
    #[test]
    fn every_list_shape_uses_an_index() {
        let conn = super::super::test_connection();
        let t = |s: &str| Timestamp::parse_lenient(s).unwrap();
        for bits in 0..16 {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let filter = ValidationFilter {
                contract_id: on(0).then(|| "c".to_owned()),
                run_id: on(1).then(|| "run".to_owned()),
                status: on(2).then_some(ValidationStatus::Failed),
                start_date: on(3).then(|| t("2024-01-01T00:00:00Z")),
                end_date: on(3).then(|| t("2024-02-01T00:00:00Z")),
                count_up_to: None,
            };
            let plans = query::plans(
                &conn,
                "validations",
                &filters(&filter),
                "recorded_at DESC, id DESC",
            )
            .unwrap();
            let [page, count] = &plans[..] else {
                panic!("two plans")
            };
            // A run's few validations may be sorted; nothing else is.
            if !on(1) {
                assert!(!page.contains("TEMP B-TREE"), "{bits:04b}: {page}");
            }
            assert!(page.contains("USING"), "{bits:04b}: {page}");
            assert!(count.contains("USING"), "{bits:04b}: {count}");
            let mut after = filters(&filter);
            after.after("recorded_at", "id", ["2024-01-15".into(), "val_x".into()]);
            let plans =
                query::plans(&conn, "validations", &after, "recorded_at DESC, id DESC").unwrap();
            if !on(1) {
                assert!(
                    !plans[0].contains("TEMP B-TREE"),
                    "{bits:04b} cursor: {}",
                    plans[0]
                );
            }
            assert!(
                plans[0].contains("USING"),
                "{bits:04b} cursor: {}",
                plans[0]
            );
        }
    }
}
