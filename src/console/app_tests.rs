//! [`App::update`] as a state machine: keys and loaded data go in, the
//! state and the commands that come out are checked. No database: loads
//! are answered with rows made here, exactly as `io.rs` would answer them.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::confirm::Confirm;
use super::{App, Mode, Slot};
use crate::console::keymap::{self, KEYMAP, Scope, ViewKind};
use crate::console::msg::{Act, Acted, Command, Holds, ListLoad, Load, Loaded, Msg};
use crate::console::screens::{DeliveriesScreen, EndpointRow, Screen};
use crate::console::theme::Theme;
use crate::held::Hold;
use crate::model::{
    Delivery, DeliveryState, Endpoint, EndpointState, Event, Subscription, now_millis,
};
use crate::store::{Cursor, DeliveryDetail, EndpointQueue, QueueSummary};

/// A valid ULID body, so ids made from it are recognised by kind.
const ULID: &str = "01M83J88VCXN0XJAC6MYBWXRH7";
/// 120x40 leaves 34 rows for a list.
const SIZE: (u16, u16) = (120, 40);

// --- making state -----------------------------------------------------------

fn key(app: &mut App, code: KeyCode) -> Vec<Command> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ctrl(app: &mut App, c: char) -> Vec<Command> {
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )))
}

/// Types `text` a character at a time; the commands of every key.
fn type_text(app: &mut App, text: &str) -> Vec<Command> {
    text.chars()
        .flat_map(|c| key(app, KeyCode::Char(c)))
        .collect()
}

/// Types a `:` command and Enter.
fn command(app: &mut App, line: &str) -> Vec<Command> {
    key(app, KeyCode::Char(':'));
    type_text(app, line);
    key(app, KeyCode::Enter)
}

fn id(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:0>26}")
}

fn delivery(n: usize, state: DeliveryState) -> Delivery {
    Delivery {
        id: id("dlv_", n),
        event_id: id("msg_", n),
        endpoint_id: id("ep_", 1),
        endpoint_name: "orders".to_string(),
        tenant_id: id("ten_", 1),
        tenant_name: "globex".to_string(),
        topic: "order.created".to_string(),
        state,
        attempts: if state == DeliveryState::Dead { 3 } else { 0 },
        next_attempt_at: 0,
        last_attempt_at: None,
        last_status: None,
        last_error: None,
        created_at: 1_000_000 - n as i64,
        updated_at: 1_000_000,
    }
}

fn deliveries(count: usize) -> Vec<Delivery> {
    (0..count)
        .map(|n| delivery(n, DeliveryState::Dead))
        .collect()
}

fn endpoint(n: usize, name: &str, state: EndpointState) -> EndpointRow {
    EndpointRow {
        endpoint: Endpoint {
            id: id("ep_", n),
            tenant_id: id("ten_", 1),
            tenant_name: "globex".to_string(),
            name: name.to_string(),
            url: "https://erp.globex.example/hooks".to_string(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(),
            previous_secret: None,
            previous_secret_expires_at: None,
            state,
            state_reason: None,
            state_changed_at: None,
            state_changed_by: None,
            paused_until: None,
            timeout_ms: None,
            max_in_flight: None,
            rate_limit: None,
            headers: Vec::new(),
            description: None,
            created_at: 0,
            updated_at: 0,
            secret_rotated_at: None,
        },
        queue: Some(EndpointQueue::default()),
        health: None,
        blocked: None,
        protection: None,
    }
}

fn subscription(n: usize, pattern: &str) -> Subscription {
    Subscription {
        id: id("sub_", n),
        endpoint_id: id("ep_", 1),
        endpoint_name: "orders".to_string(),
        tenant_id: id("ten_", 1),
        tenant_name: "acme".to_string(),
        pattern: pattern.to_string(),
        description: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn detail(d: Delivery) -> DeliveryDetail {
    DeliveryDetail {
        event: Event {
            id: d.event_id.clone(),
            tenant_id: Some(d.tenant_id.clone()),
            topic: d.topic.clone(),
            payload: r#"{"order":"ord_7003"}"#.to_string(),
            payload_size: 20,
            payload_removed: None,
            idempotency_key: None,
            created_at: d.created_at,
        },
        delivery: d,
        attempts: Vec::new(),
    }
}

/// Answers the load the top screen waits for.
fn answer(app: &mut App, loaded: Loaded) -> Vec<Command> {
    let token = *app
        .pending
        .get(&Slot::Top)
        .expect("the top screen waits for a load");
    app.update(Msg::Loaded {
        token,
        result: Ok(loaded),
    })
}

fn rows_loaded(rows: Vec<Delivery>, older: Option<Cursor>) -> Loaded {
    Loaded::Deliveries {
        rows,
        older,
        newer: None,
        how: ListLoad::Replace,
        holds: Holds::new(),
    }
}

fn app_with(read_only: bool) -> App {
    let mut app = App::new("test.db".to_string(), read_only, SIZE);
    app.start();
    app
}

/// The deliveries view with `count` dead deliveries loaded.
fn on_deliveries(count: usize, read_only: bool) -> App {
    let mut app = app_with(read_only);
    key(&mut app, KeyCode::Char('2'));
    answer(&mut app, rows_loaded(deliveries(count), None));
    app
}

fn on_endpoints(rows: Vec<EndpointRow>, read_only: bool) -> App {
    let mut app = app_with(read_only);
    key(&mut app, KeyCode::Char('3'));
    answer(
        &mut app,
        Loaded::Endpoints {
            rows,
            complete: true,
        },
    );
    app
}

fn on_subscriptions(read_only: bool) -> App {
    let mut app = app_with(read_only);
    key(&mut app, KeyCode::Char('4'));
    answer(
        &mut app,
        Loaded::Subscriptions {
            rows: vec![subscription(1, "order.*"), subscription(2, "invoice.*")],
            complete: true,
        },
    );
    app
}

fn on_detail(read_only: bool) -> App {
    let mut app = on_deliveries(3, read_only);
    key(&mut app, KeyCode::Enter);
    answer(
        &mut app,
        Loaded::Detail {
            detail: Box::new(detail(delivery(0, DeliveryState::Dead))),
            hold: None,
        },
    );
    app
}

fn deliveries_screen(app: &App) -> &DeliveriesScreen {
    match app.top() {
        Screen::Deliveries(s) => s,
        other => panic!("expected the deliveries view, got {:?}", other.kind()),
    }
}

fn selected(app: &App) -> usize {
    deliveries_screen(app).rows.selected
}

fn loads(commands: &[Command]) -> Vec<&Load> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Load { load, .. } => Some(load),
            Command::Act(_) => None,
        })
        .collect()
}

fn acts(commands: &[Command]) -> Vec<&Act> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Act(act) => Some(act),
            Command::Load { .. } => None,
        })
        .collect()
}

fn confirm(app: &App) -> &Confirm {
    match &app.mode {
        Mode::Confirm(confirm) => confirm,
        other => panic!("expected a confirmation, got {other:?}"),
    }
}

fn flash_text(app: &App) -> &str {
    app.flash.as_ref().map_or("", |f| f.text.as_str())
}

/// The screen as text, drawn by the real renderer.
fn screen(app: &App) -> String {
    let mut terminal =
        Terminal::new(TestBackend::new(app.size.0, app.size.1)).expect("a test terminal");
    terminal
        .draw(|frame| crate::console::views::render(app, Theme::new(false), frame))
        .expect("draw");
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// --- navigation -------------------------------------------------------------

#[test]
fn j_k_g_capital_g_and_paging_move_within_the_loaded_rows() {
    let mut app = on_deliveries(50, false);
    // 40 lines less the header, breadcrumbs, list info and column titles,
    // the two-line detail strip, status and hints.
    assert_eq!(app.body_rows(), 32);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Down);
    assert_eq!(selected(&app), 2);
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(selected(&app), 1);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    assert_eq!(selected(&app), 0, "k at the top stays there");
    let commands = key(&mut app, KeyCode::Char('G'));
    assert_eq!(selected(&app), 49);
    assert!(loads(&commands).is_empty(), "the end is already loaded");
    assert_eq!(
        deliveries_screen(&app).rows.offset,
        18,
        "the last row is on screen"
    );
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(selected(&app), 0);
    assert_eq!(deliveries_screen(&app).rows.offset, 0);
    key(&mut app, KeyCode::PageDown);
    assert_eq!(selected(&app), 32);
    key(&mut app, KeyCode::PageDown);
    assert_eq!(selected(&app), 49, "paging stops at the last row");
    key(&mut app, KeyCode::PageUp);
    assert_eq!(selected(&app), 17);
    ctrl(&mut app, 'f');
    assert_eq!(selected(&app), 49, "ctrl-f pages down too");
    ctrl(&mut app, 'b');
    assert_eq!(selected(&app), 17);
}

#[test]
fn moving_on_an_empty_list_is_harmless() {
    let mut app = on_deliveries(0, false);
    for code in [
        KeyCode::Char('j'),
        KeyCode::Char('k'),
        KeyCode::Char('G'),
        KeyCode::Char('g'),
        KeyCode::PageDown,
        KeyCode::Enter,
        KeyCode::Char(' '),
        KeyCode::Char('r'),
    ] {
        let commands = key(&mut app, code);
        assert!(acts(&commands).is_empty());
    }
    assert_eq!(selected(&app), 0);
    assert_eq!(app.stack.len(), 1);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn capital_g_loads_the_oldest_page_when_more_exist() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('2'));
    let cursor = Cursor {
        created_at: 5,
        id: id("dlv_", 99),
    };
    answer(&mut app, rows_loaded(deliveries(100), Some(cursor)));
    let commands = key(&mut app, KeyCode::Char('G'));
    assert!(matches!(
        loads(&commands).as_slice(),
        [Load::Deliveries {
            how: ListLoad::Tail,
            cursor: None,
            ..
        }]
    ));
    assert!(
        !deliveries_screen(&app).follow,
        "at the far end the list no longer follows"
    );
}

#[test]
fn paging_near_the_end_of_the_loaded_rows_loads_older_ones() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('2'));
    let cursor = Cursor {
        created_at: 5,
        id: id("dlv_", 99),
    };
    answer(&mut app, rows_loaded(deliveries(90), Some(cursor.clone())));
    let first = key(&mut app, KeyCode::PageDown);
    assert!(loads(&first).is_empty(), "plenty of rows below");
    let second = key(&mut app, KeyCode::PageDown);
    assert!(matches!(
        loads(&second).as_slice(),
        [Load::Deliveries { how: ListLoad::Older, cursor: Some(c), .. }] if *c == cursor
    ));
}

