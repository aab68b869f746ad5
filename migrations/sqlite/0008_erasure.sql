-- hookline schema v8 (SQLite): payloads that outlive their use are removed.
-- Keep in step with migrations/postgres/0008_erasure.sql.

-- An event whose payload was removed (by `retention.payload`, or erased on
-- request) keeps its id, topic and size: `payload` holds '' and these say
-- when, why ('retention' or 'expunged') and how many bytes it had. No hash
-- of the payload is kept: an unkeyed hash of a short payload can be matched
-- against a guess.
ALTER TABLE events ADD COLUMN payload_size BIGINT;
ALTER TABLE events ADD COLUMN payload_removed_at BIGINT;
ALTER TABLE events ADD COLUMN payload_removed_by TEXT;

-- `hookline tenant expunge T --before DATE` finds a tenant's events by age.
CREATE INDEX events_tenant ON events(tenant_id, created_at, id);

-- Where the payload scan has got to (like the other two scans).
ALTER TABLE retention_state ADD COLUMN payload_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE retention_state ADD COLUMN payload_id TEXT NOT NULL DEFAULT '';

-- Space comes back: a database created from now on has
-- `auto_vacuum = INCREMENTAL`, and the pruner hands free pages back after
-- its passes. A database created before keeps `auto_vacuum = NONE` (SQLite
-- changes it only by rewriting the file): run `hookline prune --vacuum`
-- once, with hookline stopped, to convert it.
