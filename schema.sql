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

-- migration: 4
-- List totals without counting: how many runs (and validations) match each
-- combination of equality filters, kept by triggers in the transaction of
-- every write, so no writer (create, update, the reaper, retention, a
-- future one) can forget it. `dims` says which columns are part of the key
-- (bit 1 contract_id, 2 pipeline_name, 4 status); a column outside the key
-- holds ''. A run without a pipeline_name counts only under keys without
-- bit 2, as `pipeline_name = X` never matches it. Rows may reach n = 0 and
-- stay: their number is bounded by the combinations that ever existed.
-- Every change is an upsert on the primary key (a decrement's row always
-- exists), so a write costs a few B-tree lookups, never a scan.
CREATE TABLE run_counts (
    dims          INTEGER NOT NULL,
    contract_id   TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    status        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (dims, contract_id, pipeline_name, status)
) STRICT, WITHOUT ROWID;

CREATE TABLE count_dims (dims INTEGER PRIMARY KEY) STRICT;
INSERT INTO count_dims (dims) VALUES (0), (1), (2), (3), (4), (5), (6), (7);

INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
    SELECT d.dims,
           iif(d.dims & 1, r.contract_id, ''),
           iif(d.dims & 2, r.pipeline_name, ''),
           iif(d.dims & 4, r.status, ''),
           count(*)
    FROM count_dims AS d CROSS JOIN runs AS r
    WHERE NOT (d.dims & 2 AND r.pipeline_name IS NULL)
    GROUP BY 1, 2, 3, 4;

CREATE TRIGGER run_counts_on_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 2, NEW.pipeline_name, ''),
               iif(dims & 4, NEW.status, ''), 1
        FROM count_dims WHERE NOT (dims & 2 AND NEW.pipeline_name IS NULL)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER run_counts_on_delete AFTER DELETE ON runs BEGIN
    INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 2, OLD.pipeline_name, ''),
               iif(dims & 4, OLD.status, ''), -1
        FROM count_dims WHERE NOT (dims & 2 AND OLD.pipeline_name IS NULL)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

-- Only the keys whose value changed move: a status change leaves the four
-- keys without a status alone.
CREATE TRIGGER run_counts_on_update AFTER UPDATE OF contract_id, pipeline_name, status ON runs
WHEN OLD.contract_id IS NOT NEW.contract_id OR OLD.pipeline_name IS NOT NEW.pipeline_name
     OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 2, OLD.pipeline_name, ''),
               iif(dims & 4, OLD.status, ''), -1
        FROM count_dims
        WHERE NOT (dims & 2 AND OLD.pipeline_name IS NULL)
          AND NOT ((dims & 1 = 0 OR OLD.contract_id IS NEW.contract_id)
               AND (dims & 2 = 0 OR OLD.pipeline_name IS NEW.pipeline_name)
               AND (dims & 4 = 0 OR OLD.status IS NEW.status))
        ON CONFLICT DO UPDATE SET n = n - 1;
    INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 2, NEW.pipeline_name, ''),
               iif(dims & 4, NEW.status, ''), 1
        FROM count_dims
        WHERE NOT (dims & 2 AND NEW.pipeline_name IS NULL)
          AND NOT ((dims & 1 = 0 OR OLD.contract_id IS NEW.contract_id)
               AND (dims & 2 = 0 OR OLD.pipeline_name IS NEW.pipeline_name)
               AND (dims & 4 = 0 OR OLD.status IS NEW.status))
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- The same for validations, keyed by contract_id (bit 1) and status (bit
-- 4); a list by run_id counts the run's few rows through its index.
CREATE TABLE validation_counts (
    dims        INTEGER NOT NULL,
    contract_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (dims, contract_id, status)
) STRICT, WITHOUT ROWID;

INSERT INTO validation_counts (dims, contract_id, status, n)
    SELECT d.dims, iif(d.dims & 1, v.contract_id, ''), iif(d.dims & 4, v.status, ''), count(*)
    FROM count_dims AS d CROSS JOIN validations AS v
    WHERE d.dims IN (0, 1, 4, 5)
    GROUP BY 1, 2, 3;

