-- Connector state, SQLite flavour. Keep it logically identical to
-- migrations/postgres/0002_connectors.sql. Timestamps are INTEGER
-- microseconds since the Unix epoch (UTC).

-- Connectors registered over the API (POST /api/v1/connectors). The
-- definition is the request body as sent, `${VAR}` unexpanded, so secrets
-- that come from the environment are never stored.
CREATE TABLE api_connectors (
    name       TEXT    PRIMARY KEY,
    definition TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per pull connector that has run, from YAML or the API. The row is
-- also the run lease: an instance runs a tick only after moving `last_tick`
-- forward while no unexpired lease is held, so each tick runs once however
-- many instances share the database.
CREATE TABLE connector_state (
    name            TEXT    PRIMARY KEY,
    last_tick       INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_run_at     INTEGER,
    last_success_at INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER,
    points_ingested INTEGER NOT NULL DEFAULT 0,
    -- The latest point ts the connector stored: `$1` of a SQL connector.
    watermark       INTEGER
);
