-- A big store stays fast (docs/decisions/0016-big-store.md): the counts of finished jobs kept
-- as they change, finishes per minute for the last day, and indexes for the dashboard's lists.
--
-- Unfinished jobs (pending, running) are few and the status index finds them, so they are
-- counted live; finished jobs are most of a big store, so their counts are kept here by
-- triggers, in the transaction of each change, whatever path made it (a finish, a rescue, a
-- cancel, a person's retry, pruning, a delete, a user's own SQL).

-- Finished jobs retained, per task, queue, tenant, schedule and final status ('' stands for a
-- job without a tenant or schedule: a key column must not be NULL for ON CONFLICT to match).
-- `runs` are those that started (completed_at - started_at is a run's duration), `duration`
-- their durations summed in whole microseconds, so adding and taking away never drifts.
-- One shard (0): SQLite has one writer at a time.
CREATE TABLE underway_tallies (
    shard    INTEGER NOT NULL,
    task     TEXT NOT NULL,
    queue    TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    schedule TEXT NOT NULL,
    status   TEXT NOT NULL,
    jobs     INTEGER NOT NULL DEFAULT 0,
    runs     INTEGER NOT NULL DEFAULT 0,
    duration INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, task, queue, tenant, schedule, status)
) WITHOUT ROWID;

INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
SELECT 0, task, queue, coalesce(tenant, ''), coalesce(schedule, ''), status, count(*),
       count(started_at),
       coalesce(sum(CAST(round((completed_at - started_at) * 1000000) AS INTEGER)), 0)
FROM underway_jobs WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY task, queue, coalesce(tenant, ''), coalesce(schedule, ''), status;

-- Jobs that reached a final state, per minute (its start, Unix seconds) of their completed_at
-- and tenant: the overview's chart. Events, not a snapshot: a retry or a prune takes nothing
-- back. Minutes older than a day are pruned with the jobs.
CREATE TABLE underway_minutes (
    minute    INTEGER NOT NULL,
    tenant    TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, tenant, shard)
) WITHOUT ROWID;

INSERT INTO underway_minutes (minute, tenant, shard, completed, failed, cancelled)
SELECT CAST(completed_at / 60 AS INTEGER) * 60, coalesce(tenant, ''), 0,
       sum(status = 'completed'), sum(status = 'failed'), sum(status = 'cancelled')
FROM underway_jobs
WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at IS NOT NULL
GROUP BY CAST(completed_at / 60 AS INTEGER), coalesce(tenant, '');

-- The common path, a job reaching its final state: one tally and one minute added.
-- The two update triggers fire on completed_at, not status: every statement that moves a job
-- into or out of a final state sets completed_at (finish, rescue, cancel, retry), and claims,
-- which change status a million times too, never do, so they call neither trigger (a row
-- trigger costs a few microseconds per row even when its WHEN is false).
CREATE TRIGGER underway_tally_finished
AFTER UPDATE OF completed_at ON underway_jobs
WHEN new.status IN ('completed', 'failed', 'cancelled')
     AND old.status NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
    VALUES (0, new.task, new.queue, coalesce(new.tenant, ''), coalesce(new.schedule, ''),
            new.status, 1, new.started_at IS NOT NULL,
            coalesce(CAST(round((new.completed_at - new.started_at) * 1000000) AS INTEGER), 0))
    ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
    SET jobs = jobs + 1, runs = runs + excluded.runs, duration = duration + excluded.duration;
    INSERT INTO underway_minutes (minute, tenant, shard, completed, failed, cancelled)
    SELECT CAST(new.completed_at / 60 AS INTEGER) * 60, coalesce(new.tenant, ''), 0,
           new.status = 'completed', new.status = 'failed', new.status = 'cancelled'
    WHERE new.completed_at IS NOT NULL
    ON CONFLICT (minute, tenant, shard) DO UPDATE
    SET completed = completed + excluded.completed, failed = failed + excluded.failed,
        cancelled = cancelled + excluded.cancelled;
END;

