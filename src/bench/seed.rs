//! A realistic delivery database of any size, for `bench console`: three
//! days of traffic from several tenants to their endpoints, most of it
//! delivered, some still queued, retrying, in flight or dead, with the
//! attempts, health rollups, dispatcher heartbeats and audit trail an
//! operator would find. Rows are generated here and written through
//! [`Store::seed`] in large sets, oldest first.
//!
//! The shape: endpoints get traffic by a Zipf-like weight within their
//! tenant (a few big integrations, a long tail); each event fans out to one
//! to seven of its tenant's endpoints. Most endpoints are healthy; a few are
//! flaky (a share of attempts fail and some die), down (everything since it
//! went down is retrying or dead), slow (a two-hour backlog), paused or
//! disabled (their deliveries are held, pending). Generation is
//! deterministic for a given plan.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::Serialize;

use super::BenchError;
use crate::health::bucket_of;
use crate::model::{DeliveryState, now_millis};
use crate::store::Store;
use crate::store::seed::{
    SeedAttempt, SeedAudit, SeedCause, SeedDelivery, SeedDispatcher, SeedEndpoint,
    SeedEndpointStats, SeedEvent, SeedHealth, SeedSubscription, SeedTenant,
};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
/// How far back the traffic goes.
const SPAN: i64 = 72 * HOUR;
/// The default retry schedule's offsets (attempt n waits `LADDER[n]` after
/// attempt n-1); eight attempts take about 28 hours, then the delivery dies.
const LADDER: [i64; 8] = [
    0,
    5 * SECOND,
    5 * MINUTE,
    30 * MINUTE,
    2 * HOUR,
    5 * HOUR,
    10 * HOUR,
    10 * HOUR,
];
/// Health rollups are written for attempts this recent (the console reads the last hour).
const ROLLUP_WINDOW: i64 = 3 * HOUR;
/// Events generated and written per set.
const EVENTS_PER_CHUNK: usize = 4_000;
const TENANTS: [&str; 8] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
];
const KINDS: [&str; 10] = [
    "crm-sync",
    "billing",
    "warehouse",
    "analytics",
    "search-index",
    "notifications",
    "erp",
    "audit-sink",
    "pricing",
    "mobile-push",
];
/// Topics with their share of events; the last is rare on purpose (a
/// filter that matches little must still be fast).
const TOPICS: [(&str, u32); 7] = [
    ("product.price_changed", 300),
    ("resident.update", 250),
    ("product.status_changed", 200),
    ("order.created", 150),
    ("subscription.cancelled", 80),
    ("invoice.paid", 18),
    ("resident.delete", 2),
];
/// The rare topic, for filter benchmarks.
pub(super) const RARE_TOPIC: &str = "resident.delete";
/// Residents whose emails appear in `resident.*` payloads.
const RESIDENTS: u64 = 2_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DISPATCHERS: [&str; 2] = [
    "dsp_01JD8Z6Q1V3K7B2M4N5P6R7S8T",
    "dsp_01JD8Z6Q1V3K7B2M4N5P6R7S8V",
];

/// What to build.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub deliveries: usize,
    pub endpoints: usize,
    /// Seed of the generator: the same plan builds the same data.
    pub seed: u64,
}

/// What was built, and handles the benchmark looks things up by.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSummary {
    pub tenants: usize,
    pub endpoints: usize,
    pub subscriptions: usize,
    pub events: usize,
    pub deliveries: usize,
    pub attempts: usize,
    pub health_rows: usize,
    pub audit_rows: usize,
    /// Deliveries per state.
    pub by_state: BTreeMap<String, u64>,
    pub seconds: f64,
    #[serde(skip)]
    pub samples: Samples,
}

/// Real names and ids from the seeded data, for the screens to open.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// A dead delivery with a full attempt history.
    pub dead_delivery: String,
    /// An event with several deliveries.
    pub event: String,
    /// The tenant with the most traffic.
    pub tenant: String,
    /// A busy endpoint (`tenant/name`).
    pub busy_endpoint: String,
    /// An endpoint that is down (`tenant/name`).
    pub down_endpoint: String,
    /// An email that appears in some recent payloads.
    pub search_hit: String,
}

/// How an endpoint behaves over the seeded period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Healthy,
    Flaky,
    /// Unreachable since `DOWN_SINCE` ago.
    Down,
    /// Cannot keep up: the last `SLOW_BACKLOG` is still pending.
    Slow,
    /// Paused by an operator `PAUSED_SINCE` ago.
    Paused,
    /// Disabled after answering 410, `DISABLED_SINCE` ago.
    Disabled,
}

