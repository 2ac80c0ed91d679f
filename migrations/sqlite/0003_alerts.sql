-- Alert state and the notification outbox (SPEC §4 "Counter-metric alert").
-- Keep logically identical to migrations/postgres/0003_alerts.sql.

-- One row per alert subject: a KR's counter metric, or '' for the KR's
-- stale-data alert. `episode` counts firings; every transition is decided
-- by a conditional update of this row, in the transaction that also queues
-- its deliveries.
CREATE TABLE alerts (
    objective    TEXT    NOT NULL,
    key_result   TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,             -- counter_metric | stale_data
    team         TEXT    NOT NULL,
    state        TEXT    NOT NULL,             -- firing | resolved
    episode      INTEGER NOT NULL,
    reference    REAL,                         -- counter value captured at firing
    fired_at     INTEGER NOT NULL,             -- µs since the Unix epoch
    resolved_at  INTEGER,
    last_sent_at INTEGER NOT NULL,
    repeats      INTEGER NOT NULL DEFAULT 0,
    details      TEXT    NOT NULL,             -- JSON: the latest AlertEvent
    PRIMARY KEY (objective, key_result, subject)
);

-- One row per (transition, notifier): pending until sent, retried with
-- backoff, failed after the last attempt.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    objective       TEXT    NOT NULL,
    key_result      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    episode         INTEGER NOT NULL,
    event           TEXT    NOT NULL,          -- firing | repeat | resolved
    seq             INTEGER NOT NULL,          -- the repeat's number; 0 otherwise
    notifier        TEXT    NOT NULL,
    payload         TEXT    NOT NULL,          -- JSON AlertEvent
    status          TEXT    NOT NULL,          -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (objective, key_result, subject, episode, event, seq, notifier)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
