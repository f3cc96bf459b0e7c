//! The `runs` table.

use std::sync::LazyLock;

use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use tracing::instrument;

use super::{
    StoreError,
    query::{self, Filters, Page},
    sql::{self, columns},
};
use crate::domain::{
    Position,
    run::{Run, RunFilter, RunListItem, RunRecord, RunStatus},
    time::Timestamp,
    validation::ValidationSummary,
};

columns!(
    id,
    contract_id,
    pipeline_name,
    pipeline_id,
    status,
    metadata,
    started_at,
    completed_at,
    created_by,
    updated_at,
    version,
    heartbeat_timeout_seconds,
    last_heartbeat_at,
    heartbeat_deadline,
);

fn from_row(row: &Row<'_>) -> Result<Run, StoreError> {
    Ok(Run {
        id: row.get(Col::id.at())?,
        contract_id: row.get(Col::contract_id.at())?,
        pipeline_name: row.get(Col::pipeline_name.at())?,
        pipeline_id: row.get(Col::pipeline_id.at())?,
        status: row.get(Col::status.at())?,
        metadata: sql::object(row, Col::metadata.at())?,
        started_at: row.get(Col::started_at.at())?,
        completed_at: row.get(Col::completed_at.at())?,
        created_by: row.get(Col::created_by.at())?,
        updated_at: row.get(Col::updated_at.at())?,
        version: row.get(Col::version.at())?,
        heartbeat_timeout_seconds: row.get(Col::heartbeat_timeout_seconds.at())?,
        last_heartbeat_at: row.get(Col::last_heartbeat_at.at())?,
    })
}

/// A run as reads answer with it: text as stored, nothing parsed but the
/// status.
fn record_from_row(row: &Row<'_>) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.get(Col::id.at())?,
        contract_id: row.get(Col::contract_id.at())?,
        pipeline_name: row.get(Col::pipeline_name.at())?,
        pipeline_id: row.get(Col::pipeline_id.at())?,
        status: row.get(Col::status.at())?,
        metadata: row.get(Col::metadata.at())?,
        started_at: row.get(Col::started_at.at())?,
        completed_at: row.get(Col::completed_at.at())?,
        created_by: row.get(Col::created_by.at())?,
        updated_at: row.get(Col::updated_at.at())?,
        version: row.get(Col::version.at())?,
        heartbeat_timeout_seconds: row.get(Col::heartbeat_timeout_seconds.at())?,
        last_heartbeat_at: row.get(Col::last_heartbeat_at.at())?,
        heartbeat_deadline: row.get(Col::heartbeat_deadline.at())?,
    })
}

/// Stores a new run.
#[instrument(level = "debug", skip_all)]
pub fn insert(conn: &Connection, run: &Run) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO runs ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?
    .execute(params![
        run.id,
        run.contract_id,
        run.pipeline_name,
        run.pipeline_id,
        run.status,
        sql::json_text(&run.metadata)?,
        run.started_at,
        run.completed_at,
        run.created_by,
        run.updated_at,
        run.version,
        run.heartbeat_timeout_seconds,
        run.last_heartbeat_at,
        run.heartbeat_deadline(),
    ])?;
    Ok(())
}

/// Writes every mutable column of `run` back.
#[instrument(level = "debug", skip_all)]
pub fn save(conn: &Connection, run: &Run) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE runs SET pipeline_name = ?2, pipeline_id = ?3, status = ?4, metadata = ?5, \
         completed_at = ?6, updated_at = ?7, version = ?8, heartbeat_timeout_seconds = ?9, \
         last_heartbeat_at = ?10, heartbeat_deadline = ?11 WHERE id = ?1",
    )?
    .execute(params![
        run.id,
        run.pipeline_name,
        run.pipeline_id,
        run.status,
        sql::json_text(&run.metadata)?,
        run.completed_at,
        run.updated_at,
        run.version,
        run.heartbeat_timeout_seconds,
        run.last_heartbeat_at,
        run.heartbeat_deadline(),
    ])?;
    Ok(())
}

