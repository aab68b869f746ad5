-- hookline schema v6 (Postgres): a pause that ends by itself.
-- Keep in step with migrations/sqlite/0006_pause_until.sql.

-- When an operator pauses an endpoint "for 30m" or "until 04:00", the end
-- is kept here (unix ms); NULL for every other state and for a pause that
-- lasts until someone resumes it. Dispatchers resume the endpoints whose
-- time has come, about once a second, looking them up in this index: it
-- holds only the few paused endpoints with an end, so the look-up costs
-- nothing when none is due.
ALTER TABLE endpoints ADD COLUMN paused_until BIGINT;
CREATE INDEX endpoints_paused_until ON endpoints(paused_until)
    WHERE paused_until IS NOT NULL;
