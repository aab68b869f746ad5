//! Operator and producer actions: validate raw input (naming the field and
//! the reason), resolve names to ids, and call the store, which writes the
//! change and its audit row in one transaction. The CLI, the console and the
//! API all come through here, so a rule enforced here holds everywhere.
//! Every write goes through [`Ops`](crate::ops::Ops); screens and listings
//! read through the read-only [`Reads`](crate::store::Reads) it hands out.

mod bulk;
mod expiry;
mod publish;
mod until;
mod validate;

use std::time::Duration;

use crate::config::Config;
/// What a tenant is told about a destination the outbound guard refused.
pub use crate::dispatch::guard::TENANT_MESSAGE as BLOCKED_DESTINATION;
use crate::dispatch::guard::{self, Guard};
use crate::dispatch::hand_off::HandOff;
pub use crate::dispatch::probe::{ProbeReport, ProbeStep};
use crate::dispatch::retry::RetryPolicy;
use crate::model::{
    Actor, ApiKey, BreakerMode, DeliveryState, Endpoint, EndpointState, IdKind, Millis,
    Subscription, Tenant, now_millis,
};
use crate::redact;
use crate::sign::Secret;
use crate::store::{
    Breaker, BreakerTransition, EndpointPatch, ExpungeReport, NewApiKey, NewEndpoint,
    NewSubscription, Reads, RetryFilter, RetryReport, Store, StoreError, SubscriptionPatch,
};
pub use bulk::{PreviewEndpoint, RetryPreview, retry_states};
pub use expiry::{parse_expires, parse_expires_at};
pub use publish::{Committers, EventInput, Payload, PublishStats, Publisher};
pub use until::{
    from_now, local_time, local_time_short, local_time_short_from, parse_until, parse_until_from,
    parse_until_rfc3339,
};
pub use validate::{
    MAX_DESCRIPTION, MAX_IDEMPOTENCY_KEY, MAX_IN_FLIGHT_RANGE, MAX_NAME, MAX_URL, RATE_LIMIT_RANGE,
    RESERVED_HEADERS, TIMEOUT_RANGE, parse_before, parse_headers, parse_rate_limit, parse_since,
    validate_description, validate_idempotency_key, validate_max_in_flight, validate_name,
    validate_pattern, validate_payload, validate_rate_limit, validate_reason, validate_timeout,
    validate_url,
};

/// Why an action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input: names the field and says what is wrong. Nothing was written.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Bad input over its size limit. Nothing was written.
    #[error("{field}: {reason}")]
    TooLarge { field: &'static str, reason: String },
    /// Well-formed input that conflicts with how things are now: a name
    /// taken, a masked value with nothing behind it to keep, a time that
    /// has passed. Nothing was written.
    #[error("{field}: {reason}")]
    Conflict { field: &'static str, reason: String },
    /// Well-formed input that this installation's policy refuses (the
    /// outbound network guard). Nothing was written.
    #[error("{field}: {reason}")]
    Blocked { field: &'static str, reason: String },
    /// The input names something that does not exist, or that the caller
    /// may not see (which reads the same). Nothing was written.
    #[error("{field}: no {kind} {key:?}")]
    NotFound {
        field: &'static str,
        kind: &'static str,
        key: String,
    },
    /// The caller may not do this at all, whatever the input. Nothing was written.
    #[error("{0}")]
    Forbidden(String),
    /// Publishing has stopped (the process is shutting down). Nothing was written.
    #[error("{0}")]
    Unavailable(String),
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

    fn conflict(field: &'static str, reason: impl Into<String>) -> OpsError {
        OpsError::Conflict {
            field,
            reason: reason.into(),
        }
    }

    fn not_found(field: &'static str, kind: &'static str, key: &str) -> OpsError {
        OpsError::NotFound {
            field,
            kind,
            key: key.to_string(),
        }
    }

    /// The field at fault, for the refusals of bad input.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            OpsError::Invalid { field, .. }
            | OpsError::TooLarge { field, .. }
            | OpsError::Conflict { field, .. }
            | OpsError::Blocked { field, .. }
            | OpsError::NotFound { field, .. } => Some(field),
            OpsError::Forbidden(_) | OpsError::Unavailable(_) | OpsError::Store(_) => None,
        }
    }

    /// For a refusal of bad input: the field at fault and what is wrong with it.
    pub fn refusal(&self) -> Option<(&'static str, String)> {
        match self {
            OpsError::Invalid { field, reason }
            | OpsError::TooLarge { field, reason }
            | OpsError::Conflict { field, reason }
            | OpsError::Blocked { field, reason } => Some((field, reason.clone())),
            OpsError::NotFound { field, kind, key } => Some((field, format!("no {kind} {key:?}"))),
            OpsError::Forbidden(_) | OpsError::Unavailable(_) | OpsError::Store(_) => None,
        }
    }

    /// Whether the request itself was refused (bad input, or not allowed),
    /// as opposed to the system failing: retrying it unchanged cannot help.
    pub fn is_refusal(&self) -> bool {
        self.field().is_some()
            || matches!(
                self,
                OpsError::Forbidden(_) | OpsError::Store(StoreError::Conflict(_))
            )
    }
}

