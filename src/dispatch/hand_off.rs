//! Hand-off: deliveries published in the dispatcher's own process are
//! leased to it in the publishing transaction and passed over a channel, so
//! they are attempted the moment they are committed instead of waiting for
//! the dispatcher's next claim (a transaction of its own on the one writer).
//!
//! The dispatcher's attempt slots are shared with publishers: a publish
//! takes slots inside its transaction for exactly the deliveries it leases,
//! and a claim does the same, so the two never start more attempts than
//! `concurrency`, and neither holds slots while it waits for the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::store::{AttemptSlots, Claimed, HandOffRequest};

/// The dispatcher's free attempt slots.
#[derive(Debug)]
pub(crate) struct Slots {
    free: AtomicUsize,
    /// Cleared when the dispatcher stops: no more hand-offs.
    open: AtomicBool,
    /// Signalled when a transaction that took slots failed and gave them
    /// back: a claim that found none free may go ahead.
    returned: Notify,
}

impl Slots {
    pub(crate) fn new(total: usize) -> Slots {
        Slots {
            free: AtomicUsize::new(total),
            open: AtomicBool::new(true),
            returned: Notify::new(),
        }
    }

    /// Waits until a transaction gives back slots it took (at once if one
    /// has since the last wait).
    pub(crate) async fn returned(&self) {
        self.returned.notified().await;
    }

    /// Free slots right now.
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// Takes up to `wanted` free slots; returns how many it took.
    pub(crate) fn take(&self, wanted: usize) -> usize {
        let mut taken = 0;
        let _ = self
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                taken = free.min(wanted);
                Some(free - taken)
            });
        taken
    }

    /// Returns `count` slots taken earlier.
    pub(crate) fn give_back(&self, count: usize) {
        if count > 0 {
            self.free.fetch_add(count, Ordering::AcqRel);
        }
    }

    /// Stops hand-offs (the dispatcher is stopping).
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }
}

/// A publisher's handle on a dispatcher in the same process, from
/// [`super::Dispatcher::hand_off`].
#[derive(Clone, Debug)]
pub struct HandOff {
    owner: String,
    slots: Arc<Slots>,
    sender: mpsc::UnboundedSender<Claimed>,
    lease_ms: i64,
    default_max_in_flight: i64,
    default_timeout_ms: i64,
}

impl HandOff {
    pub(crate) fn new(
        owner: String,
        slots: Arc<Slots>,
        sender: mpsc::UnboundedSender<Claimed>,
        config: &crate::config::DispatchConfig,
    ) -> HandOff {
        HandOff {
            owner,
            slots,
            sender,
            lease_ms: super::duration_ms(config.lease),
            default_max_in_flight: i64::from(config.max_in_flight_per_endpoint),
            default_timeout_ms: super::duration_ms(config.timeout),
        }
    }

    /// The dispatcher the deliveries are leased to (to release them).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Slots for one publish: it takes them as it leases deliveries (none
    /// once the dispatcher has begun to stop).
    pub fn reserve(&self) -> Reservation<'_> {
        Reservation {
            hand_off: self,
            taken: Taken::new(&self.slots),
        }
    }
}

/// Slots taken for one transaction (a publish's or a claim's), as it leases
/// deliveries; those it did not [`Taken::keep`] go back when it is dropped.
#[derive(Debug)]
pub(crate) struct Taken<'a> {
    slots: &'a Slots,
    count: AtomicUsize,
}

impl<'a> Taken<'a> {
    pub(crate) fn new(slots: &'a Slots) -> Taken<'a> {
        Taken {
            slots,
            count: AtomicUsize::new(0),
        }
    }

    /// `started` of the slots taken now belong to attempts (each gives its
    /// slot back when it ends).
    pub(crate) fn keep(&self, started: usize) {
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                Some(count.saturating_sub(started))
            });
    }
}

impl AttemptSlots for Taken<'_> {
    fn take(&self, wanted: usize) -> usize {
        let taken = self.slots.take(wanted);
        self.count.fetch_add(taken, Ordering::AcqRel);
        taken
    }

    fn give_back(&self, count: usize) {
        let returned = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(count))
            });
        let held = returned.unwrap_or_default();
        self.slots.give_back(held.min(count));
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let unused = *self.count.get_mut();
        if unused > 0 {
            self.slots.give_back(unused);
            self.slots.returned.notify_one();
        }
    }
}

