-- Cairn ledger, version 6: the collector's marks. A projection of
-- `chunks.marked`, `chunks.revived`, `chunks.condemned` and `chunks.deleted`
-- (and of chunk `object.stored`, which revives a chunk written again).
-- `marked_at` is the collector's clock when it found the chunk referenced by
-- no backup; `condemned_at` is set while a sweep is about to delete it, and
-- ingest does not deduplicate against a condemned chunk.
CREATE TABLE chunk_marks (
    chunk_id     bytea       NOT NULL,
    network      text        NOT NULL,
    marked_at    timestamptz NOT NULL,
    condemned_at timestamptz,
    PRIMARY KEY (network, chunk_id)
);
CREATE INDEX chunk_marks_chunk ON chunk_marks (chunk_id);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_marks TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON chunk_marks TO cairn_reader;
    END IF;
END $$;
