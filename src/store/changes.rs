//! The "something changed" signal: a counter that moves whenever the
//! database may hold new work or new facts, so dispatchers (and later the
//! console) wake at once instead of waiting for their next poll.
//!
//! Changes made through this process's [`Store`] signal directly. Changes by
//! other processes are seen on SQLite by polling `PRAGMA data_version`
//! (which moves whenever another connection commits; it costs one page-cache
//! lookup, so polling every 100 ms is cheap).

use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use super::{Db, Store};

/// How often SQLite is asked whether another connection committed.
const SQLITE_POLL: Duration = Duration::from_millis(100);

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
        let Db::Sqlite(pools) = &*self.db else {
            return;
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
