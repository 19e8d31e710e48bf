-- Effects: the write-ahead log of mutating AWS calls (DESIGN section 6, rule 2). A row is
-- written in state 'intent' and committed before the call; the outcome is recorded after it.
-- An intent that is still open on resume is reconciled against AWS, never blindly re-sent.
CREATE TABLE effects (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL,
    step_key        TEXT NOT NULL,
    -- Deterministic "<run>/<step>/<attempt>/<n>": the same call can never be logged twice.
    idempotency_key TEXT NOT NULL UNIQUE,
    operation       TEXT NOT NULL CHECK (operation <> ''),
    account         TEXT NOT NULL,
    region          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('intent', 'done', 'failed', 'reconciled')),
    aws_request_id  TEXT NULL,
    created_at      TEXT NOT NULL,
    completed_at    TEXT NULL,
    error           TEXT NULL,
    request         TEXT NOT NULL CHECK (json_valid(request)),
    response        TEXT NULL CHECK (response IS NULL OR json_valid(response)),
    FOREIGN KEY (run_id, step_key) REFERENCES steps (run_id, key)
) STRICT;

CREATE INDEX effects_by_step ON effects (run_id, step_key);
CREATE INDEX effects_open ON effects (run_id) WHERE state = 'intent';
