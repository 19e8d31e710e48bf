-- PostgreSQL's dialect of ../0002_steps.sql.
CREATE TABLE steps (
    run_id           TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    seq              BIGINT NOT NULL CHECK (seq >= 1),
    key              TEXT COLLATE "C" NOT NULL CHECK (key <> ''),
    kind             TEXT COLLATE "C" NOT NULL CHECK (kind <> ''),
    wave             TEXT COLLATE "C" NULL,
    depends_on       TEXT COLLATE "C" NOT NULL DEFAULT '[]'
                     CHECK (jsonb_typeof(CAST(depends_on AS jsonb)) = 'array'),
    status           TEXT COLLATE "C" NOT NULL
                     CHECK (status IN ('pending', 'running', 'waiting_approval', 'succeeded',
                                       'failed', 'skipped', 'cancelled')),
    attempts         BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at       TEXT COLLATE "C" NULL,
    finished_at      TEXT COLLATE "C" NULL,
    approved_by      TEXT COLLATE "C" NULL,
    approved_at      TEXT COLLATE "C" NULL,
    approval_comment TEXT COLLATE "C" NULL,
    skip_reason      TEXT COLLATE "C" NULL,
    error            TEXT COLLATE "C" NULL,
    input            TEXT COLLATE "C" NOT NULL DEFAULT '{}' CHECK (CAST(input AS jsonb) IS NOT NULL),
    output           TEXT COLLATE "C" NOT NULL DEFAULT '{}' CHECK (CAST(output AS jsonb) IS NOT NULL),
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, key)
);
