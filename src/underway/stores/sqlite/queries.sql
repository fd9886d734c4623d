-- Named statements of the SQLite store. Parameters are named (:name); {fragments} are spliced
-- in by sqlfile.render when the store is built. The PostgreSQL file defines the same names for
-- the same statements (tests/unit/test_sql_dialects.py holds the few that only one has).

-- --- connections and transactions (SQLite only) ----------------------------------------------

-- name: set_busy_timeout
PRAGMA busy_timeout = 60000;

-- name: set_journal_wal
-- Answers the journal mode now in force.
PRAGMA journal_mode = WAL;

-- name: set_synchronous
PRAGMA synchronous = NORMAL;

-- name: set_foreign_keys
PRAGMA foreign_keys = ON;

-- name: data_version
-- Changes when another connection commits; reading it touches only the WAL index.
PRAGMA data_version;

-- name: begin
-- Takes the write lock up front, so two processes never both read, then both try to upgrade.
BEGIN IMMEDIATE;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- --- schema ----------------------------------------------------------------------------------

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS underway_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL
);

-- name: applied_migrations
SELECT version FROM underway_migrations;

-- name: record_migration
INSERT INTO underway_migrations VALUES (:version, :name, :applied_at);

-- --- producers -------------------------------------------------------------------------------

-- name: insert_jobs
-- One row; executemany runs it for a batch.
INSERT INTO underway_jobs (
    id, task, title, args, queue, priority, status, max_attempts, run_at, status_message,
    tenant, callback_url, key, schedule, slot, created_at, updated_at
) VALUES (
    :id, :task, :title, :args, :queue, :priority, 'pending', :max_attempts, :run_at,
    :status_message, :tenant, :callback_url, :key, :schedule, :slot, :now, :now
)
ON CONFLICT (key) WHERE key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING;

-- name: unfinished_by_key
SELECT * FROM underway_jobs WHERE key = :key AND status IN ('pending', 'running');

-- name: existing_ids
-- Which of the caller-chosen ids (a JSON list) a job already has.
SELECT id FROM underway_jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- --- workers ---------------------------------------------------------------------------------

-- name: filter_queues
-- One queue or several, as a JSON list.
AND queue IN (SELECT value FROM json_each(:queues));

-- name: claim
-- Suspects' claim (all other claims take turns: claiming.py). {queues}: filter_queues or
-- nothing; {claim_index}: the index that fits it; {suspects}: only_suspects.
UPDATE underway_jobs
SET status = 'running',
    attempt = attempt + 1,
    lease_token = lower(hex(randomblob(8))),
    lease_expires_at = :now + :lease,
    worker_id = :worker_id,
    started_at = :now,
    updated_at = max(:now, updated_at)
