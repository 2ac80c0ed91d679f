-- Revisions and check-ins (SPEC §4 "Revisions and check-ins").
-- Keep logically identical to migrations/postgres/0008_revisions_check_ins.sql.

-- Every definition a KR had (the fields its score and alerts depend on, as
-- JSON: definition::Definition), one row per start or reload that changed
-- it; `seq` numbers the rows of a KR from 1. `kind` says what the row was:
-- `first_seen`, `before_period` (a change before the period started: no
-- revision) or `revision` (a change while the period ran). `revision` is
-- the KR's revision number from this row on (0 until its first revision);
-- `changes` the changed fields (JSON [{field, from, to}]). A revision is
-- notified once: `notified_at` is set by the conditional update that
-- queues its deliveries.
CREATE TABLE kr_definitions (
    objective   TEXT    NOT NULL,
    key_result  TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    definition  TEXT    NOT NULL,
    changes     TEXT    NOT NULL,
    easier      INTEGER NOT NULL,
    notified_at INTEGER,
    PRIMARY KEY (objective, key_result, seq)
);
-- The revisions whose notice is still to queue, read after every scorecard:
-- a partial index keeps that read from scanning every definition.
CREATE INDEX kr_definitions_unnotified ON kr_definitions (recorded_at)
    WHERE kind = 'revision' AND notified_at IS NULL;

-- Each history row names the revision it was computed under.
ALTER TABLE kr_scores ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- A person's word on a KR: never part of its score.
CREATE TABLE check_ins (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    objective  TEXT    NOT NULL,
    key_result TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    confidence REAL    NOT NULL,
    note       TEXT    NOT NULL,
    author     TEXT
);
CREATE INDEX check_ins_kr ON check_ins (objective, key_result, at);
