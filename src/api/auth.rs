//! Who is calling: the `Authorization: Bearer` API key, looked up by its
//! hash, and what that key may see. An admin key sees everything; a tenant
//! key sees only its tenant, and anything of another tenant answers exactly
//! as if it did not exist (404).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::problem::Problem;
use super::views::ForTenant;
use crate::model::{
    Actor, ApiKey, Endpoint, IdKind, Source, Subscription, Tenant, format_rfc3339, now_millis,
};
use crate::ops::{Ops, OpsError};
use crate::store::{DeliveryDetail, StoreError};

/// An authenticated caller: its key, and the actions it does, recorded
/// under the key's name and limited to the key's tenant, if it has one.
pub struct Caller {
    pub key: ApiKey,
    pub ops: Ops,
}

/// Deliveries an event's resource lists at most.
const EVENT_DELIVERIES: usize = 1_000;

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Caller, Problem> {
        let Peer(peer) = Peer::from_parts(parts);
        authenticate(state, &parts.headers, peer).await
    }
}

/// The client's IP address, for the audit log (absent when not served over TCP).
pub struct Peer(pub Option<String>);

impl Peer {
    fn from_parts(parts: &Parts) -> Peer {
        Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_string()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer::from_parts(parts))
    }
}

/// Checks the bearer key in `headers`; 401 when it is missing, malformed,
/// unknown or revoked (one message for all: nothing about keys leaks), or
/// expired by this server's clock (saying when: only the key's holder can
/// learn that, and it tells them why it stopped working).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<String>,
) -> Result<Caller, Problem> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send an API key as Authorization: Bearer <key>"))?;
    let text = value.to_str().unwrap_or_default().trim();
    let token = match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(Problem::unauthorized(
                "the Authorization header must be Bearer <key>",
            ));
        }
    };
    let refused = || Problem::unauthorized("the API key is unknown or revoked");
    let hash = crate::api_key::hash_presented(token).ok_or_else(refused)?;
    let key = state
        .ops
        .reads()
        .api_key_by_hash(&hash)
        .await?
        .ok_or_else(refused)?;
    if let Some(at) = key.expires_at.filter(|_| key.is_expired(now_millis())) {
        return Err(Problem::unauthorized(format!(
            "this API key expired at {}",
            format_rfc3339(at)
        )));
    }
    let actor = Actor {
        name: key.name.clone(),
        client_addr: peer,
        source: Source::Api,
    };
    Ok(Caller {
        ops: state.ops.acting_as(actor).limited_to(key.tenant_id.clone()),
        key,
    })
}

impl Caller {
    /// The one tenant a tenant key is limited to; `None` for an admin key.
    pub fn scope(&self) -> Option<&str> {
        self.key.tenant_id.as_deref()
    }

    /// Whether this key may see things of `tenant_id`.
    pub fn sees(&self, tenant_id: &str) -> bool {
        self.scope().is_none_or(|own| own == tenant_id)
    }

    /// `view` as this key may see it (see [`ForTenant`]).
    pub fn present<V: ForTenant>(&self, view: V) -> V {
        match self.scope() {
            Some(_) => view.for_tenant(),
            None => view,
        }
    }

    /// Refuses a tenant key (403) for what only an admin may do.
    pub fn require_admin(&self, what: &str) -> Result<(), Problem> {
        match self.scope() {
            None => Ok(()),
            Some(_) => Err(Problem::forbidden(format!(
                "{what} needs an admin key; this key is limited to one tenant"
            ))),
        }
    }

    /// A tenant by id or name that this key may see; 404 otherwise. `field`
    /// names the body field or query parameter it came from, if any.
    pub async fn tenant(&self, key: &str, field: Option<&str>) -> Result<Tenant, Problem> {
        match self.ops.tenant(key).await {
            Err(OpsError::NotFound { .. }) => Err(match field {
                Some(field) => Problem::unknown_reference(field, "tenant", key),
                None => Problem::not_found("tenant", key),
            }),
            other => Ok(other?),
        }
    }

