//! An event with every delivery it fanned out to: "did the customer get
//! order 42?" answered from one read.

use super::sql::rows::{DeliveryRow, convert_all, delivery_columns};
use super::{Reads, Result, on_db};
use crate::model::{Delivery, Event};

/// An event, its tenant's name, and its deliveries ordered by endpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventFanout {
    pub event: Event,
    /// `None` for a broadcast (no tenant).
    pub tenant_name: Option<String>,
    /// At most the limit asked for, by tenant and endpoint name.
    pub deliveries: Vec<Delivery>,
    /// More deliveries exist than were read.
    pub more: bool,
}

const FANOUT_OF: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id JOIN tenants t ON t.id = d.tenant_id
      WHERE d.event_id = $1 ORDER BY t.name, e.name, d.id LIMIT $2"
);

const TENANT_NAME: &str = "SELECT name FROM tenants WHERE id = $1";

impl Reads {
    /// Event `id` with up to `limit` of its deliveries; an id retention
    /// removed says so (see [`Reads::get_event`]).
    pub async fn event_fanout(&self, id: &str, limit: usize) -> Result<EventFanout> {
        let event = self.get_event(id).await?;
        let limit = limit.clamp(1, 10_000);
        let read = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let tenant_id = event.tenant_id.clone();
        let (rows, tenant_name): (Vec<DeliveryRow>, Option<String>) = on_db!(self, |pools, sql| {
            let rows = sqlx::query_as(FANOUT_OF)
                .bind(id)
                .bind(read)
                .fetch_all(&pools.read)
                .await?;
            let name = match &tenant_id {
                Some(tenant) => {
                    sqlx::query_scalar(TENANT_NAME)
                        .bind(tenant)
                        .fetch_optional(&pools.read)
                        .await?
                }
                None => None,
            };
            (rows, name)
        });
        let mut deliveries: Vec<Delivery> = convert_all(rows)?;
        let more = deliveries.len() > limit;
        deliveries.truncate(limit);
        Ok(EventFanout {
            event,
            tenant_name,
            deliveries,
            more,
        })
    }
}
