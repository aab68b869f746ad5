//! How the console looks: the terminal's own colours (its foreground and
//! background, plus the 16 ANSI colours), or none at all under `NO_COLOR`.
//! Selection is reverse video and every state has a symbol as well as a
//! colour, so nothing depends on colour alone.

use ratatui::style::{Color, Modifier, Style};

use crate::model::{DeliveryState, EndpointState};

/// The console's styles.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colour unless the `NO_COLOR` convention asks for none.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::default().fg(color)
        } else {
            Style::default()
        }
    }

    pub fn plain(self) -> Style {
        Style::default()
    }

    pub fn bold(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    /// The selected row: reverse video works in every terminal.
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            Style::default()
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    pub fn bad(self) -> Style {
        self.fg(Color::Red)
    }

    /// What must not be missed (no dispatcher alive): reverse video, which
    /// shows under `NO_COLOR` too, on red when there is colour.
    pub fn alarm(self) -> Style {
        let style = Style::default().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::White).bg(Color::Red)
        } else {
            style.add_modifier(Modifier::REVERSED)
        }
    }

    pub fn marked(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }

    pub fn state(self, state: DeliveryState) -> Style {
        match state {
            DeliveryState::Delivered => self.good(),
            DeliveryState::Dead => self.bad(),
            DeliveryState::Retrying => self.warn(),
            DeliveryState::InFlight => self.fg(Color::Cyan),
            DeliveryState::Pending | DeliveryState::Cancelled => self.plain(),
        }
    }

    pub fn endpoint_state(self, state: EndpointState) -> Style {
        match state {
            EndpointState::Active => self.good(),
            EndpointState::Paused => self.warn(),
            EndpointState::Disabled => self.bad(),
        }
    }

    /// A success rate: green when healthy, yellow when shaky, red when failing.
    pub fn rate(self, rate: Option<f64>) -> Style {
        match rate {
            Some(r) if r >= 0.99 => self.good(),
            Some(r) if r >= 0.9 => self.warn(),
            Some(_) => self.bad(),
            None => self.dim(),
        }
    }
}

/// A delivery state as a symbol and word, readable without colour.
pub fn state_label(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "○ pending",
        DeliveryState::InFlight => "◐ in flight",
        DeliveryState::Retrying => "↻ retrying",
        DeliveryState::Delivered => "✓ delivered",
        DeliveryState::Dead => "✗ dead",
        DeliveryState::Cancelled => "⊘ cancelled",
    }
}

/// An endpoint state as a symbol and word.
pub fn endpoint_state_label(state: EndpointState) -> &'static str {
    match state {
        EndpointState::Active => "● active",
        EndpointState::Paused => "‖ paused",
        EndpointState::Disabled => "⊘ disabled",
    }
}
