-- PostgreSQL's dialect of ../0007_history_indexes.sql.
DROP INDEX runs_by_runbook;
DROP INDEX runs_by_created;
CREATE INDEX runs_by_runbook ON runs (runbook_name, created_at, id);
CREATE INDEX runs_by_created ON runs (created_at, id);
