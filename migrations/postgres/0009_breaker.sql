-- hookline schema v9 (Postgres): each endpoint's circuit breaker.
-- Keep in step with migrations/sqlite/0009_breaker.sql.

-- One row per endpoint that has failed since its breaker last closed (an
-- endpoint that never fails has none, and costs the outcome recording
-- nothing), kept apart from `endpoints`: every change to an endpoint's row
-- makes consoles reload and dispatchers re-read their targets.
--
-- `mode`: 'auto', or the state an operator forced ('open', 'closed').
-- `state`: 'closed', 'open' (held; `probe_at` is when a probe may go) or
-- 'half_open' (`probe_delivery_id` was sent as the probe; if no outcome
-- comes by `probe_until`, its dispatcher died and another probe may go).
-- The failure window is two fixed buckets of `protection.window`:
-- `window_bucket` (unix ms / window) with `attempts`/`failures`, and the
-- one before it; the ratio weighs the previous bucket by how much of it
-- still lies inside the sliding window. `failing_since`: the first failure
-- since the receiver last answered (`protection.disable_after` counts from
-- it). `wait_until`: the receiver answered 429 or 503 with `Retry-After`;
-- nothing is sent to the endpoint before then.
CREATE TABLE endpoint_breakers (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    mode TEXT NOT NULL DEFAULT 'auto',
    state TEXT NOT NULL DEFAULT 'closed',
    opened_at BIGINT,
    cooldown_ms BIGINT NOT NULL DEFAULT 0,
    probe_at BIGINT,
    probe_until BIGINT,
    probe_delivery_id TEXT,
    window_bucket BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    previous_attempts BIGINT NOT NULL DEFAULT 0,
    previous_failures BIGINT NOT NULL DEFAULT 0,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_answered_at BIGINT,
    failing_since BIGINT,
    wait_until BIGINT,
    updated_at BIGINT NOT NULL
);

-- Every change of a breaker's state: why, with the figures that decided it.
CREATE TABLE breaker_transitions (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    figures TEXT NOT NULL,
    actor TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX breaker_transitions_endpoint ON breaker_transitions(endpoint_id, at);
CREATE INDEX breaker_transitions_at ON breaker_transitions(at);
