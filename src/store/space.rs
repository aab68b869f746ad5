//! Giving the space of removed rows back: SQLite's free pages to the file
//! system (`incremental_vacuum`, a few thousand pages per step), and a
//! whole rewrite on request (`hookline prune --vacuum`). Postgres reuses
//! the space of removed rows itself (autovacuum).

use std::time::Duration;

use serde::Serialize;

use super::{Db, Result, Store};

/// Free pages kept for reuse, as a share of the file: inserts take them
/// before the file grows again, so a database at its steady size neither
/// grows nor shrinks pass after pass (a pass frees what the next minutes
/// of traffic fill).
const SLACK_DIVISOR: i64 = 4;
/// Pages handed back per step: 2 MB at SQLite's default page size. Each
/// step holds the one writer while it moves pages from the end of the file
/// into free ones; in `bench soak` steps of 4,096 pages stalled deliveries
/// for seconds.
const PAGES_PER_STEP: i64 = 512;

/// What a rewrite did to the database's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Vacuumed {
    /// Bytes the database took before (SQLite: the file, free pages
    /// included; Postgres: hookline's tables).
    pub before_bytes: i64,
    /// And after.
    pub after_bytes: i64,
}

/// The numbers of a SQLite file's pages.
#[derive(Debug, Clone, Copy)]
struct Pages {
    total: i64,
    free: i64,
    size: i64,
    /// `auto_vacuum` mode: 0 none, 1 full, 2 incremental.
    auto_vacuum: i64,
}

impl Store {
    /// SQLite: copies the write-ahead log into the database and empties the
    /// log file, so page images it held (an erased payload among them) are
    /// gone from disk. Waits for readers up to the busy timeout; `false`
    /// when one kept an older snapshot that long (the log is emptied at a
    /// later checkpoint). Postgres: nothing to do, `true`.
    pub async fn truncate_wal(&self) -> Result<bool> {
        let Db::Sqlite(pools) = &*self.db else {
            return Ok(true);
        };
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&pools.write)
            .await?;
        Ok(busy == 0)
    }

    /// SQLite with `auto_vacuum = INCREMENTAL`: hands free pages beyond a
    /// quarter of the file back to the file system, in steps, each followed
    /// by a pause as long as it took. Returns the bytes released (0 on
    /// Postgres, and on a file created before incremental vacuum existed:
    /// `hookline prune --vacuum` converts one).
    pub async fn release_free_pages(&self) -> Result<u64> {
        let Db::Sqlite(pools) = &*self.db else {
            return Ok(0);
        };
        let mut released = 0u64;
        loop {
            let pages = sqlite_pages(&pools.write).await?;
            let excess = pages.free - pages.total / SLACK_DIVISOR;
            if pages.auto_vacuum != 2 || excess <= 0 {
                return Ok(released);
            }
            let step = excess.min(PAGES_PER_STEP);
            let started = std::time::Instant::now();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA incremental_vacuum({step})"
            )))
            .execute(&pools.write)
            .await?;
            let after = sqlite_pages(&pools.write).await?;
            let freed = (pages.free - after.free).max(0);
            released += u64::try_from(freed * pages.size).unwrap_or(0);
            if freed == 0 {
                return Ok(released);
            }
            tokio::time::sleep(started.elapsed().min(Duration::from_millis(500))).await;
        }
    }

    /// Rewrites the database compactly. SQLite: `VACUUM`, which also turns
    /// on incremental vacuum for a file created without it; it needs about
    /// the database's size again in free disk, and holds the writer
    /// throughout (run it with hookline stopped). Postgres: `VACUUM
    /// (ANALYZE)` of hookline's tables, which makes the space of removed
    /// rows reusable without blocking anyone.
    pub async fn vacuum(&self) -> Result<Vacuumed> {
        match &*self.db {
            Db::Sqlite(pools) => {
                let before = sqlite_pages(&pools.write).await?;
                sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                    .execute(&pools.write)
                    .await?;
                sqlx::query("VACUUM").execute(&pools.write).await?;
                let after = sqlite_pages(&pools.write).await?;
                Ok(Vacuumed {
                    before_bytes: before.total * before.size,
                    after_bytes: after.total * after.size,
                })
            }
            Db::Postgres(pools) => {
                let size = super::sql::dialect::POSTGRES.live_size;
                let before: i64 = sqlx::query_scalar(size).fetch_one(&pools.write).await?;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname",
                )
                .fetch_all(&pools.write)
                .await?;
                for table in tables {
                    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {quoted}")))
                        .execute(&pools.write)
                        .await?;
                }
                let after: i64 = sqlx::query_scalar(size).fetch_one(&pools.write).await?;
                Ok(Vacuumed {
                    before_bytes: before,
                    after_bytes: after,
                })
            }
        }
    }
}

/// Page counts of the SQLite file behind `pool`.
async fn sqlite_pages(pool: &sqlx::Pool<sqlx::Sqlite>) -> Result<Pages> {
    let (total, free, size, auto_vacuum): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT page_count, freelist_count, page_size, auto_vacuum
           FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size(), pragma_auto_vacuum()",
    )
    .fetch_one(pool)
    .await?;
    Ok(Pages {
        total,
        free,
        size,
        auto_vacuum,
    })
}
