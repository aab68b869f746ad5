-- hookline schema v1 (SQLite). Times are unix milliseconds (BIGINT); ids are
-- prefixed ULIDs; payloads are TEXT holding exactly the bytes published.
-- Keep in step with migrations/postgres/0001_init.sql (same tables, same names).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX tenants_name ON tenants(name) WHERE deleted_at IS NULL;

CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id),
    name                        TEXT NOT NULL,
    url                         TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  BIGINT,
    state                       TEXT NOT NULL DEFAULT 'active',
    state_reason                TEXT,
    state_changed_at            BIGINT,
    timeout_ms                  BIGINT,
    max_in_flight               BIGINT,
    headers                     TEXT NOT NULL DEFAULT '[]',
    description                 TEXT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL,
    deleted_at                  BIGINT
);
CREATE UNIQUE INDEX endpoints_tenant_name ON endpoints(tenant_id, name) WHERE deleted_at IS NULL;

-- Running health facts per endpoint and dispatcher, kept apart from the
-- endpoint's configuration so outcome recording never rewrites the endpoint
-- row; one row per dispatcher so dispatchers never wait on each other's
-- locks. Readers merge the rows of an endpoint.
CREATE TABLE endpoint_stats (
    endpoint_id           TEXT NOT NULL REFERENCES endpoints(id),
    dispatcher_id         TEXT NOT NULL,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    last_attempt_at       BIGINT,
    last_success_at       BIGINT,
    last_failure_at       BIGINT,
    last_status           BIGINT,
    last_error            TEXT,
    PRIMARY KEY (endpoint_id, dispatcher_id)
);

CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id),
    tenant_id    TEXT NOT NULL,
    pattern      TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX subscriptions_endpoint_pattern ON subscriptions(endpoint_id, pattern);
CREATE INDEX subscriptions_tenant ON subscriptions(tenant_id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT,
    topic            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX events_created ON events(created_at, id);

-- A repeated key returns the original event; scope is the tenant id, or '*'
-- for broadcasts.
CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    delivery_count  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES events(id),
    endpoint_id       TEXT NOT NULL REFERENCES endpoints(id),
    tenant_id         TEXT NOT NULL,
    topic             TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    last_attempt_at   BIGINT,
    last_status       BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- The claim: per endpoint, due work in order of due time (ties in order of
-- creation: ids increase). Partial, so rows that are done or in flight cost
-- nothing here and the claim never sorts; `state` rides along so the
-- console counts the queue from the index alone.
CREATE INDEX deliveries_queue ON deliveries(endpoint_id, next_attempt_at, id, state)
    WHERE state IN ('pending', 'scheduled');
-- Leases: per-endpoint in-flight counts and the expiry sweep (a small set:
-- at most the dispatchers' concurrency).
CREATE INDEX deliveries_in_flight ON deliveries(endpoint_id, lease_expires_at)
    WHERE state = 'in_flight';
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_created ON deliveries(created_at, id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, created_at, id);
-- What failed, newest first: the operator's usual question. Partial, so the
-- success path (pending -> in_flight -> succeeded) never writes to it.
CREATE INDEX deliveries_failed ON deliveries(created_at, id, state)
    WHERE state IN ('dead', 'scheduled');

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries(id),
    endpoint_id      TEXT NOT NULL,
    attempt_number   BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      BIGINT,
    error_kind       TEXT,
    error_message    TEXT,
    request_headers  TEXT NOT NULL,
    response_body    TEXT,
    dispatcher_id    TEXT
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, started_at);

-- Per endpoint, minute and dispatcher: attempts by outcome and a fixed-bucket
-- latency histogram (bounds in dispatch/health.rs), upserted with the
-- outcomes. Readers sum the dispatchers' rows.
CREATE TABLE endpoint_health (
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
);
-- The health view reads the last hour of every endpoint.
CREATE INDEX endpoint_health_minute ON endpoint_health(minute);

CREATE TABLE dispatchers (
    id                  TEXT PRIMARY KEY,
    host                TEXT NOT NULL,
    pid                 BIGINT NOT NULL,
    version             TEXT NOT NULL,
    started_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    stopped_at          BIGINT,
    deliveries_per_sec  DOUBLE PRECISION NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    client_addr  TEXT,
    source       TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_ids   TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at, id);
