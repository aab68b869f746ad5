//! The console's vocabulary: the messages [`App::update`](super::app::App::update)
//! takes, the commands it returns, and the loads and actions those commands
//! carry to `io.rs` and back.

use crossterm::event::KeyEvent;

use super::screens::{
    BreakerPanel, DeliveryQuery, EndpointRow, RetentionStatus, SearchProgress, WorstEndpoint,
};
use crate::held::Hold;
use crate::model::{AuditEntry, BreakerMode, Delivery, Endpoint, Millis, Subscription};
use crate::store::{Cursor, DeliveryDetail, EventFanout, MinuteTotals, QueueSummary};

/// What holds the due work of each paused or disabled endpoint, by id.
pub type Holds = std::collections::HashMap<String, Hold>;

/// Which way a list load goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLoad {
    /// The newest rows, replacing what is there.
    Replace,
    /// Older rows after the last one.
    Older,
    /// Newer rows before the first one.
    Newer,
    /// The oldest rows (the end of the list), replacing what is there.
    Tail,
}

/// Data to fetch in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Header,
    Overview,
    Deliveries {
        query: DeliveryQuery,
        cursor: Option<Cursor>,
        how: ListLoad,
    },
    Search {
        query: DeliveryQuery,
        after: Option<Cursor>,
    },
    Detail {
        id: String,
    },
    /// An event and its fan-out.
    Event {
        id: String,
    },
    /// An endpoint's detail.
    EndpointDetail {
        id: String,
    },
    Endpoints {
        tenant: Option<String>,
        /// Words the `tenant/name` label must contain (the `/` filter).
        filter: Option<String>,
        /// Endpoints whose health to load (those near the selection);
        /// empty on a first load: the first
        /// [`HEALTH_WINDOW`](super::app::HEALTH_WINDOW) listed.
        health_for: Vec<String>,
    },
    Subscriptions {
        endpoint_id: Option<String>,
        tenant: Option<String>,
        /// Nothing shown yet: the first page will do, the rest follows.
        first_page: bool,
    },
    Audit {
        after: Option<Cursor>,
    },
    /// The marked deliveries as they are now (before "retry marked").
    Marked {
        ids: Vec<String>,
    },
    /// How many dead deliveries an endpoint has (before "retry all dead").
    DeadCount {
        endpoint_id: String,
        label: String,
    },
    /// An endpoint as it is now and how many deliveries it holds (before
    /// "resume", whose question names them).
    ResumeCheck {
        endpoint_id: String,
    },
    /// An endpoint's circuit breaker and its latest transitions (the `b` panel).
    Breaker {
        endpoint_id: String,
    },
    /// A delivery as a `curl` command (for `Y`).
    Curl {
        delivery_id: String,
    },
    /// The topics of the latest events of endpoint `endpoint`'s tenant
    /// (id or name), for a subscription form's preview.
    RecentTopics {
        endpoint: String,
    },
    /// What retrying everything `query` shows would touch (for `R`).
    RetryPreview {
        query: DeliveryQuery,
    },
}

