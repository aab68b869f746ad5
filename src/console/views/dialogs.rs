//! Dialogs over the body: a confirmation (Cancel focused until moved) and
//! the edit forms with their inline errors. A form shows what is stored,
//! outside text's controls as escapes; the field itself edits the real text.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::{cursor_column, shown};
use crate::console::app::confirm::Confirm;
use crate::console::app::forms::Form;
use crate::console::theme::Theme;
use crate::model::Endpoint;
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

pub fn confirm(confirm: &Confirm, theme: Theme, frame: &mut Frame, body: Rect) {
    // Tall enough for the question wrapped in the box (a long one names
    // held endpoints), with the buttons below it.
    let lines = crate::text::width(&shown(&confirm.question)) / 56 + 1;
    let height = u16::try_from(lines + 4).unwrap_or(u16::MAX).max(7);
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
pub fn reveal(endpoint: &Endpoint, theme: Theme, frame: &mut Frame, body: Rect) {
    let mut lines = vec![
        Line::from(Span::styled("Signing secret", theme.dim())),
        Line::from(endpoint.secret.clone()),
    ];
    if let Some(previous) = &endpoint.previous_secret {
        lines.push(Line::from(Span::styled(
            "Previous secret (signs until it expires)",
            theme.dim(),
        )));
        lines.push(Line::from(previous.clone()));
    }
    lines.push(Line::from(Span::styled("URL", theme.dim())));
    lines.push(Line::from(endpoint.url.clone()));
    let sensitive: Vec<&(String, String)> = endpoint
        .headers
        .iter()
        .filter(|(name, _)| is_sensitive_header(name))
        .collect();
    if !sensitive.is_empty() {
        lines.push(Line::from(Span::styled("Headers", theme.dim())));
        for (name, value) in sensitive {
            lines.push(Line::from(format!("{name}: {value}")));
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
            field.label,
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
        lines.push(match &field.error {
            Some(error) => Line::from(Span::styled(format!("  ✗ {}", shown(error)), theme.error())),
            None => Line::default(),
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
