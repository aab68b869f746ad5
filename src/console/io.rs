//! The console's background work: every load and action from
//! [`App::update`](super::app::App::update) runs in its own task and reports
//! back as a message, so a slow query never holds up a key. Actions go
//! through `ops`, which validates them and writes the audit row.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::app::{HEALTH_WINDOW, PAGE};
use super::format::{endpoint_label, group_digits};
use super::msg::{Act, Acted, Command, Holds, ListLoad, Load, Loaded, Msg};
use super::screens::{
    BreakerPanel, DeliveryQuery, EndpointDetail, EndpointRow, RetentionStatus, SearchProgress,
    WorstEndpoint,
};
use crate::held::Hold;

use crate::model::{
    BreakerMode, Delivery, DeliveryState, Endpoint, ErrorKind, Subscription, now_millis,
};
use crate::ops::{
    BulkRetry, EndpointChanges, Ops, OpsError, from_now, local_time_short, parse_rate_limit,
};
use crate::store::{EndpointHealth, Reads};

/// Events a payload search examines per page.
const SEARCH_BUDGET: i64 = 2_000;
/// Deliveries a bulk retry revives per transaction.
const RETRY_CHUNK: u64 = 1_000;
/// Endpoints the overview lists as worst.
const WORST: usize = 10;
/// Minutes of throughput the overview loads: the "delivered 1h"
/// count, and the sparklines (which show as many of them as fit).
const SPARK_MINUTES: i64 = 60;
/// Minutes over which the overview ranks endpoints by failure rate.
const FAILURE_MINUTES: i64 = 5;
/// Deliveries the event view lists (an event fanned out wider says how
/// to list them all).
const FANOUT_ROWS: usize = 1_000;
/// Failed deliveries a load of a cause's deliveries reads at most, to
/// find a page of those with the cause.
const CAUSE_SCAN: usize = 5_000;
/// Minutes of attempts the endpoint detail's sparklines show.
const DETAIL_MINUTES: i64 = 60;
/// Transitions the breaker panel lists (what an 80x24 terminal holds).
const BREAKER_TRANSITIONS: i64 = 8;

/// Runs commands against the database, reporting to the console's loop.
#[derive(Clone)]
pub struct Io {
    loader: Loader,
    sender: UnboundedSender<Msg>,
}

impl Io {
    pub fn new(ops: Ops, sender: UnboundedSender<Msg>, alive_within: Duration) -> Io {
        Io {
            loader: Loader::new(ops, alive_within),
            sender,
        }
    }

    /// Starts `command` in the background.
    pub fn run(&self, command: Command) {
        let io = self.clone();
        tokio::spawn(async move {
            let msg = match command {
                Command::Load { token, load } => Msg::Loaded {
                    token,
                    result: answered(io.loader.load(load).await),
                },
                Command::Act(act) => Msg::Acted(io.act(act).await),
            };
            let _ = io.sender.send(msg);
        });
    }
}

/// A load's outcome as the app takes it: the database failing is an
/// error (shown as unreachable, and retried); anything else it refused
/// (a name that matches nothing) is an answer that says why.
fn answered(result: Result<Loaded, OpsError>) -> Result<Loaded, String> {
    match result {
        Ok(loaded) => Ok(loaded),
        Err(OpsError::Store(crate::store::StoreError::Database(err))) => Err(err.to_string()),
        Err(other) => Ok(Loaded::Refused(other.to_string())),
    }
}

/// Runs one [`Load`]: every query a screen's refresh issues. The console's
/// background tasks call it, and so does `hookline bench console`, so the
/// benchmark measures exactly what the console runs.
#[derive(Clone)]
pub struct Loader {
    ops: Ops,
    /// Dispatchers seen within this are alive.
    alive_within: Duration,
    /// The endpoint and subscription lists last read, shared by the
    /// loader's clones: refreshed only when the configuration changed.
    lists: Arc<Mutex<ListCache>>,
}

/// Lists that change only by operator action, with the configuration
/// version (see [`Reads::config_version`]) and scope they were read at.
#[derive(Default)]
struct ListCache {
    endpoints: Option<(i64, Option<String>, Vec<Endpoint>)>,
    /// What holds the work of stopped endpoints, at a configuration version.
    holds: Option<(i64, Holds)>,
    subscriptions: Option<(i64, SubscriptionScope, Vec<Subscription>)>,
}

/// `(endpoint id, tenant id)` a subscription list was read for.
type SubscriptionScope = (Option<String>, Option<String>);