/// Reads one row by id, for the writes that change a run: built once, as
/// its text is looked up in the statement cache at every call.
static FIND: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"));

#[instrument(level = "debug", skip_all)]
pub fn find(conn: &Connection, id: &str) -> Result<Option<Run>, StoreError> {
    query::by_id(conn, &FIND, id, from_row)
}

/// The same with the run's validation count: a get run's statement, the
/// hottest of all.
static FIND_COUNTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, validations_passed + validations_failed + validations_warning \
         + validations_skipped FROM runs WHERE id = ?1"
    )
});

/// A run as reads answer with it, handed to `then` with how many
/// validations it has (the counts its triggers keep, see schema.sql
/// migration 7); `None` when there is no such run.
///
/// `then` runs while this statement still has its row, so on a connection
/// outside any transaction whatever `then` reads sees the same snapshot as
/// the run: SQLite ends an implicit read transaction only when the last
/// statement of the connection finishes. A get run reads this way on the
/// async worker with one statement instead of four (BEGIN, the run, its
/// validations, COMMIT) for a run without validations (BENCHMARKS.md,
/// "Get run in one statement, and fewer temporary B-trees").
pub fn with_record<T>(
    conn: &Connection,
    id: &str,
    then: impl FnOnce(RunRecord, u64) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(&FIND_COUNTED)?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    // The sum follows the last of `COLUMNS`.
    let validations: i64 = row.get(Col::heartbeat_deadline.at() + 1)?;
    let validations = u64::try_from(validations)
        .map_err(|_| StoreError::Corrupt(format!("run {id} counts {validations} validations")))?;
    let run = record_from_row(row)?;
    // `rows` is still on the run's row here: `then` reads in its snapshot.
    then(run, validations).map(Some)
}

/// The contract a run belongs to, if the run exists.
pub fn contract_of(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT contract_id FROM runs WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?)
}

/// How many runs have each status; statuses without runs are left out.
/// SQLite answers it by walking the `runs_by_status` index (no table rows
/// are read), which is still one step per run: callers cache it.
#[instrument(level = "debug", skip_all)]
pub fn count_by_status(conn: &Connection) -> Result<Vec<(RunStatus, u64)>, StoreError> {
    per_status(conn, "", None)
}

/// One contract's runs per status (statuses without runs left out), in
/// one walk of `runs_by_contract_status`, however many runs it has.
#[instrument(level = "debug", skip_all)]
pub fn count_by_status_of_contract(
    conn: &Connection,
    contract_id: &str,
) -> Result<Vec<(RunStatus, u64)>, StoreError> {
    per_status(conn, "WHERE contract_id = ?1", Some(contract_id))
}

