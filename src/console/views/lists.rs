//! The list views: deliveries, the endpoint health table, subscriptions and
//! the audit log. Each draws only the rows on screen, in the columns that
//! fit (see [`crate::console::columns`]).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph};

use super::fitted::{Fitted, ListColumn, name_fit};
use super::{Columns, clip, count_style, human_duration, percent, short_time, shown, table};
use crate::console::columns::Column;
use crate::console::fit::shorten_middle;
use crate::console::format::{backlog_text, endpoint_label, group_digits};
use crate::console::screens::{
    AuditScreen, DeliveriesScreen, EndpointRow, EndpointsScreen, Rows, SubscriptionsScreen,
};
use crate::console::theme::{Theme, endpoint_state_label, state_label};
use crate::held::Hold;
use crate::model::{AuditEntry, Delivery, DeliveryState, EndpointState, Subscription, now_millis};
use crate::ops::local_time_short;
use crate::text::{escape_controls, width};

pub fn deliveries(screen: &DeliveriesScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let [info, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let mut spans = Vec::new();
    if !screen.query.label.is_empty() {
        spans.push(Span::styled("filter ", theme.dim()));
        spans.push(Span::raw(format!("{}  ", shown(&screen.query.label))));
    }
    if let Some(search) = &screen.search {
        let status = if search.done { "searched" } else { "searching" };
        spans.push(Span::styled(
            format!(
                "{status} {} events, {} matches  ",
                group_digits(search.scanned.max(0) as u64),
                screen.rows.items.len()
            ),
            theme.warn(),
        ));
    } else {
        let more = if screen.rows.older.is_some() { "+" } else { "" };
        spans.push(Span::styled(
            format!("{}{more} rows  ", screen.rows.items.len()),
            theme.dim(),
        ));
        spans.push(Span::styled(
            if screen.follow { "following" } else { "frozen" },
            if screen.follow {
                theme.good()
            } else {
                theme.warn()
            },
        ));
    }
    if !screen.marked.is_empty() {
        spans.push(Span::styled(
            format!("  {} marked", screen.marked.len()),
            theme.marked(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), info);
    let now = now_millis();
    let visible = visible_slice(&screen.rows, list);
    let longest = |f: fn(&Delivery) -> &str| longest_shown(visible.iter().map(f));
    let time_width = time_width(visible.iter().map(|d| d.created_at));
    let marked = &screen.marked;
    // A held row says what holds it; from 110 columns beside its state word.
    let wide = list.width >= 110;
    let state_width = visible
        .iter()
        .map(|d| width(&state_cell(d, screen.hold(d), wide)))
        .max()
        .unwrap_or(0)
        .max(11);
    let state_width = columns_of(state_width);
    let columns = vec![
        ListColumn::new("", Column::fixed(0, 1), move |d: &Delivery, _| {
            let mark = if marked.contains(&d.id) { "*" } else { " " };
            Cell::from(Span::styled(mark, theme.marked()))
        }),
        ListColumn::new("TIME", Column::fixed(3, time_width), |d: &Delivery, _| {
            Cell::from(short_time(d.created_at))
        }),
        ListColumn::new(
            "TOPIC",
            name_fit(2, "TOPIC", longest(|d| &d.topic), 16, 2),
            |d: &Delivery, w| Cell::from(shorten_middle(&d.topic, w)),
        ),
        ListColumn::new(
            "ENDPOINT",
            name_fit(0, "ENDPOINT", longest(|d| &d.endpoint_name), 18, 2),
            |d: &Delivery, w| Cell::from(shorten_middle(&d.endpoint_name, w)),
        ),
        ListColumn::new(
            "TENANT",
            name_fit(6, "TENANT", longest(|d| &d.tenant_name), 10, 1),
            |d: &Delivery, w| Cell::from(shorten_middle(&d.tenant_name, w)),
        ),
        ListColumn::new(
            "STATE",
            Column::fixed(0, state_width),
            move |d: &Delivery, _| {
                Cell::from(Span::styled(
                    state_cell(d, screen.hold(d), wide),
                    theme.state(d.state),
                ))
            },
        ),
        ListColumn::new("ATT", Column::fixed(5, 3), |d: &Delivery, _| {
            Cell::from(d.attempts.to_string())
        }),
        ListColumn::new(
            "LAST",
            Column::flexible(1, 14, u16::MAX, 3),
            move |d: &Delivery, w| last_cell(d, w, theme),
        ),
        ListColumn::new("NEXT", Column::fixed(4, 5), move |d: &Delivery, _| {
            Cell::from(next_attempt(d, screen.hold(d), now))
        }),
    ];
    let fitted = Fitted::new(columns, list.width);
    let what = deliveries_what(screen);
    let empty = if screen.query.text.is_some() {
        "no delivery's payload matches yet".to_string()
    } else if what == "deliveries" {
        "no deliveries yet (publish events, or change the filter with /)".to_string()
    } else {
        format!("no {what} (change the filter with /)")
    };
    let widths = fitted.widths();
    let columns = Columns {
        header: fitted.header(),
        widths: &widths,
        empty: &empty,
        what: &what,
    };
    table(frame, list, theme, columns, &screen.rows, |d| fitted.row(d));
}

/// What a deliveries list is of, as a phrase: "deliveries", "deliveries
/// matching state:dead", "deliveries of acme/crm-sync".
fn deliveries_what(screen: &DeliveriesScreen) -> String {
    let mut what = "deliveries".to_string();
    if let Some(context) = &screen.context {
        what.push_str(&format!(" of {}", shown(context)));
    }
    if !screen.query.label.is_empty() {
        what.push_str(&format!(" matching {}", shown(&screen.query.label)));
    }
    what
}

/// The state cell: the state, and what holds the row when something does
/// (`○ pending · held: paused`). Below 110 columns a held row keeps the
/// state's symbol and gives its word to the reason (`○ held: paused`), so
/// topics and endpoints keep their room; the detail says it in full.
pub(super) fn state_cell(d: &Delivery, hold: Option<Hold>, wide: bool) -> String {
    let label = state_label(d.state);
    match hold {
        Some(hold) if wide => format!("{label} · {}", hold.short_label()),
        Some(hold) => {
            let symbol = label.split(' ').next().unwrap_or(label);
            format!("{symbol} {}", hold.short_label())
        }
        None => label.to_string(),
    }
}

/// The rows a list of `area`'s height shows (its header line taken off).
fn visible_slice<T>(rows: &Rows<T>, area: Rect) -> &[T] {
    let height = usize::from(area.height.saturating_sub(1));
    let start = rows.offset.min(rows.items.len());
    let end = start.saturating_add(height).min(rows.items.len());
    &rows.items[start..end]
}

/// The width of a time column: 8 for today's times, 11 with a date.
fn time_width(times: impl Iterator<Item = i64>) -> u16 {
    let widest = times.map(|at| width(&short_time(at))).max().unwrap_or(8);
    u16::try_from(widest).unwrap_or(11)
}

/// A width in screen columns as a layout takes it.
fn columns_of(width: usize) -> u16 {
    u16::try_from(width).unwrap_or(u16::MAX)
}

/// The widest of `texts` as shown (escapes take their real width).
fn longest_shown<'t>(texts: impl Iterator<Item = &'t str>) -> usize {
    texts.map(|t| width(&escape_controls(t))).max().unwrap_or(0)
}

/// The last error (cut at its end: the strip shows it whole) or status.
fn last_cell(d: &Delivery, width: usize, theme: Theme) -> Cell<'static> {
    match (&d.last_error, d.last_status) {
        (Some(error), _) => Cell::from(Span::styled(clip(error, width), theme.bad())),
        (None, Some(status)) => Cell::from(status.to_string()),
        (None, None) => Cell::from(""),
    }
}

/// When the next attempt is due, for work still waiting: `held` when it is
/// due but something holds it.
fn next_attempt(d: &Delivery, hold: Option<Hold>, now: i64) -> String {
    match d.state {
        DeliveryState::Pending | DeliveryState::Retrying if d.next_attempt_at > now => {
            human_duration(d.next_attempt_at - now)
        }
        DeliveryState::Pending | DeliveryState::Retrying if hold.is_some() => "held".to_string(),
        DeliveryState::Pending | DeliveryState::Retrying => "due".to_string(),
        _ => String::new(),
    }
}

/// The endpoint health table. At 80 columns: name, state, the 5-minute
/// rate, p95, backlog, failures and the last error; wider terminals bring
/// back the 1-hour rate, p50, in flight and the last success.
pub fn endpoints(screen: &EndpointsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let now = now_millis();
    let visible = visible_slice(&screen.rows, area);
    let labels: Vec<String> = visible
        .iter()
        .map(|r| endpoint_label(&r.endpoint))
        .collect();
    let longest = longest_shown(labels.iter().map(String::as_str));
    let latency = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), human_duration);
    // Room for "1,204 held" when a stopped endpoint holds work.
    let backlog_width = visible
        .iter()
        .filter(|r| r.queue.is_some() && r.endpoint.state != EndpointState::Active)
        .map(|r| width(&backlog_cell(r)))
        .max()
        .unwrap_or(0)
        .clamp(7, 14);
    let columns = vec![
        ListColumn::new(
            "ENDPOINT",
            name_fit(0, "ENDPOINT", longest, 20, 2),
            |row: &EndpointRow, w| Cell::from(shorten_middle(&endpoint_label(&row.endpoint), w)),
        ),
        ListColumn::new(
            "STATE",
            Column::fixed(0, 11),
            move |row: &EndpointRow, _| endpoint_state_cell(row, theme),
        ),
        ListColumn::new("OK 5M", Column::fixed(1, 6), move |row: &EndpointRow, _| {
            let rate = row.health.as_ref().and_then(|h| h.last_5m.success_rate());
            Cell::from(Span::styled(percent(rate), theme.rate(rate)))
        }),
        ListColumn::new("OK 1H", Column::fixed(5, 6), move |row: &EndpointRow, _| {
            let rate = row.health.as_ref().and_then(|h| h.last_1h.success_rate());
            Cell::from(Span::styled(percent(rate), theme.rate(rate)))
        }),
        ListColumn::new("P50", Column::fixed(6, 6), move |row: &EndpointRow, _| {
            Cell::from(latency(
                row.health.as_ref().and_then(|h| h.last_1h.p50_ms()),
            ))
        }),
        ListColumn::new("P95", Column::fixed(3, 6), move |row: &EndpointRow, _| {
            Cell::from(latency(
                row.health.as_ref().and_then(|h| h.last_1h.p95_ms()),
            ))
        }),
        ListColumn::new("INFL", Column::fixed(6, 4), |row: &EndpointRow, _| {
            Cell::from(
                row.queue
                    .map_or_else(|| "-".to_string(), |q| q.in_flight.to_string()),
            )
        }),
        ListColumn::new(
            "BACKLOG",
            Column::fixed(2, columns_of(backlog_width)),
            move |row: &EndpointRow, _| {
                Cell::from(match row.queue {
                    Some(queue) => Span::styled(
                        backlog_cell(row),
                        count_style(theme, queue.backlog(), false),
                    ),
                    None => Span::raw("-"),
                })
            },
        ),
        ListColumn::new("FAILS", Column::fixed(2, 5), move |row: &EndpointRow, _| {
            let fails = row.health.as_ref().map_or(0, |h| h.consecutive_failures);
            Cell::from(Span::styled(
                fails.to_string(),
                count_style(theme, fails, true),
            ))
        }),
        ListColumn::new(
            "LAST ERROR",
            Column::flexible(1, 20, u16::MAX, 3),
            move |row: &EndpointRow, w| {
                Cell::from(Span::styled(clip(&endpoint_problem(row), w), theme.bad()))
            },
        ),
        ListColumn::new(
            "LAST OK",
            Column::fixed(7, 9),
            move |row: &EndpointRow, _| {
                let at = row.health.as_ref().and_then(|h| h.last_success_at);
                Cell::from(at.map_or_else(
                    || "-".to_string(),
                    |at| format!("{} ago", human_duration(now - at)),
                ))
            },
        ),
    ];
    let fitted = Fitted::new(columns, area.width);
    let widths = fitted.widths();
    let columns_spec = Columns {
        header: fitted.header(),
        widths: &widths,
        empty: "no endpoints (add one with `hookline endpoint add`)",
        what: "endpoints",
    };
    table(frame, area, theme, columns_spec, &screen.rows, |row| {
        fitted.row(row)
    });
}

