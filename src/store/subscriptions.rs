//! Subscriptions: which topic patterns an endpoint receives.

use serde_json::json;

use super::audit::AuditRecord;
use super::sql::rows::{SubscriptionRow, subscription_columns};
use super::tx::{db_now, is_unique_violation, write_audit};
use super::{Reads, Result, Store, StoreError, TenantScope, on_db};
use crate::model::{Actor, IdKind, Subscription, new_id};

/// A validated subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub endpoint_id: String,
    pub pattern: String,
    pub description: Option<String>,
}

/// Validated changes to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub pattern: Option<String>,
    pub description: Option<Option<String>>,
}

const BY_ID: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
      JOIN tenants t ON t.id = s.tenant_id
      WHERE s.id = $1 AND e.deleted_at IS NULL"
);
// The lists of many endpoints end in `LIMIT`: the console reads the first
// screenful before the rest.
const LIST_ALL: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
      JOIN tenants t ON t.id = s.tenant_id
      WHERE e.deleted_at IS NULL ORDER BY t.name, e.name, s.pattern LIMIT $1"
);
const LIST_TENANT: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
      JOIN tenants t ON t.id = s.tenant_id
      WHERE e.deleted_at IS NULL AND s.tenant_id = $1 ORDER BY t.name, e.name, s.pattern LIMIT $2"
);
const LIST_ENDPOINT: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
      JOIN tenants t ON t.id = s.tenant_id
      WHERE e.deleted_at IS NULL AND s.endpoint_id = $1 ORDER BY s.pattern"
);
const ENDPOINT_TENANT: &str =
    "SELECT tenant_id FROM endpoints WHERE id = $1 AND deleted_at IS NULL";
const INSERT: &str = "INSERT INTO subscriptions
    (id, endpoint_id, tenant_id, pattern, description, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)";
const UPDATE: &str =
    "UPDATE subscriptions SET pattern = $2, description = $3, updated_at = $4 WHERE id = $1";
const DELETE: &str = "DELETE FROM subscriptions WHERE id = $1";

fn duplicate_pattern(pattern: &str) -> StoreError {
    StoreError::Conflict(format!("the endpoint already subscribes to {pattern:?}"))
}

/// The topics of a tenant's latest events and of the latest broadcasts,
/// newest first, each through its own index.
const RECENT_TOPICS: &str = "SELECT topic, created_at FROM (
        SELECT topic, created_at FROM (SELECT topic, created_at FROM events
            WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT $2) AS own
        UNION ALL
        SELECT topic, created_at FROM (SELECT topic, created_at FROM events
            WHERE tenant_id IS NULL ORDER BY created_at DESC LIMIT $2) AS broadcast
    ) AS recent ORDER BY created_at DESC LIMIT $2";

