//! Operator and producer actions: validate raw input (naming the field and
//! the reason), resolve names to ids, and call the store, which writes the
//! change and its audit row in one transaction. The CLI, the console and the
//! API all come through here, so a rule enforced here holds everywhere.

use std::time::Duration;

use serde_json::value::RawValue;

use crate::config::{Config, format_size};
use crate::dispatch::hand_off::HandOff;
use crate::dispatch::retry::RetryPolicy;
use crate::dispatch::sign::Secret;
use crate::model::{
    Actor, ApiKey, DeliveryState, Endpoint, EndpointState, IdKind, Subscription, Tenant, now_millis,
};
use crate::store::{
    EndpointPatch, NewApiKey, NewEndpoint, NewEvent, NewSubscription, Published, RetryFilter,
    RetryReport, Store, StoreError, SubscriptionPatch,
};
use crate::topic::{Topic, TopicPattern};

/// Why an action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input: names the field and says what is wrong. Nothing was written.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpsError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> OpsError {
        OpsError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// A store conflict (a duplicate name or pattern) is bad input in `field`.
fn conflict_in(field: &'static str) -> impl Fn(StoreError) -> OpsError {
    move |err| match err {
        StoreError::Conflict(reason) => OpsError::Invalid { field, reason },
        other => OpsError::Store(other),
    }
}

/// Result of an action.
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// Longest name of a tenant or endpoint.
const MAX_NAME: usize = 64;
/// Longest free-text description.
const MAX_DESCRIPTION: usize = 500;
/// Longest endpoint URL.
const MAX_URL: usize = 2048;
/// Longest idempotency key.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Range of per-endpoint timeouts.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(300));
/// Range of per-endpoint in-flight caps.
const MAX_IN_FLIGHT_RANGE: (u32, u32) = (1, 1000);
/// Headers hookline sets itself; an endpoint may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// An endpoint as an operator describes it (raw values, not yet validated).
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// Tenant id or name.
    pub tenant: String,
    pub name: String,
    pub url: String,
    /// `whsec_…`; generated when absent.
    pub secret: Option<String>,
    pub timeout: Option<Duration>,
    pub max_in_flight: Option<u32>,
    /// `Name: value` pairs.
    pub headers: Vec<String>,
    pub description: Option<String>,
}

/// Changes to an endpoint as an operator gives them.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub timeout: Option<Option<Duration>>,
    pub max_in_flight: Option<Option<u32>>,
    /// Replaces all custom headers.
    pub headers: Option<Vec<String>>,
    pub description: Option<Option<String>>,
}

/// An event as a producer gives it.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    /// Tenant id or name; exclusive with `broadcast`.
    pub tenant: Option<String>,
    pub broadcast: bool,
    pub topic: String,
    /// JSON text, kept byte for byte.
    pub payload: String,
    pub idempotency_key: Option<String>,
}

/// A bulk retry as an operator asks for it.
#[derive(Debug, Clone)]
pub struct BulkRetry {
    /// Endpoint id, `tenant/name` or name.
    pub endpoint: String,
    /// States to revive; default dead.
    pub states: Vec<DeliveryState>,
    /// Only deliveries created at or after this time (unix ms).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub dry_run: bool,
}

/// The actions, bound to a store, the settings and the operator doing them.
#[derive(Debug, Clone)]
pub struct Ops {
    store: Store,
    max_payload: u64,
    rotation_grace: Duration,
    retry_policy: RetryPolicy,
    actor: Actor,
}

impl Ops {
    /// Actions on `store` under `config`'s limits, done by `actor`.
    pub fn new(store: Store, config: &Config, actor: Actor) -> Ops {
        Ops {
            store,
            max_payload: config.limits.max_payload.0,
            rotation_grace: config.dispatch.secret_rotation_grace,
            retry_policy: RetryPolicy::from_config(&config.dispatch),
            actor,
        }
    }

    /// The store these actions write to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Who these actions are recorded as.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The same actions done by someone else (the API acts as each key).
    pub fn acting_as(&self, actor: Actor) -> Ops {
        Ops {
            actor,
            ..self.clone()
        }
    }

