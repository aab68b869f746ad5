//! One event: what it is, every endpoint it fanned out to with that
//! delivery's state (and what holds it), attempts and last answer, and its
//! payload, re-indented or as the exact bytes published.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::lists::state_cell;
use super::{clip, short_time, shown};
use crate::console::fit::shorten_middle;
use crate::console::format::group_digits;
use crate::console::screens::EventScreen;
use crate::console::theme::Theme;
use crate::model::{Delivery, DeliveryState, format_rfc3339, reindent_json};
use crate::text::width;

/// The fields above the fan-out: event, topic, tenant, created, payload,
/// a blank line, the fan-out's title and its column header.
const FIRST_ROW: usize = 8;
/// The selection marker's columns.
const MARKER: usize = 2;
/// The attempts column, with its leading space.
const ATTEMPTS: usize = 4;

pub fn render(screen: &EventScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(paragraph) = paragraph(screen, theme, area.width) else {
        let text = match &screen.refused {
            Some(reason) => Span::styled(shown(reason), theme.bad()),
            None => Span::styled("loading…", theme.dim()),
        };
        let waiting = Paragraph::new(text).wrap(Wrap { trim: false });
        frame.render_widget(waiting, area);
        return;
    };
    let scroll = screen
        .scroll
        .min(last_scroll(&paragraph, area.width, area.height));
    frame.render_widget(paragraph.scroll((scroll, 0)), area);
}

/// How far the view can scroll in a body of `width` x `height`: until its
/// last line, wrapped as drawn, reaches the bottom.
pub fn scroll_limit(screen: &EventScreen, width: u16, height: u16) -> u16 {
    paragraph(screen, Theme::new(false), width).map_or(0, |p| last_scroll(&p, width, height))
}

/// The line fan-out row `index` is drawn on (every line above it is cut
/// to the width, so none wraps).
pub fn row_line(index: usize) -> usize {
    FIRST_ROW + index
}

fn last_scroll(paragraph: &Paragraph, width: u16, height: u16) -> u16 {
    let rows = u16::try_from(paragraph.line_count(width)).unwrap_or(u16::MAX);
    rows.saturating_sub(height)
}

/// The whole view at `width` columns; `None` while it loads.
fn paragraph(screen: &EventScreen, theme: Theme, width: u16) -> Option<Paragraph<'static>> {
    let fanout = screen.fanout.as_ref()?;
    let event = &fanout.event;
    let room = usize::from(width);
    let field = |name: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{name:<11}"), theme.dim()),
            Span::raw(clip(&value, room.saturating_sub(11))),
        ])
    };
    let tenant = match (&event.tenant_id, &fanout.tenant_name) {
        (None, _) => "every tenant (a broadcast)".to_string(),
        (Some(_), Some(name)) => name.clone(),
        (Some(id), None) => id.clone(),
    };
    let mut lines = vec![
        field("event", format!("{}  (the webhook-id)", event.id)),
        field("topic", event.topic.clone()),
        field("tenant", tenant),
        field("created", format_rfc3339(event.created_at)),
        field(
            "payload",
            format!("{} bytes", group_digits(event.payload_size.max(0) as u64)),
        ),
        Line::default(),
        fanout_title(&fanout.deliveries, fanout.more, theme, room),
    ];
    lines.extend(fanout_rows(screen, theme, room));
    lines.push(Line::default());
    lines.extend(payload_lines(screen, theme));
    Some(Paragraph::new(lines).wrap(Wrap { trim: false }))
}

/// `Fan-out: 3 endpoints  ✓ 1  ↻ 1  ○ 1`: how many, and by state.
fn fanout_title(deliveries: &[Delivery], more: bool, theme: Theme, room: usize) -> Line<'static> {
    let count = group_digits(deliveries.len() as u64);
    let mut text = match (deliveries.len(), more) {
        (0, _) => "Fan-out: no endpoint".to_string(),
        (1, false) => "Fan-out: 1 endpoint".to_string(),
        (_, false) => format!("Fan-out: {count} endpoints"),
        (_, true) => format!("Fan-out: the first {count} endpoints"),
    };
    for state in [
        DeliveryState::Delivered,
        DeliveryState::InFlight,
        DeliveryState::Pending,
        DeliveryState::Retrying,
        DeliveryState::Dead,
        DeliveryState::Cancelled,
    ] {
        let n = deliveries.iter().filter(|d| d.state == state).count();
        if n > 0 {
            let symbol = crate::console::theme::state_label(state)
                .split(' ')
                .next()
                .unwrap_or_default();
            text.push_str(&format!("  {symbol} {}", group_digits(n as u64)));
        }
    }
    Line::from(Span::styled(clip(&text, room), theme.title()))
}

