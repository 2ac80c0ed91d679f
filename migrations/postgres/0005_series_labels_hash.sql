-- A label set may be up to 32 labels of 1,024-byte values (SPEC §3): more
-- than a B-tree index row holds (2,704 bytes). Series stay unique on
-- (metric, labels), through an index on the labels' MD5 rather than the
-- text itself; lookups compare the text too, so a hash collision can only
-- fail a write, never merge two series.
ALTER TABLE series DROP CONSTRAINT series_metric_labels_key;
CREATE UNIQUE INDEX series_metric_labels_md5 ON series (metric, md5(labels));
