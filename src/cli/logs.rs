//! Where log lines go and how they are kept safe: stderr, unless a
//! full-screen command (the console, the demo) has sent them to a file or
//! holds them back while it owns the terminal. Field values and messages
//! may carry outside text (an error naming a URL, a database path), so text
//! logs show their controls escaped and JSON logs write C1 and bidi
//! characters as `\uXXXX`.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hookline::config::{Config, ENV_LOG, LogFormat, parse_log_filter};
use hookline::text::{Breaks, EscapingWriter, escape_json};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

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
pub struct LogWriter {
    json: bool,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A JSON line is formatted whole and written in one call; serde_json
        // leaves C1 and bidi characters raw, so write them as \uXXXX (the
        // same JSON value). Printable ASCII, the usual line, passes as is.
        if self.json
            && !buf.is_ascii()
            && let Ok(text) = std::str::from_utf8(buf)
            && let std::borrow::Cow::Owned(safe) = escape_json(text)
        {
            self.write_all_to_target(safe.as_bytes())?;
            return Ok(buf.len());
        }
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

impl LogWriter {
    fn write_all_to_target(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut *target() {
            Some(Target::File(file)) => file.write_all(bytes),
            Some(Target::Discard) => Ok(()),
            None => io::stderr().write_all(bytes),
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriterFactory {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter { json: self.json }
    }
}

/// Hands tracing a [`LogWriter`] per line.
pub struct LogWriterFactory {
    json: bool,
}

/// Text-log fields as tracing's default formatter writes them (`message`
/// bare, then `name=value`; names italic and `=` dimmed when colour is
/// on), with every value's controls shown escaped: `error = %err` writes
/// the error's Display as is, and an error may quote a URL or a database
/// path. Escaping the values rather than the finished line keeps the
/// formatter's own colours.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapedVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapedVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapedVisitor<'_> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            if self.writer.has_ansi_escapes() {
                // Italic name, dimmed `=`: what the default formatter draws.
                write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")?;
            } else {
                write!(self.writer, "{name}=")?;
            }
        }
        // A log line is one line: a line break in a value is escaped too.
        EscapingWriter::new(&mut self.writer, Breaks::Escape).write_fmt(value)
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            // The message bare, other strings quoted, as tracing does.
            self.result = if field.name() == "message" {
                self.field(field, format_args!("{value}"))
            } else {
                self.field(field, format_args!("{value:?}"))
            };
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.result = self.field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.field(field, format_args!("{value:?}"));
        }
    }
}

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
    let json = config.log.format == LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(LogWriterFactory { json });
    if json {
        builder.json().init();
    } else {
        builder.fmt_fields(EscapedFields).init();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const OSC52: &str = "\x1b]52;c;aGk=\x07";
    const CLEAR: &str = "\x1b[2J";
    const RLO: &str = "\u{202e}";

    /// Log lines formatted into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// One event with outside text in the message and in every kind of field,
    /// logged through the text format with colour on or off.
    fn text_line(ansi: bool) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .without_time()
            .with_writer(captured.clone())
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other(format!("refused {CLEAR} at {RLO}moc.elpmaxe"));
            let url = format!("http://example.com/{OSC52}");
            tracing::warn!(
                error = %error,
                url = url.as_str(),
                seen = ?format!("a\nb{OSC52}"),
                attempts = 3,
                "answer {OSC52} ended\nforged line"
            );
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_logs_show_outside_text_escaped() {
        let line = text_line(false);
        assert!(
            !line.contains('\x1b') && !line.contains('\x07') && !line.contains(RLO),
            "{line:?}"
        );
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        for shown in [
            r"answer \x1b]52;c;aGk=\x07 ended\nforged line",
            r"error=refused \x1b[2J at \u202emoc.elpmaxe",
            r#"url="http://example.com/\u{1b}]52;c;aGk=\u{7}""#,
            r#"seen="a\nb\u{1b}]52;c;aGk=\u{7}""#,
            "attempts=3",
        ] {
            assert!(line.contains(shown), "{shown} in {line:?}");
        }
    }

    #[test]
    fn with_colour_only_the_formatters_own_escapes_remain() {
        let line = text_line(true);
        assert!(
            line.contains("\x1b[3merror\x1b[0m\x1b[2m=\x1b[0m"),
            "{line:?}"
        );
        assert!(line.contains(r"refused \x1b[2J at \u202e"), "{line:?}");
        // Every ESC left starts a colour (SGR) code: none opens an OSC or
        // clears the screen.
        for (at, _) in line.match_indices('\x1b') {
            let rest = &line[at + 1..];
            let sgr = rest.strip_prefix('[').is_some_and(|r| {
                r.chars()
                    .take_while(|c| *c != 'm')
                    .all(|c| c.is_ascii_digit() || c == ';')
            });
            assert!(sgr, "a non-colour escape at {at}: {line:?}");
        }
        assert!(!line.contains('\x07') && !line.contains(RLO), "{line:?}");
    }

    #[test]
    fn json_log_lines_write_c1_and_bidi_as_unicode_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let file = File::create(&path).unwrap();
        let redirect = Redirect::to_file(file);
        let line = format!(
            "{}\n",
            serde_json::json!({"fields": {"error": format!("{OSC52} {CLEAR} {RLO} \u{9b}2J")}})
        );
        LogWriter { json: true }.write_all(line.as_bytes()).unwrap();
        // Plain ASCII passes untouched, on the same path.
        LogWriter { json: true }
            .write_all(b"{\"message\":\"ok\"}\n")
            .unwrap();
        drop(redirect);
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 2, "{written:?}");
        assert!(
            !written.contains('\x1b') && !written.contains(RLO) && !written.contains('\u{9b}'),
            "{written:?}"
        );
        assert!(lines[0].contains(r"\u202e \u009b2J"), "{written:?}");
        let back: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            back["fields"]["error"],
            format!("{OSC52} {CLEAR} {RLO} \u{9b}2J")
        );
        assert_eq!(lines[1], r#"{"message":"ok"}"#);
    }
}
