-- Claims: at most one active run per resource (a runbook, a DRS source server, ...), so a
-- second failover of the same servers is refused and told who holds them.
CREATE TABLE claims (
    resource   TEXT NOT NULL PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (id),
    claimed_at TEXT NOT NULL
) STRICT;

CREATE INDEX claims_by_run ON claims (run_id);