fn per_status(
    conn: &Connection,
    condition: &str,
    contract_id: Option<&str>,
) -> Result<Vec<(RunStatus, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT status, count(*) FROM runs {condition} GROUP BY status"
    ))?;
    let rows = stmt.query_map(params_from_iter(contract_id), |r| {
        Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs in one of `statuses` whose stored heartbeat deadline is before
/// `now`. The deadline column is written from the domain's rule on every
/// save, and indexed, so this finds candidates cheaply.
#[instrument(level = "debug", skip_all)]
pub fn past_deadline(
    conn: &Connection,
    now: Timestamp,
    statuses: &[RunStatus],
) -> Result<Vec<Run>, StoreError> {
    let statuses = sql::json_text(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM runs \
         WHERE heartbeat_deadline IS NOT NULL AND heartbeat_deadline < ?1 \
         AND status IN (SELECT value FROM json_each(?2))"
    ))?;
    let mut rows = stmt.query(params![now, statuses])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// How many runs match `filter`, read from `run_counts` when it has only
/// equality filters that have a counter (`query::COUNTED_DIMS`: none of
/// them is `contract_id`); `None` when the rows must be counted (a
/// contract, a date range or `stale`).
fn counted(conn: &Connection, filter: &RunFilter) -> Result<Option<u64>, StoreError> {
    if filter.start_date.is_some() || filter.end_date.is_some() || filter.stale_at.is_some() {
        return Ok(None);
    }
    query::counter(
        conn,
        "run_counts",
        &[
            (
                "contract_id",
                query::DIM_CONTRACT,
                filter.contract_id.as_deref(),
            ),
            (
                "pipeline_name",
                query::DIM_PIPELINE,
                filter.pipeline_name.as_deref(),
            ),
            (
                "status",
                query::DIM_STATUS,
                filter.status.map(RunStatus::as_str),
            ),
        ],
    )
}

fn filters(filter: &RunFilter, live: &[RunStatus]) -> Filters {
    let mut f = Filters::default();
    f.bind_some("contract_id =", filter.contract_id.as_ref());
    f.bind_some("pipeline_name =", filter.pipeline_name.as_ref());
    f.bind_some("status =", filter.status.map(RunStatus::as_str));
    f.bind_some("started_at >=", filter.start_date);
    f.bind_some("started_at <", filter.end_date);
    if let Some(t) = filter.stale_at {
        f.bind("heartbeat_deadline <", t.to_string());
        f.bind_any("status", live.iter().map(|s| s.as_str()));
    }
    f.cap_count(filter.count_up_to);
    f
}

/// What one run costs of a page's byte budget: its metadata and names as
/// stored, and an allowance for its other fields and validation summary.
const RUN_WEIGHT: query::Weight = query::Weight {
    text_columns: &[
        Col::contract_id.at(),
        Col::pipeline_name.at(),
        Col::pipeline_id.at(),
        Col::metadata.at(),
        Col::created_by.at(),
    ],
    overhead: 512,
};

/// One page of runs, newest `started_at` first with ties broken by id, each
/// with its validations counted per status, and how many runs the filter
/// matches in all; cut short before `max_bytes`. `live` are the statuses a
/// stale run can be in.
#[instrument(level = "debug", skip_all)]
pub fn list(
    conn: &Connection,
    filter: &RunFilter,
    live: &[RunStatus],
    page: (u32, &Position),
    max_bytes: usize,
) -> Result<Page<RunListItem>, StoreError> {
    list_as(conn, (filter, live), page, max_bytes, from_row)
}

/// [`list`], each run as reads answer with it.
#[instrument(level = "debug", skip_all)]
pub fn list_records(
    conn: &Connection,
    filter: &RunFilter,
    live: &[RunStatus],
    page: (u32, &Position),
    max_bytes: usize,
) -> Result<Page<RunListItem<RunRecord>>, StoreError> {
    list_as(conn, (filter, live), page, max_bytes, record_from_row)
}

/// What a list selects: every column, then the run's validations counted
/// by status, which triggers keep on its row (schema migration 7), so a
/// page reads no validation.
static LIST_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{COLUMNS}, validations_passed, validations_failed, validations_warning, \
         validations_skipped"
    )
});

/// The position of `validations_passed` in `LIST_COLUMNS`; the other three
/// follow it.
const COUNTS_AT: usize = Col::heartbeat_deadline.at() + 1;

fn summary(row: &Row<'_>) -> Result<ValidationSummary, StoreError> {
    let count = |at: usize| -> Result<u64, StoreError> {
        let n: i64 = row.get(at)?;
        u64::try_from(n)
            .map_err(|_| StoreError::Corrupt(format!("a run's validation count is {n}")))
    };
    Ok(ValidationSummary {
        passed: count(COUNTS_AT)?,
        failed: count(COUNTS_AT + 1)?,
        warning: count(COUNTS_AT + 2)?,
        skipped: count(COUNTS_AT + 3)?,
    })
}

