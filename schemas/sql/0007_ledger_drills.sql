-- Cairn ledger, version 7: restore drills. A projection of `drill.completed`
-- and `drill.failed`, one row per drill (keyed by the event), so `cairn
-- drills` and `cairn health` read the latest result per dataset and the
-- last one that succeeded.
CREATE TABLE drills (
    event_id    text PRIMARY KEY,
    backup_id   text        NOT NULL,
    dataset     text        NOT NULL,
    ok          boolean     NOT NULL,
    pick        text        NOT NULL,
    target      text        NOT NULL,
    bytes       bigint      NOT NULL,
    files       bigint      NOT NULL,
    chunks      bigint      NOT NULL,
    duration_ms bigint      NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    reason      text,
    drilled_by  text        NOT NULL
);
CREATE INDEX drills_dataset ON drills (dataset, finished_at DESC);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON drills TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON drills TO cairn_reader;
    END IF;
END $$;
