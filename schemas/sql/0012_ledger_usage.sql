-- Cairn ledger, version 12: what each network holds and what was asked of
-- it, for `cairn cost` and for quotas counted from the ledger rather than
-- per process.
--   network_objects  one row per object on a network (from `object.stored`
--                    and `objects.recovered`), gone with `object.deleted`,
--                    `chunks.deleted`, and the backup metadata that
--                    `backup.forgotten`, `backup.left` and `dataset.shredded`
--                    delete. `backup_id` is the backup that first stored it
--                    there: a dataset's share is what its backups added.
--   network_traffic  `network.traffic`: requests and bytes each way, per
--                    network, per recording process.
-- Both are filled from the log's existing entries when this migration runs
-- (`cairn_ledger::usage::backfill`). `backups.rerouted` keeps the target
-- networks a quota turned a backup away from (`backup.ingested`).
ALTER TABLE backups ADD COLUMN rerouted jsonb;
CREATE TABLE network_objects (
    network   text        NOT NULL,
    path      text        COLLATE "C" NOT NULL,
    len       bigint      NOT NULL,
    backup_id text        NOT NULL,
    stored_at timestamptz NOT NULL,
    PRIMARY KEY (network, path)
);
CREATE INDEX network_objects_backup ON network_objects (backup_id);
-- A network's total is read on every quota check: from the index alone.
CREATE INDEX network_objects_len ON network_objects (network) INCLUDE (len);
CREATE TABLE network_traffic (
    event_id      text        NOT NULL,
    network       text        NOT NULL,
    purpose       text        NOT NULL,
    at            timestamptz NOT NULL,
    gets          bigint      NOT NULL,
    puts          bigint      NOT NULL,
    heads         bigint      NOT NULL,
    lists         bigint      NOT NULL,
    deletes       bigint      NOT NULL,
    locks         bigint      NOT NULL,
    bytes_read    bigint      NOT NULL,
    bytes_written bigint      NOT NULL,
    PRIMARY KEY (event_id, network)
);
CREATE INDEX network_traffic_at ON network_traffic (network, at);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON network_objects, network_traffic TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON network_objects, network_traffic TO cairn_reader;
    END IF;
END $$;
