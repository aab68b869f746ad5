//! The list views: deliveries, the endpoint health table, subscriptions and
//! the audit log. Each draws only the rows on screen.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};

use super::{Columns, clip, count_style, human_duration, percent, short_time, table};
use crate::console::app::{endpoint_label, group_digits};
use crate::console::screens::{
    AuditScreen, DeliveriesScreen, EndpointRow, EndpointsScreen, SubscriptionsScreen,
};
use crate::console::theme::{Theme, endpoint_state_label, state_label};
use crate::model::{Delivery, DeliveryState, now_millis};

pub fn deliveries(screen: &DeliveriesScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let [info, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let mut spans = Vec::new();
    if !screen.query.label.is_empty() {
        spans.push(Span::styled("filter ", theme.dim()));
        spans.push(Span::raw(format!("{}  ", screen.query.label)));
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
    let wide = area.width >= 110;
    let now = now_millis();
    let header = if wide {
        Row::new([
            "", "TIME", "TOPIC", "ENDPOINT", "TENANT", "STATE", "ATT", "LAST", "NEXT",
        ])
    } else {
        Row::new([
            "", "TIME", "TOPIC", "ENDPOINT", "STATE", "ATT", "LAST", "NEXT",
        ])
    };
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Length(11),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(11),
            Constraint::Length(3),
            Constraint::Fill(2),
            Constraint::Length(6),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Length(8),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Length(11),
            Constraint::Length(3),
            Constraint::Fill(2),
            Constraint::Length(5),
        ]
    };
    let empty = if screen.query.text.is_some() {
        "no delivery's payload matches yet"
    } else {
        "no deliveries match (publish events, or change the filter with /)"
    };
    let columns = Columns {
        header,
        widths: &widths,
        empty,
    };
    table(frame, list, theme, columns, &screen.rows, |d| {
        delivery_row(d, screen.marked.contains(&d.id), wide, now, theme)
    });
}

fn delivery_row(d: &Delivery, marked: bool, wide: bool, now: i64, theme: Theme) -> Row<'static> {
    let last = match (&d.last_error, d.last_status) {
        (Some(error), _) => error.clone(),
        (None, Some(status)) => status.to_string(),
        (None, None) => String::new(),
    };
    let next = match d.state {
        DeliveryState::Pending | DeliveryState::Scheduled if d.next_attempt_at > now => {
            human_duration(d.next_attempt_at - now)
        }
        DeliveryState::Pending | DeliveryState::Scheduled => "due".to_string(),
        _ => String::new(),
    };
    let mark = Cell::from(Span::styled(if marked { "*" } else { " " }, theme.marked()));
    let state = Cell::from(Span::styled(state_label(d.state), theme.state(d.state)));
    let last = Cell::from(Span::styled(
        last,
        if d.last_error.is_some() {
            theme.bad()
        } else {
            theme.plain()
        },
    ));
    let mut cells = vec![
        mark,
        Cell::from(short_time(d.created_at)),
        Cell::from(d.topic.clone()),
        Cell::from(d.endpoint_name.clone()),
    ];
    if wide {
        cells.push(Cell::from(d.tenant_name.clone()));
    }
    cells.extend([
        state,
        Cell::from(d.attempts.to_string()),
        last,
        Cell::from(next),
    ]);
    Row::new(cells)
}

pub fn endpoints(screen: &EndpointsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let rows = &screen.rows;
    let wide = area.width >= 120;
    let now = now_millis();
    let mut header = vec![
        "ENDPOINT",
        "STATE",
        "OK 5M",
        "OK 1H",
        "P50",
        "P95",
        "INFL",
        "BACKLOG",
        "FAILS",
        "LAST ERROR",
    ];
    let mut widths = vec![
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Fill(2),
    ];
    if wide {
        header.push("LAST OK");
        widths.push(Constraint::Length(8));
    }
    let columns = Columns {
        header: Row::new(header),
        widths: &widths,
        empty: "no endpoints (add one with `hookline endpoint add`)",
    };
    table(frame, area, theme, columns, rows, |row| {
        endpoint_row(row, wide, now, theme)
    });
}

