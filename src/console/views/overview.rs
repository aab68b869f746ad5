//! The overview: queue depths, throughput and failure sparklines, how late
//! the queue runs, and the endpoints doing worst.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState};

use super::fitted::{Fitted, ListColumn, name_fit};
use super::{clip, human_duration, percent, queue_count};
use crate::console::app::App;
use crate::console::columns::Column;
use crate::console::fit::shorten_middle;
use crate::console::format::{backlog_text, group_digits};
use crate::console::screens::{OverviewScreen, RetentionStatus, WorstEndpoint};
use crate::console::theme::Theme;
use crate::text::{escape_controls, width};

pub fn render(screen: &OverviewScreen, app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let [top, worst] = Layout::vertical([Constraint::Length(8), Constraint::Min(3)]).areas(area);
    let [queue, rates] =
        Layout::horizontal([Constraint::Length(queue_width(app)), Constraint::Min(20)]).areas(top);
    render_queue(screen, app, theme, frame, queue);
    render_rates(screen, theme, frame, rates);
    render_worst(screen, theme, frame, worst);
}

/// The queue box's width: wider when its counts say how many are held.
fn queue_width(app: &App) -> u16 {
    let held = app
        .summary
        .as_ref()
        .is_some_and(|s| s.pending_held > 0 || s.retrying_held > 0);
    if held { 40 } else { 30 }
}

/// A queue count with how many of it are held: `31 (17 held)`.
fn with_held(count: i64, held: i64) -> String {
    if held > 0 {
        format!("{} ({} held)", queue_count(count), queue_count(held))
    } else {
        queue_count(count)
    }
}

fn render_queue(screen: &OverviewScreen, app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(Span::styled(" Queue ", theme.title()));
    let Some(summary) = &app.summary else {
        frame.render_widget(Paragraph::new("loading…").block(block), area);
        return;
    };
    // Every 2xx attempt delivers its delivery, so these are deliveries delivered.
    let delivered_hour: i64 = screen
        .throughput
        .iter()
        .rev()
        .take(60)
        .map(|m| m.succeeded)
        .sum();
    // The box's inside, less the labels.
    let value_width = usize::from(area.width.saturating_sub(2)).saturating_sub(14);
    let line = |label: &str, value: String, style| {
        Line::from(vec![
            Span::styled(format!("{label:<14}"), theme.dim()),
            Span::styled(format!("{value:>width$}", width = value_width), style),
        ])
    };
    let count = |n: i64| group_digits(n.max(0) as u64);
    let lines = vec![
        line(
            "○ pending",
            with_held(summary.pending, summary.pending_held),
            theme.plain(),
        ),
        line("◐ in flight", count(summary.in_flight), theme.plain()),
        line(
            "↻ retrying",
            with_held(summary.retrying, summary.retrying_held),
            if summary.retrying > 0 {
                theme.warn()
            } else {
                theme.plain()
            },
        ),
        line(
            "✗ dead",
            queue_count(summary.dead),
            if summary.dead > 0 {
                theme.bad()
            } else {
                theme.plain()
            },
        ),
        line("✓ delivered 1h", count(delivered_hour), theme.good()),
        line(
            "oldest due",
            summary
                .oldest_wait_ms()
                .map_or_else(|| "-".to_string(), human_duration),
            if summary.oldest_wait_ms().unwrap_or(0) > 60_000 {
                theme.bad()
            } else {
                theme.plain()
            },
        ),
    ];
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_rates(screen: &OverviewScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    // The newest minutes that fit the width; a sparkline draws from the left.
    let fits = usize::from(area.width.saturating_sub(2)).max(1);
    let recent = &screen.throughput[screen.throughput.len().saturating_sub(fits)..];
    let block = Block::bordered().title(Span::styled(
        format!(" Last {} minutes ", recent.len()),
        theme.title(),
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [label1, spark1, label2, spark2] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(2),
    ])
    .areas(inner);
    let attempts: Vec<u64> = recent
        .iter()
        .map(|m| (m.succeeded + m.failed).max(0) as u64)
        .collect();
    let failure_permille: Vec<u64> = recent
        .iter()
        .map(|m| {
            let total = m.succeeded + m.failed;
            if total > 0 {
                (m.failed * 1000 / total).max(0) as u64
            } else {
                0
            }
        })
        .collect();
    let last = recent.last();
    // Newest minute at the right edge, like every other time axis on screen.
    let spark1 = right_aligned(spark1, recent.len());
    let spark2 = right_aligned(spark2, recent.len());
    let rate_now = last.map_or(0.0, |m| (m.succeeded + m.failed) as f64 / 60.0);
    let failure_now = last.and_then(|m| {
        let total = m.succeeded + m.failed;
        (total > 0).then(|| m.failed as f64 / total as f64)
    });
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("deliveries/s ", theme.dim()),
            Span::raw(format!("{rate_now:.1} this minute")),
        ])),
        label1,
    );
    frame.render_widget(
        Sparkline::default().data(&attempts).style(theme.good()),
        spark1,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("failure rate ", theme.dim()),
            Span::styled(
                percent(failure_now),
                theme.rate(failure_now.map(|f| 1.0 - f)),
            ),
        ])),
        label2,
    );
    frame.render_widget(
        Sparkline::default()
            .data(&failure_permille)
            .max(1000)
            .style(theme.bad()),
        spark2,
    );
}

