//! Circuit breaker state, shared by every dispatcher: counting outcomes
//! against each endpoint's receiver, opening and closing by the rules of
//! [`crate::protect::breaker`], starting probes at claim time, forcing a
//! state, and the transition history.
//!
//! Lock order on Postgres: a cycle counts its outcomes (breaker rows in
//! endpoint order, the only statement here that waits) before it reads the
//! queue; a probe takes its breaker row with `SKIP LOCKED`. So no
//! transaction waits for a breaker row while holding another.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::json;

use super::audit::AuditRecord;
use super::queue::Outcome;
use super::sql::dialect::Dialect;
use super::sql::rows::{parse_column, parse_json};
use super::tx::{db_now, notify_change, write_audit};
use super::{Result, Store, json_list, on_db, to_json};
use crate::config::ProtectionConfig;
use crate::model::{Actor, BreakerMode, BreakerState, IdKind, new_id};
use crate::protect::breaker::{
    BreakerCounts, Cause, Verdict, counts_as_failure, failing_too_long, judge, shows_receiver_up,
    window_figures, window_ms,
};

/// One endpoint's outcomes in a batch, as the counting statement reads them.
#[derive(Debug, Serialize)]
struct CountRow<'a> {
    endpoint_id: &'a str,
    attempts: i64,
    failures: i64,
    /// Failures after the last answer in the batch (all of them if none).
    trailing: i64,
    /// 1 if the receiver answered at least once (which resets the run).
    answered: i64,
    /// What came after the batch's first failure: what a breaker row this
    /// batch creates counts.
    attempts_after_first_failure: i64,
    failures_after_first_failure: i64,
}

/// The counting rows of `outcomes`, in endpoint order (one lock order for
/// every dispatcher). Attempts the outbound guard refused sent nothing and
/// are not counted.
fn count_rows(outcomes: &[Outcome]) -> Vec<CountRow<'_>> {
    let mut by_endpoint: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        by_endpoint
            .entry(outcome.attempt.endpoint_id.as_str())
            .or_default()
            .push(outcome);
    }
    by_endpoint
        .into_iter()
        .filter_map(|(endpoint_id, mut list)| {
            list.sort_by_key(|o| o.attempt.started_at);
            let mut row = CountRow {
                endpoint_id,
                attempts: 0,
                failures: 0,
                trailing: 0,
                answered: 0,
                attempts_after_first_failure: 0,
                failures_after_first_failure: 0,
            };
            for outcome in list {
                let (status, error) = (outcome.attempt.status_code, outcome.attempt.error_kind);
                let failed = counts_as_failure(status, error);
                if !failed && !shows_receiver_up(status, error) {
                    continue;
                }
                if row.failures > 0 {
                    row.attempts_after_first_failure += 1;
                    row.failures_after_first_failure += i64::from(failed);
                }
                row.attempts += 1;
                if failed {
                    row.failures += 1;
                    row.trailing += 1;
                } else {
                    row.answered = 1;
                    row.trailing = 0;
                }
            }
            (row.attempts > 0).then_some(row)
        })
        .collect()
}

/// A breaker row as counting returns it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CountedRow {
    endpoint_id: String,
    mode: String,
    state: String,
    cooldown_ms: i64,
    window_bucket: i64,
    attempts: i64,
    failures: i64,
    previous_attempts: i64,
    previous_failures: i64,
    consecutive_failures: i64,
    probe_delivery_id: Option<String>,
    failing_since: Option<i64>,
}

impl CountedRow {
    fn counts(&self) -> Result<BreakerCounts> {
        Ok(BreakerCounts {
            mode: parse_column("endpoint_breakers", "mode", &self.mode)?,
            state: parse_column("endpoint_breakers", "state", &self.state)?,
            cooldown_ms: self.cooldown_ms,
            window_bucket: self.window_bucket,
            attempts: self.attempts,
            failures: self.failures,
            previous_attempts: self.previous_attempts,
            previous_failures: self.previous_failures,
            consecutive_failures: self.consecutive_failures,
            probe_delivery_id: self.probe_delivery_id.clone(),
            failing_since: self.failing_since,
        })
    }
}