/// The cached list, if it was read at `version` for `scope`.
fn cached<S: PartialEq, T: Clone>(
    slot: &Option<(i64, S, Vec<T>)>,
    version: i64,
    scope: &S,
) -> Option<Vec<T>> {
    match slot {
        Some((at, cached_scope, list)) if *at == version && cached_scope == scope => {
            Some(list.clone())
        }
        _ => None,
    }
}

/// A list's first rows as read with `limit`, and whether that was all of
/// them (fewer came back than asked for).
fn first_rows<T>(list: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let complete = list.len() < limit;
    (list, complete)
}

impl Loader {
    pub fn new(ops: Ops, alive_within: Duration) -> Loader {
        Loader {
            ops,
            alive_within,
            lists: Arc::new(Mutex::new(ListCache::default())),
        }
    }

    /// The cache, even if a panicking task poisoned it (it holds only copies).
    fn cache(&self) -> std::sync::MutexGuard<'_, ListCache> {
        self.lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every endpoint (of a tenant), from the cache unless the
    /// configuration changed since it was read. With `first`, a list not
    /// cached is not read whole: only its first `first` rows, and `false`
    /// says the list is incomplete (the screen asks again for the rest).
    async fn endpoint_list(
        &self,
        tenant_id: Option<&str>,
        first: Option<usize>,
    ) -> Result<(Vec<Endpoint>, bool), OpsError> {
        let version = self.reads().config_version().await?;
        let scope = tenant_id.map(str::to_string);
        if let Some(list) = cached(&self.cache().endpoints, version, &scope) {
            return Ok((list, true));
        }
        let (list, complete) = match first {
            Some(limit) => first_rows(self.reads().first_endpoints(tenant_id, limit).await?, limit),
            None => (self.reads().list_endpoints(tenant_id).await?, true),
        };
        if complete {
            self.cache().endpoints = Some((version, scope, list.clone()));
        }
        Ok((list, complete))
    }

    /// Subscriptions (of an endpoint, or a tenant), cached and read first
    /// in part like [`Self::endpoint_list`]; an endpoint's few are read whole.
    async fn subscription_list(
        &self,
        endpoint_id: Option<&str>,
        tenant_id: Option<&str>,
        first: Option<usize>,
    ) -> Result<(Vec<Subscription>, bool), OpsError> {
        let version = self.reads().config_version().await?;
        let scope = (
            endpoint_id.map(str::to_string),
            tenant_id.map(str::to_string),
        );
        if let Some(list) = cached(&self.cache().subscriptions, version, &scope) {
            return Ok((list, true));
        }
        let (list, complete) = match (first, endpoint_id) {
            (Some(limit), None) => first_rows(
                self.reads().first_subscriptions(tenant_id, limit).await?,
                limit,
            ),
            _ => (
                self.reads()
                    .list_subscriptions(endpoint_id, tenant_id)
                    .await?,
                true,
            ),
        };
        if complete {
            self.cache().subscriptions = Some((version, scope, list.clone()));
        }
        Ok((list, complete))
    }

    /// What holds the due work of each paused or disabled endpoint, or
    /// one behind an open circuit breaker. Endpoint states are re-read only
    /// when the configuration changed (pausing, disabling and resuming all
    /// do); breakers open and close without changing it, so a list's
    /// refresh reads them each time (one tiny query).
    async fn holds(&self) -> Result<Holds, OpsError> {
        let version = self.reads().config_version().await?;
        let cached = match &self.cache().holds {
            Some((at, holds)) if *at == version => Some(holds.clone()),
            _ => None,
        };
        let mut holds = match cached {
            Some(holds) => holds,
            None => {
                let stopped: Holds = self
                    .reads()
                    .stopped_endpoints()
                    .await?
                    .into_iter()
                    .filter_map(|(id, state)| Hold::of_endpoint(state).map(|hold| (id, hold)))
                    .collect();
                self.cache().holds = Some((version, stopped.clone()));
                stopped
            }
        };
        for (id, hold) in self.reads().endpoints_held_by_protection().await? {
            holds.entry(id).or_insert(hold);
        }
        Ok(holds)
    }

    fn reads(&self) -> &Reads {
        self.ops.reads()
    }

