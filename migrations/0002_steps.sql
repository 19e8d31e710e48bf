-- Steps of a run, in plan order. `kind` is a durable name (preflight, recovery_job,
-- snapshot_conversion, launch, lb_switch, dns_cutover, validate, reversed_replication,
-- a2_recovery, cleanup, ...): never rename one that has shipped. It carries no CHECK so that a
-- new step kind does not need a migration; `status` is a persisted state and does.
CREATE TABLE steps (
    run_id           TEXT NOT NULL REFERENCES runs (id),
    seq              INTEGER NOT NULL CHECK (seq >= 1),
    key              TEXT NOT NULL CHECK (key <> ''),
    kind             TEXT NOT NULL CHECK (kind <> ''),
    wave             TEXT NULL,
    depends_on       TEXT NOT NULL DEFAULT '[]'
                     CHECK (json_valid(depends_on) AND json_type(depends_on) = 'array'),
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'running', 'waiting_approval', 'succeeded',
                                       'failed', 'skipped', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at       TEXT NULL,
    finished_at      TEXT NULL,
    approved_by      TEXT NULL,
    approved_at      TEXT NULL,
    approval_comment TEXT NULL,
    skip_reason      TEXT NULL,
    error            TEXT NULL,
    input            TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(input)),
    output           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(output)),
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, key)
) STRICT;
