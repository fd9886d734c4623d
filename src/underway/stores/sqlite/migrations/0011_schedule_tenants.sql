-- A schedule run once per tenant (docs/decisions/0020-tenants-in-bulk.md) keeps whom it runs
-- for, so a listing in a process that does not declare it still shows them: a JSON list of
-- tenants, or a JSON string naming the function that lists them at each slot. NULL: a schedule
-- whose jobs carry one tenant (the tenant column) or none.
ALTER TABLE underway_schedules ADD COLUMN tenants TEXT;
