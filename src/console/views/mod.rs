//! Drawing: a pure function of the [`App`] state onto a frame. The frame
//! is a header (database, tenant filter, dispatchers, totals), breadcrumbs,
//! the view's body, on list screens a detail strip with the selected row
//! in full, a status line (flash, errors, progress; a long message wraps
//! up into the strip) and a hint bar generated from the keymap (or the
//! filter/command line being typed).
//!
//! Text from outside (names, URLs, descriptions, errors, answers, payloads,
//! even what the operator typed or pasted) goes through [`shown`] or
//! [`clip`] on its way to the screen: control, C1 and bidi characters appear
//! as the same visible escapes the CLI prints (`\x1b`, `\u202e`), so an
//! operator sees that something odd is there instead of a terminal obeying
//! it (ratatui drops C0 and C1 but lets bidi controls through).

mod detail;
mod dialogs;
mod endpoint;
mod event;
mod fitted;
mod help;
mod lists;
mod overview;
mod strip;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

use super::app::{App, Mode, STRIP_LINES, has_strip};
use super::fit::wrap;
use super::format::group_digits;
use super::keymap;
use super::screens::{DetailScreen, EventScreen, ListLoading, Screen};
use super::theme::Theme;
use crate::model::{format_rfc3339, now_millis};
use crate::text::{char_width, escape_controls, width};

/// Lines the help of `view` takes at `width` columns (how far it scrolls).
pub fn help_line_count(view: keymap::ViewKind, read_only: bool, width: u16) -> usize {
    help::line_count(view, read_only, width)
}

/// How far a delivery's detail can scroll in a body of `width` x `height`.
pub fn detail_scroll_limit(screen: &DetailScreen, width: u16, height: u16) -> u16 {
    detail::scroll_limit(screen, width, height)
}

/// How far an event's view can scroll in a body of `width` x `height`.
pub fn event_scroll_limit(screen: &EventScreen, width: u16, height: u16) -> u16 {
    event::scroll_limit(screen, width, height)
}

/// The line of the event view on which fan-out row `index` is drawn.
pub fn event_row_line(index: usize) -> usize {
    event::row_line(index)
}

/// Below this size the console asks for a bigger terminal.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;

/// Draws the whole console.
pub fn render(app: &App, theme: Theme, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "enlarge the terminal: hookline needs at least {MIN_WIDTH}x{MIN_HEIGHT} (now {}x{})",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let status_lines = status_lines(app, theme, area.width);
    let (strip_height, status_height) = footer_heights(app, status_lines.len());
    let banner = app.dispatcher_banner();
    let [header, banner_line, crumbs, body, strip_area, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(strip_height),
        Constraint::Length(status_height),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, theme, frame, header);
    if let Some(text) = banner {
        // Its own line, the whole width: it cannot be missed, colour or not.
        frame.render_widget(
            Paragraph::new(Span::raw(format!(" {text}"))).style(theme.alarm()),
            banner_line,
        );
    }
    render_crumbs(app, theme, frame, crumbs);
    match app.top() {
        Screen::Overview(s) => overview::render(s, app, theme, frame, body),
        Screen::Deliveries(s) => lists::deliveries(s, theme, frame, body),
        Screen::Detail(s) => detail::render(s, theme, frame, body),
        Screen::Event(s) => event::render(s, theme, frame, body),
        Screen::EndpointDetail(s) => endpoint::render(s, theme, frame, body),
        Screen::Endpoints(s) => lists::endpoints(s, theme, frame, body),
        Screen::Subscriptions(s) => lists::subscriptions(s, theme, frame, body),
        Screen::Audit(s) => lists::audit(s, theme, frame, body),
        Screen::Help(s) => help::render(s, app.read_only, theme, frame, body),
    }
    strip::render(app, theme, frame, strip_area);
    frame.render_widget(Paragraph::new(status_lines), status);
    render_hints(app, theme, frame, hints);
    match &app.mode {
        Mode::Confirm(confirm) => dialogs::confirm(confirm, theme, frame, body),
        Mode::Form(form) => dialogs::form(form, theme, frame, body),
        Mode::Reveal(endpoint) => dialogs::reveal(endpoint, theme, frame, body),
        Mode::Copied(text) => dialogs::copied(text, theme, frame, body),
        Mode::Probe(report) => dialogs::probe(report, theme, frame, body),
        Mode::Breaker(panel) => dialogs::breaker(panel, theme, frame, body),
        _ => {}
    }
}

