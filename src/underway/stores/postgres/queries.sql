-- Named statements of the PostgreSQL store. Parameters are psycopg's (%(name)s); {fragments}
-- are spliced in by sqlfile.render when the store is built, {schema} (the quoted schema name)
-- in every statement that reads a table. The SQLite file defines the same names for the same
-- statements (tests/unit/test_sql_dialects.py holds the few that only one has).

-- --- connections (PostgreSQL only) -----------------------------------------------------------

-- name: now
SELECT now();

-- name: listen
-- {channel}: the quoted NOTIFY channel of the schema.
LISTEN {channel};

-- name: notify
SELECT pg_notify(%(channel)s, '');

-- name: ping
-- A listener's health check: a notice to itself (listener.py, liveness.py).
SELECT pg_notify(%(channel)s, %(payload)s);

-- --- schema ----------------------------------------------------------------------------------

-- name: lock_migrations
-- Several processes may migrate at once: they take turns on this transaction-scoped lock.
SELECT pg_advisory_xact_lock(hashtext(%(channel)s));

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS {schema}.underway_migrations (
    version integer PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM {schema}.underway_migrations;

-- name: record_migration
INSERT INTO {schema}.underway_migrations (version, name) VALUES (%(version)s, %(name)s);

-- --- producers -------------------------------------------------------------------------------

-- name: copy_jobs
-- Big batches without unique keys (COPY cannot skip a conflicting row); binary rows.
COPY {schema}.underway_jobs (
    id, task, title, args, queue, priority, status, ready, max_attempts, run_at,
    status_message, tenant, callback_url, schedule, slot, created_at, updated_at
) FROM STDIN (FORMAT BINARY);

-- name: insert_jobs
WITH clock AS (SELECT now() AS now),
inserted AS (
    INSERT INTO {schema}.underway_jobs (
        id, task, title, args, queue, priority, status, ready, max_attempts, run_at,
        status_message, tenant, callback_url, key, schedule, slot, created_at, updated_at
    )
    SELECT u.id, u.task, u.title, u.args, u.queue, u.priority, 'pending',
           coalesce(u.run_at, clock.now + u.delay * interval '1 second') <= clock.now,
           u.max_attempts, coalesce(u.run_at, clock.now + u.delay * interval '1 second'),
           u.status_message, u.tenant, u.callback_url, u.key, u.schedule, u.slot, clock.now,
           clock.now
    FROM clock, unnest(
        %(id)s::uuid[], %(task)s::text[], %(title)s::text[], %(args)s::jsonb[],
        %(queue)s::text[], %(priority)s::int[], %(max_attempts)s::int[],
        %(run_at)s::timestamptz[], %(delay)s::float8[], %(status_message)s::text[],
        %(tenant)s::text[], %(callback_url)s::text[], %(key)s::text[], %(schedule)s::text[],
        %(slot)s::timestamptz[]
    ) AS u(id, task, title, args, queue, priority, max_attempts, run_at, delay,
           status_message, tenant, callback_url, key, schedule, slot)
    ON CONFLICT (key) WHERE key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING
    RETURNING id
)
SELECT (SELECT now FROM clock), array(SELECT id FROM inserted), pg_notify(%(channel)s, '');

-- name: unfinished_by_key
SELECT * FROM {schema}.underway_jobs
WHERE key = ANY(%(keys)s) AND status IN ('pending', 'running');

-- name: existing_ids
-- Which of the caller-chosen ids a job already has.
SELECT id FROM {schema}.underway_jobs WHERE id = ANY(%(ids)s::uuid[]);

-- --- workers ---------------------------------------------------------------------------------

-- name: filter_queues
-- Several queues; one queue takes filter_queue, whose equality lets the planner walk the
-- per-queue index in order.
AND queue = ANY(%(queues)s);

-- name: filter_unlimited
-- The main claim skips paused queues and those with a concurrency limit (claimed apart).
AND queue NOT IN (SELECT name FROM {schema}.underway_queues WHERE paused OR concurrency IS NOT NULL);

-- name: claim
-- {queues}: filter_queue, filter_queues or nothing; {unlimited}: filter_unlimited, or nothing
-- when claiming from one limited queue; {suspects}: not_suspects or only_suspects.
WITH ready AS (
    SELECT id, priority, run_at FROM {schema}.underway_jobs
    WHERE status = 'pending' AND ready {queues} {unlimited} {suspects}
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
due AS (
    SELECT id, priority, run_at FROM {schema}.underway_jobs
    WHERE status = 'pending' AND NOT ready AND run_at <= now() {queues} {unlimited} {suspects}
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
picked AS (
    SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) AS candidates
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
)
UPDATE {schema}.underway_jobs AS j
SET status = 'running',
    ready = true,
    attempt = j.attempt + 1,
    lease_token = md5(random()::text || j.id::text),
    lease_expires_at = now() + %(lease)s * interval '1 second',
    worker_id = %(worker_id)s,
    started_at = now(),
    updated_at = greatest(now(), updated_at)
FROM picked
WHERE j.id = picked.id
RETURNING j.*;

-- name: claim_fair
-- Tenants take turns (docs/decisions/0027-fair-claiming.md): a group is a queue and a tenant
-- ('' for none) with work. Up to `groups` groups after the caller's cursor (after_queue,
-- after_tenant) are found by skipping through the fair indexes, one probe per group, each
-- offers its first jobs, and the claim takes each tenant's best job (by priority, then age,
-- across its queues) group after group, then each one's second best, and so on. {steps}: the
-- queue filter the probes can walk (filter_queue, filter_queues or nothing); {unlimited} and
-- {suspects} as in claim.
WITH RECURSIVE ready_groups AS (
    (SELECT queue, coalesce(tenant, '') AS tenant FROM {schema}.underway_jobs
     WHERE status = 'pending' AND ready {steps}
       AND (queue, coalesce(tenant, '')) > (%(after_queue)s, %(after_tenant)s)
     ORDER BY queue, coalesce(tenant, '') LIMIT 1)
    UNION ALL
    SELECT next.queue, next.tenant FROM ready_groups AS g CROSS JOIN LATERAL (
        SELECT queue, coalesce(tenant, '') AS tenant FROM {schema}.underway_jobs
        WHERE status = 'pending' AND ready {steps}
          AND (queue, coalesce(tenant, '')) > (g.queue, g.tenant)
        ORDER BY queue, coalesce(tenant, '') LIMIT 1
    ) AS next
),
due_groups AS (
    (SELECT queue, coalesce(tenant, '') AS tenant, run_at FROM {schema}.underway_jobs
     WHERE status = 'pending' AND NOT ready {steps}
       AND (queue, coalesce(tenant, '')) > (%(after_queue)s, %(after_tenant)s)
     ORDER BY queue, coalesce(tenant, ''), run_at LIMIT 1)
    UNION ALL
    SELECT next.queue, next.tenant, next.run_at FROM due_groups AS g CROSS JOIN LATERAL (
        SELECT queue, coalesce(tenant, '') AS tenant, run_at FROM {schema}.underway_jobs
        WHERE status = 'pending' AND NOT ready {steps}
          AND (queue, coalesce(tenant, '')) > (g.queue, g.tenant)
        ORDER BY queue, coalesce(tenant, ''), run_at LIMIT 1
    ) AS next
),
groups AS (
    SELECT queue, tenant FROM (
        (SELECT queue, tenant FROM ready_groups LIMIT %(groups)s)
        UNION
        -- a group's first entry here is its earliest: later than now, none of it is due
        (SELECT queue, tenant FROM (SELECT * FROM due_groups LIMIT %(groups)s) AS d
         WHERE run_at <= now())
    ) AS found
    WHERE true {unlimited}
),
candidates AS (
    SELECT c.id, c.priority, c.run_at, g.queue, g.tenant FROM groups AS g CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM {schema}.underway_jobs
        WHERE status = 'pending' AND ready AND queue = g.queue
          AND coalesce(tenant, '') = g.tenant {suspects}
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    UNION ALL
    SELECT c.id, c.priority, c.run_at, g.queue, g.tenant FROM groups AS g CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM {schema}.underway_jobs
        WHERE status = 'pending' AND NOT ready AND run_at <= now() AND queue = g.queue
          AND coalesce(tenant, '') = g.tenant {suspects}
        ORDER BY run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
),
picked AS (
    SELECT id FROM (
        SELECT id, queue, tenant,
               row_number() OVER (PARTITION BY tenant ORDER BY priority DESC, run_at, id) AS turn
        FROM candidates
    ) AS ranked
    ORDER BY turn, queue, tenant
    LIMIT %(limit)s
)
UPDATE {schema}.underway_jobs AS j
SET status = 'running',
    ready = true,
    attempt = j.attempt + 1,
    lease_token = md5(random()::text || j.id::text),
    lease_expires_at = now() + %(lease)s * interval '1 second',
    worker_id = %(worker_id)s,
    started_at = now(),
    updated_at = greatest(now(), updated_at)