/// The slots one publish takes as it leases deliveries to the dispatcher.
#[derive(Debug)]
pub struct Reservation<'a> {
    hand_off: &'a HandOff,
    taken: Taken<'a>,
}

impl AttemptSlots for Reservation<'_> {
    fn take(&self, wanted: usize) -> usize {
        if !self.hand_off.slots.is_open() || self.hand_off.sender.is_closed() {
            return 0;
        }
        self.taken.take(wanted)
    }

    fn give_back(&self, count: usize) {
        self.taken.give_back(count);
    }
}

impl Reservation<'_> {
    /// What the store needs to lease deliveries to the dispatcher.
    pub fn request(&self) -> HandOffRequest<'_> {
        HandOffRequest {
            owner: &self.hand_off.owner,
            lease_ms: self.hand_off.lease_ms,
            default_max_in_flight: self.hand_off.default_max_in_flight,
            default_timeout_ms: self.hand_off.default_timeout_ms,
            slots: self,
        }
    }

    /// Passes committed, leased deliveries to the dispatcher, each keeping
    /// one of the slots taken. If the dispatcher has stopped, they come
    /// back (their leases are still held) for the caller to release.
    pub fn deliver(self, claimed: Claimed) -> Result<(), Claimed> {
        let count = claimed.deliveries.len();
        if count == 0 {
            return Ok(());
        }
        match self.hand_off.sender.send(claimed) {
            Ok(()) => {
                self.taken.keep(count);
                Ok(())
            }
            Err(returned) => Err(returned.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_never_taken_beyond_what_is_free() {
        let slots = Slots::new(5);
        assert_eq!(slots.take(3), 3);
        assert_eq!(slots.take(3), 2);
        assert_eq!(slots.take(1), 0);
        slots.give_back(4);
        assert_eq!(slots.free(), 4);
    }

    #[test]
    fn taken_slots_not_kept_go_back_when_dropped() {
        let slots = Slots::new(10);
        let taken = Taken::new(&slots);
        assert_eq!(taken.take(6), 6);
        taken.give_back(2);
        assert_eq!(slots.free(), 6, "returned at once");
        taken.keep(3);
        drop(taken);
        assert_eq!(slots.free(), 7, "the 3 kept stay with their attempts");
    }

    #[test]
    fn a_reservation_gives_back_what_it_did_not_hand_off() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let config = crate::config::DispatchConfig::default();
        let hand_off = HandOff::new("dsp_test".into(), Arc::new(Slots::new(8)), sender, &config);
        let reservation = hand_off.reserve();
        assert_eq!(reservation.request().slots.take(5), 5);
        assert_eq!(hand_off.slots.free(), 3);
        let claimed = Claimed {
            deliveries: vec![delivery("dlv_1"), delivery("dlv_2")],
            ..Claimed::default()
        };
        assert!(reservation.deliver(claimed).is_ok());
        assert_eq!(hand_off.slots.free(), 6, "two slots go with the deliveries");
        assert_eq!(
            receiver.try_recv().map(|c| c.deliveries.len()).ok(),
            Some(2)
        );
        let unused = hand_off.reserve();
        assert_eq!(unused.take(10), 6, "no more than are free");
        drop(unused);
        assert_eq!(
            hand_off.slots.free(),
            6,
            "an unused reservation gives all back"
        );
    }

    #[test]
    fn a_stopped_dispatcher_takes_nothing_and_returns_what_was_leased() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let config = crate::config::DispatchConfig::default();
        let slots = Arc::new(Slots::new(8));
        let hand_off = HandOff::new("dsp_test".into(), Arc::clone(&slots), sender, &config);
        let reservation = hand_off.reserve();
        assert_eq!(reservation.take(2), 2);
        drop(receiver);
        let claimed = Claimed {
            deliveries: vec![delivery("dlv_1")],
            ..Claimed::default()
        };
        let returned = reservation.deliver(claimed).err();
        assert_eq!(returned.map(|c| c.deliveries.len()), Some(1));
        assert_eq!(slots.free(), 8);
        assert_eq!(hand_off.reserve().take(2), 0, "closed channel");
        slots.close();
        assert_eq!(slots.free(), 8);
    }

    fn delivery(id: &str) -> crate::store::ClaimedDelivery {
        crate::store::ClaimedDelivery {
            id: id.to_string(),
            event_id: "evt_1".to_string(),
            endpoint_id: "ep_1".to_string(),
            attempts: 0,
            topic: "t".to_string(),
            payload: "{}".to_string(),
        }
    }
}
