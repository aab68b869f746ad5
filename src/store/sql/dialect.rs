//! Where SQLite and Postgres SQL differ: how a write transaction begins,
//! whose clock is "now", how a set travels as one JSON parameter
//! (`jsonb_each` on SQLite, `jsonb_array_elements` on Postgres), and how
//! the per-delivery writes spell their rows of bound parameters
//! ([`RowsStatement`]). Every other statement is shared text in the module
//! that uses it.
//!
//! Each statement here is written once, as a function of the [`Flavor`],
//! and built for each backend on first use, so the two spellings cannot
//! drift apart.

use std::sync::LazyLock;

use super::rows::{delivery_columns, endpoint_columns, subscription_columns};
use super::values::{RowsStatement, ValuesStatement};
use crate::store::read::health::{rollups_sql, stats_sql};

/// SQLite: one writer at a time, this host's clock.
pub(crate) static SQLITE: LazyLock<Dialect> = LazyLock::new(|| Dialect::new(Flavor::Sqlite));

/// Postgres: row locks, the server's clock.
pub(crate) static POSTGRES: LazyLock<Dialect> = LazyLock::new(|| Dialect::new(Flavor::Postgres));

/// The statements that differ between backends, built once per process
/// ([`SQLITE`], [`POSTGRES`]) and kept for its life: sqlx takes a
/// statement as `&'static str`.
///
/// The fields documented here are spelled in [`Dialect::new`] itself;
/// every other field is built by the function (or const) of the same name
/// below, whose doc says what the statement does.
pub(crate) struct Dialect {
    /// Spells the index hints of [`Dialect::index_hint`].
    flavor: Flavor,
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
    /// SQLite: makes the writer overwrite every page it frees with zeros,
    /// not only the rows it removes in place, for the rest of an erasure
    /// (see [`Dialect::secure_erase_end`]); `None` where nothing is needed.
    pub secure_erase_begin: Option<&'static str>,
    /// Puts the writer back to zeroing only what costs no extra I/O.
    pub secure_erase_end: Option<&'static str>,
    pub lock_endpoints: Option<&'static str>,
    pub endpoint_for_update: &'static str,
    pub endpoint_for_delete: &'static str,
    pub tenant_endpoints_for_delete: &'static str,
    pub subscription_for_update: &'static str,
    pub tenant_subscriptions: &'static str,
    pub all_subscriptions: &'static str,
    pub insert_events: RowsStatement,
    pub insert_deliveries: RowsStatement,
    pub insert_idempotency_keys: &'static str,
    pub find_idempotency_keys: &'static str,
    pub reap_expired: &'static str,
    pub due_pauses: &'static str,
    pub end_pauses: &'static str,
    pub queue_heads: &'static str,
    /// `SELECT` of the live data's size in bytes (see [`live_size`]).
    pub live_size: &'static str,
    pub cycle_heads: Option<&'static str>,
    pub in_flight_of: &'static str,
    /// Whether the claim statement counts each endpoint's leases itself
    /// (Postgres: it runs after the endpoint locks, which saves the round
    /// trip of counting them in a statement of their own).
    pub claim_counts_leases: bool,
    /// Claim: the index hint for the per-endpoint candidate scans.
    pub queue_index_hint: &'static str,
    /// Claim: the row-lock clause of the candidate scans.
    pub skip_locked: &'static str,
    /// Claim: the index hint that makes updates by id use the primary key.
    pub primary_key_hint: &'static str,
    /// The larger of two values (`MAX` on SQLite, `GREATEST` on Postgres).
    pub greatest: &'static str,
    pub endpoint_targets: &'static str,
    pub hand_off_heads: &'static str,
    pub queue_counts: &'static str,
    pub metric_gauges: &'static str,
    pub worst_endpoints: &'static str,
    pub health_rollups_all: &'static str,
    pub all_endpoint_queues: &'static str,
    pub all_endpoint_in_flight: &'static str,
    pub endpoint_queues_of: &'static str,
    pub health_stats_of: &'static str,
    pub health_rollups_of: &'static str,
    pub search_window_end: &'static str,
    pub search_payloads: &'static str,
    pub insert_attempts: RowsStatement,
    /// `insert_attempts` and `apply_outcomes` in one statement, where the
    /// backend can (Postgres: one round trip fewer per cycle); its rows are
    /// `$1`, the clock `$2`, the owner `$3`.
    pub record_outcomes: Option<&'static str>,
    pub apply_outcomes: RowsStatement,
    pub upsert_endpoint_stats: &'static str,
    pub upsert_health: &'static str,
    /// Adds JSON rows `$1` to the per-minute failures by cause.
    pub upsert_causes: &'static str,
    pub release_leases: &'static str,
    pub delivery_states: &'static str,
    pub retry_ids: &'static str,
    pub retry_undelivered_ids: &'static str,
    pub deliveries_of: &'static str,
    pub count_breaker_outcomes: &'static str,
    pub start_breakers: &'static str,
    pub start_probes: &'static str,
    pub take_tokens: &'static str,
}

impl Dialect {
    /// Every statement spelled for `f`. Called once per flavor, by the
    /// statics: the text is leaked, to live as long as the process.
    fn new(f: Flavor) -> Dialect {
        Dialect {
            flavor: f,
            begin_write: f.pick("BEGIN IMMEDIATE", "BEGIN"),
            now: f.pick(
                None,
                Some("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"),
            ),
            // An arbitrary constant key: "hookline migrations".
            migration_lock: f.pick(None, Some("SELECT pg_advisory_xact_lock(7204186375)")),
            notify: f.pick(None, Some("SELECT pg_notify('hookline_changes', '')")),
            explain: f.pick("EXPLAIN QUERY PLAN ", "EXPLAIN "),
            explain_column: f.pick("detail", "QUERY PLAN"),
            plan_with_values: f.pick(None, Some("SET LOCAL plan_cache_mode = force_custom_plan")),
            migrations_table_exists: f.pick(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
                "SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
            ),
            secure_erase_begin: f.pick(Some("PRAGMA secure_delete = ON"), None),
            secure_erase_end: f.pick(Some("PRAGMA secure_delete = FAST"), None),
            lock_endpoints: lock_endpoints(f).map(|text| &*text.leak()),
            endpoint_for_update: endpoint_for_update(f).leak(),
            endpoint_for_delete: endpoint_for_delete(f).leak(),
            tenant_endpoints_for_delete: tenant_endpoints_for_delete(f).leak(),
            subscription_for_update: subscription_for_update(f).leak(),
            tenant_subscriptions: tenant_subscriptions(f).leak(),
            all_subscriptions: all_subscriptions(f).leak(),
            insert_events: insert_events(f),
            insert_deliveries: insert_deliveries(f),
            insert_idempotency_keys: insert_idempotency_keys(f).leak(),
            find_idempotency_keys: find_idempotency_keys(f).leak(),
            reap_expired: reap_expired(f).leak(),
            due_pauses: due_pauses(f).leak(),
            end_pauses: end_pauses(f).leak(),
            queue_heads: queue_heads(f).leak(),
            live_size: format!("SELECT {}", live_size(f)).leak(),
            cycle_heads: cycle_heads(f),
            in_flight_of: in_flight_of(f).leak(),
            claim_counts_leases: f.pick(false, true),
            queue_index_hint: f.indexed_by("deliveries_queue").leak(),
            skip_locked: f.skip_locked(),
            primary_key_hint: f.indexed_by("sqlite_autoindex_deliveries_1").leak(),
            greatest: f.greatest(),
            endpoint_targets: endpoint_targets(f).leak(),
            hand_off_heads: hand_off_heads(f).leak(),
            queue_counts: queue_counts(f).leak(),
            metric_gauges: metric_gauges(f).leak(),
            worst_endpoints: worst_endpoints(f).leak(),
            health_rollups_all: health_rollups_all(f).leak(),
            all_endpoint_queues: all_endpoint_queues(f).leak(),
            all_endpoint_in_flight: all_endpoint_in_flight(f).leak(),
            endpoint_queues_of: endpoint_queues_of(f).leak(),
            health_stats_of: health_stats_of(f).leak(),
            health_rollups_of: health_rollups_of(f).leak(),
            search_window_end: SEARCH_WINDOW_END,
            search_payloads: search_payloads(f).leak(),
            insert_attempts: insert_attempts(f),
            record_outcomes: record_outcomes(f),
            apply_outcomes: apply_outcomes(f),
            upsert_endpoint_stats: upsert_endpoint_stats(f).leak(),
            upsert_health: upsert_health(f).leak(),
            upsert_causes: upsert_causes(f).leak(),
            count_breaker_outcomes: count_breaker_outcomes(f).leak(),
            start_breakers: start_breakers(f).leak(),
            start_probes: start_probes(f).leak(),
            take_tokens: take_tokens(f).leak(),
            release_leases: release_leases(f).leak(),
            delivery_states: delivery_states(f).leak(),
            retry_ids: retry_ids(f, "'dead', 'scheduled', 'succeeded'").leak(),
            retry_undelivered_ids: retry_ids(f, "'dead', 'scheduled'").leak(),
            deliveries_of: deliveries_of(f).leak(),
        }
    }

