//! The delivery database: the only code in hookline that speaks SQL.
//!
//! [`Store`](crate::store::Store) offers coarse operations (publish, claim,
//! record outcomes, retry, pause, list pages, health…); each runs as one
//! transaction that includes its audit row. Two backends sit behind it: SQLite (the embedded
//! default, WAL, one writer connection per process, `BEGIN IMMEDIATE`) and
//! Postgres (scale-out). Each operation is written once and compiled for both
//! by the `on_db!` macro; where the SQL dialects differ, the statement comes
//! from the backend's `sql::dialect::Dialect`.

mod apikeys;
mod audit;
mod backend;
mod breakers;
mod deliveries;
mod dispatchers;
mod endpoints;
mod erasure;
mod fanout;
mod lists;
mod publish;
mod queue;
mod rate_limits;
mod read;
mod retention;
mod sealing;
/// Bulk seeding for `hookline bench console`: not part of the library's API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod seed;
mod space;
mod sql;
mod subscriptions;
mod tenants;
mod tx;

use std::fmt;

use sqlx::{Pool, Postgres, Sqlite};

use crate::config::redact_url;
use crate::seal::{SealError, SecretsKey};

pub use apikeys::NewApiKey;
pub use breakers::{Breaker, BreakerTransition};
pub use deliveries::{DeliveryDetail, DeliveryFilter, RetryFilter, RetryPreviewRow, RetryReport};
pub use endpoints::{EndpointPatch, NewEndpoint};
pub use erasure::{EXPUNGED_REASON, ExpungeReport};
pub use fanout::EventFanout;
pub use lists::{AttemptFilter, AttemptsOf, EventFilter, PageRequest};
pub use publish::{AttemptSlots, HandOffRequest, NewEvent, Published};
pub use queue::{
    ClaimRequest, Claimed, ClaimedDelivery, EndpointTarget, NewAttempt, NextStep, Outcome,
    RecordSummary, Rollups,
};
pub use read::{
    Backlog, EndpointHealth, EndpointQueue, EndpointStanding, EndpointStats, EndpointTally,
    FailureCause, GaugeReading, HealthWindow, Heartbeat, MinuteTotals, QueueSummary,
    SUMMARY_COUNT_LIMIT, SearchPage, SqliteFiles, Tally,
};
pub use retention::{HELD_REASON, LastPrune, PruneReport};
pub use space::Vacuumed;
pub use subscriptions::{NewSubscription, SubscriptionPatch};

/// How [`Store::open`] treats a database that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database if needed and bring its schema up to date
    /// (`migrate`, `serve`, `dispatch`, `demo`).
    CreateAndMigrate,
    /// Refuse a database that does not exist or is not migrated (every other
    /// command: a typo in `--db` must not silently create an empty database).
    Existing,
}

/// How a [`Store`] is opened beyond its URL ([`Store::open_with`]).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Seals endpoint secrets in the database (`[secrets] key`, see
    /// [`crate::seal`]); without it they are written plain, and sealed
    /// ones cannot be read.
    pub secrets_key: Option<SecretsKey>,
    /// Postgres: most connections in the pool (`[database] max_connections`);
    /// `None`: the default of 16.
    pub max_connections: Option<u32>,
    /// How long an idempotency key deduplicates (`[retention] idempotency`);
    /// `None` or zero: for as long as the key is kept.
    pub idempotency_window: Option<std::time::Duration>,
    /// The shortest age at which retention may remove an event (the least
    /// of `retention.succeeded` and `retention.dead` that are on): an
    /// event or delivery id older than this that is not found is reported
    /// as removed. `None`: never.
    pub removal_horizon: Option<std::time::Duration>,
    /// Attempts kept per delivery, its first and its latest
    /// (`retention.attempts_per_delivery`); 0 or `None`: all.
    pub attempts_per_delivery: Option<u32>,
    /// The circuit breaker's rules (`[protection]`); `None`: the defaults.
    pub protection: Option<crate::config::ProtectionConfig>,
}