    /// The largest payload accepted (`limits.max_payload`), in bytes.
    pub fn max_payload(&self) -> u64 {
        self.max_payload
    }

    // --- API keys ------------------------------------------------------

    /// Creates an API key, for one tenant (id or name) or, without one, an
    /// admin key. Returns the key as listed and the secret key, which is
    /// shown this once and never stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<(ApiKey, String)> {
        validate_name("name", name)?;
        let tenant_id = match tenant {
            Some(key) => Some(self.tenant(key).await?.id),
            None => None,
        };
        let generated =
            crate::api_key::generate().map_err(|e| OpsError::invalid("key", e.to_string()))?;
        let new = NewApiKey {
            name: name.to_string(),
            key_hash: generated.hash,
            key_prefix: generated.prefix,
            tenant_id,
        };
        let key = self
            .store
            .create_api_key(&new, &self.actor)
            .await
            .map_err(conflict_in("name"))?;
        Ok((key, generated.key))
    }

    /// Revokes an API key by id or name; requests with it are refused from then on.
    pub async fn revoke_api_key(&self, key: &str) -> Result<ApiKey> {
        match self.store.revoke_api_key(key, &self.actor).await {
            Err(StoreError::NotFound { .. }) => Err(OpsError::invalid(
                "key",
                format!("no live API key {key:?} (see `hookline apikey list`)"),
            )),
            other => Ok(other?),
        }
    }

    // --- tenants -------------------------------------------------------

    /// Creates a tenant.
    pub async fn add_tenant(&self, name: &str) -> Result<Tenant> {
        validate_name("name", name)?;
        self.store
            .create_tenant(name, &self.actor)
            .await
            .map_err(conflict_in("name"))
    }

    /// Deletes a tenant, its endpoints and subscriptions; returns the tenant
    /// and how many unfinished deliveries were cancelled.
    pub async fn delete_tenant(&self, key: &str) -> Result<(Tenant, u64)> {
        let tenant = self.tenant(key).await?;
        let cancelled = self.store.delete_tenant(&tenant.id, &self.actor).await?;
        Ok((tenant, cancelled))
    }

    // --- endpoints -----------------------------------------------------

    /// Registers an endpoint, generating a secret when none is given.
    pub async fn add_endpoint(&self, input: &EndpointInput) -> Result<Endpoint> {
        let tenant = self.tenant(&input.tenant).await?;
        validate_name("name", &input.name)?;
        let secret = match &input.secret {
            Some(secret) => Secret::parse(secret)
                .map_err(|e| OpsError::invalid("secret", e.to_string()))?
                .to_string(),
            None => Secret::generate()
                .map_err(|e| OpsError::invalid("secret", e.to_string()))?
                .to_string(),
        };
        let new = NewEndpoint {
            tenant_id: tenant.id,
            name: input.name.clone(),
            url: validate_url(&input.url)?,
            secret,
            timeout_ms: input.timeout.map(validate_timeout).transpose()?,
            max_in_flight: input
                .max_in_flight
                .map(validate_max_in_flight)
                .transpose()?,
            headers: parse_headers(&input.headers)?,
            description: input
                .description
                .as_deref()
                .map(validate_description)
                .transpose()?,
        };
        self.store
            .create_endpoint(&new, &self.actor)
            .await
            .map_err(conflict_in("name"))
    }

    /// Finds a live tenant by id or name; an unknown one is bad input.
    pub async fn tenant(&self, key: &str) -> Result<Tenant> {
        match self.store.find_tenant(key).await {
            Err(StoreError::NotFound { .. }) => Err(OpsError::invalid(
                "tenant",
                format!("no tenant {key:?} (see `hookline tenant list`)"),
            )),
            other => Ok(other?),
        }
    }

    /// Finds a live endpoint by id, `tenant/name` or unique name; an unknown
    /// or ambiguous one is bad input.
    pub async fn endpoint(&self, key: &str) -> Result<Endpoint> {
        match self.store.find_endpoint(key, None).await {
            Err(StoreError::NotFound { .. }) => Err(OpsError::invalid(
                "endpoint",
                format!("no endpoint {key:?} (see `hookline endpoint list`)"),
            )),
            Err(StoreError::Conflict(reason)) => Err(OpsError::invalid("endpoint", reason)),
            other => Ok(other?),
        }
    }

    /// Changes an endpoint's settings.
    pub async fn update_endpoint(&self, key: &str, changes: &EndpointChanges) -> Result<Endpoint> {
        let patch = EndpointPatch {
            name: changes
                .name
                .as_deref()
                .map(|n| validate_name("name", n).map(|()| n.to_string()))
                .transpose()?,
            url: changes.url.as_deref().map(validate_url).transpose()?,
            timeout_ms: changes
                .timeout
                .map(|t| t.map(validate_timeout).transpose())
                .transpose()?,
            max_in_flight: changes
                .max_in_flight
                .map(|m| m.map(validate_max_in_flight).transpose())
                .transpose()?,
            headers: changes.headers.as_deref().map(parse_headers).transpose()?,
            description: changes
                .description
                .as_ref()
                .map(|d| d.as_deref().map(validate_description).transpose())
                .transpose()?,
        };
        if patch.is_empty() {
            return Err(OpsError::invalid("changes", "nothing to change was given"));
        }
        let endpoint = self.endpoint(key).await?;
        self.store
            .update_endpoint(&endpoint.id, &patch, &self.actor)
            .await
            .map_err(conflict_in("name"))
    }

    /// Holds an endpoint's deliveries until it is resumed. Returns the
    /// endpoint and whether it was already paused.
    pub async fn pause_endpoint(
        &self,
        key: &str,
        reason: Option<&str>,
    ) -> Result<(Endpoint, bool)> {
        let endpoint = self.endpoint(key).await?;
        let reason = reason.map(validate_description).transpose()?;
        let (endpoint, before) = self
            .store
            .set_endpoint_state(
                &endpoint.id,
                EndpointState::Paused,
                reason.as_deref(),
                &self.actor,
            )
            .await?;
        Ok((endpoint, before == EndpointState::Paused))
    }

    /// Makes a paused or disabled endpoint active; its held deliveries flow
    /// oldest first. Returns the endpoint and the state it left.
    pub async fn resume_endpoint(&self, key: &str) -> Result<(Endpoint, EndpointState)> {
        let endpoint = self.endpoint(key).await?;
        let (endpoint, before) = self
            .store
            .set_endpoint_state(&endpoint.id, EndpointState::Active, None, &self.actor)
            .await?;
        Ok((endpoint, before))
    }

    /// Deletes an endpoint; returns it and how many deliveries were cancelled.
    pub async fn delete_endpoint(&self, key: &str) -> Result<(Endpoint, u64)> {
        let endpoint = self.endpoint(key).await?;
        let cancelled = self
            .store
            .delete_endpoint(&endpoint.id, &self.actor)
            .await?;
        Ok((endpoint, cancelled))
    }

    /// Gives an endpoint a new secret (given or generated); the old one keeps
    /// signing for `dispatch.secret_rotation_grace`.
    pub async fn rotate_secret(&self, key: &str, new_secret: Option<&str>) -> Result<Endpoint> {
        let endpoint = self.endpoint(key).await?;
        let secret = match new_secret {
            Some(secret) => {
                Secret::parse(secret).map_err(|e| OpsError::invalid("secret", e.to_string()))?
            }
            None => Secret::generate().map_err(|e| OpsError::invalid("secret", e.to_string()))?,
        };
        let grace_ms = i64::try_from(self.rotation_grace.as_millis()).unwrap_or(i64::MAX);
        Ok(self
            .store
            .rotate_secret(&endpoint.id, &secret.to_string(), grace_ms, &self.actor)
            .await?)
    }

    // --- subscriptions -------------------------------------------------

    /// Subscribes an endpoint to a topic pattern.
    pub async fn add_subscription(
        &self,
        endpoint: &str,
        pattern: &str,
        description: Option<&str>,
    ) -> Result<Subscription> {
        let pattern = validate_pattern(pattern)?;
        let description = description.map(validate_description).transpose()?;
        let endpoint = self.endpoint(endpoint).await?;
        let new = NewSubscription {
            endpoint_id: endpoint.id,
            pattern,
            description,
        };
        self.store
            .create_subscription(&new, &self.actor)
            .await
            .map_err(conflict_in("topic"))
    }

    /// Changes a subscription's pattern and/or description.
    pub async fn update_subscription(
        &self,
        id: &str,
        pattern: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<Subscription> {
        let patch = SubscriptionPatch {
            pattern: pattern.map(validate_pattern).transpose()?,
            description: description
                .map(|d| d.map(validate_description).transpose())
                .transpose()?,
        };
        if patch.pattern.is_none() && patch.description.is_none() {
            return Err(OpsError::invalid("changes", "nothing to change was given"));
        }
        self.store
            .update_subscription(id, &patch, &self.actor)
            .await
            .map_err(conflict_in("topic"))
    }

    /// Removes a subscription.
    pub async fn delete_subscription(&self, id: &str) -> Result<Subscription> {
        Ok(self.store.delete_subscription(id, &self.actor).await?)
    }

    // --- events and deliveries -----------------------------------------

    /// Validates and publishes one event.
    pub async fn publish(&self, input: &EventInput) -> Result<Published> {
        let event = self.validate_event(input).await?;
        let mut published = self
            .store
            .publish(
                std::slice::from_ref(&event),
                self.retry_policy.first_delay_ms(),
            )
            .await?;
        published
            .pop()
            .ok_or_else(|| OpsError::Store(StoreError::Conflict("publish returned nothing".into())))
    }

    /// Publishes events already checked by [`Ops::validate_event`] in one
    /// transaction (the API's group commit); results are in input order.
    /// With a dispatcher in this process, what it has room for of the new
    /// deliveries is handed straight to it (see [`crate::dispatch::hand_off`]).
    pub async fn publish_validated(
        &self,
        events: &[NewEvent],
        hand_off: Option<&HandOff>,
    ) -> Result<Vec<Published>> {
        let first_delay_ms = self.retry_policy.first_delay_ms();
        let Some(hand_off) = hand_off else {
            return Ok(self.store.publish(events, first_delay_ms).await?);
        };
        let reservation = hand_off.reserve();
        let (published, claimed) = self
            .store
            .publish_handing_off(events, first_delay_ms, Some(&reservation.request()))
            .await?;
        if let Err(returned) = reservation.deliver(claimed) {
            // The dispatcher stopped after the reservation: the deliveries
            // are committed but leased to it, so give them back to the queue.
            let ids: Vec<String> = returned.deliveries.into_iter().map(|d| d.id).collect();
            if let Err(err) = self.store.release(hand_off.owner(), &ids).await {
                // Not lost: their leases expire and any dispatcher reaps them.
                tracing::warn!(%err, deliveries = ids.len(), "could not release handed-off deliveries");
            }
        }
        Ok(published)
    }

    /// Validates one event for publishing: tenant or broadcast, topic,
    /// payload JSON and size, idempotency key.
    pub async fn validate_event(&self, input: &EventInput) -> Result<NewEvent> {
        let tenant_id = match (&input.tenant, input.broadcast) {
            (Some(_), true) => {
                return Err(OpsError::invalid(
                    "tenant",
                    "give a tenant or broadcast, not both",
                ));
            }
            (None, false) => {
                return Err(OpsError::invalid(
                    "tenant",
                    "an event is published for one tenant (--tenant T) or to every tenant (--broadcast)",
                ));
            }
            (Some(key), false) => Some(self.tenant(key).await?.id),
            (None, true) => None,
        };
        self.validate_event_for(tenant_id, input)
    }

    /// [`Ops::validate_event`] for a caller that has already resolved the
    /// audience: `tenant_id` of a live tenant, or `None` to broadcast
    /// (`input.tenant` and `input.broadcast` are not looked at again).
    pub fn validate_event_for(
        &self,
        tenant_id: Option<String>,
        input: &EventInput,
    ) -> Result<NewEvent> {
        let topic =
            Topic::parse(&input.topic).map_err(|e| OpsError::invalid("topic", e.to_string()))?;
        validate_payload(&input.payload, self.max_payload)?;
        if let Some(key) = &input.idempotency_key {
            validate_idempotency_key(key)?;
        }
        Ok(NewEvent {
            tenant_id,
            topic: topic.as_str().to_string(),
            payload: input.payload.clone(),
            idempotency_key: input.idempotency_key.clone(),
        })
    }

    /// Starts a fresh schedule for each of the given deliveries.
    pub async fn retry(&self, delivery_ids: &[String]) -> Result<RetryReport> {
        if delivery_ids.is_empty() {
            return Err(OpsError::invalid("ids", "give at least one delivery id"));
        }
        for id in delivery_ids {
            if IdKind::of(id) != Some(IdKind::Delivery) {
                return Err(OpsError::invalid(
                    "ids",
                    format!("{id:?} is not a delivery id (dlv_…)"),
                ));
            }
        }
        Ok(self
            .store
            .retry_deliveries(
                delivery_ids,
                self.retry_policy.first_delay_ms(),
                &self.actor,
            )
            .await?)
    }

    /// Counts or revives an endpoint's deliveries in the given states.
    pub async fn retry_bulk(&self, request: &BulkRetry) -> Result<(Endpoint, u64)> {
        self.retry_bulk_chunk(request, None).await
    }

    /// [`Ops::retry_bulk`] for at most `limit` deliveries (oldest first), so
    /// a long bulk retry can run in steps and report progress; call again
    /// until it returns fewer than `limit`.
    pub async fn retry_bulk_chunk(
        &self,
        request: &BulkRetry,
        limit: Option<u64>,
    ) -> Result<(Endpoint, u64)> {
        let states = if request.states.is_empty() {
            vec![DeliveryState::Dead]
        } else {
            request.states.clone()
        };
        if let Some(state) = states.iter().find(|s| !s.is_retryable()) {
            return Err(OpsError::invalid(
                "state",
                format!("{state} deliveries cannot be retried (only dead, scheduled, succeeded)"),
            ));
        }
        if let (Some(since), Some(until)) = (request.since, request.until)
            && since >= until
        {
            return Err(OpsError::invalid("until", "must be later than since"));
        }
        let endpoint = self.endpoint(&request.endpoint).await?;
        let filter = RetryFilter {
            endpoint_id: endpoint.id.clone(),
            states,
            since: request.since,
            until: request.until,
        };
        let count = self
            .store
            .retry_matching_limited(
                &filter,
                request.dry_run,
                self.retry_policy.first_delay_ms(),
                &self.actor,
                limit,
            )
            .await?;
        Ok((endpoint, count))
    }
}