/// The column header and one line per delivery, each cut to `room`.
fn fanout_rows(screen: &EventScreen, theme: Theme, room: usize) -> Vec<Line<'static>> {
    let Some(fanout) = &screen.fanout else {
        return Vec::new();
    };
    if fanout.deliveries.is_empty() {
        return vec![Line::from(Span::styled(
            "  it matched no subscription: nothing was sent",
            theme.dim(),
        ))];
    }
    let wide = room >= 110;
    let states: Vec<String> = fanout
        .deliveries
        .iter()
        .map(|d| state_cell(d, screen.hold(d), wide))
        .collect();
    let state_width = states.iter().map(|s| width(s)).max().unwrap_or(0).max(11);
    let labels: Vec<String> = fanout
        .deliveries
        .iter()
        .map(|d| format!("{}/{}", d.tenant_name, d.endpoint_name))
        .collect();
    let longest = labels.iter().map(|l| width(&shown(l))).max().unwrap_or(0);
    // The last answer keeps at least 14 columns; the endpoint takes the rest
    // it needs, and never less than 12.
    let endpoint_width = longest
        .min(room.saturating_sub(MARKER + state_width + 1 + ATTEMPTS + 2 + 14))
        .max(12);
    let last_width = room.saturating_sub(MARKER + endpoint_width + 1 + state_width + ATTEMPTS + 2);
    let mut lines = vec![Line::from(Span::styled(
        clip(
            &format!(
                "{:MARKER$}{:<endpoint_width$} {:<state_width$}{:>ATTEMPTS$}  LAST",
                "", "ENDPOINT", "STATE", "ATT"
            ),
            room,
        ),
        theme.dim(),
    ))];
    for (index, ((delivery, state), label)) in fanout
        .deliveries
        .iter()
        .zip(&states)
        .zip(&labels)
        .enumerate()
    {
        let selected = index == screen.selected;
        let marker = if selected { "› " } else { "  " };
        let label = shorten_middle(&shown(label), endpoint_width);
        let pad = " ".repeat(endpoint_width.saturating_sub(width(&label)));
        let state_pad = " ".repeat(state_width.saturating_sub(width(state)));
        let (last, last_style) = last_answer(delivery, theme);
        let row_style = if selected {
            theme.selected()
        } else {
            Style::default()
        };
        let spans = vec![
            Span::raw(format!("{marker}{label}{pad} ")),
            Span::styled(format!("{state}{state_pad}"), theme.state(delivery.state)),
            Span::raw(format!("{:>ATTEMPTS$}  ", delivery.attempts)),
            Span::styled(clip(&last, last_width), last_style),
        ];
        lines.push(Line::from(spans).style(row_style));
    }
    if fanout.more {
        lines.push(Line::from(Span::styled(
            clip(
                &format!(
                    "  more endpoints than shown: /event:{} lists every delivery",
                    fanout.event.id
                ),
                room,
            ),
            theme.dim(),
        )));
    }
    lines
}

/// When a delivery was last tried and how it went: `21:01:57 200`, or
/// the time and the error (cut at its end: the strip shows it whole);
/// nothing before its first attempt.
fn last_answer(delivery: &Delivery, theme: Theme) -> (String, Style) {
    let Some(at) = delivery.last_attempt_at else {
        return (String::new(), theme.plain());
    };
    let at = short_time(at);
    match (&delivery.last_error, delivery.last_status) {
        (Some(error), _) => (format!("{at} {error}"), theme.bad()),
        (None, Some(status)) => (format!("{at} {status}"), theme.plain()),
        (None, None) => (at, theme.plain()),
    }
}

/// The payload, re-indented (or exactly as published), or why it is gone.
fn payload_lines(screen: &EventScreen, theme: Theme) -> Vec<Line<'static>> {
    let Some(fanout) = &screen.fanout else {
        return Vec::new();
    };
    let event = &fanout.event;
    let how = if screen.exact {
        "exact bytes; x: re-indented"
    } else {
        "re-indented; x: exact bytes"
    };
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "Payload ({} bytes, {how})",
            group_digits(event.payload_size.max(0) as u64)
        ),
        theme.title(),
    ))];
    match event.payload_removed {
        Some(removal) => lines.push(Line::from(Span::styled(
            format!(
                "  {} at {}: its deliveries cannot be retried",
                removal.by.describe(),
                short_time(removal.at)
            ),
            theme.warn(),
        ))),
        None if screen.exact => {
            // Line breaks as published stay line breaks; every other
            // control shows as its escape.
            for line in event.payload.split('\n') {
                lines.push(Line::from(format!("  {}", shown(line))));
            }
        }
        None => {
            for line in reindent_json(&event.payload).lines() {
                lines.push(Line::from(format!("  {}", shown(line))));
            }
        }
    }
    lines
}