    /// The tenant a request is about: the one named, or a tenant key's own.
    pub async fn tenant_or_own(&self, given: Option<&str>) -> Result<Tenant, Problem> {
        match (given, self.scope()) {
            (Some(key), _) => self.tenant(key, Some("tenant")).await,
            (None, Some(own)) => self.tenant(own, Some("tenant")).await,
            // Leaving it out is valid for a tenant key: this key may not.
            (None, None) => Err(Problem::forbidden_field(
                "tenant",
                "an admin key has no tenant of its own: name the tenant (id or name)",
            )),
        }
    }

    /// The tenant a list is limited to: the one given (id or name), or a
    /// tenant key's own; `None` lists every tenant's (admin keys only).
    pub async fn tenant_filter(&self, given: Option<&str>) -> Result<Option<String>, Problem> {
        if given.is_none() && self.scope().is_none() {
            return Ok(None);
        }
        Ok(Some(self.tenant_or_own(given).await?.id))
    }

    /// A live endpoint by id that this key may see; 404 otherwise.
    pub async fn endpoint(&self, id: &str, field: Option<&str>) -> Result<Endpoint, Problem> {
        let not_found = || match field {
            Some(field) => Problem::unknown_reference(field, "endpoint", id),
            None => Problem::not_found("endpoint", id),
        };
        if IdKind::of(id) != Some(IdKind::Endpoint) {
            return Err(not_found());
        }
        match self.ops.reads().get_endpoint(id).await {
            Ok(endpoint) if self.sees(&endpoint.tenant_id) => Ok(endpoint),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(not_found()),
            Err(err) => Err(err.into()),
        }
    }

    /// A subscription by id that this key may see; 404 otherwise.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, Problem> {
        let not_found = || Problem::not_found("subscription", id);
        if IdKind::of(id) != Some(IdKind::Subscription) {
            return Err(not_found());
        }
        match self.ops.reads().get_subscription(id).await {
            Ok(subscription) if self.sees(&subscription.tenant_id) => Ok(subscription),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(not_found()),
            Err(err) => Err(err.into()),
        }
    }

    /// A delivery with its event and attempts that this key may see; 404 otherwise.
    /// Event `id` with its fan-out, as this key may see it: a tenant key
    /// sees its own events (404 for another's) and, of a broadcast, its own
    /// tenant's deliveries.
    pub async fn event(&self, id: &str) -> Result<crate::store::EventFanout, Problem> {
        let not_found = || Problem::not_found("event", id);
        if IdKind::of(id) != Some(IdKind::Event) {
            return Err(not_found());
        }
        let mut fanout = match self.ops.reads().event_fanout(id, EVENT_DELIVERIES).await {
            Ok(fanout) => fanout,
            Err(StoreError::NotFound { .. }) => return Err(not_found()),
            Err(err) => return Err(err.into()),
        };
        if let Some(tenant_id) = &fanout.event.tenant_id
            && !self.sees(tenant_id)
        {
            return Err(not_found());
        }
        fanout.deliveries.retain(|d| self.sees(&d.tenant_id));
        Ok(fanout)
    }

    /// A delivery this key may see, without its event or attempts; 404 otherwise.
    pub async fn delivery_alone(&self, id: &str) -> Result<crate::model::Delivery, Problem> {
        let not_found = || Problem::not_found("delivery", id);
        if IdKind::of(id) != Some(IdKind::Delivery) {
            return Err(not_found());
        }
        match self.ops.reads().find_delivery(id).await {
            Ok(delivery) if self.sees(&delivery.tenant_id) => Ok(delivery),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(not_found()),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn delivery(&self, id: &str) -> Result<DeliveryDetail, Problem> {
        let not_found = || Problem::not_found("delivery", id);
        if IdKind::of(id) != Some(IdKind::Delivery) {
            return Err(not_found());
        }
        match self.ops.reads().get_delivery(id).await {
            Ok(detail) if self.sees(&detail.delivery.tenant_id) => Ok(detail),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(not_found()),
            Err(err) => Err(err.into()),
        }
    }
}