FROM picked
WHERE j.id = picked.id
RETURNING j.*;

-- name: lock_limited_queue
-- Serializes the claimers of one limited queue. The running count must come from a later
-- statement: this one's snapshot predates the wait for the lock.
SELECT concurrency FROM {schema}.underway_queues
WHERE name = %(queue)s AND concurrency IS NOT NULL AND NOT paused
FOR UPDATE;

-- name: count_running
SELECT count(*) FROM {schema}.underway_jobs WHERE status = 'running' AND queue = %(queue)s;

-- name: limited_queues
SELECT name, concurrency FROM {schema}.underway_queues WHERE concurrency IS NOT NULL AND NOT paused;

-- name: not_suspects
-- Suspects (jobs a crash was rescued from) are claimed one at a time, alone (worker/suspects.py).
AND rescues = 0;

-- name: only_suspects
AND rescues > 0;

-- name: suspect_due
-- {queues}: filter_queue, filter_queues or nothing.
SELECT 1 FROM {schema}.underway_jobs
WHERE status = 'pending' AND rescues > 0 AND run_at <= now() {queues}
  AND queue NOT IN (SELECT name FROM {schema}.underway_queues WHERE paused)
LIMIT 1;

-- name: heartbeat
-- clock_timestamp(): the lease runs from when the row is written, not from when the statement
-- began (it may have waited for a row lock).
UPDATE {schema}.underway_jobs AS j
SET lease_expires_at = clock_timestamp() + %(lease)s * interval '1 second'
FROM unnest(%(ids)s::uuid[], %(tokens)s::text[]) AS u(id, token)
-- The ANY() lets the planner probe the primary key per id even with stale statistics.
WHERE j.id = ANY(%(ids)s) AND j.id = u.id AND j.lease_token = u.token AND j.status = 'running'
RETURNING j.id, j.cancel_requested;

-- name: report
UPDATE {schema}.underway_jobs AS j
SET progress = u.progress,
    status_message = u.status_message,
    payload = coalesce(u.payload, j.payload),
    updated_at = greatest(now(), updated_at)
FROM unnest(%(ids)s::uuid[], %(tokens)s::text[], %(progress)s::float8[],
            %(status_message)s::text[], %(payload)s::jsonb[])
     AS u(id, token, progress, status_message, payload)
-- The ANY() lets the planner probe the primary key per id even with stale statistics.
WHERE j.id = ANY(%(ids)s) AND j.id = u.id AND j.lease_token = u.token AND j.status = 'running';