    /// Fetches what `load` asks for.
    pub async fn load(&self, load: Load) -> Result<Loaded, OpsError> {
        Ok(match load {
            Load::Header => {
                let summary = self.reads().queue_summary().await?;
                let within = i64::try_from(self.alive_within.as_millis()).unwrap_or(i64::MAX);
                let (dispatchers, now) = self.reads().list_dispatchers(within).await?;
                let dispatchers_alive = dispatchers
                    .iter()
                    .filter(|d| d.stopped_at.is_none() && now - d.last_seen_at <= within)
                    .count();
                // Only when none is alive does the banner need to say since when.
                let last_seen_ago = if dispatchers_alive == 0 {
                    let (last, now) = self.reads().dispatcher_last_seen().await?;
                    last.map(|at| (now - at).max(0))
                } else {
                    Some(0)
                };
                Loaded::Header {
                    summary,
                    dispatchers_alive,
                    last_seen_ago,
                }
            }
            Load::Overview => self.overview().await?,
            Load::Deliveries { query, cursor, how } => {
                let filter = self.resolve(&query).await?;
                let reads = self.reads();
                let page = match (how, &query.cause) {
                    (ListLoad::Replace | ListLoad::Older, Some(cause)) => {
                        self.failed_with(&filter, cause, cursor.as_ref()).await?
                    }
                    (_, cause) => {
                        let mut page = match how {
                            ListLoad::Replace | ListLoad::Older => {
                                reads
                                    .list_deliveries(&filter, cursor.as_ref(), PAGE)
                                    .await?
                            }
                            ListLoad::Newer | ListLoad::Tail => {
                                reads
                                    .list_deliveries_newer(&filter, cursor.as_ref(), PAGE)
                                    .await?
                            }
                        };
                        if let Some(cause) = cause {
                            page.items.retain(|d| has_cause(d, cause));
                        }
                        page
                    }
                };
                if page.items.is_empty()
                    && cursor.is_none()
                    && let Some(event_id) = &filter.event_id
                {
                    // `:id msg_…` of an event retention removed says so,
                    // rather than showing an empty list.
                    reads.get_event(event_id).await?;
                }
                let (older, newer) = match how {
                    ListLoad::Replace | ListLoad::Older => (page.next, None),
                    ListLoad::Newer | ListLoad::Tail => (None, page.next),
                };
                Loaded::Deliveries {
                    rows: page.items,
                    older,
                    newer,
                    how,
                    holds: self.holds().await?,
                }
            }
            Load::Search { query, after } => {
                let filter = self.resolve(&query).await?;
                let text = query.text.clone().unwrap_or_default();
                let page = self
                    .reads()
                    .search_payloads(&text, after.as_ref(), SEARCH_BUDGET)
                    .await?;
                let rows = page
                    .matches
                    .into_iter()
                    .filter(|d| matches_filter(d, &filter))
                    .collect();
                Loaded::Search {
                    rows,
                    holds: self.holds().await?,
                    progress: SearchProgress {
                        scanned: page.scanned,
                        done: page.next.is_none(),
                        next: page.next,
                    },
                }
            }
            Load::Detail { id } => {
                let detail = self.reads().get_delivery(&id).await?;
                let hold = self
                    .holds()
                    .await?
                    .get(&detail.delivery.endpoint_id)
                    .copied()
                    .filter(|_| crate::held::waits(detail.delivery.state));
                Loaded::Detail {
                    detail: Box::new(detail),
                    hold,
                }
            }
            Load::RecentTopics { endpoint } => {
                let endpoint = self.ops.endpoint(&endpoint).await?;
                Loaded::RecentTopics(
                    self.reads()
                        .recent_topics(&endpoint.tenant_id, super::app::forms::PREVIEW_EVENTS)
                        .await?,
                )
            }
            Load::RetryPreview { query } => {
                let filter = self.resolve(&query).await?;
                let preview = self.ops.retry_preview(&filter).await?;
                Loaded::RetryPreview {
                    query: Box::new(query),
                    preview: Box::new(preview),
                }
            }
            Load::Curl { delivery_id } => {
                let detail = self.reads().get_delivery(&delivery_id).await?;
                let endpoint = self
                    .reads()
                    .get_endpoint(&detail.delivery.endpoint_id)
                    .await?;
                let url = crate::redact::mask_url_password(&endpoint.url);
                Loaded::Curl(super::curl::curl_command(&detail, &url))
            }
            Load::EndpointDetail { id } => {
                Loaded::EndpointDetail(Box::new(self.endpoint_detail(&id).await?))
            }
            Load::Event { id } => Loaded::Event {
                fanout: Box::new(self.reads().event_fanout(&id, FANOUT_ROWS).await?),
                holds: self.holds().await?,
            },
            Load::Marked { ids } => Loaded::Marked {
                asked: ids.len(),
                rows: self.reads().deliveries_by_ids(&ids).await?,
                holds: self.holds().await?,
            },
            Load::Endpoints {
                tenant,
                filter,
                health_for,
            } => {
                let tenant_id = match tenant {
                    Some(name) => Some(self.ops.tenant(&name).await?.id),
                    None => None,
                };
                let (rows, complete) = self
                    .endpoints(tenant_id.as_deref(), filter.as_deref(), health_for)
                    .await?;
                Loaded::Endpoints { rows, complete }
            }
            Load::Subscriptions {
                endpoint_id,
                tenant,
                first_page,
            } => {
                let tenant_id = match tenant {
                    Some(name) => Some(self.ops.tenant(&name).await?.id),
                    None => None,
                };
                // A first open shows the first page at once; the rest follows.
                let first = first_page.then_some(PAGE);
                let (rows, complete) = self
                    .subscription_list(endpoint_id.as_deref(), tenant_id.as_deref(), first)
                    .await?;
                Loaded::Subscriptions { rows, complete }
            }
            Load::Audit { after } => {
                let page = self.reads().list_audit(after.as_ref(), PAGE).await?;
                Loaded::Audit {
                    rows: page.items,
                    older: page.next,
                    append: after.is_some(),
                }
            }
            Load::ResumeCheck { endpoint_id } => {
                let endpoint = self.ops.endpoint(&endpoint_id).await?;
                let queues = self
                    .reads()
                    .endpoint_queues(Some(std::slice::from_ref(&endpoint.id)))
                    .await?;
                let queue = queues.get(&endpoint.id).copied().unwrap_or_default();
                Loaded::ResumeCheck {
                    // Only its name, state and why are asked about: no secrets kept.
                    endpoint: Box::new(endpoint.masked()),
                    held: u64::try_from(queue.pending).unwrap_or(0),
                    retrying: u64::try_from(queue.retrying).unwrap_or(0),
                }
            }
            Load::Breaker { endpoint_id } => {
                let (endpoint, breaker, transitions) =
                    self.ops.breaker(&endpoint_id, BREAKER_TRANSITIONS).await?;
                Loaded::Breaker(Box::new(BreakerPanel {
                    endpoint: endpoint.masked(),
                    breaker,
                    transitions,
                }))
            }
            Load::DeadCount { endpoint_id, label } => {
                let (_, count) = self.ops.retry_bulk(&dead_of(&endpoint_id, true)).await?;
                Loaded::DeadCount {
                    endpoint_id,
                    label,
                    count,
                }
            }
        })
    }

