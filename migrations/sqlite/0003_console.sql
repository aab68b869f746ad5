-- hookline schema v3 (SQLite): what the console needs to stay quick with a
-- million deliveries. Keep in step with migrations/postgres/0003_console.sql.

-- Lists filtered by one dimension, newest first, however few rows match.
-- Pending deliveries (fresh ones and those held by a paused endpoint):
-- partial, so the success path writes it once, at publish, and removes the
-- entry at the claim.
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

-- The rollups stored in their key's order (an endpoint's minutes side by
-- side): the health view reads an hour of each endpoint on screen as one
-- range of the table instead of a lookup per row, twice as fast. SQLite
-- needs the table rebuilt for that; the plain index on minute goes with it.
CREATE TABLE endpoint_health_clustered (
    endpoint_id     TEXT NOT NULL,
    minute          BIGINT NOT NULL,
    dispatcher_id   TEXT NOT NULL,
    succeeded       BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    timeout         BIGINT NOT NULL DEFAULT 0,
    network         BIGINT NOT NULL DEFAULT 0,
    other           BIGINT NOT NULL DEFAULT 0,
    latency_sum_ms  BIGINT NOT NULL DEFAULT 0,
    b0  BIGINT NOT NULL DEFAULT 0, b1  BIGINT NOT NULL DEFAULT 0,
    b2  BIGINT NOT NULL DEFAULT 0, b3  BIGINT NOT NULL DEFAULT 0,
    b4  BIGINT NOT NULL DEFAULT 0, b5  BIGINT NOT NULL DEFAULT 0,
    b6  BIGINT NOT NULL DEFAULT 0, b7  BIGINT NOT NULL DEFAULT 0,
    b8  BIGINT NOT NULL DEFAULT 0, b9  BIGINT NOT NULL DEFAULT 0,
    b10 BIGINT NOT NULL DEFAULT 0, b11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, minute, dispatcher_id)
) WITHOUT ROWID;
INSERT INTO endpoint_health_clustered
    SELECT endpoint_id, minute, dispatcher_id, succeeded, status_4xx, status_5xx, timeout,
        network, other, latency_sum_ms, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11
    FROM endpoint_health;
DROP TABLE endpoint_health;
ALTER TABLE endpoint_health_clustered RENAME TO endpoint_health;
-- The overview ranks endpoints by their failures over the last minutes:
-- the counts it sums ride in the index, so it never reads the rollup rows
-- (the health view, which needs the latencies too, still does).
CREATE INDEX endpoint_health_recent ON endpoint_health(minute, endpoint_id, succeeded,
    status_4xx, status_5xx, timeout, network, other);

-- Attempts per minute over every endpoint, per dispatcher: the overview's
-- throughput reads a few rows a minute instead of every endpoint's rollup.
-- Kept by triggers from `endpoint_health`, so every writer of the rollups
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
CREATE TRIGGER endpoint_health_totals_insert AFTER INSERT ON endpoint_health BEGIN
    INSERT INTO health_totals (minute, dispatcher_id, succeeded, failed)
    VALUES (NEW.minute, NEW.dispatcher_id, NEW.succeeded,
            NEW.status_4xx + NEW.status_5xx + NEW.timeout + NEW.network + NEW.other)
    ON CONFLICT (minute, dispatcher_id) DO UPDATE SET
        succeeded = health_totals.succeeded + excluded.succeeded,
        failed = health_totals.failed + excluded.failed;
END;
CREATE TRIGGER endpoint_health_totals_update AFTER UPDATE ON endpoint_health BEGIN
    UPDATE health_totals SET
        succeeded = succeeded + NEW.succeeded - OLD.succeeded,
        failed = failed + (NEW.status_4xx + NEW.status_5xx + NEW.timeout + NEW.network + NEW.other)
                        - (OLD.status_4xx + OLD.status_5xx + OLD.timeout + OLD.network + OLD.other)
    WHERE minute = NEW.minute AND dispatcher_id = NEW.dispatcher_id;
END;

-- A number that moves whenever a tenant, endpoint or subscription changes,
-- so the console re-reads those lists (a thousand rows) only when they
-- changed. They change by operator action, rarely: the triggers cost
-- nothing on the delivery path.
CREATE TABLE config_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
CREATE TRIGGER tenants_insert_version AFTER INSERT ON tenants BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER tenants_update_version AFTER UPDATE ON tenants BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER tenants_delete_version AFTER DELETE ON tenants BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER endpoints_insert_version AFTER INSERT ON endpoints BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER endpoints_update_version AFTER UPDATE ON endpoints BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER endpoints_delete_version AFTER DELETE ON endpoints BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER subscriptions_insert_version AFTER INSERT ON subscriptions BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER subscriptions_update_version AFTER UPDATE ON subscriptions BEGIN
    UPDATE config_version SET version = version + 1;
END;
CREATE TRIGGER subscriptions_delete_version AFTER DELETE ON subscriptions BEGIN
    UPDATE config_version SET version = version + 1;
END;
