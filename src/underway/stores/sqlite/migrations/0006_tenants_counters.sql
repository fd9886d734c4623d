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


ALTER TABLE underway_schedules ADD COLUMN tenant TEXT;

-- One row per task and queue (shard 0): SQLite has one writer at a time, so no
-- transaction ever waits on another for a counter.
CREATE TABLE underway_counters (
    shard              INTEGER NOT NULL,
    task               TEXT NOT NULL,
    queue              TEXT NOT NULL,
    enqueued           INTEGER NOT NULL DEFAULT 0,
    completed          INTEGER NOT NULL DEFAULT 0,
    failed             INTEGER NOT NULL DEFAULT 0,
    retried            INTEGER NOT NULL DEFAULT 0,
    cancelled          INTEGER NOT NULL DEFAULT 0,
    rescued            INTEGER NOT NULL DEFAULT 0,
    duration_count     INTEGER NOT NULL DEFAULT 0,
    duration_sum       INTEGER NOT NULL DEFAULT 0,  -- microseconds: integer sums stay exact
    duration_le_00     INTEGER NOT NULL DEFAULT 0,
    duration_le_01     INTEGER NOT NULL DEFAULT 0,
    duration_le_02     INTEGER NOT NULL DEFAULT 0,
    duration_le_03     INTEGER NOT NULL DEFAULT 0,
    duration_le_04     INTEGER NOT NULL DEFAULT 0,
    duration_le_05     INTEGER NOT NULL DEFAULT 0,
    duration_le_06     INTEGER NOT NULL DEFAULT 0,
    duration_le_07     INTEGER NOT NULL DEFAULT 0,
    duration_le_08     INTEGER NOT NULL DEFAULT 0,
    duration_le_09     INTEGER NOT NULL DEFAULT 0,
    duration_le_10     INTEGER NOT NULL DEFAULT 0,
    duration_le_11     INTEGER NOT NULL DEFAULT 0,
    duration_le_12     INTEGER NOT NULL DEFAULT 0,
    duration_le_13     INTEGER NOT NULL DEFAULT 0,
    duration_le_14     INTEGER NOT NULL DEFAULT 0,
    duration_le_15     INTEGER NOT NULL DEFAULT 0,
    pickup_count       INTEGER NOT NULL DEFAULT 0,
    pickup_sum         INTEGER NOT NULL DEFAULT 0,  -- microseconds
    pickup_le_00       INTEGER NOT NULL DEFAULT 0,
    pickup_le_01       INTEGER NOT NULL DEFAULT 0,
    pickup_le_02       INTEGER NOT NULL DEFAULT 0,
    pickup_le_03       INTEGER NOT NULL DEFAULT 0,
    pickup_le_04       INTEGER NOT NULL DEFAULT 0,
    pickup_le_05       INTEGER NOT NULL DEFAULT 0,
    pickup_le_06       INTEGER NOT NULL DEFAULT 0,
    pickup_le_07       INTEGER NOT NULL DEFAULT 0,
    pickup_le_08       INTEGER NOT NULL DEFAULT 0,
    pickup_le_09       INTEGER NOT NULL DEFAULT 0,
    pickup_le_10       INTEGER NOT NULL DEFAULT 0,
    pickup_le_11       INTEGER NOT NULL DEFAULT 0,
    pickup_le_12       INTEGER NOT NULL DEFAULT 0,
    pickup_le_13       INTEGER NOT NULL DEFAULT 0,
    pickup_le_14       INTEGER NOT NULL DEFAULT 0,
    pickup_le_15       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, task, queue)
);

CREATE TRIGGER underway_count_enqueued AFTER INSERT ON underway_jobs
BEGIN
    INSERT INTO underway_counters (shard, task, queue, enqueued) VALUES (0, new.task, new.queue, 1)
    ON CONFLICT (shard, task, queue) DO UPDATE SET enqueued = enqueued + 1;
END;