fn list_as<R>(
    conn: &Connection,
    (filter, live): (&RunFilter, &[RunStatus]),
    (limit, position): (u32, &Position),
    max_bytes: usize,
    map: fn(&Row<'_>) -> Result<R, StoreError>,
) -> Result<Page<RunListItem<R>>, StoreError> {
    let mut filters = filters(filter, live);
    let offset = filters.start_at(position, "started_at");
    query::page_within(
        conn,
        "runs",
        &LIST_COLUMNS,
        &filters,
        counted(conn, filter)?,
        "started_at DESC, id DESC",
        (limit, offset),
        (max_bytes, RUN_WEIGHT),
        |row| {
            Ok(RunListItem {
                run: map(row)?,
                validation_summary: summary(row)?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list shape (each equality filter alone, every pair, all three,
    /// none, each with and without a date range) reads through an index in
    /// list order: no full scan, no sort of the matches; `stale` searches
    /// an index.
    #[test]
    fn every_list_shape_uses_an_index() {
        let conn = super::super::test_connection();
        let t = |s: &str| Timestamp::parse_lenient(s).unwrap();
        let live = crate::domain::run::LIVE_STATUSES;
        for bits in 0..16 {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let filter = RunFilter {
                contract_id: on(0).then(|| "c".to_owned()),
                pipeline_name: on(1).then(|| "p".to_owned()),
                status: on(2).then_some(RunStatus::Completed),
                start_date: on(3).then(|| t("2024-01-01T00:00:00Z")),
                end_date: on(3).then(|| t("2024-02-01T00:00:00Z")),
                stale_at: None,
                count_up_to: None,
            };
            let [page, count] = plans(&conn, &filters(&filter, live));
            assert!(!page.contains("TEMP B-TREE"), "{bits:04b}: {page}");
            assert!(page.contains("USING"), "{bits:04b}: {page}");
            assert!(count.contains("USING"), "{bits:04b}: {count}");
            // A cursor page seeks into the same index, in the same order.
            let mut after = filters(&filter, live);
            after.after("started_at", "id", ["2024-01-15".into(), "run_x".into()]);
            let [page, _] = plans(&conn, &after);
            assert!(!page.contains("TEMP B-TREE"), "{bits:04b} cursor: {page}");
            assert!(page.contains("USING"), "{bits:04b} cursor: {page}");
        }
        let stale = RunFilter {
            stale_at: Some(t("2024-01-01T00:00:00Z")),
            ..RunFilter::default()
        };
        // Stale runs are few: through the deadline or the live statuses'
        // index, then sorted.
        for plan in plans(&conn, &filters(&stale, live)) {
            assert!(plan.starts_with("SEARCH runs USING"), "{plan}");
        }
    }

    /// A contract's counts per status walk its entries of one covering
    /// index once, in status order: nothing is sorted, no row is read.
    #[test]
    fn a_contracts_status_counts_use_one_index_walk() {
        let plan =
            plan_of("SELECT status, count(*) FROM runs WHERE contract_id = 'c' GROUP BY status");
        assert!(
            plan.contains("COVERING INDEX runs_by_contract_status"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// A page's validation counts are read from the run's own row: the
    /// page's plan touches no validation.
    #[test]
    fn a_page_reads_no_validation() {
        let plan = plan_of(&format!("SELECT {} FROM runs LIMIT 1", *LIST_COLUMNS));
        assert!(!plan.contains("validations"), "{plan}");
    }

    /// SQLite's plan for `sql` on an empty database, its steps joined.
    fn plan_of(sql: &str) -> String {
        let conn = super::super::test_connection();
        let steps: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        steps.join("; ")
    }

    fn plans(conn: &Connection, f: &Filters) -> [String; 2] {
        query::plans(conn, "runs", f, "started_at DESC, id DESC")
            .unwrap()
            .try_into()
            .unwrap()
    }
}
