//! Endpoints: where a tenant's events are POSTed, with secrets, limits and state.

use serde_json::json;
use sqlx::{Connection, Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::audit::AuditRecord;
use super::rate_limits::write_rate_limit;
use super::sealing::Sealer;
use super::sql::dialect::Dialect;
use super::sql::rows::{EndpointRow, endpoint_columns};
use super::tx::{db_now, is_unique_violation, notify_change, remove_endpoint, write_audit};
use super::{Reads, Result, Store, StoreError, TenantScope, json_list, on_db};
use crate::model::{
    Actor, Endpoint, EndpointState, IdKind, Millis, RateLimit, format_rfc3339, new_id,
};
use crate::redact::{mask_headers, mask_url_password, url_password};

/// A validated endpoint to create.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    pub timeout_ms: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub headers: Vec<(String, String)>,
    pub description: Option<String>,
    pub rate_limit: Option<RateLimit>,
}

/// Validated changes to an endpoint; `None` leaves a field as it is, and for
/// optional fields `Some(None)` clears it back to the default.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub timeout_ms: Option<Option<i64>>,
    pub max_in_flight: Option<Option<i64>>,
    pub headers: Option<Vec<(String, String)>>,
    pub description: Option<Option<String>>,
    pub rate_limit: Option<Option<RateLimit>>,
}

impl EndpointPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.url.is_none()
            && self.timeout_ms.is_none()
            && self.max_in_flight.is_none()
            && self.headers.is_none()
            && self.description.is_none()
            && self.rate_limit.is_none()
    }
}

const BY_ID: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id WHERE e.deleted_at IS NULL AND e.id = $1"
);
const BY_NAME: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
      WHERE e.deleted_at IS NULL AND e.name = $1 ORDER BY t.name"
);
const BY_TENANT_AND_NAME: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
      WHERE e.deleted_at IS NULL AND e.name = $1 AND (t.id = $2 OR t.name = $2)"
);
// Lists end in `LIMIT`: the console reads the first screenful before the rest.
const LIST_ALL: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
      WHERE e.deleted_at IS NULL ORDER BY t.name, e.name LIMIT $1"
);
const LIST_TENANT: &str = concat!(
    "SELECT ",
    endpoint_columns!(),
    " FROM endpoints e JOIN tenants t ON t.id = e.tenant_id
      WHERE e.deleted_at IS NULL AND e.tenant_id = $1 ORDER BY t.name, e.name LIMIT $2"
);
const INSERT: &str = "INSERT INTO endpoints
    (id, tenant_id, name, url, secret, state, timeout_ms, max_in_flight, headers, description, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $10)";
const UPDATE: &str =
    "UPDATE endpoints SET name = $2, url = $3, timeout_ms = $4, max_in_flight = $5,
    headers = $6, description = $7, updated_at = $8 WHERE id = $1 AND deleted_at IS NULL";
const SET_STATE: &str = "UPDATE endpoints SET state = $2, state_reason = $3, state_changed_at = $4,
    paused_until = $5, state_changed_by = $6, updated_at = $4 WHERE id = $1 AND deleted_at IS NULL";
const ROTATE: &str =
    "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = $3,
    secret = $2, secret_rotated_at = $4, updated_at = $4 WHERE id = $1 AND deleted_at IS NULL";

/// Encodes endpoint headers as stored: a JSON array of `[name, value]` pairs.
fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_string()) // ok: strings always serialise
}

fn duplicate_name(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "the tenant already has an endpoint named {name:?}; endpoint names are unique per tenant"
    ))
}

impl Reads {
    /// An endpoint from its row, its sealed secrets opened.
    fn endpoint_from(&self, row: EndpointRow) -> Result<Endpoint> {
        let endpoint: Endpoint = row.try_into()?;
        Sealer::new(self.secrets_key(), &endpoint.id.clone()).open_endpoint(endpoint)
    }

    pub(super) fn endpoints_from(&self, rows: Vec<EndpointRow>) -> Result<Vec<Endpoint>> {
        rows.into_iter()
            .map(|row| self.endpoint_from(row))
            .collect()
    }

