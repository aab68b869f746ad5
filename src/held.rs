//! Why work that is due waits: the reasons a pending or retrying delivery
//! is held (its endpoint paused or disabled, or its circuit breaker open),
//! in the words every screen shows. Held is not a state; it is said beside
//! one.

use std::collections::HashMap;

use crate::model::{Delivery, DeliveryState, EndpointState};

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
    /// Its endpoint's circuit breaker is open (or waiting on its probe).
    BreakerOpen,
    /// Its receiver answered 429 or 503 with `Retry-After`: nothing goes
    /// to the endpoint before the time it named.
    ReceiverAskedToWait,
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
            Hold::BreakerOpen => "breaker_open",
            Hold::ReceiverAskedToWait => "receiver_asked_to_wait",
        }
    }

    /// The reason in full: `held: endpoint paused`.
    pub fn label(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "held: endpoint paused",
            Hold::EndpointDisabled => "held: endpoint disabled",
            Hold::BreakerOpen => "held: breaker open",
            Hold::ReceiverAskedToWait => "held: receiver asked to wait",
        }
    }

    /// The reason where a column is narrow: `held: paused`.
    pub fn short_label(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "held: paused",
            Hold::EndpointDisabled => "held: disabled",
            Hold::BreakerOpen => "held: breaker",
            Hold::ReceiverAskedToWait => "held: asked to wait",
        }
    }

    /// The held thing's state as a word for a sentence: "is paused".
    pub fn endpoint_word(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "paused",
            Hold::EndpointDisabled => "disabled",
            Hold::BreakerOpen => "behind an open circuit breaker",
            Hold::ReceiverAskedToWait => "asked by its receiver to wait (Retry-After)",
        }
    }

    /// What ends the hold, for "… will wait until it is resumed".
    pub fn until(self) -> &'static str {
        match self {
            Hold::EndpointPaused => "it is resumed",
            Hold::EndpointDisabled => "it is enabled again",
            Hold::BreakerOpen => "a probe gets an answer and the breaker closes",
            Hold::ReceiverAskedToWait => "the time the receiver named",
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
        assert_eq!(Hold::EndpointPaused.label(), "held: endpoint paused");
    }
}