const OPEN: &str = "UPDATE endpoint_breakers
    SET state = 'open', opened_at = $3, cooldown_ms = $4, probe_at = $3 + $4,
        probe_until = NULL, probe_delivery_id = NULL, updated_at = $3
    WHERE endpoint_id = $1 AND state = $2";

const CLOSE: &str = "UPDATE endpoint_breakers
    SET state = 'closed', cooldown_ms = 0, probe_at = NULL, probe_until = NULL,
        probe_delivery_id = NULL, attempts = 0, failures = 0, previous_attempts = 0,
        previous_failures = 0, consecutive_failures = 0, failing_since = NULL, updated_at = $3
    WHERE endpoint_id = $1 AND state = $2";

const INSERT_TRANSITION: &str = "INSERT INTO breaker_transitions
    (id, endpoint_id, from_state, to_state, reason, figures, actor, at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A change of state to record.
struct Transition<'a> {
    endpoint_id: &'a str,
    from: BreakerState,
    to: BreakerState,
    reason: &'a str,
    figures: serde_json::Value,
    actor: Option<&'a str>,
}

async fn record_transition<C>(
    conn: &mut C,
    transition: Transition<'_>,
    now: i64,
) -> std::result::Result<(), sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> &'static str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<String>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    sqlx::query(INSERT_TRANSITION)
        .bind(new_id(IdKind::BreakerTransition))
        .bind(transition.endpoint_id.to_string())
        .bind(transition.from.as_db())
        .bind(transition.to.as_db())
        .bind(transition.reason.to_string())
        .bind(transition.figures.to_string())
        .bind(transition.actor.map(str::to_string))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Holds endpoint `$1` until clock `$2` (its receiver asked to wait), or
/// later if it already waits longer; `$3` is the clock now.
const WAIT_UNTIL: &str = "INSERT INTO endpoint_breakers (endpoint_id, wait_until, updated_at)
    VALUES ($1, $2, $3)
    ON CONFLICT (endpoint_id) DO UPDATE SET
        wait_until = CASE WHEN endpoint_breakers.wait_until > excluded.wait_until
            THEN endpoint_breakers.wait_until ELSE excluded.wait_until END,
        updated_at = excluded.updated_at";

/// The longest `Retry-After` of each endpoint in `outcomes`, in ms.
fn waits_asked(outcomes: &[Outcome]) -> BTreeMap<&str, i64> {
    let mut waits: BTreeMap<&str, i64> = BTreeMap::new();
    for outcome in outcomes {
        if let Some(ms) = outcome.retry_after_ms.filter(|ms| *ms > 0) {
            let wait = waits
                .entry(outcome.attempt.endpoint_id.as_str())
                .or_default();
            *wait = (*wait).max(ms);
        }
    }
    waits
}

/// Inside a dispatcher cycle, after counting: holds each endpoint whose
/// receiver answered 429 or 503 with `Retry-After` until then (at most
/// `protection.max_retry_after`), in endpoint order.
pub(crate) async fn hold_for_retry_after<C>(
    conn: &mut C,
    policy: &ProtectionConfig,
    outcomes: &[Outcome],
    now: i64,
) -> std::result::Result<u64, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    let most = i64::try_from(policy.max_retry_after.as_millis()).unwrap_or(i64::MAX);
    let mut held = 0;
    for (endpoint_id, ms) in waits_asked(outcomes) {
        sqlx::query(WAIT_UNTIL)
            .bind(endpoint_id.to_string())
            .bind(now.saturating_add(ms.min(most)))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        held += 1;
    }
    Ok(held)
}

/// What counting a batch changed.
#[derive(Debug, Default)]
pub(crate) struct Counted {
    /// Breakers that opened or closed.
    pub transitions: u64,
    /// Each of those transitions: where to, and which rule moved it.
    pub moves: Vec<(BreakerState, Cause)>,
    /// Endpoints disabled for failing longer than `protection.disable_after`.
    pub disabled: u64,
}