    /// A live endpoint by id.
    pub async fn get_endpoint(&self, id: &str) -> Result<Endpoint> {
        let row: Option<EndpointRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(BY_ID)
                .bind(id)
                .fetch_optional(&pools.read)
                .await?
        });
        self.endpoint_from(row.ok_or_else(|| StoreError::not_found("endpoint", id))?)
    }

    /// A live endpoint by id (`ep_…`), `tenant/name`, or a name that is
    /// unique across tenants (or within `tenant` when given).
    pub async fn find_endpoint(&self, key: &str, tenant: TenantScope<'_>) -> Result<Endpoint> {
        if key.starts_with(IdKind::Endpoint.prefix()) {
            return self.get_endpoint(key).await;
        }
        let (tenant, name) = match key.split_once('/') {
            Some((tenant, name)) => (Some(tenant), name),
            None => (tenant, key),
        };
        let rows: Vec<EndpointRow> = on_db!(self, |pools, sql| {
            match tenant {
                Some(tenant) => {
                    sqlx::query_as(BY_TENANT_AND_NAME)
                        .bind(name)
                        .bind(tenant)
                        .fetch_all(&pools.read)
                        .await?
                }
                None => {
                    sqlx::query_as(BY_NAME)
                        .bind(name)
                        .fetch_all(&pools.read)
                        .await?
                }
            }
        });
        let mut found: Vec<Endpoint> = self.endpoints_from(rows)?;
        match found.len() {
            0 => Err(StoreError::not_found("endpoint", key)),
            1 => Ok(found.remove(0)),
            _ => {
                let tenants: Vec<&str> = found.iter().map(|e| e.tenant_name.as_str()).collect();
                Err(StoreError::Conflict(format!(
                    "endpoint name {name:?} is ambiguous: tenants {} each have one; use the id or TENANT/{name}",
                    tenants.join(", ")
                )))
            }
        }
    }

    /// Opens every live endpoint's secrets with this store's key: an error
    /// names the first endpoint whose secrets are sealed and cannot be
    /// opened (no key, or another one), so a process can refuse to start
    /// instead of failing on its first delivery.
    pub async fn check_secrets(&self) -> Result<()> {
        self.list_endpoints(None).await.map(|_| ())
    }

    /// Live endpoints, by tenant and name.
    pub async fn list_endpoints(&self, tenant: TenantScope<'_>) -> Result<Vec<Endpoint>> {
        self.list_endpoints_upto(tenant, i64::MAX).await
    }

    /// The first `limit` endpoints of [`Self::list_endpoints`]: what a screen
    /// shows first, without reading every row.
    pub async fn first_endpoints(
        &self,
        tenant: TenantScope<'_>,
        limit: usize,
    ) -> Result<Vec<Endpoint>> {
        self.list_endpoints_upto(tenant, i64::try_from(limit).unwrap_or(i64::MAX))
            .await
    }

    async fn list_endpoints_upto(
        &self,
        tenant: TenantScope<'_>,
        limit: i64,
    ) -> Result<Vec<Endpoint>> {
        let rows: Vec<EndpointRow> = on_db!(self, |pools, sql| {
            match tenant {
                Some(tenant_id) => {
                    sqlx::query_as(LIST_TENANT)
                        .bind(tenant_id)
                        .bind(limit)
                        .fetch_all(&pools.read)
                        .await?
                }
                None => {
                    sqlx::query_as(LIST_ALL)
                        .bind(limit)
                        .fetch_all(&pools.read)
                        .await?
                }
            }
        });
        self.endpoints_from(rows)
    }
}

/// An endpoint's stored secret values, for [`Store::seal_plain_secrets`].
#[derive(sqlx::FromRow)]
struct StoredSecrets {
    id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    headers: String,
}

const STORED_SECRETS: &str =
    "SELECT id, url, secret, previous_secret, headers FROM endpoints ORDER BY id";
const RESEAL: &str = "UPDATE endpoints SET url = $2, secret = $3, previous_secret = $4,
    headers = $5 WHERE id = $1";