-- name: finish
-- worker_id stays: a finished job's row is its last attempt (migration 0003).
UPDATE {schema}.underway_jobs AS j
SET status = CASE WHEN j.cancel_requested AND u.status = 'pending' THEN 'cancelled'
                  ELSE u.status END,
    result = u.result,
    error_message = CASE WHEN u.has_error THEN u.error_message ELSE j.error_message END,
    error_type = CASE WHEN u.has_error THEN u.error_type ELSE j.error_type END,
    error_traceback = CASE WHEN u.has_error THEN u.error_traceback ELSE j.error_traceback END,
    attempt = j.attempt - u.refund,
    run_at = CASE WHEN u.status = 'pending'
                  THEN now() + u.retry_in * interval '1 second' ELSE j.run_at END,
    ready = CASE WHEN u.status = 'pending' THEN u.retry_in <= 0 ELSE true END,
    -- a refunded attempt does not count, even when it ends cancelled: the row lets go of it
    started_at = CASE WHEN (u.status = 'pending' AND NOT j.cancel_requested) OR u.refund > 0
                      THEN NULL ELSE j.started_at END,
    completed_at = CASE WHEN u.status = 'pending' AND NOT j.cancel_requested
                        THEN NULL ELSE now() END,
    progress = CASE WHEN u.report THEN u.progress ELSE j.progress END,
    status_message = CASE WHEN u.report THEN u.status_message ELSE j.status_message END,
    payload = CASE WHEN u.report THEN coalesce(u.payload, j.payload) ELSE j.payload END,
    lease_token = NULL,
    lease_expires_at = NULL,
    cancel_requested = false,
    updated_at = greatest(now(), updated_at)
FROM unnest(
    %(ids)s::uuid[], %(tokens)s::text[], %(statuses)s::text[], %(results)s::jsonb[],
    %(has_error)s::bool[], %(error_message)s::text[], %(error_type)s::text[],
    %(error_traceback)s::text[], %(refund)s::int[], %(retry_in)s::float8[],
    %(report)s::bool[], %(progress)s::float8[], %(status_message)s::text[],
    %(payload)s::jsonb[]
) AS u(id, token, status, result, has_error, error_message, error_type, error_traceback,
       refund, retry_in, report, progress, status_message, payload)
-- The ANY() lets the planner probe the primary key per id even with stale statistics.
WHERE j.id = ANY(%(ids)s) AND j.id = u.id AND j.lease_token = u.token AND j.status = 'running'
RETURNING j.id;

-- name: rescue
UPDATE {schema}.underway_jobs
SET status = CASE WHEN cancel_requested THEN 'cancelled'
                  WHEN attempt >= max_attempts OR rescues >= %(max_rescues)s THEN 'failed'
                  ELSE 'pending' END,
    completed_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                             OR rescues >= %(max_rescues)s
                        THEN now() ELSE NULL END,
    rescues = rescues + 1,
    ready = true,
    run_at = now(),
    started_at = NULL,
    error_message = 'the worker running attempt ' || attempt || ' stopped heartbeating '
                    || '(it crashed, was killed or lost the store); its lease expired',
    error_type = 'LeaseExpired',
    error_traceback = NULL,
    lease_token = NULL,
    lease_expires_at = NULL,
    worker_id = NULL,
    cancel_requested = false,
    updated_at = greatest(now(), updated_at)