impl StoreOptions {
    /// The options `config` asks for.
    pub fn from_config(config: &crate::config::Config) -> StoreOptions {
        StoreOptions {
            secrets_key: config.secrets.key.clone(),
            max_connections: Some(config.database.max_connections),
            idempotency_window: Some(config.retention.idempotency),
            removal_horizon: [config.retention.succeeded, config.retention.dead]
                .into_iter()
                .filter(|h| !h.is_zero())
                .min(),
            attempts_per_delivery: Some(config.retention.attempts_per_delivery),
            protection: Some(config.protection.clone()),
        }
    }
}

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An id or name that matches nothing.
    #[error("{kind} not found: {key}")]
    NotFound { kind: &'static str, key: String },
    /// An event or delivery id that matches nothing and is older than the
    /// retention horizon: it was removed (or never existed, which cannot be
    /// told apart any more).
    #[error("{kind} {key} was removed by retention (older than {horizon})")]
    Gone {
        kind: &'static str,
        key: String,
        horizon: String,
    },
    /// The change contradicts existing data (a duplicate name, a wrong state).
    #[error("{0}")]
    Conflict(String),
    /// A command that must not create a database was pointed at none.
    #[error(
        "no hookline database at {location}: create it with `hookline migrate --db {url}`, or pass the right --db"
    )]
    Missing { location: String, url: String },
    /// The database exists but its schema is older than this hookline's.
    #[error(
        "the database at {location} is not migrated (schema version {found}, this hookline needs {needed}): run `hookline migrate`"
    )]
    NotMigrated {
        location: String,
        found: i64,
        needed: i64,
    },
    /// The database was migrated by a newer hookline.
    #[error(
        "the database at {location} has schema version {found}, newer than this hookline understands ({needed}): upgrade hookline"
    )]
    TooNew {
        location: String,
        found: i64,
        needed: i64,
    },
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl(String),
    /// An endpoint's secrets are sealed and cannot be opened (no key, or
    /// another key): named, never guessed at or sent.
    #[error("cannot read the secrets of endpoint {endpoint_id} ({field}): {reason}")]
    Sealed {
        endpoint_id: String,
        field: String,
        reason: SealError,
    },
    /// A row holds a value hookline cannot have written.
    #[error("unexpected value in {table}.{column}: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, key: impl Into<String>) -> StoreError {
        StoreError::NotFound {
            kind,
            key: key.into(),
        }
    }
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A writer and a reader pool; on Postgres both are the same pool. On SQLite
/// the writer has one connection, so a process's writes queue in memory
/// instead of spinning on the file lock.
pub(crate) struct Pools<DB: sqlx::Database> {
    pub write: Pool<DB>,
    pub read: Pool<DB>,
}

pub(crate) enum Db {
    Sqlite(Pools<Sqlite>),
    Postgres(Pools<Postgres>),
}

/// Handle on the delivery database, reading and writing; cheap to clone.
///
/// Everything a [`Reads`] can do, a `Store` can do too (it derefs to one);
/// the writes are its own. Only the layers that change data (`ops`, the
/// dispatcher, and the commands composing them) hold a `Store`; screens and
/// listings get a [`Reads`].
#[derive(Clone)]
pub struct Store {
    reads: Reads,
}

/// Read-only handle on the delivery database: every listing, lookup and
/// read model, and not one method that writes. Cheap to clone.
#[derive(Clone)]
pub struct Reads {
    db: std::sync::Arc<Db>,
    location: std::sync::Arc<str>,
    /// Moves on every change that may create due work (see `changes.rs`).
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    watcher_started: std::sync::Arc<std::sync::Once>,
    checkpointer_started: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set by the background checkpointer when the WAL should start over.
    wal_rewind_due: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set by the background checkpointer while writes outpace its copy.
    checkpoint_lagging: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Seals endpoint secrets on write and opens them on read.
    secrets_key: Option<SecretsKey>,
    /// The database's clock for the hot paths (see [`tx::DbClock`]).
    clock: std::sync::Arc<tx::DbClock>,
    /// Endpoint rows the claim read, while unchanged (see [`queue::TargetCache`]).
    targets: std::sync::Arc<queue::TargetCache>,
    /// How long an idempotency key deduplicates, in ms; 0: always.
    idempotency_ms: i64,
    /// See [`StoreOptions::removal_horizon`].
    removal_horizon: Option<std::time::Duration>,
    /// See [`StoreOptions::attempts_per_delivery`] (0: all).
    attempts_kept: i64,
    /// See [`StoreOptions::protection`].
    protection: std::sync::Arc<crate::config::ProtectionConfig>,
}