#[test]
fn number_keys_jump_to_the_top_level_views() {
    let mut app = app_with(false);
    for (c, view) in [
        ('2', ViewKind::Deliveries),
        ('3', ViewKind::Endpoints),
        ('4', ViewKind::Subscriptions),
        ('5', ViewKind::Audit),
        ('1', ViewKind::Overview),
    ] {
        let commands = key(&mut app, KeyCode::Char(c));
        assert_eq!(app.view(), view);
        assert_eq!(app.stack.len(), 1, "a top-level view replaces the stack");
        let view_loads = loads(&commands)
            .into_iter()
            .filter(|l| **l != Load::Header)
            .count();
        assert_eq!(view_loads, 1, "{view:?}: its data loads: {commands:?}");
    }
}

// --- drilling in and backing out -------------------------------------------

#[test]
fn enter_opens_the_selected_delivery_and_esc_goes_back_to_the_same_row() {
    let mut app = on_deliveries(5, false);
    key(&mut app, KeyCode::Char('j'));
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), ViewKind::Detail);
    assert_eq!(loads(&commands), vec![&Load::Detail { id: id("dlv_", 1) }]);
    assert_eq!(app.top().crumb(), id("dlv_", 1));
    let commands = key(&mut app, KeyCode::Esc);
    assert!(acts(&commands).is_empty());
    assert_eq!(app.view(), ViewKind::Deliveries);
    assert_eq!(selected(&app), 1, "back where the operator was");
}

#[test]
fn enter_on_an_endpoint_opens_its_detail_and_l_lists_its_deliveries() {
    let mut app = on_endpoints(
        vec![
            endpoint(1, "orders", EndpointState::Active),
            endpoint(2, "billing", EndpointState::Active),
        ],
        false,
    );
    key(&mut app, KeyCode::Char('j'));
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), ViewKind::EndpointDetail);
    assert_eq!(app.top().crumb(), "globex/billing");
    assert_eq!(
        loads(&commands),
        vec![&Load::EndpointDetail { id: id("ep_", 2) }]
    );
    answer(&mut app, endpoint_detail_loaded(2, "billing"));
    let commands = key(&mut app, KeyCode::Char('l'));
    let screen = deliveries_screen(&app);
    assert_eq!(screen.query.filter.endpoint_id, Some(id("ep_", 2)));
    assert_eq!(app.top().crumb(), "Deliveries (globex/billing)");
    assert!(loads(&commands).iter().any(|l| matches!(
        l,
        Load::Deliveries { query, .. } if query.filter.endpoint_id == Some(id("ep_", 2))
    )));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), ViewKind::EndpointDetail);
}

/// An endpoint's detail as loaded: two causes in the last hour.
fn endpoint_detail_loaded(n: usize, name: &str) -> Loaded {
    let cause = |cause: &str, failures: i64| crate::store::FailureCause {
        cause: cause.to_string(),
        failures,
        first_at: 0,
        last_at: 0,
        example_delivery_id: id("dlv_", 1),
        example_error: cause.to_string(),
    };
    let endpoint = endpoint(n, name, EndpointState::Active).endpoint;
    Loaded::EndpointDetail(Box::new(crate::console::screens::EndpointDetail {
        breaker: crate::store::Breaker::pristine(&endpoint.id),
        endpoint,
        queue: EndpointQueue {
            retrying: 2,
            ..EndpointQueue::default()
        },
        hold: None,
        minutes: Vec::new(),
        causes_hour: vec![cause("http_status 503", 15), cause("timeout", 9)],
        causes_day: vec![cause("http_status 503", 15)],
        subscriptions: Vec::new(),
    }))
}

#[test]
fn on_an_endpoint_detail_enter_on_a_cause_lists_the_deliveries_that_failed_with_it() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Enter);
    answer(&mut app, endpoint_detail_loaded(1, "orders"));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    let commands = key(&mut app, KeyCode::Enter);
    let screen = deliveries_screen(&app);
    assert_eq!(
        screen.query.cause.as_deref(),
        Some("timeout"),
        "the last cause, clamped"
    );
    assert_eq!(screen.query.filter.endpoint_id, Some(id("ep_", 1)));
    assert!(loads(&commands).iter().any(|l| matches!(
        l,
        Load::Deliveries { query, .. } if query.cause.as_deref() == Some("timeout")
    )));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Tab);
    assert!(screen_text_has(&app, "last day: 15"));
}

fn screen_text_has(app: &App, text: &str) -> bool {
    screen(app).contains(text)
}

#[test]
fn esc_only_ever_goes_back_or_cancels() {
    let mut cases: Vec<(&str, App)> = Vec::new();
    cases.push(("overview at the bottom of the stack", app_with(false)));
    cases.push(("deliveries", on_deliveries(3, false)));
    cases.push(("detail", on_detail(false)));
    let mut help = on_deliveries(3, false);
    key(&mut help, KeyCode::Char('?'));
    cases.push(("help", help));
    let mut filter = on_deliveries(3, false);
    key(&mut filter, KeyCode::Char('/'));
    type_text(&mut filter, "state:dead");
    cases.push(("typing a filter", filter));
    let mut cmd = on_deliveries(3, false);
    key(&mut cmd, KeyCode::Char(':'));
    type_text(&mut cmd, "q");
    cases.push(("typing a command", cmd));
    let mut confirm = on_deliveries(3, false);
    key(&mut confirm, KeyCode::Char('r'));
    key(&mut confirm, KeyCode::Tab);
    cases.push(("a confirmation with Retry focused", confirm));
    let mut form = on_subscriptions(false);
    key(&mut form, KeyCode::Char('e'));
    type_text(&mut form, ".changed");
    cases.push(("an edit form with changes", form));
    let mut marked = on_deliveries(3, false);
    key(&mut marked, KeyCode::Char(' '));
    cases.push(("marked rows", marked));
    for (what, mut app) in cases {
        let depth = app.stack.len();
        let commands = key(&mut app, KeyCode::Esc);
        assert!(acts(&commands).is_empty(), "{what}: esc changed data");
        assert!(!app.quit, "{what}: esc quit");
        assert_eq!(app.mode, Mode::Normal, "{what}: esc leaves the mode");
        assert!(app.stack.len() <= depth, "{what}: esc went somewhere new");
    }
}

#[test]
fn esc_at_the_bottom_clears_marks_and_then_does_nothing() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(deliveries_screen(&app).marked.len(), 1);
    key(&mut app, KeyCode::Esc);
    assert!(deliveries_screen(&app).marked.is_empty());
    let commands = key(&mut app, KeyCode::Esc);
    assert!(commands.is_empty());
    assert_eq!(app.view(), ViewKind::Deliveries);
}

// --- filter and command mode -----------------------------------------------

#[test]
fn slash_filters_by_state_tenant_endpoint_and_topic() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('/'));
    assert!(matches!(app.mode, Mode::Filter(_)));
    type_text(
        &mut app,
        "state:dead,scheduled tenant:globex endpoint:orders topic:order.created",
    );
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    let query = &deliveries_screen(&app).query;
    assert_eq!(
        query.filter.states,
        vec![DeliveryState::Dead, DeliveryState::Retrying]
    );
    assert_eq!(query.tenant_name.as_deref(), Some("globex"));
    assert_eq!(query.endpoint_name.as_deref(), Some("orders"));
    assert_eq!(query.filter.topic.as_deref(), Some("order.created"));
    assert!(query.text.is_none());
    assert!(loads(&commands).iter().any(
        |l| matches!(l, Load::Deliveries { query: q, how: ListLoad::Replace, .. } if q == query)
    ));
    assert!(
        deliveries_screen(&app).rows.items.is_empty(),
        "old rows are dropped"
    );
    assert!(
        app.top().crumb().contains("state:dead,retrying"),
        "the old word is shown in today's: {}",
        app.top().crumb()
    );
}

#[test]
fn state_filters_take_todays_words_and_the_old_ones() {
    for (typed, want) in [
        ("state:retrying", vec![DeliveryState::Retrying]),
        ("state:scheduled", vec![DeliveryState::Retrying]),
        ("state:delivered", vec![DeliveryState::Delivered]),
        ("state:succeeded", vec![DeliveryState::Delivered]),
        (
            "state:pending,in_flight,dead,cancelled",
            vec![
                DeliveryState::Pending,
                DeliveryState::InFlight,
                DeliveryState::Dead,
                DeliveryState::Cancelled,
            ],
        ),
    ] {
        let mut app = on_deliveries(3, false);
        key(&mut app, KeyCode::Char('/'));
        type_text(&mut app, typed);
        key(&mut app, KeyCode::Enter);
        let query = &deliveries_screen(&app).query;
        assert_eq!(query.filter.states, want, "{typed}");
        let crumb = app.top().crumb();
        assert!(
            !crumb.contains("scheduled") && !crumb.contains("succeeded"),
            "{typed}: {crumb}"
        );
    }
}

#[test]
fn colon_state_words_filter_the_deliveries() {
    for (line, want) in [
        ("retrying", DeliveryState::Retrying),
        ("scheduled", DeliveryState::Retrying),
        ("delivered", DeliveryState::Delivered),
        ("succeeded", DeliveryState::Delivered),
        ("pending", DeliveryState::Pending),
        ("in_flight", DeliveryState::InFlight),
        ("cancelled", DeliveryState::Cancelled),
    ] {
        let mut app = app_with(false);
        let commands = command(&mut app, line);
        assert_eq!(app.view(), ViewKind::Deliveries, ":{line}");
        let query = &deliveries_screen(&app).query;
        assert_eq!(query.filter.states, vec![want], ":{line}");
        assert_eq!(query.label, format!("state:{want}"), ":{line}");
        assert!(
            loads(&commands).iter().any(
                |l| matches!(l, Load::Deliveries { query: q, .. } if q.filter.states == [want])
            ),
            ":{line} loads the filtered list"
        );
    }
}

#[test]
fn slash_with_free_words_searches_payloads() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "state:dead ord_7003");
    let commands = key(&mut app, KeyCode::Enter);
    let screen = deliveries_screen(&app);
    assert_eq!(screen.query.text.as_deref(), Some("ord_7003"));
    assert!(!screen.follow, "a search does not follow");
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Search { after: None, .. }))
    );
}

#[test]
fn a_bad_filter_says_why_and_changes_nothing() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "state:bogus");
    let commands = key(&mut app, KeyCode::Enter);
    assert!(commands.is_empty());
    assert_eq!(
        flash_text(&app),
        "\"bogus\" is not a state: pending, in_flight, retrying, delivered, dead, cancelled"
    );
    assert!(flash_text(&app).chars().count() <= 80);
    assert!(app.flash.as_ref().is_some_and(|f| f.error));
    assert_eq!(
        deliveries_screen(&app).rows.items.len(),
        3,
        "the list stays"
    );
    assert!(deliveries_screen(&app).query.filter.states.is_empty());
}

