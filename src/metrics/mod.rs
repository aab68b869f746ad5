//! The process's Prometheus instruments: counters and histograms that every
//! layer records into as things happen, and their text exposition.
//!
//! These are kept in memory, so within a process they only ever increase
//! (as Prometheus expects of a counter), and each process counts only what
//! it did itself: `sum()` across replicas is the fleet's total. Figures read
//! from the database (queue depths, held work, dispatcher heartbeats) are a
//! different kind, gauges every process exports alike; `api::metrics`
//! reads those on scrape. One registry per process, like the default
//! registry of the official clients: what is recorded in the dispatcher is
//! scraped from the API's listener when both run in one process.

mod process;

#[cfg(feature = "bench")]
pub(crate) use process::cpu_of;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::health::{LATENCY_BOUNDS_MS, OutcomeClass};
use crate::model::ErrorKind;

/// The exposition format's content type (Prometheus text, version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the publish → delivered latency buckets: from
/// a hand-off within milliseconds to a delivery that waited out retries.
const DELIVERY_LATENCY_BOUNDS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
    3600.0,
];

/// Upper bounds (seconds) of the API request and dispatcher cycle durations.
const SHORT_DURATION_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds (seconds) of retention passes, paced batches included.
const PRUNE_DURATION_BOUNDS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Upper bounds of group-commit batch sizes (events per transaction).
const BATCH_SIZE_BOUNDS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Who an event was published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// One tenant's endpoints.
    Tenant,
    /// Every tenant's.
    Broadcast,
}