/// Whether `outcome` failed against its receiver, and how, in a few words:
/// `503`, `connect: Connection refused`.
fn failure_words(outcome: &Outcome) -> Option<String> {
    let attempt = &outcome.attempt;
    if !counts_as_failure(attempt.status_code, attempt.error_kind) {
        return None;
    }
    Some(match (attempt.status_code, &attempt.error_message) {
        (Some(status), _) => format!("status {status}"),
        (None, Some(message)) => message.clone(),
        (None, None) => attempt
            .error_kind
            .map_or_else(|| "a failure".to_string(), |k| k.to_string()),
    })
}

/// Disables endpoint `endpoint_id`, failing since `since`, with the last
/// failure of `outcomes` in its reason; audited. `false` if it was not
/// active any more.
async fn disable_failing<C>(
    conn: &mut C,
    endpoint_id: &str,
    since: i64,
    outcomes: &[Outcome],
    actor: &Actor,
    now: i64,
) -> std::result::Result<bool, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> &'static str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<String>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::QueryResult: super::tx::RowsAffected,
{
    use super::tx::RowsAffected;
    let last_error = outcomes
        .iter()
        .filter(|o| o.attempt.endpoint_id == endpoint_id)
        .max_by_key(|o| o.attempt.started_at)
        .and_then(failure_words)
        .unwrap_or_else(|| "unknown".to_string());
    let reason = format!(
        "every attempt failed since {}; last error: {last_error}",
        crate::model::format_rfc3339(since)
    );
    let disabled = sqlx::query(super::queue::DISABLE_ENDPOINT)
        .bind(endpoint_id.to_string())
        .bind(reason.clone())
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if disabled == 0 {
        return Ok(false);
    }
    let audit = AuditRecord {
        actor,
        action: "endpoint.disable",
        target_ids: vec![endpoint_id.to_string()],
        detail: json!({ "reason": reason, "failing_since": crate::model::format_rfc3339(since) }),
    };
    write_audit(&mut *conn, now, audit).await?;
    Ok(true)
}

/// Inside a dispatcher cycle: counts `outcomes` against their endpoints'
/// breakers and applies what the rules decide (open, close after a probe).
pub(crate) async fn count_outcomes<C>(
    conn: &mut C,
    sql: &Dialect,
    policy: &ProtectionConfig,
    outcomes: &[Outcome],
    system: &Actor,
    now: i64,
) -> std::result::Result<Counted, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    CountedRow: for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> &'static str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<String>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::QueryResult: super::tx::RowsAffected,
{
    use super::tx::RowsAffected;
    let rows = count_rows(outcomes);
    if !policy.breaker || rows.is_empty() {
        return Ok(Counted::default());
    }
    let window = window_ms(policy);
    let bucket = now.div_euclid(window);
    let mut counted: Vec<CountedRow> = sqlx::query_as(sql.count_breaker_outcomes)
        .bind(to_json(&rows))
        .bind(bucket)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let first_failures: Vec<&CountRow> = rows
        .iter()
        .filter(|r| r.failures > 0 && !counted.iter().any(|c| c.endpoint_id == r.endpoint_id))
        .collect();
    if !first_failures.is_empty() {
        let started: Vec<CountedRow> = sqlx::query_as(sql.start_breakers)
            .bind(to_json(&first_failures))
            .bind(bucket)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
        counted.extend(started);
    }
    let probes: HashMap<&str, bool> = outcomes
        .iter()
        .map(|o| {
            let answered = shows_receiver_up(o.attempt.status_code, o.attempt.error_kind);
            (o.attempt.delivery_id.as_str(), answered)
        })
        .collect();
    let mut done = Counted::default();
    for row in counted {
        // A row written by something else: leave it as it is.
        let Ok(counts) = row.counts() else { continue };
        if let Some(since) = failing_too_long(policy, &counts, now)
            && disable_failing(&mut *conn, &row.endpoint_id, since, outcomes, system, now).await?
        {
            done.disabled += 1;
        }
        let probe_answered = counts
            .probe_delivery_id
            .as_deref()
            .and_then(|id| probes.get(id).copied());
        let (to, reason, cooldown_ms, cause) = match judge(policy, &counts, probe_answered, now) {
            Verdict::Stay => continue,
            Verdict::Open {
                reason,
                cooldown_ms,
                cause,
            } => (BreakerState::Open, reason, cooldown_ms, cause),
            Verdict::Close { reason } => (BreakerState::Closed, reason, 0, Cause::ProbeAnswered),
        };
        let statement = if to == BreakerState::Open {
            OPEN
        } else {
            CLOSE
        };
        let changed = sqlx::query(statement)
            .bind(&row.endpoint_id)
            .bind(counts.state.as_db())
            .bind(now)
            .bind(cooldown_ms)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if changed == 0 {
            continue;
        }
        let (attempts, failures) = window_figures(&counts, now, window);
        let figures = json!({
            "window_attempts": attempts.round() as i64,
            "window_failures": failures.round() as i64,
            "consecutive_failures": counts.consecutive_failures,
            "cooldown_ms": cooldown_ms,
        });
        let transition = Transition {
            endpoint_id: &row.endpoint_id,
            from: counts.state,
            to,
            reason: &reason,
            figures,
            actor: None,
        };
        record_transition(&mut *conn, transition, now).await?;
        done.transitions += 1;
        done.moves.push((to, cause));
    }
    Ok(done)
}

