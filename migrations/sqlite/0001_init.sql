-- okrd schema, SQLite flavour. Keep it logically identical to
-- migrations/postgres/0001_init.sql.
--
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC): SQLite has
-- no timestamp type, and integers sort and compare exactly.

-- One row per (metric, exact label set). `labels` is SeriesKey::labels_json(),
-- canonical (keys sorted), so text equality is label-set equality.
CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    metric TEXT    NOT NULL,
    labels TEXT    NOT NULL,
    UNIQUE (metric, labels)
);

-- No foreign key to series: only the store writes either table, series rows
-- are never deleted, and a per-row check would slow bulk ingest.
-- WITHOUT ROWID: the primary key is the table's only access path, so storing
-- the rows in its B-tree halves the writes per point.
CREATE TABLE points (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    value     REAL    NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

-- A KR's score history: one row per change (see Store::record_score).
CREATE TABLE kr_scores (
    objective  TEXT    NOT NULL,
    key_result TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    value      REAL,
    progress   REAL,
    score      REAL    NOT NULL,
    expected   REAL    NOT NULL,
    status     TEXT    NOT NULL,
    PRIMARY KEY (objective, key_result, at)
) WITHOUT ROWID;
