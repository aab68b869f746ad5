//! Schema migrations: numbered SQL files per backend with matching version
//! numbers, embedded in the binary and applied in one transaction.

use crate::store::tx::db_now;
use crate::store::{Reads, Result, Store, StoreError, on_db};

/// One schema change, spelled for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "api_keys",
        sqlite: include_str!("../../../migrations/sqlite/0002_api_keys.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_api_keys.sql"),
    },
    Migration {
        version: 3,
        name: "console",
        sqlite: include_str!("../../../migrations/sqlite/0003_console.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_console.sql"),
    },
    Migration {
        version: 4,
        name: "due_index",
        sqlite: include_str!("../../../migrations/sqlite/0004_due_index.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_due_index.sql"),
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
