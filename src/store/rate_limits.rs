//! Per-endpoint rate limits: the token bucket each limited endpoint has in
//! the database, so that every dispatcher draws from the same one. The
//! claim reads and spends it (`queue`); this sets it and says which
//! endpoints wait on it.

use super::tx::db_now;
use super::{Reads, Result, on_db};
use crate::model::RateLimit;

/// Sets endpoint `$1`'s limit to `$2` a second, burst `$3`, with a full
/// bucket at clock `$4`.
const UPSERT: &str = "INSERT INTO endpoint_rate_limits
        (endpoint_id, per_second, burst, tokens_milli, refilled_at, updated_at)
    VALUES ($1, $2, $3, $3 * 1000, $4, $4)
    ON CONFLICT (endpoint_id) DO UPDATE SET per_second = excluded.per_second,
        burst = excluded.burst, tokens_milli = excluded.tokens_milli,
        refilled_at = excluded.refilled_at, updated_at = excluded.updated_at";

const REMOVE: &str = "DELETE FROM endpoint_rate_limits WHERE endpoint_id = $1";

/// Gives endpoint `endpoint_id` the rate limit `limit` (a full bucket), or
/// none, inside the caller's transaction.
pub(crate) async fn write_rate_limit<C>(
    conn: &mut C,
    endpoint_id: &str,
    limit: Option<RateLimit>,
    now: i64,
) -> std::result::Result<(), sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    let query = match limit {
        Some(limit) => sqlx::query(UPSERT)
            .bind(endpoint_id.to_string())
            .bind(limit.per_second)
            .bind(limit.burst)
            .bind(now),
        None => sqlx::query(REMOVE).bind(endpoint_id.to_string()),
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

impl Reads {
    /// The active endpoints whose rate limit has no whole request left in
    /// its bucket right now, with their limit: their due work waits for it.
    pub async fn endpoints_waiting_for_tokens(&self) -> Result<Vec<(String, RateLimit)>> {
        let rows: Vec<(String, i64, i64)> = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT r.endpoint_id, r.per_second, r.burst FROM endpoint_rate_limits r
                   JOIN endpoints e ON e.id = r.endpoint_id
                  WHERE e.state = 'active' AND e.deleted_at IS NULL AND {} < 1000",
                sql.tokens_at("$1", "r.")
            )))
            .bind(now)
            .fetch_all(&mut *conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, per_second, burst)| (id, RateLimit::new(per_second, Some(burst))))
            .collect())
    }
}
