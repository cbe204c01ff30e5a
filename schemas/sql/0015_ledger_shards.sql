-- Cairn ledger, version 15: erasure-coded packs (`redundancy = "erasure
-- k/n"`). A network may hold one shard of a pack instead of all of it:
--   chunk_copies.shard    which shard it holds (NULL: the whole pack, as
--                         before), from `object.stored`;
--   chunk_copies.shard_k  how many shards rebuild the pack.
--   shard_digests         each shard file's SHA-256 and length, by index,
--                         as sealing made them (`object.sealed`): what
--                         verify, health and repair hold each network to.
ALTER TABLE chunk_copies ADD COLUMN IF NOT EXISTS shard smallint;
ALTER TABLE chunk_copies ADD COLUMN IF NOT EXISTS shard_k smallint;
CREATE TABLE IF NOT EXISTS shard_digests (
    path   text     COLLATE "C" NOT NULL,
    shard  smallint NOT NULL,
    k      smallint NOT NULL,
    n      smallint NOT NULL,
    sha256 text     NOT NULL,
    len    bigint   NOT NULL,
    PRIMARY KEY (path, shard)
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON shard_digests TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON shard_digests TO cairn_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_console') THEN
        GRANT SELECT ON shard_digests TO cairn_console;
    END IF;
END $$;
