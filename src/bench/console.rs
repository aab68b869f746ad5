//! `bench console`: how fast each console screen refreshes and draws on a
//! database of realistic size.
//!
//! The harness seeds a database (see `seed.rs`), then drives the real
//! console state machine ([`App`]) with the keys and commands an operator
//! types. The loads it asks for run through the console's own loader
//! ([`Loader`], what its background tasks run), each in its own task as the
//! console runs them, and the results go back into the `App`. A refresh is
//! timed from issuing its loads (the header's and the screen's) until all
//! have answered; a frame is timed drawing the whole screen with the real
//! renderer onto a 120x40 `TestBackend`. Targets: a refresh under
//! 20 ms, a frame under 2 ms. Payload search is exempt: it streams, so the
//! harness reports its time to the first result and to the end of a search
//! that matches nothing.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde::Serialize;

use super::seed::{RARE_TOPIC, SeedPlan, SeedSummary, seed};
use super::{BenchError, describe, open_database, peak_memory, percentile};
use crate::config::Config;
use crate::console::Loader;
use crate::console::app::App;
use crate::console::msg::{Command, Load, Loaded, Msg};
use crate::console::screens::Screen;
use crate::console::theme::Theme;
use crate::console::views;
use crate::model::{Actor, Source};
use crate::ops::Ops;

/// Refresh target per screen (ms).
pub const REFRESH_TARGET_MS: f64 = 20.0;
/// Frame target per screen (ms).
pub const RENDER_TARGET_MS: f64 = 2.0;
/// The terminal the frames are drawn on.
const SIZE: (u16, u16) = (120, 40);
/// Loads a navigation may chain (a search streams page after page).
const MAX_CHAINED_LOADS: usize = 10_000;

/// What `bench console` runs.
#[derive(Debug, Clone)]
pub struct ConsoleBenchOptions {
    pub deliveries: usize,
    pub endpoints: usize,
    /// Database URL; `None` seeds a fresh SQLite file in a temp dir.
    pub db: Option<String>,
    /// Timed samples per screen.
    pub runs: usize,
}

/// Median and 95th percentile of a set of samples (ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figure {
    pub median_ms: f64,
    pub p95_ms: f64,
}

impl Figure {
    fn of(samples: &[f64]) -> Figure {
        Figure {
            median_ms: percentile(samples, 0.50),
            p95_ms: percentile(samples, 0.95),
        }
    }

    /// `ok` when even the 95th percentile is within `target`, `median` when
    /// only the median is, `MISS` otherwise.
    fn verdict(&self, target: f64) -> &'static str {
        if self.p95_ms < target {
            "ok"
        } else if self.median_ms < target {
            "median"
        } else {
            "MISS"
        }
    }
}

/// One screen's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ViewFigures {
    pub view: String,
    /// What the operator typed to get there.
    pub input: String,
    /// What was timed: `refresh` (the periodic reload), `open` (screens
    /// that do not reload on their own), `cold` (opening the screen in a
    /// console that has cached nothing, until its first rows show), `rest`
    /// (from there until the whole list shows), `key` (the load a key triggers),
    /// or `header` (its load alone).
    pub timed: &'static str,
    /// Rows (or lines of detail) on the screen after the load.
    pub rows: usize,
    pub refresh: Figure,
    pub render: Figure,
    pub refresh_verdict: &'static str,
    pub render_verdict: &'static str,
}

/// The payload search, which streams and is exempt from the refresh target.
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    /// A term whose newest match is about 5 % of the events deep.
    pub term: String,
    /// From Enter to the first matching row on screen.
    pub first_result: Figure,
    pub events_scanned_to_first: i64,
    /// A term that matches nothing: from Enter to the end of the search.
    pub no_match_term: String,
    pub full_scan: Figure,
    pub events_scanned: i64,
    pub events_per_sec: f64,
}

