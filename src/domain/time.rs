//! Timestamps: one fixed wire and storage format, and the lenient parser that
//! pipelines' date filters and backfilled times go through.

use std::fmt;

use time::{
    Date, OffsetDateTime, PrimitiveDateTime, UtcOffset, format_description::BorrowedFormatItem,
    format_description::well_known::Rfc3339, macros::format_description,
};

/// RFC 3339 in UTC with a `Z` and exactly six fractional digits. Fixed width
/// makes text order equal time order, which the indexes rely on.
const CANONICAL: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const NAIVE_FORMATS: &[&[BorrowedFormatItem<'static>]] = &[
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]"),
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    format_description!("[year]-[month]-[day]T[hour]:[minute]"),
];

const DATE_FORMAT: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// What a person is told when a date does not parse.
pub const ACCEPTED_FORMS: &str = "use RFC 3339 with an offset (2024-01-15T10:00:00Z or \
     2024-01-15T10:00:00+05:00), a date-time without offset taken as UTC \
     (2024-01-15T10:00:00), or a date YYYY-MM-DD taken as midnight UTC";

/// How far ahead of the server's clock a client's timestamp may be.
pub const MAX_CLOCK_SKEW_SECS: i64 = 3600;

/// A point in time, always held in UTC with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A timestamp in its canonical text form, as stored: reads pass it on as
/// is, so answering a page of runs formats and parses no time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeText(pub String);

impl TimeText {
    /// The time it names; None for text that is not in the canonical form.
    pub fn timestamp(&self) -> Option<Timestamp> {
        Timestamp::parse_stored(&self.0)
    }
}