/// The state column of an active endpoint the outbound guard refuses.
const BLOCKED_LABEL: &str = "⊘ blocked";

/// The endpoint's state; a `*` says there is a reason (under LAST ERROR
/// and in the strip).
fn endpoint_state_cell(row: &EndpointRow, theme: Theme) -> Cell<'static> {
    let endpoint = &row.endpoint;
    if row.blocked.is_none() && row.protection.is_some() {
        return Cell::from(super::endpoint_state_span(
            endpoint.state,
            row.protection,
            theme,
        ));
    }
    let state = match (&row.blocked, &endpoint.state_reason) {
        (Some(_), _) if endpoint.state == EndpointState::Active => BLOCKED_LABEL.to_string(),
        (_, Some(_)) => format!("{}*", endpoint_state_label(endpoint.state)),
        (_, None) => endpoint_state_label(endpoint.state).to_string(),
    };
    let style = match &row.blocked {
        Some(_) => theme.bad(),
        None => theme.endpoint_state(endpoint.state),
    };
    Cell::from(Span::styled(state, style))
}

/// What is wrong with an endpoint, most telling first: when a pause ends
/// and why it was paused or disabled, why the guard refuses it, what holds
/// an active one's work (its breaker and next probe, a receiver's wait, its
/// rate limit), or its last error.
pub fn endpoint_problem(row: &EndpointRow) -> String {
    let endpoint = &row.endpoint;
    // A pause that ends by itself says when first: a long reason is clipped.
    let paused_until = endpoint
        .paused_until
        .filter(|_| endpoint.state == EndpointState::Paused)
        .map(|at| format!("until {}", local_time_short(at)));
    match (
        paused_until,
        &endpoint.state_reason,
        &row.blocked,
        row.health.as_ref().and_then(|h| h.last_error.as_ref()),
    ) {
        (Some(until), Some(reason), _, _) => format!("{until}: {reason}"),
        (Some(until), None, _, _) => until,
        (None, Some(reason), _, _) if endpoint.state != EndpointState::Active => reason.clone(),
        (None, _, Some(reason), _) => reason.clone(),
        _ if endpoint.state == EndpointState::Active && row.protection.is_some() => {
            let hold = row.protection.map(|h| h.label(local_time_short));
            match (
                hold,
                row.health.as_ref().and_then(|h| h.last_error.as_ref()),
            ) {
                (Some(hold), Some(error)) => format!("{hold} · {error}"),
                (Some(hold), None) => hold,
                (None, _) => String::new(),
            }
        }
        (None, _, _, Some(error)) => error.clone(),
        _ => String::new(),
    }
}

