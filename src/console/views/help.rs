//! The help screen: every key of a view, read from the same keymap table
//! that dispatches keys, so it cannot drift from what the keys do.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::keymap;
use crate::console::screens::HelpScreen;
use crate::console::theme::Theme;

pub fn render(screen: &HelpScreen, read_only: bool, theme: Theme, frame: &mut Frame, area: Rect) {
    let mut lines = vec![
        Line::from(Span::styled(
            format!("Keys in {}", screen.view.title()),
            theme.title(),
        )),
        Line::default(),
    ];
    if read_only {
        lines.insert(
            1,
            Line::from(Span::styled(
                "Read-only: keys that change anything are disabled.",
                theme.warn(),
            )),
        );
    }
    for binding in keymap::help(screen.view, read_only) {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<14}", binding.key_labels()), theme.key()),
            Span::raw(binding.help),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "In dialogs: tab moves between Cancel and the action (Cancel starts focused), enter chooses, esc cancels.",
        theme.dim(),
    )));
    frame.render_widget(Paragraph::new(lines).scroll((screen.scroll, 0)), area);
}
