//! Bulk loading of ready-made rows, for benchmarks and large fixtures: each
//! call writes one table's rows as one set in one transaction, exactly as
//! given (no validation, no fan-out, no audit), so a million deliveries load
//! in seconds instead of the minutes real publishing and dispatching take.
//!
//! Nothing in the product path uses this; `hookline bench console` does, to
//! build a database of realistic size to measure the console against.

use serde::Serialize;

use super::{Backend, Result, Store, on_db};

/// How a column travels: JSON carries text and numbers, the statement casts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Float,
}

/// A row type the bulk loader can write: its table, and its columns in the
/// order and spelling of its serde fields.
pub trait SeedRow: Serialize {
    const TABLE: &'static str;
    const COLUMNS: &'static [(&'static str, ColumnType)];
}

use ColumnType::{Float, Int, Text};

/// A tenant row.
#[derive(Debug, Clone, Serialize)]
pub struct SeedTenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl SeedRow for SeedTenant {
    const TABLE: &'static str = "tenants";
    const COLUMNS: &'static [(&'static str, ColumnType)] =
        &[("id", Text), ("name", Text), ("created_at", Int)];
}

/// An endpoint row (headers default to none).
#[derive(Debug, Clone, Serialize)]
pub struct SeedEndpoint {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    /// `active`, `paused` or `disabled`.
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: Option<i64>,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SeedRow for SeedEndpoint {
    const TABLE: &'static str = "endpoints";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("tenant_id", Text),
        ("name", Text),
        ("url", Text),
        ("secret", Text),
        ("state", Text),
        ("state_reason", Text),
        ("state_changed_at", Int),
        ("description", Text),
        ("created_at", Int),
        ("updated_at", Int),
    ];
}

/// One dispatcher's running health facts about an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct SeedEndpointStats {
    pub endpoint_id: String,
    pub dispatcher_id: String,
    pub consecutive_failures: i64,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

impl SeedRow for SeedEndpointStats {
    const TABLE: &'static str = "endpoint_stats";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("endpoint_id", Text),
        ("dispatcher_id", Text),
        ("consecutive_failures", Int),
        ("last_attempt_at", Int),
        ("last_success_at", Int),
        ("last_failure_at", Int),
        ("last_status", Int),
        ("last_error", Text),
    ];
}

/// A subscription row.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSubscription {
    pub id: String,
    pub endpoint_id: String,
    pub tenant_id: String,
    pub pattern: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SeedRow for SeedSubscription {
    const TABLE: &'static str = "subscriptions";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("endpoint_id", Text),
        ("tenant_id", Text),
        ("pattern", Text),
        ("description", Text),
        ("created_at", Int),
        ("updated_at", Int),
    ];
}

/// An event row.
#[derive(Debug, Clone, Serialize)]
pub struct SeedEvent {
    pub id: String,
    pub tenant_id: Option<String>,
    pub topic: String,
    pub payload: String,
    pub created_at: i64,
}

impl SeedRow for SeedEvent {
    const TABLE: &'static str = "events";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("tenant_id", Text),
        ("topic", Text),
        ("payload", Text),
        ("created_at", Int),
    ];
}

/// A delivery row in any state.
#[derive(Debug, Clone, Serialize)]
pub struct SeedDelivery {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub tenant_id: String,
    pub topic: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SeedRow for SeedDelivery {
    const TABLE: &'static str = "deliveries";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("event_id", Text),
        ("endpoint_id", Text),
        ("tenant_id", Text),
        ("topic", Text),
        ("state", Text),
        ("attempts", Int),
        ("next_attempt_at", Int),
        ("lease_owner", Text),
        ("lease_expires_at", Int),
        ("last_attempt_at", Int),
        ("last_status", Int),
        ("last_error", Text),
        ("created_at", Int),
        ("updated_at", Int),
    ];
}

/// An attempt row; `request_headers` is a JSON object as text.
#[derive(Debug, Clone, Serialize)]
pub struct SeedAttempt {
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

impl SeedRow for SeedAttempt {
    const TABLE: &'static str = "attempts";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("delivery_id", Text),
        ("endpoint_id", Text),
        ("attempt_number", Int),
        ("started_at", Int),
        ("duration_ms", Int),
        ("status_code", Int),
        ("error_kind", Text),
        ("error_message", Text),
        ("request_headers", Text),
        ("response_body", Text),
        ("dispatcher_id", Text),
    ];
}

/// One endpoint-minute-dispatcher health rollup.
#[derive(Debug, Clone, Serialize)]
pub struct SeedHealth {
    pub endpoint_id: String,
    pub minute: i64,
    pub dispatcher_id: String,
    pub succeeded: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub timeout: i64,
    pub network: i64,
    pub other: i64,
    pub latency_sum_ms: i64,
    pub b0: i64,
    pub b1: i64,
    pub b2: i64,
    pub b3: i64,
    pub b4: i64,
    pub b5: i64,
    pub b6: i64,
    pub b7: i64,
    pub b8: i64,
    pub b9: i64,
    pub b10: i64,
    pub b11: i64,
}

impl SeedRow for SeedHealth {
    const TABLE: &'static str = "endpoint_health";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("endpoint_id", Text),
        ("minute", Int),
        ("dispatcher_id", Text),
        ("succeeded", Int),
        ("status_4xx", Int),
        ("status_5xx", Int),
        ("timeout", Int),
        ("network", Int),
        ("other", Int),
        ("latency_sum_ms", Int),
        ("b0", Int),
        ("b1", Int),
        ("b2", Int),
        ("b3", Int),
        ("b4", Int),
        ("b5", Int),
        ("b6", Int),
        ("b7", Int),
        ("b8", Int),
        ("b9", Int),
        ("b10", Int),
        ("b11", Int),
    ];
}

