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

/// One page of a list: the items, how many match in all, whether the
/// byte budget cut the page short of its `limit`, and whether more items
/// follow it.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub truncated: bool,
    pub more: bool,
}

/// Where a page of a list starts: after skipping `offset` matches, or
/// right after the item a cursor names (keyset paging, which costs the same
/// on the thousandth page as on the first, and neither skips nor repeats an
/// item when new ones arrive meanwhile), then skipping that many more.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    Offset(u64),
    After(Cursor, u64),
}

/// A place in a list ordered newest first: the sort time and id of the
/// last item a page held. Clients pass it back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub at: time::Timestamp,
    pub id: String,
}

/// What a runs list cursor looks like: microseconds since the epoch, a dot,
/// a run id. Every string of this shape is a valid position, so the
/// pattern in the spec is the whole rule (tests/constraints.rs ties the
/// two).
pub const RUN_CURSOR_PATTERN: &str = r"^-?[0-9]{1,18}\.run_[0-9A-Z]{26}$";
/// The same for validations.
pub const VALIDATION_CURSOR_PATTERN: &str = r"^-?[0-9]{1,18}\.val_[0-9A-Z]{26}$";

impl Cursor {
    /// The cursor of an item read as stored; None when its time is not in
    /// the stored form.
    pub fn from_stored(at: &time::TimeText, id: &str) -> Option<Self> {
        Some(Self {
            at: at.timestamp()?,
            id: id.to_owned(),
        })
    }

    /// The form clients pass back: `micros.id`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.unix_micros(), self.id)
    }

    /// Reads a cursor of the shape the patterns above describe; a time
    /// beyond what a timestamp holds stands for that end of the list.
    pub fn decode(s: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::invalid(format!(
                "invalid cursor '{}': pass the next_cursor of a previous page unchanged",
                s.chars().take(80).collect::<String>()
            ))
        };
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let digits = micros.strip_prefix('-').unwrap_or(micros);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let well_formed_id = id.split_once('_').is_some_and(|(kind, ulid)| {
            !kind.is_empty()
                && kind.bytes().all(|b| b.is_ascii_lowercase())
                && ulid.len() == 26
                && ulid
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        });
        if !well_formed_id {
            return Err(bad());
        }
        Ok(Cursor {
            at: time::Timestamp::saturating_from_unix_micros(micros),
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_go_through_their_text_and_back() {
        for at in ["2024-01-15T10:00:00.123456Z", "0406-12-26T10:11:20.663500Z"] {
            let c = Cursor {
                at: time::Timestamp::parse_lenient(at).unwrap(),
                id: "run_01M8ED2VE6CDMP5AP5387D6ZTP".into(),
            };
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        for bad in [
            "",
            "1",
            ".run_01M8ED2VE6CDMP5AP5387D6ZTP",
            "1.run",
            "1.RUN_01M8ED2VE6CDMP5AP5387D6ZTP",
            "x.run_01M8ED2VE6CDMP5AP5387D6ZTP",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
