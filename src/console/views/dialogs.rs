//! Dialogs over the body: a confirmation (Cancel focused until moved, as
//! tall as its question), the forms with their inline errors, an
//! endpoint's secrets and its circuit breaker. A form
//! shows what is stored, outside text's controls as escapes; the field
//! itself edits the real text.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::{clip, cursor_column, human_duration, short_time, shown};
use crate::console::app::confirm::Confirm;
use crate::console::app::forms::{Form, PatternPreview};
use crate::console::format::group_digits;
use crate::console::screens::BreakerPanel;
use crate::console::theme::Theme;
use crate::model::{BreakerMode, BreakerState, Endpoint, now_millis};
use crate::ops::{from_now, local_time_short};
use crate::redact::is_sensitive_header;

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// How many lines `text` takes wrapped at word boundaries to `width`
/// columns (as the dialog's paragraph wraps it; a word wider than a line
/// is cut across lines).
fn wrapped_lines(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let mut lines = 1;
    let mut used = 0;
    for word in text.split_whitespace() {
        let w = crate::text::width(word);
        let needed = if used == 0 { w } else { used + 1 + w };
        if needed <= width {
            used = needed;
        } else {
            if used > 0 {
                lines += 1;
            }
            lines += w.saturating_sub(1) / width;
            used = match w % width {
                0 => width,
                rest => rest,
            };
        }
    }
    lines
}

pub fn confirm(confirm: &Confirm, theme: Theme, frame: &mut Frame, body: Rect) {
    // Tall enough for the question (a resume names why and what it sends),
    // never less than the usual seven lines.
    let question_width = usize::from(body.width.min(64)).saturating_sub(2);
    let lines = wrapped_lines(&shown(&confirm.question), question_width);
    let height = u16::try_from(lines + 3).unwrap_or(u16::MAX).max(7);
    let area = centered(body, 64, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(Span::styled(" Confirm ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [question, buttons] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(shown(&confirm.question)).wrap(Wrap { trim: true }),
        question,
    );
    let button = |label: &str, focused: bool| {
        let text = if focused {
            format!("[ {label} ]")
        } else {
            format!("  {label}  ")
        };
        Span::styled(
            text,
            if focused {
                theme.selected()
            } else {
                theme.plain()
            },
        )
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            button("Cancel", !confirm.confirm_focused),
            Span::raw("   "),
            button(confirm.confirm_label, confirm.confirm_focused),
        ]))
        .centered(),
        buttons,
    );
}