    /// Names in a query (`tenant:acme`, `endpoint:prod`) become ids.
    async fn resolve(
        &self,
        query: &DeliveryQuery,
    ) -> Result<crate::store::DeliveryFilter, OpsError> {
        let mut filter = query.filter.clone();
        if let Some(name) = &query.tenant_name {
            filter.tenant_id = Some(self.ops.tenant(name).await?.id);
        }
        if let Some(name) = &query.endpoint_name {
            filter.endpoint_id = Some(self.ops.endpoint(name).await?.id);
        }
        Ok(filter)
    }

    /// Every endpoint (of a tenant), with the health and queue of those
    /// around the selection (`window`; on a first load, the first rows):
    /// only the rows on screen need them, and counting every endpoint's
    /// queue costs as much as the queue is long.
    /// The endpoints with the health of those in `window` (none yet: of
    /// the first listed), and whether the list is whole: a first open
    /// reads only the first rows, so the screen shows in a few
    /// milliseconds while every endpoint (14 ms for 1,000 on SQLite) is
    /// read on the refresh that follows.
    /// Everything the endpoint detail shows of endpoint `id`.
    async fn endpoint_detail(&self, id: &str) -> Result<EndpointDetail, OpsError> {
        let reads = self.reads();
        let endpoint = reads.get_endpoint(id).await?;
        let breaker = self.ops.breaker_of(&endpoint).await?;
        let ids = [id.to_string()];
        let (queues, minutes, causes_hour, causes_day, subscriptions, holds) = tokio::try_join!(
            async { Ok::<_, OpsError>(reads.endpoint_queues(Some(&ids)).await?) },
            async { Ok(reads.endpoint_throughput(id, DETAIL_MINUTES).await?) },
            async { Ok(reads.failure_causes(id, 60).await?) },
            async { Ok(reads.failure_causes(id, 24 * 60).await?) },
            async { Ok(reads.list_subscriptions(Some(id), None).await?) },
            self.holds(),
        )?;
        Ok(EndpointDetail {
            hold: holds.get(id).copied(),
            queue: queues.get(id).copied().unwrap_or_default(),
            endpoint,
            breaker,
            minutes,
            causes_hour,
            causes_day,
            subscriptions,
        })
    }

