//! The claim's decisions and its one statement: which endpoints may give
//! work (active, due, under their in-flight cap), and the statement that
//! leases the globally oldest due deliveries across them.

use crate::model::BreakerState;
use crate::store::sql::dialect::Dialect;

/// Milliseconds a lease outlives the endpoint's timeout, so an attempt that
/// runs its full timeout still records its outcome under its own lease.
pub(crate) const LEASE_MARGIN_MS: i64 = 5_000;

/// Most endpoints one claim statement reads (two bind parameters each);
/// beyond that, further statements claim from the next endpoints in due
/// order with what is left of the limit.
pub(crate) const ENDPOINTS_PER_STATEMENT: usize = 32;

/// An endpoint with queued work, as the claim sees it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Head {
    pub id: String,
    /// Its earliest queued due time.
    pub due: Option<i64>,
    /// Its in-flight cap (its own, or the default).
    pub cap: i64,
    /// Its deliveries leased right now, by any dispatcher.
    pub in_flight: i64,
    /// Its breaker's stored state, if it has failed since it last closed.
    pub breaker: Option<String>,
    /// When its breaker may send a probe (open past its cool-down, or
    /// half-open with the probe lost); `None` while closed or forced.
    pub probe_due: Option<i64>,
    /// Until when its receiver asked to be left alone (`Retry-After`).
    pub wait_until: Option<i64>,
    /// Its rate limit (requests a second, burst), if it has one, and the
    /// bucket as the last claim left it.
    pub rate_per_second: Option<i64>,
    pub rate_burst: Option<i64>,
    pub tokens_milli: Option<i64>,
    pub refilled_at: Option<i64>,
}

impl Head {
    /// Thousandths of a request its rate limit lets through at `now`;
    /// `None` without a limit. The same sum as [`Dialect::tokens_at`].
    pub fn tokens_milli_at(&self, now: i64) -> Option<i64> {
        let (rate, burst) = (self.rate_per_second?, self.rate_burst?);
        let held = self.tokens_milli.unwrap_or(0);
        let since = now.saturating_sub(self.refilled_at.unwrap_or(now)).max(0);
        Some(
            held.saturating_add(since.saturating_mul(rate))
                .min(burst.saturating_mul(1000)),
        )
    }

    /// Whether due work of this endpoint waits at `now` for its rate limit.
    pub fn waits_for_tokens(&self, now: i64) -> bool {
        self.due.is_some_and(|due| due <= now)
            && self.tokens_milli_at(now).is_some_and(|milli| milli < 1000)
    }

    /// What its breaker lets through at `now`.
    fn gate(&self, now: i64) -> Gate {
        if self.wait_until.is_some_and(|until| until > now) {
            return Gate::Held;
        }
        match self.breaker.as_deref() {
            None | Some("closed") => Gate::Open,
            Some(_) if self.probe_due.is_some_and(|due| due <= now) => Gate::Probe,
            Some(_) => Gate::Held,
        }
    }
}

/// What an endpoint's breaker lets a claim take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Closed: up to its in-flight cap.
    Open,
    /// One delivery, as the probe, if this claim wins it.
    Probe,
    /// Nothing: its due work is held.
    Held,
}

/// An endpoint this claim may take deliveries from.
#[derive(Debug)]
pub(crate) struct Eligible {
    pub endpoint_id: String,
    /// Its oldest due time.
    pub due: i64,
    /// Free in-flight slots, as the heads counted them.
    pub free: i64,
    /// Its in-flight cap.
    pub cap: i64,
    /// Its breaker is open or half-open and this would be its probe: the
    /// claim must win the probe first, and then takes one delivery.
    pub probe: Option<BreakerState>,
    /// It has a rate limit: `free` counts its tokens too, and what the
    /// claim leases is taken from them.
    pub rate_limited: bool,
}

