//! Where SQLite and Postgres SQL differ: how a write transaction begins,
//! whose clock is "now", how a set travels as one JSON parameter
//! (`jsonb_each` on SQLite, `jsonb_array_elements` on Postgres), and how
//! the per-delivery writes spell their rows of bound parameters
//! ([`RowsStatement`]). Every other statement is shared text in the module
//! that uses it.
//!
//! Each statement here is written once in the `statements!` template and
//! instantiated per backend, so the two spellings cannot drift apart.

use super::health::{rollups_sql, stats_sql};
use super::rows::{delivery_columns, endpoint_columns, subscription_columns};
use super::values::{RowsStatement, ValuesStatement};

/// The statements that differ between backends.
pub(crate) struct Dialect {
    /// Starts a write transaction: SQLite takes the write lock up front
    /// (`IMMEDIATE`) so a transaction never fails half-way on a lock upgrade.
    pub begin_write: &'static str,
    /// Reads the database clock in unix ms; `None` means "use this host's clock".
    pub now: Option<&'static str>,
    /// Serialises concurrent migrations (SQLite's write lock already does).
    pub migration_lock: Option<&'static str>,
    /// Tells other processes that due work may have appeared (delivered at
    /// commit); `None` where other processes poll instead.
    pub notify: Option<&'static str>,
    /// Prefix that turns a statement into its query plan.
    pub explain: &'static str,
    /// The column of the plan rows that holds the text.
    pub explain_column: &'static str,
    /// Makes the rest of a read transaction plan its statements with the
    /// values bound (Postgres's connections plan once, generically);
    /// `None` where statements are always planned with their values.
    pub plan_with_values: Option<&'static str>,
    /// Counts `schema_migrations` tables (0 or 1).
    pub migrations_table_exists: &'static str,
    /// Locks the listed endpoints for a claim, skipping those another
    /// dispatcher holds; `None` where a single writer makes it unnecessary.
    pub lock_endpoints: Option<&'static str>,
    /// Reads live endpoint `$1` to change it; Postgres locks the row so
    /// concurrent read-modify-writes cannot lose each other's changes.
    pub endpoint_for_update: &'static str,
    /// Reads live endpoint `$1` to delete it; Postgres locks the row against
    /// publishes too (`FOR UPDATE` conflicts with their key-share locks), so
    /// a delete waits for publishes in flight and then cancels what they made.
    pub endpoint_for_delete: &'static str,
    /// The ids of tenant `$1`'s live endpoints, locked as for a delete.
    pub tenant_endpoints_for_delete: &'static str,
    /// Reads subscription `$1` to change it, locked like `endpoint_for_update`.
    pub subscription_for_update: &'static str,
    /// Publish: `(endpoint_id, tenant_id, pattern)` of tenant `$1`'s live
    /// endpoints' subscriptions. Postgres key-share-locks the endpoints: a
    /// concurrent delete (`endpoint_for_delete`) waits and then cancels what
    /// this publish created, while claims and edits, which lock them
    /// `FOR NO KEY UPDATE`, neither wait for publishes nor make them wait.
    pub tenant_subscriptions: &'static str,
    /// Publish: the same for every tenant (broadcasts).
    pub all_subscriptions: &'static str,
    /// Publish: inserts event rows (`bind_event!`) created at "now".
    pub insert_events: RowsStatement,
    /// Publish: inserts delivery rows (`bind_delivery!`) created at "now",
    /// due at "due": pending, or already leased where a row carries its
    /// state and lease.
    pub insert_deliveries: RowsStatement,
    /// Publish: claims the idempotency keys in JSON rows `$1` (created at
    /// `$2`); returns `(scope, key)` of those that were free.
    pub insert_idempotency_keys: &'static str,
    /// Publish: the original `(scope, key, event_id, delivery_count)` of
    /// the keys in JSON rows `$1`.
    pub find_idempotency_keys: &'static str,
    /// Claim: puts deliveries whose lease expired before `$1` back in the queue.
    pub reap_expired: &'static str,
    /// Claim: the endpoints with queued work, found by skipping through the
    /// queue index one endpoint at a time (one index seek per such endpoint,
    /// however long their queues), each with its earliest due time, its cap
    /// (`$1` where it has none of its own) and its deliveries in flight.
    pub queue_heads: &'static str,
    /// Claim, after locking (Postgres): `(endpoint_id, count)` of leased
    /// deliveries of the endpoints in JSON list `$1`.
    pub in_flight_of: &'static str,
    /// Claim: the index hint for the per-endpoint candidate scans.
    pub queue_index_hint: &'static str,
    /// Whether statements may name the index to use (`INDEXED BY`, SQLite).
    pub index_hints: bool,
    /// Claim: the row-lock clause of the candidate scans.
    pub skip_locked: &'static str,
    /// Claim: the index hint that makes updates by id use the primary key.
    pub primary_key_hint: &'static str,
    /// The larger of two values (`MAX` on SQLite, `GREATEST` on Postgres).
    pub greatest: &'static str,
    /// Claim: how to reach the endpoints in JSON list `$1`.
    pub endpoint_targets: &'static str,
    /// Hand-off at publish: of the active endpoints in JSON list `$1`, each
    /// one's cap (`$2` where it has none), deliveries leased now, whether
    /// work due by `$3` waits in its queue, and how to reach it.
    pub hand_off_heads: &'static str,
    /// Summary: `(pending, scheduled, dead, in flight, earliest due)`; the
    /// first three counted up to `$1` only (a count costs as many index
    /// entries as it counts), each from its own partial index, and the
    /// earliest due time in one seek.
    pub queue_counts: &'static str,
    /// Summary: `(endpoint_id, "tenant/name", state, succeeded, failed,
    /// backlog, last error)` of the `$2` endpoints doing worst: by failure
    /// rate over the rollups since `$1`, then backlog, then name; only
    /// endpoints with failures or a backlog.
    pub worst_endpoints: &'static str,
    /// Health: rollup sums (see `health.rs`) of every endpoint since `$1`.
    pub health_rollups_all: &'static str,
    /// Summary: `(endpoint_id, pending, scheduled)` of every endpoint with a queue.
    pub all_endpoint_queues: &'static str,
    /// Summary: `(endpoint_id, in flight)` of every endpoint with leases.
    pub all_endpoint_in_flight: &'static str,
    /// Summary: `(endpoint_id, pending, scheduled)` of the endpoints in JSON list `$1`.
    pub endpoint_queues_of: &'static str,
    /// Health: `endpoint_stats` rows of the endpoints in JSON list `$1`.
    pub health_stats_of: &'static str,
    /// Health: rollup sums (see `health.rs`) of the endpoints in JSON list `$3`.
    pub health_rollups_of: &'static str,
    /// Search: `(created_at, id)` of the event `$3` places after `($1, $2)`,
    /// newest first: where a search page's window of events ends.
    pub search_window_end: &'static str,
    /// Search: deliveries of events in the window below `($2, $3)` down to
    /// `($4, $5)` whose payload contains `$1`.
    pub search_payloads: &'static str,
    /// Outcomes: inserts attempt rows (`bind_attempt!`).
    pub insert_attempts: RowsStatement,
    /// Outcomes: applies outcome rows (`bind_outcome!`) to the deliveries
    /// still leased by "owner" as of "now".
    pub apply_outcomes: RowsStatement,
    /// Outcomes: folds JSON rows `$1` into `endpoint_stats`.
    pub upsert_endpoint_stats: &'static str,
    /// Outcomes: adds JSON rows `$1` to the per-minute `endpoint_health` rollups.
    pub upsert_health: &'static str,
    /// Shutdown: releases owner `$1`'s leases on JSON list `$3`; `$2` is now.
    pub release_leases: &'static str,
    /// Retry: `(id, state, endpoint deleted_at)` of deliveries in JSON list `$1`.
    pub delivery_states: &'static str,
    /// Retry: revives retryable deliveries in JSON list `$1`, due at `$2`; `$3`
    /// is now. Returns the ids revived.
    pub retry_ids: &'static str,
}

