-- The change feed, attempt history and the workers registry.
-- (docs/decisions/0011-change-feed.md says why triggers.)

-- Every visible change of a job, with the job's changing fields as they were right after it;
-- the fixed fields (task, args, queue, tenant...) come from the job row. Written by the
-- triggers below in the transaction that made the change. SQLite has one writer at a time,
-- so seq order is commit order; AUTOINCREMENT never hands out a seq twice, even after pruning.
CREATE TABLE underway_changes (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX underway_changes_job ON underway_changes (job_id, seq);
CREATE INDEX underway_changes_at ON underway_changes (updated_at);

-- Every attempt of every job: opened when a job starts running, closed when it stops.
CREATE TABLE underway_attempts (
    id            INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    worker_id     TEXT,
    started_at    REAL NOT NULL,
    ended_at      REAL,
    outcome       TEXT,
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

-- What watchers see; a heartbeat changes nothing they can see and records nothing.
CREATE TRIGGER underway_feed_updated AFTER UPDATE ON underway_jobs
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

-- The attempt that began.
CREATE TRIGGER underway_attempt_started AFTER UPDATE OF status ON underway_jobs
WHEN NEW.status = 'running' AND OLD.status <> 'running'
BEGIN
    INSERT INTO underway_attempts (job_id, number, worker_id, started_at)
    VALUES (NEW.id, NEW.attempt, NEW.worker_id, coalesce(NEW.started_at, NEW.updated_at));
END;

-- The attempt that ended, with how it ended.
CREATE TRIGGER underway_attempt_ended AFTER UPDATE OF status ON underway_jobs
WHEN OLD.status = 'running' AND NEW.status <> 'running'
BEGIN
    UPDATE underway_attempts
    SET ended_at = NEW.updated_at,
        outcome = CASE
            WHEN NEW.status <> 'pending' THEN NEW.status
            WHEN NEW.rescues > OLD.rescues THEN 'rescued'
            WHEN NEW.attempt < OLD.attempt THEN 'handed_back'
            ELSE 'retry' END,
        -- a completed or handed-back attempt failed at nothing: the job's error is an
        -- earlier attempt's
        error_type = CASE WHEN NEW.status = 'completed' OR NEW.attempt < OLD.attempt
                          THEN NULL ELSE NEW.error_type END,
        error_message = CASE WHEN NEW.status = 'completed' OR NEW.attempt < OLD.attempt
                             THEN NULL ELSE NEW.error_message END
    WHERE job_id = NEW.id AND ended_at IS NULL;
END;

-- A job's history goes with it.
CREATE TRIGGER underway_history_deleted AFTER DELETE ON underway_jobs
BEGIN
    DELETE FROM underway_changes WHERE job_id = OLD.id;
    DELETE FROM underway_attempts WHERE job_id = OLD.id;
END;