    /// ` INDEXED BY <index>` where the database takes index hints, else
    /// nothing: for statements assembled at run time.
    pub fn index_hint(&self, index: &str) -> String {
        self.flavor.indexed_by(index)
    }

    /// ` = ANY (…)` / ` IN (…)` of the JSON array parameter `$n`, in the
    /// form each database probes an index with (see [`Flavor::any_of_json`]).
    pub fn any_of_json(&self, n: u8) -> String {
        self.flavor.any_of_json(n)
    }

    /// Takes (Postgres) a share lock on the events of the deliveries `ld`
    /// that `deliveries_where` picks, before a retry revives
    /// them: a payload removal holds its events' rows, so a retry either
    /// waits and then sees the payload gone, or revives first and the
    /// removal sees the delivery unfinished. `None` on SQLite, where write
    /// transactions exclude each other.
    pub fn lock_events_of(&self, deliveries_where: &str) -> Option<String> {
        match self.flavor {
            Flavor::Sqlite => None,
            Flavor::Postgres => Some(format!(
                "SELECT ev.id FROM events ev WHERE ev.id IN
                   (SELECT ld.event_id FROM deliveries ld WHERE {deliveries_where})
                 FOR SHARE OF ev"
            )),
        }
    }

    /// The thousandths of a request in a rate limit's bucket at clock
    /// `now`, its columns named with `prefix` (see [`tokens_at`]).
    pub fn tokens_at(&self, now: &str, prefix: &str) -> String {
        tokens_at(self.flavor, now, prefix)
    }

    /// ` <clause>` (a row lock) where the database has row locks, else
    /// nothing: SQLite's one writer already excludes the others.
    pub fn row_lock(&self, clause: &str) -> String {
        self.flavor.row_lock(clause)
    }
}

/// Which database a [`Dialect`] spells its statements for.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    Sqlite,
    Postgres,
}

impl Flavor {
    /// `sqlite` on SQLite, `postgres` on Postgres.
    fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Flavor::Sqlite => sqlite,
            Flavor::Postgres => postgres,
        }
    }

    /// `(SELECT value FROM <the JSON array parameter $n>)`, as a list of text.
    fn json_list(self, n: u8) -> String {
        match self {
            Flavor::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
            Flavor::Postgres => {
                format!("(SELECT value FROM jsonb_array_elements_text(${n}::jsonb) AS l(value))")
            }
        }
    }

    /// `= any of the JSON array parameter $n`, for readers filtering by a
    /// list of ids. Postgres gets the list as an array it can probe an index
    /// with (a set-returning subquery makes it read every candidate row and
    /// hash the list instead); SQLite reads `IN (list)` that way already.
    fn any_of_json(self, n: u8) -> String {
        match self {
            Flavor::Sqlite => format!(" IN (SELECT value FROM json_each(${n}))"),
            Flavor::Postgres => {
                format!(" = ANY (ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
            }
        }
    }

    /// A FROM source yielding one JSON object per row in column `value`.
    /// Both use the binary JSON form (`jsonb_each`, `jsonb_array_elements`):
    /// it parses the parameter once, so each `value->>'field'` is a lookup,
    /// not a re-parse of the row's text (the re-parsing was the largest cost
    /// of a cycle). Only strings travel inside these rows (payloads among
    /// them), and a JSON string comes back from `->>` exactly as it went in.
    fn json_rows(self, n: u8) -> String {
        match self {
            Flavor::Sqlite => format!("jsonb_each(${n})"),
            Flavor::Postgres => format!("jsonb_array_elements(${n}::jsonb) AS r(value)"),
        }
    }

    /// A per-delivery write: on SQLite its rows as bound parameters
    /// (`values`), where looking each field up in one JSON parameter took a
    /// fifth of the writer's time; on Postgres as one JSON parameter
    /// (`json`), where binding the rows as parameters measured slower.
    fn rows_statement(
        self,
        values: impl FnOnce() -> ValuesStatement,
        json: impl FnOnce() -> String,
    ) -> RowsStatement {
        match self {
            Flavor::Sqlite => RowsStatement::Values(values()),
            Flavor::Postgres => RowsStatement::Json(json().leak()),
        }
    }

    /// Pins a statement to an index on SQLite, where the planner without
    /// statistics may otherwise sort the whole queue, or scan every queued
    /// row to update a few by id (`sqlite_autoindex_deliveries_1` is the
    /// primary key); SQLite then refuses to run rather than silently choose a
    /// worse plan. Postgres plans well on its own.
    fn indexed_by(self, index: &str) -> String {
        match self {
            Flavor::Sqlite => format!(" INDEXED BY {index}"),
            Flavor::Postgres => String::new(),
        }
    }

    /// A row-lock clause (`FOR UPDATE OF e`, `FOR KEY SHARE OF e`) where the
    /// database has row locks; SQLite's write transactions already exclude
    /// each other.
    fn row_lock(self, clause: &str) -> String {
        match self {
            Flavor::Sqlite => String::new(),
            Flavor::Postgres => format!(" {clause}"),
        }
    }

    /// The function giving the position of text `needle` in `haystack`
    /// (0 when absent), called as `f(haystack, needle)`.
    fn contains(self) -> &'static str {
        self.pick("instr", "strpos")
    }

    /// `FOR UPDATE SKIP LOCKED` where the database has row locks.
    fn skip_locked(self) -> &'static str {
        self.pick("", " FOR UPDATE SKIP LOCKED")
    }

    /// The larger of two values: SQLite's scalar MAX, Postgres's GREATEST.
    fn greatest(self) -> &'static str {
        self.pick("MAX", "GREATEST")
    }
}

