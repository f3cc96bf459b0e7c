-- The one source of griot-registry's database schema.
--
-- Each section below that starts with a "-- migration: N" line is applied once, in order, inside a
-- transaction, to any database whose PRAGMA user_version is below N; the
-- version is then set to N in the same transaction. Sections are append-only:
-- never edit one that has shipped, add a new one that alters what is there.
--
-- Timestamps are TEXT in one fixed format, RFC 3339 UTC with microseconds
-- ("2024-01-15T10:00:00.000000Z"), so that text order is time order.

-- migration: 1
CREATE TABLE runs (
    id            TEXT PRIMARY KEY NOT NULL,   -- "run_" + ULID
    contract_id   TEXT NOT NULL,
    pipeline_name TEXT,
    pipeline_id   TEXT,
    status        TEXT NOT NULL
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    metadata      TEXT NOT NULL DEFAULT '{}'   -- a JSON object
                  CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    started_at    TEXT NOT NULL,
    completed_at  TEXT,
    created_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

-- The list endpoint answers newest started_at first, ties broken by id; each
-- filter leads an index that ends in that order, so a filtered page is an
-- index range scan, not a sort of the whole table.
CREATE INDEX runs_by_started        ON runs (started_at DESC, id DESC);
CREATE INDEX runs_by_contract       ON runs (contract_id, started_at DESC, id DESC);
CREATE INDEX runs_by_pipeline       ON runs (pipeline_name, started_at DESC, id DESC);
CREATE INDEX runs_by_status         ON runs (status, started_at DESC, id DESC);
CREATE INDEX runs_by_contract_status ON runs (contract_id, status, started_at DESC, id DESC);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    secret_hash  TEXT NOT NULL UNIQUE,         -- hex SHA-256 of the secret; never the secret
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

-- migration: 2
CREATE TABLE validations (
    id            TEXT PRIMARY KEY NOT NULL,   -- "val_" + ULID
    contract_id   TEXT NOT NULL,
    run_id        TEXT REFERENCES runs (id),
    status        TEXT NOT NULL CHECK (status IN ('passed', 'failed', 'warning', 'skipped')),
    errors        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(errors)),
    warnings      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(warnings)),
    metrics       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    -- Copied out of metrics so that stats average it without parsing JSON.
    duration_ms   INTEGER,
    recorded_at   TEXT NOT NULL,
    recorded_by   TEXT NOT NULL
) STRICT;

CREATE INDEX validations_by_recorded ON validations (recorded_at DESC, id DESC);
CREATE INDEX validations_by_contract ON validations (contract_id, recorded_at DESC, id DESC);
CREATE INDEX validations_by_run      ON validations (run_id, recorded_at, id);
CREATE INDEX validations_by_status   ON validations (status, recorded_at DESC, id DESC);

-- One row per error code per validation, so that "most common errors" is a
-- GROUP BY over an index rather than a walk through every errors array.
CREATE TABLE validation_errors (
    validation_id TEXT NOT NULL REFERENCES validations (id) ON DELETE CASCADE,
    contract_id   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    code          TEXT NOT NULL,
    message       TEXT NOT NULL
) STRICT;

CREATE INDEX validation_errors_by_contract ON validation_errors (contract_id, recorded_at, code);

-- migration: 3
-- Run lifecycle: versions for optimistic concurrency, heartbeats, the event
-- history, and idempotent creates.
ALTER TABLE runs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN heartbeat_timeout_seconds INTEGER;
ALTER TABLE runs ADD COLUMN last_heartbeat_at TEXT;
-- When a pending or running run with a heartbeat timeout is overdue:
-- (last heartbeat, or start) + timeout. NULL otherwise, so the partial index
-- holds only runs that can go stale.
ALTER TABLE runs ADD COLUMN heartbeat_deadline TEXT;
CREATE INDEX runs_by_heartbeat_deadline ON runs (heartbeat_deadline)
    WHERE heartbeat_deadline IS NOT NULL;

CREATE TABLE run_events (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    type        TEXT NOT NULL
                CHECK (type IN ('created', 'status_changed', 'updated', 'heartbeat_expired')),
    from_status TEXT,
    to_status   TEXT,
    changes     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(changes)),
    actor       TEXT NOT NULL,
    occurred_at TEXT NOT NULL
) STRICT;
CREATE INDEX run_events_by_run ON run_events (run_id, id);

-- Runs that existed before the history did get their creation event, so
-- every run has one.
INSERT INTO run_events (run_id, type, to_status, actor, occurred_at)
    SELECT id, 'created', status, created_by, started_at FROM runs ORDER BY started_at, id;

CREATE TABLE idempotency_keys (
    api_key_id      INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    run_id          TEXT NOT NULL REFERENCES runs (id),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
) STRICT;
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
