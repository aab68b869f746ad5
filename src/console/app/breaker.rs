//! The `b` panel: an endpoint's circuit breaker, and the keys that force
//! it open or closed or hand it back to its outcomes, each asked first.

use crossterm::event::{KeyCode, KeyEvent};

use super::confirm::Confirm;
use super::{App, Mode};
use crate::console::format::endpoint_label;
use crate::console::msg::{Act, Command, Load};
use crate::console::screens::BreakerPanel;
use crate::model::{BreakerMode, BreakerState};

impl App {
    /// `b`: reads the selected endpoint's breaker; the panel opens when it
    /// arrives, whatever the screen shows meanwhile.
    pub(super) fn open_breaker(&mut self) -> Vec<Command> {
        let Some(endpoint) = self.selected_endpoint() else {
            return Vec::new();
        };
        let load = Load::Breaker {
            endpoint_id: endpoint.id.clone(),
        };
        let token = self.next_token;
        self.next_token += 1;
        vec![Command::Load { token, load }]
    }

    /// In the panel: `o`, `c`, `a` ask to force the breaker; anything
    /// else closes it.
    pub(super) fn on_breaker_key(
        &mut self,
        panel: Box<BreakerPanel>,
        key: KeyEvent,
    ) -> Vec<Command> {
        let mode = match key.code {
            KeyCode::Char('o') => BreakerMode::Open,
            KeyCode::Char('c') => BreakerMode::Closed,
            KeyCode::Char('a') => BreakerMode::Auto,
            _ => return Vec::new(),
        };
        if self.read_only {
            self.flash("read-only: forcing the breaker is disabled", true);
            return Vec::new();
        }
        if mode == panel.breaker.mode && mode != BreakerMode::Auto {
            self.flash(
                format!("the breaker is already forced {}", mode.as_str()),
                false,
            );
            self.mode = Mode::Breaker(panel);
            return Vec::new();
        }
        let (question, label) = force_question(&panel, mode);
        let act = Act::SetBreaker {
            id: panel.endpoint.id.clone(),
            mode,
        };
        self.mode = Mode::Confirm(Confirm::ask(question, label, act));
        self.dirty = true;
        Vec::new()
    }
}

/// What forcing `panel`'s breaker to `mode` does, as a question, and the
/// confirm button's label.
fn force_question(panel: &BreakerPanel, mode: BreakerMode) -> (String, &'static str) {
    let label = endpoint_label(&panel.endpoint);
    match mode {
        BreakerMode::Open => (
            format!(
                "Force the breaker of {label} open? Nothing is sent to it, and its deliveries are held (no attempt spent), until you set it back to auto or closed."
            ),
            "Force open",
        ),
        BreakerMode::Closed => (
            format!(
                "Force the breaker of {label} closed? Its deliveries flow whatever the receiver answers; failures are counted but never open it, until you set it back to auto."
            ),
            "Force closed",
        ),
        BreakerMode::Auto => {
            let then = if panel.breaker.state == BreakerState::Closed {
                "it opens again if the receiver fails"
            } else {
                "it stays open and one probe goes at once"
            };
            (
                format!("Hand the breaker of {label} back to its outcomes (auto)? {then}."),
                "Set auto",
            )
        }
    }
}
