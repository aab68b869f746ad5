//! Opening the embedded SQLite database: WAL, `synchronous=NORMAL`, a busy
//! timeout for other processes' writes, and one writer connection per process.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use crate::store::{OpenMode, Pools, Result, StoreError};

/// Reader connections per process; WAL lets them read while the writer writes.
const READERS: u32 = 4;

/// Rows a query may run ahead of its reader (see `row_buffer_size` below).
const ROW_BUFFER: usize = 1024;

/// How long a write waits for another process's write transaction to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `url` names a SQLite database.
pub(crate) fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file path in `sqlite://PATH` or `sqlite:PATH` (a query string is ignored).
fn file_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::BadUrl(url.to_string()))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        // Several connections must share the database; an in-memory one cannot.
        return Err(StoreError::BadUrl(url.to_string()));
    }
    Ok(PathBuf::from(path))
}

/// The absolute form of `path` for messages, so "which file?" is never a question.
fn display_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Opens the writer and reader pools for the database at `url`.
pub(crate) async fn connect(url: &str, mode: OpenMode) -> Result<(Pools<sqlx::Sqlite>, String)> {
    let path = file_path(url)?;
    let location = display_path(&path);
    let exists = path.exists();
    if mode == OpenMode::Existing && !exists {
        return Err(StoreError::Missing {
            location,
            url: url.to_string(),
        });
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(&path)
        .create_if_missing(mode == OpenMode::CreateAndMigrate)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // No large cache_size: every ephemeral table SQLite builds (an
        // `IN (…)` list, a sort) gets a page cache of that size, and setting
        // up and tearing those down cost more than the claim itself.
        .pragma("temp_store", "memory")
        // Rows cross from SQLite's worker thread to the caller through this
        // channel: at sqlx's 50 the worker stalls every 50 rows until the
        // caller drains them, and a list of 1,000 endpoints took 26 ms
        // instead of 9.
        .row_buffer_size(ROW_BUFFER)
        .statement_cache_capacity(crate::store::sql::values::STATEMENT_CACHE);
    // The writer, connecting first, creates a new file so that it hands
    // free pages back to the file system when the pruner asks
    // (`incremental_vacuum`). It overwrites removed rows with zeros where
    // that costs no extra write (`fast`); an erasure turns on the full
    // setting for its transaction, which also zeroes every page it frees
    // (`Dialect::secure_erase_begin`): zeroing every page each pruning
    // pass frees doubled its writes and stalled delivery for seconds.
    // Readers set neither: a read-only connection may not.
    let writer_options = options
        .clone()
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .pragma("secure_delete", "fast");
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(writer_options)
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(READERS)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.create_if_missing(false).read_only(true))
        .await?;
    Ok((Pools { write, read }, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_name_the_file() {
        assert_eq!(
            file_path("sqlite://hookline.db").ok(),
            Some(PathBuf::from("hookline.db"))
        );
        assert_eq!(
            file_path("sqlite:///tmp/x.db?mode=rwc").ok(),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(file_path("sqlite:a.db").ok(), Some(PathBuf::from("a.db")));
        assert!(file_path("sqlite::memory:").is_err());
        assert!(file_path("sqlite://").is_err());
    }

    /// `.cargo/config.toml` passes these to the bundled SQLite's build; a
    /// build that missed them would re-plan the claim on every cycle.
    #[tokio::test]
    async fn the_bundled_sqlite_has_stable_plans_and_no_memory_statistics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("flags.db").display());
        let (pools, _) = connect(&url, OpenMode::CreateAndMigrate)
            .await
            .expect("open");
        for option in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"] {
            let used: i64 = sqlx::query_scalar("SELECT sqlite_compileoption_used($1)")
                .bind(option)
                .fetch_one(&pools.write)
                .await
                .expect("query");
            assert_eq!(used, 1, "SQLite built without SQLITE_{option}");
        }
    }
}
