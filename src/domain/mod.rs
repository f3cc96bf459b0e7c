//! Types and rules of the registry: no HTTP and no SQL here.

pub mod enums;
pub mod event;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod metadata;
pub mod retention;
pub mod run;
pub mod text;
pub mod time;
pub mod validation;
pub mod webhooks;

use run::RunStatus;

/// A request that the rules refuse.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    /// The input is well-formed but breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),

    /// A status change the run's state machine does not allow.
    #[error(
        "cannot change a run's status from '{from}' to '{to}': {}",
        if from.is_final() {
            "it is final"
        } else {
            "a running run can only become completed, failed or cancelled"
        }
    )]
    InvalidTransition { from: RunStatus, to: RunStatus },

    /// Heartbeats are for runs that can still go stale.
    #[error("run '{id}' is {status}: heartbeats are only for pending or running runs")]
    NotLive { id: String, status: RunStatus },

    /// A change was made conditional on versions the run has left.
    #[error(
        "run '{id}' is at version {current}, which If-Match does not name: it changed since \
         you read it; read it again and retry"
    )]
    VersionMismatch { id: String, current: i64 },
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        DomainError::Invalid(message.into())
    }
}

/// One page of a list: the items, how many match in all, and whether the
/// byte budget cut the page short of its `limit`.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub truncated: bool,
}
