//! Runs: one execution of a pipeline against a data contract, and the rules
//! its status follows.

use super::{
    DomainError,
    enums::string_enum,
    metadata::{JsonText, Metadata, merge_patch, strip_nulls},
    text::{optional_name, required_name},
    time::{TimeText, Timestamp},
    validation::{ValidationRef, ValidationSummary},
};

string_enum! {
    /// Where a run is in its life. `completed`, `failed` and `cancelled` are
    /// final: nothing moves a run out of them.
    #[derive(Hash)]
    pub enum RunStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether a run in `self` may move to `next`. Staying put is always
    /// allowed, so a retried "completed" is harmless.
    pub fn check_transition(self, next: RunStatus) -> Result<(), DomainError> {
        let allowed = self == next
            || match self {
                RunStatus::Pending => true,
                RunStatus::Running => next.is_final(),
                RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled => false,
            };
        if allowed {
            Ok(())
        } else {
            Err(DomainError::InvalidTransition {
                from: self,
                to: next,
            })
        }
    }
}

/// A stored run, as the store reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub contract_id: String,
    pub pipeline_name: Option<String>,
    pub pipeline_id: Option<String>,
    pub status: RunStatus,
    pub metadata: Metadata,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub created_by: String,
    pub updated_at: Timestamp,
    /// Grows by one with every change, for optimistic concurrency (If-Match).
    /// Heartbeats are not changes and leave it alone.
    pub version: i64,
    /// A pending or running run not heard from for this long is failed.
    pub heartbeat_timeout_seconds: Option<u32>,
    pub last_heartbeat_at: Option<Timestamp>,
}

/// The shortest heartbeat timeout a run can be created with. An update may
/// also send 0, which removes the timeout.
pub const MIN_HEARTBEAT_TIMEOUT_SECS: u32 = 1;
/// The longest heartbeat timeout: a week.
pub const MAX_HEARTBEAT_TIMEOUT_SECS: u32 = 7 * 86_400;

/// The shortest and longest time a client may ask to wait for a run to
/// finish, in seconds.
pub const WAIT_SECS: std::ops::RangeInclusive<u32> = 0..=60;

impl Run {
    /// When the run becomes overdue: its last sign of life (a heartbeat, or
    /// its start) plus its timeout. None for final runs and runs without a
    /// timeout.
    pub fn heartbeat_deadline(&self) -> Option<Timestamp> {
        let timeout = self.heartbeat_timeout_seconds?;
        if self.status.is_final() {
            return None;
        }
        let last = self.last_heartbeat_at.unwrap_or(self.started_at);
        Some(last.plus_seconds(i64::from(timeout)))
    }

