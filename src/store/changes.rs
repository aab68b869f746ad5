//! The "something changed" signal: a counter that moves whenever the
//! database may hold new work or new facts, so dispatchers (and later the
//! console) wake at once instead of waiting for their next poll.
//!
//! Changes made through this process's [`Store`] signal directly. Changes by
//! other processes are seen on SQLite by polling `PRAGMA data_version`
//! (which moves whenever another connection commits; it costs one page-cache
//! lookup, so polling every 100 ms is cheap), and on Postgres by LISTENing
//! to the `hookline_changes` channel that writers NOTIFY in their transactions.

use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use super::{Db, Store};

/// How often SQLite is asked whether another connection committed.
const SQLITE_POLL: Duration = Duration::from_millis(100);

/// How often a long-running writer's WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

impl Store {
    /// Moves the change counter: called after commits that create due work.
    pub(crate) fn note_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose value moves when the database changes. The first
    /// call starts the cross-process watcher.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.watcher_started.call_once(|| self.start_watcher());
        self.changes.subscribe()
    }

    fn start_watcher(&self) {
        let pools = match &*self.db {
            Db::Sqlite(pools) => pools,
            Db::Postgres(pools) => {
                let pool = pools.read.clone();
                let changes = std::sync::Arc::downgrade(&self.changes);
                tokio::spawn(listen_postgres(pool, changes));
                return;
            }
        };
        let options = pools.read.connect_options();
        // Weak: the watcher ends when the last Store handle is dropped.
        let changes = std::sync::Arc::downgrade(&self.changes);
        tokio::spawn(async move {
            let mut last: Option<i64> = None;
            loop {
                // A dedicated connection: data_version is per connection.
                let Ok(mut conn) = sqlx::sqlite::SqliteConnection::connect_with(&options).await
                else {
                    tokio::time::sleep(SQLITE_POLL * 10).await;
                    continue;
                };
                loop {
                    let Some(changes) = changes.upgrade() else {
                        return;
                    };
                    let version: Result<i64, _> = sqlx::query_scalar("PRAGMA data_version")
                        .fetch_one(&mut conn)
                        .await;
                    let Ok(version) = version else { break };
                    if last.is_some_and(|seen| seen != version) {
                        changes.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    last = Some(version);
                    tokio::time::sleep(SQLITE_POLL).await;
                }
            }
        });
    }
}

/// Channel that Postgres writers NOTIFY (see `Dialect::notify`).
const CHANNEL: &str = "hookline_changes";

/// Moves the change counter on every notification. When the connection
/// drops, notifications may have been missed, so that counts as a change too;
/// the listener then reconnects with backoff.
async fn listen_postgres(pool: sqlx::PgPool, changes: std::sync::Weak<watch::Sender<u64>>) {
    let bump = |changes: &std::sync::Weak<watch::Sender<u64>>| match changes.upgrade() {
        Some(changes) => {
            changes.send_modify(|n| *n = n.wrapping_add(1));
            true
        }
        None => false,
    };
    let mut failures: u32 = 0;
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            // The store was closed: there is nothing left to listen for.
            Err(_) if pool.is_closed() => return,
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, "cannot LISTEN for changes; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))).await;
                if changes.upgrade().is_none() {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        loop {
            // Wake up now and then to notice that the store is gone.
            match tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await {
                Err(_elapsed) if changes.upgrade().is_none() => return,
                Err(_elapsed) => {}
                Ok(Ok(Some(_))) | Ok(Ok(None)) => {
                    if !bump(&changes) {
                        return;
                    }
                }
                Ok(Err(_)) if pool.is_closed() => return,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "lost the LISTEN connection; reconnecting");
                    let _ = bump(&changes);
                    break;
                }
            }
        }
    }
}

impl Store {
    /// For a process that writes continuously (a dispatcher): move SQLite's
    /// WAL checkpoints off the commit path. By default the commit that takes
    /// the WAL past 1,000 pages copies them back into the database and syncs,
    /// stalling that transaction for tens of milliseconds; instead a
    /// background connection checkpoints passively (never blocking writers)
    /// a few times a second. No-op on Postgres; safe to call twice.
    pub async fn checkpoint_in_background(&self) -> super::Result<()> {
        let Db::Sqlite(pools) = &*self.db else {
            return Ok(());
        };
        if self
            .checkpointer_started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&pools.write)
            .await?;
        let options = pools.write.connect_options();
        let changes = std::sync::Arc::downgrade(&self.changes);
        tokio::spawn(async move {
            loop {
                let Ok(mut conn) = sqlx::sqlite::SqliteConnection::connect_with(&options).await
                else {
                    tokio::time::sleep(CHECKPOINT_EVERY * 4).await;
                    continue;
                };
                loop {
                    // The store is gone: the writer is too.
                    if changes.upgrade().is_none() {
                        return;
                    }
                    tokio::time::sleep(CHECKPOINT_EVERY).await;
                    if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&mut conn)
                        .await
                    {
                        tracing::warn!(error = %err, "background checkpoint failed; reconnecting");
                        break;
                    }
                }
            }
        });
        Ok(())
    }
}