WHERE id IN (
    -- Without INDEXED BY the planner prefers the status index and sorts every pending job.
    SELECT id FROM underway_jobs INDEXED BY {claim_index}
    WHERE status = 'pending' AND run_at <= :now {queues} {suspects}
      AND queue NOT IN (SELECT name FROM underway_queues WHERE paused OR concurrency IS NOT NULL)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING *;

-- name: claim_limited
-- A queue with a concurrency limit: take no more than the limit minus its running jobs.
-- {suspects} as in claim.
UPDATE underway_jobs
SET status = 'running',
    attempt = attempt + 1,
    lease_token = lower(hex(randomblob(8))),
    lease_expires_at = :now + :lease,
    worker_id = :worker_id,
    started_at = :now,
    updated_at = max(:now, updated_at)
WHERE id IN (
    SELECT id FROM underway_jobs INDEXED BY underway_jobs_claim_queue
    WHERE status = 'pending' AND run_at <= :now AND queue = :queue {suspects}
    ORDER BY priority DESC, run_at, id
    LIMIT max(0, min(:limit, :concurrency - (
        SELECT count(*) FROM underway_jobs WHERE status = 'running' AND queue = :queue)))
)
RETURNING *;

-- name: fair_next_tenant
-- Fair claiming (claiming.py) finds the groups with pending jobs, a queue and a tenant (''
-- for none) each, one probe of the fair index per group however deep each one is: the next
-- tenant of a queue, or the first group of the next queue.
SELECT queue, coalesce(tenant, '') AS tenant FROM underway_jobs INDEXED BY underway_jobs_fair
WHERE status = 'pending' AND queue = :queue AND coalesce(tenant, '') > :tenant
ORDER BY coalesce(tenant, '')
LIMIT 1;

-- name: fair_queue_after
SELECT queue, coalesce(tenant, '') AS tenant FROM underway_jobs INDEXED BY underway_jobs_fair
WHERE status = 'pending' AND queue > :queue
ORDER BY queue, coalesce(tenant, '')
LIMIT 1;

-- name: fair_queue_from
SELECT queue, coalesce(tenant, '') AS tenant FROM underway_jobs INDEXED BY underway_jobs_fair
WHERE status = 'pending' AND queue >= :queue
ORDER BY queue, coalesce(tenant, '')
LIMIT 1;

-- name: fair_candidates
-- A group's first due jobs in claim order. {suspects}: not_suspects.
SELECT id, queue, tenant, priority, run_at FROM underway_jobs INDEXED BY underway_jobs_fair
WHERE status = 'pending' AND queue = :queue AND coalesce(tenant, '') = :tenant
  AND run_at <= :now {suspects}
ORDER BY priority DESC, run_at, id
LIMIT :limit;

-- name: fair_group_ids
-- One group's first due jobs in claim order, when a claim found no other group: taken in one
-- statement, nothing to take turns with. {suspects}: not_suspects.
SELECT id FROM underway_jobs INDEXED BY underway_jobs_fair
WHERE status = 'pending' AND queue = :queue AND coalesce(tenant, '') = :tenant
  AND run_at <= :now {suspects}
ORDER BY priority DESC, run_at, id
LIMIT :limit

-- name: picked_ids
-- The ids a fair claim picked, a JSON list.
SELECT value FROM json_each(:ids)

-- name: claim_picked
-- The jobs a fair claim picked, in the caller's write transaction. {picked}: picked_ids, or
-- fair_group_ids when there was one group only.
UPDATE underway_jobs
SET status = 'running',
    attempt = attempt + 1,
    lease_token = lower(hex(randomblob(8))),
    lease_expires_at = :now + :lease,
    worker_id = :worker_id,
    started_at = :now,
    updated_at = max(:now, updated_at)
WHERE id IN ({picked}) AND status = 'pending'
RETURNING *;

-- name: count_running
SELECT count(*) FROM underway_jobs WHERE status = 'running' AND queue = :queue;

-- name: skipped_queues
-- Queues the main claim leaves: paused ones, and those with a limit (claimed apart).
SELECT name FROM underway_queues WHERE paused OR concurrency IS NOT NULL;

-- name: limited_queues
SELECT name, concurrency FROM underway_queues WHERE concurrency IS NOT NULL AND NOT paused;

-- name: not_suspects
-- Suspects (jobs a crash was rescued from) are claimed one at a time, alone (worker/suspects.py).
AND rescues = 0;

-- name: only_suspects
AND rescues > 0;

-- name: suspect_due
-- {queues}: filter_queues or nothing.
SELECT 1 FROM underway_jobs INDEXED BY underway_jobs_suspects
WHERE status = 'pending' AND rescues > 0 AND run_at <= :now {queues}
  AND queue NOT IN (SELECT name FROM underway_queues WHERE paused)
LIMIT 1;

-- name: heartbeat
-- One lease; executemany runs it for all of a worker's leases.
UPDATE underway_jobs SET lease_expires_at = :expires
WHERE id = :id AND lease_token = :token AND status = 'running';

-- name: lease_states
-- {ids}: one ? per lease.
SELECT id, lease_token, status, cancel_requested FROM underway_jobs WHERE id IN ({ids});

-- name: report
UPDATE underway_jobs
SET progress = :progress,
    status_message = :status_message,
    payload = coalesce(:payload, payload),
    updated_at = max(:now, updated_at)
WHERE id = :id AND lease_token = :token AND status = 'running';

-- name: finish
-- worker_id stays: a finished job's row is its last attempt (migration 0003).
UPDATE underway_jobs
SET status = CASE WHEN cancel_requested AND :status = 'pending' THEN 'cancelled' ELSE :status END,
    result = :result,
    error_message = CASE WHEN :has_error THEN :error_message ELSE error_message END,
    error_type = CASE WHEN :has_error THEN :error_type ELSE error_type END,
    error_traceback = CASE WHEN :has_error THEN :error_traceback ELSE error_traceback END,
    attempt = attempt - :refund,
    run_at = CASE WHEN :status = 'pending' THEN :now + :retry_in ELSE run_at END,
    -- a refunded attempt does not count, even when it ends cancelled: the row lets go of it
    started_at = CASE WHEN (:status = 'pending' AND NOT cancel_requested) OR :refund > 0
                      THEN NULL ELSE started_at END,
    completed_at = CASE WHEN :status = 'pending' AND NOT cancel_requested
                        THEN NULL ELSE :now END,
    progress = CASE WHEN :report THEN :progress ELSE progress END,
    status_message = CASE WHEN :report THEN :status_message ELSE status_message END,
    payload = CASE WHEN :report THEN coalesce(:payload, payload) ELSE payload END,
    lease_token = NULL,
    lease_expires_at = NULL,
    cancel_requested = 0,
    updated_at = max(:now, updated_at)
WHERE id = :id AND lease_token = :token AND status = 'running';

-- name: rescue
UPDATE underway_jobs
SET status = CASE WHEN cancel_requested THEN 'cancelled'
                  WHEN attempt >= max_attempts OR rescues >= :max_rescues THEN 'failed'
                  ELSE 'pending' END,
    completed_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                             OR rescues >= :max_rescues
                        THEN :now ELSE NULL END,
    rescues = rescues + 1,
    run_at = :now,
    started_at = NULL,
    error_message = 'the worker running attempt ' || attempt || ' stopped heartbeating '
                    || '(it crashed, was killed or lost the store); its lease expired',
    error_type = 'LeaseExpired',
    error_traceback = NULL,
    lease_token = NULL,
    lease_expires_at = NULL,
    worker_id = NULL,
    cancel_requested = 0,
    updated_at = max(:now, updated_at)
WHERE status = 'running' AND lease_expires_at < :now
RETURNING *;

-- name: next_due
-- {queues}: filter_queues or nothing.
SELECT min(run_at) FROM underway_jobs INDEXED BY underway_jobs_due
WHERE status = 'pending' {queues}
  AND queue NOT IN (SELECT name FROM underway_queues WHERE paused);

-- --- inspection and control ------------------------------------------------------------------

-- name: get
SELECT * FROM underway_jobs WHERE id = :id;

-- name: list_jobs
-- {filters}: the filter_* fragments below that apply, in their order here.
SELECT * FROM underway_jobs WHERE true {filters} ORDER BY id DESC LIMIT :limit;

-- name: filter_status
AND status = :status;

-- name: filter_task
AND task = :task;

-- name: filter_queue
AND queue = :queue;

-- name: filter_tenant
AND tenant = :tenant;

-- name: filter_key
AND key = :key;

-- name: filter_created_after
-- Times are float seconds here, but a bound read back from a Job is rounded to the microsecond:
-- half a microsecond of slack keeps a job inside a range that starts at its own created_at.
AND created_at >= :created_after - 0.0000005;

-- name: filter_created_before
AND created_at < :created_before - 0.0000005;

-- name: filter_scheduled
AND status = 'pending' AND run_at > :now;

-- name: filter_retrying
AND status = 'pending' AND attempt > 0;

-- name: filter_cursor
AND id < :cursor;

-- name: cancel_pending
UPDATE underway_jobs
SET status = 'cancelled', completed_at = :now, updated_at = max(:now, updated_at),
    status_message = coalesce(status_message, 'cancelled before it ran')
WHERE id = :id AND status = 'pending'
RETURNING *;

-- name: request_cancel
UPDATE underway_jobs SET cancel_requested = 1, updated_at = max(:now, updated_at)
WHERE id = :id AND status = 'running'
RETURNING *;

-- name: retry
UPDATE underway_jobs
SET status = 'pending', attempt = 0, rescues = 0, run_at = :now, started_at = NULL,
    completed_at = NULL, result = NULL, progress = NULL, cancel_requested = 0,
    updated_at = max(:now, updated_at)
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING *;

-- name: stats
-- {tenant}: filter_tenant or nothing, here and in every statement that counts jobs.
-- Finished jobs from their tallies (migration 0007), unfinished ones live through the status
-- index: neither reads the finished jobs themselves.
SELECT task, queue, nullif(tenant, ''), status, sum(jobs) FROM underway_tallies
WHERE true {tenant}
GROUP BY task, queue, tenant, status HAVING sum(jobs) <> 0
UNION ALL
-- INDEXED BY: with a tenant, the planner would rather walk every job of the tenant.
SELECT task, queue, tenant, status, count(*) FROM underway_jobs INDEXED BY underway_jobs_status
WHERE status IN ('pending', 'running') {tenant}
GROUP BY task, queue, tenant, status;

-- name: stats_pending_views
SELECT coalesce(sum(run_at > :now), 0), coalesce(sum(attempt > 0), 0)
FROM underway_jobs INDEXED BY underway_jobs_status WHERE status = 'pending' {tenant};

-- --- queues and retention ----------------------------------------------------------------

-- name: set_queue_paused
INSERT INTO underway_queues (name, paused, updated_at) VALUES (:name, :paused, :now)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- name: set_queue_concurrency
INSERT INTO underway_queues (name, concurrency, updated_at) VALUES (:name, :concurrency, :now)
ON CONFLICT (name) DO UPDATE
SET concurrency = excluded.concurrency, updated_at = excluded.updated_at;

-- name: queues
SELECT name, paused, concurrency FROM underway_queues;

-- name: prune
DELETE FROM underway_jobs WHERE id IN (
    SELECT id FROM underway_jobs
    WHERE status IN (SELECT value FROM json_each(:statuses)) AND completed_at < :now - :age
    LIMIT :batch
);

-- --- schedules -------------------------------------------------------------------------------

-- name: register_schedule
INSERT INTO underway_schedules
    (name, task, rule, tenant, tenants, anchor, created_at, updated_at)
VALUES (:name, :task, :rule, :tenant, :tenants, :anchor, :now, :now)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, rule = excluded.rule,
                                 tenant = excluded.tenant, tenants = excluded.tenants,
                                 updated_at = excluded.updated_at,
                                 anchor = CASE WHEN :reanchor THEN excluded.anchor
                                               ELSE underway_schedules.anchor END,
                                 definition = NULL -- declared in code: the code owns it now
RETURNING *;

-- name: put_schedule
-- A schedule put at run time: added, or updated unless code declares that name (no row back).
INSERT INTO underway_schedules
    (name, task, rule, tenant, tenants, anchor, definition, created_at, updated_at)
VALUES (:name, :task, :rule, :tenant, :tenants, :anchor, :definition, :now, :now)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, rule = excluded.rule,
                                 tenant = excluded.tenant, tenants = excluded.tenants,
                                 definition = excluded.definition,
                                 updated_at = excluded.updated_at
WHERE underway_schedules.definition IS NOT NULL
RETURNING *;

-- name: remove_schedule
DELETE FROM underway_schedules WHERE name = :name AND definition IS NOT NULL;

-- name: restart_schedule
-- Resumed, and counting again from :anchor (an interval fires at once; missed slots are dropped).
UPDATE underway_schedules SET paused = 0, anchor = :anchor, updated_at = :now WHERE name = :name;

-- name: beat_scheduler
INSERT INTO underway_schedulers (id, started_at, expires_at) VALUES (:id, :now, :now + :lease)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at;

-- name: forget_scheduler
DELETE FROM underway_schedulers WHERE id = :id OR expires_at < :now - 86400;

-- name: schedulers_alive
SELECT count(*) AS alive FROM underway_schedulers WHERE expires_at > :now;

-- name: schedule_states
SELECT * FROM underway_schedules ORDER BY name;

-- name: lock_schedule
-- No row lock needed: the transaction holds the database's write lock (begin).
SELECT * FROM underway_schedules WHERE name = :name;

-- name: schedule_busy
SELECT 1 FROM underway_jobs
WHERE schedule = :name AND status IN ('pending', 'running') LIMIT 1;

-- name: advance_schedule
UPDATE underway_schedules
SET last_slot = :slot, run_count = run_count + :fired, updated_at = :now
WHERE name = :name;

-- name: count_schedule_run
UPDATE underway_schedules SET run_count = run_count + 1, updated_at = :now WHERE name = :name;

-- name: set_schedule_paused
-- Resuming counts the slots that passed while paused as handled: they are skipped.
UPDATE underway_schedules
SET paused = :paused,
    last_slot = CASE WHEN :paused OR NOT paused THEN last_slot
                     ELSE max(coalesce(last_slot, 0), :now) END,
    updated_at = :now
WHERE name = :name;

-- name: run_aggregates
-- {group}: the column runs are counted by (task or schedule), here and in the two below.
-- From the tallies: runs, failures and the durations summed (microseconds) per name.
SELECT {group}, sum(runs), coalesce(sum(CASE WHEN status = 'failed' THEN runs ELSE 0 END), 0),
       sum(duration)
FROM underway_tallies
WHERE {group} <> '' AND status IN ('completed', 'failed') {tenant}
GROUP BY {group} HAVING sum(runs) > 0;

-- name: run_recent
-- The latest ten finished runs of each name, newest first (name, status, duration,
-- started_at), each name's read backwards from its runs index (migration 0007).
SELECT g.name, j.status, j.completed_at - j.started_at, j.started_at
FROM (
    SELECT {group} AS name FROM underway_tallies
    WHERE {group} <> '' AND status IN ('completed', 'failed') {tenant}
    GROUP BY {group} HAVING sum(runs) > 0
) AS g
JOIN underway_jobs AS j ON j.id IN (
    SELECT id FROM underway_jobs
    WHERE {group} = g.name AND status IN ('completed', 'failed') AND started_at IS NOT NULL
          {tenant}
    ORDER BY completed_at DESC, id DESC
    LIMIT 10
)
ORDER BY g.name, j.completed_at DESC, j.id DESC;

-- name: run_running
SELECT {group}, count(*) FROM underway_jobs INDEXED BY underway_jobs_status
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
FROM underway_counters
GROUP BY task, queue
ORDER BY task, queue;

-- name: queue_depth
-- Unfinished jobs only: the status index finds them without reading the finished ones.
SELECT queue, status, count(*) FROM underway_jobs
WHERE status IN ('pending', 'running') GROUP BY queue, status;

-- name: stats_history
-- Finishes per minute from :since (a minute's start, Unix seconds), oldest first.
SELECT minute, sum(completed), sum(failed), sum(cancelled) FROM underway_minutes
WHERE minute >= :since {tenant}
GROUP BY minute ORDER BY minute;

-- name: prune_minutes
DELETE FROM underway_minutes WHERE minute < :now - :age;

-- --- callbacks ---------------------------------------------------------------------------------

-- name: deliveries_due
-- Read before claiming, so an idle deliverer never takes the write lock.
SELECT 1 FROM underway_deliveries INDEXED BY underway_deliveries_due
WHERE status = 'pending' AND next_at <= :now LIMIT 1;

-- name: claim_deliveries
-- The lease pushes next_at to its end: a sender that dies leaves the delivery due again then.
UPDATE underway_deliveries
SET locked_by = :sender,
    lease_token = lower(hex(randomblob(8))),
    locked_until = :now + :lease,
    next_at = :now + :lease
WHERE id IN (
    SELECT id FROM underway_deliveries INDEXED BY underway_deliveries_due
    WHERE status = 'pending' AND next_at <= :now
    ORDER BY next_at, id
    LIMIT :limit
)
RETURNING id, job_id, type, url, attempts, created_at, lease_token;

-- name: record_delivery
-- Only the claim that holds the lease records; its attempt is numbered from the new count.
UPDATE underway_deliveries
SET status = :status,
    attempts = attempts + 1,
    next_at = CASE WHEN :status = 'pending' THEN :now + :retry_in ELSE next_at END,
    locked_by = NULL,
    lease_token = NULL,
    locked_until = NULL,
    delivered_at = CASE WHEN :status = 'delivered' THEN :now ELSE delivered_at END,
    last_error = :error,
    last_status_code = :status_code
WHERE id = :id AND lease_token = :token AND status = 'pending'
RETURNING attempts;

-- name: insert_delivery_attempt
INSERT INTO underway_delivery_attempts (delivery_id, number, at, status_code, error, duration)
VALUES (:id, :number, :now - :duration, :status_code, :error, :duration);

-- name: job_deliveries
-- rowid after created_at: julianday('now') has whole milliseconds, so a retried job's two
-- deliveries can share one, and their random ids would then order them by chance.
SELECT * FROM underway_deliveries WHERE job_id = :job_id ORDER BY created_at, rowid;

-- name: job_delivery_attempts
SELECT a.* FROM underway_delivery_attempts AS a
JOIN underway_deliveries AS d ON d.id = a.delivery_id
WHERE d.job_id = :job_id
ORDER BY a.delivery_id, a.number;


-- --- the change feed, attempts and workers (stores/history.py) -------------------------------

-- name: changes
-- A job as it was right after each change: the changing fields from the change, the fixed
-- ones from the job. One writer at a time: seq order is commit order.
-- {filters}: the change_* fragments below that apply.
SELECT CAST(c.seq AS TEXT) AS cursor, c.kind, c.updated_at AS at,
    j.id, j.task, j.title, j.args, j.queue, j.priority, c.status, c.attempt, j.max_attempts,
    c.run_at, j.created_at, c.progress, c.status_message, c.payload, c.result, j.tenant,
    j.callback_url, j.key, c.started_at, c.completed_at, c.cancel_requested, j.schedule,
    c.rescues, c.error_message, c.error_type, c.error_traceback, c.updated_at, j.slot
FROM underway_changes AS c JOIN underway_jobs AS j ON j.id = c.job_id
WHERE c.seq > :seq {filters}
ORDER BY c.seq
LIMIT :limit;

-- name: change_job
AND c.job_id = :job_id

-- name: change_task
AND j.task = :task

-- name: change_queue
AND j.queue = :queue

-- name: change_tenant
AND j.tenant = :tenant

-- name: change_head
SELECT CAST(coalesce(max(seq), 0) AS TEXT) FROM underway_changes;

-- name: prune_changes
-- Only the oldest batch is looked at (seq order is commit order), so a call costs the same
-- however many changes are kept, and no index on updated_at is needed. The newest change
-- always stays: the next seq is the largest + 1, and must never go back to one a reader has.
DELETE FROM underway_changes WHERE seq IN (
    SELECT seq FROM (SELECT seq, updated_at FROM underway_changes ORDER BY seq LIMIT :batch)
    WHERE updated_at < :now - :age
) AND seq < (SELECT max(seq) FROM underway_changes)
RETURNING 1;  -- a row holds one change

-- name: attempts
-- The attempts the job's row let go of, then the one it holds (see migration 0003).
SELECT job_id, number, worker_id, started_at, ended_at, outcome, error_type, error_message,
       ended_at - started_at AS duration
FROM (
    SELECT id AS seq, job_id, number, worker_id, started_at, ended_at, outcome, error_type,
           error_message
    FROM underway_attempts WHERE job_id = :id
    UNION ALL
    SELECT NULL, id, attempt, worker_id, started_at,
           CASE WHEN status <> 'running' THEN completed_at END,
           CASE WHEN status <> 'running' THEN status END,
           CASE WHEN status IN ('failed', 'cancelled') THEN error_type END,
           CASE WHEN status IN ('failed', 'cancelled') THEN error_message END
    FROM underway_jobs WHERE id = :id AND started_at IS NOT NULL
)
ORDER BY seq IS NULL, seq;

-- name: beat_worker
INSERT INTO underway_workers
    (id, host, pid, queues, concurrency, started_at, last_beat_at, expires_at)
VALUES (:id, :host, :pid, :queues, :concurrency, :now, :now, :now + :lease)
ON CONFLICT (id) DO UPDATE SET last_beat_at = :now, expires_at = :now + :lease;

-- name: forget_worker
DELETE FROM underway_workers WHERE id = :id;

-- name: workers
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.last_beat_at,
       w.clock_skew,
       (SELECT count(*) FROM underway_jobs AS j
        WHERE j.status = 'running' AND j.worker_id = w.id) AS running
FROM underway_workers AS w
WHERE w.expires_at > :now
ORDER BY w.started_at, w.id;

-- name: prune_workers
DELETE FROM underway_workers WHERE expires_at < :now - 86400;

-- name: cancel_requests
SELECT id FROM underway_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'running' AND cancel_requested;

-- name: delete_finished
-- Deleting a job by hand, as prune does by age: only once it is finished.
DELETE FROM underway_jobs WHERE id = :id AND status IN ('completed', 'failed', 'cancelled');

-- --- API keys --------------------------------------------------------------------------------

-- name: insert_key
INSERT INTO underway_keys (id, name, tenant, secret_hash, created_at)
VALUES (:id, :name, :tenant, :secret_hash, :now)
RETURNING *;

-- name: get_key
SELECT * FROM underway_keys WHERE id = :id;

-- name: list_keys
SELECT * FROM underway_keys ORDER BY created_at, id;

-- name: revoke_key
-- Revoking twice keeps the first time.
UPDATE underway_keys SET revoked_at = coalesce(revoked_at, :now) WHERE id = :id RETURNING *;

-- name: touch_key
UPDATE underway_keys SET last_used_at = :now WHERE id = :id;

-- name: delivery_counts
-- The pending ones through the due index, which holds only those.
SELECT (SELECT coalesce(sum(delivered), 0) FROM underway_delivery_counters),
       (SELECT coalesce(sum(failed), 0) FROM underway_delivery_counters),
       (SELECT coalesce(sum(attempts), 0) FROM underway_delivery_counters),
       (SELECT count(*) FROM underway_deliveries WHERE status = 'pending');

-- --- tenant quotas (migration 0013, docs/decisions/0026-tenant-quotas.md) --------------------

-- name: take_tokens
-- Refill the tenant's bucket by the time since its last refill, then take :count tokens, only
-- if that many are there: no row back = refused (nothing changed). The write lock (begin) keeps
-- other enqueues out meanwhile; :now is read once it is held. max() keeps a clock that stepped
-- back from refilling the bucket twice.
INSERT INTO underway_quota_buckets AS b (tenant, tokens, refilled_at)
SELECT :tenant, :burst - :count, :now
WHERE :count <= :burst
ON CONFLICT (tenant) DO UPDATE
SET tokens = min(:burst, b.tokens + :rate * max(excluded.refilled_at - b.refilled_at, 0))
             - :count,
    refilled_at = max(b.refilled_at, excluded.refilled_at)
WHERE min(:burst, b.tokens + :rate * max(excluded.refilled_at - b.refilled_at, 0)) >= :count
RETURNING tokens;

-- name: bucket_tokens
-- The tokens a refused demand found (for its retry_after): a bucket never used is full.
SELECT coalesce((
    SELECT min(:burst, tokens + :rate * max(:now - refilled_at, 0))
    FROM underway_quota_buckets WHERE tenant = :tenant
), :burst);