CREATE TRIGGER validation_counts_on_insert AFTER INSERT ON validations BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 4, NEW.status, ''), 1
        FROM count_dims WHERE dims IN (0, 1, 4, 5)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER validation_counts_on_delete AFTER DELETE ON validations BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 4, OLD.status, ''), -1
        FROM count_dims WHERE dims IN (0, 1, 4, 5)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER validation_counts_on_update AFTER UPDATE OF contract_id, status ON validations
WHEN OLD.contract_id IS NOT NEW.contract_id OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 4, OLD.status, ''), -1
        FROM count_dims WHERE dims IN (0, 1, 4, 5)
        ON CONFLICT DO UPDATE SET n = n - 1;
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 4, NEW.status, ''), 1
        FROM count_dims WHERE dims IN (0, 1, 4, 5)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Every pair of equality filters has an index that ends in the list order.
CREATE INDEX runs_by_pipeline_status   ON runs (pipeline_name, status, started_at DESC, id DESC);
CREATE INDEX runs_by_contract_pipeline ON runs (contract_id, pipeline_name, started_at DESC, id DESC);
CREATE INDEX validations_by_contract_status
    ON validations (contract_id, status, recorded_at DESC, id DESC);

-- migration: 5
-- Counters only for the keys an index cannot count cheaply (issue 16): no
-- filter, status, pipeline, and pipeline + status, each matching a large
-- share of all runs. Every key with contract_id is counted through an index
-- that starts with contract_id (a contract's runs, in the benchmark about
-- 1,000 of 1,000,000, count in well under a millisecond), and so are
-- validations by contract. A run insert does four counter upserts instead
-- of eight, none of them keyed by contract (those were spread over the
-- most pages), a validation two instead of four; at 1M runs creates went
-- 1.4-2.4x faster (BENCHMARKS.md, issue 16). The triggers read their
-- keys from count_dims, so removing rows there narrows them;
-- `query::COUNTED_DIMS` in the code must list the same keys.
DELETE FROM count_dims WHERE dims & 1;
DELETE FROM run_counts WHERE dims & 1;
DELETE FROM validation_counts WHERE dims & 1;

-- migration: 6
-- Webhooks, and the admin scope that manages them.
--
-- The admin scope: SQLite cannot change a CHECK in place, so api_keys is
-- copied into a table with the wider one (nothing refers to it by key).
CREATE TABLE api_keys_new (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    secret_hash  TEXT NOT NULL UNIQUE,         -- hex SHA-256 of the secret; never the secret
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;
INSERT INTO api_keys_new (id, name, scope, secret_hash, created_at, last_used_at, revoked_at)
    SELECT id, name, scope, secret_hash, created_at, last_used_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,  -- "whk_" + ULID
    url             TEXT NOT NULL,
    events          TEXT NOT NULL CHECK (json_valid(events) AND json_type(events) = 'array'),
    contract_id     TEXT,                       -- only this contract's events, when set
    format          TEXT NOT NULL CHECK (format IN ('standard', 'slack')),
    -- The signing secret itself: it must be usable to sign, so unlike an
    -- API key it cannot be stored as a hash.
    secret          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    disabled_at     TEXT,
    disabled_reason TEXT
) STRICT;

-- The outbox: one row per event per subscription, written in the
-- transaction of the change that caused it, so a committed change always
-- has its messages and a refused one never does. `body` is what is sent
-- and signed, fixed when the change is made; `seq` orders a
-- subscription's messages, which are delivered one at a time in that
-- order.
CREATE TABLE webhook_messages (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,       -- "msg_" + ULID: the webhook-id header
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    subject_id      TEXT NOT NULL,              -- the run or validation
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                       -- set while pending
    -- Retries stop this long (--webhook-retry-hours) after this: the
    -- creation, or the last redeliver.
    retry_from      TEXT NOT NULL,
    delivered_at    TEXT
) STRICT;
CREATE INDEX webhook_messages_pending ON webhook_messages (webhook_id, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_messages_by_webhook ON webhook_messages (webhook_id, seq DESC);

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    attempted_at    TEXT NOT NULL,
    response_status INTEGER,                    -- null when no answer came
    error           TEXT,                       -- why it failed, for a person
    latency_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, attempt);

