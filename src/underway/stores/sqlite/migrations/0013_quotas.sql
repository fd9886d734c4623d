-- Per-tenant enqueue quotas (docs/decisions/0026-tenant-quotas.md): one token bucket per
-- metered tenant, refilled lazily by the enqueue that takes from it. A row idle for longer than
-- burst/rate is full again, as a missing row is; rows are few (one per tenant) and stay.
CREATE TABLE underway_quota_buckets (
    tenant      TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    refilled_at REAL NOT NULL  -- seconds since the epoch, the store's clock (time.time())
);
