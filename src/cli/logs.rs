//! Where log lines go: stderr, unless a full-screen command (the console,
//! the demo) has sent them to a file or holds them back while it owns the
//! terminal.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hookline::config::{Config, ENV_LOG, LogFormat, parse_log_filter};
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go instead of stderr, while a [`Redirect`] lives.
enum Target {
    File(File),
    Discard,
}

static TARGET: Mutex<Option<Target>> = Mutex::new(None);

fn target() -> MutexGuard<'static, Option<Target>> {
    TARGET.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends log lines elsewhere until dropped; then they go to stderr again.
#[must_use = "logs return to stderr when the redirect is dropped"]
pub struct Redirect {
    /// False when an outer redirect was already in place: dropping this one
    /// then leaves it alone.
    installed: bool,
}

impl Redirect {
    /// Appends log lines to `file`.
    pub fn to_file(file: File) -> Redirect {
        Redirect::install(Target::File(file))
    }

    /// Drops log lines.
    pub fn discard() -> Redirect {
        Redirect::install(Target::Discard)
    }

    /// Installs `new` unless an outer command already chose where logs go
    /// (the demo's file outlives the console it opens).
    fn install(new: Target) -> Redirect {
        let mut target = target();
        let installed = target.is_none();
        if installed {
            *target = Some(new);
        }
        Redirect { installed }
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        if self.installed {
            *target() = None;
        }
    }
}

/// The writer tracing formats into: one per log line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut *target() {
            Some(Target::File(file)) => file.write(buf),
            Some(Target::Discard) => Ok(buf.len()),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut *target() {
            Some(Target::File(file)) => file.flush(),
            Some(Target::Discard) => Ok(()),
            None => io::stderr().flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriterFactory {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// Hands tracing a [`LogWriter`] per line.
pub struct LogWriterFactory;

/// Logs go to stderr (or a redirect), filtered by `HOOKLINE_LOG` if it is
/// set, else by `log.level`.
pub fn init(config: &Config, colour_allowed: bool) {
    let (source, directive) = match std::env::var(ENV_LOG) {
        Ok(directive) => (ENV_LOG, directive),
        Err(_) => ("log.level", config.log.level.clone()),
    };
    let filter = parse_log_filter(&directive).unwrap_or_else(|reason| {
        // Config::load has already refused a bad filter from either source,
        // so only a config built in code gets here: say so, rather than log
        // nothing or something else without a word.
        eprintln!("warning: {source}: {reason}; logging at info instead");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colour only for a person at a terminal who has not asked for none.
    let ansi = colour_allowed
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(LogWriterFactory);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