    /// Refuses a change made on the condition that the run is at one of
    /// `accepted` versions (If-Match), when it is at none of them. None
    /// accepts any version.
    pub fn check_version(&self, accepted: Option<&[i64]>) -> Result<(), DomainError> {
        match accepted {
            Some(versions) if !versions.contains(&self.version) => {
                Err(DomainError::VersionMismatch {
                    id: self.id.clone(),
                    current: self.version,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a sign of life. Only pending and running runs can go stale,
    /// so only they take heartbeats. Not a change: the version stays.
    pub fn beat(&mut self, now: Timestamp) -> Result<(), DomainError> {
        if self.status.is_final() {
            return Err(DomainError::NotLive {
                id: self.id.clone(),
                status: self.status,
            });
        }
        self.last_heartbeat_at = Some(now);
        Ok(())
    }

    /// True when the run is live and its heartbeat deadline has passed.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.heartbeat_deadline()
            .is_some_and(|deadline| deadline < now)
    }

    /// Fails an overdue run, saying why in its metadata
    /// (`failure_reason: "heartbeat_timeout"`), and returns its status
    /// before; None (and no change) when the run is not overdue.
    pub fn expire(&mut self, now: Timestamp) -> Option<RunStatus> {
        if !self.is_overdue(now) {
            return None;
        }
        let before = self.status;
        self.status = RunStatus::Failed;
        self.completed_at = Some(now.max(self.started_at));
        self.updated_at = now;
        self.version += 1;
        self.metadata
            .insert(FAILURE_REASON.into(), HEARTBEAT_TIMEOUT.into());
        Some(before)
    }
}

/// The statuses a run can go stale in: the ones that are not final.
pub const LIVE_STATUSES: &[RunStatus] = &[RunStatus::Pending, RunStatus::Running];

/// The metadata key an expired run's failure is explained under, and its
/// value.
pub const FAILURE_REASON: &str = "failure_reason";
pub const HEARTBEAT_TIMEOUT: &str = "heartbeat_timeout";

fn check_timeout(seconds: Option<u32>, zero_clears: bool) -> Result<Option<u32>, DomainError> {
    match seconds {
        Some(0) if zero_clears => Ok(Some(0)),
        Some(s) if s == 0 || s > MAX_HEARTBEAT_TIMEOUT_SECS => Err(DomainError::invalid(format!(
            "heartbeat_timeout_seconds must be between 1 and {MAX_HEARTBEAT_TIMEOUT_SECS}{}, got {s}",
            if zero_clears {
                " (or 0 to remove the timeout)"
            } else {
                ""
            }
        ))),
        other => Ok(other),
    }
}

/// A run as reads answer with it: its columns as stored, none parsed.
/// Rules work on [`Run`]; this is only ever shown. `heartbeat_deadline` is
/// the stored one, which every write sets to [`Run::heartbeat_deadline`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub contract_id: String,
    pub pipeline_name: Option<String>,
    pub pipeline_id: Option<String>,
    pub status: RunStatus,
    pub metadata: JsonText,
    pub started_at: TimeText,
    pub completed_at: Option<TimeText>,
    pub created_by: String,
    pub updated_at: TimeText,
    pub version: i64,
    pub heartbeat_timeout_seconds: Option<u32>,
    pub last_heartbeat_at: Option<TimeText>,
    pub heartbeat_deadline: Option<TimeText>,
}

impl Run {
    /// The run as the store keeps it: a write answers with the run it
    /// stored, written from the same text a read would find.
    pub fn record(&self) -> RunRecord {
        RunRecord {
            id: self.id.clone(),
            contract_id: self.contract_id.clone(),
            pipeline_name: self.pipeline_name.clone(),
            pipeline_id: self.pipeline_id.clone(),
            status: self.status,
            metadata: JsonText::of(&self.metadata),
            started_at: self.started_at.into(),
            completed_at: self.completed_at.map(Into::into),
            created_by: self.created_by.clone(),
            updated_at: self.updated_at.into(),
            version: self.version,
            heartbeat_timeout_seconds: self.heartbeat_timeout_seconds,
            last_heartbeat_at: self.last_heartbeat_at.map(Into::into),
            heartbeat_deadline: self.heartbeat_deadline().map(Into::into),
        }
    }
}

impl RunDetail {
    /// [`Run::record`], with the validations.
    pub fn record(&self) -> RunDetail<RunRecord> {
        RunDetail {
            run: self.run.record(),
            validations: self.validations.clone(),
        }
    }
}

impl RunRecord {
    /// [`Run::is_overdue`] of the run as stored: the stored deadline is
    /// set only while the run is live with a heartbeat timeout.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.heartbeat_deadline
            .as_ref()
            .and_then(TimeText::timestamp)
            .is_some_and(|deadline| deadline < now)
    }
}

/// A run with the validations recorded during it, oldest first; the run as
/// a [`Run`] or, for reads, a [`RunRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail<R = Run> {
    pub run: R,
    pub validations: Vec<ValidationRef>,
}

/// A run as the list shows it: with counts of its validations per status.
#[derive(Debug, Clone, PartialEq)]
pub struct RunListItem<R = Run> {
    pub run: R,
    pub validation_summary: ValidationSummary,
}

/// What a client asks to create, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct NewRunInput {
    pub contract_id: String,
    pub pipeline_name: Option<String>,
    pub pipeline_id: Option<String>,
    pub status: Option<RunStatus>,
    pub metadata: Option<Metadata>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub heartbeat_timeout_seconds: Option<u32>,
}

