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
-- One row per connection (shard: its backend pid), as the counters of 0006: a connection only
-- ever adds to its own rows, so no transaction waits on another's tally. A shard's counts may
-- go below zero (a job finished by one connection, pruned by another); their sum is exact.
-- Pruning folds the rows of connections that are gone into shard 0.
CREATE TABLE {schema}.underway_tallies (
    shard    integer NOT NULL,
    task     text NOT NULL,
    queue    text NOT NULL,
    tenant   text NOT NULL,
    schedule text NOT NULL,
    status   text NOT NULL,
    jobs     bigint NOT NULL DEFAULT 0,
    runs     bigint NOT NULL DEFAULT 0,
    duration bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, task, queue, tenant, schedule, status)
);

INSERT INTO {schema}.underway_tallies (shard, task, queue, tenant, schedule, status, jobs, runs,
                                       duration)
SELECT 0, task, queue, coalesce(tenant, ''), coalesce(schedule, ''), status, count(*),
       count(started_at),
       coalesce(sum(round(extract(epoch FROM completed_at - started_at) * 1000000)), 0)::bigint
FROM {schema}.underway_jobs WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY task, queue, coalesce(tenant, ''), coalesce(schedule, ''), status;

-- Jobs that reached a final state, per minute (its start, Unix seconds) of their completed_at
-- and tenant: the overview's chart. Events, not a snapshot: a retry or a prune takes nothing
-- back. Sharded like the tallies; minutes older than a day are pruned with the jobs.
CREATE TABLE {schema}.underway_minutes (
    minute    bigint NOT NULL,
    tenant    text NOT NULL,
    shard     integer NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, tenant, shard)
);

INSERT INTO {schema}.underway_minutes (minute, tenant, shard, completed, failed, cancelled)
SELECT (floor(extract(epoch FROM completed_at) / 60) * 60)::bigint, coalesce(tenant, ''), 0,
       count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'cancelled')
FROM {schema}.underway_jobs
WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at IS NOT NULL
GROUP BY 1, 2;

