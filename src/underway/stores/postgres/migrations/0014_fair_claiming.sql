-- Fair claiming (docs/decisions/0027-fair-claiming.md): the claim finds each queue's tenants
-- with work by skipping through these, one probe per (queue, tenant), and reads each one's
-- first jobs in claim order: ready ones by priority and age, delayed ones by when they are due.
CREATE INDEX underway_jobs_fair_ready
    ON {schema}.underway_jobs (queue, coalesce(tenant, ''), priority DESC, run_at, id)
    WHERE status = 'pending' AND ready;
CREATE INDEX underway_jobs_fair_due
    ON {schema}.underway_jobs (queue, coalesce(tenant, ''), run_at, id)
    WHERE status = 'pending' AND NOT ready;