/// The active endpoints with due work and free capacity, oldest head first,
/// and how long until work that is not yet due becomes due.
pub(crate) fn eligible_endpoints(heads: &[Head], now: i64) -> (Vec<Eligible>, Option<i64>) {
    let mut eligible = Vec::new();
    let mut next_due_in: Option<i64> = None;
    for head in heads {
        let Some(due) = head.due else { continue };
        let gate = head.gate(now);
        if gate == Gate::Held {
            // Look again when its probe may go or its wait ends.
            let free_at = [head.probe_due, head.wait_until.filter(|w| *w > now)]
                .into_iter()
                .flatten()
                .max();
            if let Some(free_at) = free_at {
                let wait = (free_at.max(due) - now).max(0);
                next_due_in = Some(next_due_in.map_or(wait, |w| w.min(wait)));
            }
            continue;
        }
        // Before the cap: on Postgres an endpoint whose bucket is empty is
        // not locked for this claim, so it reads as full, and the wake-up
        // for its next request must still be set.
        let tokens = head.tokens_milli_at(now);
        if let (Some(milli), Some(rate)) = (tokens, head.rate_per_second)
            && milli < 1000
        {
            // Look again when the next request's worth has come in.
            let refill = (1000 - milli + rate - 1) / rate.max(1);
            let wait = refill.max(due - now).max(0);
            next_due_in = Some(next_due_in.map_or(wait, |w| w.min(wait)));
            continue;
        }
        let cap = if gate == Gate::Probe { 1 } else { head.cap };
        let mut free = cap - head.in_flight;
        if let Some(milli) = tokens {
            free = free.min(milli / 1000);
        }
        if free <= 0 {
            continue;
        }
        let wait = (due - now).max(0);
        next_due_in = Some(next_due_in.map_or(wait, |w| w.min(wait)));
        if due <= now {
            eligible.push(Eligible {
                endpoint_id: head.id.clone(),
                due,
                free,
                cap,
                probe: (gate == Gate::Probe).then(|| {
                    head.breaker
                        .as_deref()
                        .and_then(|state| BreakerState::from_db(state).ok())
                        .unwrap_or(BreakerState::Open)
                }),
                rate_limited: head.rate_per_second.is_some(),
            });
        }
    }
    eligible.sort_by(|a, b| (a.due, &a.endpoint_id).cmp(&(b.due, &b.endpoint_id)));
    (eligible, next_due_in)
}

