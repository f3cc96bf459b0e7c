//! The `webhooks`, `webhook_messages` (the outbox) and `webhook_attempts`
//! tables.

use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params};
use tracing::instrument;

use super::{
    StoreError,
    sql::{json, json_text},
};
use crate::domain::{
    Page,
    time::Timestamp,
    webhooks::{Attempt, Delivery, EventType, Message, SigningSecret, Subscription},
};

const SUBSCRIPTION_COLUMNS: &str =
    "id, url, events, contract_id, format, created_at, created_by, disabled_at, disabled_reason";

fn subscription(row: &Row<'_>) -> Result<Subscription, StoreError> {
    let events: Vec<String> = serde_json::from_value(json(row, 2)?)
        .map_err(|e| StoreError::Corrupt(format!("webhooks.events: {e}")))?;
    Ok(Subscription {
        id: row.get(0)?,
        url: row.get(1)?,
        events: events.iter().filter_map(|e| EventType::parse(e)).collect(),
        contract_id: row.get(3)?,
        format: row.get(4)?,
        created_at: row.get(5)?,
        created_by: row.get(6)?,
        disabled_at: row.get(7)?,
        disabled_reason: row.get(8)?,
    })
}

#[instrument(level = "debug", skip_all)]
pub fn insert(
    conn: &Connection,
    sub: &Subscription,
    secret: &SigningSecret,
) -> Result<(), StoreError> {
    let events: Vec<&str> = sub.events.iter().map(|e| e.as_str()).collect();
    conn.execute(
        "INSERT INTO webhooks (id, url, events, contract_id, format, secret, created_at, \
         created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            sub.id,
            sub.url,
            json_text(&events)?,
            sub.contract_id,
            sub.format,
            secret.expose(),
            sub.created_at,
            sub.created_by
        ],
    )?;
    Ok(())
}

/// Every subscription, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<Subscription>, StoreError> {
    subscriptions(conn, "")
}

/// The subscriptions that receive events now (not disabled).
pub fn active(conn: &Connection) -> Result<Vec<Subscription>, StoreError> {
    subscriptions(conn, "WHERE disabled_at IS NULL")
}

fn subscriptions(conn: &Connection, condition: &str) -> Result<Vec<Subscription>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM webhooks {condition} ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(subscription(row)?);
    }
    Ok(out)
}

pub fn find(conn: &Connection, id: &str) -> Result<Option<Subscription>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM webhooks WHERE id = ?1"
    ))?;
    let mut rows = stmt.query(params![id])?;
    rows.next()?.map(subscription).transpose()
}

pub fn secret(conn: &Connection, id: &str) -> Result<Option<SigningSecret>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT secret FROM webhooks WHERE id = ?1",
            params![id],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .map(SigningSecret::stored))
}

/// Deletes a subscription with its messages and their attempts; false if
/// there was none.
pub fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM webhook_attempts WHERE message_id IN \
         (SELECT id FROM webhook_messages WHERE webhook_id = ?1)",
        params![id],
    )?;
    conn.execute(
        "DELETE FROM webhook_messages WHERE webhook_id = ?1",
        params![id],
    )?;
    Ok(conn.execute("DELETE FROM webhooks WHERE id = ?1", params![id])? > 0)
}

pub fn set_disabled(
    conn: &Connection,
    id: &str,
    disabled: Option<(Timestamp, &str)>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE webhooks SET disabled_at = ?2, disabled_reason = ?3 WHERE id = ?1",
        params![id, disabled.map(|d| d.0), disabled.map(|d| d.1)],
    )?;
    Ok(())
}

const MESSAGE_COLUMNS: &str = "m.id, m.webhook_id, m.event_type, m.subject_id, m.body, \
     m.created_at, m.state, m.attempts, m.next_attempt_at, m.retry_from, m.delivered_at";

fn message(row: &Row<'_>) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.get(0)?,
        webhook_id: row.get(1)?,
        event_type: row.get(2)?,
        subject_id: row.get(3)?,
        body: row.get(4)?,
        created_at: row.get(5)?,
        state: row.get(6)?,
        attempts: row.get(7)?,
        next_attempt_at: row.get(8)?,
        retry_from: row.get(9)?,
        delivered_at: row.get(10)?,
    })
}

