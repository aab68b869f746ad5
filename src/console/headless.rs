//! The console without a terminal: runs an [`App`]'s commands through the
//! same background I/O as `hookline console` and applies their results
//! until nothing is outstanding, so tests, captures and benchmarks can
//! drive the real load path and then draw with ratatui's `TestBackend`.

use std::time::Duration;

use super::app::App;
use super::io::Io;
use super::msg::{Command, Msg};
use crate::ops::Ops;

/// Commands were still outstanding when the time ran out.
#[derive(Debug, thiserror::Error)]
#[error("the console still waited for {outstanding} loads or actions after {waited:?}")]
pub struct Unsettled {
    pub outstanding: usize,
    pub waited: Duration,
}

/// Runs `commands` (and every command their results lead to) against
/// `ops`, feeding each result to `app.update`, until none is outstanding.
/// Dispatchers seen within `alive_within` count as alive in the header.
pub async fn settle(
    app: &mut App,
    ops: &Ops,
    alive_within: Duration,
    commands: Vec<Command>,
    timeout: Duration,
) -> Result<(), Unsettled> {
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let io = Io::new(ops.clone(), sender, alive_within);
    let deadline = tokio::time::Instant::now() + timeout;
    // Every command answers with exactly one Loaded or Acted message;
    // Progress messages come on top and are not counted.
    let mut outstanding = commands.len();
    for command in commands {
        io.run(command);
    }
    while outstanding > 0 {
        let msg = match tokio::time::timeout_at(deadline, messages.recv()).await {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => {
                return Err(Unsettled {
                    outstanding,
                    waited: timeout,
                });
            }
        };
        if matches!(msg, Msg::Loaded { .. } | Msg::Acted(_)) {
            outstanding -= 1;
        }
        let next = app.update(msg);
        outstanding += next.len();
        for command in next {
            io.run(command);
        }
    }
    Ok(())
}
