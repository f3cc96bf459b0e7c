//! Deleting old rows (see `domain::retention` for what is old). Deletes go
//! in small batches, each its own transaction through the writer, so other
//! writes queue behind one batch at most, never behind the whole prune.

use r2d2_sqlite::rusqlite::{Connection, params};

use super::{Store, StoreError};
use crate::domain::{
    retention::{Counts, PRUNABLE_STATUSES, Policy},
    time::Timestamp,
};

/// Rows deleted per transaction.
pub const BATCH: usize = 500;

/// Finished runs older than ?1. `started_at < ?1` is implied by the rest (a
/// run finishes after it starts) but lets the status index range-scan
/// instead of walking every finished run.
const PRUNABLE_RUNS: &str = "SELECT id FROM runs \
     WHERE status IN (?2, ?3, ?4) AND started_at < ?1 \
       AND COALESCE(completed_at, started_at) < ?1";

fn statuses() -> [&'static str; 3] {
    PRUNABLE_STATUSES.map(|s| s.as_str())
}

fn count(conn: &Connection, sql: &str, policy: &Policy) -> Result<u64, StoreError> {
    let [a, b, c] = statuses();
    let n: i64 = conn.prepare_cached(sql)?.query_row(
        params![
            policy.cutoff.to_string(),
            a,
            b,
            c,
            policy.forget_keys_before.to_string()
        ],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// What `prune` would delete, deleting nothing.
pub fn count_prunable(conn: &Connection, policy: &Policy) -> Result<Counts, StoreError> {
    // Every statement binds the same five parameters; ?5 is the key cutoff.
    let runs = format!("SELECT COUNT(*) FROM ({PRUNABLE_RUNS}) WHERE ?5 IS NOT NULL");
    let events = format!(
        "SELECT COUNT(*) FROM run_events WHERE run_id IN ({PRUNABLE_RUNS}) AND ?5 IS NOT NULL"
    );
    let validations = format!(
        "SELECT COUNT(*) FROM validations WHERE ?5 IS NOT NULL AND \
         (run_id IN ({PRUNABLE_RUNS}) OR (run_id IS NULL AND recorded_at < ?1))"
    );
    let keys = format!(
        "SELECT COUNT(*) FROM idempotency_keys \
         WHERE created_at < ?5 OR run_id IN ({PRUNABLE_RUNS})"
    );
    let messages = "SELECT COUNT(*) FROM webhook_messages \
         WHERE state <> 'pending' AND created_at < ?1 AND ?5 IS NOT NULL";
    Ok(Counts {
        runs: count(conn, &runs, policy)?,
        events: count(conn, &events, policy)?,
        validations: count(conn, &validations, policy)?,
        idempotency_keys: count(conn, &keys, policy)?,
        webhook_messages: count(conn, messages, policy)?,
    })
}

fn changed(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Deletes up to `BATCH` prunable runs with everything that refers to them
/// (events, validations and their error rows, idempotency keys).
pub fn delete_run_batch(conn: &Connection, cutoff: Timestamp) -> Result<Counts, StoreError> {
    let [a, b, c] = statuses();
    let ids: Vec<String> = conn
        .prepare_cached(&format!("{PRUNABLE_RUNS} LIMIT {BATCH}"))?
        .query_map(params![cutoff.to_string(), a, b, c], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Counts::default());
    }
    // One JSON array parameter instead of 500 placeholders.
    let ids = serde_json::Value::from(ids).to_string();
    let delete = |sql: &str| -> Result<u64, StoreError> {
        Ok(changed(conn.prepare_cached(sql)?.execute([&ids])?))
    };
    const IDS: &str = "(SELECT value FROM json_each(?1))";
    // Children first: the foreign keys have no ON DELETE CASCADE, except
    // validation_errors, which goes with its validation.
    let events = delete(&format!("DELETE FROM run_events WHERE run_id IN {IDS}"))?;
    let validations = delete(&format!("DELETE FROM validations WHERE run_id IN {IDS}"))?;
    let idempotency_keys = delete(&format!(
        "DELETE FROM idempotency_keys WHERE run_id IN {IDS}"
    ))?;
    let runs = delete(&format!("DELETE FROM runs WHERE id IN {IDS}"))?;
    Ok(Counts {
        runs,
        events,
        validations,
        idempotency_keys,
        webhook_messages: 0,
    })
}

/// Deletes up to `BATCH` validations without a run recorded before `cutoff`.
pub fn delete_runless_validation_batch(
    conn: &Connection,
    cutoff: Timestamp,
) -> Result<u64, StoreError> {
    Ok(changed(
        conn.prepare_cached(&format!(
            "DELETE FROM validations WHERE id IN (SELECT id FROM validations \
             WHERE recorded_at < ?1 AND run_id IS NULL LIMIT {BATCH})"
        ))?
        .execute([cutoff.to_string()])?,
    ))
}

/// Forgets up to `BATCH` idempotency keys created before `before`.
pub fn delete_key_batch(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    Ok(changed(
        conn.prepare_cached(&format!(
            "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys \
             WHERE created_at < ?1 LIMIT {BATCH})"
        ))?
        .execute([before.to_string()])?,
    ))
}

/// Deletes up to `BATCH` webhook messages made before `cutoff` that are
/// no longer pending, with their attempts.
pub fn delete_webhook_message_batch(
    conn: &Connection,
    cutoff: Timestamp,
) -> Result<u64, StoreError> {
    let old = format!(
        "SELECT id FROM webhook_messages \
         WHERE state <> 'pending' AND created_at < ?1 ORDER BY seq LIMIT {BATCH}"
    );
    conn.prepare_cached(&format!(
        "DELETE FROM webhook_attempts WHERE message_id IN ({old})"
    ))?
    .execute([cutoff.to_string()])?;
    Ok(changed(
        conn.prepare_cached(&format!("DELETE FROM webhook_messages WHERE id IN ({old})"))?
            .execute([cutoff.to_string()])?,
    ))
}

/// Deletes everything `policy` allows, batch by batch, each batch its own
/// write transaction, until done or `stopping()` says to stop (checked
/// between batches, so a shutdown does not wait for a long prune).
/// Blocking: call it off the async executor.
pub fn prune_blocking(
    store: &Store,
    policy: Policy,
    stopping: &dyn Fn() -> bool,
) -> Result<Counts, StoreError> {
    let mut total = Counts::default();
    loop {
        if stopping() {
            return Ok(total);
        }
        let cutoff = policy.cutoff;
        let batch = store.write_blocking(move |tx| delete_run_batch(tx, cutoff))?;
        store.stats().record_pruned(&batch);
        total += batch;
        if batch.runs == 0 {
            break;
        }
    }
    loop {
        let cutoff = policy.cutoff;
        let n = store.write_blocking(move |tx| delete_runless_validation_batch(tx, cutoff))?;
        store.stats().record_pruned(&Counts {
            validations: n,
            ..Counts::default()
        });
        total.validations += n;
        if n == 0 || stopping() {
            break;
        }
    }
    loop {
        let before = policy.forget_keys_before;
        let n = store.write_blocking(move |tx| delete_key_batch(tx, before))?;
        store.stats().record_pruned(&Counts {
            idempotency_keys: n,
            ..Counts::default()
        });
        total.idempotency_keys += n;
        if n == 0 || stopping() {
            break;
        }
    }
    loop {
        let cutoff = policy.cutoff;
        let n = store.write_blocking(move |tx| delete_webhook_message_batch(tx, cutoff))?;
        store.stats().record_pruned(&Counts {
            webhook_messages: n,
            ..Counts::default()
        });
        total.webhook_messages += n;
        if n == 0 || stopping() {
            break;
        }
    }
    Ok(total)
}