impl EventKind {
    fn label(self) -> &'static str {
        match self {
            EventKind::Tenant => "tenant",
            EventKind::Broadcast => "broadcast",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    outcome: &'static str,
    error_kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint_id: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransitionLabels {
    to: &'static str,
    cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// A histogram constructor for a [`Family`]: the buckets of API durations.
fn request_duration_histogram() -> Histogram {
    Histogram::new(SHORT_DURATION_BOUNDS)
}

/// The process's instruments; see the module documentation.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    per_endpoint: AtomicBool,
    events_published: Family<KindLabels, Counter>,
    deliveries_created: Counter,
    publish_batch_size: Histogram,
    attempts: Family<AttemptLabels, Counter>,
    attempt_duration: Histogram,
    endpoint_attempts: Family<EndpointLabels, Counter>,
    deliveries_succeeded: Counter,
    deliveries_dead: Counter,
    delivery_latency: Histogram,
    claims: Counter,
    claimed: Counter,
    handed_off: Counter,
    cycle_duration: Histogram,
    api_requests: Family<RequestLabels, Counter>,
    api_request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    database_reads: Counter,
    pruned: Family<TableLabels, Counter>,
    prune_passes: Counter,
    last_prune: Gauge<f64, std::sync::atomic::AtomicU64>,
    prune_duration: Histogram,
    breaker_transitions: Family<TransitionLabels, Counter>,
    rate_limited_waits: Counter,
}

/// This process's instruments.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            per_endpoint: AtomicBool::new(false),
            events_published: Family::default(),
            deliveries_created: Counter::default(),
            publish_batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
            attempts: Family::default(),
            attempt_duration: Histogram::new(LATENCY_BOUNDS_MS.map(|ms| ms as f64 / 1000.0)),
            endpoint_attempts: Family::default(),
            deliveries_succeeded: Counter::default(),
            deliveries_dead: Counter::default(),
            delivery_latency: Histogram::new(DELIVERY_LATENCY_BOUNDS),
            claims: Counter::default(),
            claimed: Counter::default(),
            handed_off: Counter::default(),
            cycle_duration: Histogram::new(SHORT_DURATION_BOUNDS),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(request_duration_histogram),
            database_reads: Counter::default(),
            pruned: Family::default(),
            prune_passes: Counter::default(),
            last_prune: Gauge::default(),
            prune_duration: Histogram::new(PRUNE_DURATION_BOUNDS),
            breaker_transitions: Family::default(),
            rate_limited_waits: Counter::default(),
        };
        metrics.registered()
    }

    /// Every instrument in the registry, under its documented name
    /// (counters get `_total` from the encoder).
    fn registered(mut self) -> Metrics {
        // Both kinds from the start, so a rate over the first events is right.
        for kind in [EventKind::Tenant, EventKind::Broadcast] {
            self.events_published
                .get_or_create(&KindLabels { kind: kind.label() })
                .inc_by(0);
        }
        let r = &mut self.registry;
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(
            "hookline_build_info",
            "Always 1; the version label says which hookline this process runs",
            build,
        );
        r.register(
            "hookline_events_published",
            "Events committed by publishes in this process, by kind (tenant or broadcast); repeats of an idempotency key are not counted",
            self.events_published.clone(),
        );
        r.register(
            "hookline_deliveries_created",
            "Deliveries created by publishes in this process (one per event and subscribed endpoint)",
            self.deliveries_created.clone(),
        );
        r.register(
            "hookline_publish_batch_size",
            "Events per publish transaction (the API's group commit; a CLI publish is a batch of its own)",
            self.publish_batch_size.clone(),
        );
        r.register(
            "hookline_attempts",
            "HTTP attempts recorded by this process's dispatcher, by outcome class and error kind",
            self.attempts.clone(),
        );
        r.register(
            "hookline_attempt_duration_seconds",
            "Duration of HTTP attempts, connect to last byte of the answer",
            self.attempt_duration.clone(),
        );
        r.register(
            "hookline_endpoint_attempts",
            "HTTP attempts by endpoint and outcome class (only with metrics.per_endpoint)",
            self.endpoint_attempts.clone(),
        );
        r.register(
            "hookline_deliveries_succeeded",
            "Deliveries this process's dispatcher delivered",
            self.deliveries_succeeded.clone(),
        );
        r.register(
            "hookline_deliveries_dead",
            "Deliveries this process's dispatcher gave up on (retries exhausted or destination blocked)",
            self.deliveries_dead.clone(),
        );
        r.register(
            "hookline_delivery_latency_seconds",
            "From an event's publish to its delivery, for each delivery this process delivered",
            self.delivery_latency.clone(),
        );
        r.register(
            "hookline_dispatch_claims",
            "Dispatcher cycles that asked the database for due deliveries",
            self.claims.clone(),
        );
        r.register(
            "hookline_dispatch_claimed_deliveries",
            "Deliveries leased by claims",
            self.claimed.clone(),
        );
        r.register(
            "hookline_dispatch_handed_off_deliveries",
            "Deliveries a publish in this process leased straight to its dispatcher, without a claim",
            self.handed_off.clone(),
        );
        r.register(
            "hookline_dispatch_cycle_duration_seconds",
            "Duration of a dispatcher cycle: one transaction recording outcomes and claiming",
            self.cycle_duration.clone(),
        );
        r.register(
            "hookline_api_requests",
            "API requests by route template, method and status code",
            self.api_requests.clone(),
        );
        r.register(
            "hookline_api_request_duration_seconds",
            "API request durations by route template and method",
            self.api_request_duration.clone(),
        );
        r.register(
            "hookline_metrics_database_reads",
            "Database reads for the gauges of /metrics (at most one a second, however many scrape)",
            self.database_reads.clone(),
        );
        r.register(
            "hookline_retention_pruned_rows",
            "Rows this process's pruner removed (or, for held deliveries, ended dead), by table",
            self.pruned.clone(),
        );
        r.register(
            "hookline_retention_passes",
            "Retention passes this process ran (it held the pruner's lease)",
            self.prune_passes.clone(),
        );
        r.register(
            "hookline_retention_last_pass_timestamp_seconds",
            "When this process's last retention pass ended (unix seconds); 0 before its first",
            self.last_prune.clone(),
        );
        r.register(
            "hookline_retention_pass_duration_seconds",
            "Duration of retention passes",
            self.prune_duration.clone(),
        );
        r.register(
            "hookline_breaker_transitions",
            "Circuit breaker transitions this process made, by the state entered (open, half_open, closed) and the rule that moved it (failure_ratio, consecutive_failures, probe_failed, probe_answered, operator)",
            self.breaker_transitions.clone(),
        );
        r.register(
            "hookline_rate_limited_waits",
            "Claims in this process in which an endpoint's due work waited for its rate limit (one per endpoint and claim)",
            self.rate_limited_waits.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        self
    }

    /// A retention pass ended, having removed `rows` (table, count), after `took`.
    pub fn pruned(&self, rows: &[(&'static str, u64)], took: Duration) {
        for &(table, count) in rows {
            self.pruned
                .get_or_create(&TableLabels { table })
                .inc_by(count);
        }
        self.prune_passes.inc();
        self.prune_duration.observe(took.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_prune.set(now);
    }

    /// Counts attempts per endpoint as well, from now on (`metrics.per_endpoint`).
    pub fn count_per_endpoint(&self, on: bool) {
        self.per_endpoint.store(on, Ordering::Relaxed);
    }

    /// A publish transaction committed `events` new events of `kind`.
    pub fn events_published(&self, kind: EventKind, events: u64) {
        if events > 0 {
            self.events_published
                .get_or_create(&KindLabels { kind: kind.label() })
                .inc_by(events);
        }
    }

    /// A publish transaction created `deliveries` deliveries.
    pub fn deliveries_created(&self, deliveries: u64) {
        self.deliveries_created.inc_by(deliveries);
    }

    /// A publish transaction of `events` events committed.
    pub fn publish_batch(&self, events: usize) {
        self.publish_batch_size.observe(events as f64);
    }

    /// An attempt's outcome was recorded.
    pub fn attempt_recorded(
        &self,
        endpoint_id: &str,
        error_kind: Option<ErrorKind>,
        status: Option<i64>,
        duration_ms: i64,
    ) {
        let outcome = outcome_label(OutcomeClass::of(error_kind, status));
        self.attempts
            .get_or_create(&AttemptLabels {
                outcome,
                error_kind: error_kind.map_or("none", |kind| kind.as_str()),
            })
            .inc();
        self.attempt_duration
            .observe(duration_ms.max(0) as f64 / 1000.0);
        if self.per_endpoint.load(Ordering::Relaxed) {
            self.endpoint_attempts
                .get_or_create(&EndpointLabels {
                    endpoint_id: endpoint_id.to_owned(),
                    outcome,
                })
                .inc();
        }
    }

    /// A delivery was delivered, `latency` after its event was published.
    pub fn delivery_succeeded(&self, latency: Option<Duration>) {
        self.deliveries_succeeded.inc();
        if let Some(latency) = latency {
            self.delivery_latency.observe(latency.as_secs_f64());
        }
    }

    /// A delivery ended dead.
    pub fn delivery_dead(&self) {
        self.deliveries_dead.inc();
    }

    /// A dispatcher cycle that took `took`, and claimed `claimed` deliveries
    /// if it asked for any (`None`: it only recorded outcomes).
    pub fn cycle(&self, took: Duration, claimed: Option<usize>) {
        self.cycle_duration.observe(took.as_secs_f64());
        if let Some(claimed) = claimed {
            self.claims.inc();
            self.claimed.inc_by(claimed as u64);
        }
    }

    /// A circuit breaker moved `to` a state, by the rule `cause`.
    pub fn breaker_moved(&self, to: &'static str, cause: &'static str) {
        self.breaker_transitions
            .get_or_create(&TransitionLabels { to, cause })
            .inc();
    }

    /// A claim left the due work of `endpoints` endpoints waiting for
    /// their rate limits.
    pub fn rate_limited(&self, endpoints: usize) {
        self.rate_limited_waits.inc_by(endpoints as u64);
    }

    /// A publish handed `deliveries` straight to the dispatcher.
    pub fn handed_off(&self, deliveries: usize) {
        self.handed_off.inc_by(deliveries as u64);
    }

    /// An API request to `route` (a template such as `/v1/endpoints/{id}`,
    /// never a raw path) was answered `status` after `took`.
    pub fn api_request(&self, route: &str, method: &http::Method, status: u16, took: Duration) {
        let method = method_label(method);
        self.api_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status: status.to_string(),
            })
            .inc();
        self.api_request_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// The gauges of `/metrics` were read from the database.
    pub fn database_read(&self) {
        self.database_reads.inc();
    }

    /// Appends every instrument (and the process's own figures) to `out`.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
    }
}

/// The outcome classes in the words the console's health uses.
fn outcome_label(class: OutcomeClass) -> &'static str {
    match class {
        OutcomeClass::Succeeded => "succeeded",
        OutcomeClass::Status4xx => "status_4xx",
        OutcomeClass::Status5xx => "status_5xx",
        OutcomeClass::Timeout => "timeout",
        OutcomeClass::Network => "network",
        OutcomeClass::Other => "other",
        OutcomeClass::Blocked => "blocked",
    }
}

