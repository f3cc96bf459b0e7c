//! The `run_events` table: the history of each run.

use r2d2_sqlite::rusqlite::{Connection, Row, params};

use super::{
    StoreError,
    query::{self, Filters, Page},
    stored_object, stored_time,
};
use crate::domain::{
    event::{EventType, RunEvent},
    run::RunStatus,
};

fn status(column: &str, text: Option<String>) -> Result<Option<RunStatus>, StoreError> {
    text.map(|t| {
        RunStatus::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("{column} holds '{t}'")))
    })
    .transpose()
}

fn from_row(row: &Row<'_>) -> Result<RunEvent, StoreError> {
    let event_type: String = row.get(2)?;
    let changes: String = row.get(5)?;
    let occurred_at: String = row.get(7)?;
    Ok(RunEvent {
        id: row.get(0)?,
        run_id: row.get(1)?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event type '{event_type}'")))?,
        from_status: status("run_events.from_status", row.get(3)?)?,
        to_status: status("run_events.to_status", row.get(4)?)?,
        changes: stored_object("run_events.changes", &changes)?,
        actor: row.get(6)?,
        occurred_at: stored_time("run_events.occurred_at", &occurred_at)?,
    })
}

pub fn append(conn: &Connection, e: &RunEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO run_events (run_id, type, from_status, to_status, changes, actor, occurred_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.run_id,
        e.event_type.as_str(),
        e.from_status.map(RunStatus::as_str),
        e.to_status.map(RunStatus::as_str),
        serde_json::Value::Object(e.changes.clone()).to_string(),
        e.actor,
        e.occurred_at.to_string(),
    ])?;
    Ok(())
}

/// What one event costs of a page's byte budget: its changes and actor as
/// stored, and an allowance for the rest.
const EVENT_WEIGHT: query::Weight = query::Weight {
    text_columns: &[5, 6],
    overhead: 256,
};

/// A run's events, oldest first, and how many it has in all; cut short
/// before `max_bytes`.
pub fn list(
    conn: &Connection,
    run_id: &str,
    (limit, offset): (u32, u64),
    max_bytes: usize,
) -> Result<Page<RunEvent>, StoreError> {
    if super::runs::contract_of(conn, run_id)?.is_none() {
        return Err(StoreError::not_found("Run", run_id));
    }
    let mut filters = Filters::default();
    filters.bind("run_id =", run_id);
    query::page_within(
        conn,
        "run_events",
        "id, run_id, type, from_status, to_status, changes, actor, occurred_at",
        &filters,
        "id",
        (limit, offset),
        (max_bytes, EVENT_WEIGHT),
        from_row,
    )
}