impl Store {
    /// Seals, with this store's key, every endpoint value still stored
    /// plain (written before the key was set), deleted endpoints included:
    /// what `hookline migrate` does once a key is set. Returns how many
    /// endpoints were rewritten; without a key, does nothing.
    pub async fn seal_plain_secrets(&self) -> Result<u64> {
        if self.secrets_key().is_none() {
            return Ok(0);
        }
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let rows: Vec<StoredSecrets> =
                sqlx::query_as(STORED_SECRETS).fetch_all(&mut *tx).await?;
            let mut sealed = 0;
            for row in rows {
                let sealer = Sealer::new(self.secrets_key(), &row.id);
                let headers: Vec<(String, String)> =
                    super::sql::rows::parse_json("endpoints", "headers", &row.headers)?;
                let plain_header = headers.iter().any(|(name, value)| {
                    crate::redact::is_sensitive_header(name) && !crate::seal::is_sealed(value)
                });
                let plain_url = url_password(&row.url).is_some_and(|p| !crate::seal::is_sealed(p));
                let plain_secret = !crate::seal::is_sealed(&row.secret)
                    || row
                        .previous_secret
                        .as_deref()
                        .is_some_and(|s| !crate::seal::is_sealed(s));
                if !(plain_header || plain_url || plain_secret) {
                    continue;
                }
                let reseal = |value: &str| -> Result<String> {
                    sealer.seal_secret(&sealer.open_secret(value)?)
                };
                let previous = row.previous_secret.as_deref().map(reseal).transpose()?;
                let headers = sealer.seal_headers(&sealer.open_headers(headers)?)?;
                sqlx::query(RESEAL)
                    .bind(&row.id)
                    .bind(sealer.seal_url(&sealer.open_url(&row.url)?)?)
                    .bind(reseal(&row.secret)?)
                    .bind(previous)
                    .bind(headers_json(&headers))
                    .execute(&mut *tx)
                    .await?;
                sealed += 1;
            }
            tx.commit().await?;
            Ok(sealed)
        })
    }

    /// Creates an endpoint; names are unique per tenant.
    pub async fn create_endpoint(&self, new: &NewEndpoint, actor: &Actor) -> Result<Endpoint> {
        let id = new_id(IdKind::Endpoint);
        let sealer = Sealer::new(self.secrets_key(), &id);
        let (url, secret) = (sealer.seal_url(&new.url)?, sealer.seal_secret(&new.secret)?);
        let headers = headers_json(&sealer.seal_headers(&new.headers)?);
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let inserted = sqlx::query(INSERT)
                .bind(&id)
                .bind(&new.tenant_id)
                .bind(&new.name)
                .bind(&url)
                .bind(&secret)
                .bind(new.timeout_ms)
                .bind(new.max_in_flight)
                .bind(&headers)
                .bind(&new.description)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(err) if is_unique_violation(&err) => return Err(duplicate_name(&new.name)),
                other => other?,
            };
            if new.rate_limit.is_some() {
                write_rate_limit(&mut *tx, &id, new.rate_limit, now).await?;
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "endpoint.create",
                    target_ids: vec![id.clone()],
                    // The audit log is read by more people than the secrets
                    // are meant for: the URL and headers go in masked.
                    detail: json!({
                        "tenant_id": new.tenant_id,
                        "name": new.name,
                        "url": mask_url_password(&new.url),
                        "headers": mask_headers(&new.headers),
                        "rate_limit": new.rate_limit,
                    }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_endpoint(&id).await
    }

    /// Applies a patch; returns the endpoint as it now is.
    pub async fn update_endpoint(
        &self,
        id: &str,
        patch: &EndpointPatch,
        actor: &Actor,
    ) -> Result<Endpoint> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let row: Option<EndpointRow> = sqlx::query_as(sql.endpoint_for_update)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let before =
                self.endpoint_from(row.ok_or_else(|| StoreError::not_found("endpoint", id))?)?;
            let after = apply_patch(&before, patch);
            let sealer = Sealer::new(self.secrets_key(), id);
            let url = sealer.seal_url(&after.url)?;
            let headers = headers_json(&sealer.seal_headers(&after.headers)?);
            let updated = sqlx::query(UPDATE)
                .bind(id)
                .bind(&after.name)
                .bind(&url)
                .bind(after.timeout_ms)
                .bind(after.max_in_flight)
                .bind(&headers)
                .bind(&after.description)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match updated {
                Err(err) if is_unique_violation(&err) => return Err(duplicate_name(&after.name)),
                other => other?,
            };
            if after.rate_limit != before.rate_limit {
                write_rate_limit(&mut *tx, id, after.rate_limit, now).await?;
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "endpoint.update",
                    target_ids: vec![id.to_string()],
                    detail: patch_detail(&before, &after),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_endpoint(id).await
    }

    /// Sets an endpoint's state (pause, resume, disable) and returns the
    /// endpoint with the state it had before; setting the state it already
    /// has writes nothing.
    pub async fn set_endpoint_state(
        &self,
        id: &str,
        state: EndpointState,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<(Endpoint, EndpointState)> {
        self.change_state(id, state, reason, None, actor).await
    }

    /// Pauses an endpoint, until `until` (unix ms) when given: then a
    /// dispatcher resumes it ([`end_due_pauses`]). Returns the endpoint
    /// with the state it had before. Pausing a paused endpoint replaces
    /// the reason and the end it gives and keeps the others; giving
    /// nothing new writes nothing.
    pub async fn pause_endpoint(
        &self,
        id: &str,
        reason: Option<&str>,
        until: Option<Millis>,
        actor: &Actor,
    ) -> Result<(Endpoint, EndpointState)> {
        self.change_state(id, EndpointState::Paused, reason, until, actor)
            .await
    }

    /// Moves an endpoint to `state` with its reason, and for a pause its end.
    async fn change_state(
        &self,
        id: &str,
        state: EndpointState,
        reason: Option<&str>,
        until: Option<Millis>,
        actor: &Actor,
    ) -> Result<(Endpoint, EndpointState)> {
        // Only a pause ends by itself.
        let until = until.filter(|_| state == EndpointState::Paused);
        let before = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let row: Option<EndpointRow> = sqlx::query_as(sql.endpoint_for_update)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let before: Endpoint = row
                .ok_or_else(|| StoreError::not_found("endpoint", id))?
                .try_into()?;
            // A new pause of a paused endpoint replaces the reason or end it
            // gives (the operator changed their mind); one that gives
            // nothing new writes nothing, like any other repeated change.
            let replaces = state == EndpointState::Paused
                && before.state == state
                && (reason.is_some_and(|r| before.state_reason.as_deref() != Some(r))
                    || until.is_some_and(|u| before.paused_until != Some(u)));
            if before.state == state && !replaces {
                let state = before.state;
                return Ok((
                    Sealer::new(self.secrets_key(), id).open_endpoint(before)?,
                    state,
                ));
            }
            let (reason, until) = if replaces {
                (
                    reason.map(str::to_string).or(before.state_reason.clone()),
                    until.or(before.paused_until),
                )
            } else {
                (reason.map(str::to_string), until)
            };
            let reason = reason.as_deref();
            sqlx::query(SET_STATE)
                .bind(id)
                .bind(state.as_db())
                .bind(reason)
                .bind(now)
                .bind(until)
                .bind(actor.describe())
                .execute(&mut *tx)
                .await?;
            if state == EndpointState::Active {
                if before.state == EndpointState::Disabled {
                    sqlx::query(super::breakers::CLOSE_ON_ENABLE)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                notify_change(sql, &mut *tx).await?;
            }
            let action = match state {
                EndpointState::Active => "endpoint.resume",
                EndpointState::Paused => "endpoint.pause",
                EndpointState::Disabled => "endpoint.disable",
            };
            let mut detail = json!({ "from": before.state, "to": state, "reason": reason });
            if let Some(until) = until {
                detail["until"] = json!(format_rfc3339(until));
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action,
                    target_ids: vec![id.to_string()],
                    detail,
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<EndpointState, StoreError>(before.state)
        })?;
        if state == EndpointState::Active && before != EndpointState::Active {
            self.note_change();
        }
        Ok((self.get_endpoint(id).await?, before))
    }

    /// Replaces the signing secret; the old one keeps signing until `grace_ms` from now.
    pub async fn rotate_secret(
        &self,
        id: &str,
        new_secret: &str,
        grace_ms: i64,
        actor: &Actor,
    ) -> Result<Endpoint> {
        let new_secret = Sealer::new(self.secrets_key(), id).seal_secret(new_secret)?;
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let rotated = sqlx::query(ROTATE)
                .bind(id)
                .bind(&new_secret)
                .bind(now.saturating_add(grace_ms))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if rotated.rows_affected() == 0 {
                return Err(StoreError::not_found("endpoint", id));
            }
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "endpoint.rotate_secret",
                    target_ids: vec![id.to_string()],
                    detail: json!({ "previous_secret_valid_for_ms": grace_ms }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_endpoint(id).await
    }

    /// Records that `actor` probed endpoint `endpoint_id`, and what the
    /// probe found (`detail`). A probe is audited, never an attempt.
    pub async fn audit_probe(
        &self,
        endpoint_id: &str,
        detail: serde_json::Value,
        actor: &Actor,
    ) -> Result<()> {
        self.audit_alone(AuditRecord {
            actor,
            action: "endpoint.probe",
            target_ids: vec![endpoint_id.to_string()],
            detail,
        })
        .await
    }

    /// Records that `actor` was shown secrets of these endpoints in plain
    /// (`fields` names which, as [`Endpoint::secret_fields`] does). Nothing
    /// else is written: seeing a secret changes no data, but who saw which
    /// endpoint's secrets is kept.
    pub async fn audit_secret_reveal(
        &self,
        endpoint_ids: &[String],
        fields: &[String],
        actor: &Actor,
    ) -> Result<()> {
        self.audit_alone(AuditRecord {
            actor,
            action: "endpoint.reveal_secrets",
            target_ids: endpoint_ids.to_vec(),
            detail: json!({ "endpoints": endpoint_ids.len(), "revealed": fields }),
        })
        .await
    }

    /// Writes `record` in a transaction of its own: for what changes no
    /// data but is kept (a look at secrets, a probe).
    async fn audit_alone(&self, record: AuditRecord<'_>) -> Result<()> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            write_audit(&mut *tx, now, record).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes an endpoint and its subscriptions; its unfinished deliveries
    /// are cancelled (their history stays). Returns how many were cancelled.
    pub async fn delete_endpoint(&self, id: &str, actor: &Actor) -> Result<u64> {
        on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let exists: Option<EndpointRow> = sqlx::query_as(sql.endpoint_for_delete)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let endpoint: Endpoint = exists
                .ok_or_else(|| StoreError::not_found("endpoint", id))?
                .try_into()?;
            let cancelled = remove_endpoint(&mut *tx, id, now).await?;
            write_audit(
                &mut *tx,
                now,
                AuditRecord {
                    actor,
                    action: "endpoint.delete",
                    target_ids: vec![id.to_string()],
                    detail: json!({ "name": endpoint.name, "tenant_id": endpoint.tenant_id, "cancelled_deliveries": cancelled }),
                }
            ).await?;
            tx.commit().await?;
            Ok(cancelled)
        })
    }
}

fn apply_patch(before: &Endpoint, patch: &EndpointPatch) -> Endpoint {
    let mut after = before.clone();
    if let Some(name) = &patch.name {
        after.name = name.clone();
    }
    if let Some(url) = &patch.url {
        after.url = url.clone();
    }
    if let Some(timeout_ms) = patch.timeout_ms {
        after.timeout_ms = timeout_ms;
    }
    if let Some(max_in_flight) = patch.max_in_flight {
        after.max_in_flight = max_in_flight;
    }
    if let Some(headers) = &patch.headers {
        after.headers = headers.clone();
    }
    if let Some(description) = &patch.description {
        after.description = description.clone();
    }
    if let Some(rate_limit) = patch.rate_limit {
        after.rate_limit = rate_limit;
    }
    after
}

/// The changed fields as `{field: {from, to}}` for the audit log, with the
/// URL's password and sensitive header values masked.
fn patch_detail(before: &Endpoint, after: &Endpoint) -> serde_json::Value {
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.insert(field.to_string(), json!({ "from": from, "to": to }));
        }
    };
    note("name", json!(before.name), json!(after.name));
    note(
        "timeout_ms",
        json!(before.timeout_ms),
        json!(after.timeout_ms),
    );
    note(
        "max_in_flight",
        json!(before.max_in_flight),
        json!(after.max_in_flight),
    );
    note(
        "description",
        json!(before.description),
        json!(after.description),
    );
    note(
        "rate_limit",
        json!(before.rate_limit),
        json!(after.rate_limit),
    );
    if before.url != after.url {
        let (from, to) = (
            mask_url_password(&before.url),
            mask_url_password(&after.url),
        );
        // Masked, a change of password alone would read as no change at all.
        let detail = match url_password(&before.url) != url_password(&after.url) {
            true => json!({ "from": from, "to": to, "password_changed": true }),
            false => json!({ "from": from, "to": to }),
        };
        changes.insert("url".to_string(), detail);
    }
    if before.headers != after.headers {
        // Which headers changed, by name, and the lists masked: a changed
        // token is recorded as changed, never with its value.
        let value_of = |list: &[(String, String)], name: &str| {
            list.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut changed: Vec<&str> = Vec::new();
        for (name, _) in before.headers.iter().chain(&after.headers) {
            if value_of(&before.headers, name) != value_of(&after.headers, name)
                && !changed.contains(&name.as_str())
            {
                changed.push(name);
            }
        }
        changes.insert(
            "headers".to_string(),
            json!({
                "from": mask_headers(&before.headers),
                "to": mask_headers(&after.headers),
                "changed": changed,
            }),
        );
    }
    serde_json::Value::Object(changes)
}

