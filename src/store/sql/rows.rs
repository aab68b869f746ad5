//! Database rows as read by sqlx, and their checked conversion into
//! [`crate::model`] types. A value hookline could not have written (an
//! unknown state, broken JSON) becomes [`StoreError::Corrupt`], never a panic.

use sqlx::FromRow;

use crate::model::{
    Attempt, AuditEntry, Delivery, DispatcherInfo, Endpoint, Event, PayloadRemoval, RateLimit,
    Stored, Subscription, Tenant,
};
use crate::store::StoreError;

/// Parses a stored enum spelling (never the word people see: the two may
/// differ), naming the column when it is not one we know.
pub(crate) fn parse_column<T: Stored>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    T::from_db(text).map_err(|e| StoreError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

/// Parses a JSON text column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

#[derive(FromRow)]
pub(crate) struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Tenant {
        Tenant {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// Columns of [`EndpointRow`], for `SELECT {ENDPOINT_COLUMNS} FROM endpoints e JOIN tenants t …`.
/// A macro, not a const: `concat!` splices it into const SQL, and takes only literals.
macro_rules! endpoint_columns {
    () => {
        "e.id, e.tenant_id, t.name AS tenant_name, e.name, e.url, e.secret, \
     e.previous_secret, e.previous_secret_expires_at, e.state, e.state_reason, e.state_changed_at, e.state_changed_by, e.paused_until, \
     e.timeout_ms, e.max_in_flight, e.headers, e.description, e.created_at, e.updated_at, e.secret_rotated_at, \
     (SELECT r.per_second FROM endpoint_rate_limits r WHERE r.endpoint_id = e.id) AS rate_limit, \
     (SELECT r.burst FROM endpoint_rate_limits r WHERE r.endpoint_id = e.id) AS rate_limit_burst"
    };
}
pub(crate) use endpoint_columns;

#[derive(FromRow)]
pub(crate) struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: Option<i64>,
    pub state_changed_by: Option<String>,
    pub paused_until: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub headers: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub secret_rotated_at: Option<i64>,
    pub rate_limit: Option<i64>,
    pub rate_limit_burst: Option<i64>,
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;
    fn try_from(row: EndpointRow) -> Result<Endpoint, StoreError> {
        Ok(Endpoint {
            state: parse_column("endpoints", "state", &row.state)?,
            headers: parse_json("endpoints", "headers", &row.headers)?,
            id: row.id,
            tenant_id: row.tenant_id,
            tenant_name: row.tenant_name,
            name: row.name,
            url: row.url,
            secret: row.secret,
            previous_secret: row.previous_secret,
            previous_secret_expires_at: row.previous_secret_expires_at,
            state_reason: row.state_reason,
            state_changed_at: row.state_changed_at,
            state_changed_by: row.state_changed_by,
            paused_until: row.paused_until,
            timeout_ms: row.timeout_ms,
            max_in_flight: row.max_in_flight,
            rate_limit: row
                .rate_limit
                .map(|per_second| RateLimit::new(per_second, row.rate_limit_burst)),
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret_rotated_at: row.secret_rotated_at,
        })
    }
}

/// Columns of [`SubscriptionRow`], for `… FROM subscriptions s JOIN endpoints e … JOIN tenants t …`.
/// A macro, not a const: `concat!` splices it into const SQL, and takes only literals.
macro_rules! subscription_columns {
    () => {
        "s.id, s.endpoint_id, e.name AS endpoint_name, s.tenant_id, t.name AS tenant_name, s.pattern, \
     s.description, s.created_at, s.updated_at"
    };
}
pub(crate) use subscription_columns;

#[derive(FromRow)]
pub(crate) struct SubscriptionRow {
    pub id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub pattern: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<SubscriptionRow> for Subscription {
    fn from(row: SubscriptionRow) -> Subscription {
        Subscription {
            id: row.id,
            endpoint_id: row.endpoint_id,
            endpoint_name: row.endpoint_name,
            tenant_id: row.tenant_id,
            tenant_name: row.tenant_name,
            pattern: row.pattern,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub topic: String,
    pub payload: String,
    pub payload_size: i64,
    pub payload_removed_at: Option<i64>,
    pub payload_removed_by: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

/// Columns of [`EventRow`], for `… FROM events`.
/// A macro, not a const: `concat!` splices it into const SQL, and takes only literals.
macro_rules! event_columns {
    () => {
        "id, tenant_id, topic, payload, COALESCE(payload_size, OCTET_LENGTH(payload)) AS payload_size,
         payload_removed_at, payload_removed_by, idempotency_key, created_at"
    };
}
pub(crate) use event_columns;

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Event, StoreError> {
        let payload_removed = match (row.payload_removed_at, row.payload_removed_by) {
            (Some(at), Some(by)) => Some(PayloadRemoval {
                at,
                by: parse_column("events", "payload_removed_by", &by)?,
            }),
            _ => None,
        };
        Ok(Event {
            id: row.id,
            tenant_id: row.tenant_id,
            topic: row.topic,
            payload: row.payload,
            payload_size: row.payload_size,
            payload_removed,
            idempotency_key: row.idempotency_key,
            created_at: row.created_at,
        })
    }
}

/// Columns of [`DeliveryRow`], for `… FROM deliveries d JOIN endpoints e … JOIN tenants t …`.
/// A macro, not a const: `concat!` splices it into const SQL, and takes only literals.
macro_rules! delivery_columns {
    () => {
        "d.id, d.event_id, d.endpoint_id, e.name AS endpoint_name, d.tenant_id, \
     t.name AS tenant_name, d.topic, d.state, d.attempts, d.next_attempt_at, d.last_attempt_at, \
     d.last_status, d.last_error, d.created_at, d.updated_at"
    };
}
pub(crate) use delivery_columns;

#[derive(FromRow)]
pub(crate) struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub topic: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            state: parse_column("deliveries", "state", &row.state)?,
            id: row.id,
            event_id: row.event_id,
            endpoint_id: row.endpoint_id,
            endpoint_name: row.endpoint_name,
            tenant_id: row.tenant_id,
            tenant_name: row.tenant_name,
            topic: row.topic,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_attempt_at: row.last_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub attempt_number: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub request_headers: String,
    pub response_body: Option<String>,
    pub dispatcher_id: Option<String>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = StoreError;
    fn try_from(row: AttemptRow) -> Result<Attempt, StoreError> {
        let error_kind = match row.error_kind.as_deref() {
            None => None,
            Some(kind) => Some(parse_column("attempts", "error_kind", kind)?),
        };
        Ok(Attempt {
            error_kind,
            request_headers: parse_json("attempts", "request_headers", &row.request_headers)?,
            id: row.id,
            delivery_id: row.delivery_id,
            endpoint_id: row.endpoint_id,
            attempt_number: row.attempt_number,
            started_at: row.started_at,
            duration_ms: row.duration_ms,
            status_code: row.status_code,
            error_message: row.error_message,
            response_body: row.response_body,
            dispatcher_id: row.dispatcher_id,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub client_addr: Option<String>,
    pub source: String,
    pub action: String,
    pub target_ids: String,
    pub detail: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<AuditEntry, StoreError> {
        Ok(AuditEntry {
            source: parse_column("audit_log", "source", &row.source)?,
            target_ids: parse_json("audit_log", "target_ids", &row.target_ids)?,
            id: row.id,
            at: row.at,
            actor: row.actor,
            client_addr: row.client_addr,
            action: row.action,
            detail: row.detail,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DispatcherRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: i64,
    pub last_seen_at: i64,
    pub stopped_at: Option<i64>,
    pub deliveries_per_sec: f64,
}

impl From<DispatcherRow> for DispatcherInfo {
    fn from(row: DispatcherRow) -> DispatcherInfo {
        DispatcherInfo {
            id: row.id,
            host: row.host,
            pid: row.pid,
            version: row.version,
            started_at: row.started_at,
            last_seen_at: row.last_seen_at,
            stopped_at: row.stopped_at,
            deliveries_per_sec: row.deliveries_per_sec,
        }
    }
}

/// Converts every row, stopping at the first one that does not parse.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
