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
    let area = centered(body, 64, 7);
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