/// Everything `bench console` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleReport {
    pub benchmark: &'static str,
    pub database: String,
    pub seed: SeedSummary,
    pub runs: usize,
    pub terminal: String,
    pub refresh_target_ms: f64,
    pub render_target_ms: f64,
    pub views: Vec<ViewFigures>,
    pub search: SearchFigures,
    /// Every screen's refresh and frame p95 within target.
    pub all_within_targets: bool,
    pub peak_memory_bytes: Option<u64>,
}

/// Seeds a database and measures every console screen on it.
pub async fn console(options: &ConsoleBenchOptions) -> Result<ConsoleReport, BenchError> {
    if options.deliveries == 0 || options.endpoints == 0 || options.runs == 0 {
        return Err(BenchError::Setup(
            "deliveries, endpoints and runs must all be at least 1".to_string(),
        ));
    }
    let (store, _dir) = open_database(options.db.as_deref(), true).await?;
    let summary = seed(
        &store,
        &SeedPlan {
            deliveries: options.deliveries,
            endpoints: options.endpoints,
            seed: 42,
        },
    )
    .await?;
    let ops = Ops::new(
        store.clone(),
        &Config::default(),
        Actor {
            name: "bench".to_string(),
            client_addr: None,
            source: Source::Console,
        },
    );
    let mut views = Vec::new();
    for scenario in scenarios(&summary) {
        let mut harness = Harness::new(ops.clone(), store.location());
        views.push(harness.measure(&scenario, options.runs).await?);
    }
    let mut harness = Harness::new(ops.clone(), store.location());
    let search = harness.measure_search(&summary, options.runs).await?;
    let database = describe(&store);
    store.close().await;
    let all_within_targets = views
        .iter()
        .all(|v| v.refresh_verdict == "ok" && v.render_verdict == "ok");
    Ok(ConsoleReport {
        benchmark: "console",
        database,
        seed: summary,
        runs: options.runs,
        terminal: format!("{}x{}", SIZE.0, SIZE.1),
        refresh_target_ms: REFRESH_TARGET_MS,
        render_target_ms: RENDER_TARGET_MS,
        views,
        search,
        all_within_targets,
        peak_memory_bytes: peak_memory(),
    })
}

/// Something an operator types.
#[derive(Debug, Clone)]
enum Input {
    /// A `:command` or `/filter` line, then Enter.
    Line(String),
    Key(KeyEvent),
}

/// What a scenario times.
#[derive(Debug, Clone)]
enum Timed {
    /// The periodic refresh of the open screen (or, where the screen does
    /// not reload by itself, opening it again).
    Refresh,
    /// The load a key triggers; `reset` puts the screen back afterwards.
    Key { key: KeyEvent, reset: Vec<Input> },
    /// The header's load alone (every refresh runs it beside the screen's).
    Header,
    /// Opening the screen in a console that has read nothing yet (the
    /// loader's lists uncached): until its first rows show.
    OpenCold,
    /// The same first open, from its first rows on screen until the whole
    /// list is (the load those rows call for).
    OpenColdRest,
}

/// One screen to measure and how to reach it.
#[derive(Debug, Clone)]
struct Scenario {
    view: String,
    setup: Vec<Input>,
    timed: Timed,
}