    /// Up to a page of the failed (dead or retrying) deliveries of
    /// `filter` whose last error has `cause`, newest first, from `after`;
    /// reads at most [`CAUSE_SCAN`] of them, and continues from where it
    /// stopped.
    async fn failed_with(
        &self,
        filter: &crate::store::DeliveryFilter,
        cause: &str,
        after: Option<&crate::store::Cursor>,
    ) -> Result<crate::store::Page<Delivery>, OpsError> {
        let mut filter = filter.clone();
        filter.states = vec![DeliveryState::Dead, DeliveryState::Retrying];
        let mut found = Vec::new();
        let mut cursor = after.cloned();
        let mut scanned = 0;
        loop {
            let page = self
                .reads()
                .list_deliveries(&filter, cursor.as_ref(), 500)
                .await?;
            scanned += page.items.len();
            found.extend(page.items.into_iter().filter(|d| has_cause(d, cause)));
            cursor = page.next;
            if cursor.is_none() || found.len() >= PAGE || scanned >= CAUSE_SCAN {
                break;
            }
        }
        Ok(crate::store::Page {
            items: found,
            next: cursor,
        })
    }

    async fn endpoints(
        &self,
        tenant_id: Option<&str>,
        filter: Option<&str>,
        window: Vec<String>,
    ) -> Result<(Vec<EndpointRow>, bool), OpsError> {
        let reads = self.reads();
        // The name filter (`/` on the endpoints view), lowercased by the app.
        let matches = |e: &crate::model::Endpoint| {
            filter.is_none_or(|words| endpoint_label(e).to_lowercase().contains(words))
        };
        let (endpoints, complete, window, mut queues, mut health) = if window.is_empty() {
            // A filter needs every name; otherwise the first rows will do.
            let first = filter.is_none().then_some(HEALTH_WINDOW);
            let (mut endpoints, complete) = self.endpoint_list(tenant_id, first).await?;
            endpoints.retain(|e| matches(e));
            let window: Vec<String> = endpoints
                .iter()
                .take(HEALTH_WINDOW)
                .map(|e| e.id.clone())
                .collect();
            let (queues, health) = tokio::try_join!(
                reads.endpoint_queues(Some(&window)),
                reads.endpoint_health(Some(&window)),
            )?;
            (endpoints, complete, window, queues, health)
        } else {
            let ((endpoints, complete), queues, health) = tokio::try_join!(
                self.endpoint_list(tenant_id, None),
                async { Ok(reads.endpoint_queues(Some(&window)).await?) },
                async { Ok(reads.endpoint_health(Some(&window)).await?) },
            )?;
            (endpoints, complete, window, queues, health)
        };
        let mut protection: Holds = reads
            .endpoints_held_by_protection()
            .await?
            .into_iter()
            .collect();
        let rows = endpoints
            .into_iter()
            .filter(|e| matches(e))
            .map(|endpoint| {
                let in_window = window.contains(&endpoint.id);
                let health = health.remove(&endpoint.id);
                EndpointRow {
                    queue: in_window.then(|| queues.remove(&endpoint.id).unwrap_or_default()),
                    blocked: self.blocked(&endpoint, health.as_ref()),
                    protection: protection.remove(&endpoint.id),
                    health,
                    endpoint,
                }
            })
            .collect();
        Ok((rows, complete))
    }

    /// Why the outbound guard refuses `endpoint`, if it does: judged from
    /// its URL when the host is an IP literal (no lookup: a screen must not
    /// wait on DNS), else from its last attempt, refused and not followed
    /// by a success.
    fn blocked(&self, endpoint: &Endpoint, health: Option<&EndpointHealth>) -> Option<String> {
        if let Some(reason) = self.ops.literal_blocked(&endpoint.url) {
            return Some(reason);
        }
        let health = health?;
        let last_error = health.last_error.as_deref()?;
        let reason = last_error.strip_prefix(ErrorKind::BlockedDestination.as_str())?;
        let still = match (health.last_failure_at, health.last_success_at) {
            (Some(failed), Some(succeeded)) => failed > succeeded,
            (failed, _) => failed.is_some(),
        };
        still.then(|| reason.trim_start_matches(':').trim().to_string())
    }