const DOWN_SINCE: i64 = 40 * HOUR;
const SLOW_BACKLOG: i64 = 2 * HOUR;
const PAUSED_SINCE: i64 = 6 * HOUR;
const DISABLED_SINCE: i64 = 30 * HOUR;

struct EndpointPlan {
    id: String,
    tenant: usize,
    label: String,
    class: Class,
}

struct TenantPlan {
    id: String,
    /// Indexes into the endpoint list, and cumulative traffic weights.
    endpoints: Vec<usize>,
    cumulative: Vec<f64>,
}

/// One attempt as simulated (only some become rows).
struct SimAttempt {
    at: i64,
    duration_ms: i64,
    status: Option<i64>,
    error: Option<(&'static str, &'static str)>,
}

/// A generator with its running state.
struct Generator {
    rng: fastrand::Rng,
    now: i64,
    endpoints: Vec<EndpointPlan>,
    tenants: Vec<TenantPlan>,
    tenant_weights: Vec<f64>,
    health: HashMap<(usize, i64, usize), SeedHealth>,
    causes: HashMap<(usize, i64, usize, String), SeedCause>,
    by_state: BTreeMap<String, u64>,
    samples: Samples,
    attempts: usize,
    in_flight_left: usize,
}

/// A ULID-shaped id of `kind` for time `at`.
fn id_at(rng: &mut fastrand::Rng, prefix: &str, at: i64) -> String {
    let random = rng.u128(..) & ((1u128 << 80) - 1);
    let ulid = ulid::Ulid::from_parts(at.max(0) as u64, random);
    format!("{prefix}{ulid}")
}

/// Builds the database described by `plan` in `store`, which must be empty.
pub async fn seed(store: &Store, plan: &SeedPlan) -> Result<SeedSummary, BenchError> {
    if plan.deliveries == 0 || plan.endpoints == 0 {
        return Err(BenchError::Setup(
            "deliveries and endpoints must both be at least 1".to_string(),
        ));
    }
    let started = Instant::now();
    let mut generator = Generator::new(plan, now_millis());
    let (tenants, endpoints, subscriptions) = generator.configuration();
    store.seed(&tenants).await?;
    store.seed(&endpoints).await?;
    store.seed(&subscriptions).await?;
    let mut made = 0usize;
    let mut events_made = 0usize;
    while made < plan.deliveries {
        let (events, deliveries, attempts) =
            generator.chunk(events_made, made, plan.deliveries, EVENTS_PER_CHUNK);
        events_made += events.len();
        made += deliveries.len();
        store.seed(&events).await?;
        store.seed(&deliveries).await?;
        for part in attempts.chunks(20_000) {
            store.seed(part).await?;
        }
    }
    let health: Vec<SeedHealth> = generator.health.drain().map(|(_, row)| row).collect();
    for part in health.chunks(20_000) {
        store.seed(part).await?;
    }
    let causes: Vec<SeedCause> = generator.causes.drain().map(|(_, row)| row).collect();
    for part in causes.chunks(20_000) {
        store.seed(part).await?;
    }
    store.seed(&generator.endpoint_stats()).await?;
    store.seed(&generator.dispatchers()).await?;
    let audit = generator.audit(plan.endpoints.clamp(200, 2_000));
    store.seed(&audit).await?;
    store.settle_after_seed().await?;
    Ok(SeedSummary {
        tenants: tenants.len(),
        endpoints: endpoints.len(),
        subscriptions: subscriptions.len(),
        events: events_made,
        deliveries: made,
        attempts: generator.attempts,
        health_rows: health.len(),
        audit_rows: audit.len(),
        by_state: generator.by_state,
        seconds: started.elapsed().as_secs_f64(),
        samples: generator.samples,
    })
}

