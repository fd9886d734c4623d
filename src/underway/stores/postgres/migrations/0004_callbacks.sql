-- Completion callbacks. A delivery is one POST a job owes its callback_url after reaching a
-- final state; it is written by a trigger in the transaction that finished the job, so a crash
-- between finishing and sending cannot lose it.
CREATE TABLE {schema}.underway_deliveries (
    id               text PRIMARY KEY,       -- the Standard Webhooks message id, msg_<hex>,
                                             -- the same in every attempt of this delivery
    job_id           uuid NOT NULL,
    type             text NOT NULL CHECK (type IN
                         ('job.completed', 'job.failed', 'job.cancelled')),
    url              text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_at          timestamptz NOT NULL,   -- due then; a claim pushes it to the lease's end
    locked_by        text,                   -- the worker sending it now
    lease_token      text,                   -- that claim's token: only it may record
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL,   -- when the job reached its final state
    delivered_at     timestamptz,
    last_error       text,
    last_status_code integer
);

-- Claiming due deliveries, and a job's deliveries (listing; deleting them with the job).
CREATE INDEX underway_deliveries_due ON {schema}.underway_deliveries (next_at, id)
    WHERE status = 'pending';
CREATE INDEX underway_deliveries_job ON {schema}.underway_deliveries (job_id);

-- Every attempt of a delivery, with what the receiver answered.
CREATE TABLE {schema}.underway_delivery_attempts (
    delivery_id text NOT NULL,
    number      integer NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer,
    error       text,
    duration    double precision NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

CREATE FUNCTION {schema}.underway_deliveries_on_finish() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.underway_deliveries (id, job_id, type, url, next_at, created_at)
    VALUES ('msg_' || replace(gen_random_uuid()::text, '-', ''), NEW.id, 'job.' || NEW.status,
            NEW.callback_url, now(), now());
    RETURN NULL;
END
$$;

-- Whatever statement moves a job with a callback_url into a final state (a worker's finish,
-- a rescue that gives up, a cancel of a pending job) owes a delivery. The WHEN clause is
-- checked before any function call, so jobs without a callback cost next to nothing.
CREATE TRIGGER underway_deliveries_on_finish
AFTER UPDATE OF status ON {schema}.underway_jobs
FOR EACH ROW
WHEN (NEW.callback_url IS NOT NULL
      AND NEW.status IN ('completed', 'failed', 'cancelled')
      AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION {schema}.underway_deliveries_on_finish();

CREATE FUNCTION {schema}.underway_deliveries_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.underway_delivery_attempts WHERE delivery_id IN
        (SELECT id FROM {schema}.underway_deliveries WHERE job_id = OLD.id);
    DELETE FROM {schema}.underway_deliveries WHERE job_id = OLD.id;
    RETURN NULL;
END
$$;

-- A job's deliveries and their attempts go with the job (prune, delete).
CREATE TRIGGER underway_deliveries_on_delete
AFTER DELETE ON {schema}.underway_jobs
FOR EACH ROW
WHEN (OLD.callback_url IS NOT NULL)
EXECUTE FUNCTION {schema}.underway_deliveries_on_delete();
