//! Bounds on what one row may hold, so no client can grow a run or a
//! validation without end through requests that each fit the body cap.
//!
//! Sizes are of the compact JSON text as stored, which is what a row costs
//! on disk and, roughly, in every answer that includes it.

use std::io;

use super::{DomainError, metadata::Metadata, validation::Validation};

/// 256 KiB: far more than any pipeline's descriptive metadata, small enough
/// that a page of 1000 such runs stays bounded.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_METRICS_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_VALIDATION_ISSUES: usize = 1000;
/// 8 MiB: 32 runs at the metadata cap, thousands of ordinary ones.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// The smallest and largest page size (`limit`) a list may ask for.
pub const PAGE_LIMIT: std::ops::RangeInclusive<u32> = 1..=1000;

/// The caps; the server's flags set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A run's metadata after the merge, and a validation's metadata.
    pub max_metadata_bytes: usize,
    /// A validation's metrics.
    pub max_metrics_bytes: usize,
    /// A validation's errors, and separately its warnings.
    pub max_validation_issues: usize,
    /// A list page's items, as stored; a page that would exceed it is cut
    /// short (its first item is always kept).
    pub max_page_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_metrics_bytes: DEFAULT_MAX_METRICS_BYTES,
            max_validation_issues: DEFAULT_MAX_VALIDATION_ISSUES,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

/// Counts bytes without keeping them.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of `metadata` as compact JSON text, as the store writes it,
/// without building the text.
pub fn json_len(metadata: &Metadata) -> usize {
    let mut counter = Counter(0);
    // Writing a map of JSON values to a sink that never fails cannot fail;
    // if it somehow did, the count so far is still a lower bound.
    let _ = serde_json::to_writer(&mut counter, metadata);
    counter.0
}

fn too_big(what: &str, size: usize, limit: usize) -> DomainError {
    DomainError::invalid(format!(
        "{what} would be {size} bytes of JSON, over the limit of {limit} bytes \
         (--max-metadata-bytes); store large data elsewhere and keep a reference here"
    ))
}

impl Limits {
    /// Checks a new run's metadata.
    pub fn check_new_run_metadata(&self, metadata: &Metadata) -> Result<(), DomainError> {
        let size = json_len(metadata);
        if size > self.max_metadata_bytes {
            return Err(too_big("the run's metadata", size, self.max_metadata_bytes));
        }
        Ok(())
    }

    /// Checks a run's metadata after a merge patch, against what was stored
    /// before it. A run already over the cap (the cap was lowered since) may
    /// still shrink or keep its size, so that it can always be finished or
    /// trimmed; it may not grow.
    pub fn check_merged_metadata(
        &self,
        before: &Metadata,
        after: &Metadata,
    ) -> Result<(), DomainError> {
        let size = json_len(after);
        if size > self.max_metadata_bytes && size > json_len(before) {
            return Err(too_big(
                "the run's metadata after this merge",
                size,
                self.max_metadata_bytes,
            ));
        }
        Ok(())
    }

    /// Checks a validation's errors and warnings counts and its metrics and
    /// metadata sizes.
    pub fn check_validation(&self, v: &Validation) -> Result<(), DomainError> {
        let max = self.max_validation_issues;
        for (field, count) in [("errors", v.errors.len()), ("warnings", v.warnings.len())] {
            if count > max {
                return Err(DomainError::invalid(format!(
                    "{field} has {count} entries, over the limit of {max} \
                     (--max-validation-issues); send the first ones and a count in metrics"
                )));
            }
        }
        let metrics = json_len(&v.metrics);
        if metrics > self.max_metrics_bytes {
            return Err(DomainError::invalid(format!(
                "metrics would be {metrics} bytes of JSON, over the limit of {} bytes \
                 (--max-metrics-bytes)",
                self.max_metrics_bytes
            )));
        }
        let metadata = json_len(&v.metadata);
        if metadata > self.max_metadata_bytes {
            return Err(too_big(
                "the validation's metadata",
                metadata,
                self.max_metadata_bytes,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn obj(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    fn limits(bytes: usize) -> Limits {
        Limits {
            max_metadata_bytes: bytes,
            max_metrics_bytes: bytes,
            max_validation_issues: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn json_len_is_the_stored_text_length() {
        let m = obj(json!({"a": "é", "b": [1, 2, {"c": null}]}));
        assert_eq!(json_len(&m), serde_json::to_string(&m).unwrap().len());
    }

    #[test]
    fn new_metadata_at_the_cap_passes_and_over_it_is_refused() {
        let m = obj(json!({"k": "x".repeat(10)}));
        let size = json_len(&m);
        assert!(limits(size).check_new_run_metadata(&m).is_ok());
        let err = limits(size - 1).check_new_run_metadata(&m).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&size.to_string()), "{msg}");
        assert!(msg.contains(&(size - 1).to_string()), "{msg}");
    }

    #[test]
    fn a_run_over_the_cap_may_shrink_or_stay_but_not_grow() {
        let big = obj(json!({"k": "x".repeat(100)}));
        let bigger = obj(json!({"k": "x".repeat(101)}));
        let small = obj(json!({"k": "x"}));
        let l = limits(50);
        assert!(l.check_merged_metadata(&big, &big).is_ok());
        assert!(l.check_merged_metadata(&big, &small).is_ok());
        assert!(l.check_merged_metadata(&big, &bigger).is_err());
        assert!(l.check_merged_metadata(&small, &big).is_err());
    }
}
