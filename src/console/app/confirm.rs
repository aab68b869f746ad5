//! The question asked before a bulk or destructive action, and the keys
//! that answer it.

use crossterm::event::{KeyCode, KeyEvent};

use super::{App, Mode};
use crate::console::msg::{Act, Command};

/// A question before a bulk or destructive action; Cancel has the focus
/// until the operator moves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub question: String,
    pub confirm_label: &'static str,
    pub act: Act,
    pub confirm_focused: bool,
}

impl Confirm {
    /// A question with Cancel focused, so a stray Enter changes nothing.
    pub fn ask(question: String, confirm_label: &'static str, act: Act) -> Confirm {
        Confirm {
            question,
            confirm_label,
            act,
            confirm_focused: false,
        }
    }
}

impl App {
    /// Only Enter on the confirm button acts; every other way out cancels.
    pub(super) fn on_confirm_key(&mut self, mut confirm: Confirm, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('q') => {
                self.flash("cancelled: nothing was changed", false);
                Vec::new()
            }
            KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Left
            | KeyCode::Right
            | KeyCode::Char('h')
            | KeyCode::Char('l') => {
                confirm.confirm_focused = !confirm.confirm_focused;
                self.mode = Mode::Confirm(confirm);
                Vec::new()
            }
            KeyCode::Enter if confirm.confirm_focused => vec![Command::Act(confirm.act)],
            KeyCode::Enter => {
                self.flash("cancelled: nothing was changed", false);
                Vec::new()
            }
            _ => {
                self.mode = Mode::Confirm(confirm);
                Vec::new()
            }
        }
    }
}
