//! The list views: deliveries, the endpoint health table, subscriptions and
//! the audit log. Each draws only the rows on screen.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};

use super::{Columns, clip, count_style, human_duration, percent, short_time, shown, table};
use crate::console::format::{endpoint_label, group_digits};
use crate::console::screens::{
    AuditScreen, DeliveriesScreen, EndpointRow, EndpointsScreen, SubscriptionsScreen,
};
use crate::console::theme::{Theme, endpoint_state_label, state_label};
use crate::held::Hold;
use crate::model::{Delivery, DeliveryState, EndpointState, now_millis};
use crate::text::width;

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
    // The state column grows to say what holds a row, when one on screen is held.
    let state_width = screen
        .rows
        .items
        .iter()
        .skip(screen.rows.offset)
        .take(usize::from(area.height))
        .map(|d| width(&state_cell(d, screen.hold(d), wide)))
        .max()
        .unwrap_or(0)
        .max(11);
    let state_width = u16::try_from(state_width).unwrap_or(11);
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Length(11),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(state_width),
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
            Constraint::Length(state_width),
            Constraint::Length(3),
            // A held row's longer state comes out of the last error (the
            // detail shows it whole), not the topic and endpoint.
            Constraint::Fill(if state_width > 11 { 1 } else { 2 }),
            Constraint::Length(5),
        ]
    };
    let what = deliveries_what(screen);
    let empty = if screen.query.text.is_some() {
        "no delivery's payload matches yet".to_string()
    } else if what == "deliveries" {
        "no deliveries yet (publish events, or change the filter with /)".to_string()
    } else {
        format!("no {what} (change the filter with /)")
    };
    let columns = Columns {
        header,
        widths: &widths,
        empty: &empty,
        what: &what,
    };
    table(frame, list, theme, columns, &screen.rows, |d| {
        delivery_row(d, screen, wide, now, theme)
    });
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
fn state_cell(d: &Delivery, hold: Option<Hold>, wide: bool) -> String {
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

fn delivery_row(
    d: &Delivery,
    screen: &DeliveriesScreen,
    wide: bool,
    now: i64,
    theme: Theme,
) -> Row<'static> {
    let marked = screen.marked.contains(&d.id);
    let hold = screen.hold(d);
    let last = match (&d.last_error, d.last_status) {
        (Some(error), _) => shown(error),
        (None, Some(status)) => status.to_string(),
        (None, None) => String::new(),
    };
    let next = match d.state {
        DeliveryState::Pending | DeliveryState::Scheduled if d.next_attempt_at > now => {
            human_duration(d.next_attempt_at - now)
        }
        // Due, but it will not go until what holds it lets go.
        DeliveryState::Pending | DeliveryState::Scheduled if hold.is_some() => "held".to_string(),
        DeliveryState::Pending | DeliveryState::Scheduled => "due".to_string(),
        _ => String::new(),
    };
    let mark = Cell::from(Span::styled(if marked { "*" } else { " " }, theme.marked()));
    let state = Cell::from(Span::styled(
        state_cell(d, hold, wide),
        theme.state(d.state),
    ));
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
        Cell::from(shown(&d.topic)),
        Cell::from(shown(&d.endpoint_name)),
    ];
    if wide {
        cells.push(Cell::from(shown(&d.tenant_name)));
    }
    cells.extend([
        state,
        Cell::from(d.attempts.to_string()),
        last,
        Cell::from(next),
    ]);
    Row::new(cells)
}