#[test]
fn slash_elsewhere_filters_the_deliveries() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "state:dead");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), ViewKind::Deliveries);
    assert_eq!(
        deliveries_screen(&app).query.filter.states,
        vec![DeliveryState::Dead]
    );
}

#[test]
fn an_endpoint_the_guard_refuses_is_shown_blocked_with_the_reason() {
    let mut blocked = endpoint(2, "internal", EndpointState::Active);
    blocked.blocked = Some("127.0.0.1 (loopback 127.0.0.0/8)".to_string());
    let app = on_endpoints(
        vec![endpoint(1, "public", EndpointState::Active), blocked],
        false,
    );
    let screen = screen(&app);
    let line = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{screen}"))
            .to_string()
    };
    assert!(line("internal").contains("blocked"), "{screen}");
    assert!(line("internal").contains("loopback"), "{screen}");
    assert!(!line("public").contains("blocked"), "{screen}");
}

#[test]
fn slash_on_endpoints_filters_by_name() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "ORD");
    let commands = key(&mut app, KeyCode::Enter);
    assert!(loads(&commands).iter().any(|l| matches!(
        l,
        Load::Endpoints { filter: Some(words), .. } if words == "ord"
    )));
}

#[test]
fn colon_id_jumps_to_an_event_or_a_delivery() {
    let mut app = app_with(false);
    let event = format!("msg_{ULID}");
    let commands = command(&mut app, &format!("id {event}"));
    assert_eq!(app.view(), ViewKind::Event);
    assert_eq!(app.stack.len(), 2, "esc leads back to the deliveries");
    assert_eq!(app.top().crumb(), event);
    assert!(loads(&commands).contains(&&Load::Event { id: event.clone() }));

    let delivery = format!("dlv_{ULID}");
    let commands = command(&mut app, &format!("id {delivery}"));
    assert_eq!(app.view(), ViewKind::Detail);
    assert_eq!(app.stack.len(), 2, "esc leads back to the deliveries");
    assert!(loads(&commands).contains(&&Load::Detail {
        id: delivery.clone()
    }));

    // A bare id works as a command too.
    command(&mut app, &event);
    assert_eq!(app.view(), ViewKind::Event);
}

#[test]
fn colon_id_with_something_else_says_what_it_expects() {
    let mut app = on_deliveries(3, false);
    let commands = command(&mut app, "id 12345");
    assert!(commands.is_empty());
    assert!(flash_text(&app).contains("msg_"), "{}", flash_text(&app));
    assert_eq!(app.view(), ViewKind::Deliveries);
    assert_eq!(deliveries_screen(&app).rows.items.len(), 3);
}

#[test]
fn colon_commands_switch_views_and_filters() {
    let mut app = app_with(false);
    let commands = command(&mut app, "endpoints");
    assert_eq!(app.view(), ViewKind::Endpoints);
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Endpoints { .. }))
    );
    command(&mut app, "failed");
    assert_eq!(
        deliveries_screen(&app).query.filter.states,
        vec![DeliveryState::Dead]
    );
    command(&mut app, "ep orders");
    assert_eq!(
        deliveries_screen(&app).query.endpoint_name.as_deref(),
        Some("orders")
    );
    for (line, view) in [
        ("subs", ViewKind::Subscriptions),
        ("audit", ViewKind::Audit),
        ("deliveries", ViewKind::Deliveries),
        ("overview", ViewKind::Overview),
        ("help", ViewKind::Help),
    ] {
        command(&mut app, line);
        assert_eq!(app.view(), view, ":{line}");
    }
    command(&mut app, "tenant acme");
    assert_eq!(app.tenant.as_deref(), Some("acme"));
    command(&mut app, "tenant all");
    assert_eq!(app.tenant, None);
    let commands = command(&mut app, "bogus");
    assert!(commands.is_empty());
    assert!(flash_text(&app).contains("unknown command :bogus"));
    assert!(!app.quit);
    command(&mut app, "q");
    assert!(app.quit);
}

#[test]
fn the_tenant_filter_scopes_every_list_load() {
    let mut app = app_with(false);
    command(&mut app, "tenant acme");
    let commands = key(&mut app, KeyCode::Char('2'));
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Deliveries { query, .. } if query.tenant_name.as_deref() == Some("acme")))
    );
    let commands = key(&mut app, KeyCode::Char('3'));
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Endpoints { tenant: Some(t), .. } if t == "acme"))
    );
}

#[test]
fn esc_leaves_filter_and_command_mode_without_applying() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "state:dead");
    key(&mut app, KeyCode::Esc);
    assert!(deliveries_screen(&app).query.filter.states.is_empty());
    key(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "q");
    key(&mut app, KeyCode::Esc);
    assert!(!app.quit);
}

// --- help -------------------------------------------------------------------

#[test]
fn question_mark_shows_the_keys_of_the_current_view() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    let commands = key(&mut app, KeyCode::Char('?'));
    assert!(commands.is_empty(), "help needs no data");
    assert!(matches!(app.top(), Screen::Help(h) if h.view == ViewKind::Endpoints));
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(app.stack.len(), 2, "? on help does not stack another");
    let text = screen(&app);
    assert!(text.contains("Keys in Endpoints"));
    assert!(text.contains("pause the endpoint"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), ViewKind::Endpoints);
}

// --- marks, retry and confirmations ----------------------------------------

#[test]
fn space_marks_and_unmarks_rows_keeping_the_cursor_on_the_row() {
    let mut app = on_deliveries(5, false);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(selected(&app), 1, "the cursor stays on the marked row");
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(selected(&app), 2);
    let marked: Vec<String> = deliveries_screen(&app).marked.iter().cloned().collect();
    assert_eq!(
        marked,
        vec![id("dlv_", 1)],
        "the second space unmarked row 2"
    );
    assert!(screen(&app).contains("1 marked"));
}

#[test]
fn r_asks_first_naming_the_target_and_count_with_cancel_focused() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('j'));
    let commands = key(&mut app, KeyCode::Char('r'));
    assert!(commands.is_empty(), "nothing is sent before the answer");
    let question = &confirm(&app).question;
    assert!(question.contains("Retry 1 delivery"), "{question}");
    assert!(question.contains("globex/orders"), "{question}");
    assert!(question.contains("dead after 3 attempts"), "{question}");
    assert!(!confirm(&app).confirm_focused, "Cancel has the focus");
    assert!(screen(&app).contains("[ Cancel ]"));

    // Enter on Cancel cancels.
    let commands = key(&mut app, KeyCode::Enter);
    assert!(commands.is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("cancelled"));

    // Other keys neither answer nor leak to the list underneath.
    key(&mut app, KeyCode::Char('r'));
    for c in ['j', 'y', 'p', 'r', ' '] {
        assert!(key(&mut app, KeyCode::Char(c)).is_empty());
    }
    assert_eq!(selected(&app), 1);
    assert!(matches!(app.mode, Mode::Confirm(_)));

    // Tab to Retry, Enter: the retry is sent.
    key(&mut app, KeyCode::Tab);
    assert!(confirm(&app).confirm_focused);
    assert!(screen(&app).contains("[ Retry ]"));
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&commands),
        vec![&Act::RetryUndelivered(vec![id("dlv_", 1)])],
        "a failed delivery is retried only if still not delivered"
    );
    assert_eq!(app.mode, Mode::Normal);
}

/// Presses `r` on marked rows and answers the re-read with `now`: the
/// marked deliveries as the database has them.
fn retry_marked(app: &mut App, now: Vec<Delivery>) -> Vec<Command> {
    let commands = key(app, KeyCode::Char('r'));
    let (token, ids) = match commands.as_slice() {
        [
            Command::Load {
                token,
                load: Load::Marked { ids },
            },
        ] => (*token, ids.clone()),
        other => panic!("expected the marked rows re-read, got {other:?}"),
    };
    assert!(
        acts(&commands).is_empty(),
        "nothing is sent before the answer"
    );
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::Marked {
            asked: ids.len(),
            rows: now,
            holds: Holds::new(),
        }),
    })
}

#[test]
fn r_on_marked_rows_rereads_them_then_asks_about_all_of_them() {
    let mut app = on_deliveries(5, false);
    for _ in 0..3 {
        key(&mut app, KeyCode::Char(' '));
        key(&mut app, KeyCode::Char('j'));
    }
    retry_marked(&mut app, deliveries(3));
    let confirm = confirm(&app).clone();
    assert!(
        confirm
            .question
            .starts_with("Retry 3 marked deliveries to globex/orders?"),
        "{}",
        confirm.question
    );
    assert_eq!(
        confirm.act,
        Act::RetryUndelivered(vec![id("dlv_", 0), id("dlv_", 1), id("dlv_", 2)])
    );
    key(&mut app, KeyCode::Right);
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(acts(&commands).len(), 1);
    let done = app.update(Msg::Acted(Acted::Done("retried 3 of 3 deliveries".into())));
    assert!(
        deliveries_screen(&app).marked.is_empty(),
        "marks go after the action"
    );
    assert!(!loads(&done).is_empty(), "the list reloads");
}

#[test]
fn marked_rows_delivered_since_are_left_out_and_the_question_says_so() {
    let mut app = on_deliveries(5, false);
    for _ in 0..3 {
        key(&mut app, KeyCode::Char(' '));
        key(&mut app, KeyCode::Char('j'));
    }
    // The list still shows them dead; the database has two delivered.
    let now = vec![
        delivery(0, DeliveryState::Delivered),
        delivery(1, DeliveryState::Dead),
        delivery(2, DeliveryState::Delivered),
    ];
    retry_marked(&mut app, now);
    let confirm = confirm(&app).clone();
    assert!(
        confirm
            .question
            .starts_with("2 of the 3 marked have since been delivered; retry the other 1 delivery"),
        "{}",
        confirm.question
    );
    assert_eq!(confirm.act, Act::RetryUndelivered(vec![id("dlv_", 1)]));
    assert!(!confirm.confirm_focused);
}

#[test]
fn marked_rows_all_delivered_since_ask_nothing_and_say_so() {
    let mut app = on_deliveries(5, false);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char(' '));
    let now = vec![
        delivery(0, DeliveryState::Delivered),
        delivery(1, DeliveryState::Delivered),
    ];
    let commands = retry_marked(&mut app, now);
    assert!(commands.is_empty());
    assert_eq!(app.mode, Mode::Normal, "no question");
    assert_eq!(
        flash_text(&app),
        "all 2 marked have since been delivered: nothing to retry"
    );
}

#[test]
fn r_in_the_detail_view_names_the_delivery_endpoint() {
    let mut app = on_detail(false);
    key(&mut app, KeyCode::Char('r'));
    let confirm = confirm(&app);
    assert!(
        confirm.question.contains("globex/orders"),
        "{}",
        confirm.question
    );
    assert_eq!(confirm.act, Act::RetryUndelivered(vec![id("dlv_", 0)]));
}

