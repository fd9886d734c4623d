-- Suspects (docs/decisions/0024-suspects-run-alone.md): pending jobs a crash was rescued from.
-- A worker claims one of them alone, and only when one is there; this index keeps that look
-- and that claim cheap however deep the queue is, and holds no row while no worker crashed.
CREATE INDEX underway_jobs_suspects ON {schema}.underway_jobs (priority DESC, run_at, id)
    WHERE status = 'pending' AND rescues > 0;
