//! What each console screen holds: its rows, cursor and scroll, and the
//! list navigation they share. Plain data: loading and drawing live elsewhere.

use std::collections::BTreeSet;

use crate::held::Hold;
use crate::model::{AuditEntry, Delivery, Endpoint, Subscription};
use crate::store::{
    Breaker, BreakerTransition, Cursor, DeliveryDetail, DeliveryFilter, EndpointHealth,
    EndpointQueue, EventFanout, FailureCause, MinuteTotals,
};

use super::keymap::ViewKind;

/// A window of a longer list: the rows loaded so far, the selection, the
/// first row on screen, and cursors to load more in either direction.
#[derive(Debug, Clone)]
pub struct Rows<T> {
    pub items: Vec<T>,
    pub selected: usize,
    pub offset: usize,
    /// Load older rows after this one (`None`: the end is loaded).
    pub older: Option<Cursor>,
    /// Load newer rows before this one (`None`: the newest is loaded).
    pub newer: Option<Cursor>,
    /// Set while a load is on its way; its token.
    pub loading: Option<u64>,
    /// Whether a first load has arrived.
    pub loaded: bool,
    /// When the load on its way was asked for (unix ms), to say what a
    /// slow one waits for.
    pub loading_since: Option<i64>,
    /// Why the last load failed, until one succeeds.
    pub failed: Option<String>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            items: Vec::new(),
            selected: 0,
            offset: 0,
            older: None,
            newer: None,
            loading: None,
            loaded: false,
            loading_since: None,
            failed: None,
        }
    }
}

/// A list's loading, whatever its rows: what the app tracks of every list
/// on top (a load on its way, since when, and why the last one failed).
pub trait ListLoading {
    /// A load is on its way with `token`, asked for at `now`.
    fn start(&mut self, token: u64, now: i64);
    /// The load ended in failure, for `reason`.
    fn fail(&mut self, reason: String);
    /// A load succeeded: a failure said earlier no longer stands.
    fn succeed(&mut self);
    /// Since when a load on its way has been waited for.
    fn waiting_since(&self) -> Option<i64>;
}

impl<T> ListLoading for Rows<T> {
    fn start(&mut self, token: u64, now: i64) {
        // A slow load is timed from its first ask, not from each re-ask.
        if self.loading.is_none() {
            self.loading_since = Some(now);
        }
        self.loading = Some(token);
    }

    fn fail(&mut self, reason: String) {
        self.loading = None;
        self.loading_since = None;
        self.failed = Some(reason);
    }

    fn succeed(&mut self) {
        self.failed = None;
    }

    fn waiting_since(&self) -> Option<i64> {
        self.loading.and(self.loading_since)
    }
}

impl<T> Rows<T> {
    pub fn selected_item(&self) -> Option<&T> {
        self.items.get(self.selected)
    }

    /// Moves the selection by `delta` rows, clamped to what is loaded.
    pub fn move_by(&mut self, delta: isize) {
        if self.items.is_empty() {
            self.selected = 0;
            return;
        }
        let last = self.items.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    /// Keeps the selection on screen for a viewport `height` rows tall.
    pub fn scroll_into_view(&mut self, height: usize) {
        let height = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(self.items.len().saturating_sub(1));
    }

    /// Whether the selection is near the loaded end and more could be loaded.
    pub fn wants_older(&self, height: usize) -> bool {
        self.older.is_some() && self.loading.is_none() && self.selected + height >= self.items.len()
    }

    /// Whether the selection is at the top and newer rows could be loaded.
    pub fn wants_newer(&self) -> bool {
        self.newer.is_some() && self.loading.is_none() && self.selected == 0
    }

    /// Replaces the rows, keeping the selection on the item with the same
    /// key if it is still there (so live updates do not move the cursor).
    pub fn replace(&mut self, items: Vec<T>, key: impl Fn(&T) -> &str) {
        let keep = self.selected_item().map(|item| key(item).to_string());
        self.items = items;
        if let Some(keep) = keep
            && let Some(at) = self.items.iter().position(|item| key(item) == keep)
        {
            self.selected = at;
        }
        self.selected = self.selected.min(self.items.len().saturating_sub(1));
        self.loaded = true;
    }
}

/// What a deliveries list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryQuery {
    pub filter: DeliveryFilter,
    /// Names as typed, resolved by the loader (`tenant:`, `endpoint:`).
    pub tenant_name: Option<String>,
    pub endpoint_name: Option<String>,
    /// Free text searched in payloads (streams; exempt from the speed target).
    pub text: Option<String>,
    /// Only deliveries whose last error has this cause (see
    /// [`crate::cause::cause_of`]); set from the endpoint detail.
    pub cause: Option<String>,
    /// The filter as the operator typed it, for the header.
    pub label: String,
}