-- The rare path, a finished job changed (a person's retry, or any edit of its counted
-- columns): its old tally is taken back and its new one, if finished, added.
CREATE TRIGGER underway_tally_changed
AFTER UPDATE OF completed_at, task, queue, tenant, schedule ON underway_jobs
WHEN old.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
    VALUES (0, old.task, old.queue, coalesce(old.tenant, ''), coalesce(old.schedule, ''),
            old.status, -1, -(old.started_at IS NOT NULL),
            -coalesce(CAST(round((old.completed_at - old.started_at) * 1000000) AS INTEGER), 0))
    ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
    SET jobs = jobs - 1, runs = runs + excluded.runs, duration = duration + excluded.duration;
    INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
    SELECT 0, new.task, new.queue, coalesce(new.tenant, ''), coalesce(new.schedule, ''),
           new.status, 1, new.started_at IS NOT NULL,
           coalesce(CAST(round((new.completed_at - new.started_at) * 1000000) AS INTEGER), 0)
    WHERE new.status IN ('completed', 'failed', 'cancelled')
    ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
    SET jobs = jobs + 1, runs = runs + excluded.runs, duration = duration + excluded.duration;
    INSERT INTO underway_minutes (minute, tenant, shard, completed, failed, cancelled)
    SELECT CAST(new.completed_at / 60 AS INTEGER) * 60, coalesce(new.tenant, ''), 0,
           new.status = 'completed', new.status = 'failed', new.status = 'cancelled'
    WHERE new.status IN ('completed', 'failed', 'cancelled') AND new.status <> old.status
          AND new.completed_at IS NOT NULL
    ON CONFLICT (minute, tenant, shard) DO UPDATE
    SET completed = completed + excluded.completed, failed = failed + excluded.failed,
        cancelled = cancelled + excluded.cancelled;
END;

-- A job inserted already finished (an import, a user's own SQL) counts as one that finished.
CREATE TRIGGER underway_tally_inserted AFTER INSERT ON underway_jobs
WHEN new.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
    VALUES (0, new.task, new.queue, coalesce(new.tenant, ''), coalesce(new.schedule, ''),
            new.status, 1, new.started_at IS NOT NULL,
            coalesce(CAST(round((new.completed_at - new.started_at) * 1000000) AS INTEGER), 0))
    ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
    SET jobs = jobs + 1, runs = runs + excluded.runs, duration = duration + excluded.duration;
    INSERT INTO underway_minutes (minute, tenant, shard, completed, failed, cancelled)
    SELECT CAST(new.completed_at / 60 AS INTEGER) * 60, coalesce(new.tenant, ''), 0,
           new.status = 'completed', new.status = 'failed', new.status = 'cancelled'
    WHERE new.completed_at IS NOT NULL
    ON CONFLICT (minute, tenant, shard) DO UPDATE
    SET completed = completed + excluded.completed, failed = failed + excluded.failed,
        cancelled = cancelled + excluded.cancelled;
END;

-- Pruning and deleting take a finished job's tally back (its minute stays: it did finish).
CREATE TRIGGER underway_tally_deleted AFTER DELETE ON underway_jobs
WHEN old.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs, duration)
    VALUES (0, old.task, old.queue, coalesce(old.tenant, ''), coalesce(old.schedule, ''),
            old.status, -1, -(old.started_at IS NOT NULL),
            -coalesce(CAST(round((old.completed_at - old.started_at) * 1000000) AS INTEGER), 0))
    ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
    SET jobs = jobs - 1, runs = runs + excluded.runs, duration = duration + excluded.duration;
END;

-- The dashboard's lists, newest first: by queue (task, tenant and status have theirs).
CREATE INDEX underway_jobs_queue ON underway_jobs (queue, id);

-- The latest finished runs of each task and schedule (their state: ok, failing).
CREATE INDEX underway_jobs_task_runs ON underway_jobs (task, completed_at, id)
    WHERE status IN ('completed', 'failed') AND started_at IS NOT NULL;
CREATE INDEX underway_jobs_schedule_runs ON underway_jobs (schedule, completed_at, id)
    WHERE status IN ('completed', 'failed') AND started_at IS NOT NULL AND schedule IS NOT NULL;
