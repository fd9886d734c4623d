-- Schedules: the rule lives in code; the store keeps what every scheduler shares.
CREATE TABLE {schema}.underway_schedules (
    name        text PRIMARY KEY,
    task        text NOT NULL,
    rule        text NOT NULL,
    anchor      timestamptz NOT NULL,
    last_slot   timestamptz,
    next_run    timestamptz,
    paused      boolean NOT NULL DEFAULT false,
    run_count   bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Which schedule made a job (NULL for ordinary jobs).
ALTER TABLE {schema}.underway_jobs ADD COLUMN schedule text;
CREATE INDEX underway_jobs_schedule ON {schema}.underway_jobs (schedule, id)
    WHERE schedule IS NOT NULL;
