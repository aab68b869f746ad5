//! Schema migrations: numbered SQL files per backend with matching version
//! numbers, embedded in the binary and applied in one transaction.

use sqlx::{Connection, Database, Encode, Executor, FromRow, IntoArguments, Type};

use crate::redact::scrub_json;
use crate::store::tx::db_now;
use crate::store::{Reads, Result, Store, StoreError, on_db};

/// One schema change, spelled for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    /// A step in Rust, run after the SQL in the same transaction, for what
    /// the two dialects cannot say alike.
    step: Option<Step>,
}

/// The migration steps written in Rust.
#[derive(Clone, Copy)]
enum Step {
    /// v5: mask the secrets that attempts and audit rows kept in plain.
    ScrubSecrets,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_init.sql"),
        step: None,
    },
    Migration {
        version: 2,
        name: "api_keys",
        sqlite: include_str!("../../../migrations/sqlite/0002_api_keys.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_api_keys.sql"),
        step: None,
    },
    Migration {
        version: 3,
        name: "console",
        sqlite: include_str!("../../../migrations/sqlite/0003_console.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_console.sql"),
        step: None,
    },
    Migration {
        version: 4,
        name: "due_index",
        sqlite: include_str!("../../../migrations/sqlite/0004_due_index.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_due_index.sql"),
        step: None,
    },
    Migration {
        version: 5,
        name: "secrets",
        sqlite: include_str!("../../../migrations/sqlite/0005_secrets.sql"),
        postgres: include_str!("../../../migrations/postgres/0005_secrets.sql"),
        step: Some(Step::ScrubSecrets),
    },
    Migration {
        version: 6,
        name: "pause_until",
        sqlite: include_str!("../../../migrations/sqlite/0006_pause_until.sql"),
        postgres: include_str!("../../../migrations/postgres/0006_pause_until.sql"),
        step: None,
    },
    Migration {
        version: 7,
        name: "retention",
        sqlite: include_str!("../../../migrations/sqlite/0007_retention.sql"),
        postgres: include_str!("../../../migrations/postgres/0007_retention.sql"),
        step: None,
    },
    Migration {
        version: 8,
        name: "erasure",
        sqlite: include_str!("../../../migrations/sqlite/0008_erasure.sql"),
        postgres: include_str!("../../../migrations/postgres/0008_erasure.sql"),
        step: None,
    },
    Migration {
        version: 9,
        name: "breaker",
        sqlite: include_str!("../../../migrations/sqlite/0009_breaker.sql"),
        postgres: include_str!("../../../migrations/postgres/0009_breaker.sql"),
        step: None,
    },
    Migration {
        version: 10,
        name: "rate_limit",
        sqlite: include_str!("../../../migrations/sqlite/0010_rate_limit.sql"),
        postgres: include_str!("../../../migrations/postgres/0010_rate_limit.sql"),
        step: None,
    },
    Migration {
        version: 11,
        name: "failure_causes",
        sqlite: include_str!("../../../migrations/sqlite/0011_failure_causes.sql"),
        postgres: include_str!("../../../migrations/postgres/0011_failure_causes.sql"),
        step: None,
    },
    Migration {
        version: 12,
        name: "idempotency_request",
        sqlite: include_str!("../../../migrations/sqlite/0012_idempotency_request.sql"),
        postgres: include_str!("../../../migrations/postgres/0012_idempotency_request.sql"),
        step: None,
    },
    Migration {
        version: 13,
        name: "api_key_expiry",
        sqlite: include_str!("../../../migrations/sqlite/0013_api_key_expiry.sql"),
        postgres: include_str!("../../../migrations/postgres/0013_api_key_expiry.sql"),
        step: None,
    },
    Migration {
        version: 14,
        name: "attempts_endpoint",
        sqlite: include_str!("../../../migrations/sqlite/0014_attempts_endpoint.sql"),
        postgres: include_str!("../../../migrations/postgres/0014_attempts_endpoint.sql"),
        step: None,
    },
];

/// The schema version this build of hookline expects.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
const CURRENT_VERSION: &str =
    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations";
const RECORD: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