/// `(SELECT value FROM <the JSON array parameter $n>)`, as a list of text.
macro_rules! json_list {
    (sqlite, $n:literal) => {
        concat!("(SELECT value FROM json_each($", $n, "))")
    };
    (postgres, $n:literal) => {
        concat!(
            "(SELECT value FROM jsonb_array_elements_text($",
            $n,
            "::jsonb) AS l(value))"
        )
    };
}

/// `= any of the JSON array parameter $n`, for readers filtering by a list
/// of ids. Postgres gets the list as an array it can probe an index with
/// (a set-returning subquery makes it read every candidate row and hash the
/// list instead); SQLite reads `IN (list)` that way already.
macro_rules! any_of_json {
    (sqlite, $n:literal) => {
        concat!(" IN (SELECT value FROM json_each($", $n, "))")
    };
    (postgres, $n:literal) => {
        concat!(
            " = ANY (ARRAY(SELECT jsonb_array_elements_text($",
            $n,
            "::jsonb)))"
        )
    };
}

/// A FROM source yielding one JSON object per row in column `value`. Both
/// use the binary JSON form (`jsonb_each`, `jsonb_array_elements`): it parses
/// the parameter once, so each `value->>'field'` is a lookup, not a re-parse
/// of the row's text (the re-parsing was the largest cost of a cycle). Only
/// strings travel inside these rows (payloads among them), and a JSON string
/// comes back from `->>` exactly as it went in.
macro_rules! json_rows {
    (sqlite, $n:literal) => {
        concat!("jsonb_each($", $n, ")")
    };
    (postgres, $n:literal) => {
        concat!("jsonb_array_elements($", $n, "::jsonb) AS r(value)")
    };
}