/// Names of tenants and endpoints: short, no spaces or slashes (`tenant/name`
/// addresses an endpoint), and never shaped like an id.
pub fn validate_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(OpsError::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(OpsError::invalid(
            field,
            format!("longer than {MAX_NAME} characters"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(OpsError::invalid(
            field,
            format!("{name:?} contains {bad:?}; use letters, digits, '-', '_' and '.'"),
        ));
    }
    if IdKind::of(name).is_some() {
        return Err(OpsError::invalid(
            field,
            format!("{name:?} looks like an id; pick a name"),
        ));
    }
    Ok(())
}

/// An absolute http(s) URL with a host.
pub fn validate_url(url: &str) -> Result<String> {
    if url.len() > MAX_URL {
        return Err(OpsError::invalid(
            "url",
            format!("longer than {MAX_URL} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| OpsError::invalid("url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(OpsError::invalid(
            "url",
            format!(
                "{url:?} is not an HTTP(S) URL (scheme {:?})",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(OpsError::invalid("url", format!("{url:?} has no host")));
    }
    Ok(url.to_string())
}

fn validate_timeout(timeout: Duration) -> Result<i64> {
    let (low, high) = TIMEOUT_RANGE;
    if timeout < low || timeout > high {
        return Err(OpsError::invalid(
            "timeout",
            format!("must be between {low:?} and {high:?}, got {timeout:?}"),
        ));
    }
    Ok(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
}

fn validate_max_in_flight(max: u32) -> Result<i64> {
    let (low, high) = MAX_IN_FLIGHT_RANGE;
    if max < low || max > high {
        return Err(OpsError::invalid(
            "max_in_flight",
            format!("must be between {low} and {high}, got {max}"),
        ));
    }
    Ok(i64::from(max))
}

fn validate_description(text: &str) -> Result<String> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(OpsError::invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text.to_string())
}

fn validate_pattern(pattern: &str) -> Result<String> {
    TopicPattern::parse(pattern)
        .map(|p| p.as_str().to_string())
        .map_err(|e| OpsError::invalid("topic", e.to_string()))
}

/// Parses `Name: value` headers, refusing ones hookline sets itself.
pub fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|header| {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                OpsError::invalid("header", format!("{header:?} is not NAME:VALUE"))
            })?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(OpsError::invalid(
                    "header",
                    format!("{name:?} is not a valid header name"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(OpsError::invalid(
                    "header",
                    format!("the value of {name:?} has characters a header cannot carry"),
                ));
            }
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(OpsError::invalid(
                    "header",
                    format!("{name:?} is set by hookline and cannot be overridden"),
                ));
            }
            Ok((name, value))
        })
        .collect()
}

/// A payload must be one JSON value within the size limit. It is checked,
/// never re-serialised: the receiver gets exactly these bytes.
pub fn validate_payload(payload: &str, max_payload: u64) -> Result<()> {
    if payload.len() as u64 > max_payload {
        return Err(OpsError::invalid(
            "payload",
            format!(
                "{} bytes is over the limit of {} (limits.max_payload)",
                payload.len(),
                format_size(crate::config::ByteSize(max_payload))
            ),
        ));
    }
    serde_json::from_str::<&RawValue>(payload)
        .map_err(|e| OpsError::invalid("payload", format!("not valid JSON: {e}")))?;
    Ok(())
}

fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(OpsError::invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(OpsError::invalid(
            "idempotency_key",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// "2h" ago as unix ms, for `--since 2h`; an RFC 3339 time is taken as is.
pub fn parse_since(field: &'static str, text: &str) -> Result<i64> {
    if let Some(at) = crate::model::parse_rfc3339(text) {
        return Ok(at);
    }
    let ago = crate::config::parse_duration(text).map_err(|e| {
        OpsError::invalid(
            field,
            format!("{e}; or give an RFC 3339 time like 2026-11-23T08:00:00Z"),
        )
    })?;
    Ok(now_millis() - i64::try_from(ago.as_millis()).unwrap_or(i64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http() {
        assert!(validate_url("https://example.com/hook").is_ok());
        let err = validate_url("ftp://example.com/").unwrap_err().to_string();
        assert!(err.starts_with("url: ") && err.contains("HTTP(S)"), "{err}");
        assert!(validate_url("not a url").is_err());
    }

    #[test]
    fn payloads_are_checked_not_rewritten() {
        assert!(validate_payload(r#"{"b":1, "a":1.0e2}"#, 1024).is_ok());
        let err = validate_payload("{nope", 1024).unwrap_err().to_string();
        assert!(err.starts_with("payload: not valid JSON"), "{err}");
        let err = validate_payload("[1,2,3]", 3).unwrap_err().to_string();
        assert!(err.contains("over the limit"), "{err}");
        assert!(validate_payload("{} trailing", 1024).is_err());
    }

    #[test]
    fn headers_parse_and_reserved_ones_are_refused() {
        let parsed = parse_headers(&["X-Team: payments".to_string()]).unwrap();
        assert_eq!(parsed, [("x-team".to_string(), "payments".to_string())]);
        assert!(parse_headers(&["webhook-id: x".to_string()]).is_err());
        assert!(parse_headers(&["no-colon".to_string()]).is_err());
    }

    #[test]
    fn names_are_plain_and_never_ids() {
        assert!(validate_name("name", "acme-prod").is_ok());
        assert!(validate_name("name", "acme/prod").is_err());
        assert!(validate_name("name", "").is_err());
        let id = crate::model::new_id(IdKind::Endpoint);
        assert!(validate_name("name", &id).is_err());
    }
}
