//! Rules for the short identifiers clients send: contract ids, pipeline
//! names, key names.

use super::DomainError;

/// Longest identifier we accept; long enough for any real id, short enough
/// that an index entry stays small.
pub const MAX_NAME_LEN: usize = 255;

/// A required identifier: trimmed, non-empty, bounded, no control characters.
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
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
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
}
