-- Tenants on schedules, and the counters behind /metrics (docs/decisions/0014-metrics.md).
--
-- Counters count events as they happen, in the transaction that makes them, by triggers on the
-- job table: so every process's work is counted, whatever code path changed the job, and
-- deleting (pruning) jobs never takes a count back. The histograms' buckets are cumulative
-- (`_le_NN` counts observations <= the NN-th bound); the bounds, in seconds, are
-- 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600
-- and must match underway.stores.messages.HISTOGRAM_BOUNDS.
--
-- What is counted, from a job row before (old) and after (new) a change of status:
--   enqueued   a job inserted
--   completed, failed, cancelled   the job reached that status
--   retried    running -> pending with the attempt spent (an error retry), or failed/cancelled
--              -> pending (a person's retry)
--   rescued    the job's lease expired and it was taken back (rescues went up)
--   duration   an attempt that ended by itself (not rescued, not handed back): from its start
--              to the change
--   pickup     every attempt that ended: from when it was due (run_at) to its start


ALTER TABLE {schema}.underway_schedules ADD COLUMN tenant text;

-- One row per connection (shard: its backend pid), task and queue: a connection only ever
-- adds to its own rows, so no transaction waits on another's counter, not even a user's
-- long transaction that enqueues on its own connection. Reads sum the shards; pruning folds
-- the rows of connections that are gone into shard 0.
CREATE TABLE {schema}.underway_counters (
    shard              integer NOT NULL,
    task               text NOT NULL,
    queue              text NOT NULL,
    enqueued           bigint NOT NULL DEFAULT 0,
    completed          bigint NOT NULL DEFAULT 0,
    failed             bigint NOT NULL DEFAULT 0,
    retried            bigint NOT NULL DEFAULT 0,
    cancelled          bigint NOT NULL DEFAULT 0,
    rescued            bigint NOT NULL DEFAULT 0,
    duration_count     bigint NOT NULL DEFAULT 0,
    duration_sum       bigint NOT NULL DEFAULT 0,  -- microseconds: integer sums stay exact
    duration_le_00     bigint NOT NULL DEFAULT 0,
    duration_le_01     bigint NOT NULL DEFAULT 0,
    duration_le_02     bigint NOT NULL DEFAULT 0,
    duration_le_03     bigint NOT NULL DEFAULT 0,
    duration_le_04     bigint NOT NULL DEFAULT 0,
    duration_le_05     bigint NOT NULL DEFAULT 0,
    duration_le_06     bigint NOT NULL DEFAULT 0,
    duration_le_07     bigint NOT NULL DEFAULT 0,
    duration_le_08     bigint NOT NULL DEFAULT 0,
    duration_le_09     bigint NOT NULL DEFAULT 0,
    duration_le_10     bigint NOT NULL DEFAULT 0,
    duration_le_11     bigint NOT NULL DEFAULT 0,
    duration_le_12     bigint NOT NULL DEFAULT 0,
    duration_le_13     bigint NOT NULL DEFAULT 0,
    duration_le_14     bigint NOT NULL DEFAULT 0,
    duration_le_15     bigint NOT NULL DEFAULT 0,
    pickup_count       bigint NOT NULL DEFAULT 0,
    pickup_sum         bigint NOT NULL DEFAULT 0,  -- microseconds
    pickup_le_00       bigint NOT NULL DEFAULT 0,
    pickup_le_01       bigint NOT NULL DEFAULT 0,
    pickup_le_02       bigint NOT NULL DEFAULT 0,
    pickup_le_03       bigint NOT NULL DEFAULT 0,
    pickup_le_04       bigint NOT NULL DEFAULT 0,
    pickup_le_05       bigint NOT NULL DEFAULT 0,
    pickup_le_06       bigint NOT NULL DEFAULT 0,
    pickup_le_07       bigint NOT NULL DEFAULT 0,
    pickup_le_08       bigint NOT NULL DEFAULT 0,
    pickup_le_09       bigint NOT NULL DEFAULT 0,
    pickup_le_10       bigint NOT NULL DEFAULT 0,
    pickup_le_11       bigint NOT NULL DEFAULT 0,
    pickup_le_12       bigint NOT NULL DEFAULT 0,
    pickup_le_13       bigint NOT NULL DEFAULT 0,
    pickup_le_14       bigint NOT NULL DEFAULT 0,
    pickup_le_15       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, task, queue)
);