impl std::ops::Deref for Store {
    type Target = Reads;

    fn deref(&self) -> &Reads {
        &self.reads
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish()
    }
}

impl fmt::Debug for Reads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reads")
            .field("location", &self.location)
            .finish()
    }
}

/// Runs `$body` with `$pools` bound to the backend's [`Pools`] and `$sql` to
/// its `sql::dialect::Dialect`: the body is written once for both databases,
/// which keeps the two backends from drifting apart.
/// A macro, not a function: the body must be compiled once per sqlx database type.
macro_rules! on_db {
    ($store:expr, |$pools:ident, $sql:ident| $body:expr) => {
        match &*$store.db {
            $crate::store::Db::Sqlite(pools) => {
                #[allow(unused_variables)]
                let $pools = pools;
                #[allow(unused_variables)]
                let $sql: &'static $crate::store::sql::dialect::Dialect =
                    &*$crate::store::sql::dialect::SQLITE;
                $body
            }
            $crate::store::Db::Postgres(pools) => {
                #[allow(unused_variables)]
                let $pools = pools;
                #[allow(unused_variables)]
                let $sql: &'static $crate::store::sql::dialect::Dialect =
                    &*$crate::store::sql::dialect::POSTGRES;
                $body
            }
        }
    };
}
pub(crate) use on_db;

impl Store {
    /// Opens the database named by `url` (`sqlite://PATH` or `postgres://…`),
    /// without a secrets key.
    pub async fn open(url: &str, mode: OpenMode) -> Result<Store> {
        Store::open_with(url, mode, StoreOptions::default()).await
    }

    /// [`Store::open`] with options (the secrets key).
    pub async fn open_with(url: &str, mode: OpenMode, options: StoreOptions) -> Result<Store> {
        let (db, location) = if backend::sqlite::is_sqlite_url(url) {
            let (pools, location) = backend::sqlite::connect(url, mode).await?;
            (Db::Sqlite(pools), location)
        } else if backend::postgres::is_postgres_url(url) {
            let pools = backend::postgres::connect(url, options.max_connections).await?;
            (Db::Postgres(pools), redact_url(url))
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let store = Store {
            reads: Reads {
                db: std::sync::Arc::new(db),
                location: location.into(),
                changes: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
                watcher_started: std::sync::Arc::new(std::sync::Once::new()),
                checkpointer_started: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                    false,
                )),
                wal_rewind_due: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
                checkpoint_lagging: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
                secrets_key: options.secrets_key,
                clock: std::sync::Arc::default(),
                targets: std::sync::Arc::default(),
                idempotency_ms: options
                    .idempotency_window
                    .map_or(0, |w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX)),
                removal_horizon: options.removal_horizon.filter(|h| !h.is_zero()),
                attempts_kept: i64::from(options.attempts_per_delivery.unwrap_or(0)),
                protection: std::sync::Arc::new(options.protection.unwrap_or_default()),
            },
        };
        match mode {
            OpenMode::CreateAndMigrate => {
                store.migrate().await?;
            }
            OpenMode::Existing => store.check_schema().await?,
        }
        Ok(store)
    }

    /// A read-only handle on the same database.
    pub fn reads(&self) -> Reads {
        self.reads.clone()
    }

    /// Closes every connection, waiting for in-progress statements.
    pub async fn close(&self) {
        on_db!(self, |pools, sql| {
            pools.write.close().await;
            pools.read.close().await;
        })
    }
}

