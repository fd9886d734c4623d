-- The change feed, attempt history and the workers registry.
-- (docs/decisions/0011-change-feed.md says why triggers, and why the cursor is (xid, seq).)

-- Every visible change of a job, with the job's changing fields as they were right after it;
-- the fixed fields (task, args, queue, tenant...) come from the job row. Written by the
-- triggers below in the transaction that made the change, so a change is in the feed exactly
-- when it committed. Readers walk (xid, seq, item) and only below the oldest transaction still
-- in flight, so a change that commits late can never land behind a reader's cursor.
CREATE TYPE {schema}.underway_change AS (
    job_id           uuid,
    kind             text,
    status           text,
    attempt          integer,
    rescues          integer,
    run_at           timestamptz,
    progress         double precision,
    status_message   text,
    payload          jsonb,
    result           jsonb,
    error_message    text,
    error_type       text,
    error_traceback  text,
    started_at       timestamptz,
    completed_at     timestamptz,
    updated_at       timestamptz,
    cancel_requested boolean
);

-- One row per statement that changed jobs (per about a thousand, for a bigger one), its changes
-- in `items`: a claim or a finish of a hundred jobs writes one row and one index entry, not a
-- hundred; a row per change was most of what the feed cost the drain. A job appears at most
-- once in a statement, so the order of the items within one does not matter.
CREATE TABLE {schema}.underway_changes (
    -- the writing transaction, or a younger one that changed the same job first (see below)
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    updated_at timestamptz NOT NULL DEFAULT now(),  -- what pruning ages
    items      {schema}.underway_change[] NOT NULL,
    PRIMARY KEY (xid, seq)
);
-- No index on the job: a watcher of one job reads the changes after its cursor, which are the
-- same few a watcher of all reads.

-- The attempts a job's row no longer holds. The row holds its latest attempt while its
-- started_at is set: while it runs, and after its worker finished it for good. It lets go when
-- the attempt is retried, rescued or handed back, or when a person retries the finished job
-- (started_at cleared): the trigger below files the attempt here then. So a job that succeeds
-- at its first attempt, the common case by far, writes no attempt row at all.
CREATE TABLE {schema}.underway_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        uuid NOT NULL,
    number        integer NOT NULL,
    worker_id     text,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    outcome       text NOT NULL,
    error_type    text,
    error_message text
);
CREATE INDEX underway_attempts_job ON {schema}.underway_attempts (job_id, id);

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
-- its hundred changes in one row of one INSERT.
CREATE FUNCTION {schema}.underway_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- A row per thousand changes at most, so a reader resuming inside a big statement's
    -- changes never unpacks more than that; the hash only runs for a statement that big.
    parts integer := (SELECT count(*) FROM new_rows) / 1000 + 1;
BEGIN
    INSERT INTO {schema}.underway_changes (items)
    SELECT array_agg(ROW(n.id, 'enqueued', n.status, n.attempt, n.rescues, n.run_at,
        n.progress, n.status_message, n.payload, n.result, n.error_message, n.error_type,
        n.error_traceback, n.started_at, n.completed_at, n.updated_at,
        n.cancel_requested)::{schema}.underway_change)
    FROM new_rows AS n
    GROUP BY CASE WHEN parts = 1 THEN 0 ELSE abs(hashtext(n.id::text)) % parts END;
    IF FOUND THEN
        PERFORM pg_notify('underway-feed:' || left(md5(TG_TABLE_SCHEMA), 16), '');
    END IF;
    RETURN NULL;
END $$;

-- Without stats on the transition tables the planner guesses them big, and the statement
-- below would then cross jit_above_cost: compiling it costs more than it runs.
CREATE FUNCTION {schema}.underway_jobs_updated() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    -- Where this statement's changes are filed. A job's changes must keep the order they
    -- committed in, and this transaction may have taken its id before one that changed the
    -- job first (it waited for the row lock, as a batch of outcomes waits for a cancel).
    -- That one has finished by now, so its id is at most the newest finished id (the fresh
    -- snapshot's xmax - 1, which a transaction took already: a change filed there becomes
    -- visible, one filed at xmax would wait for a later transaction). Never below this
    -- transaction's own id: a reader only reads below the oldest transaction in flight, so
    -- nothing can be filed behind a cursor.
    filed xid8 := greatest(pg_current_xact_id(),
        (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1)::text::xid8);
    parts integer := (SELECT count(*) FROM new_rows) / 1000 + 1;  -- as in the insert trigger