impl Generator {
    fn new(plan: &SeedPlan, now: i64) -> Generator {
        let mut rng = fastrand::Rng::with_seed(plan.seed);
        let tenant_count = TENANTS.len().min(plan.endpoints);
        let created = now - SPAN - 30 * 24 * HOUR;
        let mut tenants: Vec<TenantPlan> = (0..tenant_count)
            .map(|_| TenantPlan {
                id: id_at(&mut rng, "ten_", created),
                endpoints: Vec::new(),
                cumulative: Vec::new(),
            })
            .collect();
        let classes = classes(plan.endpoints, &mut rng);
        let mut endpoints = Vec::with_capacity(plan.endpoints);
        for (i, class) in classes.into_iter().enumerate() {
            let tenant = i % tenant_count;
            let kind = KINDS[(i / tenant_count) % KINDS.len()];
            let label = format!("{}/{kind}-{i:04}", TENANTS[tenant]);
            tenants[tenant].endpoints.push(i);
            endpoints.push(EndpointPlan {
                id: id_at(&mut rng, "ep_", created + i as i64 * SECOND),
                tenant,
                label,
                class,
            });
        }
        for tenant in &mut tenants {
            // Zipf-like: the k-th endpoint of a tenant gets 1/k^0.9 of the traffic.
            let mut sum = 0.0;
            for rank in 0..tenant.endpoints.len() {
                sum += 1.0 / ((rank + 1) as f64).powf(0.9);
                tenant.cumulative.push(sum);
            }
        }
        // Tenants differ in size too: the first is the biggest.
        let mut tenant_weights = Vec::new();
        let mut sum = 0.0;
        for rank in 0..tenant_count {
            sum += 1.0 / (rank + 1) as f64;
            tenant_weights.push(sum);
        }
        Generator {
            rng,
            now,
            samples: Samples {
                tenant: TENANTS[0].to_string(),
                busy_endpoint: endpoints
                    .first()
                    .map(|e| e.label.clone())
                    .unwrap_or_default(),
                down_endpoint: endpoints
                    .iter()
                    .find(|e| e.class == Class::Down)
                    .or(endpoints.first())
                    .map(|e| e.label.clone())
                    .unwrap_or_default(),
                ..Samples::default()
            },
            endpoints,
            tenants,
            tenant_weights,
            health: HashMap::new(),
            causes: HashMap::new(),
            by_state: BTreeMap::new(),
            attempts: 0,
            in_flight_left: 64,
        }
    }

