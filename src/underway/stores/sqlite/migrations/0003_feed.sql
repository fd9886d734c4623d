-- The change feed, attempt history and the workers registry.
-- (docs/decisions/0011-change-feed.md says why triggers.)

-- Every visible change of a job, with the job's changing fields as they were right after it;
-- the fixed fields (task, args, queue, tenant...) come from the job row. Written by the
-- triggers below in the transaction that made the change. SQLite has one writer at a time,
-- so seq order is commit order. A new seq is the largest + 1, and the prune never deletes the
-- newest change: so no seq is handed out twice, without AUTOINCREMENT's extra write per insert.
CREATE TABLE underway_changes (
    seq              INTEGER PRIMARY KEY,
    job_id           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    rescues          INTEGER NOT NULL,
    run_at           REAL NOT NULL,
    progress         REAL,
    status_message   TEXT,
    payload          TEXT,
    result           TEXT,
    error_message    TEXT,
    error_type       TEXT,
    error_traceback  TEXT,
    started_at       REAL,
    completed_at     REAL,
    updated_at       REAL NOT NULL,
    cancel_requested INTEGER NOT NULL
);
-- No index on job_id: a watcher of one job reads the changes after its cursor, which are the
-- same few a watcher of all reads, and a second b-tree per change was the feed's largest cost.

-- The attempts a job's row no longer holds. The row holds its latest attempt while its
-- started_at is set: while it runs, and after its worker finished it for good. It lets go when
-- the attempt is retried, rescued or handed back, or when a person retries the finished job
-- (started_at cleared): the trigger below files the attempt here then. So a job that succeeds
-- at its first attempt, the common case by far, writes no attempt row at all.
CREATE TABLE underway_attempts (
    id            INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    worker_id     TEXT,
    started_at    REAL NOT NULL,
    ended_at      REAL,
    outcome       TEXT NOT NULL,
    error_type    TEXT,
    error_message TEXT
);
CREATE INDEX underway_attempts_job ON underway_attempts (job_id, id);

-- Workers announce themselves at each heartbeat; a row whose lease passed is a dead worker.
CREATE TABLE underway_workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT,             -- JSON array; NULL: every queue
    concurrency  INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    last_beat_at REAL NOT NULL,
    expires_at   REAL NOT NULL
);

CREATE TRIGGER underway_feed_inserted AFTER INSERT ON underway_jobs
BEGIN
    INSERT INTO underway_changes (job_id, kind, status, attempt, rescues, run_at, progress, status_message, payload, result, error_message, error_type, error_traceback, started_at, completed_at, updated_at, cancel_requested)
    VALUES (NEW.id, 'enqueued', NEW.status, NEW.attempt, NEW.rescues, NEW.run_at, NEW.progress, NEW.status_message, NEW.payload, NEW.result, NEW.error_message, NEW.error_type, NEW.error_traceback, NEW.started_at, NEW.completed_at, NEW.updated_at, NEW.cancel_requested);
END;

-- What watchers see; a heartbeat changes nothing they can see and records nothing (the
-- column list keeps this trigger out of the heartbeat's statement altogether).
CREATE TRIGGER underway_feed_updated
AFTER UPDATE OF status, cancel_requested, progress, status_message, payload, run_at
ON underway_jobs
WHEN NEW.status IS NOT OLD.status OR NEW.cancel_requested IS NOT OLD.cancel_requested
  OR NEW.progress IS NOT OLD.progress OR NEW.status_message IS NOT OLD.status_message
  OR NEW.payload IS NOT OLD.payload OR NEW.run_at IS NOT OLD.run_at
BEGIN
    INSERT INTO underway_changes (job_id, kind, status, attempt, rescues, run_at, progress, status_message, payload, result, error_message, error_type, error_traceback, started_at, completed_at, updated_at, cancel_requested)
    VALUES (NEW.id,
        CASE
            WHEN NEW.status IS NOT OLD.status THEN CASE
                WHEN NEW.status = 'running' THEN 'started'
                WHEN NEW.status = 'pending' AND OLD.status = 'running' THEN 'requeued'
                WHEN NEW.status = 'pending' THEN 'retried'
                ELSE NEW.status END
            WHEN NEW.cancel_requested AND NOT OLD.cancel_requested THEN 'cancel_requested'
            ELSE 'reported' END,
        NEW.status, NEW.attempt, NEW.rescues, NEW.run_at, NEW.progress, NEW.status_message, NEW.payload, NEW.result, NEW.error_message, NEW.error_type, NEW.error_traceback, NEW.started_at, NEW.completed_at, NEW.updated_at, NEW.cancel_requested);
END;

-- An attempt the job's row lets go of, with how it ended.
CREATE TRIGGER underway_attempt_ended AFTER UPDATE OF started_at ON underway_jobs
WHEN OLD.started_at IS NOT NULL AND NEW.started_at IS NULL
BEGIN
    INSERT INTO underway_attempts (job_id, number, worker_id, started_at, ended_at, outcome,
                                   error_type, error_message)
    -- a completed or handed-back attempt failed at nothing: the job's error is an earlier
    -- attempt's
    SELECT NEW.id, OLD.attempt, OLD.worker_id, OLD.started_at, ended_at, outcome,
           CASE WHEN outcome = 'completed' OR refunded THEN NULL
                ELSE error_type END,
           CASE WHEN outcome = 'completed' OR refunded THEN NULL
                ELSE error_message END
    FROM (
        -- ended by its worker or a rescue just now
        SELECT NEW.updated_at AS ended_at,
               CASE WHEN NEW.status <> 'pending' THEN NEW.status
                    WHEN NEW.rescues > OLD.rescues THEN 'rescued'
                    WHEN NEW.attempt < OLD.attempt THEN 'handed_back'
                    ELSE 'retry' END AS outcome,
               NEW.attempt < OLD.attempt AS refunded,
               NEW.error_type AS error_type, NEW.error_message AS error_message
        WHERE OLD.status = 'running'
        UNION ALL
        -- finished earlier; a person retries the job
        SELECT OLD.completed_at, OLD.status, 0, OLD.error_type, OLD.error_message
        WHERE OLD.status <> 'running'
    );
END;

-- A job's attempts go with it. Its changes stay until they age out like every other: the
-- feed joins the job row, so they are seen no more, and finding them would need the index
-- on job_id that the feed does without.
CREATE TRIGGER underway_history_deleted AFTER DELETE ON underway_jobs
BEGIN
    DELETE FROM underway_attempts WHERE job_id = OLD.id;
END;
