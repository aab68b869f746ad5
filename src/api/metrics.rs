//! `GET /healthz` (is the database reachable) and `GET /metrics`
//! (Prometheus text): the process's own counters and histograms
//! ([`crate::metrics`]) followed by gauges read from the database. On the
//! API's listener both need a key unless `api.open_health_metrics` is set;
//! metrics span every tenant, so a tenant key may not read them. `[metrics]
//! listen` serves `/metrics` alone on a listener of its own, without a key.
//!
//! The gauges are one statement ([`Reads::metric_gauges`]) whose answer is
//! kept for a second and shared: however many scrape at once, the database
//! is read at most once a second per process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{Mutex, watch};
use utoipa::ToSchema;

use super::auth::{Peer, authenticate};
use super::problem::{ApiResult, Problem};
use super::{ApiError, AppState};
use crate::held::Hold;
use crate::metrics::{CONTENT_TYPE, metrics};
use crate::store::{GaugeReading, Reads};

/// How long one reading of the database gauges answers every scrape.
const READING_LIFETIME: Duration = Duration::from_secs(1);

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The database's schema version.
    pub schema_version: i64,
}

/// Is the server up and its database reachable?
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ())
)]
pub async fn healthz(
    State(state): State<Arc<AppState>>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> ApiResult<Json<Health>> {
    if !state.open_health_metrics {
        authenticate(&state, &headers, peer).await?;
    }
    let schema_version = state
        .ops
        .reads()
        .schema_version()
        .await
        .map_err(|e| Problem::unavailable(format!("the database is unreachable: {e}")))?;
    Ok(Json(Health {
        status: "ok".to_string(),
        schema_version,
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 403, description = "A tenant key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ())
)]
pub async fn metrics_route(
    State(state): State<Arc<AppState>>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state.open_health_metrics {
        let caller = authenticate(&state, &headers, peer).await?;
        caller.require_admin("reading metrics")?;
    }
    Ok(exposition(&state.gauges).await)
}

/// The database gauges of `/metrics`, read at most once a second.
pub struct DatabaseGauges {
    reads: Reads,
    /// Dispatchers whose heartbeat is younger than this count as alive.
    alive_within: Duration,
    /// The last reading and when it was taken. A scrape holds the lock
    /// while it reads, so scrapes arriving meanwhile wait and share it.
    last: Mutex<Option<(Instant, Arc<GaugeReading>)>>,
}

impl DatabaseGauges {
    pub fn new(reads: Reads, alive_within: Duration) -> DatabaseGauges {
        DatabaseGauges {
            reads,
            alive_within,
            last: Mutex::new(None),
        }
    }

    /// The latest reading, read again if older than a second; `None` when
    /// the database cannot be read.
    async fn reading(&self) -> Option<Arc<GaugeReading>> {
        let mut last = self.last.lock().await;
        if let Some((at, reading)) = last.as_ref()
            && at.elapsed() < READING_LIFETIME
        {
            return Some(Arc::clone(reading));
        }
        metrics().database_read();
        match self.reads.metric_gauges().await {
            Ok(reading) => {
                let reading = Arc::new(reading);
                *last = Some((Instant::now(), Arc::clone(&reading)));
                Some(reading)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the database gauges for /metrics");
                None
            }
        }
    }
}

/// The whole `/metrics` answer: the process's instruments, then the
/// database's gauges (only `hookline_database_up 0` when it cannot be read).
async fn exposition(gauges: &DatabaseGauges) -> Response {
    let reading = gauges.reading().await;
    let mut text = String::new();
    let encoded = metrics()
        .encode(&mut text)
        .and_then(|()| encode_gauges(reading.as_deref(), gauges.alive_within, &mut text));
    if let Err(err) = encoded {
        // Writing into a String cannot fail; if it ever did, say so rather than serve half.
        return Problem::unavailable(format!("could not encode the metrics: {err}"))
            .into_response();
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BacklogLabels {
    endpoint_id: String,
    endpoint: String,
    tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BreakerLabels {
    endpoint_id: String,
    state: &'static str,
    mode: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DispatcherLabels {
    dispatcher: String,
    dispatcher_id: String,
}

/// A registry of gauges set from `reading`, encoded after the process's own.
fn encode_gauges(
    reading: Option<&GaugeReading>,
    alive_within: Duration,
    out: &mut String,
) -> std::fmt::Result {
    let mut registry = Registry::default();
    let up = Gauge::<i64>::default();
    up.set(i64::from(reading.is_some()));
    registry.register(
        "hookline_database_up",
        "1 when this process could read the database gauges at its last scrape, else 0 (and the other database gauges are left out)",
        up,
    );
    if let Some(reading) = reading {
        register_reading(&mut registry, reading, alive_within);
    }
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
}

/// A gauge holding seconds (fractional).
type SecondsGauge = Gauge<f64, AtomicU64>;

/// A gauge family with one series per `(labels, value)`.
fn family_of<L>(series: impl IntoIterator<Item = (L, i64)>) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq,
{
    let family: Family<L, Gauge> = Family::default();
    for (labels, value) in series {
        family.get_or_create(&labels).set(value);
    }
    family
}

fn register_reading(registry: &mut Registry, reading: &GaugeReading, alive_within: Duration) {
    let by_state = |state: &'static str| StateLabels { state };
    registry.register(
        "hookline_deliveries",
        "Deliveries in the database by state: pending, retrying, in_flight, dead (the same in every process)",
        family_of(
            reading
                .deliveries
                .iter()
                .map(|(state, count)| (by_state(state.as_str()), *count)),
        ),
    );
    registry.register(
        "hookline_deliveries_held",
        "Pending and retrying deliveries that wait because their endpoint is paused or disabled, its circuit breaker is open, its receiver asked to wait (Retry-After) or its rate limit is spent, by reason",
        family_of([
            (Hold::EndpointPaused, reading.held_paused),
            (Hold::EndpointDisabled, reading.held_disabled),
            (
                Hold::BreakerOpen {
                    next_probe_at: None,
                },
                reading.held_breaker,
            ),
            (
                Hold::ReceiverAskedToWait { until: 0 },
                reading.held_asked_to_wait,
            ),
            (
                Hold::RateLimited { per_second: 0 },
                reading.held_rate_limited,
            ),
        ]
        .map(|(hold, count)| (ReasonLabels { reason: hold.code() }, count))),
    );
    let oldest = SecondsGauge::default();
    oldest.set(reading.oldest_due_ms.unwrap_or(0) as f64 / 1000.0);
    registry.register(
        "hookline_oldest_due_age_seconds",
        "How long the longest-waiting due delivery (not held) has waited past its due time; 0 when none is due",
        oldest,
    );
    registry.register(
        "hookline_endpoint_backlog",
        "Pending and retrying deliveries of the endpoints with the largest backlogs (at most 10)",
        family_of(reading.backlogs.iter().map(|backlog| {
            let labels = BacklogLabels {
                endpoint_id: backlog.endpoint_id.clone(),
                endpoint: backlog.endpoint.clone(),
                tenant: backlog.tenant.clone(),
            };
            (labels, backlog.deliveries)
        })),
    );
    registry.register(
        "hookline_endpoint_breaker",
        "1 for each endpoint whose circuit breaker is open or half-open, or forced (closed ones are left out, so the series stay few)",
        family_of(reading.breakers.iter().map(|(endpoint_id, state, mode)| {
            let labels = BreakerLabels {
                endpoint_id: endpoint_id.clone(),
                state: state.as_str(),
                mode: mode.as_str(),
            };
            (labels, 1)
        })),
    );
    registry.register(
        "hookline_endpoints",
        "Endpoints by state: active, paused, disabled",
        family_of(
            reading
                .endpoints
                .iter()
                .map(|(state, count)| (by_state(state.as_str()), *count)),
        ),
    );
    register_dispatchers(registry, reading, alive_within);
    let size = Gauge::<i64>::default();
    size.set(reading.size_bytes);
    registry.register(
        "hookline_database_size_bytes",
        "Bytes of live data (SQLite: pages in use, free pages and the WAL left out; Postgres: hookline's tables with their indexes and TOAST)",
        size,
    );
    if let Some(files) = reading.sqlite_files {
        let free = Gauge::<i64>::default();
        free.set(files.free_bytes);
        registry.register(
            "hookline_database_free_bytes",
            "SQLite: bytes of the file's free pages (reused for new rows; the pruner hands those beyond a quarter of the file back)",
            free,
        );
        let wal = Gauge::<i64>::default();
        wal.set(files.wal_bytes);
        registry.register(
            "hookline_database_wal_bytes",
            "SQLite: bytes of the write-ahead log file beside the database",
            wal,
        );
    }
}

fn register_dispatchers(registry: &mut Registry, reading: &GaugeReading, alive_within: Duration) {
    let ages: Family<DispatcherLabels, SecondsGauge> = Family::default();
    let alive_within_ms = i64::try_from(alive_within.as_millis()).unwrap_or(i64::MAX);
    for beat in &reading.dispatchers {
        ages.get_or_create(&DispatcherLabels {
            dispatcher: format!("{}:{}", beat.host, beat.pid),
            dispatcher_id: beat.id.clone(),
        })
        .set(beat.age_ms as f64 / 1000.0);
    }
    registry.register(
        "hookline_dispatcher_heartbeat_age_seconds",
        "Since each running dispatcher's last heartbeat; a series ends when its dispatcher stops, or an hour after its last beat",
        ages,
    );
    let alive = reading
        .dispatchers
        .iter()
        .filter(|beat| beat.age_ms <= alive_within_ms)
        .count();
    let alive_gauge = Gauge::<i64>::default();
    alive_gauge.set(i64::try_from(alive).unwrap_or(i64::MAX));
    registry.register(
        "hookline_dispatchers_alive",
        "Dispatchers whose last heartbeat is recent (three heartbeat intervals, at least 5 s)",
        alive_gauge,
    );
}

/// `/metrics` alone, on `[metrics] listen`, serving until [`MetricsListener::stop`].
pub struct MetricsListener {
    /// The address bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `listen` and serves `GET /metrics` there, without a key, on a
/// background task: for `hookline dispatch`, which has no API, and for
/// scrapers kept off the API's listener.
pub async fn listen(
    listen: SocketAddr,
    gauges: DatabaseGauges,
) -> Result<MetricsListener, ApiError> {
    let bind_error = |source| ApiError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let gauges = Arc::new(gauges);
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(gauges): State<Arc<DatabaseGauges>>| async move {
                exposition(&gauges).await
            }),
        )
        .fallback(|uri: axum::http::Uri| async move { Problem::no_route(uri.path()) })
        .with_state(gauges);
    let (stop, mut stopping) = watch::channel(false);
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
    });
    tracing::info!(%addr, "metrics listening");
    Ok(MetricsListener { addr, stop, server })
}

impl MetricsListener {
    /// `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Stops serving; a scrape in progress is cut off.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
