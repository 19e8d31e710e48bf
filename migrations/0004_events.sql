-- Events: the append-only audit trail, one hash chain per run (DESIGN section 6, rule 6).
-- hash = sha256_hex(prev_hash || canonical JSON of the event); the first event of a run has
-- prev_hash = 64 zeros. `run_seq` numbers a run's events 1, 2, 3... so that a removed event
-- shows as a gap. Credentials never go here.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    TEXT NOT NULL REFERENCES runs (id),
    run_seq   INTEGER NOT NULL CHECK (run_seq >= 1),
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind <> ''),
    actor     TEXT NOT NULL,
    step_key  TEXT NULL,
    prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash      TEXT NOT NULL CHECK (length(hash) = 64),
    data      TEXT NOT NULL CHECK (json_valid(data)),
    UNIQUE (run_id, run_seq)
) STRICT;

-- Append-only against mistakes. These triggers do not stop someone who edits the file on
-- purpose (they can drop them); the hash chain is what detects that.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