/// The retention policy and the last pass, for the overview's bottom edge:
/// ` kept: delivered 14d · dead 30d · held 30d · pruned 3m ago, 1,204 rows `.
fn retention_line(retention: &RetentionStatus) -> String {
    let rules = if retention.rules.is_empty() {
        "kept: everything, retention is off".to_string()
    } else {
        format!("kept: {}", retention.rules)
    };
    let pass = match retention.last_pass {
        Some((ago, rows)) => format!(
            "pruned {} ago, {} rows",
            human_duration(ago),
            group_digits(rows.max(0) as u64)
        ),
        None => "not pruned yet".to_string(),
    };
    format!(" {rules} · {pass} ")
}

/// The rightmost `width` columns of `area`.
fn right_aligned(area: Rect, width: usize) -> Rect {
    let width = u16::try_from(width).unwrap_or(u16::MAX).min(area.width);
    Rect {
        x: area.right() - width,
        width,
        ..area
    }
}

fn render_worst(screen: &OverviewScreen, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = Block::bordered()
        .title(Span::styled(
            " Worst endpoints (enter: the endpoint) ",
            theme.title(),
        ))
        .title_bottom(Span::styled(retention_line(&screen.retention), theme.dim()));
    if screen.loaded && screen.worst.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "every endpoint is healthy and has no backlog",
                theme.good(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let inner_width = area.width.saturating_sub(2);
    let longest = screen
        .worst
        .iter()
        .map(|w| width(&escape_controls(&w.label)))
        .max()
        .unwrap_or(0);
    // Room for "1,204 held" when a stopped endpoint holds work.
    let backlog_width = screen
        .worst
        .iter()
        .map(|w| width(&backlog_text(w.backlog, w.state)))
        .max()
        .unwrap_or(0)
        .clamp(7, 14);
    let backlog_width = u16::try_from(backlog_width).unwrap_or(7);
    let columns = vec![
        ListColumn::new(
            "ENDPOINT",
            name_fit(0, "ENDPOINT", longest, 20, 2),
            |w: &WorstEndpoint, room| Cell::from(shorten_middle(&w.label, room)),
        ),
        ListColumn::new(
            "STATE",
            Column::fixed(0, 11),
            move |w: &WorstEndpoint, _| {
                Cell::from(super::endpoint_state_span(w.state, w.protection, theme))
            },
        ),
        ListColumn::new(
            "FAIL 5M",
            Column::fixed(1, 7),
            move |w: &WorstEndpoint, _| {
                let ok = w.failure_rate_5m.map(|f| 1.0 - f);
                Cell::from(Span::styled(percent(w.failure_rate_5m), theme.rate(ok)))
            },
        ),
        ListColumn::new(
            "BACKLOG",
            Column::fixed(2, backlog_width),
            |w: &WorstEndpoint, _| Cell::from(backlog_text(w.backlog, w.state)),
        ),
        ListColumn::new(
            "LAST ERROR",
            Column::flexible(1, 14, u16::MAX, 3),
            move |w: &WorstEndpoint, room| {
                Cell::from(Span::styled(
                    clip(w.last_error.as_deref().unwrap_or_default(), room),
                    theme.bad(),
                ))
            },
        ),
    ];
    let fitted = Fitted::new(columns, inner_width);
    let rows: Vec<Row> = screen.worst.iter().map(|w| fitted.row(w)).collect();
    let mut state =
        TableState::default().with_selected((!screen.worst.is_empty()).then_some(screen.selected));
    let table = Table::new(rows, fitted.widths())
        .header(fitted.header().style(theme.bold()))
        .row_highlight_style(theme.selected())
        .block(block);
    frame.render_stateful_widget(table, area, &mut state);
}
