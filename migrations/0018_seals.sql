-- The seal of a run (issue 18): a SHA-256 per row of what a report shows (the run row, each
-- step, each effect), and a digest over them all, rewritten by every store write in the same
-- transaction. `audit verify` recomputes the rows and names the one that disagrees. Runs
-- created before this migration have no seal and verify by their event chain alone; a sealed
-- run records `seal_version` in its `run_created` event, so removing its seal is detected.
-- Numbered 0018 (the issue) rather than 0008 so that it cannot collide with a parallel branch.
CREATE TABLE seals (
    run_id  TEXT NOT NULL PRIMARY KEY REFERENCES runs (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    rows    TEXT NOT NULL CHECK (json_valid(rows)),
    digest  TEXT NOT NULL CHECK (length(digest) = 64)
) STRICT;
