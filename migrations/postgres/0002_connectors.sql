-- Connector state, PostgreSQL flavour. Keep it logically identical to
-- migrations/sqlite/0002_connectors.sql.

-- Connectors registered over the API (POST /api/v1/connectors). The
-- definition is the request body as sent, `${VAR}` unexpanded, so secrets
-- that come from the environment are never stored.
CREATE TABLE api_connectors (
    name       text        PRIMARY KEY,
    definition text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One row per pull connector that has run, from YAML or the API. The row is
-- also the run lease: an instance runs a tick only after moving `last_tick`
-- forward while no unexpired lease is held, so each tick runs once however
-- many instances share the database.
CREATE TABLE connector_state (
    name            text        PRIMARY KEY,
    last_tick       timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    last_run_at     timestamptz,
    last_success_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    points_ingested bigint      NOT NULL DEFAULT 0,
    -- The latest point ts the connector stored: `$1` of a SQL connector.
    watermark       timestamptz
);