    /// Throughput and the worst endpoints with their last errors, ranked in
    /// the database (only the few shown leave it).
    async fn overview(&self) -> Result<Loaded, OpsError> {
        let reads = self.reads();
        let (throughput, standings, last_pass, protection) = tokio::try_join!(
            reads.throughput(SPARK_MINUTES),
            reads.worst_endpoints(FAILURE_MINUTES, WORST),
            reads.last_prune(),
            reads.endpoints_held_by_protection(),
        )?;
        let mut protection: Holds = protection.into_iter().collect();
        let worst = standings
            .into_iter()
            .map(|s| WorstEndpoint {
                protection: protection.remove(&s.endpoint_id),
                failure_rate_5m: s.failure_rate(),
                endpoint_id: s.endpoint_id,
                label: s.label,
                state: s.state,
                backlog: s.backlog,
                last_error: s.last_error,
            })
            .collect();
        let retention = RetentionStatus {
            rules: retention_rules(self.ops.retention()),
            last_pass: last_pass.map(|p| ((now_millis() - p.at).max(0), p.removed)),
        };
        Ok(Loaded::Overview {
            throughput,
            worst,
            retention,
        })
    }
}

/// The horizons of the rules that remove events or end held work, in the
/// console's words: `delivered 14d · dead 30d · held 30d`.
fn retention_rules(policy: &crate::config::RetentionConfig) -> String {
    [
        ("delivered", policy.succeeded),
        ("dead", policy.dead),
        ("held", policy.held),
        ("payloads", policy.payload),
    ]
    .into_iter()
    .filter(|(_, horizon)| !horizon.is_zero())
    .map(|(label, horizon)| format!("{label} {}", crate::config::format_duration(horizon)))
    .collect::<Vec<_>>()
    .join(" · ")
}

impl Io {
    async fn act(&self, act: Act) -> Acted {
        if let Act::Probe { id } = &act {
            return match self.loader.ops.probe(id).await {
                Ok((_, report)) => Acted::Probed(Box::new(report)),
                Err(err) => Acted::Failed(err.to_string()),
            };
        }
        if let Act::RevealSecrets(id) = &act {
            return match self.loader.ops.reveal_secrets(id).await {
                Ok(endpoint) => Acted::Revealed(Box::new(endpoint)),
                Err(err) => Acted::Failed(err.to_string()),
            };
        }
        match self.try_act(act).await {
            Ok(text) => Acted::Done(text),
            Err(err) => match err.refusal() {
                Some((field, reason)) => Acted::Refused {
                    field: field.to_string(),
                    reason,
                },
                None => Acted::Failed(err.to_string()),
            },
        }
    }