-- JIT off in every counting function, as in the feed's (0003): compiling costs more than a
-- statement over a batch's rows runs.
CREATE FUNCTION {schema}.underway_count_enqueued() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    INSERT INTO {schema}.underway_counters AS c (shard, task, queue, enqueued)
    SELECT pg_backend_pid(), task, queue, count(*) FROM new_rows
    GROUP BY task, queue ORDER BY task, queue
    ON CONFLICT (shard, task, queue) DO UPDATE SET enqueued = c.enqueued + excluded.enqueued;
    RETURN NULL;
END
$$;

-- Per statement, not per row: a batch (or a COPY) adds to the counters once.
CREATE TRIGGER underway_count_enqueued AFTER INSERT ON {schema}.underway_jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_count_enqueued();

CREATE FUNCTION {schema}.underway_count_changes() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    INSERT INTO {schema}.underway_counters AS c (shard, task, queue,
        completed, failed, retried, cancelled, rescued, duration_count, duration_sum, duration_le_00, duration_le_01, duration_le_02, duration_le_03, duration_le_04, duration_le_05, duration_le_06, duration_le_07, duration_le_08, duration_le_09, duration_le_10, duration_le_11, duration_le_12, duration_le_13, duration_le_14, duration_le_15, pickup_count, pickup_sum, pickup_le_00, pickup_le_01, pickup_le_02, pickup_le_03, pickup_le_04, pickup_le_05, pickup_le_06, pickup_le_07, pickup_le_08, pickup_le_09, pickup_le_10, pickup_le_11, pickup_le_12, pickup_le_13, pickup_le_14, pickup_le_15)
    SELECT pg_backend_pid(), task, queue,
           coalesce(sum(n) FILTER (WHERE status = 'completed'), 0),
           coalesce(sum(n) FILTER (WHERE status = 'failed'), 0),
           coalesce(sum(n) FILTER (WHERE retried), 0),
           coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0),
           coalesce(sum(n) FILTER (WHERE rescued), 0),
           coalesce(sum(n) FILTER (WHERE timed), 0),
           coalesce(sum(d) FILTER (WHERE timed), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 0), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 1), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 2), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 3), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 4), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 5), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 6), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 7), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 8), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 9), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 10), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 11), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 12), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 13), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 14), 0),
           coalesce(sum(n) FILTER (WHERE timed AND d_bucket <= 15), 0),
           coalesce(sum(n) FILTER (WHERE ended), 0),
           coalesce(sum(p) FILTER (WHERE ended), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 0), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 1), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 2), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 3), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 4), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 5), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 6), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 7), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 8), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 9), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 10), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 11), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 12), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 13), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 14), 0),
           coalesce(sum(n) FILTER (WHERE ended AND p_bucket <= 15), 0)
    FROM (
        -- Jobs that changed alike, grouped first: the sums above then run over a few groups,
        -- not over every row of a batch.
        SELECT task, queue, status, retried, rescued, timed, ended, d_bucket, p_bucket,
               count(*) AS n, sum(round(d * 1000000))::bigint AS d,
               sum(round(p * 1000000))::bigint AS p
        FROM (
            SELECT *,
                   CASE WHEN d <= 0.005 THEN 0 WHEN d <= 0.01 THEN 1 WHEN d <= 0.025 THEN 2
                        WHEN d <= 0.05 THEN 3 WHEN d <= 0.1 THEN 4 WHEN d <= 0.25 THEN 5
                        WHEN d <= 0.5 THEN 6 WHEN d <= 1 THEN 7 WHEN d <= 2.5 THEN 8
                        WHEN d <= 5 THEN 9 WHEN d <= 10 THEN 10 WHEN d <= 30 THEN 11
                        WHEN d <= 60 THEN 12 WHEN d <= 300 THEN 13 WHEN d <= 900 THEN 14
                        WHEN d <= 3600 THEN 15
                        ELSE 16 END AS d_bucket,
                   CASE WHEN p <= 0.005 THEN 0 WHEN p <= 0.01 THEN 1 WHEN p <= 0.025 THEN 2
                        WHEN p <= 0.05 THEN 3 WHEN p <= 0.1 THEN 4 WHEN p <= 0.25 THEN 5
                        WHEN p <= 0.5 THEN 6 WHEN p <= 1 THEN 7 WHEN p <= 2.5 THEN 8
                        WHEN p <= 5 THEN 9 WHEN p <= 10 THEN 10 WHEN p <= 30 THEN 11
                        WHEN p <= 60 THEN 12 WHEN p <= 300 THEN 13 WHEN p <= 900 THEN 14
                        WHEN p <= 3600 THEN 15
                        ELSE 16 END AS p_bucket
            FROM (
                SELECT n.task, n.queue, n.status,
                       (o.status = 'running' AND n.status = 'pending' AND n.attempt = o.attempt
                        AND n.rescues = o.rescues)
                       OR (o.status IN ('failed', 'cancelled') AND n.status = 'pending') AS retried,
                       n.rescues > o.rescues AS rescued,
                       o.status = 'running' AND n.rescues = o.rescues
                       AND NOT (n.status = 'pending' AND n.attempt < o.attempt) AS timed,
                       greatest(extract(epoch FROM n.updated_at - o.started_at)::float8, 0) AS d,
                       o.status = 'running' AS ended,
                       greatest(extract(epoch FROM o.started_at - o.run_at)::float8, 0) AS p
                FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
                -- claims (pending -> running) count nothing: the pickup is observed when the
                -- attempt ends
                WHERE n.status <> o.status AND n.status <> 'running'
            ) AS changed
        ) AS bucketed
        GROUP BY task, queue, status, retried, rescued, timed, ended, d_bucket, p_bucket
    ) AS alike
    GROUP BY task, queue
    ORDER BY task, queue
    ON CONFLICT (shard, task, queue) DO UPDATE SET
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
    RETURN NULL;
