//! The `runs` table.

use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params};
use tracing::instrument;

use super::{
    StoreError, events,
    query::{self, Filters, Page},
    stored_object, stored_time, validations,
};
use crate::domain::{
    DomainError,
    event::{EventType, RunEvent, SYSTEM_ACTOR},
    limits::Limits,
    metadata::Metadata,
    run::{Run, RunDetail, RunFilter, RunListItem, RunPatch, RunStatus},
    time::Timestamp,
};

const COLUMNS: &str = "id, contract_id, pipeline_name, pipeline_id, status, metadata, \
                       started_at, completed_at, created_by, updated_at, version, \
                       heartbeat_timeout_seconds, last_heartbeat_at";

fn from_row(row: &Row<'_>) -> Result<Run, StoreError> {
    let status: String = row.get(4)?;
    let metadata: String = row.get(5)?;
    let started_at: String = row.get(6)?;
    let completed_at: Option<String> = row.get(7)?;
    let updated_at: String = row.get(9)?;
    Ok(Run {
        id: row.get(0)?,
        contract_id: row.get(1)?,
        pipeline_name: row.get(2)?,
        pipeline_id: row.get(3)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status '{status}'")))?,
        metadata: stored_object("runs.metadata", &metadata)?,
        started_at: stored_time("runs.started_at", &started_at)?,
        completed_at: completed_at
            .map(|t| stored_time("runs.completed_at", &t))
            .transpose()?,
        created_by: row.get(8)?,
        updated_at: stored_time("runs.updated_at", &updated_at)?,
        version: row.get(10)?,
        heartbeat_timeout_seconds: row.get(11)?,
        last_heartbeat_at: row
            .get::<_, Option<String>>(12)?
            .map(|t| stored_time("runs.last_heartbeat_at", &t))
            .transpose()?,
    })
}

fn metadata_text(run: &Run) -> Result<String, StoreError> {
    serde_json::to_string(&run.metadata)
        .map_err(|e| StoreError::Corrupt(format!("metadata could not be encoded: {e}")))
}

/// Stores a new run and its `created` event.
#[instrument(skip_all)]
pub fn insert(conn: &Connection, run: &Run) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO runs ({COLUMNS}, heartbeat_deadline) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?
    .execute(params![
        run.id,
        run.contract_id,
        run.pipeline_name,
        run.pipeline_id,
        run.status.as_str(),
        metadata_text(run)?,
        run.started_at.to_string(),
        run.completed_at.map(|t| t.to_string()),
        run.created_by,
        run.updated_at.to_string(),
        run.version,
        run.heartbeat_timeout_seconds,
        run.last_heartbeat_at.map(|t| t.to_string()),
        run.heartbeat_deadline().map(|t| t.to_string()),
    ])?;
    events::append(
        conn,
        &RunEvent {
            id: 0,
            run_id: run.id.clone(),
            event_type: EventType::Created,
            from_status: None,
            to_status: Some(run.status),
            changes: Metadata::new(),
            actor: run.created_by.clone(),
            occurred_at: run.updated_at,
        },
    )
}

/// Writes every mutable column of `run` back.
fn write_back(conn: &Connection, run: &Run) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE runs SET pipeline_name = ?2, pipeline_id = ?3, status = ?4, metadata = ?5, \
         completed_at = ?6, updated_at = ?7, version = ?8, heartbeat_timeout_seconds = ?9, \
         last_heartbeat_at = ?10, heartbeat_deadline = ?11 WHERE id = ?1",
    )?
    .execute(params![
        run.id,
        run.pipeline_name,
        run.pipeline_id,
        run.status.as_str(),
        metadata_text(run)?,
        run.completed_at.map(|t| t.to_string()),
        run.updated_at.to_string(),
        run.version,
        run.heartbeat_timeout_seconds,
        run.last_heartbeat_at.map(|t| t.to_string()),
        run.heartbeat_deadline().map(|t| t.to_string()),
    ])?;
    Ok(())
}

#[instrument(skip_all)]
pub fn find(conn: &Connection, id: &str) -> Result<Option<Run>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"))?;
    let mut rows = stmt.query(params![id])?;
    rows.next()?.map(from_row).transpose()
}

/// The contract a run belongs to, if the run exists.
pub fn contract_of(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT contract_id FROM runs WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?)
}

/// A run with its validations.
#[instrument(skip_all)]
pub fn get_detail(conn: &Connection, id: &str) -> Result<RunDetail, StoreError> {
    let run = find(conn, id)?.ok_or_else(|| StoreError::not_found("Run", id))?;
    let validations = validations::refs_for_run(conn, id)?;
    Ok(RunDetail { run, validations })
}

