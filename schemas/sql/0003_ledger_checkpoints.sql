-- Cairn ledger, version 3: the signed checkpoints issued for the log (C2SP
-- tlog-checkpoint in an Ed25519 signed note), kept for auditors and for
-- proofs. The signing key is never here; copies of the checkpoints leave the
-- database (the signer's state file, and later the networks and NATS).
CREATE TABLE ledger_checkpoints (
    size      bigint PRIMARY KEY,
    root      bytea  NOT NULL CHECK (length(root) = 32),
    note      bytea  NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();