/// Resumes, in the caller's transaction at `now` (the database's clock),
/// every paused endpoint whose pause has ended, each audited as `actor`
/// (hookline itself) with the end it reached; other processes hear of it
/// when the transaction commits. Returns how many were resumed. A
/// dispatcher calls it on its reap cadence: when nothing is due it costs
/// one look-up in an index of the few pauses with an end. On Postgres
/// several dispatchers may run it at once: each endpoint is locked by one
/// of them (the others skip it), so it is resumed and audited once.
pub(crate) async fn end_due_pauses<C>(
    sql: &Dialect,
    conn: &mut C,
    now: i64,
    actor: &Actor,
) -> std::result::Result<u64, sqlx::Error>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    <C::Database as Database>::Arguments: IntoArguments<C::Database>,
    (String, i64): for<'r> FromRow<'r, <C::Database as Database>::Row>,
    (String,): for<'r> FromRow<'r, <C::Database as Database>::Row>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Option<String>: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> &'static str: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
{
    let due: Vec<(String, i64)> = sqlx::query_as(sql.due_pauses)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    let resumed: Vec<(String,)> = sqlx::query_as(sql.end_pauses)
        .bind(now)
        .bind(json_list(&ids))
        .fetch_all(&mut *conn)
        .await?;
    for (id,) in &resumed {
        let Some((_, until)) = due.iter().find(|(due_id, _)| due_id == id) else {
            continue;
        };
        let until = format_rfc3339(*until);
        write_audit(
            &mut *conn,
            now,
            AuditRecord {
                actor,
                action: "endpoint.resume",
                target_ids: vec![id.clone()],
                detail: json!({
                    "from": EndpointState::Paused,
                    "to": EndpointState::Active,
                    "reason": format!("automatic: paused until {until}"),
                    "until": until,
                }),
            },
        )
        .await?;
    }
    if !resumed.is_empty() {
        notify_change(sql, &mut *conn).await?;
    }
    Ok(resumed.len() as u64)
}
