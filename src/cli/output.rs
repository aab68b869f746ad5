//! How commands print: aligned tables and `key: value` blocks for people,
//! JSON (arrays of objects with the same fields, RFC 3339 times) with
//! `--json`. Secrets are masked unless `--show-secret`.
//!
//! Everything printed here may hold text from outside (names, URLs,
//! payloads, receivers' answers), so this is the one place that makes it
//! safe for a terminal: people's output shows control, C1 and bidi
//! characters as visible escapes (`\x1b`, `\u202e`; see
//! [`hookline::text`]), and JSON writes C1 and bidi characters as
//! `\uXXXX`, the same JSON value. Clean text prints byte for byte.

use std::io::Write;

use hookline::model::format_rfc3339;
use hookline::text::{escape_controls, escape_controls_keep_newlines, escape_json, width};
use serde_json::Value;

/// One value in a record.
pub enum Cell {
    Text(String),
    Int(i64),
    /// Unix milliseconds: RFC 3339 in JSON, `YYYY-MM-DD HH:MM:SS` in tables.
    Time(i64),
    /// A rate or ratio: a JSON number, one decimal in tables.
    Float(f64),
    /// Structured data: JSON as is, compact JSON text in tables.
    Json(Value),
    Null,
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_string())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<&String> for Cell {
    fn from(text: &String) -> Cell {
        Cell::Text(text.clone())
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Cell {
        Cell::Int(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Cell {
        value.map_or(Cell::Null, Into::into)
    }
}

impl Cell {
    /// A time cell from optional unix ms.
    pub fn time(ms: Option<i64>) -> Cell {
        ms.map_or(Cell::Null, Cell::Time)
    }

    fn to_json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::from(text.as_str()),
            Cell::Int(value) => Value::from(*value),
            Cell::Time(ms) => Value::from(format_rfc3339(*ms)),
            Cell::Float(value) => Value::from(*value),
            Cell::Json(value) => value.clone(),
            Cell::Null => Value::Null,
        }
    }

    fn to_text(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Int(value) => value.to_string(),
            Cell::Time(ms) => short_time(*ms),
            Cell::Float(value) => format!("{value:.1}"),
            Cell::Json(value) => value.to_string(),
            Cell::Null => "-".to_string(),
        }
    }
}

/// `2026-11-23 10:15:02` (UTC): RFC 3339 without the noise, for tables.
fn short_time(ms: i64) -> String {
    let full = format_rfc3339(ms);
    full.get(..19).map_or(full.clone(), |s| s.replace('T', " "))
}

/// A named, ordered set of cells: a table row or a detail block.
#[derive(Default)]
pub struct Record(Vec<(&'static str, Cell)>);

impl Record {
    pub fn new() -> Record {
        Record::default()
    }

    /// Adds a field.
    pub fn field(mut self, name: &'static str, cell: impl Into<Cell>) -> Record {
        self.0.push((name, cell.into()));
        self
    }

    /// The record as a JSON object, fields in order.
    pub fn to_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(name, cell)| (name.to_string(), cell.to_json()))
            .collect();
        Value::Object(map)
    }
}

/// Where and how a command prints.
pub struct Output {
    json: bool,
    show_secret: bool,
}

impl Output {
    pub fn new(json: bool, show_secret: bool) -> Output {
        Output { json, show_secret }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Whether `--show-secret` was given: endpoints are printed with their
    /// secrets in plain (and the reveal audited) instead of masked.
    pub fn shows_secrets(&self) -> bool {
        self.show_secret
    }

    /// Prints records as a table (or a JSON array); `empty` when there are none.
    pub fn table(&self, records: &[Record], empty: &str) {
        if self.json {
            let array: Vec<Value> = records.iter().map(Record::to_json).collect();
            print_json(&Value::Array(array));
            return;
        }
        if records.is_empty() {
            self.line(empty);
            return;
        }
        let headers: Vec<&str> = records[0].0.iter().map(|(name, _)| *name).collect();
        // A cell is one line whatever the data holds: line breaks and tabs
        // are escaped too, so a value can neither break the row nor forge one.
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                r.0.iter()
                    .map(|(_, cell)| {
                        let text = cell.to_text();
                        escape_controls(&text).into_owned()
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| {
                rows.iter()
                    .map(|row| row.get(i).map_or(0, |c| width(c)))
                    .chain([headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut stdout = std::io::stdout().lock();
        let header_line: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
        let _ = writeln!(stdout, "{}", pad_row(&header_line, &widths));
        for row in &rows {
            let _ = writeln!(stdout, "{}", pad_row(row, &widths));
        }
    }

    /// Prints one record as `key: value` lines (or a JSON object). A value
    /// with line breaks (a payload as published) keeps them, its further
    /// lines indented under the values, so no line of it can pass for a key.
    pub fn detail(&self, record: &Record) {
        if self.json {
            print_json(&record.to_json());
            return;
        }
        let width = record
            .0
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        let indent = " ".repeat(width + 3);
        for (name, cell) in &record.0 {
            let text = cell.to_text();
            let value = escape_controls_keep_newlines(&text).replace('\n', &format!("\n{indent}"));
            self.write_line(&format!(
                "{:width$}  {value}",
                format!("{name}:"),
                width = width + 1
            ));
        }
    }

    /// Prints `value` as JSON: for `--json`, in the API's serialisation of
    /// the same resource.
    /// Written straight from `value`, never through a `Value`, so that a
    /// payload (a raw JSON value) keeps its exact bytes.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.write_line(&escape_json(&text)),
            // Plain data always serialises; say so rather than print nothing.
            Err(err) => eprintln!("error: could not write JSON: {err}"),
        }
    }

    /// Prints a JSON value as is (with `--json`) or a sentence for people.
    pub fn result(&self, json: Value, text: &str) {
        if self.json {
            print_json(&json);
        } else {
            self.line(text);
        }
    }

    /// A line for people only (hints, section titles); silent with `--json`.
    pub fn note(&self, text: &str) {
        if !self.json {
            self.line(text);
        }
    }

    /// Writes text to stdout as a line, its controls escaped (line breaks
    /// kept: a sentence may span lines).
    pub fn line(&self, text: impl std::fmt::Display) {
        let text = text.to_string();
        self.write_line(&escape_controls_keep_newlines(&text));
    }

    /// Writes one line, already safe, to stdout. A closed stdout (`| head
    /// -1`) is not an error worth a panic: the command's work is done, the
    /// reader left.
    fn write_line(&self, text: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
}

fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()); // ok: Values always serialise
    let _ = writeln!(std::io::stdout().lock(), "{}", escape_json(&text));
}

/// Cells padded to their columns' widths in terminal columns (a CJK
/// character or an emoji takes two, a combining accent none).
fn pad_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let pad = widths[i].saturating_sub(width(cell));
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
    }
    line.trim_end().to_string()
}