/// Applies `patch` to the stored run in the caller's write transaction, so
/// concurrent patches of one run each see the other's result: no metadata
/// key is lost to a race. The change and its event are written together.
/// With `accepted_versions`, a run at none of them is refused. The merged
/// metadata is checked against `limits` here, on the row as stored, so a
/// refused patch leaves the run and its history as they were.
#[instrument(skip_all)]
pub fn update(
    conn: &Connection,
    id: &str,
    patch: &RunPatch,
    accepted_versions: Option<Vec<i64>>,
    actor: &str,
    now: Timestamp,
    limits: &Limits,
) -> Result<RunDetail, StoreError> {
    let mut run = find(conn, id)?.ok_or_else(|| StoreError::not_found("Run", id))?;
    if let Some(accepted) = accepted_versions
        && !accepted.contains(&run.version)
    {
        return Err(StoreError::VersionMismatch {
            id: id.to_owned(),
            current: run.version,
        });
    }
    let stored = run.clone();
    let changed = patch.apply(&mut run, now)?;
    if patch.metadata.is_some() {
        limits.check_merged_metadata(&stored.metadata, &run.metadata)?;
    }
    // A repeated update of a final run changes nothing, not even the
    // heartbeat: nothing to write.
    if run != stored {
        write_back(conn, &run)?;
    }
    if changed {
        events::append(
            conn,
            &RunEvent::for_update(id, stored.status, run.status, patch.changes(), actor, now),
        )?;
    }
    let validations = validations::refs_for_run(conn, id)?;
    Ok(RunDetail { run, validations })
}

/// Records a sign of life from a pending or running run.
#[instrument(skip_all)]
pub fn heartbeat(conn: &Connection, id: &str, now: Timestamp) -> Result<RunDetail, StoreError> {
    let mut run = find(conn, id)?.ok_or_else(|| StoreError::not_found("Run", id))?;
    if run.status.is_final() {
        return Err(DomainError::NotLive {
            id: id.to_owned(),
            status: run.status,
        }
        .into());
    }
    run.last_heartbeat_at = Some(now);
    write_back(conn, &run)?;
    let validations = validations::refs_for_run(conn, id)?;
    Ok(RunDetail { run, validations })
}

/// Fails every pending or running run whose heartbeat deadline has passed,
/// with `failure_reason: "heartbeat_timeout"` in its metadata and an event by
/// `system`. The guard on status and deadline is in the UPDATE itself, so a
/// run finished a moment earlier is never overwritten. Returns the ids.
#[instrument(skip_all)]
pub fn reap_overdue(conn: &Connection, now: Timestamp) -> Result<Vec<String>, StoreError> {
    let now_text = now.to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT id, status FROM runs \
         WHERE heartbeat_deadline IS NOT NULL AND heartbeat_deadline < ?1 \
         AND status IN ('pending', 'running')",
    )?;
    let overdue: Vec<(String, String)> = stmt
        .query_map(params![now_text], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut failed = Vec::new();
    for (id, status) in overdue {
        let changed = conn
            .prepare_cached(
                "UPDATE runs SET status = 'failed', completed_at = max(?2, started_at), \
                 updated_at = ?2, version = version + 1, heartbeat_deadline = NULL, \
                 metadata = json_set(metadata, '$.failure_reason', 'heartbeat_timeout') \
                 WHERE id = ?1 AND status IN ('pending', 'running') \
                 AND heartbeat_deadline IS NOT NULL AND heartbeat_deadline < ?2",
            )?
            .execute(params![id, now_text])?;
        if changed == 0 {
            continue;
        }
        let mut changes = Metadata::new();
        changes.insert(
            "metadata".into(),
            serde_json::json!({"failure_reason": "heartbeat_timeout"}),
        );
        events::append(
            conn,
            &RunEvent {
                id: 0,
                run_id: id.clone(),
                event_type: EventType::HeartbeatExpired,
                from_status: RunStatus::parse(&status),
                to_status: Some(RunStatus::Failed),
                changes,
                actor: SYSTEM_ACTOR.to_owned(),
                occurred_at: now,
            },
        )?;
        failed.push(id);
    }
    Ok(failed)
}

fn filters(filter: &RunFilter) -> Filters {
    let mut f = Filters::default();
    f.bind_some("contract_id =", filter.contract_id.as_ref());
    f.bind_some("pipeline_name =", filter.pipeline_name.as_ref());
    f.bind_some("status =", filter.status.map(RunStatus::as_str));
    f.bind_some("started_at >=", filter.start_date);
    f.bind_some("started_at <", filter.end_date);
    if let Some(t) = filter.stale_at {
        f.bind("heartbeat_deadline <", t.to_string());
        f.constant("status IN ('pending', 'running')");
    }
    f
}

/// What one run costs of a page's byte budget: its metadata and names as
/// stored, and an allowance for its other fields and validation summary.
const RUN_WEIGHT: query::Weight = query::Weight {
    text_columns: &[1, 2, 3, 5, 8],
    overhead: 512,
};

/// One page of runs, newest `started_at` first with ties broken by id, and
/// how many runs the filter matches in all; cut short before `max_bytes`.
#[instrument(skip_all)]
pub fn list(
    conn: &Connection,
    filter: &RunFilter,
    (limit, offset): (u32, u64),
    max_bytes: usize,
) -> Result<Page<RunListItem>, StoreError> {
    let page = query::page_within(
        conn,
        "runs",
        COLUMNS,
        &filters(filter),
        "started_at DESC, id DESC",
        (limit, offset),
        (max_bytes, RUN_WEIGHT),
        from_row,
    )?;
    let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
    let mut summaries = validations::summaries_for_runs(conn, &ids)?;
    let items = page
        .items
        .into_iter()
        .map(|run| {
            let validation_summary = summaries.remove(&run.id).unwrap_or_default();
            RunListItem {
                run,
                validation_summary,
            }
        })
        .collect();
    Ok(Page {
        items,
        total: page.total,
        truncated: page.truncated,
    })
}