#[test]
fn capital_r_counts_the_dead_then_asks_with_the_count() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    let commands = key(&mut app, KeyCode::Char('R'));
    let (token, load) = match commands.as_slice() {
        [Command::Load { token, load }] => (*token, load.clone()),
        other => panic!("expected one count, got {other:?}"),
    };
    assert_eq!(
        load,
        Load::DeadCount {
            endpoint_id: id("ep_", 1),
            label: "globex/orders".into()
        }
    );
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::DeadCount {
            endpoint_id: id("ep_", 1),
            label: "globex/orders".into(),
            count: 1204,
        }),
    });
    let confirm = confirm(&app);
    assert_eq!(
        confirm.question,
        "Retry 1,204 dead deliveries to globex/orders?"
    );
    assert!(!confirm.confirm_focused);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);

    // Nothing dead: no question.
    let commands = key(&mut app, KeyCode::Char('R'));
    let token = match commands.as_slice() {
        [Command::Load { token, .. }] => *token,
        other => panic!("expected one count, got {other:?}"),
    };
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::DeadCount {
            endpoint_id: id("ep_", 1),
            label: "globex/orders".into(),
            count: 0,
        }),
    });
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("no dead deliveries"));
}

#[test]
fn a_long_action_shows_its_progress_until_it_ends() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    app.update(Msg::Progress {
        label: "retrying dead deliveries to globex/orders".into(),
        done: 1000,
        total: 4000,
    });
    assert!(screen(&app).contains("1,000 / 4,000 (25%)"));
    key(&mut app, KeyCode::Char('j'));
    assert!(app.progress.is_some(), "keys still work while it runs");
    app.update(Msg::Acted(Acted::Done("retried 4,000".into())));
    assert!(app.progress.is_none());
}

/// The load `p` sent to count what resuming would send, and its token.
fn resume_check(commands: &[Command]) -> (u64, Load) {
    match commands {
        [Command::Load { token, load }] => (*token, load.clone()),
        other => panic!("expected one resume check, got {other:?}"),
    }
}

fn pause_form(app: &App) -> &super::forms::Form {
    match &app.mode {
        Mode::Form(form) => form,
        other => panic!("expected the pause form, got {other:?}"),
    }
}

#[test]
fn p_on_an_active_endpoint_asks_why_and_how_long_then_to_confirm() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    assert!(
        acts(&key(&mut app, KeyCode::Char('p'))).is_empty(),
        "p never acts at once"
    );
    let form = pause_form(&app);
    assert_eq!(form.title, "Pause globex/orders");
    let names: Vec<&str> = form.fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["reason", "until"]);
    assert!(
        form.fields[1].label.contains("04:00 local time (+")
            || form.fields[1].label.contains("04:00 local time (-"),
        "the until field names the local offset: {}",
        form.fields[1].label
    );
    assert!(screen(&app).contains("Pause globex/orders"));

    type_text(&mut app, "vendor maintenance");
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "30m");
    assert!(
        acts(&key(&mut app, KeyCode::Enter)).is_empty(),
        "Enter asks first"
    );
    let asked = confirm(&app).clone();
    assert!(!asked.confirm_focused, "Cancel has the focus");
    assert_eq!(asked.confirm_label, "Pause");
    assert!(
        asked.question.starts_with("Pause globex/orders until ")
            && asked.question.contains("(in 30m)?")
            && asked.question.ends_with("Reason: vendor maintenance"),
        "{}",
        asked.question
    );
    let Act::Pause {
        id: paused,
        reason,
        until,
    } = &asked.act
    else {
        panic!("expected a pause, got {:?}", asked.act);
    };
    assert_eq!(paused, &id("ep_", 1));
    assert_eq!(reason.as_deref(), Some("vendor maintenance"));
    let until = until.expect("an end");
    let ahead = until - crate::model::now_millis();
    assert!(
        (29 * 60_000..=30 * 60_000).contains(&ahead),
        "{ahead} ms ahead"
    );
    let shown = screen(&app);
    assert!(shown.contains("[ Cancel ]"), "{shown}");
    assert!(shown.contains("vendor maintenance"), "{shown}");

    // Enter on Cancel changes nothing.
    assert!(acts(&key(&mut app, KeyCode::Enter)).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("nothing was changed"));

    // Tab to Pause, Enter: the pause as confirmed.
    key(&mut app, KeyCode::Char('p'));
    type_text(&mut app, "vendor maintenance");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Tab);
    let commands = key(&mut app, KeyCode::Enter);
    match acts(&commands).as_slice() {
        [
            Act::Pause {
                id: paused,
                reason,
                until: None,
            },
        ] => {
            assert_eq!(paused, &id("ep_", 1));
            assert_eq!(reason.as_deref(), Some("vendor maintenance"));
        }
        other => panic!("expected a pause without an end, got {other:?}"),
    }
}

#[test]
fn the_pause_form_refuses_a_bad_end_inline_and_sends_nothing() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "soon");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    let form = pause_form(&app);
    let error = form.fields[1].error.as_deref().unwrap_or_default();
    assert!(error.contains("neither a duration nor a time"), "{error}");
    assert!(
        screen(&app).contains("✗ \"soon\" is neither"),
        "{}",
        screen(&app)
    );
    // A reason over the limit, named under its field.
    ctrl(&mut app, 'u');
    key(&mut app, KeyCode::BackTab);
    type_text(&mut app, &"r".repeat(501));
    key(&mut app, KeyCode::Enter);
    let form = pause_form(&app);
    assert!(
        form.fields[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("longer than"),
        "{:?}",
        form.fields[0].error
    );
    // Esc: nothing was changed.
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn the_pause_question_without_a_reason_or_an_end_says_so() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        confirm(&app).question,
        "Pause globex/orders? Its deliveries are held, none sent or dropped, until someone resumes it. No reason given."
    );
    assert_eq!(
        confirm(&app).act,
        Act::Pause {
            id: id("ep_", 1),
            reason: None,
            until: None
        }
    );
}

#[test]
fn p_on_a_paused_endpoint_counts_what_it_holds_then_asks_naming_it() {
    let mut row = endpoint(2, "billing", EndpointState::Paused);
    row.endpoint.state_reason = Some("vendor maintenance".into());
    row.endpoint.state_changed_at = Some(crate::model::now_millis() - 60_000);
    let mut app = on_endpoints(vec![row.clone()], false);
    let commands = key(&mut app, KeyCode::Char('p'));
    assert!(acts(&commands).is_empty(), "p never acts at once");
    let (token, load) = resume_check(&commands);
    assert_eq!(
        load,
        Load::ResumeCheck {
            endpoint_id: id("ep_", 2)
        }
    );
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::ResumeCheck {
            endpoint: Box::new(row.endpoint.clone()),
            held: 32,
            retrying: 0,
        }),
    });
    let asked = confirm(&app).clone();
    assert!(!asked.confirm_focused, "Cancel has the focus");
    assert_eq!(asked.confirm_label, "Resume");
    assert_eq!(asked.act, Act::Resume(id("ep_", 2)));
    assert!(
        asked.question.starts_with(
            "Resume globex/billing? 32 held deliveries will be sent now, oldest first. Paused at "
        ),
        "{}",
        asked.question
    );
    assert!(
        asked.question.ends_with(": vendor maintenance."),
        "{}",
        asked.question
    );
    // Enter on Cancel: nothing.
    assert!(acts(&key(&mut app, KeyCode::Enter)).is_empty());
    // Again, to Resume.
    let (token, _) = resume_check(&key(&mut app, KeyCode::Char('p')));
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::ResumeCheck {
            endpoint: Box::new(row.endpoint.clone()),
            held: 1,
            retrying: 0,
        }),
    });
    assert!(
        confirm(&app)
            .question
            .contains("1 held delivery will be sent now.")
    );
    key(&mut app, KeyCode::Tab);
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(acts(&commands), vec![&Act::Resume(id("ep_", 2))]);
}

#[test]
fn resuming_a_disabled_endpoint_says_it_re_enables_it_why_and_when() {
    let mut row = endpoint(3, "archive", EndpointState::Disabled);
    row.endpoint.state_reason =
        Some("answered 410 Gone to delivery dlv_01M83K1DCM2DM5CX7MHA4VBXBQ (attempt 1)".into());
    row.endpoint.state_changed_at = Some(crate::model::now_millis() - 5 * 60_000);
    let mut app = on_endpoints(vec![row.clone()], false);
    let (token, _) = resume_check(&key(&mut app, KeyCode::Char('p')));
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::ResumeCheck {
            endpoint: Box::new(row.endpoint.clone()),
            held: 1204,
            retrying: 0,
        }),
    });
    let question = confirm(&app).question.clone();
    assert!(
        question.starts_with("Resume globex/archive? 1,204 held deliveries will be sent now"),
        "{question}"
    );
    assert!(
        question.contains("This re-enables an endpoint that hookline disabled at ")
            && question.ends_with(
                ": answered 410 Gone to delivery dlv_01M83K1DCM2DM5CX7MHA4VBXBQ (attempt 1)."
            ),
        "{question}"
    );
    // The whole question shows: the dialog grows to hold it.
    let shown = screen(&app);
    assert!(shown.contains("(attempt 1)."), "{shown}");
    assert!(shown.contains("[ Cancel ]"), "{shown}");
}

#[test]
fn a_paused_row_says_until_when_before_why() {
    let until = crate::model::now_millis() + 30 * 60_000;
    let mut row = endpoint(2, "billing", EndpointState::Paused);
    row.endpoint.state_reason = Some("vendor maintenance".into());
    row.endpoint.paused_until = Some(until);
    let mut plain = endpoint(3, "crm", EndpointState::Paused);
    plain.endpoint.state_reason = Some("until the vendor calls".into());
    let app = on_endpoints(vec![row, plain], false);
    let shown = screen(&app);
    // The end comes first: the column clips a long reason.
    let expected = format!("until {}: vendor main", crate::ops::local_time_short(until));
    assert!(shown.contains(&expected), "{expected}\n{shown}");
    assert!(
        shown.contains("until the vendor calls") && !shown.contains("until until"),
        "{shown}"
    );
}

#[test]
fn resuming_a_timed_pause_says_it_would_end_by_itself() {
    let now = crate::model::now_millis();
    let mut row = endpoint(2, "billing", EndpointState::Paused);
    row.endpoint.state_changed_at = Some(now - 60_000);
    row.endpoint.paused_until = Some(now + 2 * 3_600_000);
    let mut app = on_endpoints(vec![row.clone()], false);
    let (token, _) = resume_check(&key(&mut app, KeyCode::Char('p')));
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::ResumeCheck {
            endpoint: Box::new(row.endpoint.clone()),
            held: 0,
            retrying: 0,
        }),
    });
    let question = confirm(&app).question.clone();
    assert!(
        question.starts_with(
            "Resume globex/billing? No deliveries are held; new ones will be sent as they come. Paused at "
        ) && question.contains("; it would resume by itself at ")
            && question.ends_with("(in 2h)."),
        "{question}"
    );
}