-- Claims (pending -> running) count nothing: the pickup is observed when the attempt ends.
CREATE TRIGGER underway_count_changes AFTER UPDATE OF status ON underway_jobs
WHEN old.status <> new.status AND new.status <> 'running'
BEGIN
    INSERT INTO underway_counters (shard, task, queue,
        completed, failed, retried, cancelled, rescued, duration_count, duration_sum, duration_le_00, duration_le_01, duration_le_02, duration_le_03, duration_le_04, duration_le_05, duration_le_06, duration_le_07, duration_le_08, duration_le_09, duration_le_10, duration_le_11, duration_le_12, duration_le_13, duration_le_14, duration_le_15, pickup_count, pickup_sum, pickup_le_00, pickup_le_01, pickup_le_02, pickup_le_03, pickup_le_04, pickup_le_05, pickup_le_06, pickup_le_07, pickup_le_08, pickup_le_09, pickup_le_10, pickup_le_11, pickup_le_12, pickup_le_13, pickup_le_14, pickup_le_15)
    SELECT 0, new.task, new.queue,
           new.status = 'completed',
           new.status = 'failed',
           (old.status = 'running' AND new.status = 'pending' AND new.attempt = old.attempt
                AND new.rescues = old.rescues)
               OR (old.status IN ('failed', 'cancelled') AND new.status = 'pending'),
           new.status = 'cancelled',
           new.rescues > old.rescues,
           timed,
           CASE WHEN timed THEN CAST(round(d * 1000000) AS INTEGER) ELSE 0 END,
           timed AND d <= 0.005,
           timed AND d <= 0.01,
           timed AND d <= 0.025,
           timed AND d <= 0.05,
           timed AND d <= 0.1,
           timed AND d <= 0.25,
           timed AND d <= 0.5,
           timed AND d <= 1,
           timed AND d <= 2.5,
           timed AND d <= 5,
           timed AND d <= 10,
           timed AND d <= 30,
           timed AND d <= 60,
           timed AND d <= 300,
           timed AND d <= 900,
           timed AND d <= 3600,
           ended,
           CASE WHEN ended THEN CAST(round(p * 1000000) AS INTEGER) ELSE 0 END,
           ended AND p <= 0.005,
           ended AND p <= 0.01,
           ended AND p <= 0.025,
           ended AND p <= 0.05,
           ended AND p <= 0.1,
           ended AND p <= 0.25,
           ended AND p <= 0.5,
           ended AND p <= 1,
           ended AND p <= 2.5,
           ended AND p <= 5,
           ended AND p <= 10,
           ended AND p <= 30,
           ended AND p <= 60,
           ended AND p <= 300,
           ended AND p <= 900,
           ended AND p <= 3600
    FROM (SELECT old.status = 'running' AND new.rescues = old.rescues
                 AND NOT (new.status = 'pending' AND new.attempt < old.attempt) AS timed,
                 max(coalesce(new.updated_at - old.started_at, 0), 0) AS d,
                 old.status = 'running' AS ended,
                 max(coalesce(old.started_at - old.run_at, 0), 0) AS p)
    WHERE true
    ON CONFLICT (shard, task, queue) DO UPDATE SET
        completed = completed + excluded.completed,
        failed = failed + excluded.failed,
        retried = retried + excluded.retried,
        cancelled = cancelled + excluded.cancelled,
        rescued = rescued + excluded.rescued,
        duration_count = duration_count + excluded.duration_count,
        duration_sum = duration_sum + excluded.duration_sum,
        duration_le_00 = duration_le_00 + excluded.duration_le_00,
        duration_le_01 = duration_le_01 + excluded.duration_le_01,
        duration_le_02 = duration_le_02 + excluded.duration_le_02,
        duration_le_03 = duration_le_03 + excluded.duration_le_03,
        duration_le_04 = duration_le_04 + excluded.duration_le_04,
        duration_le_05 = duration_le_05 + excluded.duration_le_05,
        duration_le_06 = duration_le_06 + excluded.duration_le_06,
        duration_le_07 = duration_le_07 + excluded.duration_le_07,
        duration_le_08 = duration_le_08 + excluded.duration_le_08,
        duration_le_09 = duration_le_09 + excluded.duration_le_09,
        duration_le_10 = duration_le_10 + excluded.duration_le_10,
        duration_le_11 = duration_le_11 + excluded.duration_le_11,
        duration_le_12 = duration_le_12 + excluded.duration_le_12,
        duration_le_13 = duration_le_13 + excluded.duration_le_13,
        duration_le_14 = duration_le_14 + excluded.duration_le_14,
        duration_le_15 = duration_le_15 + excluded.duration_le_15,
        pickup_count = pickup_count + excluded.pickup_count,
        pickup_sum = pickup_sum + excluded.pickup_sum,
        pickup_le_00 = pickup_le_00 + excluded.pickup_le_00,
        pickup_le_01 = pickup_le_01 + excluded.pickup_le_01,
        pickup_le_02 = pickup_le_02 + excluded.pickup_le_02,
        pickup_le_03 = pickup_le_03 + excluded.pickup_le_03,
        pickup_le_04 = pickup_le_04 + excluded.pickup_le_04,
        pickup_le_05 = pickup_le_05 + excluded.pickup_le_05,
        pickup_le_06 = pickup_le_06 + excluded.pickup_le_06,
        pickup_le_07 = pickup_le_07 + excluded.pickup_le_07,
        pickup_le_08 = pickup_le_08 + excluded.pickup_le_08,
        pickup_le_09 = pickup_le_09 + excluded.pickup_le_09,
        pickup_le_10 = pickup_le_10 + excluded.pickup_le_10,
        pickup_le_11 = pickup_le_11 + excluded.pickup_le_11,
        pickup_le_12 = pickup_le_12 + excluded.pickup_le_12,
        pickup_le_13 = pickup_le_13 + excluded.pickup_le_13,
        pickup_le_14 = pickup_le_14 + excluded.pickup_le_14,
        pickup_le_15 = pickup_le_15 + excluded.pickup_le_15;
END;

-- Callback deliveries (migration 0004), counted the same way: attempts made, and deliveries
-- that ended delivered or failed for good. Pruning a job deletes its deliveries, not these.
CREATE TABLE underway_delivery_counters (
    shard     INTEGER PRIMARY KEY,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    attempts  INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER underway_count_deliveries AFTER UPDATE OF status, attempts ON underway_deliveries
WHEN old.status <> new.status OR old.attempts <> new.attempts
BEGIN
    INSERT INTO underway_delivery_counters (shard, delivered, failed, attempts)
    VALUES (0, new.status = 'delivered' AND old.status <> 'delivered',
            new.status = 'failed' AND old.status <> 'failed',
            max(new.attempts - old.attempts, 0))
    ON CONFLICT (shard) DO UPDATE SET delivered = delivered + excluded.delivered,
                                      failed = failed + excluded.failed,
                                      attempts = attempts + excluded.attempts;
END;