/// An endpoint's secrets in plain, one per line, wrapped rather than cut
/// (a secret cut short is useless to copy).
/// Text just copied to the clipboard, whole, for a terminal that ignores
/// OSC 52: the mouse (never captured) selects it. Escaped as everywhere.
pub fn copied(text: &str, theme: Theme, frame: &mut Frame, body: Rect) {
    let lines: Vec<Line> = text.lines().map(|line| Line::from(shown(line))).collect();
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = paragraph.line_count(body.width.saturating_sub(2));
    let height = u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_add(2)
        .min(body.height);
    let area = centered(body, body.width, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(Span::styled(" Copied ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(paragraph, inner);
}

/// What a probe found: from which host, then each step with its time,
/// what it found and its detail lines (every address and the guard's word,
/// the certificate, the answer's first lines), escaped as everywhere.
pub fn probe(report: &crate::ops::ProbeReport, theme: Theme, frame: &mut Frame, body: Rect) {
    let mut lines = vec![Line::from(vec![
        Span::styled("from ", theme.dim()),
        Span::raw(shown(&report.from_host)),
        Span::styled(" to ", theme.dim()),
        Span::raw(shown(&report.url)),
    ])];
    for step in &report.steps {
        let (mark, style) = if step.ok {
            ("✓", theme.good())
        } else {
            ("✗", theme.bad())
        };
        let ms = step
            .ms
            .map(|ms| format!("{ms:>5} ms"))
            .unwrap_or_else(|| " ".repeat(8));
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} {:<8}", step.step), style),
            Span::styled(ms, theme.dim()),
            Span::raw(format!("  {}", shown(&step.detail))),
        ]));
        for line in &step.lines {
            lines.push(Line::from(Span::styled(
                format!("{:20}{}", "", shown(line)),
                theme.dim(),
            )));
        }
    }
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let width = body.width.min(90);
    let rows = paragraph.line_count(width.saturating_sub(2));
    let height = u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_add(2)
        .min(body.height);
    let area = centered(body, width, height);
    frame.render_widget(Clear, area);
    let title = if report.ok() {
        " Probe: every step passed "
    } else {
        " Probe: a step failed "
    };
    let block = Block::bordered().title(Span::styled(title, theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(paragraph, inner);
}

pub fn reveal(endpoint: &Endpoint, theme: Theme, frame: &mut Frame, body: Rect) {
    let mut lines = vec![
        Line::from(Span::styled("Signing secret", theme.dim())),
        Line::from(shown(&endpoint.secret)),
    ];
    if let Some(previous) = &endpoint.previous_secret {
        lines.push(Line::from(Span::styled(
            "Previous secret (signs until it expires)",
            theme.dim(),
        )));
        lines.push(Line::from(shown(previous)));
    }
    lines.push(Line::from(Span::styled("URL", theme.dim())));
    lines.push(Line::from(shown(&endpoint.url)));
    let sensitive: Vec<&(String, String)> = endpoint
        .headers
        .iter()
        .filter(|(name, _)| is_sensitive_header(name))
        .collect();
    if !sensitive.is_empty() {
        lines.push(Line::from(Span::styled("Headers", theme.dim())));
        for (name, value) in sensitive {
            lines.push(Line::from(format!("{}: {}", shown(name), shown(value))));
        }
    }
    let height = (lines.len() as u16).saturating_mul(2).saturating_add(2);
    let area = centered(body, 76, height);
    frame.render_widget(Clear, area);
    let title = format!(" Secrets of {}/{} ", endpoint.tenant_name, endpoint.name);
    let block = Block::bordered().title(Span::styled(title, theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

pub fn form(form: &Form, theme: Theme, frame: &mut Frame, body: Rect) {
    let height = (form.fields.len() as u16) * 3 + 3;
    let area = centered(body, 76, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(Span::styled(
        format!(" {} ", shown(&form.title)),
        theme.title(),
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        lines.push(Line::from(Span::styled(
            field.label.as_str(),
            if focused { theme.bold() } else { theme.dim() },
        )));
        let marker = if focused { "› " } else { "  " };
        lines.push(Line::from(vec![
            Span::styled(marker, theme.key()),
            Span::styled(
                shown(field.input.text()),
                if focused {
                    theme.selected()
                } else {
                    theme.plain()
                },
            ),
        ]));
        let preview = (field.name == "topic")
            .then(|| form.pattern_preview())
            .flatten();
        lines.push(match (&field.error, preview) {
            (Some(error), _) => {
                Line::from(Span::styled(format!("  ✗ {}", shown(error)), theme.error()))
            }
            (None, Some(preview)) => preview_line(&preview, theme, usize::from(inner.width)),
            (None, None) => Line::default(),
        });
    }
    if form.submitting {
        lines.push(Line::from(Span::styled("saving…", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    if let Some(field) = form.fields.get(form.focus) {
        let x = inner
            .x
            .saturating_add(2)
            .saturating_add(cursor_column(field.input.text(), field.input.cursor()));
        let y = inner.y + (form.focus as u16) * 3 + 1;
        if x < inner.right() && y < inner.bottom() {
            frame.set_cursor_position((x, y));
        }
    }
}

/// What the pattern being typed matches among the tenant's latest events.
fn preview_line(preview: &PatternPreview, theme: Theme, room: usize) -> Line<'static> {
    let (text, style) = match preview {
        PatternPreview::Loading => (
            "  reading the tenant's latest events to preview…".to_string(),
            theme.dim(),
        ),
        PatternPreview::Invalid(error) => (format!("  ✗ {error}"), theme.error()),
        PatternPreview::Matches { of: 0, .. } => (
            "  no event yet to preview the pattern against".to_string(),
            theme.dim(),
        ),
        PatternPreview::Matches {
            matched,
            of,
            examples,
        } => {
            let examples = if examples.is_empty() {
                String::new()
            } else {
                format!(": {}", examples.join(", "))
            };
            (
                format!(
                    "  matches {} of the last {} events{examples}",
                    group_digits(*matched as u64),
                    group_digits(*of as u64)
                ),
                if *matched == 0 {
                    theme.warn()
                } else {
                    theme.good()
                },
            )
        }
    };
    Line::from(Span::styled(clip(&text, room), style))
}

/// Transitions are shown up to this width of their reason.
const BREAKER_WIDTH: u16 = 78;

/// An endpoint's circuit breaker: its state and why, the window's
/// figures, what else holds it, and its latest transitions.
pub fn breaker(panel: &BreakerPanel, theme: Theme, frame: &mut Frame, body: Rect) {
    let now = now_millis();
    let b = &panel.breaker;
    let field = |name: &str, value: String, style| {
        Line::from(vec![
            Span::styled(format!("{name:<12}"), theme.dim()),
            Span::styled(value, style),
        ])
    };
    let state_style = match b.state {
        BreakerState::Closed => theme.good(),
        BreakerState::HalfOpen => theme.warn(),
        BreakerState::Open => theme.bad(),
    };
    let state = b.state.as_str().replace('_', "-");
    let how = match (b.mode, b.opened_at) {
        (BreakerMode::Auto, Some(at)) if b.state != BreakerState::Closed => format!(
            "{state} · auto · last opened {} ({})",
            local_time_short(at),
            from_now(at, now)
        ),
        (BreakerMode::Auto, _) => format!("{state} · auto"),
        (forced, _) => format!(
            "{state} · forced {} (holds until set back to auto)",
            forced.as_str()
        ),
    };
    let mut lines = vec![field("state", how, state_style)];
    if let Some(at) = b.next_probe_at {
        lines.push(field(
            "next probe",
            format!(
                "{} ({}) · cool-down {}",
                local_time_short(at),
                from_now(at, now),
                human_duration(b.cooldown_ms)
            ),
            theme.plain(),
        ));
    }
    lines.push(field(
        "window",
        format!(
            "{} of {} attempts failed · {} failures in a row",
            b.window_failures, b.window_attempts, b.consecutive_failures
        ),
        theme.plain(),
    ));
    if let Some(until) = b.wait_until {
        lines.push(field(
            "receiver",
            format!(
                "asked to wait until {} ({})",
                local_time_short(until),
                from_now(until, now)
            ),
            theme.warn(),
        ));
    }
    if let Some(at) = b.last_answered_at {
        lines.push(field(
            "answered",
            format!("last at {} ({})", local_time_short(at), from_now(at, now)),
            theme.plain(),
        ));
    }
    if let Some(limit) = panel.endpoint.rate_limit {
        lines.push(field("rate limit", limit.to_string(), theme.plain()));
    }
    lines.push(Line::from(""));
    if panel.transitions.is_empty() {
        lines.push(Line::from(Span::styled(
            "no transitions yet: it has never opened",
            theme.dim(),
        )));
    } else {
        lines.push(Line::from(Span::styled(
            "transitions, newest first",
            theme.dim(),
        )));
    }
    for t in &panel.transitions {
        let by = t
            .actor
            .as_deref()
            .map(|actor| format!(" ({})", shown(actor)))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9} ", short_time(t.at)), theme.dim()),
            Span::raw(format!(
                "{:<20} ",
                format!(
                    "{} → {}",
                    t.from.as_str().replace('_', "-"),
                    t.to.as_str().replace('_', "-")
                )
            )),
            Span::raw(format!("{}{by}", shown(&t.reason))),
        ]));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let area = centered(body, BREAKER_WIDTH, height);
    frame.render_widget(Clear, area);
    let title = format!(
        " Breaker of {}/{} ",
        shown(&panel.endpoint.tenant_name),
        shown(&panel.endpoint.name)
    );
    let block = Block::bordered().title(Span::styled(title, theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines), inner);
}
