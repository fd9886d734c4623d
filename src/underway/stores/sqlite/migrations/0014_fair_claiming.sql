-- Fair claiming (docs/decisions/0027-fair-claiming.md): the claim finds each queue's tenants
-- with work by skipping through this index, one probe per (queue, tenant), and reads each
-- one's first jobs in claim order.
CREATE INDEX underway_jobs_fair
    ON underway_jobs (queue, coalesce(tenant, ''), priority DESC, run_at, id)
    WHERE status = 'pending';
