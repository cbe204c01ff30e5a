-- Cairn ledger, version 10: dataset keys (repository format 4). Each
-- dataset has its own key pair; its private key lives only on the networks
-- (`datasets/<fingerprint>`, wrapped to the repository's public key), never
-- here. This projection of `dataset.keyed` holds the public keys, each with
-- the writers' tag over (dataset tag, public key), so that ingest finds the
-- key to wrap a backup's data key to and a database owner cannot slip in
-- one of their own. `dataset.shredded` marks a dataset's keys destroyed.
CREATE TABLE dataset_keys (
    fingerprint text        PRIMARY KEY,
    tag         text        NOT NULL,
    public_key  text        NOT NULL,
    mac         text        NOT NULL,
    created_at  timestamptz NOT NULL,
    shredded_at timestamptz
);
CREATE INDEX dataset_keys_tag ON dataset_keys (tag, created_at);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON dataset_keys TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON dataset_keys TO cairn_reader;
    END IF;
END $$;
