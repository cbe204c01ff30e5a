-- Cairn ledger, version 14: which run of a backup's ingest counts. A
-- backup whose ingest process stopped renewing its lease is taken over as a
-- new run (`backup.started` names it); the manifest, catalogue and chunk
-- list digests and the `backup.ingested` of an earlier run are not
-- recorded once a later one started.
ALTER TABLE backups ADD COLUMN IF NOT EXISTS run text;