fn line(text: &str) -> Input {
    Input::Line(text.to_string())
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn scenario(view: &str, setup: &[&str]) -> Scenario {
    Scenario {
        view: view.to_string(),
        setup: setup.iter().map(|s| line(s)).collect(),
        timed: Timed::Refresh,
    }
}

/// Every screen, and the filters operators use, on the seeded data.
fn scenarios(seeded: &SeedSummary) -> Vec<Scenario> {
    let samples = &seeded.samples;
    let tenant = &samples.tenant;
    let busy = &samples.busy_endpoint;
    let down = &samples.down_endpoint;
    let mut list = vec![
        Scenario {
            view: "header (queue totals, dispatchers)".to_string(),
            setup: Vec::new(),
            timed: Timed::Header,
        },
        scenario("overview", &[":overview"]),
        scenario("deliveries: live queue", &[":deliveries"]),
        Scenario {
            view: "deliveries: next page (pgdn)".to_string(),
            setup: vec![line(":deliveries")],
            timed: Timed::Key {
                key: key(KeyCode::PageDown),
                reset: Vec::new(),
            },
        },
        Scenario {
            view: "deliveries: oldest page (G)".to_string(),
            setup: vec![line(":deliveries")],
            timed: Timed::Key {
                key: key(KeyCode::Char('G')),
                reset: vec![Input::Key(key(KeyCode::Char('g')))],
            },
        },
        scenario("deliveries: failed (dead)", &[":failed"]),
        scenario(
            "deliveries: dead + retrying",
            &[":deliveries", "/state:dead,retrying"],
        ),
        scenario("deliveries: retrying", &[":deliveries", "/state:retrying"]),
        scenario("deliveries: pending", &[":deliveries", "/state:pending"]),
        scenario(
            "deliveries: in flight",
            &[":deliveries", "/state:in_flight"],
        ),
        scenario(
            "deliveries: delivered",
            &[":deliveries", "/state:delivered"],
        ),
        scenario(
            "deliveries: by tenant",
            &[":deliveries", &format!("/tenant:{tenant}")],
        ),
        scenario(
            "deliveries: by endpoint",
            &[":deliveries", &format!("/endpoint:{busy}")],
        ),
        scenario(
            "deliveries: dead of a down endpoint",
            &[":deliveries", &format!("/state:dead endpoint:{down}")],
        ),
        scenario(
            "deliveries: by topic",
            &[":deliveries", "/topic:product.price_changed"],
        ),
        scenario(
            "deliveries: by rare topic",
            &[":deliveries", &format!("/topic:{RARE_TOPIC}")],
        ),
        scenario(
            "deliveries: dead, tenant and topic",
            &[
                ":deliveries",
                &format!("/state:dead tenant:{tenant} topic:order.created"),
            ],
        ),
        scenario(
            "deliveries: console scoped to a tenant",
            &[&format!(":tenant {tenant}"), ":deliveries"],
        ),
    ];
    if !samples.event.is_empty() {
        list.push(scenario(
            "deliveries: one event (/event:msg_…)",
            &[":deliveries", &format!("/event:{}", samples.event)],
        ));
        list.push(scenario(
            "event view: its fan-out (:id msg_…)",
            &[&format!(":id {}", samples.event)],
        ));
    }
    if !samples.dead_delivery.is_empty() {
        list.push(scenario(
            "delivery detail",
            &[&format!(":id {}", samples.dead_delivery)],
        ));
    }
    list.push(Scenario {
        view: "endpoint detail: failures by cause".to_string(),
        setup: vec![
            line(":endpoints"),
            line(&format!("/{down}")),
            Input::Key(key(KeyCode::Enter)),
        ],
        timed: Timed::Refresh,
    });
    list.extend([
        scenario("endpoints", &[":endpoints"]),
        Scenario {
            view: "endpoints: first open".to_string(),
            setup: vec![line(":endpoints")],
            timed: Timed::OpenCold,
        },
        Scenario {
            view: "endpoints: first open, the rest".to_string(),
            setup: vec![line(":endpoints")],
            timed: Timed::OpenColdRest,
        },
        scenario(
            "endpoints: one tenant",
            &[&format!(":tenant {tenant}"), ":endpoints"],
        ),
        Scenario {
            view: "endpoints: count dead for retry-all (R)".to_string(),
            setup: vec![line(":endpoints")],
            timed: Timed::Key {
                key: key(KeyCode::Char('R')),
                reset: vec![Input::Key(key(KeyCode::Esc))],
            },
        },
        scenario("subscriptions", &[":subs"]),
        Scenario {
            view: "subscriptions: first open".to_string(),
            setup: vec![line(":subs")],
            timed: Timed::OpenCold,
        },
        Scenario {
            view: "subscriptions: first open, the rest".to_string(),
            setup: vec![line(":subs")],
            timed: Timed::OpenColdRest,
        },
        Scenario {
            view: "subscriptions: one endpoint".to_string(),
            setup: vec![line(":endpoints"), Input::Key(key(KeyCode::Char('s')))],
            timed: Timed::Refresh,
        },
        scenario("audit", &[":audit"]),
    ]);
    list
}

/// The console's state machine, its loader and a test terminal.
struct Harness {
    app: App,
    ops: Ops,
    loader: Loader,
    terminal: Terminal<TestBackend>,
    theme: Theme,
}

/// Dispatchers seen within this count as alive (as `hookline console` sets it).
const ALIVE_WITHIN: Duration = Duration::from_secs(30);

impl Harness {
    fn new(ops: Ops, location: &str) -> Harness {
        Harness {
            app: App::new(location.to_string(), false, SIZE),
            loader: Loader::new(ops.clone(), ALIVE_WITHIN),
            ops,
            // ok: a TestBackend never fails to set up.
            terminal: Terminal::new(TestBackend::new(SIZE.0, SIZE.1))
                .unwrap_or_else(|never| match never {}),
            theme: Theme::new(true),
        }
    }

    /// Times `runs` refreshes and frames of one screen.
    async fn measure(
        &mut self,
        scenario: &Scenario,
        runs: usize,
    ) -> Result<ViewFigures, BenchError> {
        let view = scenario.view.as_str();
        let (last, before) = match scenario.setup.split_last() {
            Some((last, before)) => (std::slice::from_ref(last), before),
            None => (&[][..], &[][..]),
        };
        self.type_and_settle(view, before).await?;
        self.type_and_settle(view, last).await?;
        let timed = match scenario.timed {
            Timed::Header => "header",
            Timed::Key { .. } => "key",
            Timed::OpenCold => "cold",
            Timed::OpenColdRest => "rest",
            // Screens that do not reload on a refresh are timed opening.
            Timed::Refresh if self.refresh_reloads_screen(view).await? => "refresh",
            Timed::Refresh => "open",
        };
        let mut refresh = Vec::with_capacity(runs);
        let mut render = Vec::with_capacity(runs);
        for _ in 0..runs {
            let elapsed = match &scenario.timed {
                Timed::Header => {
                    let started = Instant::now();
                    self.loader
                        .load(Load::Header)
                        .await
                        .map_err(|e| failed(view, e))?;
                    started.elapsed()
                }
                Timed::Refresh => {
                    let commands = if timed == "open" {
                        self.type_and_settle(view, before).await?;
                        self.type_inputs(last)
                    } else {
                        self.app.update(Msg::Refresh)
                    };
                    self.run_timed(view, commands).await?
                }
                Timed::OpenCold => {
                    self.loader = Loader::new(self.ops.clone(), ALIVE_WITHIN);
                    self.type_and_settle(view, before).await?;
                    let commands = self.type_inputs(last);
                    self.run_timed(view, commands).await?
                }
                Timed::OpenColdRest => {
                    self.loader = Loader::new(self.ops.clone(), ALIVE_WITHIN);
                    self.type_and_settle(view, before).await?;
                    let commands = self.type_inputs(last);
                    let answers = self.run_loads(view, commands).await?;
                    let mut rest = Vec::new();
                    for (token, loaded) in answers {
                        rest.extend(self.app.update(Msg::Loaded {
                            token,
                            result: Ok(loaded),
                        }));
                    }
                    self.run_timed(view, rest).await?
                }
                Timed::Key { key, reset } => {
                    let mut commands = Vec::new();
                    // Page keys load once the selection nears the loaded end.
                    for _ in 0..20 {
                        commands = self.app.update(Msg::Key(*key));
                        if !commands.is_empty() {
                            break;
                        }
                    }
                    let elapsed = self.run_timed(view, commands).await?;
                    let commands = self.type_inputs(reset);
                    self.settle(view, commands).await?;
                    elapsed
                }
            };
            refresh.push(ms(elapsed));
            render.push(self.draw_ms());
        }
        let refresh = Figure::of(&refresh);
        let render = Figure::of(&render);
        Ok(ViewFigures {
            view: scenario.view.clone(),
            input: describe_inputs(&scenario.setup, &scenario.timed),
            timed,
            rows: self.rows_on_screen(),
            refresh_verdict: refresh.verdict(REFRESH_TARGET_MS),
            render_verdict: render.verdict(RENDER_TARGET_MS),
            refresh,
            render,
        })
    }

    /// Whether a periodic refresh reloads the open screen (not only the
    /// header); the refresh's loads are answered either way.
    async fn refresh_reloads_screen(&mut self, view: &str) -> Result<bool, BenchError> {
        let commands = self.app.update(Msg::Refresh);
        let reloads = commands
            .iter()
            .any(|c| matches!(c, Command::Load { load, .. } if *load != Load::Header));
        self.settle(view, commands).await?;
        Ok(reloads)
    }

    /// Types each input and lets its loads finish before the next, as an
    /// operator waits for a screen before pressing a key on it.
    async fn type_and_settle(&mut self, view: &str, inputs: &[Input]) -> Result<(), BenchError> {
        for input in inputs {
            let commands = self.type_inputs(std::slice::from_ref(input));
            self.settle(view, commands).await?;
        }
        Ok(())
    }

    /// Sends keys as typed; returns the commands they asked for.
    fn type_inputs(&mut self, inputs: &[Input]) -> Vec<Command> {
        let mut commands = Vec::new();
        for input in inputs {
            match input {
                Input::Key(key) => commands.extend(self.app.update(Msg::Key(*key))),
                Input::Line(text) => {
                    for c in text.chars() {
                        commands.extend(self.app.update(Msg::Key(key(KeyCode::Char(c)))));
                    }
                    commands.extend(self.app.update(Msg::Key(key(KeyCode::Enter))));
                }
            }
        }
        commands
    }

    /// Runs `commands`' loads as the console does (each in its own task,
    /// all at once) and times them until the last has answered; the answers
    /// then go to the `App`, and whatever they ask for next runs untimed.
    async fn run_timed(
        &mut self,
        view: &str,
        commands: Vec<Command>,
    ) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let answers = self.run_loads(view, commands).await?;
        let elapsed = started.elapsed();
        let mut next = Vec::new();
        for (token, loaded) in answers {
            next.extend(self.app.update(Msg::Loaded {
                token,
                result: Ok(loaded),
            }));
        }
        self.settle(view, next).await?;
        Ok(elapsed)
    }

    /// Runs `commands` and everything their answers ask for, untimed.
    async fn settle(&mut self, view: &str, mut commands: Vec<Command>) -> Result<(), BenchError> {
        for _ in 0..MAX_CHAINED_LOADS {
            if commands.is_empty() {
                return Ok(());
            }
            let answers = self.run_loads(view, std::mem::take(&mut commands)).await?;
            for (token, loaded) in answers {
                commands.extend(self.app.update(Msg::Loaded {
                    token,
                    result: Ok(loaded),
                }));
            }
        }
        Err(BenchError::Setup(format!(
            "{view}: the console kept asking for more loads"
        )))
    }

    /// Each load in its own task, as `io.rs` runs them; answers in order.
    async fn run_loads(
        &self,
        view: &str,
        commands: Vec<Command>,
    ) -> Result<Vec<(u64, Loaded)>, BenchError> {
        let mut tasks = Vec::new();
        for command in commands {
            match command {
                Command::Load { token, load } => {
                    let loader = self.loader.clone();
                    tasks.push((token, tokio::spawn(async move { loader.load(load).await })));
                }
                Command::Act(act) => {
                    return Err(BenchError::Setup(format!(
                        "{view}: the bench only reads, but the console asked to {act:?}"
                    )));
                }
            }
        }
        let mut answers = Vec::with_capacity(tasks.len());
        for (token, task) in tasks {
            let loaded = task
                .await
                .map_err(|e| failed(view, e))?
                .map_err(|e| failed(view, e))?;
            answers.push((token, loaded));
        }
        Ok(answers)
    }

    /// Draws the whole screen from scratch (as after a resize: every cell
    /// written) and returns how long the frame took.
    fn draw_ms(&mut self) -> f64 {
        let app = &self.app;
        let theme = self.theme;
        let _ = self.terminal.clear();
        let started = Instant::now();
        let _ = self.terminal.draw(|frame| views::render(app, theme, frame));
        ms(started.elapsed())
    }

    /// Rows the open screen holds, for the report.
    fn rows_on_screen(&self) -> usize {
        match self.app.top() {
            Screen::Overview(s) => s.worst.len(),
            Screen::Deliveries(s) => s.rows.items.len(),
            Screen::Detail(s) => s.detail.as_ref().map_or(0, |d| d.attempts.len()),
            Screen::Event(s) => s.fanout.as_ref().map_or(0, |f| f.deliveries.len()),
            Screen::EndpointDetail(s) => s.detail.as_ref().map_or(0, |d| d.causes(s.day).len()),
            Screen::Endpoints(s) => s.rows.items.len(),
            Screen::Subscriptions(s) => s.rows.items.len(),
            Screen::Audit(s) => s.rows.items.len(),
            Screen::Help(_) => 0,
        }
    }

    /// Times the payload search: to the first hit of a term about 5 % of
    /// the events deep, and to the end of a search that finds nothing.
    async fn measure_search(
        &mut self,
        seeded: &SeedSummary,
        runs: usize,
    ) -> Result<SearchFigures, BenchError> {
        let view = "search";
        let term = seeded.samples.search_hit.clone();
        let no_match = "no-such-text-anywhere".to_string();
        let mut first = Vec::with_capacity(runs);
        let mut scanned_to_first = 0;
        for _ in 0..runs {
            let (elapsed, scanned) = self.search(view, &term, true).await?;
            first.push(ms(elapsed));
            scanned_to_first = scanned;
        }
        let mut full = Vec::new();
        let mut scanned_all = 0;
        for _ in 0..runs.clamp(1, 3) {
            let (elapsed, scanned) = self.search(view, &no_match, false).await?;
            full.push(ms(elapsed));
            scanned_all = scanned;
        }
        let full_scan = Figure::of(&full);
        Ok(SearchFigures {
            term,
            first_result: Figure::of(&first),
            events_scanned_to_first: scanned_to_first,
            no_match_term: no_match,
            events_per_sec: if full_scan.median_ms > 0.0 {
                scanned_all as f64 / (full_scan.median_ms / 1_000.0)
            } else {
                0.0
            },
            full_scan,
            events_scanned: scanned_all,
        })
    }

    /// Types `/text` on a fresh deliveries list and follows the search's
    /// pages until the first row shows (`until_hit`) or the search ends.
    /// Returns the time and the events scanned.
    async fn search(
        &mut self,
        view: &str,
        text: &str,
        until_hit: bool,
    ) -> Result<(Duration, i64), BenchError> {
        let commands = self.type_inputs(&[line(":deliveries")]);
        self.settle(view, commands).await?;
        let started = Instant::now();
        let mut commands = self.type_inputs(&[line(&format!("/{text}"))]);
        for _ in 0..MAX_CHAINED_LOADS {
            let (rows, scanned) = match self.app.top() {
                Screen::Deliveries(s) => (
                    s.rows.items.len(),
                    s.search.as_ref().map_or(0, |p| p.scanned),
                ),
                _ => (0, 0),
            };
            if (until_hit && rows > 0) || commands.is_empty() {
                if until_hit && rows == 0 {
                    return Err(BenchError::Setup(format!(
                        "{view}: {text:?} found nothing after {scanned} events"
                    )));
                }
                return Ok((started.elapsed(), scanned));
            }
            let answers = self.run_loads(view, std::mem::take(&mut commands)).await?;
            for (token, loaded) in answers {
                commands.extend(self.app.update(Msg::Loaded {
                    token,
                    result: Ok(loaded),
                }));
            }
        }
        Err(BenchError::Setup(format!("{view}: the search never ended")))
    }
}

