-- hookline schema v4 (Postgres): the earliest-due index no claim can use.
-- Keep in step with migrations/sqlite/0004_due_index.sql.

-- `deliveries_due` serves one question, how late the queue runs (the first
-- entry is the earliest due time). Its rows are every endpoint's due work in
-- time order, so a claim for one endpoint that reads it walks every other
-- endpoint's backlog first. Postgres plans the claim once per connection,
-- without knowing the endpoint, and could choose it (tests/claim_plan.rs).
-- A condition that the claim never states (every due time is a
-- unix-millisecond clock reading, so never negative) makes it unusable for
-- anything but the queries that state it too.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at, endpoint_id, state)
    WHERE state IN ('pending', 'scheduled') AND next_attempt_at >= 0;