impl NewRunInput {
    /// A digest of what was asked for, to tell a retried request (same
    /// digest) from a different one reusing an Idempotency-Key.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let value = serde_json::json!({
            "contract_id": self.contract_id,
            "pipeline_name": self.pipeline_name,
            "pipeline_id": self.pipeline_id,
            "status": self.status.map(RunStatus::as_str),
            "metadata": self.metadata,
            "started_at": self.started_at.map(|t| t.to_string()),
            "completed_at": self.completed_at.map(|t| t.to_string()),
            "heartbeat_timeout_seconds": self.heartbeat_timeout_seconds,
        });
        hex::encode(Sha256::digest(super::metadata::canonical_json(&value)))
    }

    /// Checks the input and fills in what the server decides: the id, the
    /// default status, the start time and the reporter.
    pub fn into_run(self, created_by: &str, now: Timestamp) -> Result<Run, DomainError> {
        let contract_id = required_name("contract_id", &self.contract_id)?;
        let pipeline_name = optional_name("pipeline_name", self.pipeline_name)?;
        let pipeline_id = optional_name("pipeline_id", self.pipeline_id)?;
        let status = self.status.unwrap_or(RunStatus::Pending);
        let in_past = |field: &str, t: Option<Timestamp>| {
            t.map(|t| t.not_in_future(field, now))
                .transpose()
                .map_err(DomainError::Invalid)
        };
        let started_at = in_past("started_at", self.started_at)?.unwrap_or(now);
        let given_completed_at = in_past("completed_at", self.completed_at)?;
        let completed_at = match (status.is_final(), given_completed_at) {
            (false, Some(_)) => {
                return Err(DomainError::invalid(format!(
                    "completed_at can only be given with a final status \
                     (completed, failed or cancelled), not '{status}'"
                )));
            }
            (false, None) => None,
            (true, given) => Some(given.unwrap_or_else(|| now.max(started_at))),
        };
        if let Some(done) = completed_at
            && done < started_at
        {
            return Err(DomainError::invalid(format!(
                "completed_at ({done}) is before started_at ({started_at})"
            )));
        }
        Ok(Run {
            id: super::ids::new_run_id(),
            contract_id,
            pipeline_name,
            pipeline_id,
            status,
            metadata: self.metadata.as_ref().map(strip_nulls).unwrap_or_default(),
            started_at,
            completed_at,
            created_by: created_by.to_owned(),
            updated_at: now,
            version: 1,
            heartbeat_timeout_seconds: check_timeout(self.heartbeat_timeout_seconds, false)?,
            // Creation is a sign of life: a backfilled started_at must not
            // make a new run overdue on arrival.
            last_heartbeat_at: self.heartbeat_timeout_seconds.map(|_| now),
        })
    }
}

/// A partial update. Absent and null fields are both "leave as it is".
#[derive(Debug, Clone, Default)]
pub struct RunPatch {
    pub status: Option<RunStatus>,
    pub metadata: Option<Metadata>,
    pub pipeline_name: Option<String>,
    pub pipeline_id: Option<String>,
    /// 0 removes the timeout.
    pub heartbeat_timeout_seconds: Option<u32>,
}

impl RunPatch {
    /// Refuses a patch that names nothing to change, so a client bug that
    /// sends `{}` is told rather than silently accepted.
    pub fn validated(self) -> Result<Self, DomainError> {
        if self.status.is_none()
            && self.metadata.is_none()
            && self.pipeline_name.is_none()
            && self.pipeline_id.is_none()
            && self.heartbeat_timeout_seconds.is_none()
        {
            return Err(DomainError::invalid(
                "the update is empty: give at least one of status, metadata, \
                 pipeline_name, pipeline_id or heartbeat_timeout_seconds",
            ));
        }
        Ok(Self {
            pipeline_name: optional_name("pipeline_name", self.pipeline_name)?,
            pipeline_id: optional_name("pipeline_id", self.pipeline_id)?,
            heartbeat_timeout_seconds: check_timeout(self.heartbeat_timeout_seconds, true)?,
            ..self
        })
    }

    /// Applies the patch to `run` as it is stored now. Returns whether
    /// anything changed, so a repeated update writes nothing. Any update of
    /// a live run also counts as a heartbeat.
    pub fn apply(&self, run: &mut Run, now: Timestamp) -> Result<bool, DomainError> {
        let before = run.clone();
        if let Some(next) = self.status {
            run.status.check_transition(next)?;
            if next != run.status {
                run.status = next;
                if next.is_final() {
                    run.completed_at = Some(now.max(run.started_at));
                }
            }
        }
        if let Some(patch) = &self.metadata {
            merge_patch(&mut run.metadata, patch);
        }
        if let Some(name) = &self.pipeline_name {
            run.pipeline_name = Some(name.clone());
        }
        if let Some(id) = &self.pipeline_id {
            run.pipeline_id = Some(id.clone());
        }
        if let Some(timeout) = self.heartbeat_timeout_seconds {
            run.heartbeat_timeout_seconds = (timeout > 0).then_some(timeout);
        }
        let changed = *run != before;
        if changed {
            run.updated_at = now;
            run.version += 1;
        }
        if !before.status.is_final() {
            run.last_heartbeat_at = Some(now);
        }
        Ok(changed)
    }

