//! Idempotency keys: what a client may send as one.

use super::DomainError;

pub const MAX_KEY_LEN: usize = 255;

/// An Idempotency-Key is 1 to 255 printable ASCII characters.
pub fn validate_key(key: &str) -> Result<String, DomainError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(malformed_key())
    }
}

/// The refusal of a key that is not 1 to 255 printable ASCII characters.
pub fn malformed_key() -> DomainError {
    DomainError::invalid(format!(
        "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters \
         (a UUID is a good choice)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_and_bounded() {
        assert!(validate_key("3f0c5a2e-6d1b-4b8e-9a55-7f2f0c1d9e11").is_ok());
        assert!(validate_key("with space is fine").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(256)).is_err());
        assert!(validate_key("tab\there").is_err());
        assert!(validate_key("ключ").is_err());
    }
}
