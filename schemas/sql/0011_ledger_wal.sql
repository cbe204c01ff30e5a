-- Cairn ledger, version 11: PostgreSQL point-in-time recovery. A base
-- backup records the WAL it needs (`backup.ingested`'s `wal`: timeline,
-- start segment, LSNs, when it ended), so that retention keeps that WAL and
-- restore knows how early it can recover. Each archived WAL file is a
-- backup of its own (source type `wal`), found by dataset and file name.
ALTER TABLE backups ADD COLUMN wal jsonb;
CREATE INDEX backups_wal_files ON backups (dataset, (source->>'name'))
    WHERE source->>'type' = 'wal';
