//! One endpoint: its URL (password masked), state and why, breaker,
//! limits, secret's age, subscriptions, attempts and failures per minute,
//! and its failures grouped by cause over the last hour or day.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{clip, endpoint_state_span, human_duration, short_time, shown};
use crate::console::format::{endpoint_label, group_digits};
use crate::console::screens::{EndpointDetail, EndpointDetailScreen};
use crate::console::theme::Theme;
use crate::model::{BreakerMode, BreakerState, EndpointState, now_millis};
use crate::ops::{from_now, local_time_short};
use crate::redact::mask_url_password;
use crate::store::FailureCause;
use crate::text::width;

/// The label column of the fields.
const LABEL: usize = 11;
/// Columns of the cause table after the cause: count, share, first, last.
const COUNT: usize = 7;
const SHARE: usize = 6;

pub fn render(screen: &EndpointDetailScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(detail) = &screen.detail else {
        let text = match &screen.refused {
            Some(reason) => Span::styled(shown(reason), theme.bad()),
            None => Span::styled("loading…", theme.dim()),
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    };
    let room = usize::from(area.width);
    let fields = fields(detail, theme, room);
    let height = u16::try_from(fields.len()).unwrap_or(u16::MAX);
    let [top, causes] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(fields), top);
    let lines = cause_lines(screen, detail, theme, room, usize::from(causes.height));
    frame.render_widget(Paragraph::new(lines), causes);
}

/// The endpoint's fields, one line each, cut to `room` columns.
fn fields(detail: &EndpointDetail, theme: Theme, room: usize) -> Vec<Line<'static>> {
    let e = &detail.endpoint;
    let now = now_millis();
    let value_room = room.saturating_sub(LABEL);
    let field = |name: &str, spans: Vec<Span<'static>>| {
        let mut line = vec![Span::styled(format!("{name:<LABEL$}"), theme.dim())];
        line.extend(spans);
        Line::from(line)
    };
    let text = |value: String, style: Style| vec![Span::styled(clip(&value, value_room), style)];
    let mut state = vec![endpoint_state_span(e.state, detail.hold, theme)];
    let why = state_why(detail);
    if !why.is_empty() {
        let used = width(&state[0].content);
        state.push(Span::styled(
            clip(&format!("  {why}"), value_room.saturating_sub(used)),
            if e.state == EndpointState::Active {
                theme.plain()
            } else {
                theme.warn()
            },
        ));
    }
    let (breaker, breaker_style) = breaker_words(detail, now, theme);
    vec![
        field(
            "endpoint",
            text(format!("{}  ({})", endpoint_label(e), e.id), theme.plain()),
        ),
        field("url", text(mask_url_password(&e.url), theme.plain())),
        field("state", state),
        field("breaker", text(breaker, breaker_style)),
        field("sending", text(sending(detail), theme.plain())),
        field("secret", text(secret_age(detail, now), theme.plain())),
        field("subscribed", text(subscriptions(detail), theme.plain())),
        field("attempts", spark_line(detail, false, value_room, theme)),
        field("failed", spark_line(detail, true, value_room, theme)),
    ]
}

/// Why an endpoint is not active: who stopped it, when, why, and until
/// when; or, while active, what holds its work.
fn state_why(detail: &EndpointDetail) -> String {
    let e = &detail.endpoint;
    let mut parts = Vec::new();
    if e.state == EndpointState::Active {
        if let Some(hold) = detail.hold {
            parts.push(hold.label(local_time_short));
        }
        return parts.join(" ");
    }
    // The state's word is already said: who and when follow it.
    let mut head = Vec::new();
    if let Some(by) = &e.state_changed_by {
        head.push(format!("by {by}"));
    }
    if let Some(at) = e.state_changed_at {
        head.push(format!("at {}", short_time(at)));
    }
    if !head.is_empty() {
        parts.push(head.join(" "));
    }
    if let Some(reason) = &e.state_reason {
        parts.push(format!("\"{reason}\""));
    }
    match e.paused_until {
        Some(until) => parts.push(format!("until {}", local_time_short(until))),
        None if e.state == EndpointState::Paused => parts.push("until resumed".to_string()),
        None => {}
    }
    parts.join(": ")
}