/// A store conflict (a duplicate name or pattern) is a conflict in `field`.
fn conflict_in(field: &'static str) -> impl Fn(StoreError) -> OpsError {
    move |err| match err {
        StoreError::Conflict(reason) => OpsError::Conflict { field, reason },
        other => OpsError::Store(other),
    }
}

/// `url` as given, or, when its password is the mask (`****`), with the
/// password of `current` in its place.
fn keep_masked_password(url: &str, current: &str) -> Result<String> {
    if redact::url_password(url) != Some(redact::MASK) {
        return Ok(url.to_string());
    }
    match redact::url_password(current) {
        Some(password) => Ok(redact::replace_url_password(url, password)),
        None => Err(OpsError::conflict(
            "url",
            format!(
                "the password {} is how hookline shows a hidden password, and the endpoint has none to keep: give the real one",
                redact::MASK
            ),
        )),
    }
}

/// Sensitive headers given as their mask (`****`, `Bearer ****`) take the
/// current value of the header of that name.
fn keep_masked_headers(
    headers: &mut [(String, String)],
    current: &[(String, String)],
) -> Result<()> {
    for (name, value) in headers.iter_mut() {
        if !(redact::is_sensitive_header(name) && redact::is_masked_header_value(value)) {
            continue;
        }
        match current.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, kept)) => value.clone_from(kept),
            None => {
                return Err(OpsError::conflict(
                    "header",
                    format!(
                        "the value of {name:?} is how hookline shows a hidden value, and the endpoint has no {name:?} header to keep: give the real one"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Result of an action.
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// Why a burst alone is refused.
const NO_RATE: &str = "a burst needs a rate limit: give rate_limit too";
/// Why a burst alone is refused for an endpoint without a rate limit.
const NO_RATE_TO_KEEP: &str =
    "a burst needs a rate limit and the endpoint has none: give rate_limit too";

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
    /// Requests a second across every dispatcher.
    pub rate_limit: Option<u32>,
    /// Its burst; default a tenth of the rate (at least 1).
    pub rate_limit_burst: Option<u32>,
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
    /// `Some(None)` removes the limit.
    pub rate_limit: Option<Option<u32>>,
    /// The burst alone keeps the rate the endpoint has.
    pub rate_limit_burst: Option<u32>,
}

/// A probe's per-step limit when the endpoint sets no timeout.
const PROBE_TIMEOUT_MS: i64 = 10_000;
/// How much of a probe's answer is read.
const PROBE_BODY_BYTES: u64 = 64 * 1024;

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
    /// The one tenant the actor may act for (a tenant API key); `None`: any.
    scope: Option<String>,
    /// The dispatcher in this process, which publishes hand fresh deliveries to.
    hand_off: Option<HandOff>,
    /// Judges endpoint URLs as the dispatcher will (`[network]`).
    guard: Guard,
    /// How long history is kept (`[retention]`).
    retention: crate::config::RetentionConfig,
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
            scope: None,
            hand_off: None,
            guard: Guard::new(&config.network),
            retention: config.retention.clone(),
        }
    }

    /// How long history is kept (`[retention]`).
    pub fn retention(&self) -> &crate::config::RetentionConfig {
        &self.retention
    }

    /// Publishes through these actions hand what the dispatcher running in
    /// this process has room for straight to it (see
    /// [`crate::dispatch::hand_off`]), instead of leaving it for its next claim.
    pub fn handing_off_to(self, hand_off: HandOff) -> Ops {
        Ops {
            hand_off: Some(hand_off),
            ..self
        }
    }

    /// The same actions limited to one tenant (`Some(tenant id)`): other
    /// tenants read as if they did not exist, and broadcasts are forbidden.
    pub fn limited_to(self, scope: Option<String>) -> Ops {
        Ops { scope, ..self }
    }

    /// The read side of the store, for screens and listings.
    pub fn reads(&self) -> &Reads {
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
    /// admin key, refused from `expires_at` on (never with `None`). Returns
    /// the key as listed and the secret key, which is shown this once and
    /// never stored. A name in use by a live key is a store conflict.
    pub async fn create_api_key(
        &self,
        name: &str,
        tenant: Option<&str>,
        expires_at: Option<Millis>,
    ) -> Result<(ApiKey, String)> {
        self.require_unscoped("managing API keys")?;
        validate_name("name", name)?;
        if let Some(at) = expires_at {
            expiry::check_expiry("expires_at", at, now_millis())?;
        }
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
            expires_at,
        };
        let key = self.store.create_api_key(&new, &self.actor).await?;
        Ok((key, generated.key))
    }

    /// Revokes an API key by id or name; requests with it are refused from
    /// then on. Returns it, revoked.
    pub async fn revoke_api_key(&self, key: &str) -> Result<ApiKey> {
        self.require_unscoped("managing API keys")?;
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
            url: self.reachable_url(&input.url).await?,
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
            rate_limit: match (input.rate_limit, input.rate_limit_burst) {
                (Some(rate), burst) => Some(validate_rate_limit(rate, burst)?),
                (None, Some(_)) => return Err(OpsError::invalid("rate_limit_burst", NO_RATE)),
                (None, None) => None,
            },
        };
        self.store
            .create_endpoint(&new, &self.actor)
            .await
            .map_err(conflict_in("name"))
    }

    /// Finds a live tenant by id or name; an unknown one, or one outside
    /// the actor's scope, is bad input.
    pub async fn tenant(&self, key: &str) -> Result<Tenant> {
        match self.store.find_tenant(key).await {
            Ok(tenant) if self.may_act_for(&tenant.id) => Ok(tenant),
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                Err(OpsError::not_found("tenant", "tenant", key))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Finds a live endpoint by id, `tenant/name` or unique name; an unknown
    /// or ambiguous one is bad input.
    pub async fn endpoint(&self, key: &str) -> Result<Endpoint> {
        match self.store.find_endpoint(key, None).await {
            Ok(endpoint) if self.may_act_for(&endpoint.tenant_id) => Ok(endpoint),
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                Err(OpsError::not_found("endpoint", "endpoint", key))
            }
            Err(StoreError::Conflict(reason)) => Err(OpsError::invalid("endpoint", reason)),
            Err(err) => Err(err.into()),
        }
    }

    /// A valid endpoint URL that the outbound guard would let deliveries
    /// reach. A tenant is not told which address or rule blocked it (that
    /// would map the operator's network for them); operators are.
    async fn reachable_url(&self, url: &str) -> Result<String> {
        let url = validate_url(url)?;
        match self.guard.check_url(&url).await {
            Ok(()) => Ok(url),
            Err(_) if self.scope.is_some() => Err(OpsError::Blocked {
                field: "url",
                reason: guard::TENANT_MESSAGE.to_string(),
            }),
            Err(blocked) => Err(OpsError::Blocked {
                field: "url",
                reason: format!("{blocked}; network.allow lifts the block"),
            }),
        }
    }

    /// An endpoint URL's host is an IP literal the outbound guard blocks:
    /// judged without a lookup, for screens that must not wait on DNS.
    pub fn literal_blocked(&self, url: &str) -> Option<String> {
        self.guard
            .literal_blocked(url)
            .map(|blocked| blocked.to_string())
    }

    /// Refuses `what` to actions limited to one tenant: only an admin may
    /// do it (a tenant key that could make keys could make an admin one).
    fn require_unscoped(&self, what: &str) -> Result<()> {
        match self.scope {
            None => Ok(()),
            Some(_) => Err(OpsError::Forbidden(format!(
                "{what} needs an admin key; this key is limited to one tenant"
            ))),
        }
    }

    /// Whether the actor's scope takes in `tenant_id`.
    fn may_act_for(&self, tenant_id: &str) -> bool {
        self.scope.as_ref().is_none_or(|own| own == tenant_id)
    }

    /// Changes an endpoint's settings. A URL password or sensitive header
    /// value given as its mask (`****`, `Bearer ****`: what listings show)
    /// keeps the current value, so an edit of what was shown never
    /// overwrites a secret with its mask.
    pub async fn update_endpoint(&self, key: &str, changes: &EndpointChanges) -> Result<Endpoint> {
        let mut patch = EndpointPatch {
            name: changes
                .name
                .as_deref()
                .map(|n| validate_name("name", n).map(|()| n.to_string()))
                .transpose()?,
            url: match changes.url.as_deref() {
                Some(url) => Some(self.reachable_url(url).await?),
                None => None,
            },
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
            rate_limit: None,
        };
        let burst_only = changes.rate_limit.is_none() && changes.rate_limit_burst.is_some();
        if patch.is_empty() && changes.rate_limit.is_none() && !burst_only {
            return Err(OpsError::invalid("changes", "nothing to change was given"));
        }
        let endpoint = self.endpoint(key).await?;
        patch.rate_limit = match (changes.rate_limit, changes.rate_limit_burst) {
            (Some(Some(rate)), burst) => Some(Some(validate_rate_limit(rate, burst)?)),
            (Some(None), Some(_)) => {
                return Err(OpsError::invalid("rate_limit_burst", NO_RATE));
            }
            (Some(None), None) => Some(None),
            (None, Some(burst)) => {
                let Some(limit) = endpoint.rate_limit else {
                    return Err(OpsError::conflict("rate_limit_burst", NO_RATE_TO_KEEP));
                };
                let rate = u32::try_from(limit.per_second).unwrap_or(u32::MAX);
                Some(Some(validate_rate_limit(rate, Some(burst))?))
            }
            (None, None) => None,
        };
        if let Some(url) = &mut patch.url {
            *url = keep_masked_password(url, &endpoint.url)?;
        }
        if let Some(headers) = &mut patch.headers {
            keep_masked_headers(headers, &endpoint.headers)?;
        }
        self.store
            .update_endpoint(&endpoint.id, &patch, &self.actor)
            .await
            .map_err(conflict_in("name"))
    }

    /// Holds an endpoint's deliveries until it is resumed, or until `until`
    /// (unix ms, in the future): then a dispatcher resumes it. Returns the
    /// endpoint and whether it was already paused (then a reason or an end
    /// given replaces the one it had; the rest stays as it was).
    pub async fn pause_endpoint(
        &self,
        key: &str,
        reason: Option<&str>,
        until: Option<Millis>,
    ) -> Result<(Endpoint, bool)> {
        let reason = reason.map(validate_reason).transpose()?;
        if let Some(until) = until {
            until::check_future(until, now_millis())?;
        }
        let endpoint = self.endpoint(key).await?;
        let (endpoint, before) = self
            .store
            .pause_endpoint(&endpoint.id, reason.as_deref(), until, &self.actor)
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

    /// The circuit breaker of `endpoint` (already found) as it is now,
    /// without its transitions; another tenant's reads as not found.
    pub async fn breaker_of(&self, endpoint: &Endpoint) -> Result<Breaker> {
        if !self.may_act_for(&endpoint.tenant_id) {
            return Err(OpsError::not_found("endpoint", "endpoint", &endpoint.id));
        }
        Ok(self.store.breaker(&endpoint.id).await?)
    }

    /// The circuit breakers of the endpoints that ever failed, by endpoint
    /// id; any other endpoint's is closed and counting.
    pub async fn breakers_by_endpoint(&self) -> Result<std::collections::HashMap<String, Breaker>> {
        Ok(self
            .store
            .breakers_that_counted()
            .await?
            .into_iter()
            .map(|b| (b.endpoint_id.clone(), b))
            .collect())
    }

    /// Endpoint `key`'s circuit breaker and its latest `limit` transitions,
    /// newest first.
    pub async fn breaker(
        &self,
        key: &str,
        limit: i64,
    ) -> Result<(Endpoint, Breaker, Vec<BreakerTransition>)> {
        let endpoint = self.endpoint(key).await?;
        let breaker = self.store.breaker(&endpoint.id).await?;
        let transitions = self.store.breaker_transitions(&endpoint.id, limit).await?;
        Ok((endpoint, breaker, transitions))
    }

    /// Forces endpoint `key`'s breaker open or closed, or hands it back to
    /// its outcomes (`auto`); audited.
    pub async fn set_breaker(&self, key: &str, mode: BreakerMode) -> Result<(Endpoint, Breaker)> {
        let endpoint = self.endpoint(key).await?;
        let breaker = self
            .store
            .set_breaker(&endpoint.id, mode, &self.actor)
            .await?;
        Ok((endpoint, breaker))
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

    /// An endpoint with its secrets in plain (signing secrets, URL
    /// password, header values), for an operator who asked to see them:
    /// the audit log records who saw which endpoint's secrets.
    pub async fn reveal_secrets(&self, key: &str) -> Result<Endpoint> {
        let endpoint = self.endpoint(key).await?;
        self.audit_reveal(std::slice::from_ref(&endpoint)).await?;
        Ok(endpoint)
    }

    /// An endpoint's signing secrets in plain (the current one, and the
    /// previous one while it still signs), audited as
    /// [`Ops::reveal_secrets`] is; its URL password and headers are not
    /// part of it. Returns the endpoint as stored.
    pub async fn reveal_signing_secrets(&self, key: &str) -> Result<Endpoint> {
        let endpoint = self.endpoint(key).await?;
        let mut fields = vec!["secret".to_string()];
        let still_signs = endpoint
            .previous_secret_expires_at
            .is_some_and(|at| at > crate::model::now_millis());
        if endpoint.previous_secret.is_some() && still_signs {
            fields.push("previous_secret".to_string());
        }
        self.store
            .audit_secret_reveal(std::slice::from_ref(&endpoint.id), &fields, &self.actor)
            .await?;
        Ok(endpoint)
    }

    /// Records that the actor is shown these endpoints (already read, e.g.
    /// a listing) with their secrets in plain: one audit row naming them all.
    pub async fn audit_reveal(&self, endpoints: &[Endpoint]) -> Result<()> {
        if endpoints.is_empty() {
            return Ok(());
        }
        if let Some(other) = endpoints.iter().find(|e| !self.may_act_for(&e.tenant_id)) {
            return Err(OpsError::not_found("endpoint", "endpoint", &other.id));
        }
        let ids: Vec<String> = endpoints.iter().map(|e| e.id.clone()).collect();
        let mut fields: Vec<String> = Vec::new();
        for field in endpoints.iter().flat_map(Endpoint::secret_fields) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        self.store
            .audit_secret_reveal(&ids, &fields, &self.actor)
            .await?;
        Ok(())
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

    /// Removes the payloads of events `ids` now, with the response bodies
    /// of their attempts, and cancels their unfinished deliveries (see
    /// [`Store::expunge_events`]). A tenant's key reaches its own events
    /// only (broadcasts belong to no tenant). All or nothing: an unknown id
    /// changes nothing.
    pub async fn expunge_events(&self, ids: &[String]) -> Result<ExpungeReport> {
        if ids.is_empty() {
            return Err(OpsError::invalid(
                "ids",
                "give at least one event id (msg_…)",
            ));
        }
        if let Some(bad) = ids.iter().find(|id| IdKind::of(id) != Some(IdKind::Event)) {
            return Err(OpsError::invalid(
                "ids",
                format!("{bad:?} is not an event id (msg_…)"),
            ));
        }
        if let Some(scope) = &self.scope {
            for id in ids {
                let event = self.store.get_event(id).await?;
                if event.tenant_id.as_deref() != Some(scope.as_str()) {
                    return Err(OpsError::not_found("id", "event", id));
                }
            }
        }
        Ok(self.store.expunge_events(ids, &self.actor).await?)
    }

    /// Removes the payloads of every event of tenant `key` created before
    /// `before` (an RFC 3339 time, a date such as 2026-01-31 meaning its
    /// start in UTC, or an age such as 30d), as [`Ops::expunge_events`]
    /// does; broadcasts are left and counted.
    pub async fn expunge_tenant(&self, key: &str, before: &str) -> Result<(Tenant, ExpungeReport)> {
        let before = parse_before(before)?;
        let tenant = self.tenant(key).await?;
        let report = self
            .store
            .expunge_tenant(&tenant.id, before, &self.actor)
            .await?;
        Ok((tenant, report))
    }

    /// Starts a fresh schedule for each of the given deliveries.
    pub async fn retry(&self, delivery_ids: &[String]) -> Result<RetryReport> {
        check_delivery_ids(delivery_ids)?;
        Ok(self
            .store
            .retry_deliveries(
                delivery_ids,
                self.retry_policy.first_delay_ms(),
                &self.actor,
            )
            .await?)
    }

    /// [`Ops::retry`] for the deliveries not delivered when it runs: one
    /// delivered since the operator chose it is skipped ("already
    /// delivered"), so retrying a list that was read a while ago never
    /// sends a delivered webhook again.
    pub async fn retry_undelivered(&self, delivery_ids: &[String]) -> Result<RetryReport> {
        check_delivery_ids(delivery_ids)?;
        Ok(self
            .store
            .retry_undelivered(
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

    /// Probes `endpoint` from this host, through the outbound guard and the
    /// dispatcher's HTTP client, signing a `hookline.ping` test event with
    /// its secrets; audited with what it found, never recorded as an
    /// attempt or counted in its health or breaker.
    pub async fn probe(&self, endpoint: &str) -> Result<(Endpoint, ProbeReport)> {
        let endpoint = self.endpoint(endpoint).await?;
        let now = crate::model::now_millis();
        let mut secrets = vec![endpoint.secret.clone()];
        if let (Some(previous), Some(until)) = (
            &endpoint.previous_secret,
            endpoint.previous_secret_expires_at,
        ) && until > now
        {
            secrets.push(previous.clone());
        }
        let timeout = endpoint.timeout_ms.unwrap_or(PROBE_TIMEOUT_MS).max(1);
        let target = crate::store::EndpointTarget {
            id: endpoint.id.clone(),
            url: endpoint.url.clone(),
            secrets,
            timeout_ms: timeout,
            headers: endpoint.headers.clone(),
        };
        let sender = crate::dispatch::send::Sender::new(PROBE_BODY_BYTES, self.guard.clone())
            .map_err(|err| OpsError::invalid("probe", err.to_string()))?;
        let limit = std::time::Duration::from_millis(u64::try_from(timeout).unwrap_or(10_000));
        let report = crate::dispatch::probe::probe(&self.guard, &sender, &target, limit).await;
        let last = report.steps.last();
        self.store
            .audit_probe(
                &endpoint.id,
                serde_json::json!({
                    "from_host": report.from_host,
                    "ok": report.ok(),
                    "step": last.map(|s| s.step),
                    "detail": last.map(|s| s.detail.clone()),
                }),
                &self.actor,
            )
            .await?;
        Ok((endpoint, report))
    }

    /// Sends every retrying delivery of `endpoint` now instead of at its
    /// scheduled time, each keeping its attempt count; returns the
    /// endpoint and how many.
    pub async fn retry_now(&self, endpoint: &str) -> Result<(Endpoint, u64)> {
        let endpoint = self.endpoint(endpoint).await?;
        let moved = self.store.retry_now(&endpoint.id, &self.actor).await?;
        Ok((endpoint, moved))
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
                format!("{state} deliveries cannot be retried (only dead, retrying, delivered)"),
            ));
        }
        if let (Some(since), Some(until)) = (request.since, request.until)
            && since >= until
        {
            // Relative times ("2h") are read against the clock, so whether
            // a range is empty depends on when it is asked: a conflict.
            return Err(OpsError::conflict("until", "must be later than since"));
        }
        let endpoint = self.endpoint(&request.endpoint).await?;
        let filter = RetryFilter {
            endpoint_id: endpoint.id.clone(),
            states,
            since: request.since,
            until: request.until,
            topic: None,
            event_id: None,
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

/// Refuses an empty list or anything that is not a delivery id.
fn check_delivery_ids(delivery_ids: &[String]) -> Result<()> {
    if delivery_ids.is_empty() {
        return Err(OpsError::invalid("ids", "give at least one delivery id"));
    }
    match delivery_ids
        .iter()
        .find(|id| IdKind::of(id) != Some(IdKind::Delivery))
    {
        Some(id) => Err(OpsError::invalid(
            "ids",
            format!("{id:?} is not a delivery id (dlv_…)"),
        )),
        None => Ok(()),
    }
}
