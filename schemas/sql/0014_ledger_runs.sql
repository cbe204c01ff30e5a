-- Cairn ledger, version 14: which run of a backup's ingest counts. A
-- backup whose ingest process stopped renewing its lease is taken over as a
-- new run under a new data key (`run`); runs are ordered (`run_order`, the
-- RUNS stream sequence of the lease write that named the run). The
-- manifest, catalogue and chunk list digests, the `backup.started` and the
-- `backup.ingested` of a run are not recorded once a later run was read.
ALTER TABLE backups ADD COLUMN IF NOT EXISTS run text;
ALTER TABLE backups ADD COLUMN IF NOT EXISTS run_order bigint;
