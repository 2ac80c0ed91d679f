-- The change feed (SPEC §6): every write_points transaction adds a row per
-- metric it wrote, with the earliest ts (µs), so that a serving instance
-- learns of points another process (`okrd ingest`) wrote. SQLite has one
-- writer at a time, so ids are assigned in commit order and readers tail
-- by id (store/changes.rs).
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin INTEGER NOT NULL,
    metric TEXT NOT NULL,
    earliest INTEGER NOT NULL,
    written_at INTEGER NOT NULL
);
CREATE INDEX changes_written_at ON changes (written_at);

-- Where the change feed stood when a transition was decided (see the
-- PostgreSQL migration).
ALTER TABLE alerts ADD COLUMN view_position INTEGER NOT NULL DEFAULT 0;
