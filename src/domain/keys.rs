//! API keys: what a secret looks like, how it is stored (only its hash), and
//! what each scope may do.

use std::fmt;

use sha2::{Digest, Sha256};

use super::{DomainError, enums::string_enum, text::required_name, time::Timestamp};

/// Every secret starts with this, so secret scanners can spot a leaked one.
pub const SECRET_PREFIX: &str = "grk_";
/// 32 random bytes, hex-encoded: 256 bits from the OS generator.
const SECRET_HEX_LEN: usize = 64;

string_enum! {
    /// What a key may do. A write key may also read; an admin key may
    /// also write and manage webhooks.
    pub enum KeyScope {
        Read = "read",
        Write = "write",
        Admin = "admin",
    }
}

impl KeyScope {
    pub fn can_write(self) -> bool {
        matches!(self, KeyScope::Write | KeyScope::Admin)
    }

    pub fn can_administer(self) -> bool {
        self == KeyScope::Admin
    }
}

/// A stored key, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub scope: KeyScope,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// The identity behind a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub key_id: i64,
    pub name: String,
    pub scope: KeyScope,
}

impl Caller {
    /// Refuses a key whose scope does not allow writes.
    pub fn writer(self) -> Result<Self, AuthError> {
        if self.scope.can_write() {
            Ok(self)
        } else {
            Err(AuthError::ReadOnly { name: self.name })
        }
    }

    /// Refuses a key without the admin scope (webhooks are managed by
    /// admins: a subscription sends the registry's data elsewhere).
    pub fn admin(self) -> Result<Self, AuthError> {
        if self.scope.can_administer() {
            Ok(self)
        } else {
            Err(AuthError::NotAdmin {
                name: self.name,
                scope: self.scope,
            })
        }
    }
}

/// Why a request's key was refused. Each says which, so a person can fix
/// the right thing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "malformed API key in the X-API-Key header: a key is '{SECRET_PREFIX}' followed by 64 \
         lowercase hex characters"
    )]
    Malformed,
    #[error("unknown API key: no key with this secret exists")]
    Unknown,
    #[error("API key '{name}' was revoked at {at}")]
    Revoked { name: String, at: Timestamp },
    /// No key, where the server requires one for reads.
    #[error("this server requires an API key for reads: send one in the X-API-Key header")]
    ReadsNeedKey,
    /// A valid key whose scope does not allow the operation.
    #[error(
        "API key '{name}' has the read scope and cannot write; use a key created with --scope \
         write"
    )]
    ReadOnly { name: String },
    /// A valid key without the admin scope, on an admin operation.
    #[error(
        "API key '{name}' has the {scope} scope; managing webhooks needs a key created with \
         --scope admin"
    )]
    NotAdmin { name: String, scope: KeyScope },
}

/// A freshly generated secret. Its `Debug` hides the value so that it
/// cannot end up in a log by accident.
pub struct Secret(String);

impl Secret {
    pub fn generate() -> Result<Self, DomainError> {
        let mut bytes = [0u8; SECRET_HEX_LEN / 2];
        getrandom::fill(&mut bytes)
            .map_err(|e| DomainError::invalid(format!("the OS random generator failed: {e}")))?;
        Ok(Secret(format!("{SECRET_PREFIX}{}", hex::encode(bytes))))
    }

    /// Takes a secret chosen elsewhere (the bootstrap variable), if it has
    /// the shape of one.
    pub fn from_string(s: &str) -> Result<Self, DomainError> {
        if is_well_formed(s) {
            Ok(Secret(s.to_owned()))
        } else {
            Err(DomainError::invalid(format!(
                "an API key is '{SECRET_PREFIX}' followed by {SECRET_HEX_LEN} lowercase hex \
                 characters (for example from: python3 -c \"import secrets; \
                 print('{SECRET_PREFIX}' + secrets.token_hex(32))\")"
            )))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Whether a presented value has the shape of one of our secrets. A value
/// that does not is refused without a database lookup.
pub fn is_well_formed(s: &str) -> bool {
    s.strip_prefix(SECRET_PREFIX).is_some_and(|hex| {
        hex.len() == SECRET_HEX_LEN && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// SHA-256 suits secrets with 256 bits of entropy: no salt or slow hash is
/// needed to stop guessing, and equal secrets map to one indexed lookup.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn validate_key_name(name: &str) -> Result<String, DomainError> {
    required_name("key name", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_well_formed_and_distinct() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert!(is_well_formed(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), a.expose());
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn malformed_secrets_are_recognised() {
        for bad in [
            "",
            "grk_",
            "grk_xyz",
            "abc",
            &format!("grk_{}", "A".repeat(64)),
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let s = Secret::generate().unwrap();
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
