-- A scheduled job knows the slot it was fired for (Job.slot, decision 0019): the time the
-- schedule's rule made it due, also when a scheduler fires it late after downtime. NULL for a
-- job not fired for a slot (enqueued, or a triggered run).
ALTER TABLE {schema}.underway_jobs ADD COLUMN slot timestamptz;