impl From<Timestamp> for TimeText {
    fn from(t: Timestamp) -> Self {
        TimeText(t.to_string())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{input}' is not a date or date-time: {ACCEPTED_FORMS}")]
pub struct TimestampError {
    pub input: String,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let dt = dt.to_offset(UtcOffset::UTC);
        // Truncate to the precision we store, so a value read back equals the
        // value written.
        let micros = dt.microsecond();
        Self(dt.replace_nanosecond(micros * 1_000).unwrap_or(dt))
    }

    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Self)
    }

    /// Like `from_unix_micros`, but a time beyond what a timestamp holds
    /// (the years -9999 to 9999) is the nearest end of that range, where it
    /// sorts all the same.
    pub fn saturating_from_unix_micros(micros: i64) -> Self {
        Self::from_unix_micros(micros).unwrap_or_else(|| {
            let date = if micros > 0 {
                time::Date::MAX
            } else {
                time::Date::MIN
            };
            let time = if micros > 0 {
                time::Time::MAX
            } else {
                time::Time::MIDNIGHT
            };
            Self(date.with_time(time).assume_utc())
        })
    }

    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// Parses what a client may send: RFC 3339 with an offset, a date-time
    /// without one (UTC), or a plain date (midnight UTC). A `+` offset that
    /// reached us decoded as a space (an unencoded `+05:00` in a query
    /// string) is read as the `+` it was.
    pub fn parse_lenient(input: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError {
            input: input.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err());
        }
        let candidate = restore_plus_offset(trimmed);
        if let Ok(dt) = OffsetDateTime::parse(&candidate, &Rfc3339) {
            return Self::checked(dt).ok_or_else(err);
        }
        for format in NAIVE_FORMATS {
            if let Ok(dt) = PrimitiveDateTime::parse(trimmed, format) {
                return Self::checked(dt.assume_utc()).ok_or_else(err);
            }
        }
        if let Ok(date) = Date::parse(trimmed, DATE_FORMAT) {
            return Self::checked(date.midnight().assume_utc()).ok_or_else(err);
        }
        Err(err())
    }

    /// Years outside 0000..=9999 would break fixed-width ordering.
    fn checked(dt: OffsetDateTime) -> Option<Self> {
        let ts = Self::from_datetime(dt);
        (0..=9999).contains(&ts.0.year()).then_some(ts)
    }

    /// Reads the canonical form back from storage.
    pub fn parse_stored(input: &str) -> Option<Self> {
        OffsetDateTime::parse(input, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    /// Refuses a client-given time that lies more than `MAX_CLOCK_SKEW_SECS`
    /// past `now` (such a row would sort first in every list for good) or
    /// before 1970 (year 0000 is a zeroed struct or a parse default, never
    /// when a pipeline ran; and it would sort last for good).
    pub fn not_in_future(self, field: &str, now: Timestamp) -> Result<Self, String> {
        if self.0.year() < 1970 {
            Err(format!(
                "{field} ({self}) is before 1970; send the time the event happened"
            ))
        } else if self > now.plus_seconds(MAX_CLOCK_SKEW_SECS) {
            Err(format!(
                "{field} ({self}) is in the future (the server's time is {now}); check the \
                 client's clock"
            ))
        } else {
            Ok(self)
        }
    }

    pub fn plus_seconds(&self, seconds: i64) -> Self {
        Self(self.0 + time::Duration::seconds(seconds))
    }

    pub fn plus_micros(&self, micros: i64) -> Self {
        Self(self.0 + time::Duration::microseconds(micros))
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

/// `2024-01-15T10:00:00 05:00` → `2024-01-15T10:00:00+05:00`.
fn restore_plus_offset(input: &str) -> String {
    let bytes = input.as_bytes();
    let n = bytes.len();
    let looks_like_offset = n > 6
        && bytes[n - 6] == b' '
        && bytes[n - 5].is_ascii_digit()
        && bytes[n - 4].is_ascii_digit()
        && bytes[n - 3] == b':'
        && bytes[n - 2].is_ascii_digit()
        && bytes[n - 1].is_ascii_digit()
        && input[..n - 6].contains('T');
    if looks_like_offset {
        format!("{}+{}", &input[..n - 6], &input[n - 5..])
    } else {
        input.to_owned()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(CANONICAL) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// Where "now" comes from. Tests pin it to check time-dependent answers
/// (stats windows) without sleeping.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(std::sync::Arc<std::sync::Mutex<Timestamp>>),
}

impl Clock {
    pub fn fixed(at: Timestamp) -> Self {
        Clock::Fixed(std::sync::Arc::new(std::sync::Mutex::new(at)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(at) => *at.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// Moves a fixed clock; a system clock ignores this.
    pub fn set(&self, to: Timestamp) {
        if let Clock::Fixed(at) = self {
            *at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> String {
        Timestamp::parse_lenient(s).unwrap().to_string()
    }

    #[test]
    fn canonical_form_is_fixed_width_utc() {
        assert_eq!(parse("2024-01-15T10:00:00Z"), "2024-01-15T10:00:00.000000Z");
        assert_eq!(
            parse("2024-01-15T10:00:00.1234567Z"),
            "2024-01-15T10:00:00.123456Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(
            parse("2024-01-15T10:00:00+05:00"),
            "2024-01-15T05:00:00.000000Z"
        );
        assert_eq!(
            parse("2024-01-15T10:00:00-01:30"),
            "2024-01-15T11:30:00.000000Z"
        );
    }

    #[test]
    fn plus_decoded_as_space_is_understood() {
        assert_eq!(
            parse("2024-01-15T10:00:00 05:00"),
            "2024-01-15T05:00:00.000000Z"
        );
    }

    #[test]
    fn naive_datetimes_and_dates_are_utc() {
        assert_eq!(parse("2024-01-15T10:00:00"), "2024-01-15T10:00:00.000000Z");
        assert_eq!(parse("2024-01-15 10:00:00"), "2024-01-15T10:00:00.000000Z");
        assert_eq!(parse("2024-01-15T10:00"), "2024-01-15T10:00:00.000000Z");
        assert_eq!(parse("2024-01-15"), "2024-01-15T00:00:00.000000Z");
    }

    #[test]
    fn garbage_is_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-15T25:00:00Z",
            "15/01/2024",
        ] {
            let err = Timestamp::parse_lenient(bad).unwrap_err();
            assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let ts = Timestamp::now();
        assert_eq!(Timestamp::parse_stored(&ts.to_string()), Some(ts));
    }
}