    async fn try_act(&self, act: Act) -> Result<String, OpsError> {
        let ops = &self.loader.ops;
        Ok(match act {
            Act::Retry(ids) => retried_text(&ops.retry(&ids).await?, ids.len()),
            Act::RetryUndelivered(ids) => {
                retried_text(&ops.retry_undelivered(&ids).await?, ids.len())
            }
            Act::RetryAllDead {
                endpoint_id,
                label,
                count,
            } => self.retry_all_dead(&endpoint_id, &label, count).await?,
            Act::RetryFiltered {
                query,
                endpoints,
                total,
            } => self.retry_filtered(&query, &endpoints, total).await?,
            Act::RetryNow { endpoint_id, label } => {
                let (_, moved) = ops.retry_now(&endpoint_id).await?;
                match moved {
                    0 => format!("{label} had no retrying delivery waiting for its schedule"),
                    1 => format!(
                        "sent the retrying delivery of {label} now (it keeps its attempt count)"
                    ),
                    n => format!(
                        "sent {} retrying deliveries of {label} now (each keeps its attempt count)",
                        group_digits(n)
                    ),
                }
            }
            Act::Pause { id, reason, until } => {
                let (endpoint, already) = ops.pause_endpoint(&id, reason.as_deref(), until).await?;
                let label = endpoint_label(&endpoint);
                match (already, endpoint.paused_until) {
                    (true, Some(at)) => format!(
                        "{label} was already paused; it is paused until {} ({})",
                        local_time_short(at),
                        from_now(at, now_millis())
                    ),
                    (true, None) => format!("{label} was already paused, until resumed"),
                    (false, Some(at)) => format!(
                        "paused {label}: its deliveries are held until {} ({}), or until you resume it (p)",
                        local_time_short(at),
                        from_now(at, now_millis())
                    ),
                    (false, None) => {
                        format!("paused {label}: its deliveries are held until you resume it (p)")
                    }
                }
            }
            Act::Resume(id) => {
                let (endpoint, before) = ops.resume_endpoint(&id).await?;
                format!(
                    "resumed {} (was {before}): held deliveries flow oldest first",
                    endpoint_label(&endpoint)
                )
            }
            Act::SetBreaker { id, mode } => {
                let (endpoint, breaker) = ops.set_breaker(&id, mode).await?;
                let label = endpoint_label(&endpoint);
                match mode {
                    BreakerMode::Open => format!(
                        "forced the breaker of {label} open: its deliveries are held until you set it back (b)"
                    ),
                    BreakerMode::Closed => format!(
                        "forced the breaker of {label} closed: its deliveries flow whatever it answers"
                    ),
                    BreakerMode::Auto => format!(
                        "the breaker of {label} follows its outcomes again (now {})",
                        breaker.state.as_str().replace('_', "-")
                    ),
                }
            }
            Act::RotateSecret(id) => {
                let endpoint = ops.rotate_secret(&id, None).await?;
                format!(
                    "rotated the secret of {}; the old one keeps signing until it expires",
                    endpoint_label(&endpoint)
                )
            }
            // Answered by `act` itself: its result is the endpoint, not a sentence.
            Act::RevealSecrets(id) => {
                ops.reveal_secrets(&id).await?;
                String::new()
            }
            // Answered by `act` itself: its result is the report.
            Act::Probe { id } => {
                ops.probe(&id).await?;
                String::new()
            }
            Act::NewSubscription {
                endpoint,
                pattern,
                description,
            } => {
                let description = (!description.is_empty()).then_some(description.as_str());
                let subscription = ops
                    .add_subscription(&endpoint, &pattern, description)
                    .await?;
                format!(
                    "{} now receives {}",
                    subscription.endpoint_name, subscription.pattern
                )
            }
            Act::EditSubscription {
                id,
                pattern,
                description,
            } => {
                let description = Some((!description.is_empty()).then_some(description.as_str()));
                let subscription = ops
                    .update_subscription(&id, Some(&pattern), description)
                    .await?;
                format!(
                    "{} now receives {}",
                    subscription.endpoint_name, subscription.pattern
                )
            }
            Act::DeleteSubscription(id) => {
                let subscription = ops.delete_subscription(&id).await?;
                format!(
                    "{} no longer receives {}",
                    subscription.endpoint_name, subscription.pattern
                )
            }
            Act::EditEndpoint {
                id,
                url,
                timeout,
                max_in_flight,
                headers,
                rate_limit,
            } => {
                let mut changes = endpoint_changes(&url, &timeout, &max_in_flight, &headers)?;
                let limit = parse_rate_limit(&rate_limit)?;
                changes.rate_limit = Some(limit.map(|(rate, _)| rate));
                changes.rate_limit_burst = limit.and_then(|(_, burst)| burst);
                let endpoint = ops.update_endpoint(&id, &changes).await?;
                format!("saved {}", endpoint_label(&endpoint))
            }
            Act::DeleteEndpoint(id) => {
                let (endpoint, cancelled) = ops.delete_endpoint(&id).await?;
                format!(
                    "deleted {}; {} unfinished deliveries cancelled",
                    endpoint_label(&endpoint),
                    group_digits(cancelled)
                )
            }
        })
    }

    /// Revives an endpoint's dead deliveries in chunks, reporting progress.
    /// Retries what `query` shows at each of `endpoints` in turn, in
    /// chunks, reporting progress against the preview's `total`.
    async fn retry_filtered(
        &self,
        query: &DeliveryQuery,
        endpoints: &[(String, String)],
        total: u64,
    ) -> Result<String, OpsError> {
        let filter = self.loader.resolve(query).await?;
        let mut done = 0;
        for (endpoint_id, label) in endpoints {
            loop {
                let count = self
                    .loader
                    .ops
                    .retry_filtered_at(endpoint_id, &filter, RETRY_CHUNK)
                    .await?;
                done += count;
                let _ = self.sender.send(Msg::Progress {
                    label: format!("retrying deliveries to {label}"),
                    done,
                    total: total.max(done),
                });
                if count < RETRY_CHUNK {
                    break;
                }
            }
        }
        let at = match endpoints.len() {
            1 => "1 endpoint".to_string(),
            n => format!("{n} endpoints"),
        };
        Ok(format!(
            "retried {} deliveries at {at}, each on a fresh schedule",
            group_digits(done)
        ))
    }