/// Progress of a streaming payload search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchProgress {
    pub scanned: i64,
    pub next: Option<Cursor>,
    pub done: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveriesScreen {
    pub query: DeliveryQuery,
    pub rows: Rows<Delivery>,
    pub marked: BTreeSet<String>,
    /// New rows arrive at the top; off ("frozen") keeps the list still.
    pub follow: bool,
    pub search: Option<SearchProgress>,
    /// What the list is of, for breadcrumbs (e.g. an endpoint's name).
    pub context: Option<String>,
    /// What holds the due work of stopped endpoints, as last loaded.
    pub holds: super::msg::Holds,
}

impl DeliveriesScreen {
    /// What holds `delivery`, if it is due work of a stopped endpoint.
    pub fn hold(&self, delivery: &Delivery) -> Option<crate::held::Hold> {
        let hold = self.holds.get(&delivery.endpoint_id).copied();
        hold.filter(|_| crate::held::waits(delivery.state))
    }
}

#[derive(Debug, Clone, Default)]
pub struct DetailScreen {
    pub delivery_id: String,
    pub detail: Option<DeliveryDetail>,
    /// Lines scrolled down.
    pub scroll: u16,
    /// What holds the delivery, if it waits on its endpoint.
    pub hold: Option<crate::held::Hold>,
}

/// One event and every delivery it fanned out to.
#[derive(Debug, Clone, Default)]
pub struct EventScreen {
    pub event_id: String,
    pub fanout: Option<EventFanout>,
    /// What holds the due work of stopped endpoints, as last loaded.
    pub holds: super::msg::Holds,
    /// The fan-out row under the cursor.
    pub selected: usize,
    /// Lines scrolled down.
    pub scroll: u16,
    /// Show the payload's exact bytes instead of re-indented.
    pub exact: bool,
    /// Why the event cannot be shown (unknown, or removed by retention).
    pub refused: Option<String>,
}

impl EventScreen {
    /// What holds `delivery`, if it is due work of a stopped endpoint.
    pub fn hold(&self, delivery: &Delivery) -> Option<Hold> {
        let hold = self.holds.get(&delivery.endpoint_id).copied();
        hold.filter(|_| crate::held::waits(delivery.state))
    }

    /// The delivery under the cursor.
    pub fn selected_delivery(&self) -> Option<&Delivery> {
        self.fanout.as_ref()?.deliveries.get(self.selected)
    }
}

/// Everything the endpoint detail shows of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointDetail {
    /// As stored (its secrets only ever drawn masked).
    pub endpoint: Endpoint,
    pub breaker: Breaker,
    pub queue: EndpointQueue,
    /// What holds its due work, if anything does.
    pub hold: Option<Hold>,
    /// Attempts per minute over the last hour, oldest first.
    pub minutes: Vec<MinuteTotals>,
    /// Failures by cause, most frequent first: the last hour and the last day.
    pub causes_hour: Vec<FailureCause>,
    pub causes_day: Vec<FailureCause>,
    pub subscriptions: Vec<Subscription>,
}

impl EndpointDetail {
    /// The causes of the window shown.
    pub fn causes(&self, day: bool) -> &[FailureCause] {
        if day {
            &self.causes_day
        } else {
            &self.causes_hour
        }
    }
}

/// One endpoint: what it is, why it is in its state, and its failures by cause.
#[derive(Debug, Clone, Default)]
pub struct EndpointDetailScreen {
    pub endpoint_id: String,
    /// `tenant/name`, for breadcrumbs before it loads.
    pub label: String,
    pub detail: Option<EndpointDetail>,
    /// Causes over the last day instead of the last hour.
    pub day: bool,
    /// The cause under the cursor.
    pub selected: usize,
    /// Why the endpoint cannot be shown (deleted, unknown).
    pub refused: Option<String>,
}

impl EndpointDetailScreen {
    /// The cause under the cursor.
    pub fn selected_cause(&self) -> Option<&FailureCause> {
        self.detail.as_ref()?.causes(self.day).get(self.selected)
    }
}

/// One endpoint with what the health table shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRow {
    pub endpoint: Endpoint,
    /// Loaded for the rows around the selection only; `None` elsewhere.
    pub queue: Option<EndpointQueue>,
    pub health: Option<EndpointHealth>,
    /// Why the outbound guard refuses this endpoint's URL, when it does: its
    /// host is a blocked IP literal, or its last attempt was refused.
    pub blocked: Option<String>,
    /// What holds an active endpoint's work: its breaker, its receiver's
    /// `Retry-After`, its rate limit.
    pub protection: Option<Hold>,
}