#[instrument(level = "debug", skip_all)]
pub fn insert_message(conn: &Connection, m: &Message) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO webhook_messages (id, webhook_id, event_type, subject_id, body, created_at, \
         state, attempts, next_attempt_at, retry_from, delivered_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        m.id,
        m.webhook_id,
        m.event_type,
        m.subject_id,
        m.body,
        m.created_at,
        m.state,
        m.attempts,
        m.next_attempt_at,
        m.retry_from,
        m.delivered_at
    ])?;
    Ok(())
}

/// The first pending message of every enabled subscription, as long as it
/// is due by `now`: a subscription's messages go one at a time, in order.
pub fn due_heads(conn: &Connection, now: Timestamp) -> Result<Vec<Message>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhooks AS w \
         JOIN webhook_messages AS m ON m.seq = (SELECT min(seq) FROM webhook_messages \
              WHERE webhook_id = w.id AND state = 'pending') \
         WHERE w.disabled_at IS NULL AND m.next_attempt_at <= ?1 ORDER BY m.seq"
    ))?;
    let mut rows = stmt.query(params![now])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(message(row)?);
    }
    Ok(out)
}

/// When the next head message falls due, if any is pending.
pub fn next_due(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    Ok(conn.query_row(
        "SELECT min(m.next_attempt_at) FROM webhooks AS w \
         JOIN webhook_messages AS m ON m.seq = (SELECT min(seq) FROM webhook_messages \
              WHERE webhook_id = w.id AND state = 'pending') \
         WHERE w.disabled_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

/// How many messages wait to be delivered, for /metrics.
pub fn pending_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM webhook_messages WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub fn find_message(
    conn: &Connection,
    webhook_id: &str,
    id: &str,
) -> Result<Option<Message>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages AS m WHERE m.webhook_id = ?1 AND m.id = ?2"
    ))?;
    let mut rows = stmt.query(params![webhook_id, id])?;
    rows.next()?.map(message).transpose()
}

/// Saves where a message is after an attempt (or a redeliver).
pub fn save_message(conn: &Connection, m: &Message) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE webhook_messages SET state = ?2, attempts = ?3, next_attempt_at = ?4, \
         retry_from = ?5, delivered_at = ?6 WHERE id = ?1",
    )?
    .execute(params![
        m.id,
        m.state,
        m.attempts,
        m.next_attempt_at,
        m.retry_from,
        m.delivered_at
    ])?;
    Ok(())
}

pub fn insert_attempt(conn: &Connection, message_id: &str, a: &Attempt) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO webhook_attempts (message_id, attempt, attempted_at, response_status, error, \
         latency_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        message_id,
        a.attempt,
        a.attempted_at,
        a.response_status,
        a.error,
        i64::try_from(a.latency_ms).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

/// A subscription's messages, newest first, each with its attempts.
pub fn deliveries(
    conn: &Connection,
    webhook_id: &str,
    (limit, offset): (u32, u64),
) -> Result<Page<Delivery>, StoreError> {
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM webhook_messages WHERE webhook_id = ?1",
        params![webhook_id],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages AS m WHERE m.webhook_id = ?1 \
         ORDER BY m.seq DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let mut rows = stmt.query(params![
        webhook_id,
        limit,
        i64::try_from(offset).unwrap_or(i64::MAX)
    ])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        let message = message(row)?;
        let attempts = attempts(conn, &message.id)?;
        items.push(Delivery { message, attempts });
    }
    let total = u64::try_from(total).unwrap_or(0);
    Ok(Page {
        more: offset.saturating_add(items.len() as u64) < total,
        items,
        total,
        truncated: false,
    })
}

/// A message's attempts, oldest first.
pub fn attempts(conn: &Connection, message_id: &str) -> Result<Vec<Attempt>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, attempted_at, response_status, error, latency_ms FROM webhook_attempts \
         WHERE message_id = ?1 ORDER BY attempt",
    )?;
    let mut rows = stmt.query(params![message_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Attempt {
            attempt: r.get(0)?,
            attempted_at: r.get(1)?,
            response_status: r.get(2)?,
            error: r.get(3)?,
            latency_ms: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        });
    }
    Ok(out)
}
