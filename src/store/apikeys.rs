//! API keys: stored as hashes, looked up by hash on every API request,
//! created and revoked with an audit row.

use serde_json::json;

use super::audit::AuditRecord;
use super::tx::{db_now, is_unique_violation, write_audit};
use super::{Cursor, Page, Reads, Result, Store, StoreError, on_db};
use crate::model::{Actor, ApiKey, IdKind, Millis, format_rfc3339, new_id};

/// A key to store: its hash, never the key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    /// `None` makes an admin key.
    pub tenant_id: Option<String>,
    /// Refused from then on (unix ms); `None`: never.
    pub expires_at: Option<Millis>,
}

/// Columns of [`ApiKeyRow`], for `… FROM api_keys k LEFT JOIN tenants t …`.
/// A macro so that `concat!` can splice it into the `const` statements.
macro_rules! key_columns {
    () => {
        "k.id, k.name, k.tenant_id, t.name AS tenant_name, k.key_prefix, k.created_at, \
         k.expires_at, k.revoked_at"
    };
}

const INSERT: &str = "INSERT INTO api_keys
    (id, name, key_hash, key_prefix, tenant_id, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
const LIST: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
      WHERE k.revoked_at IS NULL OR $1 ORDER BY k.created_at, k.id"
);
// Keyset paging, oldest first: the first page passes a position before
// every row, so one statement serves every page.
const PAGE: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
      WHERE (k.revoked_at IS NULL OR $1) AND (k.created_at, k.id) > ($2, $3)
      ORDER BY k.created_at, k.id LIMIT $4"
);
const BY_ID_OR_NAME: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
      WHERE k.revoked_at IS NULL AND (k.id = $1 OR k.name = $1)"
);
// A tenant key stops working the moment its tenant is deleted, even if the
// revocation that goes with the deletion were somehow missed. An expired key
// is still found: the caller tells the client it expired, and when.
const BY_HASH: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        AND (k.tenant_id IS NULL OR t.deleted_at IS NULL)"
);
const REVOKE: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    tenant_id: Option<String>,
    tenant_name: Option<String>,
    key_prefix: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> ApiKey {
        ApiKey {
            id: row.id,
            name: row.name,
            tenant_id: row.tenant_id,
            tenant_name: row.tenant_name,
            key_prefix: row.key_prefix,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl Reads {
    /// Live keys (and revoked ones too with `include_revoked`), oldest first.
    pub async fn list_api_keys(&self, include_revoked: bool) -> Result<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(LIST)
                .bind(include_revoked)
                .fetch_all(&pools.read)
                .await?
        });
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    /// One page of keys, oldest first, after `after` (from the start when
    /// `None`); revoked ones too with `include_revoked`.
    pub async fn list_api_keys_page(
        &self,
        include_revoked: bool,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<ApiKey>> {
        let (created_at, id) = after.map_or((i64::MIN, ""), |c| (c.created_at, c.id.as_str()));
        let rows: Vec<ApiKeyRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(PAGE)
                .bind(include_revoked)
                .bind(created_at)
                .bind(id)
                .bind(Page::<ApiKey>::fetch_limit(limit))
                .fetch_all(&pools.read)
                .await?
        });
        let keys = rows.into_iter().map(ApiKey::from).collect();
        Ok(Page::from_rows(keys, limit, |k: &ApiKey| {
            Cursor::of(k.created_at, &k.id)
        }))
    }

    /// A live key by id (`key_…`) or name.
    pub async fn find_api_key(&self, key: &str) -> Result<ApiKey> {
        let row: Option<ApiKeyRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(BY_ID_OR_NAME)
                .bind(key)
                .fetch_optional(&pools.read)
                .await?
        });
        row.map(ApiKey::from)
            .ok_or_else(|| StoreError::not_found("API key", key))
    }

    /// The live key with this hash, if any, expired or not: the check
    /// behind every API request.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(BY_HASH)
                .bind(key_hash)
                .fetch_optional(&pools.read)
                .await?
        });
        Ok(row.map(ApiKey::from))
    }
}

impl Store {
    /// Stores a new key; names are unique among live keys.
    pub async fn create_api_key(&self, new: &NewApiKey, actor: &Actor) -> Result<ApiKey> {
        let id = new_id(IdKind::ApiKey);
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let inserted = sqlx::query(INSERT)
                .bind(&id)
                .bind(&new.name)
                .bind(&new.key_hash)
                .bind(&new.key_prefix)
                .bind(&new.tenant_id)
                .bind(now)
                .bind(new.expires_at)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(err) if is_unique_violation(&err) => {
                    return Err(StoreError::Conflict(format!(
                        "an API key named {:?} already exists",
                        new.name
                    )));
                }
                other => other?,
            };
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "apikey.create",
                    target_ids: vec![id.clone()],
                    detail: json!({
                        "name": new.name,
                        "tenant_id": new.tenant_id,
                        "expires_at": new.expires_at.map(format_rfc3339),
                    }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.find_api_key(&id).await
    }

    /// Revokes a live key; it is refused from then on. Returns it, revoked.
    pub async fn revoke_api_key(&self, id: &str, actor: &Actor) -> Result<ApiKey> {
        let key = self.find_api_key(id).await?;
        let revoked_at = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let revoked = sqlx::query(REVOKE)
                .bind(&key.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if revoked.rows_affected() == 0 {
                return Err(StoreError::not_found("API key", id));
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "apikey.revoke",
                    target_ids: vec![key.id.clone()],
                    detail: json!({ "name": key.name }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<Millis, StoreError>(now)
        })?;
        Ok(ApiKey {
            revoked_at: Some(revoked_at),
            ..key
        })
    }
}
