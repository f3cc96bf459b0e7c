//! Server-generated identifiers: a prefix naming the kind, then a ULID, so
//! ids sort by creation time and say what they are.

use std::sync::{Mutex, PoisonError};

use ulid::Generator;

/// Monotonic within the process: two ids made in the same millisecond still
/// sort in the order they were made.
static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

fn next_ulid() -> ulid::Ulid {
    let mut generator = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random
    // ULID rather than fail.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::generate())
}

pub fn new_run_id() -> String {
    format!("run_{}", next_ulid())
}

pub fn new_validation_id() -> String {
    format!("val_{}", next_ulid())
}

pub fn new_webhook_id() -> String {
    format!("whk_{}", next_ulid())
}

/// A webhook message's id: the `webhook-id` header, the same on every
/// attempt, so receivers can drop repeats.
pub fn new_message_id() -> String {
    format!("msg_{}", next_ulid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_increasing() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(a.starts_with("run_") && a.len() == 30);
        assert!(a < b);
        assert!(new_validation_id().starts_with("val_"));
    }
}
