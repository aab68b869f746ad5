//! The "something changed" signal: a counter that moves whenever the
//! database may hold new work or new facts, so dispatchers and the console
//! wake at once instead of waiting for their next poll.
//!
//! Changes made through this process's [`Store`] signal directly. Changes by
//! other processes are seen on SQLite by polling `PRAGMA data_version`
//! (which moves whenever another connection commits; it costs one page-cache
//! lookup, so polling every 100 ms is cheap), and on Postgres by LISTENing
//! to the `hookline_changes` channel that writers NOTIFY in their transactions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use crate::store::{Db, Reads, Store};

/// How often SQLite is asked whether another connection committed.
const SQLITE_POLL: Duration = Duration::from_millis(100);

/// How often a long-running writer's WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL frames (4 KiB pages) past which the writer is asked to finish a
/// checkpoint itself, so that the WAL starts over (1 GiB). Each time costs
/// the writer a pause of a sync or two (20–110 ms on the benchmark machine),
/// so not often: every ~15 s at 5,000 deliveries/s, ~90 s at 500.
const REWIND_AFTER_FRAMES: i64 = 262_144;

/// Before asking, extra passes until a pass finds at most `FEW_FRAMES`
/// (1 MiB) written since the previous one.
const CATCH_UP_PASSES: usize = 4;
const FEW_FRAMES: i64 = 256;

/// WAL frames past which the writer is asked to start the WAL over even if
/// the background copy has not caught up (2 GiB): a bound on the file, at
/// the price of a longer pause of the writer.
const REWIND_REGARDLESS_FRAMES: i64 = 2 * REWIND_AFTER_FRAMES;

impl Reads {
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
                let changes = Arc::downgrade(&self.changes);
                tokio::spawn(listen_postgres(pool, changes));
                return;
            }
        };
        let options = pools.read.connect_options();
        // Weak: the watcher ends when the last Store handle is dropped.
        let changes = Arc::downgrade(&self.changes);
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