    /// What the patch asked for, as the event history records it.
    pub fn changes(&self) -> Metadata {
        let mut out = Metadata::new();
        if let Some(s) = self.status {
            out.insert("status".into(), s.as_str().into());
        }
        if let Some(m) = &self.metadata {
            out.insert("metadata".into(), serde_json::Value::Object(m.clone()));
        }
        if let Some(n) = &self.pipeline_name {
            out.insert("pipeline_name".into(), n.clone().into());
        }
        if let Some(i) = &self.pipeline_id {
            out.insert("pipeline_id".into(), i.clone().into());
        }
        if let Some(t) = self.heartbeat_timeout_seconds {
            out.insert("heartbeat_timeout_seconds".into(), t.into());
        }
        out
    }
}

/// Which runs a list asks for. Dates bound `started_at`: `start_date` is
/// inclusive and `end_date` exclusive.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub contract_id: Option<String>,
    pub pipeline_name: Option<String>,
    pub status: Option<RunStatus>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Only pending or running runs whose heartbeat is overdue at this time.
    pub stale_at: Option<Timestamp>,
    /// Count the matches only up to this many: the page's total is then at
    /// most this. The dashboard's front page asks so, since counting every
    /// run of a million costs more than showing fifty; the API counts all.
    pub count_up_to: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus::*;

    #[test]
    fn live_statuses_are_exactly_the_ones_that_are_not_final() {
        let live: Vec<RunStatus> = RunStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(LIVE_STATUSES, live.as_slice());
    }

    #[test]
    fn an_overdue_run_expires_once_and_says_why() {
        let now = Timestamp::now();
        let mut run = NewRunInput {
            contract_id: "c".into(),
            status: Some(Running),
            heartbeat_timeout_seconds: Some(60),
            ..NewRunInput::default()
        }
        .into_run("k", now.plus_seconds(-120))
        .unwrap();
        assert!(run.is_overdue(now));
        assert_eq!(run.expire(now), Some(Running));
        assert_eq!(run.status, Failed);
        assert_eq!(run.version, 2);
        assert_eq!(run.completed_at, Some(now));
        assert_eq!(run.metadata[FAILURE_REASON], HEARTBEAT_TIMEOUT);
        assert_eq!(run.heartbeat_deadline(), None);
        // Final now: nothing more to expire.
        assert_eq!(run.expire(now.plus_seconds(3600)), None);
        assert_eq!(run.version, 2);
    }

    #[test]
    fn transitions_follow_the_state_machine() {
        let allowed = [
            (Pending, Running),
            (Pending, Completed),
            (Pending, Failed),
            (Pending, Cancelled),
            (Running, Completed),
            (Running, Failed),
            (Running, Cancelled),
        ];
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(
                    from.check_transition(to).is_ok(),
                    expected,
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn refused_transition_names_both_states() {
        let err = Completed.check_transition(Running).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("completed") && msg.contains("running"),
            "{msg}"
        );
    }

    fn new_run(status: Option<RunStatus>) -> Run {
        NewRunInput {
            contract_id: "c".into(),
            status,
            ..Default::default()
        }
        .into_run("me", Timestamp::now())
        .unwrap()
    }

    #[test]
    fn defaults_to_pending_with_no_completion() {
        let run = new_run(None);
        assert_eq!(run.status, Pending);
        assert!(run.completed_at.is_none());
        assert!(run.id.starts_with("run_"));
    }

    #[test]
    fn created_final_has_completion() {
        assert!(new_run(Some(Completed)).completed_at.is_some());
    }

    #[test]
    fn blank_contract_is_refused() {
        let err = NewRunInput {
            contract_id: "  ".into(),
            ..Default::default()
        }
        .into_run("me", Timestamp::now())
        .unwrap_err();
        assert!(err.to_string().contains("contract_id"));
    }

    #[test]
    fn repeating_status_changes_nothing() {
        let mut run = new_run(Some(Running));
        let patch = RunPatch {
            status: Some(Running),
            ..Default::default()
        };
        assert!(!patch.apply(&mut run, Timestamp::now()).unwrap());
    }

    #[test]
    fn finishing_sets_completed_at() {
        let mut run = new_run(Some(Running));
        let patch = RunPatch {
            status: Some(Failed),
            ..Default::default()
        };
        assert!(patch.apply(&mut run, Timestamp::now()).unwrap());
        assert!(run.completed_at.is_some());
    }

    #[test]
    fn empty_patch_is_refused() {
        assert!(RunPatch::default().validated().is_err());
    }
}