#[test]
fn resuming_names_retrying_deliveries_apart_they_keep_their_schedule() {
    let row = endpoint(2, "billing", EndpointState::Paused);
    for (held, retrying, says) in [
        (
            0,
            1,
            "Resume globex/billing? 1 retrying delivery keeps its schedule. Paused",
        ),
        (
            3,
            2,
            "Resume globex/billing? 3 held deliveries will be sent now, oldest first; 2 retrying deliveries keep their schedule. Paused",
        ),
        (
            1,
            0,
            "Resume globex/billing? 1 held delivery will be sent now. Paused",
        ),
    ] {
        let mut app = on_endpoints(vec![row.clone()], false);
        let (token, _) = resume_check(&key(&mut app, KeyCode::Char('p')));
        app.update(Msg::Loaded {
            token,
            result: Ok(Loaded::ResumeCheck {
                endpoint: Box::new(row.endpoint.clone()),
                held,
                retrying,
            }),
        });
        let question = &confirm(&app).question;
        assert!(question.starts_with(says), "{question}");
    }
}

#[test]
fn an_endpoint_resumed_meanwhile_is_not_asked_about() {
    let row = endpoint(2, "billing", EndpointState::Paused);
    let mut app = on_endpoints(vec![row.clone()], false);
    let (token, _) = resume_check(&key(&mut app, KeyCode::Char('p')));
    let mut now_active = row.endpoint.clone();
    now_active.state = EndpointState::Active;
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::ResumeCheck {
            endpoint: Box::new(now_active),
            held: 3,
            retrying: 0,
        }),
    });
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("globex/billing is already active"));
}

#[test]
fn p_outside_the_endpoints_view_does_nothing() {
    let mut app = on_deliveries(3, false);
    assert!(key(&mut app, KeyCode::Char('p')).is_empty());
    assert!(app.flash.is_none());
}

// --- forms ------------------------------------------------------------------

#[test]
fn a_bad_pattern_is_refused_inline_and_nothing_is_sent() {
    let mut app = on_subscriptions(false);
    key(&mut app, KeyCode::Char('e'));
    ctrl(&mut app, 'u');
    type_text(&mut app, "order..created");
    let commands = key(&mut app, KeyCode::Enter);
    assert!(commands.is_empty(), "a bad pattern is never sent");
    let Mode::Form(form) = &app.mode else {
        panic!("the form stays open");
    };
    let error = form.fields[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("empty segment"), "{error}");
    assert!(screen(&app).contains("✗ empty segment"));

    // Typing clears the error; a good pattern is sent.
    ctrl(&mut app, 'u');
    type_text(&mut app, "order.updated");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&commands),
        vec![&Act::EditSubscription {
            id: id("sub_", 1),
            pattern: "order.updated".into(),
            description: String::new(),
        }]
    );
    // Keys while it is being saved are ignored.
    assert!(key(&mut app, KeyCode::Char('x')).is_empty());

    // The store can still refuse it: the reason lands on the field.
    app.update(Msg::Acted(Acted::Refused {
        field: "topic".into(),
        reason: "already subscribed".into(),
    }));
    let Mode::Form(form) = &app.mode else {
        panic!("the form stays open after a refusal");
    };
    assert!(!form.submitting);
    assert_eq!(form.fields[0].error.as_deref(), Some("already subscribed"));

    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(acts(&commands).len(), 1);
    app.update(Msg::Acted(Acted::Done(
        "orders now receives order.updated".into(),
    )));
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("now receives"));
}

#[test]
fn a_bad_url_is_refused_inline() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Char('e'));
    ctrl(&mut app, 'u');
    type_text(&mut app, "ftp://erp.globex.example/hooks");
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "soon");
    let commands = key(&mut app, KeyCode::Enter);
    assert!(commands.is_empty());
    let Mode::Form(form) = &app.mode else {
        panic!("the form stays open");
    };
    let url = form.fields[0].error.as_deref().unwrap_or_default();
    assert!(url.contains("not an HTTP(S) URL"), "{url}");
    assert!(form.fields[1].error.is_some(), "the timeout is checked too");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
    assert!(flash_text(&app).contains("nothing was saved"));
}

#[test]
fn n_opens_a_new_subscription_for_the_endpoint_shown() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    key(&mut app, KeyCode::Char('s'));
    assert!(
        matches!(app.top(), Screen::Subscriptions(s) if s.endpoint.as_ref().map(|e| e.0.clone()) == Some(id("ep_", 1)))
    );
    answer(
        &mut app,
        Loaded::Subscriptions {
            rows: Vec::new(),
            complete: true,
        },
    );
    key(&mut app, KeyCode::Char('n'));
    let Mode::Form(form) = &app.mode else {
        panic!("n opens a form");
    };
    assert_eq!(form.fields[0].input.text(), id("ep_", 1));
    assert_eq!(
        form.focus, 1,
        "the endpoint is filled in: the pattern is next"
    );
    type_text(&mut app, "order.*");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&commands),
        vec![&Act::NewSubscription {
            endpoint: id("ep_", 1),
            pattern: "order.*".into(),
            description: String::new(),
        }]
    );
}

#[test]
fn d_asks_before_deleting_a_subscription() {
    let mut app = on_subscriptions(false);
    let commands = key(&mut app, KeyCode::Char('d'));
    assert!(commands.is_empty());
    let confirm = confirm(&app);
    assert!(
        confirm.question.contains("orders to order.*"),
        "{}",
        confirm.question
    );
    assert_eq!(confirm.act, Act::DeleteSubscription(id("sub_", 1)));
    assert!(!confirm.confirm_focused);
}

// --- read-only --------------------------------------------------------------

/// An app on `view` with rows to act on.
fn on_view(view: ViewKind, read_only: bool) -> App {
    match view {
        ViewKind::Deliveries => on_deliveries(3, read_only),
        ViewKind::Detail => on_detail(read_only),
        ViewKind::Endpoints => {
            // With retrying work, so that retry now has something to ask about.
            let mut row = endpoint(1, "orders", EndpointState::Active);
            row.queue = Some(EndpointQueue {
                retrying: 2,
                ..EndpointQueue::default()
            });
            on_endpoints(vec![row], read_only)
        }
        ViewKind::Subscriptions => on_subscriptions(read_only),
        ViewKind::Event => on_event(3, read_only),
        ViewKind::EndpointDetail => {
            let mut app = on_endpoints(
                vec![endpoint(1, "orders", EndpointState::Active)],
                read_only,
            );
            key(&mut app, KeyCode::Enter);
            answer(&mut app, endpoint_detail_loaded(1, "orders"));
            app
        }
        other => panic!("no mutating keys expected in {other:?}"),
    }
}

fn binding_key(k: keymap::Key) -> KeyEvent {
    match k {
        keymap::Key::Char(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        keymap::Key::Code(code) => KeyEvent::new(code, KeyModifiers::NONE),
        keymap::Key::Ctrl(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL),
    }
}

#[test]
fn read_only_refuses_every_mutating_key_and_says_why() {
    let mut checked = 0;
    for binding in KEYMAP.iter().filter(|b| b.mutating) {
        let Scope::Views(views) = binding.scope else {
            panic!(
                "a mutating key should belong to views: {:?}",
                binding.action
            );
        };
        for &view in views {
            for &k in binding.keys {
                // Writable: the key does something (opens a question or a
                // form, or sends an action or a count), so the check below can fail.
                let mut writable = on_view(view, false);
                let commands = writable.update(Msg::Key(binding_key(k)));
                assert!(
                    !commands.is_empty() || writable.mode != Mode::Normal,
                    "{:?} in {view:?} does nothing even when writable",
                    binding.action
                );

                let mut app = on_view(view, true);
                let before = app.stack.len();
                let commands = app.update(Msg::Key(binding_key(k)));
                assert!(
                    commands.is_empty(),
                    "{:?} in {view:?} sent {commands:?}",
                    binding.action
                );
                assert_eq!(app.mode, Mode::Normal);
                assert_eq!(app.stack.len(), before);
                let flash = flash_text(&app);
                assert!(flash.starts_with("read-only:"), "{flash}");
                assert!(
                    screen(&app).contains("read-only:"),
                    "the refusal is on screen"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 9, "only {checked} mutating keys checked");
}

#[test]
fn read_only_hides_mutating_keys_from_the_hint_bar_and_help() {
    for view in [
        ViewKind::Deliveries,
        ViewKind::Detail,
        ViewKind::Endpoints,
        ViewKind::Subscriptions,
    ] {
        let mutating: Vec<&keymap::Binding> = KEYMAP
            .iter()
            .filter(|b| b.mutating && matches!(b.scope, Scope::Views(v) if v.contains(&view)))
            .collect();
        let mut writable = on_view(view, false);
        let mut app = on_view(view, true);
        let hints = |app: &App| {
            let text = screen(app);
            text.lines().last().unwrap_or_default().to_string()
        };
        let (shown, hidden) = (hints(&writable), hints(&app));
        assert!(screen(&app).contains("READ-ONLY"));
        for binding in &mutating {
            if let Some(hint) = binding.hint {
                let label = format!("<{}> {hint}", binding.keys[0].label());
                assert!(
                    shown.contains(&label),
                    "{view:?}: writable hint bar lacks {label}: {shown}"
                );
                assert!(
                    !hidden.contains(&label),
                    "{view:?}: read-only shows {label}"
                );
            }
        }
        key(&mut writable, KeyCode::Char('?'));
        key(&mut app, KeyCode::Char('?'));
        let (full, limited) = (screen(&writable), screen(&app));
        for binding in &mutating {
            assert!(
                full.contains(binding.help),
                "{view:?}: help lacks {:?}",
                binding.help
            );
            assert!(
                !limited.contains(binding.help),
                "{view:?}: read-only help shows {:?}",
                binding.help
            );
        }
        assert!(limited.contains("Read-only: keys that change anything are disabled."));
    }
}

// --- follow and freeze ------------------------------------------------------

#[test]
fn f_freezes_the_list_and_follows_again() {
    let mut app = on_deliveries(3, false);
    assert!(
        deliveries_screen(&app).follow,
        "the deliveries view follows"
    );
    key(&mut app, KeyCode::Char('f'));
    assert!(!deliveries_screen(&app).follow);
    assert!(flash_text(&app).contains("frozen"));
    assert!(screen(&app).contains("frozen"));
    // Any load still on its way lands; then a refresh leaves the list alone.
    if app.pending.contains_key(&Slot::Top) {
        answer(&mut app, rows_loaded(deliveries(3), None));
    }
    app.pending.remove(&Slot::Header);
    let commands = app.update(Msg::Refresh);
    assert!(
        !loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Deliveries { .. })),
        "a frozen list is not reloaded: {commands:?}"
    );
    let commands = key(&mut app, KeyCode::Char('f'));
    assert!(deliveries_screen(&app).follow);
    assert!(flash_text(&app).contains("following"));
    assert!(
        loads(&commands).iter().any(|l| matches!(
            l,
            Load::Deliveries {
                cursor: None,
                how: ListLoad::Replace,
                ..
            }
        )),
        "following reloads the newest rows"
    );
}

#[test]
fn following_keeps_the_cursor_on_the_same_delivery_as_new_rows_arrive() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('j'));
    let commands = app.update(Msg::Refresh);
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Deliveries { .. }))
    );
    let mut newer = vec![delivery(100, DeliveryState::Pending)];
    newer.extend(deliveries(3));
    answer(&mut app, rows_loaded(newer, None));
    let screen = deliveries_screen(&app);
    assert_eq!(
        screen.rows.items[0].id,
        id("dlv_", 100),
        "new rows at the top"
    );
    assert_eq!(
        screen.rows.selected_item().map(|d| d.id.clone()),
        Some(id("dlv_", 1))
    );
}

