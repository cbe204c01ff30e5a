-- Cairn ledger, version 1.
-- ledger_entries is append-only: every event of every stage, exactly once,
-- as the exact bytes that were hashed. The other tables are projections of
-- it (rebuildable by replaying the EVENTS stream) that the CLI and the stages
-- query.

CREATE TABLE ledger_entries (
    seq         bigint PRIMARY KEY,          -- 1, 2, 3, ... without gaps
    event_id    text   NOT NULL UNIQUE,      -- dedupe of JetStream redeliveries
    kind        text   NOT NULL,
    backup_id   text   NOT NULL,
    entry       bytea  NOT NULL,             -- the event as received (MessagePack)
    leaf_hash   bytea  NOT NULL,             -- SHA-256(0x00 || entry), RFC 6962
    chain_hash  bytea  NOT NULL,             -- SHA-256(previous chain_hash || leaf_hash)
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_backup ON ledger_entries (backup_id);

-- The head: size and chain hash after the last entry.
CREATE TABLE ledger_head (
    id         int    PRIMARY KEY CHECK (id = 1),
    size       bigint NOT NULL,
    chain_hash bytea  NOT NULL
);
INSERT INTO ledger_head VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Defence in depth, not the proof: refuse edits of the log itself.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- Projection: one row per backup.
CREATE TABLE backups (
    backup_id    text PRIMARY KEY,
    dataset      text NOT NULL DEFAULT '',
    tags         text[] NOT NULL DEFAULT '{}',
    source       jsonb,
    networks     text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL,
    requested_at timestamptz,
    requested_by text NOT NULL DEFAULT '',
    finished_at  timestamptz,
    stats        jsonb,
    outcome      jsonb
);
CREATE INDEX backups_dataset ON backups (dataset, requested_at DESC);

-- Projection: the digest every stored object must have (from object.sealed).
CREATE TABLE object_digests (
    path   text PRIMARY KEY,
    sha256 text   NOT NULL,
    len    bigint NOT NULL
);

-- Projection: which network holds which chunk (dedup index for ingest).
CREATE TABLE chunk_copies (
    chunk_id bytea NOT NULL,
    network  text  NOT NULL,
    PRIMARY KEY (chunk_id, network)
);
