-- Cairn ledger, version 5: legal holds. A projection of `backup.held` and
-- `backup.released` (the log keeps who held or released and why); retention
-- never deletes a backup that has a row here.
CREATE TABLE holds (
    backup_id text PRIMARY KEY,
    reason    text NOT NULL,
    held_by   text NOT NULL,
    held_at   timestamptz NOT NULL
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON holds TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON holds TO cairn_reader;
    END IF;
END $$;
