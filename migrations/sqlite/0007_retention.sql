-- hookline schema v7 (SQLite): retention.
-- Keep in step with migrations/postgres/0007_retention.sql.

-- The pruner's one row: which process prunes (a lease, taken and renewed
-- like a delivery's, so one pruner runs at a time across every process),
-- where each event scan has got to, and the last pass. The scans walk
-- events by (created_at, id) and keep their place, so a pass reads only
-- events that crossed a horizon since the last one, not every event kept.
CREATE TABLE retention_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    owner               TEXT,
    lease_expires_at    BIGINT,
    succeeded_at        BIGINT NOT NULL DEFAULT 0,
    succeeded_id        TEXT NOT NULL DEFAULT '',
    dead_at             BIGINT NOT NULL DEFAULT 0,
    dead_id             TEXT NOT NULL DEFAULT '',
    last_pass_at        BIGINT,
    last_pass_ms        BIGINT,
    last_pass_removed   BIGINT
);
INSERT INTO retention_state (id) VALUES (1);

-- Idempotency keys expire (retention.idempotency): the pruner finds the
-- old ones by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
