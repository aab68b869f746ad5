//! One delivery: what it is, its payload (re-indented, never re-serialised),
//! the headers sent (signature masked) and every attempt as a timeline.
//! Everything from outside is [`shown`] with its controls escaped.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{human_duration, short_time, shown};
use crate::console::screens::DetailScreen;
use crate::console::theme::{Theme, state_label};
use crate::model::{DeliveryState, format_rfc3339, now_millis, reindent_json};

pub fn render(screen: &DetailScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(paragraph) = paragraph(screen, theme) else {
        frame.render_widget(Paragraph::new(Span::styled("loading…", theme.dim())), area);
        return;
    };
    let scroll = screen
        .scroll
        .min(last_scroll(&paragraph, area.width, area.height));
    frame.render_widget(paragraph.scroll((scroll, 0)), area);
}

/// How far the detail can scroll in a body of `width` x `height`: until
/// its last row, wrapped as drawn, reaches the bottom.
pub fn scroll_limit(screen: &DetailScreen, width: u16, height: u16) -> u16 {
    paragraph(screen, Theme::new(false)).map_or(0, |p| last_scroll(&p, width, height))
}

fn last_scroll(paragraph: &Paragraph, width: u16, height: u16) -> u16 {
    let rows = u16::try_from(paragraph.line_count(width)).unwrap_or(u16::MAX);
    rows.saturating_sub(height)
}

/// The whole detail, wrapped at the width it is drawn in; `None` while it loads.
fn paragraph(screen: &DetailScreen, theme: Theme) -> Option<Paragraph<'static>> {
    let detail = screen.detail.as_ref()?;
    let d = &detail.delivery;
    let mut lines: Vec<Line> = Vec::new();
    let field = |name: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{name:<11}"), theme.dim()),
            Span::raw(shown(&value)),
        ])
    };
    lines.push(Line::from(vec![
        Span::styled(format!("{:<11}", "state"), theme.dim()),
        Span::styled(state_label(d.state), theme.state(d.state)),
        Span::raw(format!("  after {} attempts", d.attempts)),
    ]));
    if let Some(hold) = screen.hold {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<11}", "held"), theme.dim()),
            Span::styled(
                format!(
                    "{}: nothing is sent until {}",
                    hold.label(crate::ops::local_time_short),
                    hold.until()
                ),
                theme.warn(),
            ),
        ]));
    }
    lines.push(field("delivery", d.id.clone()));
    lines.push(field("event", format!("{}  (the webhook-id)", d.event_id)));
    lines.push(field("topic", d.topic.clone()));
    lines.push(field(
        "endpoint",
        format!("{}/{}", d.tenant_name, d.endpoint_name),
    ));
    lines.push(field("created", format_rfc3339(d.created_at)));
    if matches!(d.state, DeliveryState::Pending | DeliveryState::Retrying) {
        let wait = d.next_attempt_at - now_millis();
        let when = if wait > 0 {
            format!("in {}", human_duration(wait))
        } else if screen.hold.is_some() {
            // Due, but held: "due now" would promise an attempt.
            "due, held (above)".to_string()
        } else {
            "due now".to_string()
        };
        lines.push(field(
            "next",
            format!("{when} ({})", format_rfc3339(d.next_attempt_at)),
        ));
    }
    if let Some(error) = &d.last_error {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<11}", "last error"), theme.dim()),
            Span::styled(shown(error), theme.bad()),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        format!("Attempts ({})", detail.attempts.len()),
        theme.title(),
    )));
    if detail.attempts.is_empty() {
        lines.push(Line::from(Span::styled("  none yet", theme.dim())));
    }
    for attempt in &detail.attempts {
        let outcome = match (attempt.error_kind, attempt.status_code) {
            (None, Some(status)) => Span::styled(format!("✓ {status}"), theme.good()),
            (None, None) => Span::styled("✓", theme.good()),
            (Some(kind), Some(status)) => Span::styled(format!("✗ {kind} {status}"), theme.bad()),
            (Some(kind), None) => Span::styled(format!("✗ {kind}"), theme.bad()),
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  #{:<2} {}  {:>6}  ",
                attempt.attempt_number,
                short_time(attempt.started_at),
                human_duration(attempt.duration_ms)
            )),
            outcome,
            Span::styled(
                attempt
                    .error_message
                    .as_deref()
                    .filter(|_| attempt.error_kind != Some(crate::model::ErrorKind::HttpStatus))
                    .map(|m| format!("  {}", shown(m)))
                    .unwrap_or_default(),
                theme.dim(),
            ),
        ]));
        if let Some(body) = &attempt.response_body {
            // A preview on one line: line breaks become spaces, any other
            // control shows as its escape.
            let body: String = body.chars().take(160).collect();
            lines.push(Line::from(vec![
                Span::styled("       answer ", theme.dim()),
                Span::raw(shown(&body.replace(['\n', '\r'], " "))),
            ]));
        }
    }
    if let Some(last) = detail.attempts.last() {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            "Headers sent (last attempt)",
            theme.title(),
        )));
        for (name, value) in &last.request_headers {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}: ", shown(name)), theme.dim()),
                Span::raw(shown(value)),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        format!("Payload ({} bytes)", detail.event.payload_size),
        theme.title(),
    )));
    match detail.event.payload_removed {
        Some(removal) => lines.push(Line::from(Span::styled(
            format!(
                "  {} at {}: this delivery cannot be retried",
                removal.by.describe(),
                short_time(removal.at)
            ),
            theme.warn(),
        ))),
        None => {
            for line in reindent_json(&detail.event.payload).lines() {
                lines.push(Line::from(format!("  {}", shown(line))));
            }
        }
    }
    Some(Paragraph::new(lines).wrap(Wrap { trim: false }))
}
