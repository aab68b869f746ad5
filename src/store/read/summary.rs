//! Summaries for people watching the system (the console, metrics): queue
//! depths, throughput per minute, per-endpoint backlogs, and a streaming
//! search of payloads.
//!
//! Every query here reads a partial index or the per-minute totals, never
//! the delivered deliveries that make up most of a large database, so they
//! stay fast however much history is kept.

use std::collections::HashMap;

use serde::Serialize;

use crate::model::{Delivery, EndpointState};
use crate::store::sql::rows::{DeliveryRow, convert_all, parse_column};
use crate::store::tx::db_now;
use crate::store::{Cursor, Reads, Result, json_list, on_db};

/// Where [`Reads::queue_summary`](crate::store::Reads::queue_summary) stops counting: a count of one more
/// means "more than this".
pub const SUMMARY_COUNT_LIMIT: i64 = 10_000;

/// How deep the queue is right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// Never attempted in their current schedule (due now or soon).
    /// Pending, retrying and dead stop at [`SUMMARY_COUNT_LIMIT`] + 1.
    pub pending: i64,
    /// Waiting for a retry.
    pub retrying: i64,
    pub in_flight: i64,
    pub dead: i64,
    /// Of the pending ones, those whose endpoint is paused or disabled or
    /// behind an open breaker (held; see [`crate::held`]), counted to the
    /// same limit.
    pub pending_held: i64,
    /// Of the retrying ones, those held the same way.
    pub retrying_held: i64,
    /// The oldest due time among pending and retrying deliveries that are
    /// due: how late the queue is running.
    pub oldest_due_at: Option<i64>,
    /// The database clock when counted.
    pub now: i64,
}

impl QueueSummary {
    /// How long the longest-waiting due delivery has waited (ms).
    pub fn oldest_wait_ms(&self) -> Option<i64> {
        self.oldest_due_at.map(|due| (self.now - due).max(0))
    }
}

/// Attempts in one minute, every endpoint together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinuteTotals {
    /// Start of the minute, unix ms.
    pub minute: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// One endpoint's share of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointQueue {
    pub pending: i64,
    pub retrying: i64,
    pub in_flight: i64,
}

impl EndpointQueue {
    /// Deliveries waiting to be attempted.
    pub fn backlog(&self) -> i64 {
        self.pending + self.retrying
    }
}

/// How one endpoint stands: recent attempts and its backlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStanding {
    pub endpoint_id: String,
    /// `tenant/name`.
    pub label: String,
    pub state: EndpointState,
    /// Attempts in the window asked for, by outcome.
    pub succeeded: i64,
    pub failed: i64,
    /// Pending and retrying deliveries.
    pub backlog: i64,
    /// The error of its latest failed attempt (any dispatcher's).
    pub last_error: Option<String>,
}

impl EndpointStanding {
    /// Share of the window's attempts that failed; `None` without attempts.
    pub fn failure_rate(&self) -> Option<f64> {
        let attempts = self.succeeded + self.failed;
        (attempts > 0).then(|| self.failed as f64 / attempts as f64)
    }
}

/// A page of a payload search: what matched, and where to go on.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub matches: Vec<Delivery>,
    /// Where the next page starts; `None` when every event was searched.
    pub next: Option<Cursor>,
    /// Events examined by this page.
    pub scanned: i64,
}

pub(super) const MINUTE_MS: i64 = 60_000;

/// How many events are left below `($1, $2)`, up to `$3`.
const SEARCH_REMAINING: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM events
    WHERE (created_at, id) < ($1, $2) LIMIT $3) AS left_over";

const CONFIG_VERSION: &str = "SELECT version FROM config_version WHERE id = 1";

/// Endpoints that hold their due work: paused or disabled, not deleted.
const STOPPED_ENDPOINTS: &str =
    "SELECT id, state FROM endpoints WHERE state <> 'active' AND deleted_at IS NULL";

/// `(endpoint_id, pending, scheduled)`.
type QueuedRow = (String, i64, i64);
/// `(endpoint_id, in flight)`.
type LeasedRow = (String, i64);
/// `(pending, retrying, dead, in flight, earliest due, pending held,
/// retrying held)`.
type Counts = (i64, i64, i64, i64, Option<i64>, i64, i64);
/// `(endpoint_id, label, state, succeeded, failed, backlog)`.
type StandingRow = (String, String, String, i64, i64, i64, Option<String>);

/// From the per-minute totals (a row per minute and dispatcher), not the
/// per-endpoint rollups, which hold a row per endpoint as well.
const THROUGHPUT: &str =
    "SELECT minute, CAST(SUM(succeeded) AS BIGINT), CAST(SUM(failed) AS BIGINT)
    FROM health_totals WHERE minute >= $1 GROUP BY minute ORDER BY minute";