impl Reads {
    /// The schema version recorded in the database (0 when never migrated).
    pub async fn schema_version(&self) -> Result<i64> {
        on_db!(self, |pools, sql| {
            let tables: i64 = sqlx::query_scalar(sql.migrations_table_exists)
                .fetch_one(&pools.read)
                .await?;
            if tables == 0 {
                return Ok(0);
            }
            Ok(sqlx::query_scalar(CURRENT_VERSION)
                .fetch_one(&pools.read)
                .await?)
        })
    }
}

impl Store {
    /// Brings the schema up to date; returns how many migrations ran. Safe to
    /// run from several processes at once: they serialize on a lock.
    pub async fn migrate(&self) -> Result<usize> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            if let Some(lock) = sql.migration_lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            sqlx::query(CREATE_TABLE).execute(&mut *tx).await?;
            let current: i64 = sqlx::query_scalar(CURRENT_VERSION)
                .fetch_one(&mut *tx)
                .await?;
            self.refuse_newer(current)?;
            let now = db_now(sql, &mut *tx).await?;
            let mut applied = 0;
            for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
                let text = match self.backend() {
                    crate::store::Backend::Sqlite => migration.sqlite,
                    crate::store::Backend::Postgres => migration.postgres,
                };
                sqlx::raw_sql(text).execute(&mut *tx).await?;
                match migration.step {
                    Some(Step::ScrubSecrets) => scrub_secrets(&mut *tx).await?,
                    None => {}
                }
                sqlx::query(RECORD)
                    .bind(migration.version)
                    .bind(migration.name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                applied += 1;
            }
            tx.commit().await?;
            Ok(applied)
        })
    }

    /// Refuses a database whose schema is not exactly this build's.
    pub(crate) async fn check_schema(&self) -> Result<()> {
        let found = self.schema_version().await?;
        self.refuse_newer(found)?;
        if found < LATEST_VERSION {
            return Err(StoreError::NotMigrated {
                location: self.location().to_string(),
                found,
                needed: LATEST_VERSION,
            });
        }
        Ok(())
    }

    fn refuse_newer(&self, found: i64) -> Result<()> {
        if found > LATEST_VERSION {
            return Err(StoreError::TooNew {
                location: self.location().to_string(),
                found,
                needed: LATEST_VERSION,
            });
        }
        Ok(())
    }
}

/// Rows read per round trip while scrubbing.
const SCRUB_BATCH: i64 = 500;

/// Attempts whose headers may hold a secret: the sensitive names and words
/// of `crate::redact`, in any case. Rows without them are never read.
const SCRUB_ATTEMPTS: &str = "SELECT id, request_headers FROM attempts
    WHERE id > $1 AND (lower(request_headers) LIKE '%auth%'
        OR lower(request_headers) LIKE '%cookie%' OR lower(request_headers) LIKE '%token%'
        OR lower(request_headers) LIKE '%secret%' OR lower(request_headers) LIKE '%key%'
        OR lower(request_headers) LIKE '%password%')
    ORDER BY id LIMIT $2";
const UPDATE_ATTEMPT: &str = "UPDATE attempts SET request_headers = $2 WHERE id = $1";
/// The only audit rows that ever held an endpoint's URL or headers.
const SCRUB_AUDIT: &str = "SELECT id, detail FROM audit_log
    WHERE id > $1 AND action IN ('endpoint.create', 'endpoint.update')
    ORDER BY id LIMIT $2";
const UPDATE_AUDIT: &str = "UPDATE audit_log SET detail = $2 WHERE id = $1";

/// Masks, in place, the URL passwords and sensitive header values that
/// attempts (`request_headers`) and audit rows (`detail`) written before v5
/// kept in plain, as `crate::redact` masks them now. Running it again
/// changes nothing.
async fn scrub_secrets<C>(conn: &mut C) -> Result<(), sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
    (String, String): for<'r> FromRow<'r, <C::Database as Database>::Row>,
{
    for (select, update) in [
        (SCRUB_ATTEMPTS, UPDATE_ATTEMPT),
        (SCRUB_AUDIT, UPDATE_AUDIT),
    ] {
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String)> = sqlx::query_as(select)
                .bind(after.clone())
                .bind(SCRUB_BATCH)
                .fetch_all(&mut *conn)
                .await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            for (id, text) in rows {
                // Text that is not JSON was not written by hookline: left as is.
                let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                if scrub_json(&mut value) {
                    sqlx::query(update)
                        .bind(id)
                        .bind(value.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
    }
    Ok(())
}
