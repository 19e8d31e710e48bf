-- PostgreSQL's dialect of ../0006_claims.sql.
CREATE TABLE claims (
    resource   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    claimed_at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX claims_by_run ON claims (run_id);