/// The breaker in a phrase: its state and mode, the window's figures, and
/// when an open one probes next.
fn breaker_words(detail: &EndpointDetail, now: i64, theme: Theme) -> (String, Style) {
    let b = &detail.breaker;
    let figures = format!(
        "{} of {} attempts failed in the window, {} in a row",
        b.window_failures, b.window_attempts, b.consecutive_failures
    );
    let forced = match b.mode {
        BreakerMode::Auto => String::new(),
        forced => format!(" (forced {})", forced.as_str()),
    };
    match b.state {
        BreakerState::Closed if b.window_attempts == 0 && b.consecutive_failures == 0 => (
            format!("closed{forced} · nothing failed lately"),
            theme.plain(),
        ),
        BreakerState::Closed => (format!("closed{forced} · {figures}"), theme.plain()),
        BreakerState::HalfOpen => (
            format!("half-open{forced}: a probe is out · {figures}"),
            theme.warn(),
        ),
        BreakerState::Open => {
            let since = b
                .opened_at
                .map(|at| format!(" since {}", local_time_short(at)))
                .unwrap_or_default();
            let probe = b
                .next_probe_at
                .map(|at| {
                    format!(
                        ", next probe {} ({})",
                        local_time_short(at),
                        from_now(at, now)
                    )
                })
                .unwrap_or_default();
            (
                format!("open{forced}{since}{probe} · {figures}"),
                theme.bad(),
            )
        }
    }
}

/// In flight against its cap, what waits, the rate limit and the timeout.
fn sending(detail: &EndpointDetail) -> String {
    let e = &detail.endpoint;
    let q = &detail.queue;
    let cap = e.max_in_flight.map_or_else(
        || "the dispatchers' default".to_string(),
        |cap| cap.to_string(),
    );
    let mut parts = vec![
        format!("{} in flight (cap {cap})", q.in_flight),
        format!("{} waiting", group_digits(q.backlog().max(0) as u64)),
    ];
    if let Some(limit) = e.rate_limit {
        parts.push(format!("rate limit {limit}"));
    }
    if let Some(timeout) = e.timeout_ms {
        parts.push(format!("timeout {}", human_duration(timeout)));
    }
    parts.join(" · ")
}

/// How old the signing secret is, and how long the one before it still signs.
fn secret_age(detail: &EndpointDetail, now: i64) -> String {
    let e = &detail.endpoint;
    let mut text = match e.secret_rotated_at {
        Some(at) => format!("rotated {}", when_and_age(at, now)),
        None => format!("created {}, never rotated", when_and_age(e.created_at, now)),
    };
    match e.previous_secret_expires_at.filter(|until| *until > now) {
        Some(until) => text.push_str(&format!(
            " · the previous one signs too until {}",
            local_time_short(until),
        )),
        None => text.push_str(" · one secret signs"),
    }
    text
}

/// When, and from a day on how many days ago: `10:42:07`, `11-19 10:42
/// (18d ago)`.
fn when_and_age(at: i64, now: i64) -> String {
    let days = (now - at) / 86_400_000;
    if days >= 1 {
        format!("{} ({days}d ago)", short_time(at))
    } else {
        short_time(at)
    }
}

/// The patterns it subscribes to, and where to change them.
fn subscriptions(detail: &EndpointDetail) -> String {
    if detail.subscriptions.is_empty() {
        return "nothing: it receives no event (s: add a subscription)".to_string();
    }
    let patterns: Vec<&str> = detail
        .subscriptions
        .iter()
        .map(|s| s.pattern.as_str())
        .collect();
    format!("{}  (s: edit)", patterns.join(", "))
}