// --- loads and the database -------------------------------------------------

#[test]
fn a_load_for_a_screen_that_is_gone_is_ignored() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('2'));
    let stale = *app.pending.get(&Slot::Top).expect("deliveries load");
    key(&mut app, KeyCode::Char('3'));
    app.update(Msg::Loaded {
        token: stale,
        result: Ok(rows_loaded(deliveries(3), None)),
    });
    assert_eq!(app.view(), ViewKind::Endpoints);
    assert!(matches!(app.top(), Screen::Endpoints(s) if !s.rows.loaded));
}

#[test]
fn an_unreachable_database_is_shown_until_a_load_succeeds() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('2'));
    let token = *app.pending.get(&Slot::Top).expect("deliveries load");
    app.update(Msg::Loaded {
        token,
        result: Err("database is locked".into()),
    });
    assert_eq!(app.db_error.as_deref(), Some("database is locked"));
    assert!(screen(&app).contains("database unreachable: database is locked (retrying)"));
    let commands = app.update(Msg::Refresh);
    assert!(
        loads(&commands)
            .iter()
            .any(|l| matches!(l, Load::Deliveries { .. })),
        "it tries again"
    );
    answer(&mut app, rows_loaded(deliveries(1), None));
    assert_eq!(app.db_error, None);
}

#[test]
fn nothing_changed_means_nothing_to_draw() {
    let mut app = on_deliveries(3, false);
    app.dirty = false;
    let commands = app.update(Msg::Refresh);
    let token = commands
        .iter()
        .find_map(|c| match c {
            Command::Load {
                token,
                load: Load::Deliveries { .. },
            } => Some(*token),
            _ => None,
        })
        .expect("the followed list reloads");
    app.update(Msg::Loaded {
        token,
        result: Ok(rows_loaded(deliveries(3), None)),
    });
    assert!(!app.dirty, "the same rows again: no redraw");
    app.update(Msg::Refresh);
    let token = *app.pending.get(&Slot::Top).expect("reload");
    app.update(Msg::Loaded {
        token,
        result: Ok(rows_loaded(deliveries(4), None)),
    });
    assert!(app.dirty, "a new row: redraw");
}

#[test]
fn q_and_ctrl_c_quit_but_not_while_typing() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.quit, "q is text in the filter");
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
    let mut app = on_deliveries(3, false);
    ctrl(&mut app, 'c');
    assert!(app.quit);
}

/// A first open shows the first rows at once and then asks for the whole
/// list, keeping the selection; a whole list asks for nothing more.
#[test]
fn a_first_page_of_endpoints_is_shown_and_the_rest_asked_for() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('3'));
    let first: Vec<EndpointRow> = (1..=3)
        .map(|n| endpoint(n, &format!("e{n}"), EndpointState::Active))
        .collect();
    let next = answer(
        &mut app,
        Loaded::Endpoints {
            rows: first.clone(),
            complete: false,
        },
    );
    assert!(app.dirty, "the first rows are drawn");
    assert!(
        matches!(next.as_slice(), [Command::Load { load: Load::Endpoints { health_for, .. }, .. }] if health_for.len() == 3),
        "asks for the whole list with the shown rows' health: {next:?}"
    );
    key(&mut app, KeyCode::Char('j'));
    let mut whole = first;
    whole.push(endpoint(4, "e4", EndpointState::Active));
    let next = answer(
        &mut app,
        Loaded::Endpoints {
            rows: whole,
            complete: true,
        },
    );
    assert!(next.is_empty(), "{next:?}");
    let Screen::Endpoints(s) = app.top() else {
        panic!("still on endpoints");
    };
    assert_eq!(s.rows.items.len(), 4);
    assert_eq!(s.rows.selected, 1, "the selection stayed on its row");
}

#[test]
fn subscriptions_ask_for_a_first_page_only_until_something_is_shown() {
    let mut app = app_with(false);
    let open = key(&mut app, KeyCode::Char('4'));
    assert!(
        open.iter().any(|c| matches!(
            c,
            Command::Load {
                load: Load::Subscriptions {
                    first_page: true,
                    ..
                },
                ..
            }
        )),
        "{open:?}"
    );
    let next = answer(
        &mut app,
        Loaded::Subscriptions {
            rows: vec![subscription(1, "order.*")],
            complete: false,
        },
    );
    assert!(
        matches!(
            next.as_slice(),
            [Command::Load {
                load: Load::Subscriptions {
                    first_page: false,
                    ..
                },
                ..
            }]
        ),
        "{next:?}"
    );
}

// --- secrets -------------------------------------------------------------------

/// An endpoint row whose URL has a password and whose headers carry tokens.
fn endpoint_with_secrets() -> EndpointRow {
    let mut row = endpoint(1, "vault", EndpointState::Active);
    row.endpoint.url = "https://bob:hunter2-pw@erp.globex.example/hooks".to_string();
    row.endpoint.headers = vec![
        (
            "authorization".to_string(),
            "Bearer tok-secret-77".to_string(),
        ),
        ("x-api-key".to_string(), "key-secret-88".to_string()),
        ("x-team".to_string(), "payments".to_string()),
    ];
    row
}

fn assert_nothing_plain(text: &str) {
    for secret in [
        "hunter2-pw",
        "tok-secret-77",
        "key-secret-88",
        "PZIo2LaLaSw",
    ] {
        assert!(!text.contains(secret), "{secret} on screen:\n{text}");
    }
}

#[test]
fn the_edit_form_shows_secrets_masked_and_sends_what_it_shows() {
    let mut app = on_endpoints(vec![endpoint_with_secrets()], false);
    assert_nothing_plain(&screen(&app));
    key(&mut app, KeyCode::Char('e'));
    let shown = screen(&app);
    assert!(
        shown.contains("https://bob:****@erp.globex.example/hooks"),
        "{shown}"
    );
    assert!(shown.contains("authorization: Bearer ****"), "{shown}");
    assert!(shown.contains("x-team: payments"), "{shown}");
    assert_nothing_plain(&shown);
    // Saved unchanged, the masks go to `ops`, which keeps what is behind them.
    let commands = key(&mut app, KeyCode::Enter);
    match commands.as_slice() {
        [Command::Act(Act::EditEndpoint { url, headers, .. })] => {
            assert_eq!(url, "https://bob:****@erp.globex.example/hooks");
            assert!(headers.contains("x-api-key: ****"), "{headers}");
        }
        other => panic!("expected one edit, got {other:?}"),
    }
}

#[test]
fn v_reveals_the_secrets_through_ops_until_the_next_key() {
    let mut app = on_endpoints(vec![endpoint_with_secrets()], false);
    let commands = key(&mut app, KeyCode::Char('v'));
    assert_eq!(
        commands,
        [Command::Act(Act::RevealSecrets(id("ep_", 1)))],
        "the reveal goes through ops, which audits it"
    );
    assert_nothing_plain(&screen(&app));
    let revealed = endpoint_with_secrets().endpoint;
    app.update(Msg::Acted(Acted::Revealed(Box::new(revealed))));
    assert!(matches!(app.mode, Mode::Reveal(_)));
    let shown = screen(&app);
    for plain in [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "https://bob:hunter2-pw@erp.globex.example/hooks",
        "authorization: Bearer tok-secret-77",
        "x-api-key: key-secret-88",
    ] {
        assert!(shown.contains(plain), "{plain} not shown:\n{shown}");
    }
    assert!(
        flash_text(&app).contains("audit log"),
        "{}",
        flash_text(&app)
    );
    // Any key hides them again, and does nothing else.
    let commands = key(&mut app, KeyCode::Char('d'));
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(app.mode, Mode::Normal);
    assert_nothing_plain(&screen(&app));
}

#[test]
fn read_only_hides_and_refuses_the_reveal() {
    let mut app = on_endpoints(vec![endpoint_with_secrets()], true);
    assert!(key(&mut app, KeyCode::Char('v')).is_empty());
    assert!(
        flash_text(&app).contains("read-only"),
        "{}",
        flash_text(&app)
    );
    assert!(
        !keymap::help(ViewKind::Endpoints, true)
            .iter()
            .any(|b| b.action == keymap::Action::RevealSecrets)
    );
}

/// The `b` panel's data: a breaker open since a minute ago with two
/// transitions, on an endpoint limited to 10/s.
fn breaker_panel() -> Box<crate::console::screens::BreakerPanel> {
    use crate::model::{BreakerMode, BreakerState, RateLimit};
    use crate::store::{Breaker, BreakerTransition};
    let now = now_millis();
    let mut endpoint = endpoint(1, "orders", EndpointState::Active).endpoint;
    endpoint.rate_limit = Some(RateLimit::new(10, None));
    let transition = |n: usize, from, to, reason: &str, actor: Option<&str>| BreakerTransition {
        id: id("brk_", n),
        endpoint_id: id("ep_", 1),
        from,
        to,
        reason: reason.to_string(),
        figures: serde_json::json!({}),
        actor: actor.map(str::to_string),
        at: now - 60_000 * n as i64,
    };
    Box::new(crate::console::screens::BreakerPanel {
        endpoint,
        breaker: Breaker {
            endpoint_id: id("ep_", 1),
            state: BreakerState::Open,
            mode: BreakerMode::Auto,
            opened_at: Some(now - 60_000),
            next_probe_at: Some(now + 30_000),
            cooldown_ms: 60_000,
            consecutive_failures: 20,
            window_attempts: 24,
            window_failures: 22,
            last_answered_at: None,
            wait_until: None,
        },
        transitions: vec![
            transition(
                1,
                BreakerState::HalfOpen,
                BreakerState::Open,
                "the probe failed; next probe in 1m",
                None,
            ),
            transition(
                2,
                BreakerState::Closed,
                BreakerState::Open,
                "20 failures in a row",
                None,
            ),
        ],
    })
}

