-- API keys: bearer tokens for the HTTP API. Only a hash of the secret is kept; the secret
-- itself is shown once, when the key is made. A NULL tenant makes an admin key.
CREATE TABLE {schema}.underway_keys (
    id            text PRIMARY KEY,          -- also the middle part of the secret, uw_<id>_...
    name          text,
    tenant        text,
    secret_hash   text NOT NULL,             -- sha256 hex of the whole secret
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Listing jobs by unique key, finished or not (the HTTP API's filter).
CREATE INDEX underway_jobs_any_key ON {schema}.underway_jobs (key, id) WHERE key IS NOT NULL;