// Reading rows to change or delete them.

/// Live endpoint `$1` with its tenant's name, as `EndpointRow` reads it.
const LIVE_ENDPOINT: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
              WHERE e.deleted_at IS NULL AND e.id = $1"
);

/// Reads live endpoint `$1` to change it; Postgres locks the row so
/// concurrent read-modify-writes cannot lose each other's changes.
fn endpoint_for_update(f: Flavor) -> String {
    format!("{LIVE_ENDPOINT}{}", f.row_lock("FOR NO KEY UPDATE OF e"))
}

/// Reads live endpoint `$1` to delete it; Postgres locks the row against
/// publishes too (`FOR UPDATE` conflicts with their key-share locks), so
/// a delete waits for publishes in flight and then cancels what they made.
fn endpoint_for_delete(f: Flavor) -> String {
    format!("{LIVE_ENDPOINT}{}", f.row_lock("FOR UPDATE OF e"))
}

/// The ids of tenant `$1`'s live endpoints, locked as for a delete.
fn tenant_endpoints_for_delete(f: Flavor) -> String {
    format!(
        "SELECT id FROM endpoints WHERE tenant_id = $1 AND deleted_at IS NULL{}",
        f.row_lock("FOR UPDATE")
    )
}

/// Reads subscription `$1` to change it, locked like `endpoint_for_update`.
fn subscription_for_update(f: Flavor) -> String {
    format!(
        "SELECT {columns} FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                  JOIN tenants t ON t.id = s.tenant_id
                  WHERE s.id = $1 AND e.deleted_at IS NULL{lock}",
        columns = subscription_columns!(),
        lock = f.row_lock("FOR NO KEY UPDATE OF s"),
    )
}

// Publish.

/// `(endpoint_id, tenant_id, pattern)` of tenant `$1`'s live endpoints'
/// subscriptions. Postgres key-share-locks the endpoints: a concurrent
/// delete (`endpoint_for_delete`) waits and then cancels what this publish
/// created, while claims and edits, which lock them `FOR NO KEY UPDATE`,
/// neither wait for publishes nor make them wait.
fn tenant_subscriptions(f: Flavor) -> String {
    format!(
        "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE s.tenant_id = $1 AND e.deleted_at IS NULL ORDER BY s.endpoint_id{}",
        f.row_lock("FOR KEY SHARE OF e")
    )
}

/// [`tenant_subscriptions`] for every tenant (broadcasts).
fn all_subscriptions(f: Flavor) -> String {
    format!(
        "SELECT s.endpoint_id, e.tenant_id, s.pattern
                 FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 WHERE e.deleted_at IS NULL ORDER BY s.endpoint_id{}",
        f.row_lock("FOR KEY SHARE OF e")
    )
}

/// Inserts event rows (`bind_event!`) created at "now".
fn insert_events(f: Flavor) -> RowsStatement {
    f.rows_statement(
        || ValuesStatement {
            name: "sqlite.insert_events",
            head: "WITH p (now) AS (VALUES (?))
                         INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, p.now
                         FROM p, (VALUES ",
            columns: 5,
            tail: ") AS v WHERE v.column1 IS NOT NULL",
        },
        || {
            format!(
                "INSERT INTO events (id, tenant_id, topic, payload, idempotency_key, created_at)
                     SELECT value->>'id', value->>'tenant_id', value->>'topic', value->>'payload',
                         value->>'idempotency_key', $2
                     FROM {}",
                f.json_rows(1)
            )
        },
    )
}

/// Inserts delivery rows (`bind_delivery!`) created at "now", due at
/// "due": pending, or already leased where a row carries its state and
/// lease.
fn insert_deliveries(f: Flavor) -> RowsStatement {
    f.rows_statement(
        || ValuesStatement {
            name: "sqlite.insert_deliveries",
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
        || {
            format!(
                "INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, topic, state, attempts,
                         next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at)
                     SELECT value->>'id', value->>'event_id', value->>'endpoint_id', value->>'tenant_id',
                         value->>'topic', COALESCE(value->>'state', 'pending'), 0, $3, $2, $2,
                         value->>'lease_owner', CAST(value->>'lease_expires_at' AS BIGINT)
                     FROM {}",
                f.json_rows(1)
            )
        },
    )
}

/// Claims the idempotency keys in JSON rows `$1` (created at `$2`), taking
/// over those created before `$3` (expired); returns `(scope, key)` of
/// those that were free or expired.
fn insert_idempotency_keys(f: Flavor) -> String {
    format!(
        "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at, request_hash)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2, value->>'request_hash'
                 FROM {} WHERE TRUE
                 ON CONFLICT (scope, key) DO UPDATE SET event_id = excluded.event_id,
                     delivery_count = excluded.delivery_count, created_at = excluded.created_at,
                     request_hash = excluded.request_hash
                 WHERE idempotency_keys.created_at < $3
                 RETURNING scope, key",
        f.json_rows(1)
    )
}

/// The original `(scope, key, event_id, delivery_count, request_hash)` of
/// the keys in JSON rows `$1`.
fn find_idempotency_keys(f: Flavor) -> String {
    format!(
        "SELECT k.scope, k.key, k.event_id, k.delivery_count, k.request_hash FROM idempotency_keys k
                 JOIN (SELECT value->>'scope' AS scope, value->>'key' AS key FROM {}) AS w ON k.scope = w.scope AND k.key = w.key",
        f.json_rows(1)
    )
}

/// Hand-off at publish: of the active endpoints in JSON list `$1`, each
/// one's cap (`$2` where it has none), deliveries leased now, whether work
/// due by `$3` waits in its queue, and how to reach it. Endpoints behind a
/// breaker or a rate limit are left to the claim, which accounts for them.
fn hand_off_heads(f: Flavor) -> String {
    format!(
        "SELECT e.id, COALESCE(e.max_in_flight, $2) AS cap,
                     (SELECT COUNT(*) FROM deliveries f{in_flight} WHERE f.endpoint_id = e.id AND f.state = 'in_flight') AS in_flight,
                     EXISTS (SELECT 1 FROM deliveries q{queue} WHERE q.endpoint_id = e.id AND q.state IN ('pending', 'scheduled')
                           AND q.next_attempt_at <= $3) AS queued,
                     e.url, e.secret, e.previous_secret, e.previous_secret_expires_at, e.timeout_ms,
                     e.headers
                 FROM endpoints e
                 WHERE e.id IN {ids} AND e.state = 'active' AND e.deleted_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM endpoint_breakers b WHERE b.endpoint_id = e.id
                                   AND (b.state <> 'closed' OR b.wait_until > $3))
                   AND NOT EXISTS (SELECT 1 FROM endpoint_rate_limits r WHERE r.endpoint_id = e.id)",
        in_flight = f.indexed_by("deliveries_in_flight"),
        queue = f.indexed_by("deliveries_queue"),
        ids = f.json_list(1),
    )
}

// Claim.

/// Locks the endpoints in JSON list `$1` for a claim, skipping those
/// another dispatcher holds; `None` where a single writer makes it
/// unnecessary. `NO KEY UPDATE`: strong enough to exclude other claims, and
/// it does not conflict with the `KEY SHARE` locks that foreign-key checks
/// and publishes take, so dispatchers recording outcomes for these
/// endpoints never wait on it, and a claim never finds them taken by a
/// publish.
fn lock_endpoints(f: Flavor) -> Option<String> {
    match f {
        Flavor::Sqlite => None,
        Flavor::Postgres => Some(format!(
            "SELECT id FROM endpoints WHERE id IN {} FOR NO KEY UPDATE SKIP LOCKED",
            f.json_list(1)
        )),
    }
}

