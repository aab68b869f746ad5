-- hookline schema v10 (Postgres): each endpoint's rate limit.
-- Keep in step with migrations/sqlite/0010_rate_limit.sql.

-- One row per endpoint with a rate limit, kept apart from `endpoints` for
-- the same reason as its breaker: the claim writes the bucket every time it
-- sends to the endpoint, and every change to an endpoint's row makes
-- consoles reload and dispatchers re-read their targets.
--
-- A token bucket in whole integers: `per_second` requests a second, at
-- most `burst` at once. `tokens_milli` is thousandths of a request, as of
-- `refilled_at` (unix ms): each millisecond since adds `per_second` of
-- them, up to `burst` x 1000. A claim takes 1,000 per delivery it leases.
CREATE TABLE endpoint_rate_limits (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    per_second BIGINT NOT NULL,
    burst BIGINT NOT NULL,
    tokens_milli BIGINT NOT NULL,
    refilled_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