    async fn retry_all_dead(
        &self,
        endpoint_id: &str,
        label: &str,
        total: u64,
    ) -> Result<String, OpsError> {
        let request = dead_of(endpoint_id, false);
        let mut done = 0;
        loop {
            let (_, count) = self
                .loader
                .ops
                .retry_bulk_chunk(&request, Some(RETRY_CHUNK))
                .await?;
            done += count;
            let _ = self.sender.send(Msg::Progress {
                label: format!("retrying dead deliveries to {label}"),
                done,
                total: total.max(done),
            });
            if count < RETRY_CHUNK {
                break;
            }
        }
        Ok(format!(
            "retried {} dead deliveries to {label}",
            group_digits(done)
        ))
    }
}

/// "retried 1 of 3 deliveries; skipped dlv_…: already delivered (and 1 more)".
fn retried_text(report: &crate::store::RetryReport, asked: usize) -> String {
    let mut text = format!("retried {} of {asked} deliveries", report.retried.len());
    if let Some((id, reason)) = report.skipped.first() {
        text.push_str(&format!("; skipped {id}: {reason}"));
        if report.skipped.len() > 1 {
            text.push_str(&format!(" (and {} more)", report.skipped.len() - 1));
        }
    }
    text
}

fn dead_of(endpoint_id: &str, dry_run: bool) -> BulkRetry {
    BulkRetry {
        endpoint: endpoint_id.to_string(),
        states: vec![DeliveryState::Dead],
        since: None,
        until: None,
        dry_run,
    }
}

/// The endpoint form's text fields as changes (empty timeout or cap: the default).
fn endpoint_changes(
    url: &str,
    timeout: &str,
    max_in_flight: &str,
    headers: &str,
) -> Result<EndpointChanges, OpsError> {
    let timeout = match timeout.trim() {
        "" => None,
        text => Some(
            crate::config::parse_duration(text).map_err(|reason| OpsError::Invalid {
                field: "timeout",
                reason,
            })?,
        ),
    };
    let max_in_flight = match max_in_flight.trim() {
        "" => None,
        text => Some(text.parse::<u32>().map_err(|_| OpsError::Invalid {
            field: "max_in_flight",
            reason: format!("{text:?} is not a whole number"),
        })?),
    };
    let headers: Vec<String> = headers
        .split(';')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    Ok(EndpointChanges {
        url: Some(url.trim().to_string()),
        timeout: Some(timeout),
        max_in_flight: Some(max_in_flight),
        headers: Some(headers),
        ..EndpointChanges::default()
    })
}

/// Whether a search hit also passes the structured part of the filter.
fn matches_filter(delivery: &Delivery, filter: &crate::store::DeliveryFilter) -> bool {
    (filter.states.is_empty() || filter.states.contains(&delivery.state))
        && filter
            .tenant_id
            .as_ref()
            .is_none_or(|t| *t == delivery.tenant_id)
        && filter
            .endpoint_id
            .as_ref()
            .is_none_or(|e| *e == delivery.endpoint_id)
        && filter.topic.as_ref().is_none_or(|t| *t == delivery.topic)
        && filter
            .event_id
            .as_ref()
            .is_none_or(|e| *e == delivery.event_id)
}

/// Whether `delivery` last failed with `cause`.
fn has_cause(delivery: &Delivery, cause: &str) -> bool {
    delivery
        .last_error
        .as_deref()
        .is_some_and(|error| crate::cause::cause_of(error) == cause)
}

#[cfg(test)]
mod tests {
    use super::{cached, first_rows};

    #[test]
    fn a_cached_list_serves_only_its_version_and_scope() {
        let slot = Some((7, Some("ten_a".to_string()), vec![1, 2]));
        let scope = Some("ten_a".to_string());
        assert_eq!(cached(&slot, 7, &scope), Some(vec![1, 2]));
        assert_eq!(cached(&slot, 8, &scope), None, "configuration changed");
        assert_eq!(cached(&slot, 7, &None), None, "another scope");
        assert_eq!(cached::<Option<String>, i32>(&None, 7, &scope), None);
    }

    #[test]
    fn fewer_rows_than_asked_for_are_the_whole_list() {
        assert_eq!(first_rows(vec![1, 2], 3), (vec![1, 2], true));
        assert_eq!(first_rows(vec![1, 2, 3], 3), (vec![1, 2, 3], false));
    }
}
