-- PostgreSQL's 0005 moves series' uniqueness onto an MD5 of the labels,
-- since its B-tree index rows are limited to 2,704 bytes. SQLite has no
-- such limit: UNIQUE (metric, labels) stays, and this migration only keeps
-- the two sets' versions in step.
SELECT 1;