BEGIN
    -- What watchers see; a heartbeat changes nothing they can see and records nothing.
    INSERT INTO {schema}.underway_changes (xid, items)
    SELECT filed, array_agg(ROW(n.id,
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
        n.completed_at, n.updated_at, n.cancel_requested)::{schema}.underway_change)
    FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
    WHERE n.status IS DISTINCT FROM o.status
       OR n.cancel_requested IS DISTINCT FROM o.cancel_requested
       OR n.progress IS DISTINCT FROM o.progress
       OR n.status_message IS DISTINCT FROM o.status_message
       OR n.payload IS DISTINCT FROM o.payload
       OR n.run_at IS DISTINCT FROM o.run_at
    GROUP BY CASE WHEN parts = 1 THEN 0 ELSE abs(hashtext(n.id::text)) % parts END;
    IF FOUND THEN
        PERFORM pg_notify('underway-feed:' || left(md5(TG_TABLE_SCHEMA), 16), '');
    END IF;
    -- The attempts the job rows let go of. A claim, a heartbeat, a report and a finish for
    -- good all keep started_at set: only then is a second pass over the rows paid.
    IF EXISTS (SELECT FROM new_rows WHERE started_at IS NULL) THEN
        INSERT INTO {schema}.underway_attempts (job_id, number, worker_id, started_at, ended_at,
            outcome, error_type, error_message)
        SELECT id, old_attempt, old_worker_id, old_started_at, ended_at, outcome,
            -- a completed or handed-back attempt failed at nothing: the job's error is an
            -- earlier attempt's
            CASE WHEN outcome = 'completed' OR refunded THEN NULL ELSE error_type END,
            CASE WHEN outcome = 'completed' OR refunded THEN NULL ELSE error_message END
        FROM (
            SELECT n.id, o.attempt AS old_attempt, o.worker_id AS old_worker_id,
                o.started_at AS old_started_at,
                o.status = 'running' AND n.attempt < o.attempt AS refunded,
                -- ended by its worker or a rescue just now, or finished earlier, retried now
                CASE WHEN o.status = 'running' THEN n.updated_at ELSE o.completed_at END
                    AS ended_at,
                CASE WHEN o.status <> 'running' THEN o.status
                     WHEN n.status <> 'pending' THEN n.status
                     WHEN n.rescues > o.rescues THEN 'rescued'
                     WHEN n.attempt < o.attempt THEN 'handed_back'
                     ELSE 'retry' END AS outcome,
                CASE WHEN o.status = 'running' THEN n.error_type ELSE o.error_type END
                    AS error_type,
                CASE WHEN o.status = 'running' THEN n.error_message ELSE o.error_message END
                    AS error_message
            FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
            WHERE o.started_at IS NOT NULL AND n.started_at IS NULL
        ) AS let_go;
    END IF;
    -- The worker running a job learns of its cancel at once, not at its next heartbeat. Most
    -- statements touch no cancelled job: only then is the join paid.
    IF EXISTS (SELECT FROM new_rows WHERE cancel_requested) THEN
        PERFORM pg_notify('underway-cancel:' || left(md5(TG_TABLE_SCHEMA), 16), n.id::text)
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
        WHERE n.cancel_requested AND NOT o.cancel_requested;
    END IF;
    RETURN NULL;
END $$;

-- A job's attempts go with it. Its changes stay until they age out like every other: the
-- feed joins the job row, so they are seen no more, and finding them would need the index
-- on job_id that the feed does without.
CREATE FUNCTION {schema}.underway_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