-- migration: 7
-- Each run's validations counted by status on the run's own row (issue 16),
-- so that a page of runs reads no validation. Before, every run of a page
-- searched validations_by_run and read its validations' rows: 40% of a
-- contract page's time at 1M runs (BENCHMARKS.md). Kept by triggers in the
-- transaction of every write, as the list counters are; a validation's
-- run_id is only ever set when it is recorded, but an UPDATE is counted
-- too, so no writer can leave a run's counts wrong.
ALTER TABLE runs ADD COLUMN validations_passed  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN validations_failed  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN validations_warning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN validations_skipped INTEGER NOT NULL DEFAULT 0;

UPDATE runs
SET validations_passed = c.passed, validations_failed = c.failed,
    validations_warning = c.warning, validations_skipped = c.skipped
FROM (SELECT run_id,
             sum(status = 'passed') AS passed, sum(status = 'failed') AS failed,
             sum(status = 'warning') AS warning, sum(status = 'skipped') AS skipped
      FROM validations WHERE run_id IS NOT NULL GROUP BY run_id) AS c
WHERE runs.id = c.run_id;

CREATE TRIGGER run_validations_on_insert AFTER INSERT ON validations
WHEN NEW.run_id IS NOT NULL
BEGIN
    UPDATE runs
    SET validations_passed = validations_passed + (NEW.status = 'passed'),
        validations_failed = validations_failed + (NEW.status = 'failed'),
        validations_warning = validations_warning + (NEW.status = 'warning'),
        validations_skipped = validations_skipped + (NEW.status = 'skipped')
    WHERE id = NEW.run_id;
END;

CREATE TRIGGER run_validations_on_delete AFTER DELETE ON validations
WHEN OLD.run_id IS NOT NULL
BEGIN
    UPDATE runs
    SET validations_passed = validations_passed - (OLD.status = 'passed'),
        validations_failed = validations_failed - (OLD.status = 'failed'),
        validations_warning = validations_warning - (OLD.status = 'warning'),
        validations_skipped = validations_skipped - (OLD.status = 'skipped')
    WHERE id = OLD.run_id;
END;

CREATE TRIGGER run_validations_on_update AFTER UPDATE OF run_id, status ON validations
WHEN OLD.run_id IS NOT NEW.run_id OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE runs
    SET validations_passed = validations_passed - (OLD.status = 'passed'),
        validations_failed = validations_failed - (OLD.status = 'failed'),
        validations_warning = validations_warning - (OLD.status = 'warning'),
        validations_skipped = validations_skipped - (OLD.status = 'skipped')
    WHERE id = OLD.run_id;
    UPDATE runs
    SET validations_passed = validations_passed + (NEW.status = 'passed'),
        validations_failed = validations_failed + (NEW.status = 'failed'),
        validations_warning = validations_warning + (NEW.status = 'warning'),
        validations_skipped = validations_skipped + (NEW.status = 'skipped')
    WHERE id = NEW.run_id;
END;

-- migration: 8
-- Counters for a contract alone, and for a contract with a pipeline, again
-- (issue 16): a list of one contract (the dashboard's runs page among
-- them) or of a contract's runs by one pipeline no longer counts the
-- contract's rows for `total`, which was about a third of its SQLite time
-- at 1M runs. Contracts are loaded by few pipelines, so both keys stay few
-- and their pages hot, unlike the keys with a status that migration 5
-- dropped for good. Validations have no pipeline: their triggers read only
-- keys 0, 1, 4 and 5 of count_dims. `query::COUNTED_DIMS` lists the keys.
INSERT INTO count_dims (dims) VALUES (1), (3);
INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
    SELECT 1, contract_id, '', '', count(*) FROM runs GROUP BY contract_id;