/// An endpoint's backlog, `12 held` when its state holds it.
fn backlog_cell(row: &EndpointRow) -> String {
    row.queue.map_or_else(
        || "-".to_string(),
        |queue| backlog_text(queue.backlog(), row.endpoint.state),
    )
}

/// Subscriptions: endpoint and pattern first; the description takes the
/// rest, and the id joins when there is room (the form and `:id` do not
/// need it).
pub fn subscriptions(screen: &SubscriptionsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let empty = match &screen.endpoint {
        Some(_) => "this endpoint has no subscriptions: n adds one",
        None => "no subscriptions yet: n adds one",
    };
    let visible = visible_slice(&screen.rows, area);
    // `tenant/name`: the same name can serve several tenants.
    let labels: Vec<String> = visible.iter().map(subscription_endpoint).collect();
    let longest_label = longest_shown(labels.iter().map(String::as_str));
    let longest_pattern = longest_shown(visible.iter().map(|s| s.pattern.as_str()));
    let columns = vec![
        ListColumn::new(
            "ENDPOINT",
            name_fit(0, "ENDPOINT", longest_label, 20, 2),
            |s: &Subscription, w| Cell::from(shorten_middle(&subscription_endpoint(s), w)),
        ),
        ListColumn::new(
            "TOPIC PATTERN",
            name_fit(0, "TOPIC PATTERN", longest_pattern, 16, 1),
            move |s: &Subscription, w| {
                Cell::from(Span::styled(shorten_middle(&s.pattern, w), theme.bold()))
            },
        ),
        ListColumn::new(
            "DESCRIPTION",
            Column::flexible(2, 20, u16::MAX, 3),
            |s: &Subscription, w| Cell::from(clip(s.description.as_deref().unwrap_or_default(), w)),
        ),
        ListColumn::new("ID", Column::fixed(4, 30), move |s: &Subscription, w| {
            Cell::from(Span::styled(shorten_middle(&s.id, w), theme.dim()))
        }),
    ];
    let fitted = Fitted::new(columns, area.width);
    let widths = fitted.widths();
    let columns = Columns {
        header: fitted.header(),
        widths: &widths,
        empty,
        what: "subscriptions",
    };
    table(frame, area, theme, columns, &screen.rows, |s| fitted.row(s));
}

