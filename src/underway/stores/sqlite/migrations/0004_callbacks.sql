-- Completion callbacks. A delivery is one POST a job owes its callback_url after reaching a
-- final state; it is written by a trigger in the transaction that finished the job, so a crash
-- between finishing and sending cannot lose it. Times are Unix seconds (REAL).
CREATE TABLE underway_deliveries (
    id               TEXT PRIMARY KEY,       -- the Standard Webhooks message id, msg_<hex>,
                                             -- the same in every attempt of this delivery
    job_id           TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN
                         ('job.completed', 'job.failed', 'job.cancelled')),
    url              TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_at          REAL NOT NULL,          -- due then; a claim pushes it to the lease's end
    locked_by        TEXT,                   -- the worker sending it now
    lease_token      TEXT,                   -- that claim's token: only it may record
    locked_until     REAL,
    created_at       REAL NOT NULL,          -- when the job reached its final state
    delivered_at     REAL,
    last_error       TEXT,
    last_status_code INTEGER
);

-- Claiming due deliveries, and a job's deliveries (listing; deleting them with the job).
CREATE INDEX underway_deliveries_due ON underway_deliveries (next_at, id)
    WHERE status = 'pending';
CREATE INDEX underway_deliveries_job ON underway_deliveries (job_id);

-- Every attempt of a delivery, with what the receiver answered.
CREATE TABLE underway_delivery_attempts (
    delivery_id TEXT NOT NULL,
    number      INTEGER NOT NULL,
    at          REAL NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration    REAL NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- Whatever statement moves a job with a callback_url into a final state (a worker's finish,
-- a rescue that gives up, a cancel of a pending job) owes a delivery.
CREATE TRIGGER underway_deliveries_on_finish
AFTER UPDATE OF status ON underway_jobs
WHEN NEW.callback_url IS NOT NULL
     AND NEW.status IN ('completed', 'failed', 'cancelled')
     AND OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO underway_deliveries (id, job_id, type, url, next_at, created_at)
    VALUES ('msg_' || lower(hex(randomblob(16))), NEW.id, 'job.' || NEW.status,
            NEW.callback_url,
            (julianday('now') - 2440587.5) * 86400.0,
            (julianday('now') - 2440587.5) * 86400.0);
END;

-- A job's deliveries and their attempts go with the job (prune, delete).
CREATE TRIGGER underway_deliveries_on_delete
AFTER DELETE ON underway_jobs
WHEN OLD.callback_url IS NOT NULL
BEGIN
    DELETE FROM underway_delivery_attempts WHERE delivery_id IN
        (SELECT id FROM underway_deliveries WHERE job_id = OLD.id);
    DELETE FROM underway_deliveries WHERE job_id = OLD.id;
END;
