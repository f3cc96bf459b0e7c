//! Validations: the result of checking a dataset against a data contract,
//! recorded by a pipeline step, and the trends computed over them.

use serde_json::Value;

use super::{
    DomainError,
    enums::string_enum,
    metadata::{JsonText, Metadata},
    text::{optional_name, required_name},
    time::{TimeText, Timestamp},
};

string_enum! {
    /// The outcome of a validation.
    #[derive(Hash)]
    pub enum ValidationStatus {
        Passed = "passed",
        Failed = "failed",
        /// Passed, with warnings.
        Warning = "warning",
        Skipped = "skipped",
    }
}

/// How a run lists one of its validations.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRef {
    pub id: String,
    pub status: ValidationStatus,
    pub recorded_at: Timestamp,
}

/// Counts per status, as on run list items and in stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub passed: u64,
    pub failed: u64,
    pub warning: u64,
    pub skipped: u64,
}

pub type ValidationSummary = StatusCounts;

impl StatusCounts {
    pub fn add(&mut self, status: ValidationStatus, n: u64) {
        match status {
            ValidationStatus::Passed => self.passed += n,
            ValidationStatus::Failed => self.failed += n,
            ValidationStatus::Warning => self.warning += n,
            ValidationStatus::Skipped => self.skipped += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.warning + self.skipped
    }

    /// Percentage of `passed` among the validations that were not skipped;
    /// `None` when every one was skipped or there are none, since 0% would
    /// claim failures that did not happen.
    pub fn pass_rate(&self) -> Option<f64> {
        let judged = self.passed + self.failed + self.warning;
        (judged > 0).then(|| {
            let rate = self.passed as f64 * 100.0 / judged as f64;
            (rate * 100.0).round() / 100.0
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationIssue {
    pub code: String,
    pub message: String,
    pub path: Option<String>,
    pub row_count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationWarning {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub id: String,
    pub contract_id: String,
    pub run_id: Option<String>,
    pub status: ValidationStatus,
    pub errors: Vec<ValidationIssue>,
    pub warnings: Vec<ValidationWarning>,
    pub metrics: Metadata,
    pub metadata: Metadata,
    pub recorded_at: Timestamp,
    pub recorded_by: String,
}

/// A validation as reads answer with it: metrics, metadata and time as
/// stored, not parsed. Errors and warnings are read (most validations have
/// none, and an empty list costs nothing), so their shape is the API's
/// whatever older rows hold.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRecord {
    pub id: String,
    pub contract_id: String,
    pub run_id: Option<String>,
    pub status: ValidationStatus,
    pub errors: Vec<ValidationIssue>,
    pub warnings: Vec<ValidationWarning>,
    pub metrics: JsonText,
    pub metadata: JsonText,
    pub recorded_at: TimeText,
    pub recorded_by: String,
}

impl Validation {
    pub fn duration_ms(&self) -> Option<i64> {
        self.metrics.get("duration_ms").and_then(Value::as_i64)
    }

    /// The validation as the store keeps it: a write answers with what it
    /// stored, written from the same text a read would find.
    pub fn record(&self) -> ValidationRecord {
        ValidationRecord {
            id: self.id.clone(),
            contract_id: self.contract_id.clone(),
            run_id: self.run_id.clone(),
            status: self.status,
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            metrics: JsonText::of(&self.metrics),
            metadata: JsonText::of(&self.metadata),
            recorded_at: self.recorded_at.into(),
            recorded_by: self.recorded_by.clone(),
        }
    }
}

/// Metrics whose meaning we know, and so check.
pub const COUNT_METRICS: [&str; 4] = [
    "rows_validated",
    "rows_passed",
    "rows_failed",
    "duration_ms",
];

/// Shortest error or warning message: one character that is not whitespace.
pub const MIN_MESSAGE_LEN: usize = 1;
/// Longest error or warning message (and error path) kept whole; longer ones
/// are refused so a stack trace pasted as a message does not bloat every
/// stats query.
pub const MAX_MESSAGE_LEN: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct NewValidationInput {
    pub contract_id: String,
    pub run_id: Option<String>,
    pub status: Option<ValidationStatus>,
    pub errors: Vec<ValidationIssue>,
    pub warnings: Vec<ValidationWarning>,
    pub metrics: Metadata,
    pub metadata: Metadata,
    pub recorded_at: Option<Timestamp>,
}

impl NewValidationInput {
    pub fn into_validation(
        self,
        recorded_by: &str,
        now: Timestamp,
    ) -> Result<Validation, DomainError> {
        let contract_id = required_name("contract_id", &self.contract_id)?;
        let run_id = optional_name("run_id", self.run_id)?;
        let status = self.status.ok_or_else(|| {
            DomainError::invalid("status is required: one of passed, failed, warning, skipped")
        })?;
        for metric in COUNT_METRICS {
            if let Some(value) = self.metrics.get(metric)
                && value.as_u64().is_none()
            {
                return Err(DomainError::invalid(format!(
                    "metrics.{metric} must be a non-negative integer, got {value}"
                )));
            }
        }
        for (i, e) in self.errors.iter().enumerate() {
            check_entry("errors", i, &e.code, &e.message)?;
            if let Some(path) = &e.path
                && path.chars().count() > MAX_MESSAGE_LEN
            {
                return Err(DomainError::invalid(format!(
                    "errors[{i}].path is longer than {MAX_MESSAGE_LEN} characters"
                )));
            }
        }
        for (i, w) in self.warnings.iter().enumerate() {
            check_entry("warnings", i, &w.code, &w.message)?;
        }
        Ok(Validation {
            id: super::ids::new_validation_id(),
            contract_id,
            run_id,
            status,
            errors: self.errors,
            warnings: self.warnings,
            metrics: self.metrics,
            metadata: self.metadata,
            recorded_at: match self.recorded_at {
                Some(t) => t
                    .not_in_future("recorded_at", now)
                    .map_err(DomainError::Invalid)?,
                None => now,
            },
            recorded_by: recorded_by.to_owned(),
        })
    }
}

fn check_entry(list: &str, i: usize, code: &str, message: &str) -> Result<(), DomainError> {
    required_name(&format!("{list}[{i}].code"), code)?;
    if message.trim().is_empty() {
        return Err(DomainError::invalid(format!(
            "{list}[{i}].message must not be empty"
        )));
    }
    if message.chars().count() > MAX_MESSAGE_LEN {
        return Err(DomainError::invalid(format!(
            "{list}[{i}].message is longer than {MAX_MESSAGE_LEN} characters"
        )));
    }
    Ok(())
}

/// A validation's run must exist and be about the same contract.
pub fn check_run_link(
    run_id: &str,
    run_contract: Option<&str>,
    contract_id: &str,
) -> Result<(), DomainError> {
    match run_contract {
        None => Err(DomainError::invalid(format!(
            "run_id '{run_id}' does not name an existing run"
        ))),
        Some(c) if c != contract_id => Err(DomainError::invalid(format!(
            "run '{run_id}' belongs to contract '{c}', not '{contract_id}'"
        ))),
        Some(_) => Ok(()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ValidationFilter {
    pub contract_id: Option<String>,
    pub run_id: Option<String>,
    pub status: Option<ValidationStatus>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Count the matches only up to this many (see `RunFilter::count_up_to`).
    pub count_up_to: Option<u64>,
}

string_enum! {
    /// The width of a stats bucket. Buckets are aligned to UTC calendar
    /// boundaries: the hour, midnight, and Monday midnight (ISO weeks).
    pub enum Granularity {
        Hour = "hour",
        Day = "day",
        Week = "week",
    }
}

/// 1970-01-05, the first Monday after the Unix epoch.
const FIRST_MONDAY_SECS: i64 = 4 * 86_400;

impl Granularity {
    pub fn width_secs(self) -> i64 {
        match self {
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
            Granularity::Week => 7 * 86_400,
        }
    }

    /// Where bucket boundaries fall, in Unix seconds modulo the width.
    pub fn origin_secs(self) -> i64 {
        match self {
            Granularity::Week => FIRST_MONDAY_SECS,
            _ => 0,
        }
    }

    pub fn bucket_start_secs(self, unix_secs: i64) -> i64 {
        let (w, o) = (self.width_secs(), self.origin_secs());
        (unix_secs - o).div_euclid(w) * w + o
    }
}

/// The smallest and largest `days` a stats request may ask for.
pub const STATS_DAYS: std::ops::RangeInclusive<u32> = 1..=366;

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: Timestamp,
    pub counts: StatusCounts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommonError {
    pub code: String,
    pub count: u64,
    pub sample_message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationStats {
    pub contract_id: String,
    pub days: u32,
    pub granularity: Granularity,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub totals: StatusCounts,
    pub avg_duration_ms: Option<f64>,
    pub buckets: Vec<Bucket>,
    pub common_errors: Vec<CommonError>,
}

/// Lays the counts the store found onto every bucket of the window, so a
/// chart has no gaps. `found` holds (bucket start in Unix seconds, counts).
pub fn fill_buckets(
    granularity: Granularity,
    window_start: Timestamp,
    window_end: Timestamp,
    found: &[(i64, StatusCounts)],
) -> Vec<Bucket> {
    let width = granularity.width_secs();
    let first = granularity.bucket_start_secs(window_start.unix_micros().div_euclid(1_000_000));
    let last = granularity.bucket_start_secs(window_end.unix_micros().div_euclid(1_000_000));
    let found: std::collections::HashMap<i64, StatusCounts> = found.iter().copied().collect();
    let mut buckets = Vec::new();
    let mut at = first;
    while at <= last {
        let counts = found.get(&at).copied().unwrap_or_default();
        if let Some(start) = Timestamp::from_unix_micros(at * 1_000_000) {
            buckets.push(Bucket { start, counts });
        }
        at += width;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_rate_ignores_skipped_and_is_none_without_judged() {
        let mut c = StatusCounts::default();
        assert_eq!(c.pass_rate(), None);
        c.add(ValidationStatus::Skipped, 3);
        assert_eq!(c.pass_rate(), None);
        c.add(ValidationStatus::Passed, 2);
        c.add(ValidationStatus::Failed, 1);
        assert_eq!(c.pass_rate(), Some(66.67));
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-17 is a Wednesday; its week starts Monday 2024-01-15.
        let wed = Timestamp::parse_lenient("2024-01-17T12:00:00Z").unwrap();
        let start = Granularity::Week.bucket_start_secs(wed.unix_micros() / 1_000_000);
        let monday = Timestamp::parse_lenient("2024-01-15").unwrap();
        assert_eq!(start, monday.unix_micros() / 1_000_000);
    }

    #[test]
    fn buckets_cover_the_window_without_gaps() {
        let start = Timestamp::parse_lenient("2024-01-15T10:30:00Z").unwrap();
        let end = Timestamp::parse_lenient("2024-01-18T09:00:00Z").unwrap();
        let b = fill_buckets(Granularity::Day, start, end, &[]);
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].start.to_string(), "2024-01-15T00:00:00.000000Z");
    }

    #[test]
    fn count_metrics_must_be_non_negative_integers() {
        let mut input = NewValidationInput {
            contract_id: "c".into(),
            status: Some(ValidationStatus::Passed),
            ..Default::default()
        };
        input
            .metrics
            .insert("rows_failed".into(), serde_json::json!(-1));
        let err = input.into_validation("k", Timestamp::now()).unwrap_err();
        assert!(err.to_string().contains("rows_failed"));
    }
}
