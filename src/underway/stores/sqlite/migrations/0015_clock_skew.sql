-- The column PostgreSQL fills at each beat (decision 0029). SQLite's clock is each process's
-- own, so there is nothing to measure against and it stays NULL; it is here so both stores'
-- schemas keep one numbering.
ALTER TABLE underway_workers ADD COLUMN clock_skew REAL;
