//! The audit log: every operator mutation, written in the same transaction
//! as the change it records, and read back newest first.

use super::sql::rows::{AuditRow, convert_all};
use super::{Cursor, Page, Reads, Result, on_db};
use crate::model::{Actor, AuditEntry};

/// At most this many ids are listed on one audit row; `detail` keeps the full
/// count, so a bulk retry of 50,000 deliveries stays a small row.
pub(crate) const MAX_AUDIT_TARGETS: usize = 100;

/// What one audit row says; written with [`super::tx::write_audit`].
pub(crate) struct AuditRecord<'a> {
    pub actor: &'a Actor,
    pub action: &'static str,
    pub target_ids: Vec<String>,
    pub detail: serde_json::Value,
}

impl AuditRecord<'_> {
    /// The capped target list as JSON text.
    pub fn targets_json(&self) -> String {
        let shown: Vec<&String> = self.target_ids.iter().take(MAX_AUDIT_TARGETS).collect();
        serde_json::to_string(&shown).unwrap_or_else(|_| "[]".to_string()) // ok: strings always serialise
    }
}

const LIST_FIRST: &str = "SELECT id, at, actor, client_addr, source, action, target_ids, detail
    FROM audit_log ORDER BY at DESC, id DESC LIMIT $1";
const LIST_AFTER: &str = "SELECT id, at, actor, client_addr, source, action, target_ids, detail
    FROM audit_log WHERE (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $1";

impl Reads {
    /// One page of the audit log, newest first.
    pub async fn list_audit(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<AuditEntry>> {
        let limit = limit.clamp(1, 10_000);
        let rows: Vec<AuditRow> = on_db!(self, |pools, sql| {
            match after {
                None => {
                    sqlx::query_as(LIST_FIRST)
                        .bind(Page::<AuditEntry>::fetch_limit(limit))
                        .fetch_all(&pools.read)
                        .await?
                }
                Some(cursor) => {
                    sqlx::query_as(LIST_AFTER)
                        .bind(Page::<AuditEntry>::fetch_limit(limit))
                        .bind(cursor.created_at)
                        .bind(&cursor.id)
                        .fetch_all(&pools.read)
                        .await?
                }
            }
        });
        let items: Vec<AuditEntry> = convert_all(rows)?;
        Ok(Page::from_rows(items, limit, |last| Cursor {
            created_at: last.at,
            id: last.id.clone(),
        }))
    }
}
