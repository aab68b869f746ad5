//! Tenants: the producer platform's customers, owners of endpoints.

use serde_json::json;

use super::audit::AuditRecord;
use super::sql::rows::TenantRow;
use super::tx::{db_now, is_unique_violation, remove_endpoint, revoke_tenant_keys, write_audit};
use super::{Reads, Result, Store, StoreError, on_db};
use crate::model::{Actor, IdKind, Tenant, new_id};

const FIND_BY_NAME: &str =
    "SELECT id, name, created_at FROM tenants WHERE name = $1 AND deleted_at IS NULL";
const FIND_BY_ID: &str =
    "SELECT id, name, created_at FROM tenants WHERE id = $1 AND deleted_at IS NULL";
const LIST: &str =
    "SELECT id, name, created_at FROM tenants WHERE deleted_at IS NULL ORDER BY name";
const INSERT: &str = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
const SOFT_DELETE: &str = "UPDATE tenants SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL";

impl Reads {
    /// Every live tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows: Vec<TenantRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(LIST).fetch_all(&pools.read).await?
        });
        Ok(rows.into_iter().map(Tenant::from).collect())
    }

    /// A live tenant by id (`ten_…`) or name.
    pub async fn find_tenant(&self, key: &str) -> Result<Tenant> {
        let query = if key.starts_with(IdKind::Tenant.prefix()) {
            FIND_BY_ID
        } else {
            FIND_BY_NAME
        };
        let row: Option<TenantRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(query)
                .bind(key)
                .fetch_optional(&pools.read)
                .await?
        });
        row.map(Tenant::from)
            .ok_or_else(|| StoreError::not_found("tenant", key))
    }
}

impl Store {
    /// Creates a tenant; names are unique among live tenants.
    pub async fn create_tenant(&self, name: &str, actor: &Actor) -> Result<Tenant> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let tenant = Tenant {
                id: new_id(IdKind::Tenant),
                name: name.to_string(),
                created_at: now,
            };
            let inserted = sqlx::query(INSERT)
                .bind(&tenant.id)
                .bind(&tenant.name)
                .bind(now)
                .execute(&mut *tx)
                .await;
            if let Err(err) = inserted {
                return Err(if is_unique_violation(&err) {
                    StoreError::Conflict(format!("a tenant named {name:?} already exists"))
                } else {
                    err.into()
                });
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "tenant.create",
                    target_ids: vec![tenant.id.clone()],
                    detail: json!({ "name": name }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok(tenant)
        })
    }

    /// Deletes a tenant with its endpoints and subscriptions; their unfinished
    /// deliveries are cancelled. Returns how many deliveries were cancelled.
    pub async fn delete_tenant(&self, tenant_id: &str, actor: &Actor) -> Result<u64> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let deleted = sqlx::query(SOFT_DELETE)
                .bind(tenant_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::not_found("tenant", tenant_id));
            }
            let endpoint_ids: Vec<String> = sqlx::query_scalar(sql.tenant_endpoints_for_delete)
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?;
            revoke_tenant_keys(&mut *tx, tenant_id, now).await?;
            let mut cancelled = 0;
            for endpoint_id in &endpoint_ids {
                cancelled += remove_endpoint(&mut *tx, endpoint_id, now).await?;
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "tenant.delete",
                    target_ids: vec![tenant_id.to_string()],
                    detail: json!({ "endpoints": endpoint_ids, "cancelled_deliveries": cancelled }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok(cancelled)
        })
    }
}
