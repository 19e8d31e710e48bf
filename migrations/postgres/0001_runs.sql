-- PostgreSQL's dialect of ../0001_runs.sql (read that file for what each column means). The
-- two schemas stay column-for-column the same; `db migrate-to` copies rows between them.
-- Differences: BIGINT and DOUBLE PRECISION for INTEGER and REAL, JSON checked by a cast, and
-- every text column COLLATE "C" so that ordering (history's newest-first, timestamps as text)
-- is byte order as in SQLite, whatever the database's locale.
CREATE TABLE runs (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    runbook_name    TEXT COLLATE "C" NOT NULL,
    operation       TEXT COLLATE "C" NOT NULL
                    CHECK (operation IN ('failover', 'drill', 'failback', 'rollback')),
    mode            TEXT COLLATE "C" NOT NULL CHECK (mode IN ('planned', 'unplanned')),
    status          TEXT COLLATE "C" NOT NULL
                    CHECK (status IN ('pending', 'running', 'paused', 'succeeded', 'failed',
                                      'cancelled', 'interrupted', 'rolled_back')),
    clock           TEXT COLLATE "C" NOT NULL CHECK (clock IN ('real', 'simulated')),
    operator        TEXT COLLATE "C" NOT NULL,
    host            TEXT COLLATE "C" NOT NULL,
    parent_run_id   TEXT COLLATE "C" NULL REFERENCES runs (id),
    created_at      TEXT COLLATE "C" NOT NULL,
    started_at      TEXT COLLATE "C" NULL,
    finished_at     TEXT COLLATE "C" NULL,
    declared_at     TEXT COLLATE "C" NULL,
    rto_seconds     DOUBLE PRECISION NULL,
    rpo_seconds     DOUBLE PRECISION NULL,
    runbook_path    TEXT COLLATE "C" NOT NULL,
    runbook_sha256  TEXT COLLATE "C" NOT NULL CHECK (length(runbook_sha256) = 64),
    event_count     BIGINT NOT NULL DEFAULT 0 CHECK (event_count >= 0),
    last_event_hash TEXT COLLATE "C" NULL
                    CHECK (last_event_hash IS NULL OR length(last_event_hash) = 64),
    final_hash      TEXT COLLATE "C" NULL CHECK (final_hash IS NULL OR length(final_hash) = 64),
    error           TEXT COLLATE "C" NULL,
    options         TEXT COLLATE "C" NOT NULL DEFAULT '{}'
                    CHECK (CAST(options AS jsonb) IS NOT NULL),
    runbook_text    TEXT COLLATE "C" NOT NULL
);

CREATE INDEX runs_by_runbook ON runs (runbook_name, created_at);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_created ON runs (created_at);
