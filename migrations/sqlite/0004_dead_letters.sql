-- Kafka dead letters, SQLite flavour. Keep it logically identical to
-- migrations/postgres/0004_dead_letters.sql.

-- Messages a `kafka` connector could not read as points (SPEC §3): where
-- each came from, why it was rejected, and its raw payload, cut to a size
-- cap (`payload_size` is the size before the cut). One row per message:
-- a redelivered message is dead-lettered once. `received_at` is integer
-- microseconds since the Unix epoch, like every SQLite timestamp here.
CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY,
    connector       TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    -- A bounded category (invalid_json, invalid_shape, invalid_ts, ...).
    reason          TEXT    NOT NULL,
    -- What exactly is wrong, in one phrase.
    error           TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    payload_size    INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    UNIQUE (connector, topic, kafka_partition, kafka_offset)
);
