//! Where a key goes: to the open dialog, form or prompt first, otherwise
//! to the keymap's binding for the view on top.

use crossterm::event::{KeyCode, KeyEvent};

use super::{App, Mode};
use crate::console::input::LineInput;
use crate::console::keymap::{self, Action, Binding};
use crate::console::msg::Command;
use crate::console::screens::Screen;

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        // Each handler puts its mode back when the key leaves it open, so
        // every way out of a mode (Esc, Enter, an action) is the default.
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            Mode::Filter(input) => self.on_filter_key(input, key),
            Mode::Command(input) => self.on_command_key(input, key),
            Mode::Confirm(confirm) => self.on_confirm_key(confirm, key),
            Mode::Form(form) => self.on_form_key(form, key),
            // Any key hides the secrets again (the mode, and so the values, are dropped).
            Mode::Reveal(_) | Mode::Copied(_) | Mode::Probe(_) => Vec::new(),
            Mode::Breaker(panel) => self.on_breaker_key(panel, key),
        }
    }

    fn on_filter_key(&mut self, mut input: LineInput, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Esc => Vec::new(),
            KeyCode::Enter => self.apply_filter(input.text().trim()),
            _ => {
                input.handle(&key);
                self.mode = Mode::Filter(input);
                Vec::new()
            }
        }
    }

    fn on_command_key(&mut self, mut input: LineInput, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Esc => Vec::new(),
            KeyCode::Enter => self.run_command(input.text().trim()),
            _ => {
                input.handle(&key);
                self.mode = Mode::Command(input);
                Vec::new()
            }
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match keymap::lookup(self.view(), &key, self.read_only) {
            None => Vec::new(),
            Some(Err(refused)) => {
                self.refuse_read_only(refused);
                Vec::new()
            }
            Some(Ok(binding)) => self.on_action(binding.action),
        }
    }

    /// Says which key `--read-only` refused, so a key that seems dead is not
    /// mistaken for a broken console.
    fn refuse_read_only(&mut self, refused: &Binding) {
        self.flash(
            format!(
                "read-only: {} ({}) is disabled",
                refused.key_labels(),
                refused.hint.unwrap_or("change")
            ),
            true,
        );
    }

    fn on_action(&mut self, action: Action) -> Vec<Command> {
        let page = self.body_rows() as isize;
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-page),
            Action::PageDown => self.move_selection(page),
            Action::Top => self.jump(true),
            Action::Bottom => self.jump(false),
            Action::Back => self.back(),
            Action::Filter => self.open_filter(),
            Action::Command => {
                self.mode = Mode::Command(LineInput::default());
                Vec::new()
            }
            Action::Help => self.open_help(),
            Action::Go(kind) => self.go(kind),
            Action::Open => self.open(),
            Action::Mark => self.toggle_mark(),
            Action::Follow => self.toggle_follow(),
            Action::Retry => self.retry(),
            Action::RetryAllDead => self.retry_all_dead(),
            Action::PauseResume => self.pause_resume(),
            Action::RotateSecret => self.rotate_secret(),
            Action::RevealSecrets => self.reveal_secrets(),
            Action::Breaker => self.open_breaker(),
            Action::Edit => self.edit(),
            Action::New => self.new_subscription(),
            Action::Delete => self.delete(),
            Action::Subscriptions => self.open_subscriptions(),
            Action::ExactBytes => self.toggle_exact_bytes(),
            Action::EndpointDeliveries => self.open_endpoint_deliveries(),
            Action::CauseWindow => self.toggle_cause_window(),
            Action::CopyId => self.copy_id(),
            Action::RetryNow => self.retry_now(),
            Action::Probe => self.probe(),
            Action::RetryFiltered => self.preview_retry_filtered(),
            Action::CopyCurl => self.copy_curl(),
        }
    }

    /// `x` on an event: its payload's exact bytes, or re-indented again.
    fn toggle_exact_bytes(&mut self) -> Vec<Command> {
        if let Screen::Event(s) = self.top_mut() {
            s.exact = !s.exact;
        }
        Vec::new()
    }

    /// `tab` on an endpoint's detail: failures by cause over the last day,
    /// or the last hour again.
    fn toggle_cause_window(&mut self) -> Vec<Command> {
        if let Screen::EndpointDetail(s) = self.top_mut() {
            s.day = !s.day;
            s.selected = 0;
        }
        Vec::new()
    }

    /// `/`: the prompt starts from the filter in force, to be refined.
    fn open_filter(&mut self) -> Vec<Command> {
        let current = match self.top() {
            Screen::Deliveries(s) => s.query.label.clone(),
            Screen::Endpoints(s) => s.filter.clone().unwrap_or_default(),
            _ => String::new(),
        };
        self.mode = Mode::Filter(LineInput::with_text(&current));
        Vec::new()
    }
}
