//! The detail strip above the status line: the selected row's fields in
//! full (names, URL with its secrets masked, the whole last error, topic,
//! ids), so what its columns had to cut at 80x24 is never lost.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::lists::{audit_targets, endpoint_problem, subscription_endpoint};
use super::shown;
use crate::console::app::App;
use crate::console::format::endpoint_label;
use crate::console::screens::Screen;
use crate::console::theme::Theme;
use crate::redact::mask_url_password;
use crate::text::width as text_width;

/// One field: its label, its value as stored, and whether it is bad news.
struct Field {
    label: &'static str,
    value: String,
    bad: bool,
}

fn field(label: &'static str, value: impl Into<String>) -> Field {
    Field {
        label,
        value: value.into(),
        bad: false,
    }
}

fn bad(label: &'static str, value: impl Into<String>) -> Field {
    Field {
        label,
        value: value.into(),
        bad: true,
    }
}

/// Draws the selected row's fields into `area`; the most telling fields
/// come first, so they are what a very long value would push off the end.
pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let lines = lay_out(&fields(app), usize::from(area.width), theme);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
}

/// The fields as lines of `width`: a field that does not fit on the line
/// it would start on begins the next, so a label never ends a line without
/// its value; only a value wider than a whole line wraps.
fn lay_out(fields: &[Field], width: usize, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for f in fields.iter().filter(|f| !f.value.is_empty()) {
        let label = format!("{} ", f.label);
        let value = shown(&f.value);
        let needed = text_width(&label) + text_width(&value);
        if used > 0 && used + 2 + needed > width {
            lines.push(Line::from(std::mem::take(&mut line)));
            used = 0;
        }
        if used > 0 {
            line.push(Span::raw("  "));
            used += 2;
        }
        let style: Style = if f.bad { theme.bad() } else { theme.plain() };
        line.push(Span::styled(label, theme.dim()));
        line.push(Span::styled(value, style));
        used += needed;
    }
    lines.push(Line::from(line));
    lines
}

fn fields(app: &App) -> Vec<Field> {
    match app.top() {
        Screen::Overview(s) => s
            .worst
            .get(s.selected)
            .map(|w| {
                vec![
                    field("endpoint", w.label.clone()),
                    bad("last error", w.last_error.clone().unwrap_or_default()),
                ]
            })
            .unwrap_or_default(),
        Screen::Deliveries(s) => s
            .rows
            .selected_item()
            .map(|d| {
                vec![
                    field("endpoint", format!("{}/{}", d.tenant_name, d.endpoint_name)),
                    last_field(d),
                    field("topic", d.topic.clone()),
                    field("event", d.event_id.clone()),
                ]
            })
            .unwrap_or_default(),
        Screen::EndpointDetail(s) => s
            .selected_cause()
            .map(|cause| {
                vec![
                    bad("cause", cause.cause.clone()),
                    field("e.g.", cause.example_error.clone()),
                    field("delivery", cause.example_delivery_id.clone()),
                ]
            })
            .unwrap_or_default(),
        Screen::Event(s) => s
            .selected_delivery()
            .map(|d| {
                vec![
                    field("endpoint", format!("{}/{}", d.tenant_name, d.endpoint_name)),
                    last_field(d),
                    field("delivery", d.id.clone()),
                ]
            })
            .unwrap_or_default(),
        Screen::Endpoints(s) => s
            .rows
            .selected_item()
            .map(|row| {
                vec![
                    field("endpoint", endpoint_label(&row.endpoint)),
                    bad("why", endpoint_problem(row)),
                    field("url", mask_url_password(&row.endpoint.url)),
                ]
            })
            .unwrap_or_default(),
        Screen::Subscriptions(s) => s
            .rows
            .selected_item()
            .map(|sub| {
                vec![
                    field("endpoint", subscription_endpoint(sub)),
                    field("pattern", sub.pattern.clone()),
                    field("description", sub.description.clone().unwrap_or_default()),
                    field("id", sub.id.clone()),
                ]
            })
            .unwrap_or_default(),
        Screen::Audit(s) => s
            .rows
            .selected_item()
            .map(|a| {
                let on = if a.target_ids.len() > 1 {
                    a.target_ids.join(" ")
                } else {
                    audit_targets(a)
                };
                vec![
                    field("action", a.action.clone()),
                    field("on", on),
                    field("by", a.actor.clone()),
                    field("from", a.client_addr.clone().unwrap_or_default()),
                    field("via", a.source.as_str()),
                    field("detail", a.detail.clone()),
                ]
            })
            .unwrap_or_default(),
        Screen::Detail(_) | Screen::Help(_) => Vec::new(),
    }
}

/// A delivery's last error in full, or its last status.
fn last_field(d: &crate::model::Delivery) -> Field {
    match (&d.last_error, d.last_status) {
        (Some(error), _) => bad("last error", error.clone()),
        (None, Some(status)) => field("last status", status.to_string()),
        (None, None) => field("last", ""),
    }
}