impl Reads {
    /// Queue depths by state and how late the queue runs. Pending,
    /// retrying and dead are exact up to [`SUMMARY_COUNT_LIMIT`] and read
    /// one more beyond it, so this costs the same however large the backlog.
    pub async fn queue_summary(&self) -> Result<QueueSummary> {
        on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let (pending, retrying, dead, in_flight, earliest, pending_held, retrying_held): Counts =
                sqlx::query_as(sql.queue_counts)
                    .bind(SUMMARY_COUNT_LIMIT + 1)
                    .fetch_one(&mut *conn)
                    .await?;
            Ok(QueueSummary {
                pending,
                retrying,
                in_flight,
                dead,
                pending_held,
                retrying_held,
                oldest_due_at: earliest.filter(|due| *due <= now),
                now,
            })
        })
    }

    /// The endpoints doing worst, at most `limit`: by failure rate over the
    /// last `minutes` minutes, then by backlog, then by name. Only endpoints
    /// with failures in that time or a backlog are ranked. Ranked in the
    /// database, so only the few shown leave it.
    pub async fn worst_endpoints(
        &self,
        minutes: i64,
        limit: usize,
    ) -> Result<Vec<EndpointStanding>> {
        let minutes = minutes.clamp(1, 60);
        let rows: Vec<StandingRow> = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let since = now - now.rem_euclid(MINUTE_MS) - (minutes - 1) * MINUTE_MS;
            sqlx::query_as(sql.worst_endpoints)
                .bind(since)
                .bind(limit.clamp(1, 10_000) as i64)
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter()
            .map(
                |(endpoint_id, label, state, succeeded, failed, backlog, last_error)| {
                    Ok(EndpointStanding {
                        endpoint_id,
                        label,
                        state: parse_column("endpoints", "state", &state)?,
                        succeeded,
                        failed,
                        backlog,
                        last_error,
                    })
                },
            )
            .collect()
    }

    /// A number that changes whenever a tenant, endpoint or subscription
    /// does (kept by triggers): a reader holding a list of them re-reads it
    /// only when this moved.
    pub async fn config_version(&self) -> Result<i64> {
        on_db!(self, |pools, sql| {
            Ok(sqlx::query_scalar(CONFIG_VERSION)
                .fetch_one(&pools.read)
                .await?)
        })
    }

    /// The endpoints that are paused or disabled, by id, with their state:
    /// what a screen needs to say which due work is held. A few rows of
    /// the small endpoints table.
    pub async fn stopped_endpoints(&self) -> Result<HashMap<String, EndpointState>> {
        let rows: Vec<(String, String)> = on_db!(self, |pools, sql| {
            sqlx::query_as(STOPPED_ENDPOINTS)
                .fetch_all(&pools.read)
                .await?
        });
        rows.into_iter()
            .map(|(id, state)| Ok((id, parse_column("endpoints", "state", &state)?)))
            .collect()
    }

    /// The endpoints that hold their due work, by id, with what holds it:
    /// paused or disabled, or (active, but) behind an open or half-open
    /// circuit breaker.
    pub async fn held_endpoints(&self) -> Result<crate::held::Stopped> {
        let mut held: crate::held::Stopped = self
            .stopped_endpoints()
            .await?
            .into_iter()
            .filter_map(|(id, state)| crate::held::Hold::of_endpoint(state).map(|h| (id, h)))
            .collect();
        for (id, hold) in self.endpoints_held_by_protection().await? {
            held.entry(id).or_insert(hold);
        }
        Ok(held)
    }

    /// The endpoints whose circuit breaker is open or half-open, whose
    /// receiver asked them to wait, or whose rate limit is spent this
    /// moment: a few rows of tables with one row per endpoint that has
    /// failed or has a limit.
    pub async fn endpoints_held_by_protection(&self) -> Result<Vec<(String, crate::held::Hold)>> {
        use crate::held::Hold;
        type BreakerHold = (String, String, String, Option<i64>, Option<i64>);
        let rows: Vec<BreakerHold> = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            sqlx::query_as(
                "SELECT endpoint_id, state, mode, probe_at, wait_until FROM endpoint_breakers
                  WHERE state <> 'closed' OR wait_until > $1",
            )
            .bind(now)
            .fetch_all(&mut *conn)
            .await?
        });
        let mut held: Vec<(String, Hold)> = rows
            .into_iter()
            .map(|(id, state, mode, probe_at, wait_until)| {
                let hold = match (state.as_str(), wait_until) {
                    ("closed", Some(until)) => Hold::ReceiverAskedToWait { until },
                    _ => Hold::BreakerOpen {
                        next_probe_at: probe_at.filter(|_| mode == "auto" && state == "open"),
                    },
                };
                (id, hold)
            })
            .collect();
        for (id, limit) in self.endpoints_waiting_for_tokens().await? {
            if !held.iter().any(|(held_id, _)| *held_id == id) {
                let per_second = limit.per_second;
                held.push((id, Hold::RateLimited { per_second }));
            }
        }
        Ok(held)
    }

    /// Attempts per minute over the last `minutes` minutes (this one
    /// included), oldest first, minutes without attempts as zeros.
    pub async fn throughput(&self, minutes: i64) -> Result<Vec<MinuteTotals>> {
        let minutes = minutes.clamp(1, 24 * 60);
        let (first, rows): (i64, Vec<(i64, i64, i64)>) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let first = now - now.rem_euclid(MINUTE_MS) - (minutes - 1) * MINUTE_MS;
            let rows = sqlx::query_as(THROUGHPUT)
                .bind(first)
                .fetch_all(&mut *conn)
                .await?;
            (first, rows)
        });
        Ok(fill_minutes(first, minutes, rows))
    }

    /// Backlog and in-flight counts per endpoint, for the given endpoints or
    /// every endpoint with any. Endpoints with none are absent.
    pub async fn endpoint_queues(
        &self,
        endpoint_ids: Option<&[String]>,
    ) -> Result<HashMap<String, EndpointQueue>> {
        let (queued, leased): (Vec<QueuedRow>, Vec<LeasedRow>) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            match endpoint_ids {
                None => {
                    let queued = sqlx::query_as(sql.all_endpoint_queues)
                        .fetch_all(&mut *conn)
                        .await?;
                    let leased = sqlx::query_as(sql.all_endpoint_in_flight)
                        .fetch_all(&mut *conn)
                        .await?;
                    (queued, leased)
                }
                Some(ids) => {
                    let list = json_list(ids);
                    let queued = sqlx::query_as(sql.endpoint_queues_of)
                        .bind(&list)
                        .fetch_all(&mut *conn)
                        .await?;
                    let leased = sqlx::query_as(sql.in_flight_of)
                        .bind(&list)
                        .fetch_all(&mut *conn)
                        .await?;
                    (queued, leased)
                }
            }
        });
        let mut queues: HashMap<String, EndpointQueue> = HashMap::new();
        for (endpoint_id, pending, retrying) in queued {
            let queue = queues.entry(endpoint_id).or_default();
            queue.pending = pending;
            queue.retrying = retrying;
        }
        for (endpoint_id, in_flight) in leased {
            queues.entry(endpoint_id).or_default().in_flight = in_flight;
        }
        Ok(queues)
    }

    /// Searches payloads for `text`, newest events first, examining at most
    /// `budget` events per call so a search over millions of events streams
    /// in pages (and stops when the caller stops asking). Returns the
    /// deliveries of matching events.
    pub async fn search_payloads(
        &self,
        text: &str,
        after: Option<&Cursor>,
        budget: i64,
    ) -> Result<SearchPage> {
        let budget = budget.clamp(1, 100_000);
        let (cursor, matches, scanned): (Option<(i64, String)>, Vec<DeliveryRow>, i64) =
            on_db!(self, |pools, sql| {
                let mut conn = pools.read.acquire().await?;
                let (before_at, before_id) = after
                    .map(|c| (c.created_at, c.id.clone()))
                    .unwrap_or((i64::MAX, String::new()));
                // Where this page's window of events ends: its last event.
                let last: Option<(i64, String)> = sqlx::query_as(sql.search_window_end)
                    .bind(before_at)
                    .bind(&before_id)
                    .bind(budget - 1)
                    .fetch_optional(&mut *conn)
                    .await?;
                let (end_at, end_id) = match &last {
                    Some((at, id)) => (*at, id.clone()),
                    None => (i64::MIN, String::new()),
                };
                // The last page: however many events were left.
                let remaining: i64 = match &last {
                    Some(_) => budget,
                    None => {
                        sqlx::query_scalar(SEARCH_REMAINING)
                            .bind(before_at)
                            .bind(&before_id)
                            .bind(budget)
                            .fetch_one(&mut *conn)
                            .await?
                    }
                };
                let matches = sqlx::query_as(sql.search_payloads)
                    .bind(text)
                    .bind(before_at)
                    .bind(&before_id)
                    .bind(end_at)
                    .bind(&end_id)
                    .fetch_all(&mut *conn)
                    .await?;
                (last, matches, remaining)
            });
        let matches: Vec<Delivery> = convert_all(matches)?;
        Ok(SearchPage {
            matches,
            scanned,
            next: cursor.map(|(created_at, id)| Cursor { created_at, id }),
        })
    }
}

/// `minutes` minutes from `first` with the `(minute, succeeded, failed)`
/// rows that have attempts, the others as zeros.
pub(super) fn fill_minutes(
    first: i64,
    minutes: i64,
    rows: Vec<(i64, i64, i64)>,
) -> Vec<MinuteTotals> {
    let by_minute: HashMap<i64, (i64, i64)> =
        rows.into_iter().map(|(m, s, f)| (m, (s, f))).collect();
    (0..minutes)
        .map(|i| {
            let minute = first + i * MINUTE_MS;
            let (succeeded, failed) = by_minute.get(&minute).copied().unwrap_or_default();
            MinuteTotals {
                minute,
                succeeded,
                failed,
            }
        })
        .collect()
}
