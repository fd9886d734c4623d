-- API keys: bearer tokens for the HTTP API. Only a hash of the secret is kept; the secret
-- itself is shown once, when the key is made. A NULL tenant makes an admin key.
CREATE TABLE underway_keys (
    id            TEXT PRIMARY KEY,          -- also the middle part of the secret, uw_<id>_...
    name          TEXT,
    tenant        TEXT,
    secret_hash   TEXT NOT NULL,             -- sha256 hex of the whole secret
    created_at    REAL NOT NULL,
    revoked_at    REAL,
    last_used_at  REAL
);

-- Listing jobs by unique key, finished or not (the HTTP API's filter).
CREATE INDEX underway_jobs_any_key ON underway_jobs (key, id) WHERE key IS NOT NULL;
