-- Cairn ledger, version 8: schedules added at run time. A projection of
-- `schedule.added` and `schedule.removed` (the log keeps who and when);
-- the retention scheduler fires these beside the configured ones.
CREATE TABLE schedules (
    dataset  text        NOT NULL,
    cron     text        NOT NULL,
    spec     jsonb       NOT NULL,
    added_by text        NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (dataset, cron)
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_ledger') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON schedules TO cairn_ledger;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_reader') THEN
        GRANT SELECT ON schedules TO cairn_reader;
    END IF;
END $$;
