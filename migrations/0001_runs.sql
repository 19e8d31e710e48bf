-- Runs: one row per operation (failover, drill, failback, rollback) invoked on a runbook.
-- Forward-only: never edit a migration that has landed; add a new one.
--
-- Column order matters for `history`: SQLite stores a row's columns in declaration order and
-- spills long rows into overflow pages, so the small columns that lists and filters read come
-- first and the large ones (error, options, runbook_text) last. A scan then never walks the
-- overflow chain of a 10 kB runbook just to read `status`.
CREATE TABLE runs (
    id              TEXT NOT NULL PRIMARY KEY,
    runbook_name    TEXT NOT NULL,
    operation       TEXT NOT NULL
                    CHECK (operation IN ('failover', 'drill', 'failback', 'rollback')),
    mode            TEXT NOT NULL CHECK (mode IN ('planned', 'unplanned')),
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'running', 'paused', 'succeeded', 'failed',
                                      'cancelled', 'interrupted', 'rolled_back')),
    clock           TEXT NOT NULL CHECK (clock IN ('real', 'simulated')),
    operator        TEXT NOT NULL,
    host            TEXT NOT NULL,
    parent_run_id   TEXT NULL REFERENCES runs (id),
    created_at      TEXT NOT NULL,
    started_at      TEXT NULL,
    finished_at     TEXT NULL,
    declared_at     TEXT NULL,
    rto_seconds     REAL NULL,
    rpo_seconds     REAL NULL,
    runbook_path    TEXT NOT NULL,
    runbook_sha256  TEXT NOT NULL CHECK (length(runbook_sha256) = 64),
    -- Head of the event hash chain, written by every append in the same transaction, so that
    -- `audit verify` also notices events removed from the end of the chain.
    event_count     INTEGER NOT NULL DEFAULT 0 CHECK (event_count >= 0),
    last_event_hash TEXT NULL CHECK (last_event_hash IS NULL OR length(last_event_hash) = 64),
    final_hash      TEXT NULL CHECK (final_hash IS NULL OR length(final_hash) = 64),
    error           TEXT NULL,
    options         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(options)),
    runbook_text    TEXT NOT NULL
) STRICT;

CREATE INDEX runs_by_runbook ON runs (runbook_name, created_at);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_created ON runs (created_at);