/// The endpoint health table. Below 100 columns the 1-hour rate, p50 and
/// in-flight columns make way for the endpoint's name and last error; from
/// 120 the last success joins.
pub fn endpoints(screen: &EndpointsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let rows = &screen.rows;
    let columns = EndpointColumns::for_width(area.width);
    let now = now_millis();
    let mut header = vec!["ENDPOINT", "STATE", "OK 5M"];
    let labels: Vec<String> = rows
        .items
        .iter()
        .map(|r| endpoint_label(&r.endpoint))
        .collect();
    let mut widths = vec![
        super::name_column(labels.iter().map(String::as_str), area.width),
        Constraint::Length(10),
        Constraint::Length(6),
    ];
    if columns.full {
        header.extend(["OK 1H", "P50"]);
        widths.extend([Constraint::Length(6), Constraint::Length(6)]);
    }
    header.push("P95");
    widths.push(Constraint::Length(6));
    if columns.full {
        header.push("INFL");
        widths.push(Constraint::Length(4));
    }
    header.extend(["BACKLOG", "FAILS", "LAST ERROR"]);
    // Room for "1,204 held" when a stopped endpoint holds work; only
    // stopped endpoints with a loaded queue can need it (a few of 1,000).
    let backlog_width = rows
        .items
        .iter()
        .filter(|r| r.queue.is_some() && r.endpoint.state != EndpointState::Active)
        .map(|r| width(&backlog_cell(r)))
        .max()
        .unwrap_or(0)
        .clamp(7, 14);
    widths.extend([
        Constraint::Length(u16::try_from(backlog_width).unwrap_or(7)),
        Constraint::Length(5),
        Constraint::Fill(2),
    ]);
    if columns.last_ok {
        header.push("LAST OK");
        widths.push(Constraint::Length(9));
    }
    let columns_spec = Columns {
        header: Row::new(header),
        widths: &widths,
        empty: "no endpoints (add one with `hookline endpoint add`)",
        what: "endpoints",
    };
    table(frame, area, theme, columns_spec, rows, |row| {
        endpoint_row(row, columns, now, theme)
    });
}

/// Which optional columns of the health table fit.
#[derive(Debug, Clone, Copy)]
struct EndpointColumns {
    /// OK 1H, P50 and INFL.
    full: bool,
    last_ok: bool,
}

impl EndpointColumns {
    fn for_width(width: u16) -> EndpointColumns {
        EndpointColumns {
            full: width >= 100,
            last_ok: width >= 120,
        }
    }
}

/// The state column of an active endpoint the outbound guard refuses.
const BLOCKED_LABEL: &str = "⊘ blocked";

fn endpoint_row(
    row: &EndpointRow,
    columns: EndpointColumns,
    now: i64,
    theme: Theme,
) -> Row<'static> {
    let endpoint = &row.endpoint;
    let health = row.health.as_ref();
    let rate_5m = health.and_then(|h| h.last_5m.success_rate());
    let rate_1h = health.and_then(|h| h.last_1h.success_rate());
    let latency = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), human_duration);
    let fails = health.map_or(0, |h| h.consecutive_failures);
    let state = match (&row.blocked, &endpoint.state_reason) {
        (Some(_), _) if endpoint.state == EndpointState::Active => BLOCKED_LABEL.to_string(),
        (_, Some(_)) => format!("{}*", endpoint_state_label(endpoint.state)),
        (_, None) => endpoint_state_label(endpoint.state).to_string(),
    };
    let state_style = match &row.blocked {
        Some(_) => theme.bad(),
        None => theme.endpoint_state(endpoint.state),
    };
    let last_error = match (
        &endpoint.state_reason,
        &row.blocked,
        health.and_then(|h| h.last_error.clone()),
    ) {
        (Some(reason), _, _) if endpoint.state != EndpointState::Active => reason.clone(),
        (_, Some(reason), _) => reason.clone(),
        (_, _, Some(error)) => error,
        _ => String::new(),
    };
    let mut cells = vec![
        Cell::from(shown(&endpoint_label(endpoint))),
        Cell::from(Span::styled(state, state_style)),
        Cell::from(Span::styled(percent(rate_5m), theme.rate(rate_5m))),
    ];
    if columns.full {
        cells.push(Cell::from(Span::styled(
            percent(rate_1h),
            theme.rate(rate_1h),
        )));
        cells.push(Cell::from(latency(health.and_then(|h| h.last_1h.p50_ms()))));
    }
    cells.push(Cell::from(latency(health.and_then(|h| h.last_1h.p95_ms()))));
    if columns.full {
        cells.push(Cell::from(
            row.queue
                .map_or_else(|| "-".to_string(), |q| q.in_flight.to_string()),
        ));
    }
    cells.extend([
        Cell::from(match row.queue {
            Some(queue) => Span::styled(
                backlog_cell(row),
                count_style(theme, queue.backlog(), false),
            ),
            None => Span::raw("-"),
        }),
        Cell::from(Span::styled(
            fails.to_string(),
            count_style(theme, fails, true),
        )),
        Cell::from(Span::styled(clip(&last_error, 60), theme.bad())),
    ]);
    if columns.last_ok {
        let last_ok = health.and_then(|h| h.last_success_at).map_or_else(
            || "-".to_string(),
            |at| format!("{} ago", human_duration(now - at)),
        );
        cells.push(Cell::from(last_ok));
    }
    Row::new(cells)
}