/// A per-delivery write for dialect `$d`: on SQLite its rows as bound
/// parameters (`$values`, a [`ValuesStatement`]), on Postgres as one JSON
/// parameter (`$json`), where bound rows measured slower (BENCHMARKS.md,
/// "Rows as bound parameters").
macro_rules! rows_statement {
    (sqlite, $values:expr, $json:expr) => {
        RowsStatement::Values($values)
    };
    (postgres, $values:expr, $json:expr) => {
        RowsStatement::Json($json)
    };
}

/// Pins a statement to an index on SQLite, where the planner without
/// statistics may otherwise sort the whole queue, or scan every queued row
/// to update a few by id (`sqlite_autoindex_deliveries_1` is the primary
/// key); SQLite then refuses to run rather than silently choose a worse
/// plan. Postgres plans well on its own.
macro_rules! indexed_by {
    (sqlite, $index:literal) => {
        concat!(" INDEXED BY ", $index)
    };
    (postgres, $index:literal) => {
        ""
    };
}

/// Live endpoint `$1` with its tenant's name, as `EndpointRow` reads it.
macro_rules! live_endpoint {
    () => {
        concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
              WHERE e.deleted_at IS NULL AND e.id = $1"
        )
    };
}

/// A row-lock clause (`FOR UPDATE OF e`, `FOR KEY SHARE OF e`) where the
/// database has row locks; SQLite's write transactions already exclude
/// each other.
macro_rules! row_lock {
    (sqlite, $clause:literal) => {
        ""
    };
    (postgres, $clause:literal) => {
        concat!(" ", $clause)
    };
}

/// Position of text `$needle` in `$haystack` (0 when absent).
macro_rules! contains {
    (sqlite) => {
        "instr"
    };
    (postgres) => {
        "strpos"
    };
}

/// `FOR UPDATE SKIP LOCKED` where the database has row locks.
macro_rules! skip_locked {
    (sqlite) => {
        ""
    };
    (postgres) => {
        " FOR UPDATE SKIP LOCKED"
    };
}

/// The larger of two values: SQLite's scalar MAX, Postgres's GREATEST.
macro_rules! greatest {
    (sqlite) => {
        "MAX"
    };
    (postgres) => {
        "GREATEST"
    };
}

