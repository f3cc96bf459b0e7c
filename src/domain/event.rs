//! The history of a run: one event per change, written in the same
//! transaction as the change itself.

use super::{enums::string_enum, metadata::Metadata, run::RunStatus, time::Timestamp};

/// The actor of changes the server makes on its own (heartbeat expiry).
pub const SYSTEM_ACTOR: &str = "system";

string_enum! {
    /// What an event records.
    pub enum EventType {
        /// The run was created.
        Created = "created",
        /// The run's status changed (perhaps with other fields).
        StatusChanged = "status_changed",
        /// Metadata, names or the heartbeat timeout changed; the status did not.
        Updated = "updated",
        /// The reaper failed the run because its heartbeat lapsed.
        HeartbeatExpired = "heartbeat_expired",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Assigned by the store; 0 before it is written.
    pub id: i64,
    pub run_id: String,
    pub event_type: EventType,
    pub from_status: Option<RunStatus>,
    pub to_status: Option<RunStatus>,
    pub changes: Metadata,
    pub actor: String,
    pub occurred_at: Timestamp,
}

impl RunEvent {
    /// The first event of every run.
    pub fn created(run: &super::run::Run) -> Self {
        RunEvent {
            id: 0,
            run_id: run.id.clone(),
            event_type: EventType::Created,
            from_status: None,
            to_status: Some(run.status),
            changes: Metadata::new(),
            actor: run.created_by.clone(),
            occurred_at: run.updated_at,
        }
    }

    /// The reaper failed the run after `before`: its heartbeat lapsed.
    pub fn heartbeat_expired(run: &super::run::Run, before: RunStatus) -> Self {
        let mut changes = Metadata::new();
        changes.insert(
            "metadata".into(),
            serde_json::json!({ super::run::FAILURE_REASON: super::run::HEARTBEAT_TIMEOUT }),
        );
        RunEvent {
            id: 0,
            run_id: run.id.clone(),
            event_type: EventType::HeartbeatExpired,
            from_status: Some(before),
            to_status: Some(run.status),
            changes,
            actor: SYSTEM_ACTOR.to_owned(),
            occurred_at: run.updated_at,
        }
    }

    /// The event for an update that went from `before` to `after`.
    pub fn for_update(
        run_id: &str,
        before: RunStatus,
        after: RunStatus,
        changes: Metadata,
        actor: &str,
        at: Timestamp,
    ) -> Self {
        let status_changed = before != after;
        RunEvent {
            id: 0,
            run_id: run_id.to_owned(),
            event_type: if status_changed {
                EventType::StatusChanged
            } else {
                EventType::Updated
            },
            from_status: Some(before),
            to_status: Some(after),
            changes,
            actor: actor.to_owned(),
            occurred_at: at,
        }
    }
}
