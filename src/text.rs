//! Untrusted text made safe for a terminal: every character that could
//! drive one (controls, escape sequences) or silently reorder or break what
//! an operator reads (bidi controls, line separators) is shown as a visible
//! escape, and display widths for lining such text up in columns.
//!
//! Names, URLs, descriptions, headers, payloads, receivers' answers and
//! error messages all come from outside. Printed raw, `ESC ] 52 ; c ; … BEL`
//! writes the clipboard of the terminal at the far end of an SSH session,
//! `ESC [ 2 J` clears the screen, and U+202E shows `gpj.exe` for
//! `exe.jpg`. Escaped, the operator sees `\x1b]52;c;…\x07`, `\x1b[2J` and
//! `\u202e`: that something odd is there, and what.
//!
//! The escapes:
//!
//! | character | shown as |
//! |---|---|
//! | tab, line feed, carriage return | `\t`, `\n`, `\r` |
//! | other C0 controls (U+0000–U+001F) and DEL (U+007F) | `\x1b`, `\x07`, `\x7f`… |
//! | C1 controls (U+0080–U+009F) | `\u009b`… |
//! | bidi controls U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069 | `\u202e`… |
//! | line and paragraph separators U+2028, U+2029 | `\u2028`, `\u2029` |
//!
//! Other zero-width characters (zero-width joiner and non-joiner, soft
//! hyphen, variation selectors, tag characters) are left alone: emoji
//! sequences and several scripts need them, and they can neither move the
//! cursor nor reorder the text around them. A backslash is not escaped, so
//! clean text prints byte for byte as before; the text `\x1b` and an
//! escaped ESC look alike, and `--json` is the exact form when that matters.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use unicode_width::UnicodeWidthStr;

/// Whether a line break stays a line break or is shown as `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaks {
    /// One line of output (a table cell, a log line, a field on screen):
    /// `\n` is escaped like every other control, so text can neither wrap
    /// the row nor forge the next one.
    Escape,
    /// A multi-line block (a `key: value` value, a message): `\n` stays,
    /// everything else is escaped (`\r` too, which would overwrite the
    /// start of the line).
    Keep,
}

/// `text` with every dangerous character as a visible escape, as one line
/// (see the module docs for the table). Borrowed when there is nothing to
/// escape: clean text costs a scan, no allocation.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, Breaks::Escape)
}

/// [`escape_controls`], keeping line feeds: for text printed as a block of
/// lines.
pub fn escape_controls_keep_newlines(text: &str) -> Cow<'_, str> {
    escape(text, Breaks::Keep)
}

/// `text` with dangerous characters escaped; line feeds as `breaks` says.
pub fn escape(text: &str, breaks: Breaks) -> Cow<'_, str> {
    let Some(first) = first_to_escape(text, breaks) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, &text[first..], breaks);
    Cow::Owned(out)
}

/// Writes `text` to `out` with dangerous characters escaped, clean runs in
/// one piece: for formatters that stream (log fields) rather than build a
/// string.
pub fn write_escaped(out: &mut impl fmt::Write, text: &str, breaks: Breaks) -> fmt::Result {
    let mut clean_from = 0;
    for (at, c) in text.char_indices() {
        if needs_escape(c, breaks) {
            out.write_str(&text[clean_from..at])?;
            write_escape(out, c)?;
            clean_from = at + c.len_utf8();
        }
    }
    out.write_str(&text[clean_from..])
}

/// A `fmt::Write` that escapes everything written through it, for
/// formatting a `Debug` or `Display` value straight into an output.
pub struct EscapingWriter<'a, W: fmt::Write> {
    inner: &'a mut W,
    breaks: Breaks,
}

impl<'a, W: fmt::Write> EscapingWriter<'a, W> {
    pub fn new(inner: &'a mut W, breaks: Breaks) -> Self {
        EscapingWriter { inner, breaks }
    }
}

impl<W: fmt::Write> fmt::Write for EscapingWriter<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.inner, text, self.breaks)
    }
}