/// The header: what matters most first when the width runs out (the
/// read-only flag, the totals, dispatchers, the tenant filter); the
/// database location takes what is left, shortened from the left.
fn render_header(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let mut rest = vec![
        Span::styled("  tenant ", theme.dim()),
        Span::raw(
            app.tenant
                .as_deref()
                .map_or_else(|| "all".to_string(), shown),
        ),
        Span::styled("  dispatchers ", theme.dim()),
    ];
    let alive = app.dispatchers_alive;
    rest.push(Span::styled(
        format!("{alive} alive"),
        if alive == 0 {
            theme.warn()
        } else {
            theme.plain()
        },
    ));
    if let Some(summary) = &app.summary {
        rest.push(Span::styled("  ", theme.dim()));
        rest.push(Span::raw(format!(
            "○ {} ◐ {} ↻ {} ",
            queue_count(summary.pending),
            group_digits(summary.in_flight.max(0) as u64),
            queue_count(summary.retrying)
        )));
        rest.push(Span::styled(
            format!("✗ {}", queue_count(summary.dead)),
            if summary.dead > 0 {
                theme.bad()
            } else {
                theme.plain()
            },
        ));
    }
    let title = if app.read_only {
        Span::styled(
            " hookline READ-ONLY ",
            theme.warn().add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled(" hookline ", theme.title())
    };
    let used = title.width() + rest.iter().map(Span::width).sum::<usize>();
    let room = usize::from(area.width).saturating_sub(used);
    let mut spans = vec![title, Span::raw(clip_left(&shown(&app.location), room))];
    spans.extend(rest);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Shortens text to `max` columns by cutting its start (a path's end
/// says the most).
fn clip_left(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut room = max - 1;
    let mut start = text.len();
    for (at, c) in text.char_indices().rev() {
        if char_width(c) > room {
            break;
        }
        room -= char_width(c);
        start = at;
    }
    format!("…{}", &text[start..])
}

/// A queue count as the summary gives it: exact up to its limit, then "10,000+".
pub fn queue_count(n: i64) -> String {
    if n > crate::store::SUMMARY_COUNT_LIMIT {
        format!(
            "{}+",
            group_digits(crate::store::SUMMARY_COUNT_LIMIT as u64)
        )
    } else {
        group_digits(n.max(0) as u64)
    }
}

fn render_crumbs(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (i, screen) in app.stack.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" › ", theme.dim()));
        }
        let style = if i + 1 == app.stack.len() {
            theme.bold()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(shown(&screen.crumb()), style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Most lines a status message takes: a longer one is cut at the end of
/// the third (no message the console writes comes near that at 80 columns).
const STATUS_MAX_LINES: usize = 1 + STRIP_LINES as usize;

/// Heights of the detail strip and the status line for a status message
/// `status` lines long: on list screens the two share three lines, a long
/// message wrapping up into the strip, so the list never jumps; elsewhere
/// the status line grows as the message needs.
fn footer_heights(app: &App, status: usize) -> (u16, u16) {
    let status = u16::try_from(status.clamp(1, STATUS_MAX_LINES)).unwrap_or(1);
    if has_strip(app.view()) {
        (STRIP_LINES.saturating_sub(status - 1), status)
    } else {
        (0, status)
    }
}

/// The status line: the database's trouble, progress, the flash or the
/// notice, wrapped so a message is never cut (up to three lines).
fn status_lines(app: &App, theme: Theme, width: u16) -> Vec<Line<'static>> {
    let (text, style) = if let Some(error) = &app.db_error {
        (
            format!("database unreachable: {} (retrying)", shown(error)),
            theme.error(),
        )
    } else if let Some(progress) = &app.progress {
        let percent = (progress.done * 100)
            .checked_div(progress.total)
            .unwrap_or(0);
        return vec![Line::from(vec![
            Span::styled(format!("{} ", shown(&progress.label)), theme.warn()),
            Span::raw(format!(
                "{} / {} ({percent}%)",
                group_digits(progress.done),
                group_digits(progress.total)
            )),
        ])];
    } else if let Some(flash) = &app.flash {
        let style = if flash.error {
            theme.error()
        } else {
            theme.good()
        };
        (shown(&flash.text), style)
    } else if let Some(notice) = &app.notice {
        (shown(notice), theme.warn())
    } else {
        return vec![Line::default()];
    };
    wrap(&text, usize::from(width))
        .into_iter()
        .take(STATUS_MAX_LINES)
        .map(|line| Line::from(Span::styled(line, style)))
        .collect()
}

fn render_hints(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let line = match &app.mode {
        Mode::Filter(input) => input_line("/", input.text(), theme),
        Mode::Command(input) => input_line(":", input.text(), theme),
        Mode::Confirm(_) => hint_line(
            &[("tab", "switch"), ("enter", "choose"), ("esc", "cancel")],
            theme,
        ),
        Mode::Form(_) => hint_line(
            &[("tab", "next field"), ("enter", "save"), ("esc", "cancel")],
            theme,
        ),
        Mode::Reveal(_) => hint_line(&[("any key", "hide the secrets")], theme),
        Mode::Copied(_) | Mode::Probe(_) => hint_line(&[("any key", "close")], theme),
        Mode::Breaker(_) if app.read_only => hint_line(&[("any key", "close")], theme),
        Mode::Breaker(_) => hint_line(
            &[
                ("o", "force open"),
                ("c", "force closed"),
                ("a", "auto"),
                ("any key", "close"),
            ],
            theme,
        ),
        Mode::Normal => {
            let hints = keymap::hints(app.view(), app.read_only);
            let pairs: Vec<(&str, &str)> = hints.iter().map(|(k, h)| (k.as_str(), *h)).collect();
            hint_line(&fit_hints(pairs, usize::from(area.width)), theme)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
    if let Mode::Filter(input) | Mode::Command(input) = &app.mode {
        let x = area.x + 1 + cursor_column(input.text(), input.cursor());
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
    }
}

/// The screen column of an input's cursor (`chars` characters in), as the
/// text is shown: escapes and wide characters take more than one.
pub fn cursor_column(text: &str, chars: usize) -> u16 {
    let byte = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    u16::try_from(width(&escape_controls(&text[..byte]))).unwrap_or(u16::MAX)
}

fn input_line(prompt: &'static str, text: &str, theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(prompt, theme.key()),
        Span::raw(shown(text)),
    ])
}

/// Width of one hint as drawn: `<key> hint` and two spaces.
fn hint_width((key, hint): (&str, &str)) -> usize {
    key.chars().count() + hint.chars().count() + 5
}

/// The hints that fit in `width` columns, in order; when some must go,
/// `? help` stays (last), since it lists every key the bar has no room for.
fn fit_hints<'a>(pairs: Vec<(&'a str, &'a str)>, width: usize) -> Vec<(&'a str, &'a str)> {
    if pairs.iter().map(|p| hint_width(*p)).sum::<usize>() <= width {
        return pairs;
    }
    let help = pairs.iter().copied().find(|(key, _)| *key == "?");
    let mut room = width.saturating_sub(help.map_or(0, hint_width));
    let mut kept = Vec::new();
    for pair in pairs.into_iter().filter(|(key, _)| *key != "?") {
        if hint_width(pair) > room {
            break;
        }
        room -= hint_width(pair);
        kept.push(pair);
    }
    kept.extend(help);
    kept
}

fn hint_line(pairs: &[(&str, &str)], theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (key, hint) in pairs {
        spans.push(Span::styled(format!("<{key}>"), theme.key()));
        spans.push(Span::raw(format!(" {hint}  ")));
    }
    Line::from(spans)
}

/// A list's columns: header, widths, what to say when it is empty, and
/// what it is a list of (for "waiting for …" and "could not load …").
struct Columns<'a> {
    header: Row<'static>,
    widths: &'a [Constraint],
    empty: &'a str,
    what: &'a str,
}