/// The bytes hookline's data takes, free space left out: SQLite's pages in
/// use (the WAL apart), Postgres's tables with their indexes and TOAST.
fn live_size(f: Flavor) -> &'static str {
    f.pick(
        "(SELECT (page_count - freelist_count) * page_size
            FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size())",
        "(SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r')",
    )
}

/// Puts deliveries whose lease expired before `$1` back in the queue.
fn reap_expired(f: Flavor) -> String {
    format!(
        "UPDATE deliveries{} SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
                 WHERE state = 'in_flight' AND lease_expires_at <= $1",
        f.indexed_by("deliveries_in_flight")
    )
}

/// The paused endpoints whose pause ended at or before `$1`, with when it
/// ended, from the index that holds only pauses with an end. Postgres
/// locks them and skips any that another dispatcher (or an operator's
/// change) holds: each is resumed once, by whoever got it.
fn due_pauses(f: Flavor) -> String {
    format!(
        "SELECT id, paused_until FROM endpoints{}
          WHERE paused_until IS NOT NULL AND paused_until <= $1
            AND state = 'paused' AND deleted_at IS NULL{}",
        f.indexed_by("endpoints_paused_until"),
        f.row_lock("FOR NO KEY UPDATE SKIP LOCKED")
    )
}

/// Makes the endpoints in the JSON list `$2` (found by [`due_pauses`])
/// active at `$1`, if still paused with an ended pause; returns their ids.
fn end_pauses(f: Flavor) -> String {
    format!(
        "UPDATE endpoints SET state = 'active', state_reason = NULL, state_changed_at = $1,
                paused_until = NULL, state_changed_by = 'hookline', updated_at = $1
          WHERE id IN {} AND state = 'paused' AND paused_until <= $1 AND deleted_at IS NULL
          RETURNING id",
        f.json_list(2)
    )
}

/// The endpoints with queued work, found by skipping through the queue
/// index one endpoint at a time (one index seek per such endpoint, however
/// long their queues), each with its earliest due time, its cap (`$1` where
/// it has none of its own) and its deliveries in flight.
fn queue_heads(f: Flavor) -> String {
    format!(
        "WITH RECURSIVE {walk} {rows}",
        walk = queue_walk(f),
        rows = head_rows(f, 1, "")
    )
}

/// The recursive CTE `heads(endpoint_id)` of [`queue_heads`]: one index
/// seek per endpoint with queued work.
fn queue_walk(f: Flavor) -> String {
    format!(
        "heads(endpoint_id) AS (
                    SELECT (SELECT q.endpoint_id FROM deliveries q{queue} WHERE q.state IN ('pending', 'scheduled') ORDER BY q.endpoint_id LIMIT 1)
                    UNION ALL
                    SELECT (SELECT q.endpoint_id FROM deliveries q{queue} WHERE q.state IN ('pending', 'scheduled') AND q.endpoint_id > heads.endpoint_id
                            ORDER BY q.endpoint_id LIMIT 1)
                    FROM heads WHERE heads.endpoint_id IS NOT NULL
                )",
        queue = f.indexed_by("deliveries_queue"),
    )
}

/// The head of each active endpoint [`queue_walk`] found: earliest due
/// time, cap (parameter `cap` where it has none of its own), leases
/// counted minus `released` (an expression over `e.id`, or nothing), its
/// breaker, and its rate limit's bucket.
fn head_rows(f: Flavor, cap: u8, released: &str) -> String {
    format!(
        "SELECT e.id,
                       (SELECT MIN(q.next_attempt_at) FROM deliveries q{queue} WHERE q.endpoint_id = e.id AND q.state IN ('pending', 'scheduled')) AS due,
                       CASE WHEN b.state IS NULL OR b.state = 'closed' THEN COALESCE(e.max_in_flight, ${cap}) ELSE 1 END AS cap,
                       (SELECT COUNT(*) FROM deliveries f{in_flight} WHERE f.endpoint_id = e.id AND f.state = 'in_flight'){released} AS in_flight,
                       b.state AS breaker, b.wait_until,
                       CASE WHEN b.mode = 'auto' AND b.state = 'open' THEN b.probe_at
                            WHEN b.mode = 'auto' AND b.state = 'half_open' THEN b.probe_until END AS probe_due,
                       r.per_second AS rate_per_second, r.burst AS rate_burst,
                       r.tokens_milli, r.refilled_at
                FROM heads JOIN endpoints e ON e.id = heads.endpoint_id
                LEFT JOIN endpoint_breakers b ON b.endpoint_id = e.id
                LEFT JOIN endpoint_rate_limits r ON r.endpoint_id = e.id
                WHERE e.state = 'active' AND e.deleted_at IS NULL",
        queue = f.indexed_by("deliveries_queue"),
        in_flight = f.indexed_by("deliveries_in_flight"),
    )
}

/// Postgres: the first half of a dispatcher cycle as one statement. It
/// records the last batch's outcomes (rows `$1` as [`record_outcomes`], at
/// clock `$2`, for owner `$3`), folds the rollups (`$4` endpoint stats, `$5`
/// health, `$8` failures by cause, as [`upsert_endpoint_stats`],
/// [`upsert_health`] and [`upsert_causes`]), reads the
/// queue heads (default cap `$6`) and locks, skipping those another
/// dispatcher holds, the endpoints the claim will serve: due, under their
/// cap, oldest head first, at most `$7`.
///
/// Its rows: the outcomes applied and the earliest retry they scheduled
/// (the same on every row), then one head per row (none: `id` is NULL),
/// whether this cycle locked it, and its row version (`xmin`: it changes
/// with every update of the endpoint, so a cached target is current while
/// the version is). The heads are read in the statement's one snapshot,
/// where the outcomes it records are still in flight: their count is
/// taken off. The claim, a statement of its own, counts the leases again
/// after the locks.
fn cycle_heads(f: Flavor) -> Option<&'static str> {
    let (Flavor::Postgres, RowsStatement::Json(insert), RowsStatement::Json(apply)) =
        (f, insert_attempts(f), apply_outcomes(f))
    else {
        return None;
    };
    let text = format!(
        "WITH RECURSIVE inserted AS ({insert}),
              applied AS ({apply}
                  RETURNING deliveries.endpoint_id, deliveries.state, deliveries.next_attempt_at),
              stats AS ({stats}),
              health AS ({health}),
              causes AS ({causes}),
              {walk},
              head_rows AS ({rows}),
              locked AS (SELECT id, CAST(xmin AS TEXT) AS version FROM endpoints
                  WHERE id IN (SELECT id FROM head_rows WHERE due <= $2 AND cap > in_flight
                                   AND (breaker IS NULL OR breaker = 'closed' OR probe_due <= $2)
                                   AND (wait_until IS NULL OR wait_until <= $2)
                                   AND (rate_per_second IS NULL OR {tokens} >= 1000)
                               ORDER BY due, id LIMIT $7)
                  FOR NO KEY UPDATE SKIP LOCKED)
         SELECT s.applied, s.retry_due, h.id, h.due, h.cap, h.in_flight, h.breaker, h.probe_due, h.wait_until,
                h.rate_per_second, h.rate_burst, h.tokens_milli, h.refilled_at,
                l.id IS NOT NULL AS locked, l.version
           FROM (SELECT COUNT(*) AS applied,
                        MIN(next_attempt_at) FILTER (WHERE state = 'scheduled') AS retry_due
                   FROM applied) AS s
           LEFT JOIN head_rows h ON TRUE
           LEFT JOIN locked l ON l.id = h.id",
        stats = shift_params(&upsert_endpoint_stats(f), 3),
        tokens = tokens_at(f, "$2", ""),
        health = shift_params(&upsert_health(f), 4),
        causes = shift_params(&upsert_causes(f), 7),
        walk = queue_walk(f),
        rows = head_rows(
            f,
            6,
            " - (SELECT COUNT(*) FROM applied a WHERE a.endpoint_id = e.id)"
        ),
    );
    Some(text.leak())
}