fn failed(view: &str, err: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("{view}: the load failed: {err}"))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// `:failed`, `:deliveries /state:dead`, `… then G`.
fn describe_inputs(setup: &[Input], timed: &Timed) -> String {
    let mut parts: Vec<String> = setup
        .iter()
        .map(|input| match input {
            Input::Line(text) => text.clone(),
            Input::Key(key) => key_label(key),
        })
        .collect();
    if let Timed::Key { key, .. } = timed {
        parts.push(key_label(key));
    }
    parts.join(" ")
}

fn key_label(key: &KeyEvent) -> String {
    match key.code {
        KeyCode::Char(c) => c.to_string(),
        KeyCode::PageDown => "pgdn".to_string(),
        KeyCode::Esc => "esc".to_string(),
        other => format!("{other:?}"),
    }
}

/// Renders a report as the table people read.
pub fn render_console(report: &ConsoleReport) -> String {
    let seed = &report.seed;
    let mut out = format!(
        "bench console: {} deliveries ({}), {} events, {} endpoints, {} tenants, {} attempts; seeded in {:.1} s\n",
        seed.deliveries,
        seed.by_state
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        seed.events,
        seed.endpoints,
        seed.tenants,
        seed.attempts,
        seed.seconds
    );
    out.push_str(&format!(
        "database: {}\n{} runs per screen; frames drawn whole at {}; targets: refresh < {} ms, frame < {} ms\n\n",
        report.database, report.runs, report.terminal, report.refresh_target_ms, report.render_target_ms
    ));
    out.push_str(&format!(
        "{:<42} {:<7} {:>5}  {:>9} {:>9} {:<6}  {:>9} {:>9} {:<6}\n",
        "screen", "timed", "rows", "refresh", "p95", "", "frame", "p95", ""
    ));
    for view in &report.views {
        out.push_str(&format!(
            "{:<42} {:<7} {:>5}  {:>6.2} ms {:>6.2} ms {:<6}  {:>6.2} ms {:>6.2} ms {:<6}\n",
            view.view,
            view.timed,
            view.rows,
            view.refresh.median_ms,
            view.refresh.p95_ms,
            view.refresh_verdict,
            view.render.median_ms,
            view.render.p95_ms,
            view.render_verdict
        ));
    }
    let search = &report.search;
    out.push_str(&format!(
        "\npayload search (streams; exempt from the refresh target):\n  first result for {:?}: {:.1} ms median, {:.1} ms p95 ({} events scanned)\n  no match ({:?}): {:.0} ms median to scan all {} events ({:.0} events/s)\n",
        search.term,
        search.first_result.median_ms,
        search.first_result.p95_ms,
        search.events_scanned_to_first,
        search.no_match_term,
        search.full_scan.median_ms,
        search.events_scanned,
        search.events_per_sec
    ));
    out.push_str(if report.all_within_targets {
        "\nevery screen is within both targets (p95)\n"
    } else {
        "\nnot every screen is within both targets at p95 (\"median\": only the median is; \"MISS\": neither)\n"
    });
    if let Some(bytes) = report.peak_memory_bytes {
        out.push_str(&format!(
            "peak memory: {:.1} MiB\n",
            bytes as f64 / 1_048_576.0
        ));
    }
    out
}