/// What a load brought back.
#[derive(Debug, Clone)]
pub enum Loaded {
    Header {
        summary: QueueSummary,
        dispatchers_alive: usize,
        /// How long ago any dispatcher was last seen (ms); `None`: never.
        last_seen_ago: Option<i64>,
    },
    Overview {
        throughput: Vec<MinuteTotals>,
        worst: Vec<WorstEndpoint>,
        retention: RetentionStatus,
    },
    Deliveries {
        rows: Vec<Delivery>,
        older: Option<Cursor>,
        newer: Option<Cursor>,
        how: ListLoad,
        /// What holds each stopped endpoint's due work, by endpoint id.
        holds: Holds,
    },
    Search {
        rows: Vec<Delivery>,
        progress: SearchProgress,
        holds: Holds,
    },
    Detail {
        detail: Box<DeliveryDetail>,
        /// What holds it, if it waits on its endpoint.
        hold: Option<Hold>,
    },
    EndpointDetail(Box<super::screens::EndpointDetail>),
    Event {
        fanout: Box<EventFanout>,
        /// What holds each stopped endpoint's due work, by endpoint id.
        holds: Holds,
    },
    /// The marked deliveries re-read: `asked` is how many were marked.
    Marked {
        asked: usize,
        rows: Vec<Delivery>,
        holds: Holds,
    },
    /// The load was answered, but what it asked for cannot be shown (an
    /// endpoint or tenant that does not exist): why, for the screen.
    Refused(String),
    /// `complete` is false when only the first rows were read (a first
    /// open); the screen then asks for the rest.
    Endpoints {
        rows: Vec<EndpointRow>,
        complete: bool,
    },
    Subscriptions {
        rows: Vec<Subscription>,
        complete: bool,
    },
    Audit {
        rows: Vec<AuditEntry>,
        older: Option<Cursor>,
        append: bool,
    },
    DeadCount {
        endpoint_id: String,
        label: String,
        count: u64,
    },
    ResumeCheck {
        endpoint: Box<Endpoint>,
        /// Its pending deliveries: sent as soon as it is resumed.
        held: u64,
        /// Its retrying deliveries: they keep their schedule.
        retrying: u64,
    },
    Breaker(Box<BreakerPanel>),
    /// A delivery as a `curl` command, to copy.
    Curl(String),
    RecentTopics(Vec<String>),
    RetryPreview {
        query: Box<DeliveryQuery>,
        preview: Box<crate::ops::RetryPreview>,
    },
}

/// An operator action for `io.rs` to run through `ops`.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// Retry these deliveries, redelivering those already delivered.
    Retry(Vec<String>),
    /// Retry those of these deliveries that are not delivered when the
    /// retry runs (marked rows, rows that failed).
    RetryUndelivered(Vec<String>),
    RetryAllDead {
        endpoint_id: String,
        label: String,
        count: u64,
    },
    /// Retry what `query` shows, endpoint by endpoint (as the preview listed them).
    RetryFiltered {
        query: Box<DeliveryQuery>,
        /// `(endpoint id, label)`.
        endpoints: Vec<(String, String)>,
        total: u64,
    },
    /// Probe an endpoint from this host.
    Probe {
        id: String,
    },
    /// Send an endpoint's retrying deliveries now.
    RetryNow {
        endpoint_id: String,
        label: String,
    },
    Pause {
        id: String,
        /// Why, as the operator typed it (`None`: none given).
        reason: Option<String>,
        /// When a dispatcher resumes it (unix ms); `None`: until resumed.
        until: Option<Millis>,
    },
    Resume(String),
    RotateSecret(String),
    /// Show an endpoint's secrets in plain (audited).
    RevealSecrets(String),
    NewSubscription {
        endpoint: String,
        pattern: String,
        description: String,
    },
    EditSubscription {
        id: String,
        pattern: String,
        description: String,
    },
    DeleteSubscription(String),
    EditEndpoint {
        id: String,
        url: String,
        timeout: String,
        max_in_flight: String,
        headers: String,
        /// `50/s`, `50/s burst 5`, or empty for none.
        rate_limit: String,
    },
    DeleteEndpoint(String),
    /// Force an endpoint's breaker open or closed, or back to `auto`.
    SetBreaker {
        id: String,
        mode: BreakerMode,
    },
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Acted {
    /// Done; a sentence for the flash line.
    Done(String),
    /// Refused as bad input in a form field: the form stays open.
    Refused {
        field: String,
        reason: String,
    },
    Failed(String),
    /// An endpoint with its secrets in plain, for the reveal dialog; the
    /// reveal is already in the audit log.
    Revealed(Box<Endpoint>),
    /// What a probe found, for its dialog (already audited).
    Probed(Box<crate::ops::ProbeReport>),
}

/// Everything that can happen to the console.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    Resize(u16, u16),
    /// A load's result, tagged with the token it was sent with.
    Loaded {
        token: u64,
        result: Result<Loaded, String>,
    },
    Acted(Acted),
    /// A long action moved on.
    Progress {
        label: String,
        done: u64,
        total: u64,
    },
    /// Time to refresh what is on screen (data may have changed).
    Refresh,
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Load { token: u64, load: Load },
    Act(Act),
}