/// An endpoint's backlog, `12 held` when its state holds it.
fn backlog_cell(row: &EndpointRow) -> String {
    let Some(queue) = row.queue else {
        return "-".to_string();
    };
    let backlog = group_digits(queue.backlog().max(0) as u64);
    match Hold::of_endpoint(row.endpoint.state) {
        Some(_) if queue.backlog() > 0 => format!("{backlog} held"),
        _ => backlog,
    }
}

/// Subscriptions; their ids only from 100 columns (the form and `:id` do
/// not need them, the names and patterns matter more).
pub fn subscriptions(screen: &SubscriptionsScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let empty = match &screen.endpoint {
        Some(_) => "this endpoint has no subscriptions: n adds one",
        None => "no subscriptions yet: n adds one",
    };
    let with_ids = area.width >= 100;
    let mut header = vec!["ENDPOINT", "TOPIC PATTERN", "DESCRIPTION"];
    // `tenant/name`: the same name can serve several tenants.
    let labels: Vec<String> = screen
        .rows
        .items
        .iter()
        .map(|s| format!("{}/{}", s.tenant_name, s.endpoint_name))
        .collect();
    let mut widths = vec![
        super::name_column(labels.iter().map(String::as_str), area.width),
        Constraint::Fill(2),
        Constraint::Fill(3),
    ];
    if with_ids {
        header.push("ID");
        widths.push(Constraint::Length(30));
    }
    let columns = Columns {
        header: Row::new(header),
        widths: &widths,
        empty,
        what: "subscriptions",
    };
    table(frame, area, theme, columns, &screen.rows, |s| {
        let mut cells = vec![
            Cell::from(shown(&format!("{}/{}", s.tenant_name, s.endpoint_name))),
            Cell::from(Span::styled(shown(&s.pattern), theme.bold())),
            Cell::from(shown(s.description.as_deref().unwrap_or_default())),
        ];
        if with_ids {
            cells.push(Cell::from(Span::styled(shown(&s.id), theme.dim())));
        }
        Row::new(cells)
    });
}

/// The audit log. Below 110 columns the interface (VIA) and the detail
/// make way: who, from where, what and on what matter most.
pub fn audit(screen: &AuditScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let wide = area.width >= 110;
    let mut header = vec!["WHEN", "WHO", "FROM"];
    // Room for a login and an IPv4 address.
    let mut widths = vec![
        Constraint::Length(11),
        Constraint::Length(14),
        Constraint::Length(15),
    ];
    if wide {
        header.push("VIA");
        widths.push(Constraint::Length(7));
    }
    header.extend(["ACTION", "ON"]);
    widths.push(Constraint::Length(20));
    if wide {
        header.push("DETAIL");
        widths.extend([Constraint::Length(30), Constraint::Fill(1)]);
    } else {
        widths.push(Constraint::Fill(1));
    }
    let columns = Columns {
        header: Row::new(header),
        widths: &widths,
        empty: "no operator actions yet",
        what: "the audit log",
    };
    table(frame, area, theme, columns, &screen.rows, |a| {
        let targets = match a.target_ids.len() {
            0 => String::new(),
            1 => a.target_ids[0].clone(),
            n => format!("{} (+{})", a.target_ids[0], n - 1),
        };
        let mut cells = vec![
            Cell::from(short_time(a.at)),
            Cell::from(shown(&a.actor)),
            Cell::from(
                a.client_addr
                    .as_deref()
                    .map_or_else(|| "-".to_string(), shown),
            ),
        ];
        if wide {
            cells.push(Cell::from(a.source.as_str()));
        }
        cells.extend([
            Cell::from(Span::styled(shown(&a.action), theme.bold())),
            Cell::from(shown(&targets)),
        ]);
        if wide {
            cells.push(Cell::from(Line::from(Span::styled(
                shown(&a.detail),
                theme.dim(),
            ))));
        }
        Row::new(cells)
    });
}