INSERT INTO run_counts (dims, contract_id, pipeline_name, status, n)
    SELECT 3, contract_id, pipeline_name, '', count(*) FROM runs
    WHERE pipeline_name IS NOT NULL GROUP BY contract_id, pipeline_name;
INSERT INTO validation_counts (dims, contract_id, status, n)
    SELECT 1, contract_id, '', count(*) FROM validations GROUP BY contract_id;

-- migration: 9
-- Checks of a column against a few values as comparisons, not IN lists
-- (issue 16). SQLite codes `x IN (a, b, c)` over more than two constants
-- as a temporary B-tree that it builds, fills and frees each time it
-- checks a row: two per create (the run's status, its event's type),
-- 3.4% of the writer's samples in a profile of creates (BENCHMARKS.md,
-- "Get run in one statement, and fewer temporary B-trees"). The
-- comparisons accept exactly the same values, so the text of the CHECKs
-- is rewritten in place, as SQLite documents for constraints
-- the rows already satisfy ("Making Other Kinds Of Table Schema Changes"),
-- rather than rebuilding tables of a million rows. That procedure bumps
-- the schema cookie, so that every connection parses the new text: the
-- trigger changes below do that too, in the same transaction. A text not
-- found (a schema edited by hand) is left as it is: still correct.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (status IN (''pending'', ''running'', ''completed'', ''failed'', ''cancelled''))',
    'CHECK (status = ''pending'' OR status = ''running'' OR status = ''completed''
                         OR status = ''failed'' OR status = ''cancelled'')')
WHERE type = 'table' AND name = 'runs';
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (status IN (''passed'', ''failed'', ''warning'', ''skipped''))',
    'CHECK (status = ''passed'' OR status = ''failed''
                                         OR status = ''warning'' OR status = ''skipped'')')
WHERE type = 'table' AND name = 'validations';
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (type IN (''created'', ''status_changed'', ''updated'', ''heartbeat_expired''))',
    'CHECK (type = ''created'' OR type = ''status_changed'' OR type = ''updated''
                       OR type = ''heartbeat_expired'')')
WHERE type = 'table' AND name = 'run_events';
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (state IN (''pending'', ''delivered'', ''failed''))',
    'CHECK (state = ''pending'' OR state = ''delivered'' OR state = ''failed'')')
WHERE type = 'table' AND name = 'webhook_messages';
PRAGMA writable_schema = RESET;

-- The validation counters' keys (0, 1 and 4 of count_dims) are those
-- without bit 2 (the pipeline, which validations do not have): a scan of
-- count_dims' few rows instead of an IN list built per validation.
DROP TRIGGER validation_counts_on_insert;
DROP TRIGGER validation_counts_on_delete;
DROP TRIGGER validation_counts_on_update;

CREATE TRIGGER validation_counts_on_insert AFTER INSERT ON validations BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 4, NEW.status, ''), 1
        FROM count_dims WHERE dims & 2 = 0
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER validation_counts_on_delete AFTER DELETE ON validations BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 4, OLD.status, ''), -1
        FROM count_dims WHERE dims & 2 = 0
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER validation_counts_on_update AFTER UPDATE OF contract_id, status ON validations
WHEN OLD.contract_id IS NOT NEW.contract_id OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, OLD.contract_id, ''), iif(dims & 4, OLD.status, ''), -1
        FROM count_dims WHERE dims & 2 = 0
        ON CONFLICT DO UPDATE SET n = n - 1;
    INSERT INTO validation_counts (dims, contract_id, status, n)
        SELECT dims, iif(dims & 1, NEW.contract_id, ''), iif(dims & 4, NEW.status, ''), 1
        FROM count_dims WHERE dims & 2 = 0
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