/// The thousandths of a request in a rate limit's bucket at clock `now`
/// (columns `per_second`, `burst`, `tokens_milli`, `refilled_at`, named
/// with `prefix`, or as the heads name them when `prefix` is empty):
/// what it held, plus `per_second` for every millisecond since, up to
/// `burst` requests.
fn tokens_at(f: Flavor, now: &str, prefix: &str) -> String {
    let least = f.pick("MIN", "LEAST");
    let greatest = f.greatest();
    let (rate, burst) = if prefix.is_empty() {
        ("rate_per_second".to_string(), "rate_burst".to_string())
    } else {
        (format!("{prefix}per_second"), format!("{prefix}burst"))
    };
    format!(
        "{least}({burst} * 1000, {prefix}tokens_milli + {greatest}(0, {now} - {prefix}refilled_at) * {rate})"
    )
}

/// After a claim: takes from each rate-limited endpoint of JSON rows `$2`
/// (`endpoint_id`, `taken`) a request's worth of tokens per delivery
/// leased, at clock `$1`. On Postgres the claim holds the endpoint's lock,
/// so no other claim spends the same tokens.
fn take_tokens(f: Flavor) -> String {
    format!(
        "UPDATE endpoint_rate_limits SET
             tokens_milli = {tokens} - 1000 * CAST(value->>'taken' AS BIGINT),
             refilled_at = {greatest}(refilled_at, $1), updated_at = $1
           FROM {rows}
          WHERE endpoint_rate_limits.endpoint_id = value->>'endpoint_id'",
        tokens = tokens_at(f, "$1", "endpoint_rate_limits."),
        greatest = f.greatest(),
        rows = f.json_rows(2),
    )
}

/// `text` with every parameter `$n` renumbered `$(n + by)`, so statements
/// written on their own can be parts of one.
fn shift_params(text: &str, by: usize) -> String {
    let mut shifted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        shifted.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => shifted.push_str(&(n + by).to_string()),
            Err(_) => shifted.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    shifted.push_str(rest);
    shifted
}

/// After locking (Postgres): `(endpoint_id, count)` of leased deliveries
/// of the endpoints in JSON list `$1`.
fn in_flight_of(f: Flavor) -> String {
    format!(
        "SELECT endpoint_id, COUNT(*) FROM deliveries
                 WHERE state = 'in_flight' AND endpoint_id IN {} GROUP BY endpoint_id",
        f.json_list(1)
    )
}

/// How to reach the endpoints in JSON list `$1`.
fn endpoint_targets(f: Flavor) -> String {
    format!(
        "SELECT id, url, secret, previous_secret, previous_secret_expires_at, timeout_ms, headers
                 FROM endpoints WHERE id IN {}",
        f.json_list(1)
    )
}

// Summary.

/// `(pending, scheduled, dead, in flight, earliest due)`; the first three
/// counted up to `$1` only (a count costs as many index entries as it
/// counts), each from its own partial index, and the earliest due time in
/// one seek. The last condition is `deliveries_due`'s own (migration 0004):
/// the index serves only statements that state it.
fn queue_counts(f: Flavor) -> String {
    format!(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries{pending} WHERE state = 'pending' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries{failed} WHERE state IN ('dead', 'scheduled') AND state = 'scheduled' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries{failed} WHERE state IN ('dead', 'scheduled') AND state = 'dead' LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM deliveries{in_flight} WHERE state = 'in_flight'),
                    (SELECT MIN(next_attempt_at) FROM deliveries{due} WHERE state IN ('pending', 'scheduled') AND next_attempt_at >= 0),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries{queue} WHERE state IN ('pending', 'scheduled') AND state = 'pending' AND endpoint_id IN ({stopped}) LIMIT $1) AS x),
                    (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries{queue} WHERE state IN ('pending', 'scheduled') AND state = 'scheduled' AND endpoint_id IN ({stopped}) LIMIT $1) AS x)",
        // Held work: the claim's index, one range per paused or disabled
        // endpoint, or one behind an open breaker (few), so the count costs
        // what those endpoints hold, capped.
        queue = f.indexed_by("deliveries_queue"),
        stopped = "SELECT id FROM endpoints WHERE state <> 'active' AND deleted_at IS NULL
                   UNION SELECT endpoint_id FROM endpoint_breakers WHERE state <> 'closed'",
        pending = f.indexed_by("deliveries_pending"),
        failed = f.indexed_by("deliveries_failed_state"),
        in_flight = f.indexed_by("deliveries_in_flight"),
        due = f.indexed_by("deliveries_due"),
    )
}

