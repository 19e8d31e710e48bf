-- PostgreSQL's dialect of ../0018_seals.sql.
CREATE TABLE seals (
    run_id  TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES runs (id),
    version BIGINT NOT NULL CHECK (version >= 1),
    rows    TEXT COLLATE "C" NOT NULL CHECK (CAST(rows AS jsonb) IS NOT NULL),
    digest  TEXT COLLATE "C" NOT NULL CHECK (length(digest) = 64)
);