impl Reads {
    /// The topics of the last `limit` events tenant `tenant_id` received
    /// (its own and broadcasts), newest first: what a subscription
    /// pattern is previewed against.
    pub async fn recent_topics(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit.clamp(1, 10_000)).unwrap_or(1_000);
        let rows: Vec<(String, i64)> = on_db!(self, |pools, _sql| {
            sqlx::query_as(RECENT_TOPICS)
                .bind(tenant_id)
                .bind(limit)
                .fetch_all(&pools.read)
                .await?
        });
        Ok(rows.into_iter().map(|(topic, _)| topic).collect())
    }

    /// A subscription of a live endpoint, by id.
    pub async fn get_subscription(&self, id: &str) -> Result<Subscription> {
        let row: Option<SubscriptionRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(BY_ID)
                .bind(id)
                .fetch_optional(&pools.read)
                .await?
        });
        row.map(Subscription::from)
            .ok_or_else(|| StoreError::not_found("subscription", id))
    }

    /// Subscriptions of one endpoint, or of a tenant's endpoints, or all.
    pub async fn list_subscriptions(
        &self,
        endpoint_id: Option<&str>,
        tenant: TenantScope<'_>,
    ) -> Result<Vec<Subscription>> {
        self.list_subscriptions_upto(endpoint_id, tenant, i64::MAX)
            .await
    }

    /// The first `limit` subscriptions of [`Self::list_subscriptions`]
    /// (of a tenant's endpoints, or all): what a screen shows first.
    pub async fn first_subscriptions(
        &self,
        tenant: TenantScope<'_>,
        limit: usize,
    ) -> Result<Vec<Subscription>> {
        self.list_subscriptions_upto(None, tenant, i64::try_from(limit).unwrap_or(i64::MAX))
            .await
    }

    async fn list_subscriptions_upto(
        &self,
        endpoint_id: Option<&str>,
        tenant: TenantScope<'_>,
        limit: i64,
    ) -> Result<Vec<Subscription>> {
        let rows: Vec<SubscriptionRow> = on_db!(self, |pools, sql| {
            match (endpoint_id, tenant) {
                // An endpoint has a few: read whole.
                (Some(endpoint_id), _) => {
                    sqlx::query_as(LIST_ENDPOINT)
                        .bind(endpoint_id)
                        .fetch_all(&pools.read)
                        .await?
                }
                (None, Some(tenant_id)) => {
                    sqlx::query_as(LIST_TENANT)
                        .bind(tenant_id)
                        .bind(limit)
                        .fetch_all(&pools.read)
                        .await?
                }
                (None, None) => {
                    sqlx::query_as(LIST_ALL)
                        .bind(limit)
                        .fetch_all(&pools.read)
                        .await?
                }
            }
        });
        Ok(rows.into_iter().map(Subscription::from).collect())
    }
}

impl Store {
    /// Subscribes an endpoint to a topic pattern.
    pub async fn create_subscription(
        &self,
        new: &NewSubscription,
        actor: &Actor,
    ) -> Result<Subscription> {
        let id = new_id(IdKind::Subscription);
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let tenant_id: Option<String> = sqlx::query_scalar(ENDPOINT_TENANT)
                .bind(&new.endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
            let tenant_id =
                tenant_id.ok_or_else(|| StoreError::not_found("endpoint", &new.endpoint_id))?;
            let inserted = sqlx::query(INSERT)
                .bind(&id)
                .bind(&new.endpoint_id)
                .bind(&tenant_id)
                .bind(&new.pattern)
                .bind(&new.description)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(err) if is_unique_violation(&err) => {
                    return Err(duplicate_pattern(&new.pattern));
                }
                other => other?,
            };
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "subscription.create",
                    target_ids: vec![id.clone()],
                    detail: json!({ "endpoint_id": new.endpoint_id, "pattern": new.pattern }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_subscription(&id).await
    }

    /// Changes a subscription's pattern or description.
    pub async fn update_subscription(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        actor: &Actor,
    ) -> Result<Subscription> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let row: Option<SubscriptionRow> = sqlx::query_as(sql.subscription_for_update)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let before = row.ok_or_else(|| StoreError::not_found("subscription", id))?;
            let pattern = patch.pattern.clone().unwrap_or(before.pattern.clone());
            let description = patch
                .description
                .clone()
                .unwrap_or(before.description.clone());
            let updated = sqlx::query(UPDATE)
                .bind(id)
                .bind(&pattern)
                .bind(&description)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match updated {
                Err(err) if is_unique_violation(&err) => return Err(duplicate_pattern(&pattern)),
                other => other?,
            };
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "subscription.update",
                    target_ids: vec![id.to_string()],
                    detail: json!({
                        "pattern": { "from": before.pattern, "to": pattern },
                        "description": { "from": before.description, "to": description },
                    }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_subscription(id).await
    }

    /// Removes a subscription; deliveries already created are not touched.
    pub async fn delete_subscription(&self, id: &str, actor: &Actor) -> Result<Subscription> {
        let existing = self.get_subscription(id).await?;
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let deleted = sqlx::query(DELETE).bind(id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::not_found("subscription", id));
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "subscription.delete",
                    target_ids: vec![id.to_string()],
                    detail: json!({ "endpoint_id": existing.endpoint_id, "pattern": existing.pattern }),
                }
            ).await?;
            tx.commit().await?;
            Ok(existing)
        })
    }
}