/// Every database gauge of `/metrics` in one statement, as rows of `(kind,
/// key, label, label, value)`; see `read/metrics.rs` for each kind. Counts
/// read partial indexes (the held ones the claim's index, one range per
/// stopped endpoint); the backlog ranking reads the queue's index once.
fn metric_gauges(f: Flavor) -> String {
    format!(
        "WITH clock AS (SELECT {now} AS now)
        SELECT 'state' AS kind, 'pending' AS gauge_key, CAST(NULL AS TEXT) AS label_a, CAST(NULL AS TEXT) AS label_b,
            CAST((SELECT COUNT(*) FROM deliveries{pending} WHERE state = 'pending') AS BIGINT) AS value
        UNION ALL SELECT 'state', 'scheduled', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{failed} WHERE state IN ('dead', 'scheduled') AND state = 'scheduled')
        UNION ALL SELECT 'state', 'dead', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{failed} WHERE state IN ('dead', 'scheduled') AND state = 'dead')
        UNION ALL SELECT 'state', 'in_flight', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{in_flight} WHERE state = 'in_flight')
        UNION ALL SELECT 'held', 'paused', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{queue} WHERE state IN ('pending', 'scheduled')
                AND endpoint_id IN (SELECT id FROM endpoints WHERE state = 'paused' AND deleted_at IS NULL))
        UNION ALL SELECT 'held', 'disabled', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{queue} WHERE state IN ('pending', 'scheduled')
                AND endpoint_id IN (SELECT id FROM endpoints WHERE state = 'disabled' AND deleted_at IS NULL))
        UNION ALL SELECT 'held', 'breaker', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{queue} WHERE state IN ('pending', 'scheduled')
                AND endpoint_id IN (SELECT b.endpoint_id FROM endpoint_breakers b JOIN endpoints e ON e.id = b.endpoint_id
                                     WHERE b.state <> 'closed' AND e.state = 'active' AND e.deleted_at IS NULL))
        UNION ALL SELECT 'held', 'wait', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{queue} WHERE state IN ('pending', 'scheduled')
                AND endpoint_id IN (SELECT b.endpoint_id FROM endpoint_breakers b JOIN endpoints e ON e.id = b.endpoint_id
                                     WHERE b.state = 'closed' AND b.wait_until > (SELECT now FROM clock)
                                       AND e.state = 'active' AND e.deleted_at IS NULL))
        UNION ALL SELECT 'held', 'rate_limited', NULL, NULL,
            (SELECT COUNT(*) FROM deliveries{queue} WHERE state IN ('pending', 'scheduled')
                AND next_attempt_at <= (SELECT now FROM clock)
                AND endpoint_id IN (SELECT r.endpoint_id FROM endpoint_rate_limits r JOIN endpoints e ON e.id = r.endpoint_id
                                     WHERE {tokens} < 1000 AND e.state = 'active' AND e.deleted_at IS NULL))
        UNION ALL SELECT 'breaker', b.endpoint_id, b.state, b.mode, 1
            FROM endpoint_breakers b JOIN endpoints e ON e.id = b.endpoint_id
            WHERE (b.state <> 'closed' OR b.mode <> 'auto') AND e.deleted_at IS NULL
        UNION ALL SELECT 'oldest_due', NULL, NULL, NULL,
            (SELECT now FROM clock) - (SELECT next_attempt_at FROM deliveries{due}
                WHERE state IN ('pending', 'scheduled') AND next_attempt_at >= 0
                AND next_attempt_at <= (SELECT now FROM clock)
                AND endpoint_id NOT IN ({stopped})
                AND endpoint_id NOT IN (SELECT endpoint_id FROM endpoint_breakers WHERE state <> 'closed')
                ORDER BY next_attempt_at LIMIT 1)
        UNION ALL SELECT 'backlog', q.endpoint_id, t.name, e.name, q.backlog
            FROM (SELECT endpoint_id, COUNT(*) AS backlog FROM deliveries{queue}
                  WHERE state IN ('pending', 'scheduled') GROUP BY endpoint_id
                  ORDER BY backlog DESC, endpoint_id LIMIT {top}) AS q
            JOIN endpoints e ON e.id = q.endpoint_id JOIN tenants t ON t.id = e.tenant_id
        UNION ALL SELECT 'endpoints', state, NULL, NULL, COUNT(*)
            FROM endpoints WHERE deleted_at IS NULL GROUP BY state
        UNION ALL SELECT 'dispatcher', id, host, CAST(pid AS TEXT), (SELECT now FROM clock) - last_seen_at
            FROM dispatchers WHERE stopped_at IS NULL AND last_seen_at >= (SELECT now FROM clock) - {recent}
        UNION ALL SELECT 'size', NULL, NULL, NULL, {size}",
        now = f.pick(
            "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        ),
        size = live_size(f),
        tokens = tokens_at(f, "(SELECT now FROM clock)", "r."),
        stopped = "SELECT id FROM endpoints WHERE state <> 'active' AND deleted_at IS NULL",
        top = crate::store::read::METRIC_BACKLOG_TOP,
        recent = crate::store::read::METRIC_DISPATCHERS_WITHIN_MS,
        pending = f.indexed_by("deliveries_pending"),
        failed = f.indexed_by("deliveries_failed_state"),
        in_flight = f.indexed_by("deliveries_in_flight"),
        queue = f.indexed_by("deliveries_queue"),
        due = f.indexed_by("deliveries_due"),
    )
}

/// `(endpoint_id, "tenant/name", state, succeeded, failed, backlog, last
/// error)` of the `$2` endpoints doing worst: by failure rate over the
/// rollups since `$1`, then backlog, then name; only endpoints with
/// failures or a backlog.
fn worst_endpoints(f: Flavor) -> String {
    format!(
        "WITH recent AS (
                    SELECT endpoint_id, SUM(succeeded) AS succeeded,
                        SUM(status_4xx + status_5xx + timeout + network + other) AS failed
                    FROM endpoint_health{health} WHERE minute >= $1 GROUP BY endpoint_id
                ), queued AS (
                    SELECT endpoint_id, COUNT(*) AS backlog FROM deliveries{queue} WHERE state IN ('pending', 'scheduled') GROUP BY endpoint_id
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
                LIMIT $2",
        health = f.indexed_by("endpoint_health_recent"),
        queue = f.indexed_by("deliveries_queue"),
    )
}

/// `(endpoint_id, pending, scheduled)` of every endpoint with a queue.
fn all_endpoint_queues(f: Flavor) -> String {
    format!(
        "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries{} WHERE state IN ('pending', 'scheduled') GROUP BY endpoint_id",
        f.indexed_by("deliveries_queue")
    )
}

/// `(endpoint_id, in flight)` of every endpoint with leases.
fn all_endpoint_in_flight(f: Flavor) -> String {
    format!(
        "SELECT endpoint_id, COUNT(*) FROM deliveries{} WHERE state = 'in_flight' GROUP BY endpoint_id",
        f.indexed_by("deliveries_in_flight")
    )
}

/// `(endpoint_id, pending, scheduled)` of the endpoints in JSON list `$1`.
fn endpoint_queues_of(f: Flavor) -> String {
    format!(
        "SELECT endpoint_id,
                     CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                     CAST(SUM(CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END) AS BIGINT)
                 FROM deliveries{} WHERE state IN ('pending', 'scheduled') AND endpoint_id{} GROUP BY endpoint_id",
        f.indexed_by("deliveries_queue"),
        f.any_of_json(1),
    )
}

// Health.

/// Rollup sums (see `health.rs`) of every endpoint since `$1`.
fn health_rollups_all(f: Flavor) -> String {
    rollups_sql(&f.indexed_by("endpoint_health_recent"), "")
}

/// `endpoint_stats` rows of the endpoints in JSON list `$1`.
fn health_stats_of(f: Flavor) -> String {
    stats_sql(&format!(" AND endpoint_id{}", f.any_of_json(1)))
}

/// Rollup sums (see `health.rs`) of the endpoints in JSON list `$3`.
fn health_rollups_of(f: Flavor) -> String {
    rollups_sql("", &format!(" AND endpoint_id{}", f.any_of_json(3)))
}

// Search.

/// `(created_at, id)` of the event `$3` places after `($1, $2)`, newest
/// first: where a search page's window of events ends. The same on both.
const SEARCH_WINDOW_END: &str = "SELECT created_at, id FROM events
                 WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC
                 LIMIT 1 OFFSET $3";

/// Deliveries of events in the window below `($2, $3)` down to `($4, $5)`
/// whose payload contains `$1`.
fn search_payloads(f: Flavor) -> String {
    format!(
        "SELECT {columns} FROM events ev JOIN deliveries d ON d.event_id = ev.id
                   JOIN endpoints e ON e.id = d.endpoint_id JOIN tenants t ON t.id = d.tenant_id
                 WHERE (ev.created_at, ev.id) < ($2, $3) AND (ev.created_at, ev.id) >= ($4, $5)
                   AND {contains}(ev.payload, $1) > 0
                 ORDER BY d.created_at DESC, d.id DESC",
        columns = delivery_columns!(),
        contains = f.contains(),
    )
}

// Outcomes.

