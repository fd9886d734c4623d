-- Each worker's clock against the server's, measured at its beat (decision 0029): leases,
-- schedules and due times all read the server's clock, so a skewed host runs nothing early,
-- but /health says which host to fix.
ALTER TABLE {schema}.underway_workers ADD COLUMN clock_skew double precision;
