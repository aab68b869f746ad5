-- hookline schema v2 (Postgres): API keys for the HTTP API.
-- Keep in step with migrations/sqlite/0002_api_keys.sql.
--
-- Only a SHA-256 hash of each key is kept: the key itself is shown once, when
-- it is created. Keys are 32 random bytes, so a plain (unsalted) hash is as
-- hard to reverse as the key is to guess. A NULL tenant_id is an admin key.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL,
    key_prefix  TEXT NOT NULL,
    tenant_id   TEXT REFERENCES tenants(id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys(key_hash);
CREATE UNIQUE INDEX api_keys_name ON api_keys(name) WHERE revoked_at IS NULL;