/// An endpoint's circuit breaker as the `b` panel shows it: its state and
/// figures, and its latest transitions, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPanel {
    /// Masked: only its name and limits are shown.
    pub endpoint: Endpoint,
    pub breaker: Breaker,
    pub transitions: Vec<BreakerTransition>,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointsScreen {
    pub rows: Rows<EndpointRow>,
    /// Words the names must contain (the `/` filter).
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionsScreen {
    /// Only this endpoint's `(id, label)`; `None`: every endpoint's.
    pub endpoint: Option<(String, String)>,
    pub rows: Rows<Subscription>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditScreen {
    pub rows: Rows<AuditEntry>,
}

/// An endpoint doing worst, for the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstEndpoint {
    pub endpoint_id: String,
    pub label: String,
    pub state: crate::model::EndpointState,
    pub failure_rate_5m: Option<f64>,
    pub backlog: i64,
    pub last_error: Option<String>,
    /// What holds an active endpoint's work (breaker, `Retry-After`, rate limit).
    pub protection: Option<Hold>,
}

/// What the overview says about retention: the rules in force and the
/// last pass any pruner finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionStatus {
    /// The horizons, as `delivered 14d · dead 30d · held 30d · payloads 2d`
    /// (rules that are off are left out).
    pub rules: String,
    /// How long ago the last pass ended (ms) and the rows it removed.
    pub last_pass: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Default)]
pub struct OverviewScreen {
    /// Attempts per minute, oldest first.
    pub throughput: Vec<MinuteTotals>,
    pub worst: Vec<WorstEndpoint>,
    pub retention: RetentionStatus,
    pub selected: usize,
    pub loaded: bool,
}

#[derive(Debug, Clone)]
pub struct HelpScreen {
    /// The view whose keys are shown.
    pub view: ViewKind,
    pub scroll: u16,
}

/// One level of the navigation stack.
#[derive(Debug, Clone)]
pub enum Screen {
    Overview(OverviewScreen),
    Deliveries(DeliveriesScreen),
    Detail(DetailScreen),
    Event(EventScreen),
    Endpoints(EndpointsScreen),
    EndpointDetail(EndpointDetailScreen),
    Subscriptions(SubscriptionsScreen),
    Audit(AuditScreen),
    Help(HelpScreen),
}

impl Screen {
    pub fn kind(&self) -> ViewKind {
        match self {
            Screen::Overview(_) => ViewKind::Overview,
            Screen::Deliveries(_) => ViewKind::Deliveries,
            Screen::Detail(_) => ViewKind::Detail,
            Screen::Event(_) => ViewKind::Event,
            Screen::Endpoints(_) => ViewKind::Endpoints,
            Screen::EndpointDetail(_) => ViewKind::EndpointDetail,
            Screen::Subscriptions(_) => ViewKind::Subscriptions,
            Screen::Audit(_) => ViewKind::Audit,
            Screen::Help(_) => ViewKind::Help,
        }
    }

    /// The breadcrumb for this level.
    pub fn crumb(&self) -> String {
        match self {
            Screen::Deliveries(s) => match &s.context {
                Some(context) => format!("Deliveries ({context})"),
                None if !s.query.label.is_empty() => format!("Deliveries [{}]", s.query.label),
                None => "Deliveries".to_string(),
            },
            Screen::Detail(s) => s.delivery_id.clone(),
            Screen::Event(s) => s.event_id.clone(),
            Screen::EndpointDetail(s) => s.label.clone(),
            Screen::Subscriptions(s) => match &s.endpoint {
                Some((_, label)) => format!("Subscriptions ({label})"),
                None => "Subscriptions".to_string(),
            },
            other => other.kind().title().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    fn rows(n: usize) -> Rows<String> {
        Rows {
            items: (0..n).map(|i| format!("r{i}")).collect(),
            loaded: true,
            ..Rows::default()
        }
    }

    #[test]
    fn moving_clamps_and_scrolling_follows_the_selection() {
        let mut list = rows(10);
        list.move_by(-3);
        assert_eq!(list.selected, 0);
        list.move_by(25);
        assert_eq!(list.selected, 9);
        list.scroll_into_view(4);
        assert_eq!(list.offset, 6);
        list.move_by(-9);
        list.scroll_into_view(4);
        assert_eq!(list.offset, 0);
    }

    #[test]
    fn replacing_keeps_the_selected_item() {
        let mut list = rows(5);
        list.selected = 2;
        list.replace(
            vec!["new".into(), "r0".into(), "r1".into(), "r2".into()],
            |s| s,
        );
        assert_eq!(list.selected_item().map(String::as_str), Some("r2"));
        list.replace(vec!["x".into()], |s| s);
        assert_eq!(list.selected, 0);
    }
}