/// A subscription's endpoint as `tenant/name`.
pub fn subscription_endpoint(s: &Subscription) -> String {
    format!("{}/{}", s.tenant_name, s.endpoint_name)
}

/// The audit log: when, who, from where, what and on what first; the
/// interface (VIA) and the detail join when there is room.
pub fn audit(screen: &AuditScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let visible = visible_slice(&screen.rows, area);
    let targets: Vec<String> = visible.iter().map(audit_targets).collect();
    let longest_target = longest_shown(targets.iter().map(String::as_str));
    let longest_actor = longest_shown(visible.iter().map(|a| a.actor.as_str()));
    let longest_action = longest_shown(visible.iter().map(|a| a.action.as_str()));
    let when_width = time_width(visible.iter().map(|a| a.at));
    let columns = vec![
        ListColumn::new("WHEN", Column::fixed(2, when_width), |a: &AuditEntry, _| {
            Cell::from(short_time(a.at))
        }),
        ListColumn::new(
            "WHO",
            name_fit(0, "WHO", longest_actor, 12, 1),
            |a: &AuditEntry, w| Cell::from(shorten_middle(&a.actor, w)),
        ),
        // Room for an IPv4 address.
        ListColumn::new("FROM", Column::fixed(4, 15), |a: &AuditEntry, w| {
            Cell::from(
                a.client_addr
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |addr| shorten_middle(addr, w)),
            )
        }),
        ListColumn::new("VIA", Column::fixed(6, 7), |a: &AuditEntry, _| {
            Cell::from(a.source.as_str())
        }),
        ListColumn::new(
            "ACTION",
            name_fit(0, "ACTION", longest_action, 20, 1),
            move |a: &AuditEntry, w| {
                Cell::from(Span::styled(shorten_middle(&a.action, w), theme.bold()))
            },
        ),
        // Ids are whole or not at all: half an id finds nothing.
        ListColumn::new(
            "ON",
            Column::flexible(
                1,
                columns_of(longest_target.min(ID_WIDTH)),
                columns_of(longest_target),
                1,
            ),
            |a: &AuditEntry, w| Cell::from(audit_targets_in(a, w)),
        ),
        ListColumn::new(
            "DETAIL",
            Column::flexible(5, 12, u16::MAX, 3),
            move |a: &AuditEntry, w| Cell::from(Span::styled(clip(&a.detail, w), theme.dim())),
        ),
    ];
    let fitted = Fitted::new(columns, area.width);
    let widths = fitted.widths();
    let columns = Columns {
        header: fitted.header(),
        widths: &widths,
        empty: "no operator actions yet",
        what: "the audit log",
    };
    table(frame, area, theme, columns, &screen.rows, |a| fitted.row(a));
}

/// Columns of an id: a prefix and a ULID (`dlv_01M83…`).
const ID_WIDTH: usize = 30;

/// The ids an action was on as they fit `width`: with how many more when
/// there is room, else the first alone.
fn audit_targets_in(a: &AuditEntry, width: usize) -> String {
    let all = shown(&audit_targets(a));
    if crate::text::width(&all) <= width {
        return all;
    }
    a.target_ids
        .first()
        .map_or_else(String::new, |id| clip(id, width))
}

/// The ids an action was on: the first, and how many more.
pub fn audit_targets(a: &AuditEntry) -> String {
    match a.target_ids.len() {
        0 => String::new(),
        1 => a.target_ids[0].clone(),
        n => format!("{} (+{})", a.target_ids[0], n - 1),
    }
}