/// The claim as one statement for `endpoints` eligible endpoints: take each
/// one's oldest due deliveries (up to its free slots, an index range scan
/// per endpoint), keep the globally oldest `$6` of them (a k-way merge the
/// database does, so no candidate row crosses to the client), lease those,
/// and return them with their payloads.
///
/// Parameters: `$1` now, `$2` owner, `$3` lease ms, `$4` default timeout ms,
/// `$5` lease margin ms, `$6` limit, then per endpoint `k` its id at
/// `$(7+2k)` and at `$(8+2k)` its free slots, or, where the claim counts
/// the leases itself ([`Dialect::claim_counts_leases`]), its cap. Where
/// it does and `rate_limited` (some endpoint of the claim has a rate
/// limit), each arm also reads its endpoint's bucket again after the
/// locks; claims of endpoints without one never read it. The text depends
/// only on the endpoint count and that flag, so the prepared-statement
/// cache keeps two per count.
///
/// The leased rows are reached by primary key and by nothing else: no
/// condition on `state` outside the arms (the arms hold the picked rows
/// locked, or the write lock on SQLite, so it could never reject one). With
/// one, Postgres could plan the outer scan over the queue index, and a plan
/// made while the queue was near empty, which Postgres keeps until the next
/// statistics, scanned a 50,000-delivery backlog for every claim.
pub(crate) fn claim_sql(sql: &Dialect, endpoints: usize, rate_limited: bool) -> String {
    let arms: Vec<String> = (0..endpoints)
        .map(|k| {
            let endpoint = 7 + 2 * k;
            let slots = 8 + 2 * k;
            let limit = if sql.claim_counts_leases && rate_limited {
                // The statement starts after the endpoint locks, so this
                // count includes every lease committed before them, and
                // the tokens every claim before them left.
                format!(
                    "GREATEST(0, LEAST(${slots} - (SELECT COUNT(*) FROM deliveries
                         WHERE endpoint_id = ${endpoint} AND state = 'in_flight'),
                         COALESCE((SELECT {tokens} / 1000 FROM endpoint_rate_limits r
                                    WHERE r.endpoint_id = ${endpoint}), ${slots})))",
                    tokens = sql.tokens_at("$1", "r."),
                )
            } else if sql.claim_counts_leases {
                // The statement starts after the endpoint locks, so this
                // count includes every lease committed before them.
                format!(
                    "GREATEST(0, ${slots} - (SELECT COUNT(*) FROM deliveries
                         WHERE endpoint_id = ${endpoint} AND state = 'in_flight'))"
                )
            } else {
                format!("${slots}")
            };
            format!(
                "SELECT * FROM (SELECT id, next_attempt_at FROM deliveries{index}
                     WHERE endpoint_id = ${endpoint} AND state IN ('pending', 'scheduled')
                       AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, id LIMIT {limit}{lock}) AS c{k}",
                index = sql.queue_index_hint,
                lock = sql.skip_locked,
            )
        })
        .collect();
    format!(
        "UPDATE deliveries{pk} SET state = 'in_flight', lease_owner = $2, updated_at = $1,
             lease_expires_at = $1 + {greatest}($3, COALESCE(
                 (SELECT e.timeout_ms FROM endpoints e WHERE e.id = deliveries.endpoint_id), $4) + $5)
         WHERE id IN (SELECT id FROM ({arms}) AS candidates ORDER BY next_attempt_at, id LIMIT $6)
         RETURNING id, event_id, endpoint_id, attempts, topic, next_attempt_at,
             (SELECT payload FROM events WHERE events.id = deliveries.event_id) AS payload",
        pk = sql.primary_key_hint,
        greatest = sql.greatest,
        arms = arms.join("\n UNION ALL "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: &str, due: i64, free: i64) -> Head {
        Head {
            id: id.to_string(),
            due: Some(due),
            cap: 8,
            in_flight: 8 - free,
            breaker: None,
            probe_due: None,
            wait_until: None,
            rate_per_second: None,
            rate_burst: None,
            tokens_milli: None,
            refilled_at: None,
        }
    }

    fn behind_breaker(id: &str, state: &str, probe_due: Option<i64>) -> Head {
        Head {
            breaker: Some(state.to_string()),
            probe_due,
            ..head(id, 10, 8)
        }
    }

    #[test]
    fn an_open_breaker_holds_its_work_until_one_probe_may_go() {
        let heads = [
            behind_breaker("ep_closed", "closed", None),
            behind_breaker("ep_cooling", "open", Some(400)),
            behind_breaker("ep_forced", "open", None),
            behind_breaker("ep_probe", "open", Some(90)),
            behind_breaker("ep_lost", "half_open", Some(100)),
        ];
        let (eligible, next_due) = eligible_endpoints(&heads, 100);
        let got: Vec<(&str, i64, Option<BreakerState>)> = eligible
            .iter()
            .map(|e| (e.endpoint_id.as_str(), e.free, e.probe))
            .collect();
        assert_eq!(
            got,
            [
                ("ep_closed", 8, None),
                ("ep_lost", 1, Some(BreakerState::HalfOpen)),
                ("ep_probe", 1, Some(BreakerState::Open)),
            ]
        );
        assert_eq!(next_due, Some(0));
        let (_, next_due) = eligible_endpoints(&heads[1..3], 100);
        assert_eq!(next_due, Some(300), "wakes when the probe may go");
    }

    #[test]
    fn a_receiver_that_asked_to_wait_is_left_alone_until_then() {
        let waiting = Head {
            wait_until: Some(250),
            ..head("ep_waiting", 10, 8)
        };
        let (eligible, next_due) = eligible_endpoints(std::slice::from_ref(&waiting), 100);
        assert!(eligible.is_empty());
        assert_eq!(next_due, Some(150), "wakes when the wait ends");
        let (eligible, _) = eligible_endpoints(&[waiting], 250);
        assert_eq!(eligible.len(), 1, "free again at the time it named");
    }

    #[test]
    fn a_rate_limit_takes_only_the_tokens_its_bucket_holds() {
        // 10/s, burst 3: 1.5 requests' worth left 200 ms ago, 2 since.
        let limited = Head {
            rate_per_second: Some(10),
            rate_burst: Some(3),
            tokens_milli: Some(1_500),
            refilled_at: Some(0),
            ..head("ep_limited", 0, 8)
        };
        let (eligible, _) = eligible_endpoints(std::slice::from_ref(&limited), 200);
        assert_eq!(eligible.len(), 1);
        assert_eq!(
            eligible[0].free, 3,
            "1.5 + 0.2 s x 10/s = 3.5, capped at the burst"
        );
        assert!(eligible[0].rate_limited);
        let (eligible, _) = eligible_endpoints(std::slice::from_ref(&limited), 0);
        assert_eq!(eligible[0].free, 1, "whole requests only");

        let empty = Head {
            tokens_milli: Some(400),
            ..limited
        };
        let (eligible, next_due) = eligible_endpoints(std::slice::from_ref(&empty), 0);
        assert!(eligible.is_empty(), "no whole request in the bucket");
        assert_eq!(next_due, Some(60), "600 thousandths at 10/s: 60 ms");
        assert!(empty.waits_for_tokens(0));
        assert!(!empty.waits_for_tokens(60));

        // Not locked for this claim (Postgres reads it as full): the
        // wake-up for its next request is still set.
        let unlocked = Head {
            in_flight: 8,
            ..empty
        };
        let (_, next_due) = eligible_endpoints(std::slice::from_ref(&unlocked), 0);
        assert_eq!(next_due, Some(60));
    }

    #[test]
    fn eligible_endpoints_have_capacity_and_come_oldest_first() {
        let heads = [
            head("ep_a", 50, 3),
            head("ep_b", 10, 2),
            head("ep_c", 500, 8),
            head("ep_d", 20, 0),
        ];
        let (eligible, next_due) = eligible_endpoints(&heads, 100);
        let got: Vec<(&str, i64)> = eligible
            .iter()
            .map(|e| (e.endpoint_id.as_str(), e.free))
            .collect();
        assert_eq!(got, [("ep_b", 2), ("ep_a", 3)]);
        assert_eq!(next_due, Some(0));
    }

    #[test]
    fn saturated_endpoints_are_skipped_and_future_work_sets_the_wait() {
        let heads = [head("ep_a", 50, 0), head("ep_c", 700, 8)];
        let (eligible, next_due) = eligible_endpoints(&heads, 100);
        assert!(eligible.is_empty());
        assert_eq!(next_due, Some(600));
    }

    #[test]
    fn the_claim_statement_numbers_its_parameters_per_endpoint() {
        let text = claim_sql(&crate::store::sql::dialect::SQLITE, 2, false);
        assert!(text.contains("endpoint_id = $7") && text.contains("LIMIT $8"));
        assert!(text.contains("endpoint_id = $9") && text.contains("LIMIT $10"));
        assert_eq!(text.matches("UNION ALL").count(), 1);
        assert!(text.contains("INDEXED BY deliveries_queue"));
        assert!(text.contains("MAX($3"));
        assert!(
            !text.contains("COUNT(*)"),
            "SQLite's single writer counted leases exactly"
        );
        let text = claim_sql(&crate::store::sql::dialect::POSTGRES, 1, false);
        assert!(text.contains("FOR UPDATE SKIP LOCKED") && !text.contains("INDEXED BY"));
        assert!(text.contains("GREATEST(0, $8 - (SELECT COUNT(*)"), "{text}");
        assert!(
            !text.contains("endpoint_rate_limits"),
            "no bucket read without a limited endpoint"
        );
        let text = claim_sql(&crate::store::sql::dialect::POSTGRES, 1, true);
        assert!(text.contains("LEAST($8 - (SELECT COUNT(*)"), "{text}");
        assert!(text.contains("FROM endpoint_rate_limits r"), "{text}");
        assert!(text.contains("GREATEST($3"));
    }
}