/// Renders the visible slice of a list as a table: only the rows on screen
/// are turned into widgets, however long the list.
fn table<T>(
    frame: &mut Frame,
    area: Rect,
    theme: Theme,
    columns: Columns<'_>,
    rows: &super::screens::Rows<T>,
    row: impl Fn(&T) -> Row<'static>,
) {
    let Columns {
        header,
        widths,
        empty,
        what,
    } = columns;
    let height = usize::from(area.height.saturating_sub(1));
    if let Some(reason) = rows.failed.as_ref().filter(|_| rows.items.is_empty()) {
        let text = format!("could not load {what}: {}", shown(reason));
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.error()))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    if rows.loaded && rows.items.is_empty() {
        let [head, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        frame.render_widget(
            Table::new(Vec::<Row>::new(), widths.to_vec()).header(header.style(theme.bold())),
            head,
        );
        frame.render_widget(
            Paragraph::new(Span::styled(empty.to_string(), theme.dim())),
            rest,
        );
        return;
    }
    if !rows.loaded {
        let slow = rows
            .waiting_since()
            .is_some_and(|at| now_millis() - at > super::app::SLOW_MS);
        let (text, style) = if slow {
            let text = format!("still waiting for the database to list {what}…");
            (text, theme.warn())
        } else {
            ("loading…".to_string(), theme.dim())
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, style)).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let offset = rows.offset.min(rows.items.len().saturating_sub(1));
    let visible: Vec<Row> = rows
        .items
        .iter()
        .skip(offset)
        .take(height)
        .map(row)
        .collect();
    let mut state = TableState::default().with_selected(Some(rows.selected.saturating_sub(offset)));
    let table = Table::new(visible, widths.to_vec())
        .header(header.style(theme.bold()))
        .row_highlight_style(theme.selected())
        .column_spacing(1);
    frame.render_stateful_widget(table, area, &mut state);
}