/// Inserts attempt rows (`bind_attempt!`).
fn insert_attempts(f: Flavor) -> RowsStatement {
    f.rows_statement(
        || ValuesStatement {
            name: "sqlite.insert_attempts",
            head: "INSERT INTO attempts (id, delivery_id, endpoint_id, attempt_number, started_at,
                         duration_ms, status_code, error_kind, error_message, request_headers,
                         response_body, dispatcher_id)
                     SELECT * FROM (VALUES ",
            columns: 12,
            tail: ") AS v WHERE column1 IS NOT NULL",
        },
        || {
            format!(
                "INSERT INTO attempts (id, delivery_id, endpoint_id, attempt_number, started_at,
                         duration_ms, status_code, error_kind, error_message, request_headers,
                         response_body, dispatcher_id)
                     SELECT value->>'id', value->>'delivery_id', value->>'endpoint_id',
                         CAST(value->>'attempt_number' AS BIGINT), CAST(value->>'started_at' AS BIGINT),
                         CAST(value->>'duration_ms' AS BIGINT), CAST(value->>'status_code' AS BIGINT),
                         value->>'error_kind', value->>'error_message', value->>'request_headers',
                         value->>'response_body', value->>'dispatcher_id'
                     FROM {}",
                f.json_rows(1)
            )
        },
    )
}

/// On Postgres, the attempts inserted by a data-modifying CTE of the
/// statement that applies the outcomes: both read the same JSON rows.
fn record_outcomes(f: Flavor) -> Option<&'static str> {
    let (RowsStatement::Json(insert), RowsStatement::Json(apply)) =
        (insert_attempts(f), apply_outcomes(f))
    else {
        return None;
    };
    Some(format!("WITH inserted AS ({insert}) {apply}").leak())
}

/// Applies outcome rows (`bind_outcome!`) to the deliveries still leased
/// by "owner" as of "now".
fn apply_outcomes(f: Flavor) -> RowsStatement {
    let primary_key = f.indexed_by("sqlite_autoindex_deliveries_1");
    f.rows_statement(
        || ValuesStatement {
            name: "sqlite.apply_outcomes",
            head: "WITH p (now, owner) AS (VALUES (?, ?)),
                         o (id, state, attempt_number, retry_in, started_at, status_code, error)
                         AS (VALUES ",
            columns: 7,
            tail: format!(
                ") UPDATE deliveries{primary_key} SET
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
            )
            .leak(),
        },
        || {
            format!(
                "UPDATE deliveries{primary_key} SET
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
                           FROM {rows}) AS o
                     WHERE deliveries.id = o.id AND deliveries.state = 'in_flight'
                       AND deliveries.lease_owner = $3",
                rows = f.json_rows(1),
            )
        },
    )
}

/// Folds JSON rows `$1` into `endpoint_stats`.
fn upsert_endpoint_stats(f: Flavor) -> String {
    format!(
        "INSERT INTO endpoint_stats (endpoint_id, dispatcher_id, consecutive_failures,
                     last_attempt_at, last_success_at, last_failure_at, last_status, last_error)
                 SELECT value->>'endpoint_id', value->>'dispatcher_id', CAST(value->>'failures' AS BIGINT),
                     CAST(value->>'last_attempt_at' AS BIGINT), CAST(value->>'last_success_at' AS BIGINT),
                     CAST(value->>'last_failure_at' AS BIGINT), CAST(value->>'last_status' AS BIGINT),
                     value->>'last_error'
                 FROM {rows} WHERE TRUE
                 ON CONFLICT (endpoint_id, dispatcher_id) DO UPDATE SET
                     consecutive_failures = CASE WHEN excluded.last_success_at IS NOT NULL
                         THEN excluded.consecutive_failures
                         ELSE endpoint_stats.consecutive_failures + excluded.consecutive_failures END,
                     last_attempt_at = {greatest}(COALESCE(endpoint_stats.last_attempt_at, 0), excluded.last_attempt_at),
                     last_success_at = COALESCE(excluded.last_success_at, endpoint_stats.last_success_at),
                     last_failure_at = COALESCE(excluded.last_failure_at, endpoint_stats.last_failure_at),
                     last_status = excluded.last_status,
                     last_error = COALESCE(excluded.last_error, endpoint_stats.last_error)",
        rows = f.json_rows(1),
        greatest = f.greatest(),
    )
}

/// Adds JSON rows `$1` to the per-minute `endpoint_health` rollups.
fn upsert_health(f: Flavor) -> String {
    format!(
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
                 FROM {} WHERE TRUE
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
                     b10 = endpoint_health.b10 + excluded.b10, b11 = endpoint_health.b11 + excluded.b11",
        f.json_rows(1)
    )
}

/// Adds JSON rows `$1` to the per-minute `failure_causes`: counts add up,
/// the first and last times widen, and the example is the latest failure.
fn upsert_causes(f: Flavor) -> String {
    let (least, greatest) = (f.pick("MIN", "LEAST"), f.greatest());
    format!(
        "INSERT INTO failure_causes (endpoint_id, minute, dispatcher_id, cause, failures,
                     first_at, last_at, example_delivery_id, example_error)
                 SELECT value->>'endpoint_id', CAST(value->>'minute' AS BIGINT), value->>'dispatcher_id',
                     value->>'cause', CAST(value->>'failures' AS BIGINT),
                     CAST(value->>'first_at' AS BIGINT), CAST(value->>'last_at' AS BIGINT),
                     value->>'example_delivery_id', value->>'example_error'
                 FROM {rows} WHERE TRUE
                 ON CONFLICT (endpoint_id, minute, dispatcher_id, cause) DO UPDATE SET
                     failures = failure_causes.failures + excluded.failures,
                     first_at = {least}(failure_causes.first_at, excluded.first_at),
                     last_at = {greatest}(failure_causes.last_at, excluded.last_at),
                     example_delivery_id = CASE WHEN excluded.last_at >= failure_causes.last_at
                         THEN excluded.example_delivery_id ELSE failure_causes.example_delivery_id END,
                     example_error = CASE WHEN excluded.last_at >= failure_causes.last_at
                         THEN excluded.example_error ELSE failure_causes.example_error END",
        rows = f.json_rows(1),
    )
}

// Shutdown and retry.

/// Releases owner `$1`'s leases on JSON list `$3`; `$2` is now.
fn release_leases(f: Flavor) -> String {
    format!(
        "UPDATE deliveries{} SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
                 WHERE lease_owner = $1 AND state = 'in_flight' AND id IN {}",
        f.indexed_by("sqlite_autoindex_deliveries_1"),
        f.json_list(3),
    )
}

/// `(id, state, endpoint deleted_at)` of deliveries in JSON list `$1`.
fn delivery_states(f: Flavor) -> String {
    format!(
        "SELECT d.id, d.state, e.deleted_at,
                (SELECT ev.payload_removed_by FROM events ev WHERE ev.id = d.event_id) AS payload_removed_by
                 FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id WHERE d.id IN {}",
        f.json_list(1)
    )
}

/// Removes, of each delivery in JSON list `$1`, the attempts between its
/// first and its latest `$2`: what `retention.attempts_per_delivery` keeps.
/// Reads each delivery's attempts from `attempts_delivery` (a handful of
/// index entries for most).
pub(crate) fn trim_attempts(sql: &Dialect) -> String {
    format!(
        "DELETE FROM attempts WHERE id IN (
           SELECT ranked.id FROM (
             SELECT a.id,
                    ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.started_at DESC, a.id DESC) AS newest,
                    ROW_NUMBER() OVER (PARTITION BY a.delivery_id ORDER BY a.started_at, a.id) AS oldest
               FROM attempts a WHERE a.delivery_id{}) ranked
            WHERE ranked.newest > $2 AND ranked.oldest > 1)",
        sql.any_of_json(1)
    )
}

