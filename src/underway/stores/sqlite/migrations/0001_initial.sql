-- The job table. Times are Unix seconds (REAL) from the store's clock.
CREATE TABLE underway_jobs (
    id               TEXT PRIMARY KEY,           -- UUIDv7, so text order is creation order
    task             TEXT NOT NULL,
    title            TEXT NOT NULL,
    args             TEXT NOT NULL,              -- JSON object: parameter name -> value
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'running', 'completed', 'failed', 'cancelled')),
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    rescues          INTEGER NOT NULL DEFAULT 0,
    run_at           REAL NOT NULL,
    progress         REAL,
    status_message   TEXT,
    payload          TEXT,
    result           TEXT,
    error_message    TEXT,
    error_type       TEXT,
    error_traceback  TEXT,
    tenant           TEXT,
    callback_url     TEXT,
    key              TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    completed_at     REAL,
    updated_at       REAL NOT NULL,
    worker_id        TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- Claiming: due pending jobs, highest priority first, oldest first: all queues, and one queue.
CREATE INDEX underway_jobs_claim ON underway_jobs (priority DESC, run_at, id)
    WHERE status = 'pending';
CREATE INDEX underway_jobs_claim_queue ON underway_jobs (queue, priority DESC, run_at, id)
    WHERE status = 'pending';

-- When is the next pending job due (idle workers sleep until then).
CREATE INDEX underway_jobs_due ON underway_jobs (run_at) WHERE status = 'pending';

-- Rescuing expired leases.
CREATE INDEX underway_jobs_leases ON underway_jobs (lease_expires_at) WHERE status = 'running';

-- One unfinished job per unique key.
CREATE UNIQUE INDEX underway_jobs_key ON underway_jobs (key)
    WHERE key IS NOT NULL AND status IN ('pending', 'running');

-- Listing and stats.
CREATE INDEX underway_jobs_status ON underway_jobs (status, id);
CREATE INDEX underway_jobs_task ON underway_jobs (task, id);
CREATE INDEX underway_jobs_tenant ON underway_jobs (tenant, id) WHERE tenant IS NOT NULL;

-- Pruning finished jobs.
CREATE INDEX underway_jobs_finished ON underway_jobs (completed_at)
    WHERE status IN ('completed', 'cancelled', 'failed');

-- Queue controls shared by every worker: pause, and a concurrency limit across all workers.
CREATE TABLE underway_queues (
    name        TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER CHECK (concurrency IS NULL OR concurrency >= 0),
    updated_at  REAL NOT NULL
);