/// `10:42:07` today, `11-19 10:42` otherwise (UTC, like the CLI).
pub fn short_time(ms: i64) -> String {
    let full = format_rfc3339(ms);
    let today = format_rfc3339(now_millis());
    if full.get(..10) == today.get(..10) {
        full.get(11..19).unwrap_or_default().to_string()
    } else {
        format!(
            "{} {}",
            full.get(5..10).unwrap_or_default(),
            full.get(11..16).unwrap_or_default()
        )
    }
}

/// A duration for people: `850ms`, `42s`, `3m`, `2h`, `4d`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

/// A ratio as a percentage, `-` without data.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// An endpoint's state word, or while it is active, what holds its work
/// (`breaker`, `waiting` for a receiver's `Retry-After`, `limited` by its
/// rate limit), styled.
pub fn endpoint_state_span(
    state: crate::model::EndpointState,
    protection: Option<crate::held::Hold>,
    theme: Theme,
) -> Span<'static> {
    use crate::held::Hold;
    let active = state == crate::model::EndpointState::Active;
    match protection.filter(|_| active) {
        Some(Hold::BreakerOpen { .. }) => Span::styled("◇ breaker", theme.bad()),
        Some(Hold::ReceiverAskedToWait { .. }) => Span::styled("◷ waiting", theme.warn()),
        Some(Hold::RateLimited { .. }) => Span::styled("≈ limited", theme.warn()),
        _ => Span::styled(
            crate::console::theme::endpoint_state_label(state),
            theme.endpoint_state(state),
        ),
    }
}

/// Outside text as the console shows it: controls, C1 and bidi
/// characters as visible escapes (see [`crate::text`]).
pub fn shown(text: &str) -> String {
    escape_controls(text).into_owned()
}

/// Outside text as shown, shortened to `max` columns with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let text = escape_controls(text);
    if width(&text) <= max {
        return text.into_owned();
    }
    let mut room = max.saturating_sub(1);
    let mut out = String::new();
    for c in text.chars() {
        if char_width(c) > room {
            break;
        }
        room -= char_width(c);
        out.push(c);
    }
    out.push('…');
    out
}

/// Style helper for optional counts.
fn count_style(theme: Theme, n: i64, bad: bool) -> Style {
    if n > 0 && bad {
        theme.bad()
    } else {
        theme.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::{clip, clip_left, cursor_column, fit_hints, hint_width, shown};
    use crate::text::width;

    #[test]
    fn outside_text_is_shown_escaped_and_clipped_by_columns() {
        assert_eq!(shown("a\x1b[2Jb\u{202e}c"), r"a\x1b[2Jb\u202ec");
        assert_eq!(shown("plain/name"), "plain/name");
        // The escape counts for what it takes on screen.
        assert_eq!(clip("\x1b]52;c;aGk=\x07", 8), r"\x1b]52…");
        assert_eq!(clip("東京東京", 5), "東京…");
        assert_eq!(width(&clip("東京東京", 5)), 5);
        assert_eq!(clip("short", 60), "short");
        assert_eq!(clip_left("/srv/東京/hookline.db", 10), "…okline.db");
        assert_eq!(clip_left("/srv/hook/東京.db", 8), "…東京.db");
        assert_eq!(width(&clip_left("/srv/hook/東京.db", 8)), 8);
    }

    #[test]
    fn the_cursor_sits_after_what_is_shown() {
        // After "a", an ESC (shown as 4 columns), and a wide character.
        assert_eq!(cursor_column("a\x1b東z", 0), 0);
        assert_eq!(cursor_column("a\x1b東z", 1), 1);
        assert_eq!(cursor_column("a\x1b東z", 2), 5);
        assert_eq!(cursor_column("a\x1b東z", 3), 7);
        assert_eq!(cursor_column("a\x1b東z", 9), 8, "past the end: at the end");
    }

    #[test]
    fn hints_that_do_not_fit_make_way_but_help_stays() {
        let pairs = vec![
            ("r", "retry"),
            ("space", "mark"),
            ("esc", "back"),
            ("?", "help"),
            ("q", "quit"),
        ];
        let all: usize = pairs.iter().map(|p| hint_width(*p)).sum();
        assert_eq!(fit_hints(pairs.clone(), all), pairs);
        assert_eq!(
            fit_hints(pairs.clone(), 40),
            vec![("r", "retry"), ("space", "mark"), ("?", "help")]
        );
        assert_eq!(fit_hints(pairs, 10), vec![("?", "help")]);
    }

    #[test]
    fn the_location_is_shortened_from_the_left() {
        assert_eq!(
            clip_left("/var/lib/hookline.db", 40),
            "/var/lib/hookline.db"
        );
        assert_eq!(clip_left("/var/lib/hookline.db", 8), "…line.db");
        assert_eq!(clip_left("/var/lib/hookline.db", 0), "");
    }
}
