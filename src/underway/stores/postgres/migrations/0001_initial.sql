-- The job table. {schema} is replaced by the store's schema name (quoted).
CREATE TABLE {schema}.underway_jobs (
    id               uuid PRIMARY KEY,            -- UUIDv7: index order is creation order
    task             text NOT NULL,
    title            text NOT NULL,
    args             jsonb NOT NULL,
    queue            text NOT NULL,
    priority         integer NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'running', 'completed', 'failed', 'cancelled')),
    -- false while a pending job waits for a future run_at; claiming reads due jobs from the
    -- small "staged" index, so a million scheduled jobs never slow a claim down
    ready            boolean NOT NULL DEFAULT true,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    rescues          integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    progress         double precision,
    status_message   text,
    payload          jsonb,
    result           jsonb,
    error_message    text,
    error_type       text,
    error_traceback  text,
    tenant           text,
    callback_url     text,
    key              text,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    completed_at     timestamptz,
    updated_at       timestamptz NOT NULL,
    worker_id        text,
    lease_token      text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false
);

-- Claiming due jobs, highest priority first, oldest first: all queues, and one queue.
CREATE INDEX underway_jobs_ready ON {schema}.underway_jobs (priority DESC, run_at, id)
    WHERE status = 'pending' AND ready;
CREATE INDEX underway_jobs_ready_queue ON {schema}.underway_jobs (queue, priority DESC, run_at, id)
    WHERE status = 'pending' AND ready;

-- Pending jobs waiting for their time.
CREATE INDEX underway_jobs_scheduled ON {schema}.underway_jobs (run_at, id)
    WHERE status = 'pending' AND NOT ready;

-- Rescuing expired leases.
CREATE INDEX underway_jobs_leases ON {schema}.underway_jobs (lease_expires_at)
    WHERE status = 'running';

-- One unfinished job per unique key.
CREATE UNIQUE INDEX underway_jobs_key ON {schema}.underway_jobs (key)
    WHERE key IS NOT NULL AND status IN ('pending', 'running');

-- Listing, stats and pruning.
CREATE INDEX underway_jobs_status ON {schema}.underway_jobs (status, id);
CREATE INDEX underway_jobs_task ON {schema}.underway_jobs (task, id);
CREATE INDEX underway_jobs_tenant ON {schema}.underway_jobs (tenant, id) WHERE tenant IS NOT NULL;
CREATE INDEX underway_jobs_finished ON {schema}.underway_jobs (completed_at)
    WHERE status IN ('completed', 'cancelled', 'failed');

-- Queue controls shared by every worker: pause, and a concurrency limit across all workers.
CREATE TABLE {schema}.underway_queues (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    concurrency integer CHECK (concurrency IS NULL OR concurrency >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
