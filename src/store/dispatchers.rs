//! Dispatcher heartbeats, so operators can see which dispatchers are alive.

use super::sql::rows::DispatcherRow;
use super::tx::db_now;
use super::{Reads, Result, Store, on_db};
use crate::model::DispatcherInfo;

const REGISTER: &str = "INSERT INTO dispatchers (id, host, pid, version, started_at, last_seen_at)
    VALUES ($1, $2, $3, $4, $5, $5)";
const BEAT: &str =
    "UPDATE dispatchers SET last_seen_at = $2, deliveries_per_sec = $3 WHERE id = $1";
const STOPPED: &str = "UPDATE dispatchers SET stopped_at = $2, last_seen_at = $2, deliveries_per_sec = 0 WHERE id = $1";
const LIST_RECENT: &str = "SELECT id, host, pid, version, started_at, last_seen_at, stopped_at,
    deliveries_per_sec FROM dispatchers WHERE last_seen_at >= $1 ORDER BY started_at";
const LAST_SEEN: &str = "SELECT MAX(last_seen_at) FROM dispatchers";

impl Reads {
    /// When any dispatcher was last seen (its last heartbeat, or when it
    /// stopped), `None` if none ever ran, with the database's current time:
    /// how long nothing has been delivering.
    pub async fn dispatcher_last_seen(&self) -> Result<(Option<i64>, i64)> {
        Ok(on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let last: Option<i64> = sqlx::query_scalar(LAST_SEEN).fetch_one(&mut *conn).await?;
            (last, now)
        }))
    }

    /// Dispatchers seen in the last `within_ms`, oldest first, with the
    /// database's current time so callers can judge who is alive.
    pub async fn list_dispatchers(&self, within_ms: i64) -> Result<(Vec<DispatcherInfo>, i64)> {
        let (rows, now): (Vec<DispatcherRow>, i64) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let rows = sqlx::query_as(LIST_RECENT)
                .bind(now - within_ms)
                .fetch_all(&mut *conn)
                .await?;
            (rows, now)
        });
        Ok((rows.into_iter().map(DispatcherInfo::from).collect(), now))
    }
}

impl Store {
    /// Records a dispatcher starting; `started_at` and `last_seen_at` are set by the database.
    pub async fn register_dispatcher(
        &self,
        id: &str,
        host: &str,
        pid: i64,
        version: &str,
    ) -> Result<()> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            sqlx::query(REGISTER)
                .bind(id)
                .bind(host)
                .bind(pid)
                .bind(version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A dispatcher is alive and moving `deliveries_per_sec`.
    pub async fn heartbeat(&self, id: &str, deliveries_per_sec: f64) -> Result<()> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            sqlx::query(BEAT)
                .bind(id)
                .bind(now)
                .bind(deliveries_per_sec)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A dispatcher shut down cleanly.
    pub async fn dispatcher_stopped(&self, id: &str) -> Result<()> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            sqlx::query(STOPPED)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