#[test]
fn b_shows_the_breaker_and_forces_it_only_after_asking() {
    use crate::model::BreakerMode;
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], false);
    let commands = key(&mut app, KeyCode::Char('b'));
    let [Command::Load { token, load }] = commands.as_slice() else {
        panic!("b reads the breaker first: {commands:?}");
    };
    assert_eq!(
        load,
        &Load::Breaker {
            endpoint_id: id("ep_", 1)
        }
    );
    app.update(Msg::Loaded {
        token: *token,
        result: Ok(Loaded::Breaker(breaker_panel())),
    });
    assert!(matches!(app.mode, Mode::Breaker(_)));
    let shown = screen(&app);
    for words in [
        "Breaker of globex/orders",
        "open · auto · last opened",
        "next probe",
        "22 of 24 attempts failed · 20 failures in a row",
        "rate limit  10/s",
        "transitions, newest first",
        "half-open → open",
        "20 failures in a row",
        "force open",
    ] {
        assert!(shown.contains(words), "{words:?} not shown:\n{shown}");
    }
    // `c`: asks, naming what it does; nothing is sent before Enter on it.
    assert!(key(&mut app, KeyCode::Char('c')).is_empty());
    let Mode::Confirm(asked) = &app.mode else {
        panic!("c asks first: {:?}", app.mode);
    };
    assert!(asked.question.contains("closed"), "{}", asked.question);
    assert_eq!(
        asked.act,
        Act::SetBreaker {
            id: id("ep_", 1),
            mode: BreakerMode::Closed
        }
    );
    key(&mut app, KeyCode::Tab);
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        [Command::Act(Act::SetBreaker {
            id: id("ep_", 1),
            mode: BreakerMode::Closed
        })]
    );
}

#[test]
fn read_only_shows_the_breaker_but_never_forces_it() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Active)], true);
    let commands = key(&mut app, KeyCode::Char('b'));
    let [Command::Load { token, .. }] = commands.as_slice() else {
        panic!("b reads the breaker under --read-only too: {commands:?}");
    };
    app.update(Msg::Loaded {
        token: *token,
        result: Ok(Loaded::Breaker(breaker_panel())),
    });
    assert!(!screen(&app).contains("force open"));
    assert!(key(&mut app, KeyCode::Char('o')).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(
        flash_text(&app).contains("read-only"),
        "{}",
        flash_text(&app)
    );
}

#[test]
fn the_endpoints_view_says_what_protection_holds() {
    let mut open = endpoint(1, "orders", EndpointState::Active);
    open.protection = Some(Hold::BreakerOpen {
        next_probe_at: Some(now_millis() + 60_000),
    });
    let mut limited = endpoint(2, "invoices", EndpointState::Active);
    limited.protection = Some(Hold::RateLimited { per_second: 10 });
    let app = on_endpoints(vec![open, limited], false);
    let shown = screen(&app);
    for words in [
        "breaker",
        "held: breaker open, next probe",
        "limited",
        "held: rate limit 10/s",
    ] {
        assert!(shown.contains(words), "{words:?} not shown:\n{shown}");
    }
}

// --- per-screen cursors, the status line and help's end ----------------------

fn endpoint_selected(app: &App) -> usize {
    match app.top() {
        Screen::Endpoints(s) => s.rows.selected,
        other => panic!("expected the endpoints, got {:?}", other.kind()),
    }
}

#[test]
fn each_screen_keeps_its_cursor_when_left_and_returned_to() {
    let rows: Vec<EndpointRow> = (1..=5)
        .map(|n| endpoint(n, &format!("ep{n}"), EndpointState::Active))
        .collect();
    let mut app = on_endpoints(rows.clone(), false);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('2'));
    answer(&mut app, rows_loaded(deliveries(5), None));
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(selected(&app), 1);

    let commands = key(&mut app, KeyCode::Char('3'));
    assert_eq!(endpoint_selected(&app), 2, "back on the third endpoint");
    assert_eq!(loads(&commands).len(), 1, "the endpoints are read again");
    answer(
        &mut app,
        Loaded::Endpoints {
            rows,
            complete: true,
        },
    );
    assert_eq!(endpoint_selected(&app), 2, "fresh rows keep the cursor");
    assert!(screen(&app).contains("ep3"));

    key(&mut app, KeyCode::Char('2'));
    assert_eq!(selected(&app), 1, "the deliveries kept theirs too");
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(selected(&app), 1, "via the overview as well");
}

#[test]
fn a_new_tenant_scope_forgets_the_screens_kept_for_the_old_one() {
    let rows: Vec<EndpointRow> = (1..=3)
        .map(|n| endpoint(n, &format!("ep{n}"), EndpointState::Active))
        .collect();
    let mut app = on_endpoints(rows, false);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('2'));
    command(&mut app, "tenant acme");
    key(&mut app, KeyCode::Char('3'));
    assert_eq!(endpoint_selected(&app), 0);
    assert!(matches!(app.top(), Screen::Endpoints(s) if !s.rows.loaded));
}

#[test]
fn errors_stay_until_the_next_key_and_information_expires() {
    let mut app = on_deliveries(3, false);
    app.flash("retry failed: database is locked", true);
    if let Some(flash) = &mut app.flash {
        flash.at -= 60_000;
    }
    app.update(Msg::Refresh);
    assert_eq!(flash_text(&app), "retry failed: database is locked");
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(flash_text(&app), "", "the next key clears the error");

    app.flash("frozen", false);
    if let Some(flash) = &mut app.flash {
        flash.at -= 60_000;
    }
    app.update(Msg::Refresh);
    assert_eq!(flash_text(&app), "", "old information goes by itself");
}

#[test]
fn a_long_status_message_wraps_into_the_strip_whole() {
    let mut app = App::new("test.db".to_string(), false, (80, 24));
    app.start();
    key(&mut app, KeyCode::Char('2'));
    answer(&mut app, rows_loaded(deliveries(3), None));
    let message = "retry refused: appliance-catalog/price-comparison is paused \
                   (vendor maintenance until 14:00 UTC); resume it with p on Endpoints first";
    app.flash(message, true);
    let text = screen(&app);
    let lines: Vec<&str> = text.lines().collect();
    let status: Vec<&str> = lines[lines.len() - 3..lines.len() - 1]
        .iter()
        .map(|l| l.trim_end())
        .collect();
    assert_eq!(status.join(" "), message, "{text}");
    assert!(
        lines[lines.len() - 4].starts_with("endpoint globex/orders"),
        "the strip keeps the line the message does not need:\n{text}"
    );
    assert!(text.contains("<r> retry"), "the hints stay:\n{text}");
}

fn detail_scroll(app: &App) -> u16 {
    match app.top() {
        Screen::Detail(s) => s.scroll,
        other => panic!("expected the detail, got {:?}", other.kind()),
    }
}

#[test]
fn the_detail_scrolls_only_as_far_as_its_last_row() {
    let mut app = on_deliveries(1, false);
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::Enter);
    let mut long = detail(delivery(0, DeliveryState::Dead));
    let fields: Vec<String> = (0..40).map(|n| format!("\"field_{n:02}\":{n}")).collect();
    long.event.payload = format!("{{{}}}", fields.join(","));
    answer(
        &mut app,
        Loaded::Detail {
            detail: Box::new(long),
            hold: None,
        },
    );
    key(&mut app, KeyCode::Char('G'));
    let text = screen(&app);
    assert!(text.contains("field_39"), "the last row shows:\n{text}");
    assert!(!text.contains("field_00"), "scrolled down:\n{text}");
    let end = detail_scroll(&app);
    assert!(end > 0);
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(detail_scroll(&app), end, "j at the end stays");
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(detail_scroll(&app), end - 1, "k moves at once");
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(detail_scroll(&app), 0);
}

#[test]
fn help_scrolls_only_as_far_as_its_last_line() {
    let mut app = on_deliveries(3, false);
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::Char('?'));
    key(&mut app, KeyCode::Char('G'));
    let text = screen(&app);
    let body: Vec<&str> = text.lines().skip(2).take(20).collect();
    assert!(
        body.last().is_some_and(|l| l.contains("esc cancels")),
        "the last line of help sits at the bottom:\n{text}"
    );
    let scroll = |app: &App| match app.top() {
        Screen::Help(h) => h.scroll,
        _ => panic!("not on help"),
    };
    let end = scroll(&app);
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(scroll(&app), end, "j at the end stays");
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(scroll(&app), end - 1);
}

#[test]
fn a_typed_command_opens_its_screen_afresh() {
    let rows: Vec<EndpointRow> = (1..=3)
        .map(|n| endpoint(n, &format!("ep{n}"), EndpointState::Active))
        .collect();
    let mut app = on_endpoints(rows, false);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('2'));
    command(&mut app, "endpoints");
    assert_eq!(endpoint_selected(&app), 0);
    assert!(matches!(app.top(), Screen::Endpoints(s) if !s.rows.loaded));
}

// --- held work, the dispatcher banner, empty, slow and failed loads ---------

/// The header as loaded: `alive` dispatchers, the last seen `ago` ms ago.
fn header(app: &mut App, alive: usize, ago: Option<i64>, summary: QueueSummary) {
    let token = *app.pending.get(&Slot::Header).expect("a header load");
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::Header {
            summary,
            dispatchers_alive: alive,
            last_seen_ago: ago,
        }),
    });
}

fn paused_holds() -> Holds {
    Holds::from([(id("ep_", 1), Hold::EndpointPaused)])
}

#[test]
fn held_rows_say_what_holds_them_and_other_rows_do_not() {
    let mut app = app_with(false);
    key(&mut app, KeyCode::Char('2'));
    let mut other = delivery(3, DeliveryState::Pending);
    other.endpoint_id = id("ep_", 2);
    other.endpoint_name = "billing".into();
    let rows = vec![
        delivery(0, DeliveryState::Pending),
        delivery(1, DeliveryState::Retrying),
        delivery(2, DeliveryState::Dead),
        other,
    ];
    answer(
        &mut app,
        Loaded::Deliveries {
            rows,
            older: None,
            newer: None,
            how: ListLoad::Replace,
            holds: paused_holds(),
        },
    );
    let text = screen(&app);
    let line = |needle: &str| -> String {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    assert!(text.contains("○ pending · held: paused"), "{text}");
    assert!(text.contains("↻ retrying · held: paused"), "{text}");
    assert!(!line("✗ dead").contains("held"), "dead work is not held");
    assert!(
        !line("billing").contains("held"),
        "another endpoint's work is not"
    );
    // At 80 columns the reason keeps the state's symbol and takes its word.
    app.update(Msg::Resize(80, 24));
    let narrow = screen(&app);
    assert!(narrow.contains("○ held: paused"), "{narrow}");
    assert!(narrow.contains("↻ held: paused"), "{narrow}");
    app.update(Msg::Resize(SIZE.0, SIZE.1));

    // The question before retrying a held one says it will wait.
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('r'));
    let question = &confirm(&app).question;
    assert!(
        question.ends_with(
            "Endpoint globex/orders is paused: the retry will wait until it is resumed."
        ),
        "{question}"
    );
}

