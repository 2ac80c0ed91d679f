-- `test: welch` (SPEC §4 "Statistics that do not cry wolf"): a firing
-- counter-metric alert captures the earlier window it was tested against
-- (its points' count, mean and sample variance), so that each later
-- evaluation recomputes the bound against it. NULL for `test: threshold`
-- and stale-data alerts.
-- Keep logically identical to migrations/sqlite/0007_alert_reference_window.sql.
ALTER TABLE alerts ADD COLUMN reference_n integer;
ALTER TABLE alerts ADD COLUMN reference_mean double precision;
ALTER TABLE alerts ADD COLUMN reference_variance double precision;
