//! The `api_keys` table. It holds a SHA-256 of each secret, never the secret.

use r2d2_sqlite::rusqlite::{Connection, Row, params};
use tracing::instrument;

use super::{StoreError, is_unique_violation, sql::columns};
use crate::domain::{
    keys::{ApiKey, KeyScope},
    time::Timestamp,
};

columns!(id, name, scope, created_at, last_used_at, revoked_at);

fn from_row(row: &Row<'_>) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.get(Col::id.at())?,
        name: row.get(Col::name.at())?,
        scope: row.get(Col::scope.at())?,
        created_at: row.get(Col::created_at.at())?,
        last_used_at: row.get(Col::last_used_at.at())?,
        revoked_at: row.get(Col::revoked_at.at())?,
    })
}

#[instrument(level = "debug", skip_all)]
pub fn insert(
    conn: &Connection,
    name: &str,
    scope: KeyScope,
    secret_hash: &str,
    now: Timestamp,
) -> Result<Option<ApiKey>, StoreError> {
    match conn.execute(
        "INSERT INTO api_keys (name, scope, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, scope, secret_hash, now],
    ) {
        Err(e) if is_unique_violation(&e) => return Ok(None),
        other => other?,
    };
    Ok(Some(ApiKey {
        id: conn.last_insert_rowid(),
        name: name.to_owned(),
        scope,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    }))
}

/// The key whose secret hashes to `secret_hash`, revoked or not.
#[instrument(level = "debug", skip_all)]
pub fn find_by_hash(conn: &Connection, secret_hash: &str) -> Result<Option<ApiKey>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE secret_hash = ?1"
    ))?;
    let mut rows = stmt.query(params![secret_hash])?;
    rows.next()?.map(from_row).transpose()
}

pub fn list(conn: &Connection) -> Result<Vec<ApiKey>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY name"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Sets `revoked_at` on the key called `name` unless it is already set, and
/// returns the key as it is then; None when no key has that name.
pub fn revoke(conn: &Connection, name: &str, now: Timestamp) -> Result<Option<ApiKey>, StoreError> {
    conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE name = ?1",
        params![name, now],
    )?;
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM api_keys WHERE name = ?1"))?;
    let mut rows = stmt.query(params![name])?;
    rows.next()?.map(from_row).transpose()
}

pub fn touch(conn: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn count_active(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every key, revoked or not.
pub fn count_all(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
