-- A scheduled job knows the slot it was fired for (Job.slot, decision 0019): the time the
-- schedule's rule made it due, also when a scheduler fires it late after downtime. NULL for a
-- job not fired for a slot (enqueued, or a triggered run). Unix seconds like the other times.
ALTER TABLE underway_jobs ADD COLUMN slot REAL;
