-- hookline schema v11 (Postgres): failures grouped by cause, and who last
-- changed an endpoint's state and when its secret was last rotated.
-- Keep in step with migrations/sqlite/0011_failure_causes.sql.

-- Failed attempts per endpoint, minute and cause (`http_status 503`, or
-- the error kind and the first line of the error with numbers and ids
-- normalised away): what the console's endpoint detail groups failures
-- by, upserted with the outcomes like `endpoint_health` (one row per
-- dispatcher, so dispatchers never wait on each other for it), never
-- read back from `attempts`. `example_*` is the latest failure with
-- that cause in the minute, as the delivery's last error reads.
-- Removed by `retention.failure_causes`.
CREATE TABLE failure_causes (
    endpoint_id         TEXT NOT NULL,
    minute              BIGINT NOT NULL,
    dispatcher_id       TEXT NOT NULL,
    cause               TEXT NOT NULL,
    failures            BIGINT NOT NULL,
    first_at            BIGINT NOT NULL,
    last_at             BIGINT NOT NULL,
    example_delivery_id TEXT NOT NULL,
    example_error       TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, minute, dispatcher_id, cause)
);
-- The pruner's scan.
CREATE INDEX failure_causes_minute ON failure_causes(minute);

-- Who paused, resumed or disabled the endpoint last (the actor as the
-- audit log names it), and when its signing secret last changed (NULL:
-- never rotated, so its age counts from `created_at`).
ALTER TABLE endpoints ADD COLUMN state_changed_by TEXT;
ALTER TABLE endpoints ADD COLUMN secret_rotated_at BIGINT;
