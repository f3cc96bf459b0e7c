//! How values read to a person: times relative and absolute, durations,
//! status badges, counts.

use maud::{Markup, html};

use crate::domain::{
    run::{Run, RunRecord, RunStatus},
    time::{TimeText, Timestamp},
    validation::{StatusCounts, ValidationStatus},
};

/// `2024-01-15 10:00:00 UTC`, from a time's canonical text.
fn absolute_of(canonical: &str) -> String {
    match (canonical.get(..10), canonical.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => canonical.to_owned(),
    }
}

/// "5 min ago", "in 2 h", "just now".
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = (now.unix_micros() - t.unix_micros()) / 1_000_000;
    if secs.abs() < 5 {
        return "just now".to_owned();
    }
    let span = span(secs.unsigned_abs());
    if secs > 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// The largest unit that fits: "42 s", "5 min", "3 h", "2 days".
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => format!("{} h", secs / 3_600),
        86_400..172_800 => "1 day".to_owned(),
        _ => format!("{} days", secs / 86_400),
    }
}

/// A time as a `<time>` element: relative, with the absolute time beside it
/// (and in the machine-readable attribute).
pub fn when(t: Timestamp, now: Timestamp) -> Markup {
    when_at(&t.to_string(), t, now)
}

/// [`when`] of a time as stored: its text is the canonical form already,
/// so only the relative part needs the time itself. Text that is not a
/// time is shown as it is.
pub fn when_stored(t: &TimeText, now: Timestamp) -> Markup {
    match t.timestamp() {
        Some(parsed) => when_at(&t.0, parsed, now),
        None => html! { (t.0) },
    }
}

/// [`when`], given `t`'s canonical text too.
fn when_at(canonical: &str, t: Timestamp, now: Timestamp) -> Markup {
    html! {
        time datetime=(canonical) {
            (relative(t, now))
            span.abs { (absolute_of(canonical)) }
        }
    }
}

/// "850 ms", "42 s", "3 min 4 s", "2 h 5 min".
pub fn duration_micros(micros: i64) -> String {
    let micros = micros.max(0);
    if micros < 1_000_000 {
        return format!("{} ms", micros / 1_000);
    }
    let secs = micros / 1_000_000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min {} s", secs / 60, secs % 60),
        3_600..86_400 => format!("{} h {} min", secs / 3_600, (secs % 3_600) / 60),
        _ => format!("{} d {} h", secs / 86_400, (secs % 86_400) / 3_600),
    }
}

/// How long a run took, or has been going on for when it is live.
pub fn run_duration(run: &Run, now: Timestamp) -> Markup {
    duration_between(run.started_at, run.completed_at, now)
}

/// [`run_duration`] of a run as stored; nothing when its times are not
/// times.
pub fn stored_run_duration(run: &RunRecord, now: Timestamp) -> Markup {
    let completed = run.completed_at.as_ref().map(TimeText::timestamp);
    match (run.started_at.timestamp(), completed) {
        (Some(started), None) => duration_between(started, None, now),
        (Some(started), Some(Some(completed))) => duration_between(started, Some(completed), now),
        _ => html! {},
    }
}

fn duration_between(started: Timestamp, completed: Option<Timestamp>, now: Timestamp) -> Markup {
    let took = duration_micros(completed.unwrap_or(now).unix_micros() - started.unix_micros());
    html! {
        @if completed.is_some() {
            (took)
        } @else {
            span.live { (took) " so far" }
        }
    }
}

pub fn run_badge(status: RunStatus) -> Markup {
    html! { span class={"badge run-" (status.as_str())} { (status.as_str()) } }
}

pub fn validation_badge(status: ValidationStatus) -> Markup {
    html! { span class={"badge val-" (status.as_str())} { (status.as_str()) } }
}

/// "3 passed · 1 failed", or "none" when there are none.
pub fn summary(c: &StatusCounts) -> Markup {
    let parts = [
        (c.passed, ValidationStatus::Passed),
        (c.failed, ValidationStatus::Failed),
        (c.warning, ValidationStatus::Warning),
        (c.skipped, ValidationStatus::Skipped),
    ];
    html! {
        @if c.total() == 0 {
            span.muted { "none" }
        } @else {
            span.summary {
                @for (n, status) in parts {
                    @if n > 0 {
                        span class={"count val-" (status.as_str())} { (n) " " (status.as_str()) }
                    }
                }
            }
        }
    }
}

/// A percentage with at most one decimal: "66.7 %".
pub fn percent(p: f64) -> String {
    let rounded = (p * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} %")
    } else {
        format!("{rounded:.1} %")
    }
}

/// Percent-encodes a value for a query string or path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from the pairs whose value is not empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("?{}", joined.join("&"))
    }
}

pub fn run_href(id: &str) -> String {
    format!("/ui/runs/{}", encode(id))
}

pub fn validation_href(id: &str) -> String {
    format!("/ui/validations/{}", encode(id))
}

pub fn contract_href(id: &str) -> String {
    format!("/ui/contracts/{}", encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_lenient(s).unwrap()
    }

    #[test]
    fn relative_times_pick_the_largest_unit() {
        let now = ts("2024-01-15T12:00:00Z");
        assert_eq!(relative(ts("2024-01-15T11:59:58Z"), now), "just now");
        assert_eq!(relative(ts("2024-01-15T11:59:18Z"), now), "42 s ago");
        assert_eq!(relative(ts("2024-01-15T11:55:00Z"), now), "5 min ago");
        assert_eq!(relative(ts("2024-01-15T09:00:00Z"), now), "3 h ago");
        assert_eq!(relative(ts("2024-01-12T12:00:00Z"), now), "3 days ago");
        assert_eq!(relative(ts("2024-01-15T12:10:00Z"), now), "in 10 min");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_micros(850_000), "850 ms");
        assert_eq!(duration_micros(42_000_000), "42 s");
        assert_eq!(duration_micros(184_000_000), "3 min 4 s");
        assert_eq!(duration_micros(7_500_000_000), "2 h 5 min");
    }

    #[test]
    fn absolute_is_readable_utc() {
        assert_eq!(
            absolute_of(&ts("2024-01-15T10:00:00Z").to_string()),
            "2024-01-15 10:00:00 UTC"
        );
    }

    #[test]
    fn query_strings_encode_and_skip_empty_values() {
        assert_eq!(
            query(&[("contract_id", "a b&c"), ("status", "")]),
            "?contract_id=a%20b%26c"
        );
        assert_eq!(query(&[("status", "")]), "");
        assert_eq!(run_href("run_1/../x"), "/ui/runs/run_1%2F..%2Fx");
    }

    #[test]
    fn percent_drops_a_zero_decimal() {
        assert_eq!(percent(100.0), "100 %");
        assert_eq!(percent(66.666), "66.7 %");
    }
}
