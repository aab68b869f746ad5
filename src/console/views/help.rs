//! The help screen: every key of a view, read from the same keymap table
//! that dispatches keys, so it cannot drift from what the keys do.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::keymap::{self, ViewKind};
use crate::console::screens::HelpScreen;
use crate::console::theme::Theme;

/// Where descriptions start: two spaces and 14 for the keys.
const KEY_COLUMN: usize = 16;

pub fn render(screen: &HelpScreen, read_only: bool, theme: Theme, frame: &mut Frame, area: Rect) {
    let lines = lines(screen.view, read_only, theme, area.width);
    frame.render_widget(Paragraph::new(lines).scroll((screen.scroll, 0)), area);
}

/// How many lines the help of `view` takes at `width` columns: how far it
/// can scroll.
pub fn line_count(view: ViewKind, read_only: bool, width: u16) -> usize {
    lines(view, read_only, Theme::new(false), width).len()
}

/// Every line of the help, already wrapped to `width` (so counting them
/// says how tall it is).
fn lines(view: ViewKind, read_only: bool, theme: Theme, width: u16) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(Span::styled(
            format!("Keys in {}", view.title()),
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
    // Long descriptions wrap under themselves, not under the keys: on a
    // narrow terminal the filter and command syntax must stay readable.
    let room = usize::from(width).saturating_sub(KEY_COLUMN).max(20);
    for binding in keymap::help(view, read_only) {
        for (i, part) in wrap_words(binding.help, room).into_iter().enumerate() {
            let keys = if i == 0 {
                format!("  {:<14}", binding.key_labels())
            } else {
                " ".repeat(KEY_COLUMN)
            };
            lines.push(Line::from(vec![
                Span::styled(keys, theme.key()),
                Span::raw(part),
            ]));
        }
    }
    lines.push(Line::default());
    for part in wrap_words(DIALOG_KEYS, usize::from(width).max(20)) {
        lines.push(Line::from(Span::styled(part, theme.dim())));
    }
    lines
}

const DIALOG_KEYS: &str = "In dialogs: tab moves between Cancel and the action (Cancel starts focused), enter chooses, esc cancels.";

/// Splits `text` at spaces into lines of at most `width` characters (a
/// word longer than that gets a line of its own).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap_words;

    #[test]
    fn descriptions_wrap_at_spaces() {
        assert_eq!(wrap_words("move down", 20), vec!["move down"]);
        assert_eq!(
            wrap_words("filter: state:dead tenant:acme", 18),
            vec!["filter: state:dead", "tenant:acme"]
        );
        assert_eq!(
            wrap_words("averyveryverylongword x", 5),
            vec!["averyveryverylongword", "x"]
        );
    }
}