/// Inside a claim: takes the probe of each endpoint in `candidates` (its
/// id and breaker state as the queue heads read it) whose breaker is open
/// past its cool-down, or whose last probe was lost with its dispatcher,
/// unless another claim has it; returns those this claim won. They may
/// send one delivery each, as the probe.
pub(crate) async fn start_probes<C>(
    conn: &mut C,
    sql: &Dialect,
    candidates: &[(&str, BreakerState)],
    probe_ms: i64,
    now: i64,
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    (String,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> &'static str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> String: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<String>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = candidates.iter().map(|(id, _)| *id).collect();
    let won: Vec<(String,)> = sqlx::query_as(sql.start_probes)
        .bind(json_list(&ids))
        .bind(now)
        .bind(probe_ms)
        .fetch_all(&mut *conn)
        .await?;
    for (endpoint_id,) in &won {
        let was_open = candidates
            .iter()
            .any(|(id, before)| id == endpoint_id && *before == BreakerState::Open);
        if was_open {
            let transition = Transition {
                endpoint_id,
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                reason: "cool-down over: one delivery goes as a probe",
                figures: json!({}),
                actor: None,
            };
            record_transition(&mut *conn, transition, now).await?;
        }
    }
    Ok(won.into_iter().map(|(id,)| id).collect())
}

/// Closes endpoint `$1`'s breaker (unless forced) and starts its counters
/// over, at clock `$2`: an operator enabled the endpoint again after it was
/// disabled, so its held work flows at once.
pub(crate) const CLOSE_ON_ENABLE: &str = "UPDATE endpoint_breakers
    SET state = 'closed', cooldown_ms = 0, probe_at = NULL, probe_until = NULL,
        probe_delivery_id = NULL, attempts = 0, failures = 0, previous_attempts = 0,
        previous_failures = 0, consecutive_failures = 0, failing_since = NULL, updated_at = $2
    WHERE endpoint_id = $1 AND mode = 'auto'";

/// Names `delivery_id` as the probe of `endpoint_id`'s half-open breaker.
pub(crate) const NOTE_PROBE: &str = "UPDATE endpoint_breakers SET probe_delivery_id = $2
    WHERE endpoint_id = $1 AND state = 'half_open'";

/// An endpoint's breaker as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breaker {
    pub endpoint_id: String,
    pub state: BreakerState,
    pub mode: BreakerMode,
    /// When it last opened (unix ms).
    pub opened_at: Option<i64>,
    /// Open: when the next probe may go (none while forced open).
    pub next_probe_at: Option<i64>,
    /// The current cool-down, in ms (0 while closed).
    pub cooldown_ms: i64,
    /// Failures in a row, across all dispatchers.
    pub consecutive_failures: i64,
    /// Attempts and failures over the sliding window.
    pub window_attempts: i64,
    pub window_failures: i64,
    /// When the receiver last answered (unix ms).
    pub last_answered_at: Option<i64>,
    /// The receiver answered 429 or 503 with `Retry-After`: nothing is sent
    /// before this time (unix ms); `None` when it has passed.
    pub wait_until: Option<i64>,
}

