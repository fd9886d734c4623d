-- Schedules: the rule lives in code; the store keeps what every scheduler shares.
CREATE TABLE underway_schedules (
    name        TEXT PRIMARY KEY,
    task        TEXT NOT NULL,
    rule        TEXT NOT NULL,              -- "every 300s" or "cron */5 * * * * (UTC)", for display
    anchor      REAL NOT NULL,              -- interval slots are anchor + k * every
    last_slot   REAL,                       -- the latest slot handled (fired or skipped)
    next_run    REAL,
    paused      INTEGER NOT NULL DEFAULT 0,
    run_count   INTEGER NOT NULL DEFAULT 0, -- jobs fired, including manual triggers
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

-- Which schedule made a job (NULL for ordinary jobs).
ALTER TABLE underway_jobs ADD COLUMN schedule TEXT;
CREATE INDEX underway_jobs_schedule ON underway_jobs (schedule, id) WHERE schedule IS NOT NULL;