/// Serialised JSON with the characters a terminal acts on or that reorder
/// text (DEL, C1, bidi controls, line separators) written as `\uXXXX`.
/// serde_json escapes only what JSON requires (C0, `"` and `\`) and writes
/// the rest raw; since outside strings serialised JSON is plain ASCII, each
/// such character is inside a string and its escape is the same JSON value.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    // serde_json has escaped every C0 control inside strings; the raw ones
    // left (newlines, indentation) are JSON's own whitespace.
    let dangerous = |c: char| c >= '\x7f' && needs_escape(c, Breaks::Keep);
    if !json.chars().any(dangerous) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if dangerous(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Columns `text` takes on a terminal: wide (CJK, most emoji) characters
/// count two, combining and zero-width ones none. For text already escaped
/// (controls have no meaningful width).
pub fn width(text: &str) -> usize {
    if text.is_ascii() {
        return text.len();
    }
    UnicodeWidthStr::width(text)
}

/// Columns one character takes on a terminal (see [`width`]).
pub fn char_width(c: char) -> usize {
    unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
}

/// Whether `c` is shown as an escape.
pub fn needs_escape(c: char, breaks: Breaks) -> bool {
    match c {
        '\n' => breaks == Breaks::Escape,
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidi controls: they reorder what follows them on the line.
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => true,
        // Line and paragraph separators: line breaks to some readers.
        '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// Where the first character to escape is, if any.
fn first_to_escape(text: &str, breaks: Breaks) -> Option<usize> {
    // Printable ASCII is the common case, and a byte test is enough there.
    let first_other = text.bytes().position(|b| !(b' '..=b'~').contains(&b))?;
    text[first_other..]
        .char_indices()
        .find(|(_, c)| needs_escape(*c, breaks))
        .map(|(at, _)| first_other + at)
}

fn write_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\0'..='\x1f' | '\x7f' => write!(out, "\\x{:02x}", u32::from(c)),
        _ => write!(out, "\\u{:04x}", u32::from(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OSC52: &str = "\x1b]52;c;aGVsbG8=\x07";
    const CLEAR: &str = "\x1b[2J";

    #[test]
    fn every_class_is_escaped() {
        let cases = [
            (OSC52, r"\x1b]52;c;aGVsbG8=\x07"),
            (CLEAR, r"\x1b[2J"),
            ("\0 \x01 \x08 \x0e \x1f", r"\x00 \x01 \x08 \x0e \x1f"),
            ("a\tb\nc\rd", r"a\tb\nc\rd"),
            ("del\x7f", r"del\x7f"),
            (
                "\u{80}\u{85}\u{9b}2J\u{9d}\u{9f}",
                r"\u0080\u0085\u009b2J\u009d\u009f",
            ),
            ("\u{202e}gpj.exe", r"\u202egpj.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}",
                r"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069",
            ),
            ("\u{200e}\u{200f}\u{061c}", r"\u200e\u200f\u061c"),
            ("one\u{2028}two\u{2029}", r"one\u2028two\u2029"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape_controls(raw), shown, "{raw:?}");
            assert!(
                !escape_controls(raw)
                    .chars()
                    .any(|c| needs_escape(c, Breaks::Escape)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn clean_text_is_borrowed_and_unchanged() {
        for clean in [
            "",
            "acme/prod",
            "https://example.com/hooks?x=1&y=\\x1b",
            "München, 東京, emoji 👍🏽, family 👨‍👩‍👧, soft\u{ad}hyphen",
            "zero\u{200b}width\u{200d}joiner",
        ] {
            assert!(
                matches!(escape_controls(clean), Cow::Borrowed(_)),
                "{clean:?}"
            );
            assert!(matches!(escape_json(clean), Cow::Borrowed(_)), "{clean:?}");
        }
        assert!(matches!(
            escape_controls_keep_newlines("two\nlines"),
            Cow::Borrowed("two\nlines")
        ));
    }

    #[test]
    fn keeping_newlines_keeps_only_newlines() {
        assert_eq!(
            escape_controls_keep_newlines("a\nb\r\n\t\x1b[2J\u{202e}"),
            "a\nb\\r\n\\t\\x1b[2J\\u202e"
        );
        assert_eq!(escape_controls("a\nb"), "a\\nb");
    }

    #[test]
    fn the_streaming_writer_escapes_what_it_is_given() {
        let mut out = String::new();
        write!(
            EscapingWriter::new(&mut out, Breaks::Escape),
            "{} and {:?}",
            CLEAR,
            "\u{202e}"
        )
        .unwrap();
        // Debug already escapes a str's controls; Display does not.
        assert_eq!(out, r#"\x1b[2J and "\u{202e}""#);
    }

    #[test]
    fn json_escapes_are_the_same_value() {
        let value = serde_json::json!({
            "osc": OSC52,
            "clear": CLEAR,
            "c1": "\u{9b}2J \u{9d}52;c;x\u{9c}",
            "bidi": "\u{202e}\u{2066}\u{200f}\u{061c}",
            "del": "\x7f",
            "sep": "\u{2028}",
            "wide": "東京 👍🏽",
        });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_json(&text);
        assert!(
            !escaped
                .chars()
                .any(|c| c != '\n' && needs_escape(c, Breaks::Keep)),
            "{escaped}"
        );
        assert!(escaped.contains(r"\u009b2J") && escaped.contains(r"\u202e"));
        assert!(escaped.contains("東京 👍🏽"), "wide text stays as it is");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn widths_count_columns_not_characters() {
        assert_eq!(width("acme"), 4);
        assert_eq!(width("東京"), 4);
        assert_eq!(width("👍"), 2);
        assert_eq!(width("e\u{301}"), 1, "a combining accent takes no column");
        assert_eq!(width("a\u{200b}b"), 2, "a zero-width space takes none");
        assert_eq!(width(&escape_controls("\u{202e}x")), 7);
    }
}
