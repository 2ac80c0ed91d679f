-- The change feed (SPEC §6): every write_points transaction adds a row per
-- metric it wrote, with the earliest ts, so that every instance learns of
-- points written by another process within a second.
--
-- Ids from a sequence are not handed out in commit order, so readers do not
-- tail by id. They tail by the writing transaction's id: every transaction
-- below a snapshot's xmin has ended, so a reader that has read every row of
-- txid >= its last xmin has read every row of a transaction that ended
-- before that snapshot (store/changes.rs).
CREATE TABLE changes (
    id BIGSERIAL PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    origin BIGINT NOT NULL,
    metric TEXT NOT NULL,
    earliest TIMESTAMPTZ NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX changes_txid ON changes (txid);
CREATE INDEX changes_written_at ON changes (written_at);

-- Where the change feed stood when a transition was decided: a transition
-- decided from an older view than the alert's last one is refused, so an
-- instance that has not yet seen a point cannot undo what another decided
-- from it.
ALTER TABLE alerts ADD COLUMN view_position BIGINT NOT NULL DEFAULT 0;
