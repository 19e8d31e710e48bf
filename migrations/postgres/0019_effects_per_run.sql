-- PostgreSQL only: an effect's ID is unique within its run, no longer within the store.
-- `db migrate-to` keeps every copied effect's ID, because the run's audit events and seal name
-- it, and two SQLite files migrated into one PostgreSQL database each have an effect 1. Every
-- lookup of an effect by ID names its run. New effects still take the next value of the
-- identity sequence, which the copy moves past every copied ID, so they are unique anyway.
-- (In a SQLite file the ID is the rowid, unique in the file; a copy into a SQLite file
-- refuses colliding effect IDs instead.)
ALTER TABLE effects DROP CONSTRAINT effects_pkey;
ALTER TABLE effects ADD PRIMARY KEY (run_id, id);
