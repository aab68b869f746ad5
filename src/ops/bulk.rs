//! Bulk retries by filter: the preview an operator sees before confirming
//! (what it touches per endpoint, from when to when, and what will wait),
//! and the retry itself, endpoint by endpoint, in steps.

use serde::Serialize;

use super::{Ops, OpsError, Result};
use crate::held::Hold;
use crate::model::DeliveryState;
use crate::store::{DeliveryFilter, RetryFilter};

/// What a bulk retry would touch at one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewEndpoint {
    pub endpoint_id: String,
    pub tenant: String,
    pub name: String,
    pub count: u64,
    /// The oldest and newest of them, by creation (unix ms).
    pub oldest: i64,
    pub newest: i64,
    /// What holds the endpoint's work: retried deliveries wait for it.
    #[serde(serialize_with = "hold_code")]
    pub held: Option<Hold>,
}

/// A bulk retry's blast radius, per endpoint, most first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetryPreview {
    pub endpoints: Vec<PreviewEndpoint>,
}

impl RetryPreview {
    /// Deliveries in all.
    pub fn total(&self) -> u64 {
        self.endpoints.iter().map(|e| e.count).sum()
    }

    /// Of them, those whose endpoint holds its work (they will wait).
    pub fn held(&self) -> u64 {
        self.endpoints
            .iter()
            .filter(|e| e.held.is_some())
            .map(|e| e.count)
            .sum()
    }

    /// The oldest and newest delivery among all.
    pub fn span(&self) -> Option<(i64, i64)> {
        let oldest = self.endpoints.iter().map(|e| e.oldest).min()?;
        let newest = self.endpoints.iter().map(|e| e.newest).max()?;
        Some((oldest, newest))
    }
}

fn hold_code<S: serde::Serializer>(hold: &Option<Hold>, serializer: S) -> Result<S::Ok, S::Error> {
    match hold {
        Some(hold) => serializer.serialize_some(hold.code()),
        None => serializer.serialize_none(),
    }
}

/// The states a bulk retry of `states` revives: the retryable among them,
/// or, with none named, the failed ones (dead and retrying).
pub fn retry_states(states: &[DeliveryState]) -> Result<Vec<DeliveryState>> {
    if states.is_empty() {
        return Ok(vec![DeliveryState::Dead, DeliveryState::Retrying]);
    }
    let retryable: Vec<DeliveryState> = states
        .iter()
        .copied()
        .filter(|s| s.is_retryable())
        .collect();
    if retryable.is_empty() {
        return Err(OpsError::invalid(
            "state",
            "none of these states can be retried (only dead, retrying, delivered)",
        ));
    }
    Ok(retryable)
}

impl Ops {
    /// What retrying the deliveries of `filter` would touch (its states
    /// narrowed by [`retry_states`]); a tenant key sees its tenant's only.
    pub async fn retry_preview(&self, filter: &DeliveryFilter) -> Result<RetryPreview> {
        let mut filter = filter.clone();
        filter.states = retry_states(&filter.states)?;
        if let Some(own) = &self.scope {
            filter.tenant_id = Some(own.clone());
        }
        let reads = self.store.reads();
        let (rows, held) = tokio::try_join!(reads.retry_preview(&filter), reads.held_endpoints())?;
        let endpoints = rows
            .into_iter()
            .map(|row| PreviewEndpoint {
                held: held.get(&row.endpoint_id).copied(),
                endpoint_id: row.endpoint_id,
                tenant: row.tenant_name,
                name: row.endpoint_name,
                count: u64::try_from(row.count).unwrap_or(0),
                oldest: row.oldest,
                newest: row.newest,
            })
            .collect();
        Ok(RetryPreview { endpoints })
    }

    /// What the per-endpoint bulk retry `request` would touch (its states
    /// default to dead): the preview `--dry-run` and `dry_run` show.
    pub async fn preview_bulk(
        &self,
        request: &super::BulkRetry,
    ) -> Result<(crate::model::Endpoint, PreviewEndpoint)> {
        if let Some(state) = request.states.iter().find(|s| !s.is_retryable()) {
            return Err(OpsError::invalid(
                "state",
                format!("{state} deliveries cannot be retried (only dead, retrying, delivered)"),
            ));
        }
        let endpoint = self.endpoint(&request.endpoint).await?;
        let states = if request.states.is_empty() {
            vec![DeliveryState::Dead]
        } else {
            request.states.clone()
        };
        let filter = DeliveryFilter {
            states,
            endpoint_id: Some(endpoint.id.clone()),
            since: request.since,
            until: request.until,
            ..DeliveryFilter::default()
        };
        let preview = self.retry_preview(&filter).await?;
        let row = preview
            .endpoints
            .into_iter()
            .next()
            .unwrap_or(PreviewEndpoint {
                endpoint_id: endpoint.id.clone(),
                tenant: endpoint.tenant_name.clone(),
                name: endpoint.name.clone(),
                count: 0,
                oldest: 0,
                newest: 0,
                held: None,
            });
        Ok((endpoint, row))
    }

    /// Retries up to `limit` of the deliveries of `filter` at endpoint
    /// `endpoint_id` (oldest first), each on a fresh schedule; call again
    /// until it returns fewer than `limit`. The preview's endpoints, one
    /// after another, are the whole retry.
    pub async fn retry_filtered_at(
        &self,
        endpoint_id: &str,
        filter: &DeliveryFilter,
        limit: u64,
    ) -> Result<u64> {
        let endpoint = self.endpoint(endpoint_id).await?;
        let retry = RetryFilter {
            endpoint_id: endpoint.id,
            states: retry_states(&filter.states)?,
            since: filter.since,
            until: filter.until,
            topic: filter.topic.clone(),
            event_id: filter.event_id.clone(),
        };
        Ok(self
            .store
            .retry_matching_limited(
                &retry,
                false,
                self.retry_policy.first_delay_ms(),
                &self.actor,
                Some(limit),
            )
            .await?)
    }
}
