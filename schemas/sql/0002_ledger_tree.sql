-- Cairn ledger, version 2: the RFC 6962 Merkle tree over ledger_entries.
-- ledger_tree holds the tree's "stored hashes" in the layout of Go's
-- sumdb/tlog (and tlog_tiles): appending entry n (0-based, seq - 1) stores
-- the hashes it completes, at stored_hash_index(level, k) for the subtree of
-- entries [k * 2^level, (k + 1) * 2^level). From them any tree size's root
-- and any inclusion or consistency proof are a few reads. The audit-ledger
-- service fills existing logs after this migration (db.rs).
CREATE TABLE ledger_tree (
    idx  bigint PRIMARY KEY,
    hash bytea  NOT NULL CHECK (length(hash) = 32)
);

-- The head also names the tree's root at its size (SHA-256 of nothing for
-- the empty tree).
ALTER TABLE ledger_head ADD COLUMN tree_root bytea NOT NULL
    DEFAULT decode('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex');

CREATE TRIGGER ledger_tree_no_update BEFORE UPDATE OR DELETE ON ledger_tree
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_tree_no_truncate BEFORE TRUNCATE ON ledger_tree
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();
