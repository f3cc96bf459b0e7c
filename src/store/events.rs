//! The `run_events` table: the history of each run.

use r2d2_sqlite::rusqlite::{Connection, Row, params};

use super::{
    StoreError,
    query::{self, Filters, Page},
    sql::{self, columns},
};
use crate::domain::event::RunEvent;

columns!(
    id,
    run_id,
    event_type = "type",
    from_status,
    to_status,
    changes,
    actor,
    occurred_at
);

fn from_row(row: &Row<'_>) -> Result<RunEvent, StoreError> {
    Ok(RunEvent {
        id: row.get(Col::id.at())?,
        run_id: row.get(Col::run_id.at())?,
        event_type: row.get(Col::event_type.at())?,
        from_status: row.get(Col::from_status.at())?,
        to_status: row.get(Col::to_status.at())?,
        changes: sql::object(row, Col::changes.at())?,
        actor: row.get(Col::actor.at())?,
        occurred_at: row.get(Col::occurred_at.at())?,
    })
}

pub fn append(conn: &Connection, e: &RunEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO run_events (run_id, type, from_status, to_status, changes, actor, occurred_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.run_id,
        e.event_type,
        e.from_status,
        e.to_status,
        sql::json_text(&e.changes)?,
        e.actor,
        e.occurred_at,
    ])?;
    Ok(())
}

/// What one event costs of a page's byte budget: its changes and actor as
/// stored, and an allowance for the rest.
const EVENT_WEIGHT: query::Weight = query::Weight {
    text_columns: &[Col::changes.at(), Col::actor.at()],
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
    let mut filters = Filters::default();
    filters.bind("run_id =", run_id);
    query::page_within(
        conn,
        "run_events",
        COLUMNS,
        &filters,
        None,
        "id",
        (limit, offset),
        (max_bytes, EVENT_WEIGHT),
        from_row,
    )
}