impl Breaker {
    /// The breaker of an endpoint that has never failed: closed, counting.
    pub fn pristine(endpoint_id: &str) -> Breaker {
        Breaker {
            endpoint_id: endpoint_id.to_string(),
            state: BreakerState::Closed,
            mode: BreakerMode::Auto,
            opened_at: None,
            next_probe_at: None,
            cooldown_ms: 0,
            consecutive_failures: 0,
            window_attempts: 0,
            window_failures: 0,
            last_answered_at: None,
            wait_until: None,
        }
    }
}

/// One change of a breaker's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerTransition {
    pub id: String,
    pub endpoint_id: String,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: String,
    /// The figures that decided it (window counts, failures in a row,
    /// cool-down).
    pub figures: serde_json::Value,
    /// Who forced it; `None` when the rules did.
    pub actor: Option<String>,
    pub at: i64,
}

#[derive(sqlx::FromRow)]
struct BreakerRow {
    #[sqlx(flatten)]
    counted: CountedRow,
    opened_at: Option<i64>,
    probe_at: Option<i64>,
    last_answered_at: Option<i64>,
    wait_until: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    id: String,
    endpoint_id: String,
    from_state: String,
    to_state: String,
    reason: String,
    figures: String,
    actor: Option<String>,
    at: i64,
}

const BREAKER_COLUMNS: &str = "endpoint_id, mode, state, cooldown_ms, window_bucket, attempts,
    failures, previous_attempts, previous_failures, consecutive_failures, probe_delivery_id,
    failing_since, opened_at, probe_at, last_answered_at, wait_until";

impl BreakerRow {
    fn into_breaker(self, policy: &ProtectionConfig, now: i64) -> Result<Breaker> {
        let counts = self.counted.counts()?;
        let (mode, state) = (counts.mode, counts.state);
        let (attempts, failures) = window_figures(&counts, now, window_ms(policy));
        Ok(Breaker {
            endpoint_id: self.counted.endpoint_id,
            state,
            mode,
            opened_at: self.opened_at,
            next_probe_at: self
                .probe_at
                .filter(|_| mode == BreakerMode::Auto && state == BreakerState::Open),
            cooldown_ms: counts.cooldown_ms,
            consecutive_failures: counts.consecutive_failures,
            window_attempts: attempts.round() as i64,
            window_failures: failures.round() as i64,
            last_answered_at: self.last_answered_at,
            wait_until: self.wait_until.filter(|until| *until > now),
        })
    }
}

impl TransitionRow {
    fn into_transition(self) -> Result<BreakerTransition> {
        Ok(BreakerTransition {
            from: parse_column("breaker_transitions", "from_state", &self.from_state)?,
            to: parse_column("breaker_transitions", "to_state", &self.to_state)?,
            figures: parse_json("breaker_transitions", "figures", &self.figures)?,
            id: self.id,
            endpoint_id: self.endpoint_id,
            reason: self.reason,
            actor: self.actor,
            at: self.at,
        })
    }
}