END
$$;

-- Transition tables rule out a column list (UPDATE OF status), so this runs after every update
-- statement; one that changes no status (a heartbeat, a report) inserts nothing.
CREATE TRIGGER underway_count_changes AFTER UPDATE ON {schema}.underway_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_count_changes();

-- Callback deliveries (migration 0004), counted the same way: attempts made, and deliveries
-- that ended delivered or failed for good. Pruning a job deletes its deliveries, not these.
-- A sender records one delivery per statement, so a row trigger is enough.
CREATE TABLE {schema}.underway_delivery_counters (
    shard     integer PRIMARY KEY,
    delivered bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    attempts  bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION {schema}.underway_count_deliveries() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    INSERT INTO {schema}.underway_delivery_counters AS c (shard, delivered, failed, attempts)
    VALUES (pg_backend_pid(),
            (NEW.status = 'delivered' AND OLD.status <> 'delivered')::int,
            (NEW.status = 'failed' AND OLD.status <> 'failed')::int,
            greatest(NEW.attempts - OLD.attempts, 0))
    ON CONFLICT (shard) DO UPDATE SET delivered = c.delivered + excluded.delivered,
                                      failed = c.failed + excluded.failed,
                                      attempts = c.attempts + excluded.attempts;
    RETURN NULL;
END
$$;

CREATE TRIGGER underway_count_deliveries
    AFTER UPDATE OF status, attempts ON {schema}.underway_deliveries
    FOR EACH ROW WHEN (OLD.status <> NEW.status OR OLD.attempts <> NEW.attempts)
    EXECUTE FUNCTION {schema}.underway_count_deliveries();
