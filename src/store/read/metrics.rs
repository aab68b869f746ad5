//! The database's figures for `/metrics`: deliveries by state, held work,
//! how late the queue runs, the largest backlogs, endpoints by state, the
//! dispatchers' heartbeats and the database's size, all in one statement so
//! a scrape costs one round trip.

use crate::model::{BreakerMode, BreakerState, DeliveryState, EndpointState};
use crate::store::sql::rows::parse_column;
use crate::store::{Reads, Result, on_db};

/// How many of the largest endpoint backlogs a reading names (a bound on
/// the series one scrape can add).
pub const METRIC_BACKLOG_TOP: i64 = 10;

/// Dispatchers that have not stopped and beat within this long are read;
/// one that died without stopping ages out of the reading after it.
pub const METRIC_DISPATCHERS_WITHIN_MS: i64 = 3_600_000;

/// What the database holds right now, for gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GaugeReading {
    /// Pending, retrying, in flight and dead deliveries.
    pub deliveries: Vec<(DeliveryState, i64)>,
    /// Pending and retrying deliveries of paused endpoints.
    pub held_paused: i64,
    /// Pending and retrying deliveries of disabled endpoints.
    pub held_disabled: i64,
    /// Pending and retrying deliveries of active endpoints whose circuit
    /// breaker is open or half-open.
    pub held_breaker: i64,
    /// Queued deliveries of active endpoints whose receiver asked them to
    /// wait (`Retry-After`), until the time it named.
    pub held_asked_to_wait: i64,
    /// Due deliveries of active endpoints whose rate limit has no request
    /// left this moment.
    pub held_rate_limited: i64,
    /// The breakers that are not closed, or are forced: endpoint id, state
    /// and mode.
    pub breakers: Vec<(String, BreakerState, BreakerMode)>,
    /// How long (ms) the longest-waiting due delivery that is not held has
    /// waited past its due time; `None` when nothing is due.
    pub oldest_due_ms: Option<i64>,
    /// The largest backlogs (pending and retrying), largest first.
    pub backlogs: Vec<Backlog>,
    /// Endpoints (not deleted) by state; states without any are absent.
    pub endpoints: Vec<(EndpointState, i64)>,
    /// Dispatchers that have not stopped, seen in the last hour.
    pub dispatchers: Vec<Heartbeat>,
    /// Bytes of live data (SQLite: pages in use; Postgres: hookline's tables
    /// with their indexes).
    pub size_bytes: i64,
    /// SQLite: bytes of the file's free pages (kept for reuse, or waiting
    /// for the pruner to hand them back) and of the write-ahead log, apart
    /// from the live data. `None` on Postgres.
    pub sqlite_files: Option<SqliteFiles>,
}

/// The parts of a SQLite database on disk that are not live data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteFiles {
    pub free_bytes: i64,
    pub wal_bytes: i64,
}

/// One endpoint's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub endpoint_id: String,
    pub tenant: String,
    pub endpoint: String,
    pub deliveries: i64,
}

/// A dispatcher's latest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: String,
    pub host: String,
    pub pid: String,
    /// Since its last heartbeat, by the database's clock.
    pub age_ms: i64,
}

/// `(kind, key, label, label, value)`.
type GaugeRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

impl Reads {
    /// SQLite: the size of the write-ahead log file (0 when absent: no
    /// writer has it open). `None` on Postgres.
    pub fn wal_bytes(&self) -> Option<i64> {
        let crate::store::Db::Sqlite(_) = &*self.db else {
            return None;
        };
        let size = std::fs::metadata(format!("{}-wal", self.location))
            .map_or(0, |meta| i64::try_from(meta.len()).unwrap_or(i64::MAX));
        Some(size)
    }

    /// Every database gauge of `/metrics`, in one statement.
    pub async fn metric_gauges(&self) -> Result<GaugeReading> {
        let rows: Vec<GaugeRow> = on_db!(self, |pools, sql| {
            sqlx::query_as(sql.metric_gauges)
                .fetch_all(&pools.read)
                .await?
        });
        let mut reading = GaugeReading::default();
        for (kind, key, label_a, label_b, value) in rows {
            let key = key.unwrap_or_default();
            let count = value.unwrap_or(0);
            match kind.as_str() {
                "state" => reading
                    .deliveries
                    .push((parse_column("deliveries", "state", &key)?, count)),
                "held" if key == "paused" => reading.held_paused = count,
                "held" if key == "breaker" => reading.held_breaker = count,
                "held" if key == "wait" => reading.held_asked_to_wait = count,
                "held" if key == "rate_limited" => reading.held_rate_limited = count,
                "held" => reading.held_disabled = count,
                "breaker" => reading.breakers.push((
                    key,
                    parse_column("endpoint_breakers", "state", &label_a.unwrap_or_default())?,
                    parse_column("endpoint_breakers", "mode", &label_b.unwrap_or_default())?,
                )),
                "oldest_due" => reading.oldest_due_ms = value.map(|ms| ms.max(0)),
                "backlog" => reading.backlogs.push(Backlog {
                    endpoint_id: key,
                    tenant: label_a.unwrap_or_default(),
                    endpoint: label_b.unwrap_or_default(),
                    deliveries: count,
                }),
                "endpoints" => reading
                    .endpoints
                    .push((parse_column("endpoints", "state", &key)?, count)),
                "dispatcher" => reading.dispatchers.push(Heartbeat {
                    id: key,
                    host: label_a.unwrap_or_default(),
                    pid: label_b.unwrap_or_default(),
                    age_ms: count.max(0),
                }),
                _ => reading.size_bytes = count,
            }
        }
        if let crate::store::Db::Sqlite(pools) = &*self.db {
            let free_bytes: i64 = sqlx::query_scalar(
                "SELECT freelist_count * page_size FROM pragma_freelist_count(), pragma_page_size()",
            )
            .fetch_one(&pools.read)
            .await?;
            let wal_bytes = self.wal_bytes().unwrap_or(0);
            reading.sqlite_files = Some(SqliteFiles {
                free_bytes,
                wal_bytes,
            });
        }
        Ok(reading)
    }
}
