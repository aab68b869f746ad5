-- hookline schema v8 (Postgres): payloads that outlive their use are removed.
-- Keep in step with migrations/sqlite/0008_erasure.sql.

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

-- A queue's tables churn: rows are inserted, updated a few times and
-- deleted within the retention window. Autovacuum visits them after a
-- fixed share of changes instead of a share of a table that may hold
-- hundreds of millions of rows, so dead rows are reused before they pile up.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01,
                            autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE attempts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
                          autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
                        autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE endpoint_health SET (autovacuum_vacuum_scale_factor = 0.05);
