-- `history` lists newest first, `history --runbook NAME` too; `id` breaks ties so that the
-- index alone gives the order and a LIMIT stops the scan early (no temporary sort B-tree).
-- Replaces the two indexes of 0001, which ordered by created_at only.
DROP INDEX runs_by_runbook;
DROP INDEX runs_by_created;
CREATE INDEX runs_by_runbook ON runs (runbook_name, created_at, id);
CREATE INDEX runs_by_created ON runs (created_at, id);
