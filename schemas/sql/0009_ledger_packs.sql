-- Cairn ledger, version 9: packs. A pack is one stored object holding many
-- sealed chunks; `pack_chunks` (a projection of pack `object.sealed`) says
-- which chunk is where in which pack. `chunk_copies` and `chunk_marks` hold
-- pack ids beside chunk ids (both are 32-byte hashes in distinct domains):
-- a network holds a pack as it holds a chunk stored alone, and the collector
-- marks and deletes packs as it does chunks. Ingest deduplicates against a
-- chunk when one pack holding it is on every target network and condemned
-- on none.
CREATE TABLE pack_chunks (
    chunk_id bytea   NOT NULL,
    pack_id  bytea   NOT NULL,
    off      integer NOT NULL,
    len      integer NOT NULL,
    PRIMARY KEY (chunk_id, pack_id)
);
CREATE INDEX pack_chunks_pack ON pack_chunks (pack_id);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON pack_chunks TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON pack_chunks TO cairn_reader;
    END IF;
END $$;
