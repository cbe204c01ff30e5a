-- Cairn ledger, version 13: the ops console's own role. `cairn console`
-- reads the ledger to show it and changes nothing there (its actions are
-- events the ledger writer records, and run as the stage code they belong
-- to, as cairn_reader), so it may SELECT what its pages read (the backups,
-- holds, drills, schedules, the log with its tree and checkpoints for
-- compliance proofs, digests and copies for a backup's health, what each
-- network holds) and no more:
--   cairn_console  not the wrapped dataset keys, nor the collector's marks.
-- A later migration that adds a table the console shows grants it here too.
DO $$
BEGIN
    BEGIN
        CREATE ROLE cairn_console NOLOGIN;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;
        WHEN insufficient_privilege THEN
            RAISE WARNING 'cannot create role cairn_console (no CREATEROLE): create it, then re-grant (deploy/README.md)';
    END;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_console') THEN
        GRANT SELECT ON backups, holds, drills, schedules, ledger_entries, ledger_tree,
            ledger_checkpoints, ledger_head, object_digests, chunk_copies, pack_chunks,
            network_objects, network_traffic, schema_migrations TO cairn_console;
    END IF;
END $$;