/// One endpoint-minute-dispatcher count of failures with one cause.
#[derive(Debug, Clone, Serialize)]
pub struct SeedCause {
    pub endpoint_id: String,
    pub minute: i64,
    pub dispatcher_id: String,
    pub cause: String,
    pub failures: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub example_delivery_id: String,
    pub example_error: String,
}

impl SeedRow for SeedCause {
    const TABLE: &'static str = "failure_causes";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("endpoint_id", Text),
        ("minute", Int),
        ("dispatcher_id", Text),
        ("cause", Text),
        ("failures", Int),
        ("first_at", Int),
        ("last_at", Int),
        ("example_delivery_id", Text),
        ("example_error", Text),
    ];
}

/// A dispatcher heartbeat row.
#[derive(Debug, Clone, Serialize)]
pub struct SeedDispatcher {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: i64,
    pub last_seen_at: i64,
    pub deliveries_per_sec: f64,
}

impl SeedRow for SeedDispatcher {
    const TABLE: &'static str = "dispatchers";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("host", Text),
        ("pid", Int),
        ("version", Text),
        ("started_at", Int),
        ("last_seen_at", Int),
        ("deliveries_per_sec", Float),
    ];
}

/// An audit row; `target_ids` is a JSON array and `detail` a JSON object, as text.
#[derive(Debug, Clone, Serialize)]
pub struct SeedAudit {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub client_addr: Option<String>,
    pub source: String,
    pub action: String,
    pub target_ids: String,
    pub detail: String,
}

impl SeedRow for SeedAudit {
    const TABLE: &'static str = "audit_log";
    const COLUMNS: &'static [(&'static str, ColumnType)] = &[
        ("id", Text),
        ("at", Int),
        ("actor", Text),
        ("client_addr", Text),
        ("source", Text),
        ("action", Text),
        ("target_ids", Text),
        ("detail", Text),
    ];
}

/// `INSERT INTO table (columns) SELECT … FROM <the JSON array $1>`, built
/// from the row type's fixed column list (never from data).
fn insert_sql<R: SeedRow>(backend: Backend) -> String {
    let names: Vec<&str> = R::COLUMNS.iter().map(|(name, _)| *name).collect();
    let columns = names.join(", ");
    match backend {
        Backend::Sqlite => {
            let values: Vec<String> = R::COLUMNS
                .iter()
                .map(|(name, kind)| match kind {
                    Text => format!("value->>'{name}'"),
                    Int => format!("CAST(value->>'{name}' AS BIGINT)"),
                    Float => format!("CAST(value->>'{name}' AS DOUBLE PRECISION)"),
                })
                .collect();
            format!(
                "INSERT INTO {} ({columns}) SELECT {} FROM jsonb_each($1)",
                R::TABLE,
                values.join(", ")
            )
        }
        Backend::Postgres => {
            // Typed in one pass: far cheaper than a `->>` per column and row.
            let types: Vec<String> = R::COLUMNS
                .iter()
                .map(|(name, kind)| {
                    let kind = match kind {
                        Text => "text",
                        Int => "bigint",
                        Float => "double precision",
                    };
                    format!("{name} {kind}")
                })
                .collect();
            format!(
                "INSERT INTO {} ({columns}) SELECT {columns} FROM jsonb_to_recordset($1::jsonb) AS r({})",
                R::TABLE,
                types.join(", ")
            )
        }
    }
}

impl Store {
    /// Writes `rows` as given, in one statement and transaction; returns
    /// how many were written. For benchmarks and fixtures only: it skips
    /// every check the real operations make.
    pub async fn seed<R: SeedRow>(&self, rows: &[R]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let json = serde_json::to_string(rows).map_err(|e| super::StoreError::Corrupt {
            table: R::TABLE,
            column: "*",
            reason: e.to_string(),
        })?;
        let text = insert_sql::<R>(self.backend());
        let written = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let written = sqlx::query(sqlx::AssertSqlSafe(text.clone()))
                .bind(&json)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            written
        });
        Ok(written)
    }

    /// After a bulk load, brings the database to the state it settles in on
    /// its own: Postgres vacuums and analyzes (what autovacuum does soon
    /// after a large insert); SQLite checkpoints its write-ahead log (what
    /// the background checkpointer does). SQLite gets no `ANALYZE`, because
    /// hookline never runs one in production either.
    pub async fn settle_after_seed(&self) -> Result<()> {
        on_db!(self, |pools, sql| {
            match self.backend() {
                Backend::Postgres => {
                    sqlx::raw_sql("VACUUM ANALYZE")
                        .execute(&pools.write)
                        .await?;
                }
                Backend::Sqlite => {
                    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(&pools.write)
                        .await?;
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_once_per_backend() {
        let sqlite = insert_sql::<SeedDelivery>(Backend::Sqlite);
        assert!(sqlite.starts_with("INSERT INTO deliveries (id, event_id,"));
        assert!(sqlite.contains("CAST(value->>'attempts' AS BIGINT)"));
        let postgres = insert_sql::<SeedDelivery>(Backend::Postgres);
        assert!(postgres.contains("jsonb_to_recordset($1::jsonb) AS r(id text,"));
        assert!(postgres.contains("attempts bigint"));
        assert_eq!(
            postgres.matches("updated_at").count(),
            3,
            "into, select, and the record type"
        );
    }
}
