//! Steps that several write paths take inside their own transaction: read
//! the database clock, tell other processes that work may have appeared,
//! write the audit row, remove an endpoint, revoke a deleted tenant's keys;
//! and telling a duplicate apart from other database failures.
//!
//! Each runs on either backend's connection, so each is generic over it; the
//! `where` clauses say what sqlx needs to know of the connection type (which
//! values it can bind or read), nothing more.

use std::time::{Duration, Instant};

use sqlx::{Connection, Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::audit::AuditRecord;
use super::sql::dialect::Dialect;
use crate::model::{IdKind, new_id, now_millis};

/// The database's clock in unix milliseconds, read inside the transaction:
/// SQLite lives on this host, so its clock is ours; on Postgres the server's
/// clock judges due times and leases, because hosts' clocks drift.
pub(crate) async fn db_now<C>(sql: &Dialect, conn: &mut C) -> Result<i64, sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    (i64,): for<'r> FromRow<'r, <C::Database as Database>::Row>,
{
    match sql.now {
        None => Ok(now_millis()),
        Some(query) => sqlx::query_scalar(query).fetch_one(conn).await,
    }
}

/// How long a measured offset between this host's clock and the database's
/// stands in for reading the database's clock.
const CLOCK_TRUSTED_FOR: Duration = Duration::from_secs(10);

/// The database's clock for the paths that run many times a second (the
/// dispatcher's cycle, publishing) without a round trip each time: the
/// offset between the database's clock and this host's, read again every
/// `CLOCK_TRUSTED_FOR`, added to this host's clock. Within about half a
/// round trip of [`db_now`], and it follows the database's clock if this
/// host's drifts. SQLite's clock is this host's.
#[derive(Debug, Default)]
pub(crate) struct DbClock {
    /// Database clock minus this host's (ms), and when that was measured.
    offset: std::sync::Mutex<Option<(Instant, i64)>>,
}

impl DbClock {
    pub(crate) async fn now<C>(&self, sql: &Dialect, conn: &mut C) -> Result<i64, sqlx::Error>
    where
        C: Connection,
        for<'c> &'c mut C: Executor<'c, Database = C::Database>,
        <C::Database as Database>::Arguments: IntoArguments<C::Database>,
        (i64,): for<'r> FromRow<'r, <C::Database as Database>::Row>,
    {
        if sql.now.is_none() {
            return Ok(now_millis());
        }
        let known = self.offset.lock().ok().and_then(|offset| *offset);
        if let Some((measured, offset)) = known
            && measured.elapsed() < CLOCK_TRUSTED_FOR
        {
            return Ok(now_millis() + offset);
        }
        let before = now_millis();
        let database = db_now(sql, conn).await?;
        let after = now_millis();
        if let Ok(mut offset) = self.offset.lock() {
            *offset = Some((Instant::now(), database - before / 2 - after / 2));
        }
        Ok(database)
    }
}

/// Tells other processes (Postgres LISTENers) that due work may have
/// appeared, once the transaction on `conn` commits.
pub(crate) async fn notify_change<C>(sql: &Dialect, conn: &mut C) -> Result<(), sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
{
    if let Some(notify) = sql.notify {
        sqlx::query(notify).execute(conn).await?;
    }
    Ok(())
}

const INSERT_AUDIT: &str = "INSERT INTO audit_log
    (id, at, actor, client_addr, source, action, target_ids, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Inserts `record` on `conn` at time `now`, in the transaction of the
/// change it records.
pub(crate) async fn write_audit<C>(
    conn: &mut C,
    now: i64,
    record: AuditRecord<'_>,
) -> Result<(), sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Option<String>: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> &'static str: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
{
    sqlx::query(INSERT_AUDIT)
        .bind(new_id(IdKind::Audit))
        .bind(now)
        .bind(record.actor.name.clone())
        .bind(record.actor.client_addr.clone())
        .bind(record.actor.source.as_db())
        .bind(record.action)
        .bind(record.targets_json())
        .bind(record.detail.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

const SOFT_DELETE_ENDPOINT: &str =
    "UPDATE endpoints SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL";
const DELETE_SUBSCRIPTIONS: &str = "DELETE FROM subscriptions WHERE endpoint_id = $1";
const CANCEL_DELIVERIES: &str = "UPDATE deliveries
    SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
    WHERE endpoint_id = $1 AND state IN ('pending', 'scheduled', 'in_flight')";

/// Soft-deletes an endpoint inside the caller's transaction: its
/// subscriptions go, its unfinished deliveries are cancelled. Returns the
/// number of deliveries cancelled.
pub(crate) async fn remove_endpoint<C>(
    conn: &mut C,
    endpoint_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
    <C::Database as Database>::QueryResult: RowsAffected,
{
    sqlx::query(SOFT_DELETE_ENDPOINT)
        .bind(endpoint_id.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(DELETE_SUBSCRIPTIONS)
        .bind(endpoint_id.to_string())
        .execute(&mut *conn)
        .await?;
    let cancelled = sqlx::query(CANCEL_DELIVERIES)
        .bind(endpoint_id.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(cancelled.rows_affected())
}

const REVOKE_TENANT_KEYS: &str =
    "UPDATE api_keys SET revoked_at = $2 WHERE tenant_id = $1 AND revoked_at IS NULL";

/// Revokes a deleted tenant's API keys, inside the deletion's transaction.
pub(crate) async fn revoke_tenant_keys<C>(
    conn: &mut C,
    tenant_id: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
{
    sqlx::query(REVOKE_TENANT_KEYS)
        .bind(tenant_id.to_string())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The number of rows a statement changed, on either backend's result type
/// (sqlx gives each backend's its own inherent method).
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// Whether a database error is a unique-constraint violation (a duplicate name or key).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
