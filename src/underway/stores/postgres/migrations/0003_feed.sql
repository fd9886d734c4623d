-- The change feed, attempt history and the workers registry.
-- (docs/decisions/0011-change-feed.md says why triggers, and why the cursor is (xid, seq).)

-- Every visible change of a job, with the job's changing fields as they were right after it;
-- the fixed fields (task, args, queue, tenant...) come from the job row. Written by the
-- triggers below in the transaction that made the change, so a change is in the feed exactly
-- when it committed. Readers walk (xid, seq) and only below the oldest transaction still in
-- flight, so a change that commits late can never land behind a reader's cursor.
CREATE TABLE {schema}.underway_changes (
    -- the writing transaction, or a younger one that changed the same job first (see below)
    xid              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    job_id           uuid NOT NULL,
    kind             text NOT NULL,
    status           text NOT NULL,
    attempt          integer NOT NULL,
    rescues          integer NOT NULL,
    run_at           timestamptz NOT NULL,
    progress         double precision,
    status_message   text,
    payload          jsonb,
    result           jsonb,
    error_message    text,
    error_type       text,
    error_traceback  text,
    started_at       timestamptz,
    completed_at     timestamptz,
    updated_at       timestamptz NOT NULL,
    cancel_requested boolean NOT NULL,
    PRIMARY KEY (xid, seq)
);
CREATE INDEX underway_changes_job ON {schema}.underway_changes (job_id, xid, seq);

-- Every attempt of every job: opened when a job starts running, closed when it stops.
CREATE TABLE {schema}.underway_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        uuid NOT NULL,
    number        integer NOT NULL,
    worker_id     text,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    outcome       text,
    error_type    text,
    error_message text
);
CREATE INDEX underway_attempts_job ON {schema}.underway_attempts (job_id, id);
CREATE INDEX underway_attempts_open ON {schema}.underway_attempts (job_id) WHERE ended_at IS NULL;

-- Workers announce themselves at each heartbeat; a row whose lease passed is a dead worker.
CREATE TABLE {schema}.underway_workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[],
    concurrency  integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_beat_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- Statement triggers over transition tables: a claim or a finish of a hundred jobs records
-- its hundred changes in one INSERT, not a hundred.
CREATE FUNCTION {schema}.underway_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.underway_changes (job_id, kind, status, attempt, rescues, run_at,
        progress, status_message, payload, result, error_message, error_type, error_traceback,
        started_at, completed_at, updated_at, cancel_requested)
    SELECT n.id, 'enqueued', n.status, n.attempt, n.rescues, n.run_at, n.progress,
        n.status_message, n.payload, n.result, n.error_message, n.error_type,
        n.error_traceback, n.started_at, n.completed_at, n.updated_at, n.cancel_requested
    FROM new_rows AS n;
    IF FOUND THEN
        PERFORM pg_notify('underway-feed:' || left(md5(TG_TABLE_SCHEMA), 16), '');
    END IF;
    RETURN NULL;
END $$;

-- Without stats on the transition tables the planner guesses them big, and the per-job lookup
-- below would then cross jit_above_cost: compiling the statement costs more than it runs.
CREATE FUNCTION {schema}.underway_jobs_updated() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    -- The attempt that ended: closed with how it ended.
    UPDATE {schema}.underway_attempts AS a
    SET ended_at = n.updated_at,
        outcome = CASE
            WHEN n.status <> 'pending' THEN n.status
            WHEN n.rescues > o.rescues THEN 'rescued'
            WHEN n.attempt < o.attempt THEN 'handed_back'
            ELSE 'retry' END,
        -- a completed or handed-back attempt failed at nothing: the job's error is an
        -- earlier attempt's
        error_type = CASE WHEN n.status = 'completed' OR n.attempt < o.attempt
                          THEN NULL ELSE n.error_type END,
        error_message = CASE WHEN n.status = 'completed' OR n.attempt < o.attempt
                             THEN NULL ELSE n.error_message END
    FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
    WHERE o.status = 'running' AND n.status <> 'running'
      AND a.job_id = n.id AND a.ended_at IS NULL;
    -- The attempt that began.
    INSERT INTO {schema}.underway_attempts (job_id, number, worker_id, started_at)
    SELECT n.id, n.attempt, n.worker_id, coalesce(n.started_at, n.updated_at)
    FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
    WHERE n.status = 'running' AND o.status <> 'running';
    -- What watchers see; a heartbeat changes nothing they can see and records nothing.
    -- A job's changes must keep the order they committed in, and this transaction may have
    -- taken its id before one that changed the job first (it waited for the row lock, as a
    -- batch of outcomes waits for a cancel): it then files its change under that younger id.
    -- Still never below its own id, so the change stays invisible to readers until it commits.
    INSERT INTO {schema}.underway_changes (xid, job_id, kind, status, attempt, rescues, run_at,
        progress, status_message, payload, result, error_message, error_type, error_traceback,
        started_at, completed_at, updated_at, cancel_requested)
    SELECT greatest(pg_current_xact_id(), (
            SELECT c.xid FROM {schema}.underway_changes AS c
            WHERE c.job_id = n.id ORDER BY c.xid DESC LIMIT 1)),
        n.id,
        CASE
            WHEN n.status IS DISTINCT FROM o.status THEN CASE
                WHEN n.status = 'running' THEN 'started'
                WHEN n.status = 'pending' AND o.status = 'running' THEN 'requeued'
                WHEN n.status = 'pending' THEN 'retried'
                ELSE n.status END
            WHEN n.cancel_requested AND NOT o.cancel_requested THEN 'cancel_requested'
            ELSE 'reported' END,
        n.status, n.attempt, n.rescues, n.run_at, n.progress, n.status_message, n.payload,
        n.result, n.error_message, n.error_type, n.error_traceback, n.started_at,
        n.completed_at, n.updated_at, n.cancel_requested
    FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
    WHERE n.status IS DISTINCT FROM o.status
       OR n.cancel_requested IS DISTINCT FROM o.cancel_requested
       OR n.progress IS DISTINCT FROM o.progress
       OR n.status_message IS DISTINCT FROM o.status_message
       OR n.payload IS DISTINCT FROM o.payload
       OR n.run_at IS DISTINCT FROM o.run_at;
    IF FOUND THEN
        PERFORM pg_notify('underway-feed:' || left(md5(TG_TABLE_SCHEMA), 16), '');
    END IF;
    -- The worker running a job learns of its cancel at once, not at its next heartbeat.
    PERFORM pg_notify('underway-cancel:' || left(md5(TG_TABLE_SCHEMA), 16), n.id::text)
    FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
    WHERE n.cancel_requested AND NOT o.cancel_requested;
    RETURN NULL;
END $$;

-- A job's history goes with it.
CREATE FUNCTION {schema}.underway_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.underway_changes AS c USING old_rows AS o WHERE c.job_id = o.id;
    DELETE FROM {schema}.underway_attempts AS a USING old_rows AS o WHERE a.job_id = o.id;
    RETURN NULL;
END $$;

CREATE TRIGGER underway_feed_inserted AFTER INSERT ON {schema}.underway_jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_jobs_inserted();
CREATE TRIGGER underway_feed_updated AFTER UPDATE ON {schema}.underway_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_jobs_updated();
CREATE TRIGGER underway_feed_deleted AFTER DELETE ON {schema}.underway_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.underway_jobs_deleted();