#[test]
fn the_detail_of_a_held_delivery_says_what_holds_it() {
    let mut app = on_deliveries(1, false);
    key(&mut app, KeyCode::Enter);
    answer(
        &mut app,
        Loaded::Detail {
            detail: Box::new(detail(delivery(0, DeliveryState::Pending))),
            hold: Some(Hold::EndpointDisabled),
        },
    );
    assert!(
        screen(&app).contains("held: endpoint disabled: nothing is sent until it is enabled again"),
        "{}",
        screen(&app)
    );
}

#[test]
fn the_overview_counts_held_work_and_endpoints_show_a_held_backlog() {
    let mut app = app_with(false);
    let summary = QueueSummary {
        pending: 31,
        pending_held: 17,
        retrying: 4,
        ..QueueSummary::default()
    };
    header(&mut app, 1, Some(0), summary);
    let text = screen(&app);
    assert!(text.contains("31 (17 held)"), "{text}");
    assert!(!text.contains("4 (0 held)"), "nothing held, nothing said");

    let mut paused = endpoint(1, "orders", EndpointState::Paused);
    paused.queue = Some(EndpointQueue {
        pending: 12,
        ..EndpointQueue::default()
    });
    let app = on_endpoints(vec![paused], false);
    assert!(screen(&app).contains("12 held"), "{}", screen(&app));
}

#[test]
fn capital_r_on_a_paused_endpoint_says_the_retry_will_wait() {
    let mut app = on_endpoints(vec![endpoint(1, "orders", EndpointState::Paused)], false);
    let commands = key(&mut app, KeyCode::Char('R'));
    let [Command::Load { token, .. }] = commands.as_slice() else {
        panic!("expected one count, got {commands:?}");
    };
    app.update(Msg::Loaded {
        token: *token,
        result: Ok(Loaded::DeadCount {
            endpoint_id: id("ep_", 1),
            label: "globex/orders".into(),
            count: 2,
        }),
    });
    assert_eq!(
        confirm(&app).question,
        "Retry 2 dead deliveries to globex/orders? Endpoint globex/orders is paused: the retry will wait until it is resumed."
    );
}

#[test]
fn no_dispatcher_alive_is_a_banner_with_when_one_was_last_seen() {
    let mut app = app_with(false);
    header(
        &mut app,
        0,
        Some(4 * 60_000 + 5_000),
        QueueSummary::default(),
    );
    let text = screen(&app);
    let second_line = text.lines().nth(1).unwrap_or_default();
    assert!(
        second_line.contains("no dispatcher alive (last seen 4m ago): nothing is being delivered"),
        "its own line: {text}"
    );
    let with_banner = app.body_rows();

    app.update(Msg::Refresh);
    header(&mut app, 0, None, QueueSummary::default());
    assert!(screen(&app).contains("no dispatcher alive (never seen): nothing is being delivered"));

    app.update(Msg::Refresh);
    header(&mut app, 1, Some(0), QueueSummary::default());
    assert!(!screen(&app).contains("no dispatcher alive"));
    assert_eq!(app.body_rows(), with_banner + 1, "the banner took a row");
}

#[test]
fn an_empty_filtered_list_says_nothing_matches_the_filter() {
    let mut app = app_with(false);
    command(&mut app, "failed");
    answer(&mut app, rows_loaded(Vec::new(), None));
    let text = screen(&app);
    assert!(text.contains("no deliveries matching state:dead"), "{text}");
    assert!(!text.contains("loading…"));
}

#[test]
fn a_refused_load_says_why_in_the_list() {
    let mut app = app_with(false);
    command(&mut app, "ep nosuch");
    answer(
        &mut app,
        Loaded::Refused("endpoint: no endpoint \"nosuch\"".into()),
    );
    let text = screen(&app);
    assert!(
        text.contains(
            "could not load deliveries matching endpoint:nosuch: endpoint: no endpoint \"nosuch\""
        ),
        "{text}"
    );
    assert_eq!(app.db_error, None, "the database answered");
    // A later success clears it.
    app.update(Msg::Refresh);
    answer(&mut app, rows_loaded(deliveries(1), None));
    assert!(!screen(&app).contains("could not load"));
}

#[test]
fn a_slow_load_says_what_it_waits_for() {
    let mut app = app_with(false);
    command(&mut app, "failed");
    assert!(screen(&app).contains("loading…"));
    if let Screen::Deliveries(s) = app.top_mut() {
        s.rows.loading_since = Some(now_millis() - 1_500);
    }
    app.dirty = false;
    app.update(Msg::Refresh);
    assert!(app.dirty, "turning slow is drawn");
    let text = screen(&app);
    assert!(
        text.contains("still waiting for the database to list deliveries matching state:dead"),
        "{text}"
    );
}

/// A delivery's detail, then Enter: its event, loaded with a fan-out of
/// `count` deliveries and a payload of 60 lines.
fn on_event(count: usize, read_only: bool) -> App {
    let mut app = on_detail(read_only);
    let commands = key(&mut app, KeyCode::Enter);
    let event_id = id("msg_", 0);
    assert_eq!(
        loads(&commands),
        vec![&Load::Event {
            id: event_id.clone()
        }]
    );
    let mut event = detail(delivery(0, DeliveryState::Dead)).event;
    event.payload = format!(
        "[{}]",
        (0..60).map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    );
    answer(
        &mut app,
        Loaded::Event {
            fanout: Box::new(crate::store::EventFanout {
                event,
                tenant_name: Some("acme".to_string()),
                deliveries: deliveries(count),
                more: false,
            }),
            holds: Holds::new(),
        },
    );
    app
}

fn event_screen(app: &App) -> &crate::console::screens::EventScreen {
    match app.top() {
        Screen::Event(s) => s,
        other => panic!("not on an event: {:?}", other.kind()),
    }
}

#[test]
fn on_an_event_j_walks_the_fan_out_then_scrolls_the_payload_and_k_comes_back() {
    let mut app = on_event(3, false);
    assert_eq!(app.view(), ViewKind::Event);
    for _ in 0..2 {
        key(&mut app, KeyCode::Char('j'));
    }
    assert_eq!(
        (event_screen(&app).selected, event_screen(&app).scroll),
        (2, 0)
    );
    for _ in 0..5 {
        key(&mut app, KeyCode::Char('j'));
    }
    assert_eq!(event_screen(&app).selected, 2, "past the last endpoint…");
    assert_eq!(event_screen(&app).scroll, 5, "…it scrolls on");
    for _ in 0..5 {
        key(&mut app, KeyCode::Char('k'));
    }
    assert_eq!(
        (event_screen(&app).selected, event_screen(&app).scroll),
        (2, 0)
    );
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(event_screen(&app).selected, 1);
    key(&mut app, KeyCode::Char('G'));
    assert!(event_screen(&app).scroll > 40, "the payload's end");
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(
        (event_screen(&app).selected, event_screen(&app).scroll),
        (0, 0)
    );
}

#[test]
fn enter_on_a_fan_out_row_opens_that_delivery_and_x_shows_the_exact_bytes() {
    let mut app = on_event(3, false);
    key(&mut app, KeyCode::Char('x'));
    assert!(event_screen(&app).exact);
    assert!(screen(&app).contains("[0,1,2,3"), "{}", screen(&app));
    key(&mut app, KeyCode::Char('j'));
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(loads(&commands), vec![&Load::Detail { id: id("dlv_", 1) }]);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), ViewKind::Event);
    assert_eq!(event_screen(&app).selected, 1, "back on the same row");
}

#[test]
fn an_event_that_cannot_be_shown_says_why_in_its_body() {
    let mut app = app_with(false);
    command(&mut app, &format!("id {}", id("msg_", 9)));
    answer(
        &mut app,
        Loaded::Refused(format!("event {} not found", id("msg_", 9))),
    );
    assert!(
        screen(&app).contains(&format!("event {} not found", id("msg_", 9))),
        "{}",
        screen(&app)
    );
    assert!(!screen(&app).contains("loading…"));
}

#[test]
fn y_puts_the_selected_id_on_the_clipboard_and_capital_y_asks_for_a_curl_command() {
    let mut app = on_deliveries(3, false);
    key(&mut app, KeyCode::Char('j'));
    assert!(key(&mut app, KeyCode::Char('y')).is_empty());
    assert_eq!(app.clipboard.as_deref(), Some(id("dlv_", 1).as_str()));
    assert_eq!(flash_text(&app), format!("copied {}", id("dlv_", 1)));
    let commands = key(&mut app, KeyCode::Char('Y'));
    assert_eq!(
        loads(&commands),
        vec![&Load::Curl {
            delivery_id: id("dlv_", 1)
        }]
    );
    let Command::Load { token, .. } = commands[0].clone() else {
        panic!("a load");
    };
    app.update(Msg::Loaded {
        token,
        result: Ok(Loaded::Curl("curl -X POST 'https://x'".to_string())),
    });
    assert!(matches!(&app.mode, Mode::Copied(text) if text.starts_with("curl")));
    assert_eq!(app.clipboard.as_deref(), Some("curl -X POST 'https://x'"));
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.quit, "any key closes the dialog, and only that");
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_subscription_form_previews_its_pattern_against_the_loaded_topics() {
    use crate::console::app::forms::{Form, PatternPreview};
    let mut form = Form::edit_subscription(&subscription(1, "order.*"));
    assert_eq!(form.pattern_preview(), Some(PatternPreview::Loading));
    form.recent_topics = Some(
        ["order.paid", "order.created", "invoice.paid", "order.paid"]
            .map(String::from)
            .to_vec(),
    );
    assert_eq!(
        form.pattern_preview(),
        Some(PatternPreview::Matches {
            matched: 3,
            of: 4,
            examples: vec!["order.paid".to_string(), "order.created".to_string()],
        })
    );
    form.fields[0].input = crate::console::input::LineInput::with_text("order..paid");
    assert!(matches!(
        form.pattern_preview(),
        Some(PatternPreview::Invalid(reason)) if reason.contains("empty")
    ));
    assert_eq!(
        Form::edit_endpoint(&endpoint(1, "x", EndpointState::Active).endpoint).pattern_preview(),
        None
    );
}