impl Store {
    /// Moves the change counter: called after commits that create due work.
    pub(crate) fn note_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Channel that Postgres writers NOTIFY (see `Dialect::notify`).
const CHANNEL: &str = "hookline_changes";

/// Moves the change counter on every notification. When the connection
/// drops, notifications may have been missed, so that counts as a change too;
/// the listener then reconnects with backoff.
async fn listen_postgres(pool: sqlx::PgPool, changes: Weak<watch::Sender<u64>>) {
    let bump = |changes: &Weak<watch::Sender<u64>>| match changes.upgrade() {
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
    pub async fn checkpoint_in_background(&self) -> crate::store::Result<()> {
        let Db::Sqlite(pools) = &*self.db else {
            return Ok(());
        };
        if self.checkpointer_started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&pools.write)
            .await?;
        let options = pools.write.connect_options();
        let changes = Arc::downgrade(&self.changes);
        let rewind_due = Arc::clone(&self.wal_rewind_due);
        let lagging = Arc::clone(&self.checkpoint_lagging);
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
                    if let Err(err) = checkpoint(&mut conn, &rewind_due, &lagging).await {
                        tracing::warn!(error = %err, "background checkpoint failed; reconnecting");
                        break;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Frames in the WAL and frames copied, after a passive checkpoint on `conn`.
async fn passive_checkpoint<'c>(
    conn: impl sqlx::SqliteExecutor<'c>,
) -> Result<(i64, i64), sqlx::Error> {
    let (_busy, frames, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?;
    Ok((frames, copied))
}

/// One background checkpoint: copies the WAL's pages into the database
/// without blocking the writer. SQLite starts the WAL over only when a write
/// transaction begins with every page already copied, which a steady stream
/// of commits never allows (pages arrive while the copy runs): the WAL then
/// grew without bound (1.2 GB after 20 s at 5,000 deliveries/s) and every
/// commit extended the file into fresh blocks the filesystem had to zero.
/// Past `REWIND_AFTER_FRAMES`, the writer is asked to copy the few pages
/// left itself, between two of its transactions ([`Store::rewind_wal_if_due`]).
/// That copy and its syncs pause the writer (20–110 ms here), so first this
/// connection catches up until little is left to copy. A blocking
/// checkpoint from here instead would pause the writer for all of its syncs.
///
/// When writes outpace the copy (the pruner deleting beside full intake),
/// asking anyway left the writer hundreds of MiB to copy and stalled
/// delivery for seconds. Instead this raises `lagging`, which the pruner
/// waits on between its batches ([`Reads::checkpoint_lagging`]), and asks
/// next time; only past `REWIND_REGARDLESS_FRAMES` does it ask regardless.
async fn checkpoint(
    conn: &mut sqlx::SqliteConnection,
    rewind_due: &AtomicBool,
    lagging: &AtomicBool,
) -> Result<(), sqlx::Error> {
    let (wal_frames, mut copied) = passive_checkpoint(&mut *conn).await?;
    if wal_frames < REWIND_AFTER_FRAMES {
        lagging.store(false, Ordering::Release);
        return Ok(());
    }
    let mut caught_up = false;
    for _ in 0..CATCH_UP_PASSES {
        let (frames, now_copied) = passive_checkpoint(&mut *conn).await?;
        let written_meanwhile = frames - copied;
        copied = now_copied;
        if written_meanwhile <= FEW_FRAMES {
            caught_up = true;
            break;
        }
    }
    lagging.store(!caught_up, Ordering::Release);
    if !caught_up && wal_frames < REWIND_REGARDLESS_FRAMES {
        tracing::debug!(wal_frames, copied, "the WAL copy is behind the writes");
        return Ok(());
    }
    tracing::debug!(copied, "asking the writer to start the WAL over");
    rewind_due.store(true, Ordering::Release);
    Ok(())
}

impl Reads {
    /// SQLite: whether the background checkpoint has fallen behind the
    /// writes, so that work that can wait (pruning) should. Always `false`
    /// on Postgres and without a background checkpointer.
    pub(crate) fn checkpoint_lagging(&self) -> bool {
        self.checkpoint_lagging.load(Ordering::Acquire)
    }
}

impl Store {
    /// On SQLite, when the background checkpointer asked for it: copies the
    /// WAL pages it has not yet copied, on the writer's own connection and
    /// outside any transaction, so that the next commit starts the WAL over.
    /// Call between write transactions. A failure only postpones it.
    pub(crate) async fn rewind_wal_if_due(&self) {
        let Db::Sqlite(pools) = &*self.db else {
            return;
        };
        if !self.wal_rewind_due.swap(false, Ordering::AcqRel) {
            return;
        }
        let started = std::time::Instant::now();
        match passive_checkpoint(&pools.write).await {
            Ok(_) => tracing::debug!(took = ?started.elapsed(), "writer finished a checkpoint"),
            Err(err) => tracing::warn!(error = %err, "could not finish a checkpoint on the writer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    async fn commit_rows(pools: &crate::store::Pools<sqlx::Sqlite>, count: usize) {
        for n in 0..count {
            sqlx::query("INSERT INTO scratch (n) VALUES ($1)")
                .bind(n as i64)
                .execute(&pools.write)
                .await
                .expect("insert");
        }
    }

    #[tokio::test]
    async fn a_rewind_the_checkpointer_asked_for_starts_the_wal_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wal.db");
        let wal = dir.path().join("wal.db-wal");
        let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let url = format!("sqlite://{}", path.display());
        let store = Store::open(&url, OpenMode::CreateAndMigrate)
            .await
            .expect("open");
        let Db::Sqlite(pools) = &*store.db else {
            panic!("not SQLite");
        };
        // As under a dispatcher: no checkpoint on the commit path.
        sqlx::raw_sql("PRAGMA wal_autocheckpoint = 0; CREATE TABLE scratch (n INTEGER)")
            .execute(&pools.write)
            .await
            .expect("set up");
        commit_rows(pools, 50).await;

        // Not asked: nothing happens, and the WAL file keeps growing.
        let before = wal_size();
        store.rewind_wal_if_due().await;
        commit_rows(pools, 50).await;
        let grown = wal_size();
        assert!(grown > before, "{grown} bytes after {before}");

        // Asked: the writer finishes the copy, and the next commits write
        // from the WAL's start again, inside the file as it is.
        store.wal_rewind_due.store(true, Ordering::Release);
        store.rewind_wal_if_due().await;
        commit_rows(pools, 50).await;
        assert_eq!(wal_size(), grown, "the WAL grew instead of starting over");
        store.close().await;
    }
}