-- One function for inserts, updates and deletes, per statement over its transition tables
-- (a finish of a hundred jobs adds once), JIT off as in the counters' functions: rows that
-- were finished are taken back, rows that are finished are added, so any change is counted
-- right; a row that reached a final state in the statement also counts in its minute. Each
-- event has its own branch: a statement may only name the transition tables its event has.
CREATE FUNCTION {schema}.underway_tally() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Jobs are enqueued pending: only a user's own SQL inserts finished ones.
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled')) THEN
            RETURN NULL;
        END IF;
        INSERT INTO {schema}.underway_tallies AS t (shard, task, queue, tenant, schedule,
                                                    status, jobs, runs, duration)
        SELECT pg_backend_pid(), task, queue, tenant, schedule, status, sum(jobs), sum(runs),
               sum(duration)
        FROM (
            SELECT task, queue, coalesce(tenant, '') AS tenant, coalesce(schedule, '') AS schedule,
                   status, 1 AS jobs, (started_at IS NOT NULL)::int AS runs,
                   coalesce(round(extract(epoch FROM completed_at - started_at) * 1000000), 0)
                       AS duration
            FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled')
        ) AS changed
        GROUP BY task, queue, tenant, schedule, status
        ORDER BY task, queue, tenant, schedule, status
        ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
        SET jobs = t.jobs + excluded.jobs, runs = t.runs + excluded.runs,
            duration = t.duration + excluded.duration;
        INSERT INTO {schema}.underway_minutes AS m (minute, tenant, shard, completed, failed,
                                                    cancelled)
        SELECT (floor(extract(epoch FROM n.completed_at) / 60) * 60)::bigint,
               coalesce(n.tenant, ''), pg_backend_pid(),
               count(*) FILTER (WHERE n.status = 'completed'),
               count(*) FILTER (WHERE n.status = 'failed'),
               count(*) FILTER (WHERE n.status = 'cancelled')
        FROM new_rows AS n
        WHERE n.status IN ('completed', 'failed', 'cancelled') AND n.completed_at IS NOT NULL
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (minute, tenant, shard) DO UPDATE
        SET completed = m.completed + excluded.completed, failed = m.failed + excluded.failed,
            cancelled = m.cancelled + excluded.cancelled;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {schema}.underway_tallies AS t (shard, task, queue, tenant, schedule,
                                                    status, jobs, runs, duration)
        SELECT pg_backend_pid(), task, queue, tenant, schedule, status, sum(jobs), sum(runs),
               sum(duration)
        FROM (
            SELECT task, queue, coalesce(tenant, '') AS tenant, coalesce(schedule, '') AS schedule,
                   status, -1 AS jobs, -(started_at IS NOT NULL)::int AS runs,
                   -coalesce(round(extract(epoch FROM completed_at - started_at) * 1000000), 0)
                       AS duration
            FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')
        ) AS changed
        GROUP BY task, queue, tenant, schedule, status
        ORDER BY task, queue, tenant, schedule, status
        ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
        SET jobs = t.jobs + excluded.jobs, runs = t.runs + excluded.runs,
            duration = t.duration + excluded.duration;
    ELSE
        -- Most updates (claims, heartbeats, reports) touch no finished row.
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled'))
           AND NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')) THEN
            RETURN NULL;
        END IF;
        INSERT INTO {schema}.underway_tallies AS t (shard, task, queue, tenant, schedule,
                                                    status, jobs, runs, duration)
        SELECT pg_backend_pid(), task, queue, tenant, schedule, status, sum(jobs), sum(runs),
               sum(duration)
        FROM (
            SELECT task, queue, coalesce(tenant, '') AS tenant, coalesce(schedule, '') AS schedule,
                   status, 1 AS jobs, (started_at IS NOT NULL)::int AS runs,
                   coalesce(round(extract(epoch FROM completed_at - started_at) * 1000000), 0)
                       AS duration
            FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled')
            UNION ALL
            SELECT task, queue, coalesce(tenant, '') AS tenant, coalesce(schedule, '') AS schedule,
                   status, -1 AS jobs, -(started_at IS NOT NULL)::int AS runs,
                   -coalesce(round(extract(epoch FROM completed_at - started_at) * 1000000), 0)
                       AS duration
            FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')
        ) AS changed
        GROUP BY task, queue, tenant, schedule, status
        ORDER BY task, queue, tenant, schedule, status
        ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
        SET jobs = t.jobs + excluded.jobs, runs = t.runs + excluded.runs,
            duration = t.duration + excluded.duration;
        INSERT INTO {schema}.underway_minutes AS m (minute, tenant, shard, completed, failed,
                                                    cancelled)
        SELECT (floor(extract(epoch FROM n.completed_at) / 60) * 60)::bigint,
               coalesce(n.tenant, ''), pg_backend_pid(),
               count(*) FILTER (WHERE n.status = 'completed'),
               count(*) FILTER (WHERE n.status = 'failed'),
               count(*) FILTER (WHERE n.status = 'cancelled')
        FROM new_rows AS n
        WHERE n.status IN ('completed', 'failed', 'cancelled') AND n.completed_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.id = n.id AND o.status = n.status)
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (minute, tenant, shard) DO UPDATE
        SET completed = m.completed + excluded.completed, failed = m.failed + excluded.failed,
            cancelled = m.cancelled + excluded.cancelled;
    END IF;
    RETURN NULL;
END
$$;

-- PostgreSQL needs one trigger per event for transition tables; the function reads TG_OP.
CREATE TRIGGER underway_tally_inserted AFTER INSERT ON {schema}.underway_jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_tally();
CREATE TRIGGER underway_tally_updated AFTER UPDATE ON {schema}.underway_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_tally();
CREATE TRIGGER underway_tally_deleted AFTER DELETE ON {schema}.underway_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_tally();

-- The dashboard's lists, newest first: by queue (task, tenant and status have theirs).
CREATE INDEX underway_jobs_queue ON {schema}.underway_jobs (queue, id);

-- The latest finished runs of each task and schedule (their state: ok, failing). NULLS LAST
-- (completed_at is never NULL here) keeps the planner off the pruning index: read backwards,
-- that one gives DESC NULLS FIRST, so it cannot serve run_recent's order. Without this, a
-- lateral join over the tasks, planned for the average task, walked the pruning index and
-- read every finished job to find a rarely run task's latest ten.
CREATE INDEX underway_jobs_task_runs ON {schema}.underway_jobs
    (task, completed_at DESC NULLS LAST, id DESC)
    WHERE status IN ('completed', 'failed') AND started_at IS NOT NULL;
CREATE INDEX underway_jobs_schedule_runs ON {schema}.underway_jobs
    (schedule, completed_at DESC NULLS LAST, id DESC)
    WHERE status IN ('completed', 'failed') AND started_at IS NOT NULL AND schedule IS NOT NULL;