impl Store {
    /// The breaker of endpoint `endpoint_id` (closed and counting if it
    /// has never failed).
    pub async fn breaker(&self, endpoint_id: &str) -> Result<Breaker> {
        self.get_endpoint(endpoint_id).await?;
        let policy = std::sync::Arc::clone(&self.protection);
        let found: Option<(BreakerRow, i64)> = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let row: Option<BreakerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {BREAKER_COLUMNS} FROM endpoint_breakers WHERE endpoint_id = $1"
            )))
            .bind(endpoint_id)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|row| (row, now))
        });
        match found {
            Some((row, now)) => row.into_breaker(&policy, now),
            None => Ok(Breaker::pristine(endpoint_id)),
        }
    }

    /// The breakers that are not closed, or are forced, by endpoint id.
    pub async fn breakers_not_closed(&self) -> Result<Vec<Breaker>> {
        self.breakers_where("state <> 'closed' OR mode <> 'auto'")
            .await
    }

    /// Every breaker that has counted a failure (the others are pristine),
    /// by endpoint id: one row per endpoint that ever failed.
    pub async fn breakers_that_counted(&self) -> Result<Vec<Breaker>> {
        self.breakers_where("TRUE").await
    }

    async fn breakers_where(&self, condition: &'static str) -> Result<Vec<Breaker>> {
        let policy = std::sync::Arc::clone(&self.protection);
        let (rows, now): (Vec<BreakerRow>, i64) = on_db!(self, |pools, sql| {
            let mut conn = pools.read.acquire().await?;
            let now = db_now(sql, &mut *conn).await?;
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {BREAKER_COLUMNS} FROM endpoint_breakers
                  WHERE {condition} ORDER BY endpoint_id"
            )))
            .fetch_all(&mut *conn)
            .await?;
            (rows, now)
        });
        rows.into_iter()
            .map(|row| row.into_breaker(&policy, now))
            .collect()
    }

    /// The latest `limit` transitions of endpoint `endpoint_id`, newest first.
    pub async fn breaker_transitions(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<BreakerTransition>> {
        let rows: Vec<TransitionRow> = on_db!(self, |pools, _sql| {
            sqlx::query_as(
                "SELECT id, endpoint_id, from_state, to_state, reason, figures, actor, at
                   FROM breaker_transitions WHERE endpoint_id = $1
                  ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(endpoint_id)
            .bind(limit)
            .fetch_all(&pools.read)
            .await?
        });
        rows.into_iter()
            .map(TransitionRow::into_transition)
            .collect()
    }

    /// Forces endpoint `endpoint_id`'s breaker open or closed, or hands it
    /// back to its outcomes (`auto`); audited, and the change recorded as a
    /// transition. Back to `auto` from a forced open, a probe goes at once.
    pub async fn set_breaker(
        &self,
        endpoint_id: &str,
        mode: BreakerMode,
        actor: &Actor,
    ) -> Result<Breaker> {
        let cooldown = crate::protect::breaker::next_cooldown_ms(&self.protection, 0);
        let found = on_db!(self, |pools, sql| {
            let mut tx = pools.write.begin_with(sql.begin_write).await?;
            let now = db_now(sql, &mut *tx).await?;
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT id FROM endpoints WHERE id = $1 AND deleted_at IS NULL")
                    .bind(endpoint_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                false
            } else {
                let before: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT state FROM endpoint_breakers WHERE endpoint_id = $1{}",
                    sql.row_lock("FOR UPDATE")
                )))
                .bind(endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                let before = before
                    .and_then(|(state,)| BreakerState::from_db(&state).ok())
                    .unwrap_or(BreakerState::Closed);
                let after = match mode {
                    BreakerMode::Open => BreakerState::Open,
                    BreakerMode::Closed => BreakerState::Closed,
                    // A forced-open breaker handed back probes first.
                    BreakerMode::Auto if before == BreakerState::Open => BreakerState::Open,
                    BreakerMode::Auto => BreakerState::Closed,
                };
                sqlx::query(SET_MODE)
                    .bind(endpoint_id)
                    .bind(mode.as_db())
                    .bind(after.as_db())
                    .bind(now)
                    .bind(cooldown)
                    .execute(&mut *tx)
                    .await?;
                let reason = format!("set to {} by {}", mode.as_str(), actor.name);
                if before != after {
                    let transition = Transition {
                        endpoint_id,
                        from: before,
                        to: after,
                        reason: &reason,
                        figures: json!({}),
                        actor: Some(&actor.name),
                    };
                    record_transition(&mut *tx, transition, now).await?;
                }
                let moved = (before != after).then_some(after);
                let audit = AuditRecord {
                    actor,
                    action: "endpoint.breaker",
                    target_ids: vec![endpoint_id.to_string()],
                    detail: json!({ "mode": mode.as_str(), "from": before.as_str(), "to": after.as_str() }),
                };
                write_audit(&mut *tx, now, audit).await?;
                notify_change(sql, &mut *tx).await?;
                tx.commit().await?;
                if let Some(to) = moved {
                    crate::metrics::metrics().breaker_moved(to.as_str(), Cause::Operator.label());
                }
                true
            }
        });
        if !found {
            return Err(self.missing("endpoint", endpoint_id));
        }
        self.note_change();
        self.breaker(endpoint_id).await
    }
}