impl Reads {
    /// The process id of the Postgres backend serving one of this store's
    /// connections (`None` on SQLite): on this host, its parent is the
    /// server, whose CPU time benchmarks charge to the work.
    pub async fn database_backend_pid(&self) -> Result<Option<u32>> {
        let Db::Postgres(pools) = &*self.db else {
            return Ok(None);
        };
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pools.read)
            .await?;
        Ok(u32::try_from(pid).ok())
    }

    /// Which engine this store talks to.
    pub fn backend(&self) -> Backend {
        match &*self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The key endpoint secrets are sealed with, if any.
    pub(crate) fn secrets_key(&self) -> Option<&SecretsKey> {
        self.secrets_key.as_ref()
    }

    /// Where the database is, for messages: a file path, or a URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The error for `kind` `id` that matched nothing: [`StoreError::Gone`]
    /// when the id's own time is older than retention's horizon, else
    /// [`StoreError::NotFound`].
    pub(crate) fn missing(&self, kind: &'static str, id: &str) -> StoreError {
        let made = crate::model::id_time_ms(id);
        match (self.removal_horizon, made) {
            (Some(horizon), Some(made))
                if crate::model::now_millis().saturating_sub(made)
                    > i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX) =>
            {
                StoreError::Gone {
                    kind,
                    key: id.to_string(),
                    horizon: crate::config::format_duration(horizon),
                }
            }
            _ => StoreError::not_found(kind, id),
        }
    }

    /// Idempotency keys created before this moment (unix ms `now` less the
    /// window) no longer deduplicate.
    pub(crate) fn idempotency_expired_before(&self, now: i64) -> i64 {
        if self.idempotency_ms == 0 {
            i64::MIN
        } else {
            now.saturating_sub(self.idempotency_ms)
        }
    }
}

/// A position in a newest-first listing: the last row's `(created_at, id)`.
/// Keyset pagination stays fast however deep the page, unlike OFFSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// The cursor just past the row of this time and id.
    pub fn of(created_at: i64, id: &str) -> Cursor {
        Cursor {
            created_at,
            id: id.to_string(),
        }
    }

    /// The opaque text form handed to clients (`<millis>.<id>`).
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// Parses [`Cursor::encode`]'s output.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (created_at, id) = text.split_once('.')?;
        Some(Cursor {
            created_at: created_at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of a listing and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from rows fetched with `LIMIT limit + 1`: the extra row, if
    /// present, only says that a next page exists, so the last page never
    /// hands out a cursor to an empty one.
    pub(crate) fn from_rows(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> Cursor,
    ) -> Page<T> {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next }
    }

    /// The rows to fetch for a page of `limit`: one more, see [`Page::from_rows`].
    pub(crate) fn fetch_limit(limit: usize) -> i64 {
        i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
    }
}

/// The tenant scope of a query: `None` means every tenant.
pub type TenantScope<'a> = Option<&'a str>;

/// Encodes a list of strings as a JSON array, the portable way to pass a set
/// to one statement (`json_each` on SQLite, `jsonb_array_elements_text` on Postgres).
pub(crate) fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::Value::from(items).to_string()
}

/// Rows as the JSON array parameter the set-based statements read.
pub(crate) fn to_json<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_string()) // ok: plain data always serialises
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_extra_row_makes_a_next_page() {
        let cursor_of = |n: &i64| Cursor::of(*n, &format!("key_{n}"));
        let full = Page::from_rows(vec![1, 2, 3], 3, cursor_of);
        assert_eq!(full.items, [1, 2, 3]);
        assert_eq!(full.next, None, "exactly limit rows: the last page");
        let more = Page::from_rows(vec![1, 2, 3, 4], 3, cursor_of);
        assert_eq!(more.items, [1, 2, 3]);
        assert_eq!(
            more.next,
            Some(Cursor::of(3, "key_3")),
            "the next page starts after the last row shown"
        );
        assert_eq!(Page::from_rows(Vec::new(), 3, cursor_of).next, None);
    }

    #[tokio::test]
    async fn an_unsupported_url_is_refused_without_its_password() {
        let err = Store::open("mysql://u:s3cret@h/db", OpenMode::Existing)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("unsupported database URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
