//! Whole console screens, compared with committed insta snapshots
//! (`tests/snapshots/`): each view at 80x24, 60x20 and 120x40, with colour and
//! under `NO_COLOR`, on a seeded database. The screens are loaded through
//! the console's real load path (`console::headless::settle` runs the same
//! background I/O as `hookline console`) and drawn by the real `render`
//! into ratatui's `TestBackend`.
//!
//! A snapshot holds the screen's text and its styles (runs of colour and
//! bold/reverse per row). Ids and clock times are masked; everything else
//! that depends on time is made stable by the seed (attempts on whole
//! minutes before the seeding minute, retries half an hour away) and by
//! rendering within the minute the seeding began (a run that crosses a
//! minute boundary seeds and renders again). Times are UTC whatever `TZ`.
//!
//! CI runs with `INSTA_UPDATE=no`: a changed screen fails. To accept a
//! deliberate change: `cargo insta review` (or `INSTA_UPDATE=always`).

mod common;
mod console_support;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hookline::console::app::{App, Msg};
use hookline::console::headless;
use hookline::console::theme::Theme;
use hookline::console::views;
use hookline::model::now_millis;
use hookline::ops::Ops;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier, Style};

use common::Backend;
use console_support::{
    CLEAR_SHOWN, OSC52_SHOWN, RLO_SHOWN, has_raw_controls, mask, mask_value_after, seed,
    seed_hostile,
};

/// Every screen is designed at 80x24 first; 60x20 is the smallest a
/// tmux split leaves, 120x40 a full window.
const SIZES: [(u16, u16); 3] = [(80, 24), (60, 20), (120, 40)];
/// The hostile-text screens: the standard terminal and a wide one.
const HOSTILE_SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];
/// Below the console's minimum size.
const TINY: (u16, u16) = (50, 10);
/// How long one load may take before the test gives up.
const SETTLE: Duration = Duration::from_secs(30);
/// The header's database: the real location is a random temp path.
const LOCATION: &str = "sqlite://hookline.db";

/// One way into a screen: keys typed from the start (`<enter>`, `<esc>`,
/// `<tab>`, `<c-u>` for special keys), and the seeded names it must show
/// at every size and, below the fold at 80x24, at the larger size only.
struct Script {
    name: &'static str,
    keys: &'static str,
    read_only: bool,
    sizes: &'static [(u16, u16)],
    must_show: &'static [&'static str],
    /// From 80 columns up: at 60 a column may make way (the detail strip
    /// shows the selected row's in full).
    must_show_80: &'static [&'static str],
    must_show_large: &'static [&'static str],
}

