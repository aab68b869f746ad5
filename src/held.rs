//! Why work that is due waits: the reasons a pending or retrying delivery
//! is held (its endpoint paused or disabled, its circuit breaker open, its
//! receiver asking to wait, its rate limit spent), in the words every
//! screen shows. Held is not a state; it is said beside one.

use std::collections::HashMap;

use crate::model::{Delivery, DeliveryState, EndpointState, Millis};

/// The endpoints that hold their due work, by id, with what holds it: the
/// few that are paused, disabled or behind an open breaker, read once per
/// list.
pub type Stopped = HashMap<String, Hold>;

/// What holds a delivery back from being attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hold {
    /// An operator paused its endpoint.
    EndpointPaused,
    /// Its endpoint was disabled (by an operator or automatically).
    EndpointDisabled,
    /// Its endpoint's circuit breaker is open (or waiting on its probe),
    /// with when the next probe may go (`None` while forced open).
    BreakerOpen { next_probe_at: Option<Millis> },
    /// Its receiver answered 429 or 503 with `Retry-After`: nothing goes
    /// to the endpoint before the time it named.
    ReceiverAskedToWait { until: Millis },
    /// Its endpoint's rate limit has no request left this moment.
    RateLimited { per_second: i64 },
}

impl Hold {
    /// What an endpoint in `state` holds of its due work, if anything.
    pub fn of_endpoint(state: EndpointState) -> Option<Hold> {
        match state {
            EndpointState::Active => None,
            EndpointState::Paused => Some(Hold::EndpointPaused),
            EndpointState::Disabled => Some(Hold::EndpointDisabled),
        }
    }

    /// What holds `delivery_state` work of an endpoint in `endpoint_state`:
    /// only work waiting to be attempted is held.
    pub fn of_delivery(
        delivery_state: DeliveryState,
        endpoint_state: EndpointState,
    ) -> Option<Hold> {
        Hold::of_endpoint(endpoint_state).filter(|_| waits(delivery_state))
    }

    /// What holds `delivery`, given the endpoints that hold their work.
    pub fn of(delivery: &Delivery, stopped: &Stopped) -> Option<Hold> {
        let hold = *stopped.get(&delivery.endpoint_id)?;
        waits(delivery.state).then_some(hold)
    }

    /// The reason as a machine reads it (API and `--json`): `endpoint_paused`.
    pub fn code(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "endpoint_paused",
            Hold::EndpointDisabled => "endpoint_disabled",
            Hold::BreakerOpen { .. } => "breaker_open",
            Hold::ReceiverAskedToWait { .. } => "receiver_asked_to_wait",
            Hold::RateLimited { .. } => "rate_limited",
        }
    }

    /// The reason in full, times written by `time`: `held: endpoint
    /// paused`, `held: breaker open, next probe 02:14`.
    pub fn label(self, time: impl Fn(Millis) -> String) -> String {
        match self {
            Hold::EndpointPaused => "held: endpoint paused".to_string(),
            Hold::EndpointDisabled => "held: endpoint disabled".to_string(),
            Hold::BreakerOpen {
                next_probe_at: Some(at),
            } => format!("held: breaker open, next probe {}", time(at)),
            Hold::BreakerOpen {
                next_probe_at: None,
            } => "held: breaker open".to_string(),
            Hold::ReceiverAskedToWait { until } => {
                format!("held: receiver asked to wait until {}", time(until))
            }
            Hold::RateLimited { per_second } => format!("held: rate limit {per_second}/s"),
        }
    }

    /// The reason where a column is narrow: `held: paused`.
    pub fn short_label(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "held: paused",
            Hold::EndpointDisabled => "held: disabled",
            Hold::BreakerOpen { .. } => "held: breaker",
            Hold::ReceiverAskedToWait { .. } => "held: asked to wait",
            Hold::RateLimited { .. } => "held: rate limit",
        }
    }

    /// The held thing's state as a word for a sentence: "is paused".
    pub fn endpoint_word(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "paused",
            Hold::EndpointDisabled => "disabled",
            Hold::BreakerOpen { .. } => "behind an open circuit breaker",
            Hold::ReceiverAskedToWait { .. } => "asked by its receiver to wait (Retry-After)",
            Hold::RateLimited { .. } => "at its rate limit",
        }
    }

    /// What ends the hold, for "… will wait until it is resumed".
    pub fn until(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "it is resumed",
            Hold::EndpointDisabled => "it is enabled again",
            Hold::BreakerOpen { .. } => "a probe gets an answer and the breaker closes",
            Hold::ReceiverAskedToWait { .. } => "the time the receiver named",
            Hold::RateLimited { .. } => "its rate limit lets it go",
        }
    }
}

/// Whether work in `state` waits to be attempted (and so can be held).
pub fn waits(state: DeliveryState) -> bool {
    matches!(state, DeliveryState::Pending | DeliveryState::Retrying)
}

#[cfg(test)]
mod tests {
    use super::Hold;
    use crate::model::{DeliveryState, EndpointState};

    #[test]
    fn only_waiting_work_of_a_stopped_endpoint_is_held() {
        assert_eq!(
            Hold::of_delivery(DeliveryState::Pending, EndpointState::Paused),
            Some(Hold::EndpointPaused)
        );
        assert_eq!(
            Hold::of_delivery(DeliveryState::Retrying, EndpointState::Disabled),
            Some(Hold::EndpointDisabled)
        );
        assert_eq!(
            Hold::of_delivery(DeliveryState::Pending, EndpointState::Active),
            None
        );
        assert_eq!(
            Hold::of_delivery(DeliveryState::Dead, EndpointState::Paused),
            None
        );
        let time = |ms: i64| format!("t{ms}");
        assert_eq!(Hold::EndpointPaused.label(time), "held: endpoint paused");
        let probe = Hold::BreakerOpen {
            next_probe_at: Some(5),
        };
        assert_eq!(probe.label(time), "held: breaker open, next probe t5");
        let wait = Hold::ReceiverAskedToWait { until: 7 };
        assert_eq!(wait.label(time), "held: receiver asked to wait until t7");
        let limited = Hold::RateLimited { per_second: 10 };
        assert_eq!(limited.label(time), "held: rate limit 10/s");
    }
}