/// Sets endpoint `$1`'s breaker to mode `$2`, state `$3` at clock `$4`:
/// forced states and a return to `auto` start the counters over; a breaker
/// left open probes at once, with cool-down `$5`.
const SET_MODE: &str = "INSERT INTO endpoint_breakers (endpoint_id, mode, state, opened_at,
        cooldown_ms, probe_at, updated_at)
    VALUES ($1, $2, $3, CASE WHEN $3 = 'open' THEN $4 END, CASE WHEN $3 = 'open' THEN $5 ELSE 0 END,
        CASE WHEN $3 = 'open' THEN $4 END, $4)
    ON CONFLICT (endpoint_id) DO UPDATE SET
        mode = excluded.mode,
        state = excluded.state,
        opened_at = CASE WHEN excluded.state = 'open' AND endpoint_breakers.state <> 'open'
            THEN excluded.opened_at ELSE endpoint_breakers.opened_at END,
        cooldown_ms = excluded.cooldown_ms,
        probe_at = excluded.probe_at,
        probe_until = NULL,
        probe_delivery_id = NULL,
        attempts = 0, failures = 0, previous_attempts = 0, previous_failures = 0,
        consecutive_failures = 0, failing_since = NULL,
        updated_at = excluded.updated_at";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorKind;
    use crate::store::queue::{NewAttempt, NextStep};

    fn outcome(endpoint: &str, at: i64, status: Option<i64>, error: Option<ErrorKind>) -> Outcome {
        Outcome {
            attempt: NewAttempt {
                id: format!("att_{at}"),
                delivery_id: format!("dlv_{at}"),
                endpoint_id: endpoint.to_string(),
                attempt_number: 1,
                started_at: at,
                duration_ms: 1,
                status_code: status,
                error_kind: error,
                error_message: None,
                request_headers: Vec::new(),
                response_body: None,
            },
            next: NextStep::Succeeded,
            disable_endpoint: None,
            published_at: None,
            retry_after_ms: None,
        }
    }

    #[test]
    fn a_batch_counts_per_endpoint_in_attempt_order() {
        let down = Some(ErrorKind::Connect);
        let http = Some(ErrorKind::HttpStatus);
        let outcomes = [
            outcome("ep_b", 3, None, down),
            outcome("ep_a", 2, Some(200), None),
            outcome("ep_b", 1, Some(200), None),
            outcome("ep_b", 2, Some(503), http),
            outcome("ep_a", 1, None, Some(ErrorKind::BlockedDestination)),
            outcome("ep_c", 1, Some(404), http),
        ];
        let rows = count_rows(&outcomes);
        let view: Vec<(&str, i64, i64, i64, i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.endpoint_id,
                    r.attempts,
                    r.failures,
                    r.trailing,
                    r.answered,
                    r.attempts_after_first_failure,
                    r.failures_after_first_failure,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("ep_a", 1, 0, 0, 1, 0, 0),
                ("ep_b", 3, 2, 2, 1, 1, 1),
                ("ep_c", 1, 0, 0, 1, 0, 0),
            ]
        );
    }
}
