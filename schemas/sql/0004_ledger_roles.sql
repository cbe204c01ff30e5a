-- Cairn ledger, version 4: least privilege. Processes connect as whatever
-- login the operator gives them and then take one of these roles (SET ROLE,
-- `cairn_audit_ledger::db::Role`), so even a process running as the owner
-- works with no more than it needs:
--   cairn_ledger  the ledger writer and the checkpoint signer: the log
--                 (entries, tree, checkpoints) may only be read and
--                 appended to; the head and the projections are its own.
--   cairn_reader  every other stage and the CLI's reads: SELECT only.
-- Roles belong to the whole PostgreSQL cluster (several Cairn databases share
-- them); the grants are per database. A migrating login without CREATEROLE
-- leaves the roles to the operator (deploy/README.md) and grants to those
-- that exist. The append-only triggers stay: they also stop the owner, by
-- mistake; the signed checkpoints are the proof.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['cairn_ledger', 'cairn_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot create role % (no CREATEROLE): create it, then re-grant (deploy/README.md)', r;
        END;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT ON ledger_entries, ledger_tree, ledger_checkpoints TO cairn_ledger;
        GRANT SELECT, UPDATE ON ledger_head TO cairn_ledger;
        GRANT SELECT, INSERT, UPDATE, DELETE ON backups, object_digests, chunk_copies TO cairn_ledger;
        GRANT SELECT ON schema_migrations TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON ledger_entries, ledger_tree, ledger_checkpoints, ledger_head,
            backups, object_digests, chunk_copies, schema_migrations TO cairn_reader;
    END IF;
END $$;
