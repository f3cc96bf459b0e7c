//! The `idempotency_keys` table: which run a client's Idempotency-Key made.

use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::domain::time::Timestamp;

/// A key's earlier use: the fingerprint of its request and the run it made.
pub struct Recorded {
    pub request_hash: String,
    pub run_id: String,
}

/// The use of `key` by API key `api_key_id` at or after `since`.
pub fn find(
    conn: &Connection,
    api_key_id: i64,
    key: &str,
    since: Timestamp,
) -> Result<Option<Recorded>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, run_id FROM idempotency_keys \
             WHERE api_key_id = ?1 AND idempotency_key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![api_key_id, key, since], |r| {
            Ok(Recorded {
                request_hash: r.get(0)?,
                run_id: r.get(1)?,
            })
        })
        .optional()?)
}

/// Records a use, replacing an expired one of the same key.
pub fn record(
    conn: &Connection,
    api_key_id: i64,
    key: &str,
    request_hash: &str,
    run_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys \
         (api_key_id, idempotency_key, request_hash, run_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![api_key_id, key, request_hash, run_id, now])?;
    Ok(())
}

/// Forgets uses older than `before`; returns how many.
pub fn purge(conn: &Connection, before: Timestamp) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
        .execute(params![before])?)
}