/// Whether the event of delivery row `delivery` (a table name or alias)
/// still has its payload: one whose payload was removed can never be sent
/// again. A lookup by the event's key per row.
pub(crate) fn payload_kept(delivery: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM events ev
            WHERE ev.id = {delivery}.event_id AND ev.payload_removed_at IS NOT NULL)"
    )
}

/// Revives the deliveries in JSON list `$1` that are in one of `states`
/// (SQL literals), due at `$2`; `$3` is now. Returns the ids revived. The
/// state is checked by the UPDATE itself, so a row that changed since it
/// was read (delivered meanwhile) is left alone.
fn retry_ids(f: Flavor, states: &str) -> String {
    format!(
        "UPDATE deliveries{} SET state = 'pending', attempts = 0, next_attempt_at = $2,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
                 WHERE id IN {} AND state IN ({states})
                   AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)
                   AND {}
                 RETURNING id",
        f.indexed_by("sqlite_autoindex_deliveries_1"),
        f.json_list(1),
        payload_kept("deliveries"),
    )
}

/// The deliveries in JSON list `$1`, as they are now.
fn deliveries_of(f: Flavor) -> String {
    format!(
        "SELECT {} FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
                 JOIN tenants t ON t.id = d.tenant_id WHERE d.id IN {}",
        delivery_columns!(),
        f.json_list(1)
    )
}

// Circuit breakers.

/// Adds JSON rows `$1` (a batch's outcomes per endpoint: attempts,
/// failures, trailing failures, answered 0/1) to the breakers those
/// endpoints have, at window bucket `$2`, clock `$3`. Two fixed buckets
/// make the sliding window: moving to the next bucket shifts the current
/// one to `previous_*`. Returns the rows as they now are. An endpoint
/// without a row (it has not failed) costs an index probe.
fn count_breaker_outcomes(f: Flavor) -> String {
    let n = |field: &str| format!("CAST(value->>'{field}' AS BIGINT)");
    format!(
        "UPDATE endpoint_breakers SET
             previous_attempts = CASE WHEN window_bucket = $2 THEN previous_attempts
                 WHEN window_bucket = $2 - 1 THEN attempts ELSE 0 END,
             previous_failures = CASE WHEN window_bucket = $2 THEN previous_failures
                 WHEN window_bucket = $2 - 1 THEN failures ELSE 0 END,
             attempts = CASE WHEN window_bucket = $2 THEN attempts ELSE 0 END + {attempts},
             failures = CASE WHEN window_bucket = $2 THEN failures ELSE 0 END + {failures},
             window_bucket = $2,
             consecutive_failures = CASE WHEN {answered} = 1 THEN {trailing}
                 ELSE consecutive_failures + {trailing} END,
             last_answered_at = CASE WHEN {answered} = 1 THEN $3 ELSE last_answered_at END,
             failing_since = CASE WHEN {trailing} = 0 AND {answered} = 1 THEN NULL
                 WHEN {trailing} > 0 AND ({answered} = 1 OR failing_since IS NULL) THEN $3
                 ELSE failing_since END,
             updated_at = $3
           FROM {rows}
          WHERE endpoint_breakers.endpoint_id = value->>'endpoint_id'
         RETURNING {returned}",
        attempts = n("attempts"),
        failures = n("failures"),
        trailing = n("trailing"),
        answered = n("answered"),
        rows = f.json_rows(1),
        returned = COUNTED_COLUMNS,
    )
}

/// Gives the endpoints of JSON rows `$1` (that failed in a batch and have
/// no breaker row) one, at window bucket `$2`, clock `$3`. The window
/// counts only what came after the failure that created the row: counting
/// from a failure would make the ratio look worse than it is. Another
/// dispatcher creating the same row first wins; these counts are then
/// left out.
fn start_breakers(f: Flavor) -> String {
    let n = |field: &str| format!("CAST(value->>'{field}' AS BIGINT)");
    format!(
        "INSERT INTO endpoint_breakers (endpoint_id, window_bucket, attempts, failures,
                consecutive_failures, last_answered_at, failing_since, updated_at)
         SELECT value->>'endpoint_id', $2, {attempts}, {failures}, {trailing},
                CASE WHEN {answered} = 1 THEN $3 END, CASE WHEN {trailing} > 0 THEN $3 END, $3
           FROM {rows} WHERE TRUE
         ON CONFLICT (endpoint_id) DO NOTHING
         RETURNING {returned}",
        attempts = n("attempts_after_first_failure"),
        failures = n("failures_after_first_failure"),
        trailing = n("trailing"),
        answered = n("answered"),
        rows = f.json_rows(1),
        returned = COUNTED_COLUMNS,
    )
}

/// What counting returns of a breaker row.
const COUNTED_COLUMNS: &str = "endpoint_id, mode, state, cooldown_ms, window_bucket, attempts,
    failures, previous_attempts, previous_failures, consecutive_failures, probe_delivery_id,
    failing_since";

/// Turns the breakers of the endpoints in JSON list `$1` that may probe at
/// clock `$2` (open past their cool-down, or half-open with the probe lost)
/// half-open, the probe's answer due within `$3` ms; a breaker another
/// claim holds is skipped. Returns the endpoints this claim may probe.
fn start_probes(f: Flavor) -> String {
    let may_probe = "mode = 'auto' AND ((state = 'open' AND probe_at <= $2)
                  OR (state = 'half_open' AND probe_until <= $2))";
    format!(
        "UPDATE endpoint_breakers SET state = 'half_open', probe_until = $2 + $3,
                probe_delivery_id = NULL, updated_at = $2
          WHERE endpoint_id IN (SELECT endpoint_id FROM endpoint_breakers
                  WHERE endpoint_id IN {ids} AND {may_probe}{lock})
            AND {may_probe}
          RETURNING endpoint_id",
        ids = f.json_list(1),
        lock = f.skip_locked(),
    )
}

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
            "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at, request_hash)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2, value->>'request_hash'
                 FROM jsonb_each($1) WHERE TRUE
                 ON CONFLICT (scope, key) DO UPDATE SET event_id = excluded.event_id,
                     delivery_count = excluded.delivery_count, created_at = excluded.created_at,
                     request_hash = excluded.request_hash
                 WHERE idempotency_keys.created_at < $3
                 RETURNING scope, key"
        );
        assert_eq!(
            POSTGRES.insert_idempotency_keys,
            "INSERT INTO idempotency_keys (scope, key, event_id, delivery_count, created_at, request_hash)
                 SELECT value->>'scope', value->>'key', value->>'event_id',
                     CAST(value->>'delivery_count' AS BIGINT), $2, value->>'request_hash'
                 FROM jsonb_array_elements($1::jsonb) AS r(value) WHERE TRUE
                 ON CONFLICT (scope, key) DO UPDATE SET event_id = excluded.event_id,
                     delivery_count = excluded.delivery_count, created_at = excluded.created_at,
                     request_hash = excluded.request_hash
                 WHERE idempotency_keys.created_at < $3
                 RETURNING scope, key"
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
