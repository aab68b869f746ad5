//! Erasure: removing events' payload bytes (and the response bodies of
//! their attempts, which receivers often echo) on request, or by
//! `retention.payload`. The event keeps its id, topic and size.

use serde::Serialize;
use serde_json::json;

use super::audit::AuditRecord;
use super::sql::dialect::Dialect;
use super::tx::{db_now, notify_change, write_audit};
use super::{Result, Store, json_list, on_db};
use crate::model::{Actor, PayloadRemovedBy};

/// Why the unfinished deliveries of an expunged event were cancelled.
pub const EXPUNGED_REASON: &str = "payload expunged";
/// Events a tenant expunge rewrites per transaction.
const EVENTS_PER_BATCH: i64 = 200;

/// What an expunge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpungeReport {
    /// Events whose payload is gone.
    pub events: u64,
    /// Their deliveries that had not finished, now cancelled.
    pub deliveries_cancelled: u64,
    /// Stored response bodies removed from their attempts.
    pub response_bodies_removed: u64,
    /// `tenant expunge`: broadcast events delivered to the tenant in the
    /// range, left as they are (they belong to no tenant).
    pub broadcasts_left: u64,
    /// SQLite: the write-ahead log, which held earlier page images, was
    /// emptied; `false` when a long-running reader kept it (it empties at a
    /// later checkpoint). Always `true` on Postgres.
    pub log_truncated: bool,
}

/// What [`strip_payloads`] changed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stripped {
    pub events: u64,
    pub cancelled: u64,
    pub bodies: u64,
}

/// Inside the caller's transaction, removes the payloads of the events in
/// JSON list `list` (and, for a retention removal, only those not removed
/// already) and the response bodies of their attempts; an expunge also
/// cancels their unfinished deliveries. The caller holds the events' rows
/// (the UPDATE takes them first), which every retry takes before it revives
/// a delivery, so none is revived with its payload gone. On SQLite every
/// page these statements free is overwritten with zeros, so the bytes do
/// not linger in the file's free pages.
pub(crate) async fn strip_payloads<C>(
    conn: &mut C,
    sql: &Dialect,
    list: &str,
    by: PayloadRemovedBy,
    now: i64,
) -> std::result::Result<Stripped, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::QueryResult: super::tx::RowsAffected,
{
    if let Some(begin) = sql.secure_erase_begin {
        sqlx::query(begin).execute(&mut *conn).await?;
    }
    // The statements run in a block of their own so the setting is put
    // back whether they succeed or fail.
    let stripped = async {
        use super::tx::RowsAffected;
        let any = sql.any_of_json(1);
        let only_kept = match by {
            PayloadRemovedBy::Retention => " AND payload_removed_at IS NULL",
            PayloadRemovedBy::Expunged => "",
        };
        let events = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE events SET payload_size = COALESCE(payload_size, OCTET_LENGTH(payload)), payload = '',
                    payload_removed_at = $2, payload_removed_by = $3
              WHERE id{any}{only_kept}"
        )))
        .bind(list)
        .bind(now)
        .bind(by.as_db())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let cancelled = match by {
            PayloadRemovedBy::Retention => 0,
            PayloadRemovedBy::Expunged => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET state = 'cancelled', last_error = $2, updated_at = $3,
                        lease_owner = NULL, lease_expires_at = NULL
                  WHERE event_id{any} AND state IN ('pending', 'scheduled', 'in_flight')"
            )))
            .bind(list)
            .bind(EXPUNGED_REASON)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        };
        let bodies = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE attempts SET response_body = NULL
              WHERE response_body IS NOT NULL AND delivery_id IN (SELECT id FROM deliveries WHERE event_id{any})"
        )))
        .bind(list)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(Stripped {
            events,
            cancelled,
            bodies,
        })
    }
    .await;
    if let Some(end) = sql.secure_erase_end {
        sqlx::query(end).execute(&mut *conn).await?;
    }
    stripped
}