WHERE id IN (
    SELECT id FROM {schema}.underway_jobs
    WHERE status = 'running' AND lease_expires_at < now()
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: next_due
-- {queues}: filter_queue, filter_queues or nothing.
SELECT extract(epoch FROM (
    SELECT least(
        (SELECT min(run_at) FROM {schema}.underway_jobs
         WHERE status = 'pending' AND NOT ready {queues}
           AND queue NOT IN (SELECT name FROM {schema}.underway_queues WHERE paused)),
        (SELECT now() FROM {schema}.underway_jobs
         WHERE status = 'pending' AND ready {queues}
           AND queue NOT IN (SELECT name FROM {schema}.underway_queues WHERE paused)
         ORDER BY priority DESC, run_at, id LIMIT 1)
    )
) - now());

-- --- inspection and control ------------------------------------------------------------------

-- name: get
SELECT * FROM {schema}.underway_jobs WHERE id = %(id)s;

-- name: list_jobs
-- {filters}: the filter_* fragments below that apply, in their order here.
SELECT * FROM {schema}.underway_jobs WHERE true {filters} ORDER BY id DESC LIMIT %(limit)s;

-- name: filter_status
AND status = %(status)s;

-- name: filter_task
AND task = %(task)s;

-- name: filter_queue
AND queue = %(queue)s;

-- name: filter_tenant
AND tenant = %(tenant)s;

-- name: filter_key
AND key = %(key)s;

-- name: filter_created_after
AND created_at >= %(created_after)s;

-- name: filter_created_before
AND created_at < %(created_before)s;

-- name: filter_scheduled
AND status = 'pending' AND run_at > now();

-- name: filter_retrying
AND status = 'pending' AND attempt > 0;

-- name: filter_cursor
AND id < %(cursor)s;

-- name: cancel_pending
UPDATE {schema}.underway_jobs
SET status = 'cancelled', completed_at = now(), updated_at = greatest(now(), updated_at),
    status_message = coalesce(status_message, 'cancelled before it ran')
WHERE id = %(id)s AND status = 'pending'
RETURNING *;

-- name: request_cancel
UPDATE {schema}.underway_jobs SET cancel_requested = true, updated_at = greatest(now(), updated_at)
WHERE id = %(id)s AND status = 'running'
RETURNING *;

-- name: retry
WITH retried AS (
    UPDATE {schema}.underway_jobs
    SET status = 'pending', ready = true, attempt = 0, rescues = 0, run_at = now(),
        started_at = NULL, completed_at = NULL, result = NULL, progress = NULL,
        cancel_requested = false, updated_at = greatest(now(), updated_at)
    WHERE id = %(id)s AND status IN ('failed', 'cancelled')
    RETURNING *
)
SELECT retried.*, pg_notify(%(channel)s, '') FROM retried;

-- name: stats
-- {tenant}: filter_tenant or nothing, here and in every statement that counts jobs.
-- Finished jobs from their tallies (migration 0007), unfinished ones live through the status
-- index: neither reads the finished jobs themselves.
SELECT task, queue, nullif(tenant, ''), status, sum(jobs)::bigint FROM {schema}.underway_tallies
WHERE true {tenant}
GROUP BY task, queue, tenant, status HAVING sum(jobs) <> 0
UNION ALL
SELECT task, queue, tenant, status, count(*) FROM {schema}.underway_jobs
WHERE status IN ('pending', 'running') {tenant}
GROUP BY task, queue, tenant, status;

-- name: stats_pending_views
SELECT count(*) FILTER (WHERE run_at > now()), count(*) FILTER (WHERE attempt > 0)
FROM {schema}.underway_jobs WHERE status = 'pending' {tenant};

-- --- queues and retention --------------------------------------------------------------------

-- name: set_queue_paused
INSERT INTO {schema}.underway_queues (name, paused) VALUES (%(name)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now();

-- name: set_queue_concurrency
INSERT INTO {schema}.underway_queues (name, concurrency) VALUES (%(name)s, %(concurrency)s)
ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency, updated_at = now();

-- name: queues
SELECT name, paused, concurrency FROM {schema}.underway_queues;

-- name: prune
-- SKIP LOCKED keeps two pruners apart and never waits on a row a worker holds.
WITH doomed AS (
    SELECT id FROM {schema}.underway_jobs
    WHERE status = ANY(%(statuses)s) AND completed_at < now() - %(age)s * interval '1 second'
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.underway_jobs AS j USING doomed WHERE j.id = doomed.id;

-- --- schedules -------------------------------------------------------------------------------

-- name: register_schedule
INSERT INTO {schema}.underway_schedules (name, task, rule, tenant, tenants, anchor)
VALUES (%(name)s, %(task)s, %(rule)s, %(tenant)s, %(tenants)s, %(anchor)s)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, rule = excluded.rule,
                                 tenant = excluded.tenant, tenants = excluded.tenants,
                                 updated_at = now(),
                                 anchor = CASE WHEN %(reanchor)s THEN excluded.anchor
                                               ELSE underway_schedules.anchor END,
                                 definition = NULL -- declared in code: the code owns it now
RETURNING *;

-- name: put_schedule
-- A schedule put at run time: added, or updated unless code declares that name (no row back).
INSERT INTO {schema}.underway_schedules
    (name, task, rule, tenant, tenants, anchor, definition)
VALUES (%(name)s, %(task)s, %(rule)s, %(tenant)s, %(tenants)s, %(anchor)s, %(definition)s)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, rule = excluded.rule,
                                 tenant = excluded.tenant, tenants = excluded.tenants,
                                 definition = excluded.definition,
                                 updated_at = now()
WHERE underway_schedules.definition IS NOT NULL
RETURNING *;

-- name: remove_schedule
DELETE FROM {schema}.underway_schedules WHERE name = %(name)s AND definition IS NOT NULL;

-- name: restart_schedule
-- Resumed, and counting again from %(anchor)s (an interval fires at once; missed slots dropped).
UPDATE {schema}.underway_schedules
SET paused = false, anchor = %(anchor)s, updated_at = now()
WHERE name = %(name)s;

-- name: beat_scheduler
INSERT INTO {schema}.underway_schedulers (id, expires_at)
VALUES (%(id)s, now() + %(lease)s * interval '1 second')
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at;

-- name: forget_scheduler
DELETE FROM {schema}.underway_schedulers
WHERE id = %(id)s OR expires_at < now() - interval '1 day';

-- name: schedulers_alive
SELECT count(*) AS alive FROM {schema}.underway_schedulers WHERE expires_at > now();

-- name: schedule_states
SELECT * FROM {schema}.underway_schedules ORDER BY name;

-- name: lock_schedule
-- The row lock makes concurrent schedulers take turns on this schedule.
SELECT * FROM {schema}.underway_schedules WHERE name = %(name)s FOR UPDATE;

-- name: schedule_busy
SELECT 1 FROM {schema}.underway_jobs
WHERE schedule = %(name)s AND status IN ('pending', 'running') LIMIT 1;

-- name: advance_schedule
UPDATE {schema}.underway_schedules
SET last_slot = %(slot)s, run_count = run_count + %(fired)s, updated_at = now()
WHERE name = %(name)s;

-- name: count_schedule_run
UPDATE {schema}.underway_schedules SET run_count = run_count + 1, updated_at = now()
WHERE name = %(name)s;

-- name: set_schedule_paused
-- Resuming counts the slots that passed while paused as handled: they are skipped.
UPDATE {schema}.underway_schedules
SET paused = %(paused)s,
    last_slot = CASE WHEN %(paused)s OR NOT paused THEN last_slot
                     ELSE greatest(last_slot, now()) END,
    updated_at = now()
WHERE name = %(name)s;

-- name: run_aggregates
-- {group}: the column runs are counted by (task or schedule), here and in the two below.
-- From the tallies: runs, failures and the durations summed (microseconds) per name.
SELECT {group}, sum(runs), coalesce(sum(runs) FILTER (WHERE status = 'failed'), 0), sum(duration)
FROM {schema}.underway_tallies
WHERE {group} <> '' AND status IN ('completed', 'failed') {tenant}
GROUP BY {group} HAVING sum(runs) > 0;

-- name: run_recent
-- The latest ten finished runs of each name, newest first (name, status, duration,
-- started_at), each name's read backwards from its runs index (migration 0007).
SELECT g.name, j.status, extract(epoch FROM j.completed_at - j.started_at)::float8, j.started_at
FROM (
    SELECT {group} AS name FROM {schema}.underway_tallies
    WHERE {group} <> '' AND status IN ('completed', 'failed') {tenant}
    GROUP BY {group} HAVING sum(runs) > 0
) AS g
CROSS JOIN LATERAL (
    SELECT status, started_at, completed_at, id FROM {schema}.underway_jobs
    WHERE {group} = g.name AND status IN ('completed', 'failed') AND started_at IS NOT NULL
          {tenant}
    ORDER BY completed_at DESC NULLS LAST, id DESC
    LIMIT 10
) AS j
ORDER BY g.name, j.completed_at DESC, j.id DESC;

-- name: run_running
SELECT {group}, count(*) FROM {schema}.underway_jobs
WHERE status = 'running' AND {group} IS NOT NULL {tenant} GROUP BY {group};

-- --- metrics ---------------------------------------------------------------------------------

-- name: counters
SELECT task, queue,
       sum(enqueued),
       sum(completed),
       sum(failed),
       sum(retried),
       sum(cancelled),
       sum(rescued),
       sum(duration_count),
       sum(duration_sum),
       sum(duration_le_00),
       sum(duration_le_01),
       sum(duration_le_02),
       sum(duration_le_03),
       sum(duration_le_04),
       sum(duration_le_05),
       sum(duration_le_06),
       sum(duration_le_07),
       sum(duration_le_08),
       sum(duration_le_09),
       sum(duration_le_10),
       sum(duration_le_11),
       sum(duration_le_12),
       sum(duration_le_13),
       sum(duration_le_14),
       sum(duration_le_15),
       sum(pickup_count),
       sum(pickup_sum),
       sum(pickup_le_00),
       sum(pickup_le_01),
       sum(pickup_le_02),
       sum(pickup_le_03),
       sum(pickup_le_04),
       sum(pickup_le_05),
       sum(pickup_le_06),
       sum(pickup_le_07),
       sum(pickup_le_08),
       sum(pickup_le_09),
       sum(pickup_le_10),
       sum(pickup_le_11),
       sum(pickup_le_12),
       sum(pickup_le_13),
       sum(pickup_le_14),
       sum(pickup_le_15)
FROM {schema}.underway_counters
GROUP BY task, queue
ORDER BY task, queue;

-- name: fold_counters
-- The shards of connections that are gone, folded into shard 0 (a live connection's rows are
-- left alone, so no one waits). Deleting a row a new connection with a reused pid is adding
-- to waits for it, then folds its new value: nothing is counted twice or lost.
WITH gone AS (
    DELETE FROM {schema}.underway_counters
    WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING *
)
INSERT INTO {schema}.underway_counters AS c (shard, task, queue,
    enqueued, completed, failed, retried, cancelled, rescued, duration_count, duration_sum, duration_le_00, duration_le_01, duration_le_02, duration_le_03, duration_le_04, duration_le_05, duration_le_06, duration_le_07, duration_le_08, duration_le_09, duration_le_10, duration_le_11, duration_le_12, duration_le_13, duration_le_14, duration_le_15, pickup_count, pickup_sum, pickup_le_00, pickup_le_01, pickup_le_02, pickup_le_03, pickup_le_04, pickup_le_05, pickup_le_06, pickup_le_07, pickup_le_08, pickup_le_09, pickup_le_10, pickup_le_11, pickup_le_12, pickup_le_13, pickup_le_14, pickup_le_15)
SELECT 0, task, queue,
       sum(enqueued),
       sum(completed),
       sum(failed),
       sum(retried),
       sum(cancelled),
       sum(rescued),
       sum(duration_count),
       sum(duration_sum),
       sum(duration_le_00),
       sum(duration_le_01),
       sum(duration_le_02),
       sum(duration_le_03),
       sum(duration_le_04),
       sum(duration_le_05),
       sum(duration_le_06),
       sum(duration_le_07),
       sum(duration_le_08),
       sum(duration_le_09),
       sum(duration_le_10),
       sum(duration_le_11),
       sum(duration_le_12),
       sum(duration_le_13),
       sum(duration_le_14),
       sum(duration_le_15),
       sum(pickup_count),
       sum(pickup_sum),
       sum(pickup_le_00),
       sum(pickup_le_01),
       sum(pickup_le_02),
       sum(pickup_le_03),
       sum(pickup_le_04),
       sum(pickup_le_05),
       sum(pickup_le_06),
       sum(pickup_le_07),
       sum(pickup_le_08),
       sum(pickup_le_09),
       sum(pickup_le_10),
       sum(pickup_le_11),
       sum(pickup_le_12),
       sum(pickup_le_13),
       sum(pickup_le_14),
       sum(pickup_le_15)
FROM gone
GROUP BY task, queue
ORDER BY task, queue
ON CONFLICT (shard, task, queue) DO UPDATE SET
    enqueued = c.enqueued + excluded.enqueued,
    completed = c.completed + excluded.completed,
    failed = c.failed + excluded.failed,
    retried = c.retried + excluded.retried,
    cancelled = c.cancelled + excluded.cancelled,
    rescued = c.rescued + excluded.rescued,
    duration_count = c.duration_count + excluded.duration_count,
    duration_sum = c.duration_sum + excluded.duration_sum,
    duration_le_00 = c.duration_le_00 + excluded.duration_le_00,
    duration_le_01 = c.duration_le_01 + excluded.duration_le_01,
    duration_le_02 = c.duration_le_02 + excluded.duration_le_02,
    duration_le_03 = c.duration_le_03 + excluded.duration_le_03,
    duration_le_04 = c.duration_le_04 + excluded.duration_le_04,
    duration_le_05 = c.duration_le_05 + excluded.duration_le_05,
    duration_le_06 = c.duration_le_06 + excluded.duration_le_06,
    duration_le_07 = c.duration_le_07 + excluded.duration_le_07,
    duration_le_08 = c.duration_le_08 + excluded.duration_le_08,
    duration_le_09 = c.duration_le_09 + excluded.duration_le_09,
    duration_le_10 = c.duration_le_10 + excluded.duration_le_10,
    duration_le_11 = c.duration_le_11 + excluded.duration_le_11,
    duration_le_12 = c.duration_le_12 + excluded.duration_le_12,
    duration_le_13 = c.duration_le_13 + excluded.duration_le_13,
    duration_le_14 = c.duration_le_14 + excluded.duration_le_14,
    duration_le_15 = c.duration_le_15 + excluded.duration_le_15,
    pickup_count = c.pickup_count + excluded.pickup_count,
    pickup_sum = c.pickup_sum + excluded.pickup_sum,
    pickup_le_00 = c.pickup_le_00 + excluded.pickup_le_00,
    pickup_le_01 = c.pickup_le_01 + excluded.pickup_le_01,
    pickup_le_02 = c.pickup_le_02 + excluded.pickup_le_02,
    pickup_le_03 = c.pickup_le_03 + excluded.pickup_le_03,
    pickup_le_04 = c.pickup_le_04 + excluded.pickup_le_04,
    pickup_le_05 = c.pickup_le_05 + excluded.pickup_le_05,
    pickup_le_06 = c.pickup_le_06 + excluded.pickup_le_06,
    pickup_le_07 = c.pickup_le_07 + excluded.pickup_le_07,
    pickup_le_08 = c.pickup_le_08 + excluded.pickup_le_08,
    pickup_le_09 = c.pickup_le_09 + excluded.pickup_le_09,
    pickup_le_10 = c.pickup_le_10 + excluded.pickup_le_10,
    pickup_le_11 = c.pickup_le_11 + excluded.pickup_le_11,
    pickup_le_12 = c.pickup_le_12 + excluded.pickup_le_12,
    pickup_le_13 = c.pickup_le_13 + excluded.pickup_le_13,
    pickup_le_14 = c.pickup_le_14 + excluded.pickup_le_14,
    pickup_le_15 = c.pickup_le_15 + excluded.pickup_le_15;

-- name: queue_depth
-- Unfinished jobs only: the status index finds them without reading the finished ones.
SELECT queue, status, count(*) FROM {schema}.underway_jobs
WHERE status IN ('pending', 'running') GROUP BY queue, status;

-- name: stats_history
-- Finishes per minute from :since (a minute's start, Unix seconds), oldest first.
SELECT minute, sum(completed), sum(failed), sum(cancelled) FROM {schema}.underway_minutes
WHERE minute >= %(since)s {tenant}
GROUP BY minute ORDER BY minute;

-- name: prune_minutes
DELETE FROM {schema}.underway_minutes
WHERE minute < extract(epoch FROM now()) - %(age)s;

-- name: fold_tallies
-- As fold_counters: the rows of connections that are gone, summed into shard 0.
WITH gone AS (
    DELETE FROM {schema}.underway_tallies
    WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING *
)
INSERT INTO {schema}.underway_tallies AS t (shard, task, queue, tenant, schedule, status, jobs,
                                          runs, duration)
SELECT 0, task, queue, tenant, schedule, status, sum(jobs), sum(runs), sum(duration) FROM gone
GROUP BY task, queue, tenant, schedule, status
ORDER BY task, queue, tenant, schedule, status
ON CONFLICT (shard, task, queue, tenant, schedule, status) DO UPDATE
SET jobs = t.jobs + excluded.jobs, runs = t.runs + excluded.runs,
    duration = t.duration + excluded.duration;

-- name: fold_minutes
WITH gone AS (
    DELETE FROM {schema}.underway_minutes
    WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING *
)
INSERT INTO {schema}.underway_minutes AS m (minute, tenant, shard, completed, failed, cancelled)
SELECT minute, tenant, 0, sum(completed), sum(failed), sum(cancelled) FROM gone
GROUP BY minute, tenant
ORDER BY minute, tenant
ON CONFLICT (minute, tenant, shard) DO UPDATE
SET completed = m.completed + excluded.completed, failed = m.failed + excluded.failed,
    cancelled = m.cancelled + excluded.cancelled;

-- --- callbacks ---------------------------------------------------------------------------------

-- name: deliveries_due
-- Read before claiming, so an idle deliverer locks nothing.
SELECT 1 FROM {schema}.underway_deliveries
WHERE status = 'pending' AND next_at <= now() LIMIT 1;

-- name: claim_deliveries
-- The lease pushes next_at to its end: a sender that dies leaves the delivery due again then.
-- SKIP LOCKED: several workers claiming at once each take different deliveries.
UPDATE {schema}.underway_deliveries AS d
SET locked_by = %(sender)s,
    lease_token = md5(random()::text || d.id),
    locked_until = now() + %(lease)s * interval '1 second',
    next_at = now() + %(lease)s * interval '1 second'
WHERE d.id IN (
    SELECT id FROM {schema}.underway_deliveries
    WHERE status = 'pending' AND next_at <= now()
    ORDER BY next_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING d.id, d.job_id, d.type, d.url, d.attempts, d.created_at, d.lease_token;

-- name: record_delivery
-- Only the claim that holds the lease records; its attempt is numbered from the new count.
UPDATE {schema}.underway_deliveries
SET status = %(status)s,
    attempts = attempts + 1,
    next_at = CASE WHEN %(status)s = 'pending'
                   THEN now() + %(retry_in)s * interval '1 second' ELSE next_at END,
    locked_by = NULL,
    lease_token = NULL,
    locked_until = NULL,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN now() ELSE delivered_at END,
    last_error = %(error)s,
    last_status_code = %(status_code)s
WHERE id = %(id)s AND lease_token = %(token)s AND status = 'pending'
RETURNING attempts;

-- name: insert_delivery_attempt
INSERT INTO {schema}.underway_delivery_attempts
    (delivery_id, number, at, status_code, error, duration)
VALUES (%(id)s, %(number)s, now() - %(duration)s * interval '1 second', %(status_code)s,
        %(error)s, %(duration)s);

-- name: job_deliveries
SELECT * FROM {schema}.underway_deliveries WHERE job_id = %(job_id)s ORDER BY created_at, id;

-- name: job_delivery_attempts
SELECT a.* FROM {schema}.underway_delivery_attempts AS a
JOIN {schema}.underway_deliveries AS d ON d.id = a.delivery_id
WHERE d.job_id = %(job_id)s
ORDER BY a.delivery_id, a.number;


-- --- the change feed, attempts and workers (stores/history.py) -------------------------------

-- name: changes
-- A job as it was right after each change: the changing fields from the change, the fixed
-- ones from the job. Only changes below the oldest transaction still in flight: everything
-- there has committed, and nothing can commit there later, so a cursor never skips a change.
-- A cursor is `<xid>-<seq>-<item>`: a row holds a statement's changes (migration 0003).
-- {filters}: the change_* fragments below that apply.
SELECT c.xid::text || '-' || c.seq || '-' || i.ordinality AS cursor, i.kind,
    i.updated_at AS at, j.id, j.task, j.title, j.args, j.queue, j.priority, i.status,
    i.attempt, j.max_attempts, i.run_at, j.created_at, i.progress, i.status_message, i.payload,
    i.result, j.tenant, j.callback_url, j.key, i.started_at, i.completed_at,
    i.cancel_requested, j.schedule, i.rescues, i.error_message, i.error_type,
    i.error_traceback, i.updated_at, j.slot
FROM {schema}.underway_changes AS c
CROSS JOIN LATERAL unnest(c.items) WITH ORDINALITY AS i
JOIN {schema}.underway_jobs AS j ON j.id = i.job_id
WHERE (c.xid, c.seq) >= (%(xid)s::xid8, %(seq)s)
  AND (c.xid, c.seq, i.ordinality) > (%(xid)s::xid8, %(seq)s, %(item)s)
  AND c.xid < pg_snapshot_xmin(pg_current_snapshot()) {filters}
ORDER BY c.xid, c.seq, i.ordinality
LIMIT %(limit)s;

-- name: change_job
AND i.job_id = %(job_id)s

-- name: change_task
AND j.task = %(task)s

-- name: change_queue
AND j.queue = %(queue)s

-- name: change_tenant
AND j.tenant = %(tenant)s

-- name: newest_change
-- Behind a transaction pooler, where nothing can LISTEN: an idle worker reads this to learn
-- that something was written (every enqueue and every finish writes a change).
SELECT xid::text || '-' || seq FROM {schema}.underway_changes ORDER BY xid DESC, seq DESC LIMIT 1;

-- name: change_head
-- Where "from now on" starts: the last change every reader can already see.
SELECT coalesce((
    SELECT xid::text || '-' || seq || '-' || cardinality(items)
    FROM {schema}.underway_changes
    WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY xid DESC, seq DESC LIMIT 1
), '0-0-0');

-- name: prune_changes
-- The feed keeps changes for a while: a reader that was away longer resumes at the oldest kept.
-- Only the oldest batch is looked at, so a call costs the same however many changes are kept.
-- One row per deleted row, with the number of changes it held.
WITH doomed AS (
    SELECT xid, seq FROM (
        SELECT xid, seq, updated_at FROM {schema}.underway_changes
        ORDER BY xid, seq
        LIMIT %(batch)s
    ) AS oldest
    WHERE updated_at < now() - %(age)s * interval '1 second'
)
DELETE FROM {schema}.underway_changes AS c USING doomed
WHERE c.xid = doomed.xid AND c.seq = doomed.seq
RETURNING cardinality(c.items);

-- name: attempts
-- The attempts the job's row let go of, then the one it holds (see migration 0003).
SELECT job_id, number, worker_id, started_at, ended_at, outcome, error_type, error_message,
       extract(epoch FROM ended_at - started_at) AS duration
FROM (
    SELECT id AS seq, job_id, number, worker_id, started_at, ended_at, outcome, error_type,
           error_message
    FROM {schema}.underway_attempts WHERE job_id = %(id)s
    UNION ALL
    SELECT NULL, id, attempt, worker_id, started_at,
           CASE WHEN status <> 'running' THEN completed_at END,
           CASE WHEN status <> 'running' THEN status END,
           CASE WHEN status IN ('failed', 'cancelled') THEN error_type END,
           CASE WHEN status IN ('failed', 'cancelled') THEN error_message END
    FROM {schema}.underway_jobs WHERE id = %(id)s AND started_at IS NOT NULL
) AS a
ORDER BY seq NULLS LAST;

-- name: server_clock
-- The server's clock as it answers (not the transaction's start): against the worker's, read
-- just before and after, to tell how far the worker's clock is off.
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: beat_worker
INSERT INTO {schema}.underway_workers
    (id, host, pid, queues, concurrency, started_at, last_beat_at, expires_at, clock_skew)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, now(), now(),
        now() + %(lease)s * interval '1 second', %(clock_skew)s)
ON CONFLICT (id) DO UPDATE
SET last_beat_at = now(), expires_at = now() + %(lease)s * interval '1 second',
    clock_skew = %(clock_skew)s;

-- name: forget_worker
DELETE FROM {schema}.underway_workers WHERE id = %(id)s;

-- name: workers
-- Live workers, with the jobs each is running now (the running index holds only those).
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.last_beat_at,
       w.clock_skew,
       (SELECT count(*) FROM {schema}.underway_jobs AS j
        WHERE j.status = 'running' AND j.worker_id = w.id) AS running
FROM {schema}.underway_workers AS w
WHERE w.expires_at > now()
ORDER BY w.started_at, w.id;

-- name: prune_workers
-- Dead workers stay listed nowhere; their rows go after a day.
DELETE FROM {schema}.underway_workers WHERE expires_at < now() - interval '1 day';

-- name: cancel_requests
SELECT id FROM {schema}.underway_jobs
WHERE id = ANY(%(ids)s) AND status = 'running' AND cancel_requested;

-- name: delete_finished
-- Deleting a job by hand, as prune does by age: only once it is finished.
DELETE FROM {schema}.underway_jobs WHERE id = %(id)s AND status IN ('completed', 'failed', 'cancelled');

-- --- API keys --------------------------------------------------------------------------------

-- name: insert_key
INSERT INTO {schema}.underway_keys (id, name, tenant, secret_hash, created_at)
VALUES (%(id)s, %(name)s, %(tenant)s, %(secret_hash)s, now())
RETURNING *;

-- name: get_key
SELECT * FROM {schema}.underway_keys WHERE id = %(id)s;

-- name: list_keys
SELECT * FROM {schema}.underway_keys ORDER BY created_at, id;

-- name: revoke_key
-- Revoking twice keeps the first time.
UPDATE {schema}.underway_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %(id)s RETURNING *;

-- name: touch_key
UPDATE {schema}.underway_keys SET last_used_at = now() WHERE id = %(id)s;

-- name: delivery_counts
-- The pending ones through the due index, which holds only those.
SELECT (SELECT coalesce(sum(delivered), 0) FROM {schema}.underway_delivery_counters),
       (SELECT coalesce(sum(failed), 0) FROM {schema}.underway_delivery_counters),
       (SELECT coalesce(sum(attempts), 0) FROM {schema}.underway_delivery_counters),
       (SELECT count(*) FROM {schema}.underway_deliveries WHERE status = 'pending');

-- name: fold_delivery_counters
WITH gone AS (
    DELETE FROM {schema}.underway_delivery_counters
    WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING *
)
INSERT INTO {schema}.underway_delivery_counters AS c (shard, delivered, failed, attempts)
SELECT 0, sum(delivered), sum(failed), sum(attempts) FROM gone HAVING count(*) > 0
ON CONFLICT (shard) DO UPDATE SET delivered = c.delivered + excluded.delivered,
                                  failed = c.failed + excluded.failed,
                                  attempts = c.attempts + excluded.attempts;

-- --- tenant quotas (migration 0013, docs/decisions/0026-tenant-quotas.md) --------------------

-- name: take_tokens
-- Refill the tenant's bucket by the time since its last refill, then take %(count)s tokens, only
-- if that many are there: no row back = refused (nothing changed). The conflicting row stays
-- locked to the end of the enqueue's transaction, so enqueues of one tenant take turns.
-- clock_timestamp(), not now(): now() is the start of the transaction, which in a caller's
-- long transaction (enqueue(connection=...)) would run the refill clock backwards. The
-- greatest() calls keep a statement that waited on the row lock, its clock read before the
-- wait, from crediting the wait twice.
INSERT INTO {schema}.underway_quota_buckets AS b (tenant, tokens, refilled_at)
SELECT %(tenant)s, %(burst)s::float8 - %(count)s::float8, clock_timestamp()
WHERE %(count)s::float8 <= %(burst)s::float8
ON CONFLICT (tenant) DO UPDATE
SET tokens = least(%(burst)s::float8, b.tokens + %(rate)s::float8 * greatest(
        extract(epoch FROM excluded.refilled_at - b.refilled_at)::float8, 0))
        - %(count)s::float8,
    refilled_at = greatest(b.refilled_at, excluded.refilled_at)
WHERE least(%(burst)s::float8, b.tokens + %(rate)s::float8 * greatest(
        extract(epoch FROM excluded.refilled_at - b.refilled_at)::float8, 0))
      >= %(count)s::float8
RETURNING tokens;

-- name: bucket_tokens
-- The tokens a refused demand found (for its retry_after): a bucket never used is full.
SELECT coalesce((
    SELECT least(%(burst)s::float8, tokens + %(rate)s::float8 * greatest(
               extract(epoch FROM clock_timestamp() - refilled_at)::float8, 0))
    FROM {schema}.underway_quota_buckets WHERE tenant = %(tenant)s
), %(burst)s::float8);

-- name: horizon_holders
-- Only this database's backends hold back the horizon of its tables; a walsender's xmin
-- (hot_standby_feedback) shows as its slot's, or as a standby's, not here.
SELECT * FROM (
    SELECT 'transaction' AS kind, a.pid::text AS name,
           extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS seconds,
           concat_ws(', ', a.state, 'user ' || a.usename,
                     'application ' || nullif(a.application_name, ''),
                     'statement: ' || left(nullif(a.query, ''), 200)) AS detail
    FROM pg_stat_activity AS a
    WHERE a.datname = current_database() AND a.backend_xmin IS NOT NULL
      AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
      AND a.xact_start < clock_timestamp() - %(older_than)s * interval '1 second'
    UNION ALL
    SELECT 'prepared', p.gid, extract(epoch FROM clock_timestamp() - p.prepared)::float8,
           concat_ws(', ', 'prepared', 'owner ' || p.owner)
    FROM pg_prepared_xacts AS p
    WHERE p.database = current_database()
      AND p.prepared < clock_timestamp() - %(older_than)s * interval '1 second'
    UNION ALL
    SELECT 'slot', s.slot_name::text, NULL::float8,
           concat_ws(', ', s.slot_type || ' replication slot', 'inactive')
    FROM pg_replication_slots AS s
    WHERE s.xmin IS NOT NULL AND NOT s.active
) AS held
ORDER BY seconds DESC NULLS LAST, name;
