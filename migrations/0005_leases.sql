-- Leases: one driver per run (DESIGN section 6, rule 4). A released lease keeps its row so
-- that `fence` only ever grows: a stale driver's fence can never match again.
CREATE TABLE leases (
    run_id       TEXT NOT NULL PRIMARY KEY REFERENCES runs (id),
    owner        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    released_at  TEXT NULL,
    fence        INTEGER NOT NULL CHECK (fence >= 1)
) STRICT;