/// Attempts per minute, or (`failed`) the share of them that failed, as
/// one line of block characters, newest at the right, and the whole
/// window's figure.
fn spark_line(
    detail: &EndpointDetail,
    failed: bool,
    room: usize,
    theme: Theme,
) -> Vec<Span<'static>> {
    let minutes = detail.minutes.len();
    let attempts: i64 = detail.minutes.iter().map(|m| m.succeeded + m.failed).sum();
    let failures: i64 = detail.minutes.iter().map(|m| m.failed).sum();
    let (values, scale, label): (Vec<i64>, i64, String) = if failed {
        let ratios = detail
            .minutes
            .iter()
            .map(|m| {
                (m.failed * 100)
                    .checked_div(m.succeeded + m.failed)
                    .unwrap_or(0)
            })
            .collect();
        let share = (failures * 100)
            .checked_div(attempts)
            .map_or_else(|| "none".to_string(), |share| format!("{share}%"));
        (ratios, 100, format!("  {share} in {minutes}m"))
    } else {
        let counts: Vec<i64> = detail
            .minutes
            .iter()
            .map(|m| m.succeeded + m.failed)
            .collect();
        let most = counts.iter().copied().max().unwrap_or(0);
        let label = format!(
            "  {} in {minutes}m",
            group_digits(u64::try_from(attempts).unwrap_or(0))
        );
        (counts, most, label)
    };
    let shown_minutes = room.saturating_sub(width(&label)).min(minutes);
    let spark = spark(&values[minutes - shown_minutes..], scale);
    let style = if failed && failures > 0 {
        theme.bad()
    } else {
        theme.good()
    };
    vec![Span::styled(spark, style), Span::styled(label, theme.dim())]
}

/// Values as block characters, `scale` a full block; zero is a space.
fn spark(values: &[i64], scale: i64) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = scale.max(1);
    values
        .iter()
        .map(|&v| {
            if v <= 0 {
                ' '
            } else {
                let step = (v * 7 + max - 1) / max;
                BLOCKS[usize::try_from(step).unwrap_or(7).min(7)]
            }
        })
        .collect()
}

/// The cause table: a title with the window and the total, the column
/// header, and as many causes as `height` leaves room for, the selected
/// one on screen.
fn cause_lines(
    screen: &EndpointDetailScreen,
    detail: &EndpointDetail,
    theme: Theme,
    room: usize,
    height: usize,
) -> Vec<Line<'static>> {
    let causes = detail.causes(screen.day);
    let total: i64 = causes.iter().map(|c| c.failures).sum();
    let (window, other) = if screen.day {
        ("last day", "tab: last hour")
    } else {
        ("last hour", "tab: last day")
    };
    let title = format!(
        "Failures by cause, {window}: {} ({other})",
        group_digits(u64::try_from(total).unwrap_or(0))
    );
    let mut lines = vec![Line::from(Span::styled(clip(&title, room), theme.title()))];
    if causes.is_empty() {
        lines.push(Line::from(Span::styled(
            format!("  no failure in the {window}"),
            theme.dim(),
        )));
        return lines;
    }
    let time_width = causes
        .iter()
        .flat_map(|c| [c.first_at, c.last_at])
        .map(|at| width(&short_time(at)))
        .max()
        .unwrap_or(8);
    let cause_width = room.saturating_sub(2 + COUNT + SHARE + 2 * (time_width + 1));
    lines.push(Line::from(Span::styled(
        clip(
            &format!(
                "  {:<cause_width$}{:>COUNT$}{:>SHARE$} {:<time_width$} {:<time_width$}",
                "CAUSE", "COUNT", "SHARE", "FIRST", "LAST"
            ),
            room,
        ),
        theme.dim(),
    )));
    let rows = height.saturating_sub(2).max(1);
    let first = screen.selected.saturating_sub(rows - 1);
    for (index, cause) in causes.iter().enumerate().skip(first).take(rows) {
        lines.push(cause_row(
            cause,
            index == screen.selected,
            total,
            (cause_width, time_width),
            theme,
        ));
    }
    lines
}

/// One cause: the cause (cut; the strip shows it whole), count, share of
/// the window's failures, first and last seen.
fn cause_row(
    cause: &FailureCause,
    selected: bool,
    total: i64,
    (cause_width, time_width): (usize, usize),
    theme: Theme,
) -> Line<'static> {
    let marker = if selected { "› " } else { "  " };
    let text = clip(&cause.cause, cause_width);
    let pad = " ".repeat(cause_width.saturating_sub(width(&text)));
    let share = if total > 0 {
        format!("{}%", cause.failures * 100 / total)
    } else {
        "-".to_string()
    };
    let line = Line::from(vec![
        Span::raw(marker),
        Span::styled(format!("{text}{pad}"), theme.bad()),
        Span::raw(format!(
            "{:>COUNT$}{share:>SHARE$} {:<time_width$} {:<time_width$}",
            group_digits(u64::try_from(cause.failures).unwrap_or(0)),
            short_time(cause.first_at),
            short_time(cause.last_at),
        )),
    ]);
    if selected {
        line.style(theme.selected())
    } else {
        line
    }
}
