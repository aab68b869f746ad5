-- hookline schema v14 (Postgres): an endpoint's attempts, newest first,
-- for `GET /v1/endpoints/{id}/attempts`. Keep in step with
-- migrations/sqlite/0014_attempts_endpoint.sql.

-- Without it, listing one endpoint's attempts walks every attempt of its
-- deliveries. It costs every attempt insert one more index entry
-- (BENCHMARKS.md measures it). Built in the migration's transaction: on a
-- large Postgres attempts table, expect the migration to take a while.
CREATE INDEX attempts_endpoint ON attempts(endpoint_id, started_at, id);
