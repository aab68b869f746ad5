-- hookline schema v2 (Postgres): what the console needs to stay quick with a
-- million deliveries. Keep in step with migrations/sqlite/0002_console.sql.

-- Lists filtered by one dimension, newest first, however few rows match.
-- Pending deliveries (fresh ones and those held by a paused endpoint):
-- partial, so only a delivery's pending row versions have an entry.
CREATE INDEX deliveries_pending ON deliveries(created_at, id) WHERE state = 'pending';
-- Topic and tenant never change: written once per delivery, at publish.
CREATE INDEX deliveries_topic ON deliveries(topic, created_at, id);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, created_at, id);
-- Failures newest first, carrying the columns operators filter them by, so
-- a filtered failure list rejects rows from the index alone; and per
-- endpoint (its failures, and the count before "retry all dead"). Both
-- partial: the success path never writes them.
DROP INDEX deliveries_failed;
CREATE INDEX deliveries_failed ON deliveries(created_at, id, state, tenant_id, topic)
    WHERE state IN ('dead', 'scheduled');
CREATE INDEX deliveries_failed_endpoint ON deliveries(endpoint_id, created_at, id, state)
    WHERE state IN ('dead', 'scheduled');
-- Failures by state, for the console's counts: each state is one range.
CREATE INDEX deliveries_failed_state ON deliveries(state) WHERE state IN ('dead', 'scheduled');
-- The earliest due time in the queue is the first entry: how late the
-- queue runs, in one seek however long it is. Endpoint and state ride
-- along so that a planner choosing it to count the queue never needs the
-- table.
CREATE INDEX deliveries_due ON deliveries(next_attempt_at, endpoint_id, state)
    WHERE state IN ('pending', 'scheduled');

-- The overview ranks endpoints by their failures over the last minutes:
-- the counts it sums ride in the index, so it never reads the rollup rows
-- (the health view, which needs the latencies too, still does). Replaces
-- the plain index on minute.
DROP INDEX endpoint_health_minute;
CREATE INDEX endpoint_health_recent ON endpoint_health(minute, endpoint_id, succeeded,
    status_4xx, status_5xx, timeout, network, other);

-- Attempts per minute over every endpoint, per dispatcher: the overview's
-- throughput reads a few rows a minute instead of every endpoint's rollup.
-- Kept by a trigger from `endpoint_health`, so every writer of the rollups
-- keeps it right; one row per dispatcher, so dispatchers never wait on
-- each other for it.
CREATE TABLE health_totals (
    minute         BIGINT NOT NULL,
    dispatcher_id  TEXT NOT NULL,
    succeeded      BIGINT NOT NULL DEFAULT 0,
    failed         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, dispatcher_id)
);
INSERT INTO health_totals (minute, dispatcher_id, succeeded, failed)
    SELECT minute, dispatcher_id, SUM(succeeded), SUM(status_4xx + status_5xx + timeout + network + other)
    FROM endpoint_health GROUP BY minute, dispatcher_id;
CREATE FUNCTION endpoint_health_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- OLD is NULL on insert: the whole row is new.
    INSERT INTO health_totals (minute, dispatcher_id, succeeded, failed)
    VALUES (NEW.minute, NEW.dispatcher_id,
            NEW.succeeded - COALESCE(OLD.succeeded, 0),
            (NEW.status_4xx + NEW.status_5xx + NEW.timeout + NEW.network + NEW.other)
              - COALESCE(OLD.status_4xx + OLD.status_5xx + OLD.timeout + OLD.network + OLD.other, 0))
    ON CONFLICT (minute, dispatcher_id) DO UPDATE SET
        succeeded = health_totals.succeeded + excluded.succeeded,
        failed = health_totals.failed + excluded.failed;
    RETURN NULL;
END
$$;
CREATE TRIGGER endpoint_health_totals AFTER INSERT OR UPDATE ON endpoint_health
    FOR EACH ROW EXECUTE FUNCTION endpoint_health_totals();

-- A number that moves whenever a tenant, endpoint or subscription changes,
-- so the console re-reads those lists (a thousand rows) only when they
-- changed. They change by operator action, rarely: the triggers (one per
-- statement) cost nothing on the delivery path.
CREATE TABLE config_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
CREATE FUNCTION config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_version AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed();
CREATE TRIGGER endpoints_version AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed();
CREATE TRIGGER subscriptions_version AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed();
