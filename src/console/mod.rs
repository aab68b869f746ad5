//! `hookline console`: the on-call operator's terminal UI.
//!
//! The Elm shape: [`App`](crate::console::app::App) holds the state; keys, loaded data and
//! action results arrive as messages; `App::update` changes the state and
//! returns commands, which `io::Io` runs in background tasks; the pure
//! [`views::render`](crate::console::views::render) draws the state. The loop draws only when something
//! changed (at most every 150 ms for data, at once for keys), wraps each
//! frame in synchronized-update markers, never captures the mouse, and
//! always gives the terminal back, even after a panic.

pub mod app;
pub mod columns;
mod curl;
mod filter;
pub mod fit;
mod format;
pub mod headless;
mod input;
mod io;
pub mod keymap;
pub mod msg;
pub mod screens;
pub mod theme;
pub mod views;

use std::io::Write;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use crossterm::{cursor, event, execute, terminal};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::time::Instant;

use crate::ops::Ops;
use app::App;
pub use io::Loader;
use msg::Msg;
use theme::Theme;

/// Shortest gap between two data-driven redraws: however busy the system,
/// a few frames a second is all a person (or an SSH link) needs.
const MIN_DRAW_GAP: Duration = Duration::from_millis(150);
/// Shortest gap between two refreshes triggered by database changes.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(250);

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Hide and refuse every key that changes something.
    pub read_only: bool,
    /// How often what is on screen is re-read when nothing signals a change.
    pub refresh: Duration,
    /// Colours, or none (`NO_COLOR`).
    pub color: bool,
    /// Dispatchers seen within this are counted alive.
    pub alive_within: Duration,
    /// A standing note for the status bar, e.g. that this is the demo.
    pub notice: Option<String>,
}

/// Why the console stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "the console needs a terminal, and standard output is not one (run it in a terminal or over ssh -t)"
    )]
    NoTerminal,
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Whether the console can draw here: standard output is a terminal.
pub fn has_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// Raw mode and the alternate screen for as long as it lives.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, ConsoleError> {
        if !has_terminal() {
            return Err(ConsoleError::NoTerminal);
        }
        terminal::enable_raw_mode()?;
        let mut stdout = std::io::stdout();
        if let Err(err) = execute!(
            stdout,
            terminal::EnterAlternateScreen,
            event::EnableBracketedPaste,
            cursor::Hide
        ) {
            restore_terminal();
            return Err(err.into());
        }
        let terminal =
            Terminal::new(CrosstermBackend::new(stdout)).inspect_err(|_| restore_terminal())?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Gives the terminal back: cooked mode, main screen, visible cursor.
fn restore_terminal() {
    let mut stdout = std::io::stdout();
    let _ = execute!(
        stdout,
        event::DisableBracketedPaste,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
    let _ = stdout.flush();
}

/// Restores the terminal before a panic message is printed, so a crash
/// never leaves the operator's shell in raw mode.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}

/// Runs the console until the operator quits.
pub async fn run(ops: Ops, options: ConsoleOptions) -> Result<(), ConsoleError> {
    let reads = ops.reads().clone();
    install_panic_hook();
    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size()?;
    let theme = Theme::new(options.color);
    let mut app = App::new(
        reads.location().to_string(),
        options.read_only,
        (size.width, size.height),
    );
    app.notice = options.notice.clone();
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let io = io::Io::new(ops, sender, options.alive_within);
    for command in app.start() {
        io.run(command);
    }
    let mut events = EventStream::new();
    let mut changes = reads.subscribe_changes();
    let mut next_refresh = Instant::now() + options.refresh;
    let mut last_refresh = Instant::now();
    let mut last_draw = Instant::now();
    let mut draw_at: Option<Instant> = None;
    draw(&mut guard, &mut app, theme)?;
    loop {
        let wake = draw_at.map_or(next_refresh, |at| at.min(next_refresh));
        let (msg, from_key) = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => (Some(Msg::Key(key)), true),
                Some(Ok(Event::Resize(width, height))) => (Some(Msg::Resize(width, height)), true),
                Some(Ok(Event::Paste(text))) => (Some(Msg::Paste(text)), true),
                Some(Ok(_)) => (None, false),
                Some(Err(err)) => return Err(err.into()),
                None => break,
            },
            Some(msg) = messages.recv() => (Some(msg), false),
            Ok(()) = changes.changed() => {
                // Something changed: look soon, but not more often than the gap.
                next_refresh = next_refresh.min((last_refresh + MIN_REFRESH_GAP).max(Instant::now()));
                (None, false)
            }
            () = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_refresh {
                    next_refresh = Instant::now() + options.refresh;
                    last_refresh = Instant::now();
                    (Some(Msg::Refresh), false)
                } else {
                    (None, false)
                }
            }
        };
        if let Some(msg) = msg {
            for command in app.update(msg) {
                io.run(command);
            }
        }
        if app.quit {
            break;
        }
        if let Some(text) = app.clipboard.take() {
            copy_to_clipboard(&mut guard, &text)?;
        }
        if app.dirty {
            let now = Instant::now();
            if from_key || now >= last_draw + MIN_DRAW_GAP {
                draw(&mut guard, &mut app, theme)?;
                last_draw = Instant::now();
                draw_at = None;
            } else {
                draw_at = Some(last_draw + MIN_DRAW_GAP);
            }
        } else if draw_at.is_some_and(|at| Instant::now() >= at) {
            draw_at = None;
        }
    }
    drop(guard);
    Ok(())
}

/// Puts `text` on the clipboard of the terminal the operator sits at (over
/// SSH and tmux too, where they pass it on) with an OSC 52 sequence: its
/// base64 carries no control character to the terminal.
fn copy_to_clipboard(guard: &mut TerminalGuard, text: &str) -> Result<(), ConsoleError> {
    use base64::Engine;
    use std::io::Write;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let backend = guard.terminal.backend_mut();
    write!(backend, "\x1b]52;c;{encoded}\x07")?;
    backend.flush()?;
    Ok(())
}

/// One frame, wrapped in synchronized-update markers so the terminal shows
/// it whole (no tearing over slow links).
fn draw(guard: &mut TerminalGuard, app: &mut App, theme: Theme) -> Result<(), ConsoleError> {
    execute!(
        guard.terminal.backend_mut(),
        terminal::BeginSynchronizedUpdate
    )?;
    let drawn = guard
        .terminal
        .draw(|frame| views::render(app, theme, frame))
        .map(|_| ());
    execute!(
        guard.terminal.backend_mut(),
        terminal::EndSynchronizedUpdate
    )?;
    drawn?;
    app.dirty = false;
    Ok(())
}
