//! Retention: which rows may be deleted because they are old, and how an
//! age is written on the command line.

use super::{run::RunStatus, time::Timestamp};

/// Runs in these statuses are done and may go once old; pending and
/// running runs are kept whatever their age.
pub const PRUNABLE_STATUSES: [RunStatus; 3] = [
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// What a prune deletes: finished runs that started and finished before
/// `cutoff` (with their events, validations and idempotency keys),
/// validations without a run recorded before `cutoff`, and idempotency keys
/// created before `forget_keys_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub cutoff: Timestamp,
    pub forget_keys_before: Timestamp,
}

impl Policy {
    /// Keeps `older_than_secs` of history and `key_retention_secs` of
    /// idempotency keys, counted back from `now`.
    pub fn new(now: Timestamp, older_than_secs: i64, key_retention_secs: i64) -> Self {
        Self {
            cutoff: now.plus_seconds(-older_than_secs),
            forget_keys_before: now.plus_seconds(-key_retention_secs),
        }
    }
}

/// How many rows of each kind a prune deleted (or, dry, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub runs: u64,
    pub events: u64,
    pub validations: u64,
    pub idempotency_keys: u64,
    /// Webhook messages delivered or failed (with their attempts); pending
    /// ones are kept whatever their age.
    pub webhook_messages: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.runs += other.runs;
        self.events += other.events;
        self.validations += other.validations;
        self.idempotency_keys += other.idempotency_keys;
        self.webhook_messages += other.webhook_messages;
    }
}

/// Parses an age such as `90d`, `12h`, `30m` or `45s` into seconds.
pub fn parse_age(input: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "'{input}' is not an age: write a whole number followed by d, h, m or s \
             (90d, 12h, 30m)"
        )
    };
    let input_trimmed = input.trim();
    let split = input_trimmed.len().checked_sub(1).ok_or_else(bad)?;
    if !input_trimmed.is_char_boundary(split) {
        return Err(bad());
    }
    let (number, unit) = input_trimmed.split_at(split);
    let unit_secs: i64 = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!(
            "'{input}' would delete every finished run; give an age above 0"
        ));
    }
    // Past ~10,000 years the cutoff would fall before the epoch anyway.
    n.checked_mul(unit_secs)
        .filter(|s| *s <= 10_000 * 365 * 86_400)
        .ok_or_else(|| format!("'{input}' is too long an age"))
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_in_days_hours_minutes_seconds() {
        assert_eq!(parse_age("90d"), Ok(90 * 86_400));
        assert_eq!(parse_age("12h"), Ok(12 * 3_600));
        assert_eq!(parse_age("30m"), Ok(1_800));
        assert_eq!(parse_age("45s"), Ok(45));
    }

    #[test]
    fn malformed_ages_are_refused() {
        for bad in [
            "",
            "d",
            "90",
            "-1d",
            "1.5d",
            "90 d",
            "1w",
            "0d",
            "99999999999d",
            "9é",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