    /// Tenants, endpoints and subscriptions.
    fn configuration(&mut self) -> (Vec<SeedTenant>, Vec<SeedEndpoint>, Vec<SeedSubscription>) {
        let created = self.now - SPAN - 30 * 24 * HOUR;
        let tenants = self
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| SeedTenant {
                id: t.id.clone(),
                name: TENANTS[i].to_string(),
                created_at: created,
            })
            .collect();
        let mut endpoints = Vec::new();
        let mut subscriptions = Vec::new();
        for (i, plan) in self.endpoints.iter().enumerate() {
            let (tenant_name, name) = plan.label.split_once('/').unwrap_or(("", &plan.label));
            let (state, reason, changed) = match plan.class {
                Class::Paused => (
                    "paused",
                    Some("maintenance window on the receiving side"),
                    Some(self.now - PAUSED_SINCE),
                ),
                Class::Disabled => (
                    "disabled",
                    Some("the endpoint answered 410 Gone"),
                    Some(self.now - DISABLED_SINCE),
                ),
                _ => ("active", None, None),
            };
            let at = created + i as i64 * SECOND;
            endpoints.push(SeedEndpoint {
                id: plan.id.clone(),
                tenant_id: self.tenants[plan.tenant].id.clone(),
                name: name.to_string(),
                url: format!("https://hooks.{tenant_name}.example/{name}"),
                secret: SECRET.to_string(),
                state: state.to_string(),
                state_reason: reason.map(str::to_string),
                state_changed_at: changed,
                description: Some(format!("{name} integration of {tenant_name}")),
                created_at: at,
                updated_at: changed.unwrap_or(at),
            });
            let patterns: &[&str] = match i % 5 {
                0 => &["*"],
                1 => &["product.*", "order.created"],
                2 => &["resident.*"],
                3 => &[
                    "product.price_changed",
                    "invoice.paid",
                    "subscription.cancelled",
                ],
                _ => &["order.*", "resident.update"],
            };
            for pattern in patterns {
                subscriptions.push(SeedSubscription {
                    id: id_at(&mut self.rng, "sub_", at),
                    endpoint_id: plan.id.clone(),
                    tenant_id: self.tenants[plan.tenant].id.clone(),
                    pattern: pattern.to_string(),
                    description: None,
                    created_at: at,
                    updated_at: at,
                });
            }
        }
        (tenants, endpoints, subscriptions)
    }

    /// Up to `count` events, numbered from `first`, with their deliveries
    /// and attempts: deliveries `made..` of `total`, oldest first, spread
    /// evenly over the span so the newest was made a moment ago.
    fn chunk(
        &mut self,
        first: usize,
        made: usize,
        total: usize,
        count: usize,
    ) -> (Vec<SeedEvent>, Vec<SeedDelivery>, Vec<SeedAttempt>) {
        let mut events = Vec::with_capacity(count);
        let mut deliveries = Vec::with_capacity(count * 4);
        let mut attempts = Vec::new();
        for n in first..first + count {
            let done = made + deliveries.len();
            if done >= total {
                break;
            }
            let at =
                self.now - SPAN + (SPAN as f64 * (done + 1) as f64 / total as f64) as i64 - 500;
            let tenant = pick(&self.tenant_weights, self.rng.f64());
            let topic = pick_topic(&mut self.rng);
            let event_id = id_at(&mut self.rng, "msg_", at);
            let payload = self.payload(topic, n, at);
            if self.samples.search_hit.is_empty() && done * 20 >= total * 19 {
                // 5 % deep: a search for this reference finds it after a few pages.
                self.samples.search_hit = format!("evt-{n:08}");
            }
            let fan_out = (1 + self.rng.usize(..4) + self.rng.usize(..4))
                .min(self.tenants[tenant].endpoints.len())
                .min(total - done);
            let mut chosen: Vec<usize> = Vec::with_capacity(fan_out);
            let mut tries = 0;
            while chosen.len() < fan_out && tries < 50 {
                tries += 1;
                let plan = &self.tenants[tenant];
                let rank = pick(&plan.cumulative, self.rng.f64());
                let endpoint = plan.endpoints[rank];
                if !chosen.contains(&endpoint) {
                    chosen.push(endpoint);
                }
            }
            if chosen.len() > 1 && self.samples.event.is_empty() && done * 2 >= total {
                self.samples.event = event_id.clone();
            }
            for endpoint in chosen {
                let (delivery, sims) = self.delivery(endpoint, &event_id, topic, at);
                self.record(endpoint, &delivery, &sims, &mut attempts);
                deliveries.push(delivery);
            }
            events.push(SeedEvent {
                id: event_id,
                tenant_id: Some(self.tenants[tenant].id.clone()),
                topic: topic.to_string(),
                payload,
                created_at: at,
            });
        }
        (events, deliveries, attempts)
    }

    /// A realistic payload for `topic`; every one carries a unique reference.
    fn payload(&mut self, topic: &str, n: usize, at: i64) -> String {
        let when = crate::model::format_rfc3339(at);
        let rng = &mut self.rng;
        match topic {
            "product.price_changed" | "product.status_changed" => {
                let price = 200 + rng.u32(..1_800);
                format!(
                    r#"{{"ref":"evt-{n:08}","sku":"WM-{:06}","brand":"{}","price":{{"amount":{price}.99,"currency":"EUR"}},"previous":{{"amount":{}.99,"currency":"EUR"}},"status":"{}","store":"de-berlin-{:02}","changed_at":"{when}"}}"#,
                    rng.u32(..200_000),
                    ["Bosch", "Miele", "Siemens", "AEG", "Samsung", "LG"][rng.usize(..6)],
                    price + 30,
                    ["in_stock", "low_stock", "sold_out"][rng.usize(..3)],
                    rng.u32(..40)
                )
            }
            "resident.update" | "resident.delete" => {
                let resident = rng.u64(..RESIDENTS);
                format!(
                    r#"{{"ref":"evt-{n:08}","resident_id":"res_{resident:05}","unit":"{}-{:02}","email":"resident{resident:05}@mail.example","changes":["{}"],"at":"{when}"}}"#,
                    ["A", "B", "C", "D"][rng.usize(..4)],
                    rng.u32(1..40),
                    ["phone", "email", "unit", "move_out"][rng.usize(..4)]
                )
            }
            "order.created" | "invoice.paid" => format!(
                r#"{{"ref":"evt-{n:08}","order_id":"ord_{:08}","customer":"cus_{:06}","lines":{},"total":{{"amount":{}.00,"currency":"EUR"}},"at":"{when}"}}"#,
                rng.u32(..100_000_000),
                rng.u32(..500_000),
                rng.u32(1..9),
                rng.u32(20..4_000)
            ),
            _ => format!(
                r#"{{"ref":"evt-{n:08}","subscription_id":"sub_{:08}","plan":"{}","reason":"{}","at":"{when}"}}"#,
                rng.u32(..100_000_000),
                ["basic", "plus", "pro"][rng.usize(..3)],
                ["price", "moved", "unknown"][rng.usize(..3)]
            ),
        }
    }

    /// One delivery of an event created at `at` to `endpoint`, in the state
    /// its endpoint's behaviour leads to by now, and the attempts it took.
    fn delivery(
        &mut self,
        endpoint: usize,
        event_id: &str,
        topic: &str,
        at: i64,
    ) -> (SeedDelivery, Vec<SimAttempt>) {
        let age = self.now - at;
        let class = self.endpoints[endpoint].class;
        let roll = self.rng.f64();
        let (fails_since, fail_share, held_since) = match class {
            Class::Healthy => (None, 0.003, None),
            Class::Flaky => (None, 0.06, None),
            Class::Down => (Some(self.now - DOWN_SINCE), 0.0, None),
            Class::Slow => (None, 0.003, Some(self.now - SLOW_BACKLOG)),
            Class::Paused => (None, 0.003, Some(self.now - PAUSED_SINCE)),
            Class::Disabled => (None, 0.003, Some(self.now - DISABLED_SINCE)),
        };
        let mut sims = Vec::new();
        let state;
        let mut next_attempt_at = at;
        let mut lease = None;
        if held_since.is_some_and(|since| at >= since) || age < 10 * SECOND {
            if age < 3 * SECOND && held_since.is_none() && self.in_flight_left > 0 {
                self.in_flight_left -= 1;
                state = DeliveryState::InFlight;
                lease = Some((DISPATCHERS[self.rng.usize(..2)], self.now + 30 * SECOND));
            } else {
                state = DeliveryState::Pending;
            }
        } else if fails_since.is_some_and(|since| at >= since) || roll < fail_share {
            // Failing all along: retried on the ladder until it dies.
            let mut t = at;
            for (n, wait) in LADDER.iter().enumerate() {
                t += wait;
                if t > self.now {
                    next_attempt_at = t;
                    break;
                }
                sims.push(self.failure(t, class, n));
            }
            state = if sims.len() == LADDER.len() {
                DeliveryState::Dead
            } else {
                DeliveryState::Retrying
            };
        } else {
            // Delivered, after a failure or two now and then.
            let failures = if class == Class::Flaky && roll < 0.35 {
                1 + self.rng.usize(..2)
            } else if roll < 0.02 {
                1
            } else {
                0
            };
            let mut t = at;
            for (n, wait) in LADDER.iter().take(failures).enumerate() {
                t += wait;
                sims.push(self.failure(t, class, n));
            }
            t += LADDER[failures.min(LADDER.len() - 1)];
            let duration_ms = match class {
                Class::Slow => 800 + self.rng.i64(0..1_500),
                _ => 20 + self.rng.i64(0..180),
            };
            sims.push(SimAttempt {
                at: t.min(self.now),
                duration_ms,
                status: Some(if self.rng.u8(..20) == 0 { 202 } else { 200 }),
                error: None,
            });
            state = DeliveryState::Delivered;
        }
        // Counted in the words people read; stored in the database's own.
        *self.by_state.entry(state.as_str().to_string()).or_default() += 1;
        let last = sims.last();
        let delivery = SeedDelivery {
            id: id_at(&mut self.rng, "dlv_", at),
            event_id: event_id.to_string(),
            endpoint_id: self.endpoints[endpoint].id.clone(),
            tenant_id: self.tenants[self.endpoints[endpoint].tenant].id.clone(),
            topic: topic.to_string(),
            state: state.as_db().to_string(),
            attempts: sims.len() as i64,
            next_attempt_at,
            lease_owner: lease.map(|(owner, _)| owner.to_string()),
            lease_expires_at: lease.map(|(_, until)| until),
            last_attempt_at: last.map(|a| a.at),
            last_status: last.and_then(|a| a.status),
            last_error: last.and_then(|a| a.error).map(|(kind, message)| {
                if kind == "http_status" {
                    format!("http_status {message}")
                } else {
                    format!("{kind}: {message}")
                }
            }),
            created_at: at,
            updated_at: last.map_or(at, |a| a.at),
        };
        if state == DeliveryState::Dead && self.samples.dead_delivery.is_empty() && age < 40 * HOUR
        {
            self.samples.dead_delivery = delivery.id.clone();
        }
        (delivery, sims)
    }

    /// A failed attempt as `class` fails.
    fn failure(&mut self, at: i64, class: Class, n: usize) -> SimAttempt {
        let (status, error, duration_ms) = match class {
            Class::Down => (
                None,
                ("connect", "connection refused"),
                2 + self.rng.i64(0..5),
            ),
            _ if n % 3 == 2 => (None, ("timeout", "no answer within 15s"), 15_000),
            _ => {
                let status = [500, 502, 503, 429][self.rng.usize(..4)];
                let text = match status {
                    500 => "500",
                    502 => "502",
                    503 => "503",
                    _ => "429",
                };
                (
                    Some(status),
                    ("http_status", text),
                    30 + self.rng.i64(0..400),
                )
            }
        };
        SimAttempt {
            at,
            duration_ms,
            status,
            error: Some(error),
        }
    }

    /// Counts `sims` into the health rollups and, for failures and recent
    /// traffic, writes them as attempt rows.
    fn record(
        &mut self,
        endpoint: usize,
        delivery: &SeedDelivery,
        sims: &[SimAttempt],
        rows: &mut Vec<SeedAttempt>,
    ) {
        let keep_rows = sims.len() > 1
            || delivery.state != DeliveryState::Delivered.as_db()
            || self.now - delivery.created_at < HOUR;
        for (n, sim) in sims.iter().enumerate() {
            let dispatcher = self.rng.usize(..DISPATCHERS.len());
            if self.now - sim.at < ROLLUP_WINDOW {
                let minute = sim.at - sim.at.rem_euclid(MINUTE);
                let row = self
                    .health
                    .entry((endpoint, minute, dispatcher))
                    .or_insert_with(|| {
                        empty_health(&self.endpoints[endpoint].id, minute, dispatcher)
                    });
                match (sim.status, sim.error) {
                    (Some(status), None) if status < 300 => row.succeeded += 1,
                    (Some(status), _) if status < 500 => row.status_4xx += 1,
                    (Some(_), _) => row.status_5xx += 1,
                    (None, Some(("timeout", _))) => row.timeout += 1,
                    (None, _) => row.network += 1,
                }
                row.latency_sum_ms += sim.duration_ms;
                add_to_bucket(row, bucket_of(sim.duration_ms));
                if let Some((kind, message)) = sim.error {
                    let error = match sim.status {
                        Some(status) if kind == "http_status" => format!("http_status {status}"),
                        _ => format!("{kind}: {message}"),
                    };
                    let cause = crate::cause::cause_of(&error);
                    let row = self
                        .causes
                        .entry((endpoint, minute, dispatcher, cause.clone()))
                        .or_insert_with(|| SeedCause {
                            endpoint_id: delivery.endpoint_id.clone(),
                            minute,
                            dispatcher_id: DISPATCHERS[dispatcher].to_string(),
                            cause,
                            failures: 0,
                            first_at: sim.at,
                            last_at: sim.at,
                            example_delivery_id: delivery.id.clone(),
                            example_error: error.clone(),
                        });
                    row.failures += 1;
                    row.first_at = row.first_at.min(sim.at);
                    if sim.at >= row.last_at {
                        row.last_at = sim.at;
                        row.example_delivery_id = delivery.id.clone();
                        row.example_error = error;
                    }
                }
            }
            if keep_rows {
                self.attempts += 1;
                rows.push(SeedAttempt {
                    id: id_at(&mut self.rng, "att_", sim.at),
                    delivery_id: delivery.id.clone(),
                    endpoint_id: delivery.endpoint_id.clone(),
                    attempt_number: n as i64 + 1,
                    started_at: sim.at,
                    duration_ms: sim.duration_ms,
                    status_code: sim.status,
                    error_kind: sim.error.map(|(kind, _)| kind.to_string()),
                    error_message: sim
                        .error
                        .filter(|(kind, _)| *kind != "http_status")
                        .map(|(_, message)| message.to_string()),
                    request_headers: request_headers(&delivery.event_id, sim.at),
                    response_body: sim.status.map(|status| {
                        if status < 300 {
                            r#"{"ok":true}"#.to_string()
                        } else {
                            format!(r#"{{"error":"upstream answered {status}","retry":true}}"#)
                        }
                    }),
                    dispatcher_id: Some(DISPATCHERS[dispatcher].to_string()),
                });
            }
        }
    }

    /// Each dispatcher's running facts about each endpoint.
    fn endpoint_stats(&self) -> Vec<SeedEndpointStats> {
        let mut rows = Vec::new();
        for endpoint in &self.endpoints {
            for dispatcher in DISPATCHERS {
                let recent = self.now - 2 * SECOND;
                let (failures, success, failure, status, error) = match endpoint.class {
                    Class::Down => (
                        40,
                        Some(self.now - DOWN_SINCE),
                        Some(recent),
                        None,
                        Some("connect: connection refused".to_string()),
                    ),
                    Class::Disabled => (
                        1,
                        Some(self.now - DISABLED_SINCE - MINUTE),
                        Some(self.now - DISABLED_SINCE),
                        Some(410),
                        Some("http_status 410".to_string()),
                    ),
                    Class::Paused => (
                        0,
                        Some(self.now - PAUSED_SINCE),
                        Some(self.now - 30 * HOUR),
                        Some(200),
                        Some("http_status 503".to_string()),
                    ),
                    Class::Flaky => (
                        1,
                        Some(recent - 20 * SECOND),
                        Some(recent),
                        Some(503),
                        Some("http_status 503".to_string()),
                    ),
                    Class::Healthy | Class::Slow => (
                        0,
                        Some(recent),
                        Some(self.now - 20 * HOUR),
                        Some(200),
                        Some("timeout: no answer within 15s".to_string()),
                    ),
                };
                rows.push(SeedEndpointStats {
                    endpoint_id: endpoint.id.clone(),
                    dispatcher_id: dispatcher.to_string(),
                    consecutive_failures: failures,
                    last_attempt_at: Some(recent),
                    last_success_at: success,
                    last_failure_at: failure,
                    last_status: status,
                    last_error: error,
                });
            }
        }
        rows
    }

    /// Two dispatchers alive, one that stopped yesterday.
    fn dispatchers(&mut self) -> Vec<SeedDispatcher> {
        let mut rows: Vec<SeedDispatcher> = DISPATCHERS
            .iter()
            .enumerate()
            .map(|(i, id)| SeedDispatcher {
                id: id.to_string(),
                host: format!("hooks-{}", i + 1),
                pid: 4_100 + i as i64,
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: self.now - 26 * HOUR,
                last_seen_at: self.now,
                deliveries_per_sec: 2.0,
            })
            .collect();
        rows.push(SeedDispatcher {
            id: id_at(&mut self.rng, "dsp_", self.now - 50 * HOUR),
            host: "hooks-old".to_string(),
            pid: 977,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.now - 50 * HOUR,
            last_seen_at: self.now - 26 * HOUR,
            deliveries_per_sec: 0.0,
        });
        rows
    }

    /// `count` operator actions spread over the span, oldest first.
    fn audit(&mut self, count: usize) -> Vec<SeedAudit> {
        (0..count)
            .map(|n| {
                let at = self.now - SPAN + SPAN / count as i64 * n as i64;
                let endpoint = &self.endpoints[self.rng.usize(..self.endpoints.len())];
                let (action, detail) = match self.rng.u8(..4) {
                    0 => (
                        "endpoint.pause",
                        r#"{"reason":"receiver deploying"}"#.to_string(),
                    ),
                    1 => ("endpoint.resume", r#"{"before":"paused"}"#.to_string()),
                    2 => (
                        "delivery.retry_bulk",
                        format!(
                            r#"{{"count":{},"states":["dead"]}}"#,
                            1 + self.rng.u32(..500)
                        ),
                    ),
                    _ => (
                        "subscription.update",
                        r#"{"pattern":"product.*"}"#.to_string(),
                    ),
                };
                SeedAudit {
                    id: id_at(&mut self.rng, "aud_", at),
                    at,
                    actor: ["alice", "bob", "oncall"][self.rng.usize(..3)].to_string(),
                    client_addr: Some(format!("10.0.{}.{}", self.rng.u8(..8), self.rng.u8(1..250))),
                    source: ["console", "cli"][self.rng.usize(..2)].to_string(),
                    action: action.to_string(),
                    target_ids: format!(r#"["{}"]"#, endpoint.id),
                    detail,
                }
            })
            .collect()
    }
}

/// Which endpoints misbehave, and how: a few of each kind, shuffled.
fn classes(count: usize, rng: &mut fastrand::Rng) -> Vec<Class> {
    let share = |percent: usize| (count * percent).div_ceil(100);
    // The first endpoint (the first tenant's busiest) stays healthy.
    let mut classes = vec![Class::Healthy];
    if count >= 6 {
        classes.extend(std::iter::repeat_n(Class::Flaky, share(5)));
        classes.extend(std::iter::repeat_n(Class::Down, share(3)));
        classes.extend(std::iter::repeat_n(Class::Slow, share(2)));
        classes.extend(std::iter::repeat_n(Class::Paused, share(1)));
        classes.extend(std::iter::repeat_n(Class::Disabled, share(1)));
    }
    classes.resize(count, Class::Healthy);
    rng.shuffle(&mut classes[1..]);
    classes
}

/// The index whose cumulative weight first exceeds `roll` (0..1) of the total.
fn pick(cumulative: &[f64], roll: f64) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let target = roll * total;
    cumulative
        .partition_point(|&c| c <= target)
        .min(cumulative.len().saturating_sub(1))
}

fn pick_topic(rng: &mut fastrand::Rng) -> &'static str {
    let total: u32 = TOPICS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.u32(..total);
    for (topic, weight) in TOPICS {
        if roll < weight {
            return topic;
        }
        roll -= weight;
    }
    TOPICS[0].0
}