/// The JSON-driven statements, spelled for dialect `$d` (`sqlite` | `postgres`).
macro_rules! statements {
    ($d:ident, begin: $begin:literal, now: $now:expr, migration_lock: $lock:expr,
     migrations_table_exists: $exists:literal, lock_endpoints: $lock_endpoints:expr,
     explain: $explain:literal, explain_column: $explain_column:literal,
     plan_with_values: $plan_with_values:expr, notify: $notify:expr) => {
        Dialect {
            notify: $notify,
            explain: $explain,
            explain_column: $explain_column,
            plan_with_values: $plan_with_values,
            begin_write: $begin,
            now: $now,
            migration_lock: $lock,
            migrations_table_exists: $exists,
            lock_endpoints: $lock_endpoints,
            endpoint_for_update: concat!(live_endpoint!(), row_lock!($d, "FOR NO KEY UPDATE OF e")),
            endpoint_for_delete: concat!(live_endpoint!(), row_lock!($d, "FOR UPDATE OF e")),
            tenant_endpoints_for_delete: concat!(
                "SELECT id FROM endpoints WHERE tenant_id = $1 AND deleted_at IS NULL",
                row_lock!($d, "FOR UPDATE")
            ),
            subscription_for_update: concat!(
                "SELECT ",
                subscription_columns!(),
                " FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                  JOIN tenants t ON t.id = s.tenant_id
                  WHERE s.id = $1 AND e.deleted_at IS NULL",
                row_lock!($d, "FOR NO KEY UPDATE OF s")
            ),
            tenant_subscriptions: concat!(
                "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE s.tenant_id = $1 AND e.deleted_at IS NULL ORDER BY s.endpoint_id",
                row_lock!($d, "FOR KEY SHARE OF e")
            ),
            all_subscriptions: concat!(
                "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE e.deleted_at IS NULL ORDER BY s.endpoint_id",
                row_lock!($d, "FOR KEY SHARE OF e")
            ),
            insert_events: rows_statement!(
                $d,
                ValuesStatement {
                    name: concat!(stringify!($d), ".insert_events"),
                    head: "WITH p (now) AS (VALUES (?))
                         INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, p.now
                         FROM p, (VALUES ",
                    columns: 5,
                    tail: ") AS v WHERE v.column1 IS NOT NULL",
                },
                concat!(
                    "INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                     SELECT value->>'id', value->>'tenant_id', value->>'topic', value->>'payload',
                         value->>'idempotency_key', $2
                     FROM ",
                    json_rows!($d, "1")
                )
            ),
            insert_deliveries: rows_statement!(
                $d,
                ValuesStatement {
                    name: concat!(stringify!($d), ".insert_deliveries"),
                    head: "WITH p (now, due) AS (VALUES (?, ?))
                         INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, topic, state,
                             attempts, next_attempt_at, created_at, updated_at, lease_owner,
                             lease_expires_at)
                         SELECT v.column1, v.column2, v.column3, v.column4, v.column5,
                             COALESCE(v.column6, 'pending'), 0, p.due, p.now, p.now, v.column7, v.column8
                         FROM p, (VALUES ",
                    columns: 8,
                    tail: ") AS v WHERE v.column1 IS NOT NULL",
                },
                concat!(
                    "INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, topic, state, attempts,
                         next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at)
                     SELECT value->>'id', value->>'event_id', value->>'endpoint_id', value->>'tenant_id',
                         value->>'topic', COALESCE(value->>'state', 'pending'), 0, $3, $2, $2,
                         value->>'lease_owner', CAST(value->>'lease_expires_at' AS BIGINT)
                     FROM ",
                    json_rows!($d, "1")
                )
            ),
            insert_idempotency_keys: concat!(
                "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2
                 FROM ",
                json_rows!($d, "1"),
                " WHERE TRUE ON CONFLICT (scope, key) DO NOTHING RETURNING scope, key"
            ),
            find_idempotency_keys: concat!(
                "SELECT k.scope, k.key, k.event_id, k.delivery_count FROM idempotency_keys k
                 JOIN (SELECT value->>'scope' AS scope, value->>'key' AS key FROM ",
                json_rows!($d, "1"),
                ") AS w ON k.scope = w.scope AND k.key = w.key"
            ),
            reap_expired: concat!(
                "UPDATE deliveries",
                indexed_by!($d, "deliveries_in_flight"),
                " SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
                 WHERE state = 'in_flight' AND lease_expires_at <= $1"
            ),
            queue_heads: concat!(
                "WITH RECURSIVE heads(endpoint_id) AS (
                    SELECT (SELECT q.endpoint_id FROM deliveries q",
                indexed_by!($d, "deliveries_queue"),
                " WHERE q.state IN ('pending', 'scheduled') ORDER BY q.endpoint_id LIMIT 1)
                    UNION ALL
                    SELECT (SELECT q.endpoint_id FROM deliveries q",
                indexed_by!($d, "deliveries_queue"),
                " WHERE q.state IN ('pending', 'scheduled') AND q.endpoint_id > heads.endpoint_id
                            ORDER BY q.endpoint_id LIMIT 1)
                    FROM heads WHERE heads.endpoint_id IS NOT NULL
                )
                SELECT e.id,
                       (SELECT MIN(q.next_attempt_at) FROM deliveries q",
                indexed_by!($d, "deliveries_queue"),
                " WHERE q.endpoint_id = e.id AND q.state IN ('pending', 'scheduled')) AS due,
                       COALESCE(e.max_in_flight, $1) AS cap,
                       (SELECT COUNT(*) FROM deliveries f",
                indexed_by!($d, "deliveries_in_flight"),
                " WHERE f.endpoint_id = e.id AND f.state = 'in_flight') AS in_flight
                FROM heads JOIN endpoints e ON e.id = heads.endpoint_id
                WHERE e.state = 'active' AND e.deleted_at IS NULL"
            ),
            in_flight_of: concat!(
                "SELECT endpoint_id, COUNT(*) FROM deliveries
                 WHERE state = 'in_flight' AND endpoint_id IN ",
                json_list!($d, "1"),
                " GROUP BY endpoint_id"
            ),
            queue_index_hint: indexed_by!($d, "deliveries_queue"),
            index_hints: !indexed_by!($d, "x").is_empty(),
            skip_locked: skip_locked!($d),
            primary_key_hint: indexed_by!($d, "sqlite_autoindex_deliveries_1"),
            greatest: greatest!($d),
            endpoint_targets: concat!(
                "SELECT id, url, secret, previous_secret, previous_secret_expires_at, timeout_ms, headers
                 FROM endpoints WHERE id IN ",
                json_list!($d, "1")
            ),
            hand_off_heads: concat!(
                "SELECT e.id, COALESCE(e.max_in_flight, $2) AS cap,
                     (SELECT COUNT(*) FROM deliveries f",
                indexed_by!($d, "deliveries_in_flight"),
                " WHERE f.endpoint_id = e.id AND f.state = 'in_flight') AS in_flight,
                     EXISTS (SELECT 1 FROM deliveries q",
                indexed_by!($d, "deliveries_queue"),
                " WHERE q.endpoint_id = e.id AND q.state IN ('pending', 'scheduled')
                           AND q.next_attempt_at <= $3) AS queued,
                     e.url, e.secret, e.previous_secret, e.previous_secret_expires_at, e.timeout_ms,
                     e.headers
                 FROM endpoints e
                 WHERE e.id IN ",
                json_list!($d, "1"),
                " AND e.state = 'active' AND e.deleted_at IS NULL"
            ),
            queue_counts: concat!(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries",
                indexed_by!($d, "deliveries_pending"),
                " WHERE state = 'pending' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries",
                indexed_by!($d, "deliveries_failed_state"),
                " WHERE state IN ('dead', 'scheduled') AND state = 'scheduled' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries",
                indexed_by!($d, "deliveries_failed_state"),
                " WHERE state IN ('dead', 'scheduled') AND state = 'dead' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM deliveries",
                indexed_by!($d, "deliveries_in_flight"),
                " WHERE state = 'in_flight'),
                    (SELECT MIN(next_attempt_at) FROM deliveries",
                indexed_by!($d, "deliveries_due"),
                // The index's own condition (migration 0004): it serves only
                // statements that state it.
                " WHERE state IN ('pending', 'scheduled') AND next_attempt_at >= 0)"
            ),
            worst_endpoints: concat!(
                "WITH recent AS (
                    SELECT endpoint_id, SUM(succeeded) AS succeeded,
                        SUM(status_4xx + status_5xx + timeout + network + other) AS failed
                    FROM endpoint_health",
                indexed_by!($d, "endpoint_health_recent"),
                " WHERE minute >= $1 GROUP BY endpoint_id
                ), queued AS (
                    SELECT endpoint_id, COUNT(*) AS backlog FROM deliveries",
                indexed_by!($d, "deliveries_queue"),
                " WHERE state IN ('pending', 'scheduled') GROUP BY endpoint_id
                ), standing AS (
                    SELECT e.id, t.name || '/' || e.name AS label, e.state,
                        CAST(COALESCE(r.succeeded, 0) AS BIGINT) AS succeeded,
                        CAST(COALESCE(r.failed, 0) AS BIGINT) AS failed,
                        CAST(COALESCE(q.backlog, 0) AS BIGINT) AS backlog
                    FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
                    LEFT JOIN recent r ON r.endpoint_id = e.id
                    LEFT JOIN queued q ON q.endpoint_id = e.id
                    WHERE e.deleted_at IS NULL
                )
                SELECT id, label, state, succeeded, failed, backlog,
                    (SELECT last_error FROM endpoint_stats st
                     WHERE st.endpoint_id = standing.id AND st.last_error IS NOT NULL
                     ORDER BY st.last_failure_at DESC LIMIT 1) AS last_error
                FROM standing
                WHERE failed > 0 OR backlog > 0
                ORDER BY CASE WHEN succeeded + failed > 0
                    THEN CAST(failed AS DOUBLE PRECISION) / (succeeded + failed) ELSE 0 END DESC,
                    backlog DESC, label
                LIMIT $2"
            ),
            health_rollups_all: rollups_sql!(indexed_by!($d, "endpoint_health_recent"), ""),
            all_endpoint_queues: concat!(
                "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries",
                indexed_by!($d, "deliveries_queue"),
                " WHERE state IN ('pending', 'scheduled') GROUP BY endpoint_id"
            ),
            all_endpoint_in_flight: concat!(
                "SELECT endpoint_id, COUNT(*) FROM deliveries",
                indexed_by!($d, "deliveries_in_flight"),
                " WHERE state = 'in_flight' GROUP BY endpoint_id"
            ),
            endpoint_queues_of: concat!(
                "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries",
                indexed_by!($d, "deliveries_queue"),
                " WHERE state IN ('pending', 'scheduled') AND endpoint_id",
                any_of_json!($d, "1"),
                " GROUP BY endpoint_id"
            ),
            health_stats_of: stats_sql!(concat!(" AND endpoint_id", any_of_json!($d, "1"))),
            health_rollups_of: rollups_sql!(concat!(" AND endpoint_id", any_of_json!($d, "3"))),
            search_window_end: "SELECT created_at, id FROM events
                 WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC
                 LIMIT 1 OFFSET $3",
            search_payloads: concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM events ev JOIN deliveries d ON d.event_id = ev.id
                   JOIN endpoints e ON e.id = d.endpoint_id JOIN tenants t ON t.id = d.tenant_id
                 WHERE (ev.created_at, ev.id) < ($2, $3) AND (ev.created_at, ev.id) >= ($4, $5)
                   AND ",
                contains!($d),
                "(ev.payload, $1) > 0
                 ORDER BY d.created_at DESC, d.id DESC"
            ),
            insert_attempts: rows_statement!(
                $d,
                ValuesStatement {
                    name: concat!(stringify!($d), ".insert_attempts"),
                    head: "INSERT INTO attempts (id, delivery_id, endpoint_id, attempt_number, started_at,
                         duration_ms, status_code, error_kind, error_message, request_headers,
                         response_body, dispatcher_id)
                     SELECT * FROM (VALUES ",
                    columns: 12,
                    tail: ") AS v WHERE column1 IS NOT NULL",
                },
                concat!(
                    "INSERT INTO attempts (id, delivery_id, endpoint_id, attempt_number, started_at,
                         duration_ms, status_code, error_kind, error_message, request_headers,
                         response_body, dispatcher_id)
                     SELECT value->>'id', value->>'delivery_id', value->>'endpoint_id',
                         CAST(value->>'attempt_number' AS BIGINT), CAST(value->>'started_at' AS BIGINT),
                         CAST(value->>'duration_ms' AS BIGINT), CAST(value->>'status_code' AS BIGINT),
                         value->>'error_kind', value->>'error_message', value->>'request_headers',
                         value->>'response_body', value->>'dispatcher_id'
                     FROM ",
                    json_rows!($d, "1")
                )
            ),
            apply_outcomes: rows_statement!(
                $d,
                ValuesStatement {
                    name: concat!(stringify!($d), ".apply_outcomes"),
                    head: "WITH p (now, owner) AS (VALUES (?, ?)),
                         o (id, state, attempt_number, retry_in, started_at, status_code, error)
                         AS (VALUES ",
                    columns: 7,
                    tail: concat!(
                        ") UPDATE deliveries",
                        indexed_by!($d, "sqlite_autoindex_deliveries_1"),
                        " SET
                             state = o.state,
                             attempts = o.attempt_number,
                             next_attempt_at = CASE WHEN o.state = 'scheduled' THEN p.now + o.retry_in
                                                    ELSE deliveries.next_attempt_at END,
                             lease_owner = NULL, lease_expires_at = NULL,
                             last_attempt_at = o.started_at, last_status = o.status_code,
                             last_error = o.error, updated_at = p.now
                         FROM o, p
                         WHERE deliveries.id = o.id AND deliveries.state = 'in_flight'
                           AND deliveries.lease_owner = p.owner"
                    ),
                },
                concat!(
                    "UPDATE deliveries",
                    indexed_by!($d, "sqlite_autoindex_deliveries_1"),
                    " SET
                         state = o.state,
                         attempts = o.attempt_number,
                         next_attempt_at = CASE WHEN o.state = 'scheduled' THEN $2 + o.retry_in
                                                ELSE deliveries.next_attempt_at END,
                         lease_owner = NULL, lease_expires_at = NULL,
                         last_attempt_at = o.started_at, last_status = o.status_code,
                         last_error = o.error, updated_at = $2
                     FROM (SELECT value->>'delivery_id' AS id, value->>'state' AS state,
                               CAST(value->>'attempt_number' AS BIGINT) AS attempt_number,
                               CAST(value->>'retry_in' AS BIGINT) AS retry_in,
                               CAST(value->>'started_at' AS BIGINT) AS started_at,
                               CAST(value->>'status_code' AS BIGINT) AS status_code,
                               value->>'error' AS error
                           FROM ",
                    json_rows!($d, "1"),
                    ") AS o
                     WHERE deliveries.id = o.id AND deliveries.state = 'in_flight'
                       AND deliveries.lease_owner = $3"
                )
            ),
            upsert_endpoint_stats: concat!(
                "INSERT INTO endpoint_stats (endpoint_id, dispatcher_id, consecutive_failures,
                     last_attempt_at, last_success_at, last_failure_at, last_status, last_error)
                 SELECT value->>'endpoint_id', value->>'dispatcher_id', CAST(value->>'failures' AS BIGINT),
                     CAST(value->>'last_attempt_at' AS BIGINT), CAST(value->>'last_success_at' AS BIGINT),
                     CAST(value->>'last_failure_at' AS BIGINT), CAST(value->>'last_status' AS BIGINT),
                     value->>'last_error'
                 FROM ",
                json_rows!($d, "1"),
                " WHERE TRUE
                 ON CONFLICT (endpoint_id, dispatcher_id) DO UPDATE SET
                     consecutive_failures = CASE WHEN excluded.last_success_at IS NOT NULL
                         THEN excluded.consecutive_failures
                         ELSE endpoint_stats.consecutive_failures + excluded.consecutive_failures END,
                     last_attempt_at = ",
                greatest!($d),
                "(COALESCE(endpoint_stats.last_attempt_at, 0), excluded.last_attempt_at),
                     last_success_at = COALESCE(excluded.last_success_at, endpoint_stats.last_success_at),
                     last_failure_at = COALESCE(excluded.last_failure_at, endpoint_stats.last_failure_at),
                     last_status = excluded.last_status,
                     last_error = COALESCE(excluded.last_error, endpoint_stats.last_error)"
            ),
            upsert_health: concat!(
                "INSERT INTO endpoint_health (endpoint_id, minute, dispatcher_id, succeeded, status_4xx, status_5xx,
                     timeout, network, other, latency_sum_ms,
                     b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11)
                 SELECT value->>'endpoint_id', CAST(value->>'minute' AS BIGINT), value->>'dispatcher_id',
                     CAST(value->>'succeeded' AS BIGINT), CAST(value->>'status_4xx' AS BIGINT),
                     CAST(value->>'status_5xx' AS BIGINT), CAST(value->>'timeout' AS BIGINT),
                     CAST(value->>'network' AS BIGINT), CAST(value->>'other' AS BIGINT),
                     CAST(value->>'latency_sum_ms' AS BIGINT),
                     CAST(value->'buckets'->>0 AS BIGINT), CAST(value->'buckets'->>1 AS BIGINT),
                     CAST(value->'buckets'->>2 AS BIGINT), CAST(value->'buckets'->>3 AS BIGINT),
                     CAST(value->'buckets'->>4 AS BIGINT), CAST(value->'buckets'->>5 AS BIGINT),
                     CAST(value->'buckets'->>6 AS BIGINT), CAST(value->'buckets'->>7 AS BIGINT),
                     CAST(value->'buckets'->>8 AS BIGINT), CAST(value->'buckets'->>9 AS BIGINT),
                     CAST(value->'buckets'->>10 AS BIGINT), CAST(value->'buckets'->>11 AS BIGINT)
                 FROM ",
                json_rows!($d, "1"),
                " WHERE TRUE
                 ON CONFLICT (endpoint_id, minute, dispatcher_id) DO UPDATE SET
                     succeeded = endpoint_health.succeeded + excluded.succeeded,
                     status_4xx = endpoint_health.status_4xx + excluded.status_4xx,
                     status_5xx = endpoint_health.status_5xx + excluded.status_5xx,
                     timeout = endpoint_health.timeout + excluded.timeout,
                     network = endpoint_health.network + excluded.network,
                     other = endpoint_health.other + excluded.other,
                     latency_sum_ms = endpoint_health.latency_sum_ms + excluded.latency_sum_ms,
                     b0 = endpoint_health.b0 + excluded.b0, b1 = endpoint_health.b1 + excluded.b1,
                     b2 = endpoint_health.b2 + excluded.b2, b3 = endpoint_health.b3 + excluded.b3,
                     b4 = endpoint_health.b4 + excluded.b4, b5 = endpoint_health.b5 + excluded.b5,
                     b6 = endpoint_health.b6 + excluded.b6, b7 = endpoint_health.b7 + excluded.b7,
                     b8 = endpoint_health.b8 + excluded.b8, b9 = endpoint_health.b9 + excluded.b9,
                     b10 = endpoint_health.b10 + excluded.b10, b11 = endpoint_health.b11 + excluded.b11"
            ),
            release_leases: concat!(
                "UPDATE deliveries",
                indexed_by!($d, "sqlite_autoindex_deliveries_1"),
                " SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
                 WHERE lease_owner = $1 AND state = 'in_flight' AND id IN ",
                json_list!($d, "3")
            ),
            delivery_states: concat!(
                "SELECT d.id, d.state, e.deleted_at FROM deliveries d
                 JOIN endpoints e ON e.id = d.endpoint_id WHERE d.id IN ",
                json_list!($d, "1")
            ),
            retry_ids: concat!(
                "UPDATE deliveries",
                indexed_by!($d, "sqlite_autoindex_deliveries_1"),
                " SET state = 'pending', attempts = 0, next_attempt_at = $2,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
                 WHERE id IN ",
                json_list!($d, "1"),
                " AND state IN ('dead', 'scheduled', 'succeeded')
                   AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)
                 RETURNING id"
            ),
        }
    };
}

impl Dialect {
    /// ` INDEXED BY <index>` where the database takes index hints, else
    /// nothing: for statements assembled at run time.
    pub fn index_hint(&self, index: &str) -> String {
        if self.index_hints {
            format!(" INDEXED BY {index}")
        } else {
            String::new()
        }
    }
}

/// SQLite: one writer at a time, this host's clock.
pub(crate) const SQLITE: Dialect = statements!(
    sqlite,
    begin: "BEGIN IMMEDIATE",
    now: None,
    migration_lock: None,
    migrations_table_exists:
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    lock_endpoints: None,
    explain: "EXPLAIN QUERY PLAN ",
    explain_column: "detail",
    plan_with_values: None,
    notify: None
);

/// Postgres: row locks, the server's clock.
pub(crate) const POSTGRES: Dialect = statements!(
    postgres,
    begin: "BEGIN",
    now: Some("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"),
    // An arbitrary constant key: "hookline migrations".
    migration_lock: Some("SELECT pg_advisory_xact_lock(7204186375)"),
    migrations_table_exists: "SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
    // NO KEY UPDATE: strong enough to exclude other claims, and it does not
    // conflict with the KEY SHARE locks that foreign-key checks and
    // publishes take, so dispatchers recording outcomes for these endpoints
    // never wait on it, and a claim never finds them taken by a publish.
    lock_endpoints: Some(concat!(
        "SELECT id FROM endpoints WHERE id IN ",
        json_list!(postgres, "1"),
        " FOR NO KEY UPDATE SKIP LOCKED"
    )),
    explain: "EXPLAIN ",
    explain_column: "QUERY PLAN",
    plan_with_values: Some("SET LOCAL plan_cache_mode = force_custom_plan"),
    notify: Some("SELECT pg_notify('hookline_changes', '')")
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a statement whose rows travel as JSON.
    fn json(statement: &RowsStatement) -> &'static str {
        match statement {
            RowsStatement::Json(text) => text,
            RowsStatement::Values(_) => panic!("rows as bound parameters, not JSON"),
        }
    }

    /// `(name, head, columns, tail)` of a statement whose rows are bound parameters.
    fn values(statement: &RowsStatement) -> (&'static str, &'static str, usize, &'static str) {
        match statement {
            RowsStatement::Values(v) => (v.name, v.head, v.columns, v.tail),
            RowsStatement::Json(_) => panic!("rows as JSON, not bound parameters"),
        }
    }

    /// One statement per helper the statements are built with, pinned to
    /// its exact text: a change here is a change to the SQL sent.
    #[test]
    fn statements_keep_their_exact_text() {
        assert_eq!(
            SQLITE.release_leases,
            "UPDATE deliveries INDEXED BY sqlite_autoindex_deliveries_1 SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
                 WHERE lease_owner = $1 AND state = 'in_flight' AND id IN (SELECT value FROM json_each($3))"
        );
        assert_eq!(
            POSTGRES.release_leases,
            "UPDATE deliveries SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
                 WHERE lease_owner = $1 AND state = 'in_flight' AND id IN (SELECT value FROM jsonb_array_elements_text($3::jsonb) AS l(value))"
        );
        assert_eq!(
            SQLITE.endpoint_queues_of,
            "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries INDEXED BY deliveries_queue WHERE state IN ('pending', 'scheduled') AND endpoint_id IN (SELECT value FROM json_each($1)) GROUP BY endpoint_id"
        );
        assert_eq!(
            POSTGRES.endpoint_queues_of,
            "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries WHERE state IN ('pending', 'scheduled') AND endpoint_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) GROUP BY endpoint_id"
        );
        assert_eq!(
            SQLITE.tenant_subscriptions,
            "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE s.tenant_id = $1 AND e.deleted_at IS NULL ORDER BY s.endpoint_id"
        );
        assert_eq!(
            POSTGRES.tenant_subscriptions,
            "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE s.tenant_id = $1 AND e.deleted_at IS NULL ORDER BY s.endpoint_id FOR KEY SHARE OF e"
        );
        assert_eq!(
            SQLITE.insert_idempotency_keys,
            "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2
                 FROM jsonb_each($1) WHERE TRUE ON CONFLICT (scope, key) DO NOTHING RETURNING scope, key"
        );
        assert_eq!(
            POSTGRES.insert_idempotency_keys,
            "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2
                 FROM jsonb_array_elements($1::jsonb) AS r(value) WHERE TRUE ON CONFLICT (scope, key) DO NOTHING RETURNING scope, key"
        );
        assert_eq!(SQLITE.lock_endpoints, None);
        assert_eq!(
            POSTGRES.lock_endpoints,
            Some(
                "SELECT id FROM endpoints WHERE id IN (SELECT value FROM jsonb_array_elements_text($1::jsonb) AS l(value)) FOR NO KEY UPDATE SKIP LOCKED"
            )
        );
        assert_eq!(
            values(&SQLITE.insert_events),
            (
                "sqlite.insert_events",
                "WITH p (now) AS (VALUES (?))
                         INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, p.now
                         FROM p, (VALUES ",
                5,
                ") AS v WHERE v.column1 IS NOT NULL"
            )
        );
        assert_eq!(
            json(&POSTGRES.insert_events),
            "INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                     SELECT value->>'id', value->>'tenant_id', value->>'topic', value->>'payload',
                         value->>'idempotency_key', $2
                     FROM jsonb_array_elements($1::jsonb) AS r(value)"
        );
        assert_eq!(
            (SQLITE.queue_index_hint, SQLITE.skip_locked, SQLITE.greatest),
            (" INDEXED BY deliveries_queue", "", "MAX")
        );
        assert_eq!(
            (
                POSTGRES.queue_index_hint,
                POSTGRES.skip_locked,
                POSTGRES.greatest
            ),
            ("", " FOR UPDATE SKIP LOCKED", "GREATEST")
        );
    }
}