const OVERVIEW: Script = Script {
    name: "overview",
    keys: "",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "globex/orders",
        "initech/audit-trail",
        "✗ dead",
        "http_status 500",
        "(1 held)",
        "no dispatcher alive",
    ],
    // At 60x20 the banner leaves the worst endpoints two rows.
    must_show_80: &["acme/crm-sync"],
    must_show_large: &[],
};
const DELIVERIES: Script = Script {
    name: "deliveries",
    keys: "2",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "invoice.paid",
        "order.created",
        "user.signup",
        "resident.update",
        "billing-prod",
        "audit-trail",
        "↻ retrying",
        "✗ dead",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const DETAIL: Script = Script {
    name: "detail",
    keys: ":failed<enter><enter>",
    read_only: false,
    sizes: &SIZES,
    must_show: &["globex/orders", "order.created", "database is locked"],
    must_show_80: &[],
    must_show_large: &["ord_700", "webhook-signature: v1,****"],
};
const EVENT: Script = Script {
    name: "event",
    keys: ":failed<enter><enter><enter>",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "order.created",
        "Fan-out: 1 endpoint",
        "globex/orders",
        "✗ dead",
        "http_status 500",
        "\"order\": \"ord_7003\"",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const ENDPOINTS: Script = Script {
    name: "endpoints",
    keys: "3",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "acme/billing-prod",
        "acme/crm-sync",
        "globex/orders",
        "initech/audit-trail",
        "vendor maintenance",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const ENDPOINT_DETAIL: Script = Script {
    name: "endpoint_detail",
    keys: "3jj<enter>",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "globex/orders",
        "https://erp.globex.example/api/orders/webhook",
        "subscribed order.*",
        "Failures by cause, last hour: 10",
        "http_status 500",
        "timeout",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const SUBSCRIPTIONS: Script = Script {
    name: "subscriptions",
    keys: "4",
    read_only: false,
    sizes: &SIZES,
    must_show: &["invoice.*", "resident.**", "order.*"],
    must_show_80: &["order lifecycle for the ERP"],
    must_show_large: &[],
};
const AUDIT: Script = Script {
    name: "audit",
    keys: "5",
    read_only: false,
    sizes: &SIZES,
    must_show: &["endpoint.pause", "test-operator"],
    must_show_80: &["10.0.0.7"],
    must_show_large: &[],
};
const HELP: Script = Script {
    name: "help",
    keys: "2?",
    read_only: false,
    sizes: &SIZES,
    must_show: &["Keys in Deliveries", "retry the selected"],
    must_show_80: &[],
    must_show_large: &["Cancel starts focused"],
};
const CONFIRM: Script = Script {
    name: "confirm_retry",
    keys: ":failed<enter>r",
    read_only: false,
    sizes: &SIZES,
    must_show: &["Retry 1 delivery", "globex/orders", "Cancel", "Retry"],
    must_show_80: &[],
    must_show_large: &[],
};
const BULK_PREVIEW: Script = Script {
    name: "bulk_retry_preview",
    keys: ":failed<enter>R",
    read_only: false,
    sizes: &SIZES,
    must_show: &["Retry 3 deliveries", "globex/orders 3", "fresh schedule"],
    must_show_80: &[],
    must_show_large: &[],
};
const FORM_ERROR: Script = Script {
    name: "edit_subscription_error",
    keys: "4jje<c-u>order..created<enter>",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "Edit subscription of globex/orders",
        "order..created",
        "empty segment",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const SUBSCRIPTION_PREVIEW: Script = Script {
    name: "subscription_preview",
    keys: "4jje",
    read_only: false,
    sizes: &SIZES,
    must_show: &[
        "Edit subscription of globex/orders",
        "order.*",
        "matches 4 of the last",
        "order.created",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const READ_ONLY: Script = Script {
    name: "deliveries_read_only",
    keys: "2",
    read_only: true,
    sizes: &SIZES,
    must_show: &["READ-ONLY", "order.created"],
    must_show_80: &[],
    must_show_large: &[],
};
const READ_ONLY_HELP: Script = Script {
    name: "help_read_only",
    keys: "3?",
    read_only: true,
    sizes: &SIZES,
    must_show: &[
        "Keys in Endpoints",
        "Read-only: keys that change anything are disabled",
    ],
    must_show_80: &[],
    must_show_large: &[],
};
const ENLARGE: Script = Script {
    name: "enlarge",
    keys: "",
    read_only: false,
    sizes: &[TINY],
    must_show: &["enlarge the terminal", "60x12"],
    must_show_80: &[],
    must_show_large: &[],
};

/// Every script, for the backend comparison.
const ALL: &[&Script] = &[
    &OVERVIEW,
    &DELIVERIES,
    &DETAIL,
    &EVENT,
    &ENDPOINTS,
    &ENDPOINT_DETAIL,
    &SUBSCRIPTIONS,
    &AUDIT,
    &HELP,
    &CONFIRM,
    &BULK_PREVIEW,
    &FORM_ERROR,
    &SUBSCRIPTION_PREVIEW,
    &READ_ONLY,
    &READ_ONLY_HELP,
    &ENLARGE,
];

/// One drawn screen: its snapshot name and text, and the raw buffer.
struct Shot {
    name: String,
    text: String,
    buffer: Buffer,
    color: bool,
}

/// Seeds a database and draws `scripts`' screens, all within the minute
/// the seeding began (else seeds again: at most three times).
async fn shoot(backend: Backend, scripts: &[&Script]) -> Vec<Shot> {
    for _ in 0..3 {
        let seeded = seed(backend).await;
        let mut shots = Vec::new();
        for script in scripts {
            for &size in script.sizes {
                let app = drive(&seeded.ops, size, script.read_only, script.keys).await;
                for color in [true, false] {
                    shots.push(draw(&app, script.name, color));
                }
            }
        }
        if now_millis() - seeded.minute < 60_000 {
            return shots;
        }
    }
    panic!("three seed-and-draw runs each crossed a minute boundary: is the machine this slow?");
}

/// The console opened at `size` on the database behind `ops`, after `keys`.
async fn drive(ops: &Ops, size: (u16, u16), read_only: bool, keys: &str) -> App {
    let mut app = App::new(LOCATION.to_string(), read_only, size);
    let alive = Duration::from_secs(5);
    let start = app.start();
    headless::settle(&mut app, ops, alive, start, SETTLE)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    for key in parse_keys(keys) {
        let commands = app.update(Msg::Key(key));
        headless::settle(&mut app, ops, alive, commands, SETTLE)
            .await
            .unwrap_or_else(|e| panic!("after {key:?} of {keys:?}: {e}"));
    }
    app
}

fn parse_keys(keys: &str) -> Vec<KeyEvent> {
    let mut events = Vec::new();
    let mut rest = keys;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
        {
            let (code, modifiers) = match &rest[1..end] {
                "enter" => (KeyCode::Enter, KeyModifiers::NONE),
                "esc" => (KeyCode::Esc, KeyModifiers::NONE),
                "tab" => (KeyCode::Tab, KeyModifiers::NONE),
                "c-u" => (KeyCode::Char('u'), KeyModifiers::CONTROL),
                other => panic!("unknown key <{other}>"),
            };
            events.push(KeyEvent::new(code, modifiers));
            rest = &rest[end + 1..];
            continue;
        }
        events.push(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        rest = &rest[c.len_utf8()..];
    }
    events
}

fn draw(app: &App, name: &str, color: bool) -> Shot {
    let (width, height) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| views::render(app, Theme::new(color), frame))
        .expect("draw");
    let buffer = terminal.backend().buffer().clone();
    let text = mask_value_after(&mask(&screen_text(&buffer)), "oldest due");
    let styles = style_runs(&buffer);
    Shot {
        name: format!(
            "{name}_{width}x{height}_{}",
            if color { "color" } else { "no_color" }
        ),
        text: format!("{text}\n--- styles (row: columns style) ---\n{styles}"),
        buffer,
        color,
    }
}

/// The screen's rows, trailing spaces trimmed.
fn screen_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            let row: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
            row.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs of cells that share a non-default style, row by row.
fn style_runs(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut runs = Vec::new();
        let mut x = 0;
        while x < area.width {
            let style = buffer[(x, y)].style();
            let start = x;
            while x < area.width && buffer[(x, y)].style() == style {
                x += 1;
            }
            if style != plain() {
                runs.push(format!("{start}-{} {}", x - 1, describe(style)));
            }
        }
        if !runs.is_empty() {
            out.push_str(&format!("{y:>2}: {}\n", runs.join(", ")));
        }
    }
    out
}

/// What an unstyled cell looks like in a drawn buffer.
fn plain() -> Style {
    Style::default()
        .fg(Color::Reset)
        .bg(Color::Reset)
        .underline_color(Color::Reset)
}

fn describe(style: Style) -> String {
    let mut parts = Vec::new();
    if let Some(fg) = style.fg.filter(|c| *c != Color::Reset) {
        parts.push(format!("fg:{fg:?}"));
    }
    if let Some(bg) = style.bg.filter(|c| *c != Color::Reset) {
        parts.push(format!("bg:{bg:?}"));
    }
    for (flag, name) in [
        (Modifier::BOLD, "bold"),
        (Modifier::DIM, "dim"),
        (Modifier::REVERSED, "reversed"),
        (Modifier::ITALIC, "italic"),
        (Modifier::UNDERLINED, "underlined"),
    ] {
        if style.add_modifier.contains(flag) {
            parts.push(name.to_string());
        }
    }
    parts.join(" ")
}

/// Whether any cell carries a colour (foreground, background or underline).
fn has_color(buffer: &Buffer) -> bool {
    buffer.content.iter().any(|cell| {
        [cell.fg, cell.bg, cell.underline_color]
            .iter()
            .any(|c| *c != Color::Reset)
    })
}

/// Snapshots the script's screens and checks what every screen must hold.
async fn check(script: &Script) {
    let shots = shoot(Backend::Sqlite, &[script]).await;
    for shot in &shots {
        let large = shot.buffer.area.height >= 40;
        let from_80 = shot.buffer.area.width >= 80;
        let must_show = script
            .must_show
            .iter()
            .chain(script.must_show_80.iter().filter(|_| from_80))
            .chain(script.must_show_large.iter().filter(|_| large));
        for name in must_show {
            assert!(
                shot.text.contains(name),
                "{}: {name:?} is not on screen:\n{}",
                shot.name,
                shot.text
            );
        }
        if shot.color {
            assert!(
                has_color(&shot.buffer) || script.name == "enlarge",
                "{}: the colour theme drew no colour",
                shot.name
            );
        } else {
            assert!(
                !has_color(&shot.buffer),
                "{}: a cell carries a colour under NO_COLOR",
                shot.name
            );
        }
        insta::assert_snapshot!(shot.name.clone(), shot.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview() {
    check(&OVERVIEW).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries() {
    check(&DELIVERIES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_detail() {
    check(&DETAIL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_and_its_fan_out() {
    check(&EVENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints() {
    check(&ENDPOINTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_detail() {
    check(&ENDPOINT_DETAIL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions() {
    check(&SUBSCRIPTIONS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit() {
    check(&AUDIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help() {
    check(&HELP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_confirmation() {
    check(&CONFIRM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_previews_what_it_touches() {
    check(&BULK_PREVIEW).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscription_edit_shows_the_reason_inline() {
    check(&FORM_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_pattern_is_previewed_in_the_form() {
    check(&SUBSCRIPTION_PREVIEW).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_deliveries() {
    check(&READ_ONLY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_help() {
    check(&READ_ONLY_HELP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enlarge_the_terminal() {
    check(&ENLARGE).await;
}

/// The same seed on Postgres draws the very same screens as on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_draws_the_same_screens() {
    let postgres = shoot(Backend::Postgres, ALL).await;
    for shot in &postgres {
        insta::assert_snapshot!(shot.name.clone(), shot.text);
    }
}

/// Outside text carrying an OSC 52 clipboard write, a clear screen and a
/// right-to-left override, in every view at 80x24 and 120x40: no cell holds
/// a raw control or bidi character, each field shows the visible escapes,
/// and the escapes do not push the columns after them out of line. The
/// 80x24 screens are snapshots, to review how they read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_shown_escaped_in_line() {
    // (name, keys, the escaped fields it must show at every size, and at
    // 120x40 only: at 80 columns the narrow columns cut them first)
    type Screen<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let screens: &[Screen] = &[
        (
            "overview",
            "",
            &["hostile/receiver", r"reset \x1b]52;c;"],
            &[],
        ),
        (
            "deliveries",
            "2",
            &["order.created", "network: reset"],
            &[r"network: reset \x1b]52;"],
        ),
        (
            "detail",
            "2<enter>",
            &[
                &format!("reset {OSC52_SHOWN} {CLEAR_SHOWN} {RLO_SHOWN}gpj.exe"),
                &format!("answer {OSC52_SHOWN}{CLEAR_SHOWN}{RLO_SHOWN}gpj.exe"),
            ],
            &[r"x-note: v\u202e\u009b2J", r#""bidi": "\u202egpj.exe""#],
        ),
        (
            "detail_scrolled",
            "2<enter>jjjjjjjjjjjj",
            &[
                r#""c1": "\u009d52;c;aGVsbG8=\u009c""#,
                r#""clear": "\u009b2J""#,
                r#""bidi": "\u202egpj.exe""#,
            ],
            &[],
        ),
        (
            "endpoint_detail",
            "3<enter>",
            &["hostile/receiver", r"network: reset \x1b]#;c;"],
            &[],
        ),
        (
            "event",
            "2<enter><enter>",
            &["hostile/receiver", r"reset \x1b]52;c;"],
            &[],
        ),
        (
            "event_exact",
            "2<enter><enter>x",
            &[r#""bidi":"\u202egpj.exe""#],
            &[],
        ),
        (
            "endpoints",
            "3",
            &["hostile/receiver", r"paused \x1b]52;c;"],
            &[],
        ),
        (
            "endpoint_form",
            "3e",
            &[
                r"https://example.com/h/\x1b]52;c;aGVsbG8=\x07?q=\x1b[2J\u202egpj.exe",
                r"x-note: v\u202e\u009b2J",
            ],
            &[],
        ),
        (
            "subscriptions",
            "4",
            &[r"sub \x1b]52;c;aGVsbG8=\x07\x1b[2J"],
            &[r"sub \x1b]52;c;aGVsbG8=\x07\x1b[2J\u202e"],
        ),
        ("audit", "5", &[r"ana\u202e\x1b[", r"203.0.113.9\x1b"], &[]),
    ];
    // Every screen drawn within the minute the seeding began, as `shoot`
    // does, so the sparkline and the 5-minute rates read the same each run.
    let mut shots = Vec::new();
    for _ in 0..3 {
        let hostile = seed_hostile(Backend::Sqlite).await;
        shots.clear();
        for &(name, keys, always, large) in screens {
            for size in HOSTILE_SIZES {
                let app = drive(&hostile.ops, size, false, keys).await;
                shots.push((
                    name,
                    always,
                    large,
                    draw(&app, &format!("hostile_{name}"), false),
                ));
            }
        }
        if now_millis() - hostile.minute < 60_000 {
            break;
        }
    }
    for (name, always, large, shot) in &shots {
        let raw: Vec<(u16, u16, String)> = shot
            .buffer
            .content
            .iter()
            .enumerate()
            .filter(|(_, cell)| has_raw_controls(cell.symbol()))
            .map(|(i, cell)| {
                let (x, y) = shot.buffer.pos_of(i);
                (x, y, cell.symbol().to_string())
            })
            .collect();
        assert!(raw.is_empty(), "{}: raw controls at {raw:?}", shot.name);
        let screen = screen_text(&shot.buffer);
        let wide = shot.buffer.area.width >= 100;
        for text in always.iter().chain(large.iter().filter(|_| wide)) {
            assert!(
                screen.contains(text),
                "{}: {text:?} is not on screen:\n{screen}",
                shot.name
            );
        }
        if *name == "deliveries" || *name == "endpoints" {
            assert_columns_line_up(&screen, &shot.name);
        }
        if !wide {
            insta::assert_snapshot!(shot.name.clone(), shot.text);
        }
    }
}

/// In a list, each column's values start where its header does: the
/// escapes before them took exactly the columns ratatui gave them.
#[track_caller]
fn assert_columns_line_up(screen: &str, name: &str) {
    let lines: Vec<&str> = screen.lines().collect();
    let header_row = lines
        .iter()
        .position(|l| l.contains("STATE"))
        .unwrap_or_else(|| panic!("{name}: no header row:\n{screen}"));
    let column =
        |line: &str, text: &str| line.find(text).map(|at| hookline::text::width(&line[..at]));
    let header = lines[header_row];
    let state = column(header, "STATE").expect("STATE in the header");
    let row = lines[header_row + 1];
    let value = ["✗ dead", "‖ paused"]
        .iter()
        .find_map(|v| column(row, v))
        .unwrap_or_else(|| panic!("{name}: no state in the first row:\n{screen}"));
    assert_eq!(
        value, state,
        "{name}: the state column moved:\n{header}\n{row}"
    );
}

/// A fresh SQLite database opened with the test settings (retention
/// included), and operator actions on it.
async fn configured_store() -> (common::TestDb, hookline::store::Store, Ops) {
    let db = common::TestDb::new(Backend::Sqlite);
    let config = common::test_config(&db.url);
    let store = hookline::store::Store::open_with(
        &db.url,
        hookline::store::OpenMode::CreateAndMigrate,
        hookline::store::StoreOptions::from_config(&config),
    )
    .await
    .expect("open");
    let ops = common::test_ops(&store, &config);
    (db, store, ops)
}

/// `:id` of an event or delivery older than the retention horizon that is
/// not found says it was removed, rather than showing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_retention_removed_says_so() {
    let (_db, _store, ops) = configured_store().await;
    let old = |prefix: &str| {
        let at = u64::try_from(now_millis()).expect("after 1970") - 15 * 86_400_000;
        format!("{prefix}{}", ulid::Ulid::from_parts(at, 7))
    };
    for id in [old("msg_"), old("dlv_")] {
        let app = drive(&ops, (100, 30), true, &format!(":id {id}<enter>")).await;
        let shot = draw(&app, "removed", false);
        let text = screen_text(&shot.buffer);
        assert!(
            text.contains("removed by retention (older than 14d)"),
            ":id {id}:\n{text}"
        );
    }
}

/// A delivery whose event's payload was expunged says so where the payload
/// would be, and that it cannot be retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expunged_payload_says_so_in_the_detail() {
    let (_db, store, ops) = configured_store().await;
    ops.add_tenant("acme").await.expect("tenant");
    let endpoint = ops
        .add_endpoint(&hookline::ops::EndpointInput {
            tenant: "acme".into(),
            name: "hooks".into(),
            url: "http://127.0.0.1:9/hooks".into(),
            ..Default::default()
        })
        .await
        .expect("endpoint");
    ops.add_subscription(&endpoint.id, "order.*", None)
        .await
        .expect("subscription");
    let event = common::numbered_events(&ops, "acme", "order.created", 1).await;
    let published = store.publish(&event, 0).await.expect("publish");
    let event_id = published[0].event_id.clone();
    ops.expunge_events(std::slice::from_ref(&event_id))
        .await
        .expect("expunge");
    let delivery = store
        .list_deliveries(
            &hookline::store::DeliveryFilter {
                event_id: Some(event_id),
                ..Default::default()
            },
            None,
            1,
        )
        .await
        .expect("list")
        .items[0]
        .id
        .clone();
    let app = drive(&ops, (100, 30), true, &format!(":id {delivery}<enter>")).await;
    let text = screen_text(&draw(&app, "expunged", false).buffer);
    assert!(
        text.contains("Payload (7 bytes)") && text.contains("expunged at"),
        "{text}"
    );
    assert!(text.contains("this delivery cannot be retried"), "{text}");
}