/// Standard methods by name; anything else is one value, so a client
/// inventing methods cannot add series.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_the_conventions_and_histograms_have_their_series() {
        let metrics = Metrics::new();
        metrics.events_published(EventKind::Tenant, 2);
        metrics.deliveries_created(5);
        metrics.attempt_recorded("ep_1", None, Some(200), 12);
        metrics.attempt_recorded("ep_1", Some(ErrorKind::HttpStatus), Some(503), 40);
        metrics.delivery_succeeded(Some(Duration::from_millis(30)));
        let mut text = String::new();
        metrics.encode(&mut text).expect("encode");
        for line in [
            "hookline_events_published_total{kind=\"tenant\"} 2",
            "hookline_deliveries_created_total 5",
            "hookline_attempts_total{outcome=\"succeeded\",error_kind=\"none\"} 1",
            "hookline_attempts_total{outcome=\"status_5xx\",error_kind=\"http_status\"} 1",
            "hookline_attempt_duration_seconds_bucket{le=\"0.025\"} 1",
            "hookline_attempt_duration_seconds_count 2",
            "hookline_delivery_latency_seconds_bucket{le=\"0.05\"} 1",
            "hookline_delivery_latency_seconds_sum 0.03",
            "# TYPE hookline_deliveries_succeeded_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("hookline_endpoint_attempts_total{"),
            "per-endpoint series without metrics.per_endpoint:\n{text}"
        );
    }

    #[test]
    fn per_endpoint_series_appear_only_when_asked_for() {
        let metrics = Metrics::new();
        metrics.attempt_recorded("ep_a", Some(ErrorKind::Timeout), None, 2000);
        metrics.count_per_endpoint(true);
        metrics.attempt_recorded("ep_b", Some(ErrorKind::Timeout), None, 2000);
        let mut text = String::new();
        metrics.encode(&mut text).expect("encode");
        assert!(
            text.contains(
                "hookline_endpoint_attempts_total{endpoint_id=\"ep_b\",outcome=\"timeout\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("ep_a"), "{text}");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let method = http::Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(method_label(&method), "other");
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
    }
}
