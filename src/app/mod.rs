//! The use cases: what the registry does, whoever asks. Each opens its own
//! transaction, applies the domain's rules, calls the store, records the
//! events and wakes the waiters; the HTTP handlers and the CLI only
//! translate to and from it.

pub mod keys;
pub mod lifecycle;
pub mod retention;