fn empty_health(endpoint_id: &str, minute: i64, dispatcher: usize) -> SeedHealth {
    SeedHealth {
        endpoint_id: endpoint_id.to_string(),
        minute,
        dispatcher_id: DISPATCHERS[dispatcher].to_string(),
        succeeded: 0,
        status_4xx: 0,
        status_5xx: 0,
        timeout: 0,
        network: 0,
        other: 0,
        latency_sum_ms: 0,
        b0: 0,
        b1: 0,
        b2: 0,
        b3: 0,
        b4: 0,
        b5: 0,
        b6: 0,
        b7: 0,
        b8: 0,
        b9: 0,
        b10: 0,
        b11: 0,
    }
}

fn add_to_bucket(row: &mut SeedHealth, bucket: usize) {
    let slot = match bucket {
        0 => &mut row.b0,
        1 => &mut row.b1,
        2 => &mut row.b2,
        3 => &mut row.b3,
        4 => &mut row.b4,
        5 => &mut row.b5,
        6 => &mut row.b6,
        7 => &mut row.b7,
        8 => &mut row.b8,
        9 => &mut row.b9,
        10 => &mut row.b10,
        _ => &mut row.b11,
    };
    *slot += 1;
}

/// The headers an attempt records (signature masked, as the dispatcher stores them).
fn request_headers(event_id: &str, at: i64) -> String {
    format!(
        r#"[["content-type","application/json"],["user-agent","hookline/{}"],["webhook-id","{event_id}"],["webhook-timestamp","{}"],["webhook-signature","v1,****"]]"#,
        env!("CARGO_PKG_VERSION"),
        at / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_endpoint_appears_and_the_first_stays_healthy() {
        let mut rng = fastrand::Rng::with_seed(7);
        let classes = classes(1_000, &mut rng);
        assert_eq!(classes.len(), 1_000);
        assert_eq!(classes[0], Class::Healthy);
        let count = |class| classes.iter().filter(|c| **c == class).count();
        assert_eq!(count(Class::Flaky), 50);
        assert_eq!(count(Class::Down), 30);
        assert_eq!(count(Class::Paused), 10);
        assert_eq!(count(Class::Healthy), 880);
    }

    #[test]
    fn picking_follows_the_weights() {
        let cumulative = [1.0, 1.5, 2.0];
        assert_eq!(pick(&cumulative, 0.0), 0);
        assert_eq!(pick(&cumulative, 0.49), 0);
        assert_eq!(pick(&cumulative, 0.5), 1);
        assert_eq!(pick(&cumulative, 0.99), 2);
    }

    #[test]
    fn a_chunk_stops_at_the_delivery_budget() {
        let plan = SeedPlan {
            deliveries: 100,
            endpoints: 10,
            seed: 1,
        };
        let mut generator = Generator::new(&plan, 1_800_000_000_000);
        let (events, deliveries, _) = generator.chunk(0, 0, 100, 4_000);
        assert_eq!(deliveries.len(), 100);
        assert!(events.len() <= 100 && !events.is_empty());
        let states: u64 = generator.by_state.values().sum();
        assert_eq!(states, 100);
    }
}
