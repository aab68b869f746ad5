-- hookline schema v13 (Postgres): when an API key stops working.
-- Keep in step with migrations/sqlite/0013_api_key_expiry.sql.

-- Unix milliseconds like the other time columns; NULL: the key never
-- expires (every key made before this version). An expired key is kept,
-- not revoked, so a request with it can be told it expired and when.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