impl Store {
    /// Removes the payloads of events `ids` now, with their attempts'
    /// response bodies, and cancels their unfinished deliveries; audited.
    /// An id that is not found changes nothing and is the error.
    pub async fn expunge_events(&self, ids: &[String], actor: &Actor) -> Result<ExpungeReport> {
        let list = json_list(ids);
        let outcome: std::result::Result<Stripped, String> = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let found: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM events WHERE id{}{}",
                sql.any_of_json(1),
                sql.row_lock("FOR UPDATE")
            )))
            .bind(&list)
            .fetch_all(&mut *tx)
            .await?;
            match ids.iter().find(|id| !found.iter().any(|(f,)| f == *id)) {
                Some(missing) => Err(missing.clone()),
                None => {
                    let stripped =
                        strip_payloads(&mut *tx, sql, &list, PayloadRemovedBy::Expunged, now)
                            .await?;
                    let audit = expunge_audit(actor, ids.to_vec(), stripped, json!({}));
                    write_audit(&mut *tx, now, audit).await?;
                    notify_change(sql, &mut *tx).await?;
                    tx.commit().await?;
                    Ok(stripped)
                }
            }
        });
        let stripped = outcome.map_err(|missing| self.missing("event", &missing))?;
        self.note_change();
        Ok(ExpungeReport {
            events: stripped.events,
            deliveries_cancelled: stripped.cancelled,
            response_bodies_removed: stripped.bodies,
            broadcasts_left: 0,
            log_truncated: self.truncate_wal().await?,
        })
    }

    /// Removes the payloads of every event of `tenant_id` created before
    /// `before` (unix ms), as [`Store::expunge_events`] does, in batches of
    /// short transactions, each audited. Broadcast events delivered to the
    /// tenant belong to no tenant and are left; the report counts them.
    pub async fn expunge_tenant(
        &self,
        tenant_id: &str,
        before: i64,
        actor: &Actor,
    ) -> Result<ExpungeReport> {
        let mut report = ExpungeReport::default();
        let mut after = (i64::MIN, String::new());
        loop {
            let batch: Option<((i64, String), Stripped)> = on_db!(self, |pools, sql| {
                let mut tx = pools.write.begin_with(sql.begin_write).await?;
                let now = db_now(sql, &mut *tx).await?;
                let page: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT created_at, id FROM events
                      WHERE tenant_id = $1 AND created_at < $2 AND payload_removed_at IS NULL
                        AND (created_at > $3 OR (created_at = $3 AND id > $4))
                      ORDER BY created_at, id LIMIT $5{}",
                    sql.row_lock("FOR UPDATE")
                )))
                .bind(tenant_id)
                .bind(before)
                .bind(after.0)
                .bind(&after.1)
                .bind(EVENTS_PER_BATCH)
                .fetch_all(&mut *tx)
                .await?;
                match page.last().cloned() {
                    None => None,
                    Some(last) => {
                        let ids: Vec<String> = page.into_iter().map(|(_, id)| id).collect();
                        let list = json_list(&ids);
                        let stripped =
                            strip_payloads(&mut *tx, sql, &list, PayloadRemovedBy::Expunged, now)
                                .await?;
                        let audit = expunge_audit(
                            actor,
                            vec![tenant_id.to_string()],
                            stripped,
                            json!({ "tenant_id": tenant_id, "before": before }),
                        );
                        write_audit(&mut *tx, now, audit).await?;
                        notify_change(sql, &mut *tx).await?;
                        tx.commit().await?;
                        Some((last, stripped))
                    }
                }
            });
            let Some((last, stripped)) = batch else { break };
            after = last;
            report.events += stripped.events;
            report.deliveries_cancelled += stripped.cancelled;
            report.response_bodies_removed += stripped.bodies;
            self.note_change();
        }
        let left: i64 = on_db!(self, |pools, _sql| {
            sqlx::query_scalar(
                "SELECT COUNT(DISTINCT d.event_id) FROM deliveries d JOIN events e ON e.id = d.event_id
                  WHERE d.tenant_id = $1 AND d.created_at < $2 AND e.tenant_id IS NULL
                    AND e.payload_removed_at IS NULL",
            )
            .bind(tenant_id)
            .bind(before)
            .fetch_one(&pools.read)
            .await?
        });
        report.broadcasts_left = left.max(0) as u64;
        report.log_truncated = self.truncate_wal().await?;
        Ok(report)
    }
}

/// The audit row of one expunge transaction.
fn expunge_audit(
    actor: &Actor,
    target_ids: Vec<String>,
    stripped: Stripped,
    mut detail: serde_json::Value,
) -> AuditRecord<'_> {
    if let Some(map) = detail.as_object_mut() {
        map.insert("events".into(), json!(stripped.events));
        map.insert("deliveries_cancelled".into(), json!(stripped.cancelled));
        map.insert("response_bodies_removed".into(), json!(stripped.bodies));
    }
    AuditRecord {
        actor,
        action: "event.expunge",
        target_ids,
        detail,
    }
}
