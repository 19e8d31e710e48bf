-- PostgreSQL's dialect of ../0005_leases.sql.
CREATE TABLE leases (
    run_id       TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES runs (id),
    owner        TEXT COLLATE "C" NOT NULL,
    host         TEXT COLLATE "C" NOT NULL,
    pid          BIGINT NOT NULL,
    acquired_at  TEXT COLLATE "C" NOT NULL,
    heartbeat_at TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL,
    released_at  TEXT COLLATE "C" NULL,
    fence        BIGINT NOT NULL CHECK (fence >= 1)
);