fn endpoint_row(row: &EndpointRow, wide: bool, now: i64, theme: Theme) -> Row<'static> {
    let endpoint = &row.endpoint;
    let health = row.health.as_ref();
    let rate_5m = health.and_then(|h| h.last_5m.success_rate());
    let rate_1h = health.and_then(|h| h.last_1h.success_rate());
    let latency = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), human_duration);
    let fails = health.map_or(0, |h| h.consecutive_failures);
    let state = match &endpoint.state_reason {
        Some(_) => format!("{}*", endpoint_state_label(endpoint.state)),
        None => endpoint_state_label(endpoint.state).to_string(),
    };
    let last_error = match (
        &endpoint.state_reason,
        health.and_then(|h| h.last_error.clone()),
    ) {
        (Some(reason), _) if endpoint.state != crate::model::EndpointState::Active => {
            reason.clone()
        }
        (_, Some(error)) => error,
        _ => String::new(),
    };
    let mut cells = vec![
        Cell::from(endpoint_label(endpoint)),
        Cell::from(Span::styled(state, theme.endpoint_state(endpoint.state))),
        Cell::from(Span::styled(percent(rate_5m), theme.rate(rate_5m))),
        Cell::from(Span::styled(percent(rate_1h), theme.rate(rate_1h))),
        Cell::from(latency(health.and_then(|h| h.last_1h.p50_ms()))),
        Cell::from(latency(health.and_then(|h| h.last_1h.p95_ms()))),
        Cell::from(
            row.queue
                .map_or_else(|| "-".to_string(), |q| q.in_flight.to_string()),
        ),
        Cell::from(match row.queue {
            Some(queue) => Span::styled(
                group_digits(queue.backlog().max(0) as u64),
                count_style(theme, queue.backlog(), false),
            ),
            None => Span::raw("-"),
        }),
        Cell::from(Span::styled(
            fails.to_string(),
            count_style(theme, fails, true),
        )),
        Cell::from(Span::styled(clip(&last_error, 60), theme.bad())),
    ];
    if wide {
        let last_ok = health.and_then(|h| h.last_success_at).map_or_else(
            || "-".to_string(),
            |at| format!("{} ago", human_duration(now - at)),
        );
        cells.push(Cell::from(last_ok));
    }
    Row::new(cells)
}

pub fn subscriptions(screen: &SubscriptionsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let empty = match &screen.endpoint {
        Some(_) => "this endpoint has no subscriptions: n adds one",
        None => "no subscriptions yet: n adds one",
    };
    let columns = Columns {
        header: Row::new(["ENDPOINT", "TOPIC PATTERN", "DESCRIPTION", "ID"]),
        widths: &[
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Length(30),
        ],
        empty,
    };
    table(frame, area, theme, columns, &screen.rows, |s| {
        Row::new(vec![
            Cell::from(s.endpoint_name.clone()),
            Cell::from(Span::styled(s.pattern.clone(), theme.bold())),
            Cell::from(s.description.clone().unwrap_or_default()),
            Cell::from(Span::styled(s.id.clone(), theme.dim())),
        ])
    });
}

pub fn audit(screen: &AuditScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let columns = Columns {
        header: Row::new(["WHEN", "WHO", "FROM", "VIA", "ACTION", "ON", "DETAIL"]),
        widths: &[
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Length(13),
            Constraint::Length(7),
            Constraint::Length(20),
            Constraint::Length(30),
            Constraint::Fill(1),
        ],
        empty: "no operator actions yet",
    };
    table(frame, area, theme, columns, &screen.rows, |a| {
        let targets = match a.target_ids.len() {
            0 => String::new(),
            1 => a.target_ids[0].clone(),
            n => format!("{} (+{})", a.target_ids[0], n - 1),
        };
        Row::new(vec![
            Cell::from(short_time(a.at)),
            Cell::from(a.actor.clone()),
            Cell::from(a.client_addr.clone().unwrap_or_else(|| "-".to_string())),
            Cell::from(a.source.as_str()),
            Cell::from(Span::styled(a.action.clone(), theme.bold())),
            Cell::from(targets),
            Cell::from(Line::from(Span::styled(a.detail.clone(), theme.dim()))),
        ])
    });
}
