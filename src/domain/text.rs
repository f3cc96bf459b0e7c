//! Rules for the short identifiers clients send: contract ids, pipeline
//! names, key names.

use super::DomainError;

/// Shortest identifier we accept: one character, after trimming.
pub const MIN_NAME_LEN: usize = 1;
/// Longest identifier we accept; long enough for any real id, short enough
/// that an index entry stays small.
pub const MAX_NAME_LEN: usize = 255;

/// Format characters (general category Cf), line and paragraph separators
/// (Zl, Zp), as inclusive ranges, from the Unicode 15.1 character
/// database. `char::is_control` covers the control characters (Cc); Rust
/// has no query for these. They are invisible or reorder the text around
/// them (U+202E turns `evil` into what reads as `live`; U+200B makes two
/// names that look alike differ), so in a name they only serve to spoof
/// `keys list` and created_by.
pub(crate) const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// True for a control (Cc), format (Cf), line or paragraph separator (Zl,
/// Zp) character.
pub fn is_control_or_format(c: char) -> bool {
    let n = u32::from(c);
    c.is_control()
        || INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < n {
                    std::cmp::Ordering::Less
                } else if lo > n {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// A required identifier: trimmed, non-empty, bounded, no control,
/// format or separator characters.
pub fn required_name(field: &str, value: &str) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(format!(
            "{field} is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if let Some(c) = trimmed.chars().find(|&c| is_control_or_format(c)) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control or invisible formatting characters (found \
             U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(trimmed.to_owned())
}

/// An optional identifier: when given it follows the same rules.
pub fn optional_name(field: &str, value: Option<String>) -> Result<Option<String>, DomainError> {
    value.map(|v| required_name(field, &v)).transpose()
}

/// A filter value as a query string gives it: trimmed like stored values
/// are, and an empty one (`?contract_id=`) taken as no filter.
pub fn filter_value(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(required_name("f", "  a ").unwrap(), "a");
        assert!(required_name("f", "").is_err());
        assert!(required_name("f", &"x".repeat(256)).is_err());
        assert!(required_name("f", "a\nb").is_err());
        assert_eq!(optional_name("f", None).unwrap(), None);
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused() {
        for c in [
            '\u{0}',
            '\u{7f}',
            '\u{85}',
            '\u{ad}',
            '\u{200b}',
            '\u{200d}',
            '\u{202e}',
            '\u{2028}',
            '\u{2029}',
            '\u{2066}',
            '\u{feff}',
            '\u{e0041}',
            '\u{1343f}',
        ] {
            let err = required_name("pipeline_name", &format!("a{c}b")).unwrap_err();
            assert!(err.to_string().contains("pipeline_name"), "{err}");
            assert!(
                err.to_string().contains(&format!("U+{:04X}", u32::from(c))),
                "{err}"
            );
        }
        // Letters, marks, symbols and ordinary spaces inside a name stay.
        for ok in ["café", "naïve pipeline", "日本語", "a\u{0301}"] {
            assert!(required_name("f", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }
}
