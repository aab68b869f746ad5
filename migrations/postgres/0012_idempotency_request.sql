-- hookline schema v12 (Postgres): what request an idempotency key was
-- first used for. Keep in step with migrations/sqlite/0012_idempotency_request.sql.

-- A SHA-256 of the request a key first came with (its topic and payload
-- bytes; the scope is already the key's tenant, or broadcast): the same
-- key with a different request is refused as a conflict, naming the
-- original event, instead of being answered as a duplicate. Keys written
-- before this version have none and keep answering as duplicates.
ALTER TABLE idempotency_keys ADD COLUMN request_hash TEXT;
