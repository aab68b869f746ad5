//! The real `hookline console` binary in tmux, on a seeded SQLite database
//! and on Postgres: an operator's keys go in through `tmux send-keys`, the
//! screen comes back through `capture-pane`, and the database is checked
//! for what the keys should (and should not) have changed.
//!
//! Each test gets its own tmux server (`tmux -L NAME`, killed on drop) at
//! 120x40. No dispatcher runs (except where a test starts one to see it
//! end a pause), so the database is quiet: only the console's actions
//! change it. Waits poll the screen with a bounded timeout; the one
//! fixed wait is the idle test's 5-second observation window.

mod common;
mod console_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestDb, hookline_command, stderr};
use console_support::{
    CLEAR_SHOWN, OSC52_SHOWN, RLO, RLO_SHOWN, Seeded, add_failing_endpoint, has_raw_controls, seed,
    seed_hostile,
};
use hookline::model::{DeliveryState, EndpointState, Source, now_millis};

/// How long a screen may take to show what a test waits for (a busy
/// 2-core machine running a debug build).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The operator the console runs as: `USER` and `SSH_CLIENT`.
const OPERATOR: &str = "oncall-ana";
const OPERATOR_ADDR: &str = "203.0.113.9";

/// `hookline console` in a detached tmux server of its own.
struct Console {
    socket: String,
    dir: tempfile::TempDir,
}

impl Console {
    /// Starts the console on `url` with `args`, and waits for its first screen.
    fn start(url: &str, args: &[&str]) -> Console {
        let args = args.iter().map(|a| format!(" '{a}'")).collect::<String>();
        Console::launch(&format!("--db '{url}' console{args}"), "Overview")
    }

    /// Runs `hookline ARGS` (already shell-quoted) in the pane and waits for
    /// `first_screen` to show.
    fn launch(hookline_args: &str, first_screen: &str) -> Console {
        Console::launch_in(hookline_args, first_screen, (120, 40), &[])
    }

    /// [`Console::launch`] in a pane of `size`, tmux set up with `options`
    /// (lines of a tmux config file).
    fn launch_in(
        hookline_args: &str,
        first_screen: &str,
        size: (u16, u16),
        options: &[&str],
    ) -> Console {
        Console::launch_with_env(hookline_args, first_screen, size, options, "")
    }

    /// [`Console::launch_in`] with `env` (`NAME=value …`) added to the
    /// console's otherwise empty environment.
    fn launch_with_env(
        hookline_args: &str,
        first_screen: &str,
        size: (u16, u16),
        options: &[&str],
        env: &str,
    ) -> Console {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "hookline-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().expect("a temp dir for the pane's files");
        // The wrapper keeps the pane after the console exits, with its exit
        // code and the terminal's settings (to see raw mode was undone).
        let script = format!(
            "env -i PATH=\"$PATH\" HOME=\"$HOME\" TERM=\"$TERM\" HOOKLINE_LOG=warn \
             USER={OPERATOR} SSH_CLIENT='{OPERATOR_ADDR} 51234 22' {env} \
             '{bin}' {hookline_args}; echo \"rc=$?\"; stty -a; sleep 600",
            bin = env!("CARGO_BIN_EXE_hookline"),
        );
        let config = dir.path().join("tmux.conf");
        std::fs::write(&config, options.join("\n")).expect("write the tmux config");
        let console = Console { socket, dir };
        console.tmux(&[
            "-f",
            &config.to_string_lossy(),
            "new-session",
            "-d",
            "-s",
            "c",
            "-x",
            &size.0.to_string(),
            "-y",
            &size.1.to_string(),
            &script,
        ]);
        console.wait_for(first_screen);
        console
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (is it installed? .ci/run installs it)");
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            stderr(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Sends keys by tmux name (`Enter`, `Escape`, `Tab`, `C-u`, `j`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "c"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "c", "-l", text]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "c"])
    }

    /// The screen with its attributes as escape sequences (`-e`).
    fn screen_with_escapes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "c"])
    }

    /// Waits until the wrapper has printed the exit code and all of
    /// `stty -a` (whose last line ends with `extproc`), so the terminal's
    /// settings are read whole rather than half-printed.
    #[track_caller]
    fn wait_for_stty_report(&self) -> String {
        self.wait_until("the exit code and stty's whole report", |s| {
            s.contains("rc=") && s.contains("extproc")
        })
    }

    /// Waits until the screen shows `text`; returns the screen.
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("{text:?} on screen"), |screen| {
            screen.contains(text)
        })
    }

    #[track_caller]
    fn wait_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited {SCREEN_TIMEOUT:?} for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen has stopped changing (two looks 300 ms apart
    /// agree), after the first data arrived.
    fn wait_still(&self) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        let mut last = self.screen();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.screen();
            if now == last {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the screen kept changing:\n{now}"
            );
            last = now;
        }
    }

    fn pipe_file(&self) -> PathBuf {
        self.dir.path().join("pane-output")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

async fn delivery_state(seeded: &Seeded, id: &str) -> hookline::model::Delivery {
    seeded
        .store
        .get_delivery(id)
        .await
        .unwrap_or_else(|e| panic!("get {id}: {e}"))
        .delivery
}

/// The newest audit entry.
async fn last_audit(seeded: &Seeded) -> hookline::model::AuditEntry {
    let page = seeded
        .store
        .list_audit(None, 1)
        .await
        .unwrap_or_else(|e| panic!("list audit: {e}"));
    page.items.into_iter().next().expect("an audit entry")
}

#[track_caller]
fn assert_by_the_operator(entry: &hookline::model::AuditEntry, action: &str) {
    assert_eq!(entry.action, action, "{entry:?}");
    assert_eq!(entry.actor, OPERATOR, "{entry:?}");
    assert_eq!(
        entry.client_addr.as_deref(),
        Some(OPERATOR_ADDR),
        "{entry:?}"
    );
    assert_eq!(entry.source, Source::Console, "{entry:?}");
}

/// Waits for the endpoints list filtered to globex/orders (loaded: the
/// row is there, not just the others gone while it loads).
fn wait_for_only_orders(console: &Console) {
    console.wait_until("only globex/orders listed", |s| {
        s.contains("globex/orders") && !s.contains("acme/billing-prod")
    });
}

/// Opens the newest dead delivery from the `:failed` list.
fn open_newest_dead(console: &Console) {
    console.keys(&[":"]);
    console.type_text("failed");
    console.keys(&["Enter"]);
    console.wait_for("filter state:dead  3 rows");
    console.keys(&["Enter"]);
    console.wait_for("Attempts (3)");
}

// --- the tests --------------------------------------------------------------

async fn retry_a_dead_delivery(backend: Backend) {
    let seeded = seed(backend).await;
    let target = seeded.dead[0].clone();
    let console = Console::start(&seeded.db.url, &[]);
    open_newest_dead(&console);
    console.wait_for(&target);

    // Asked first, Cancel focused: Enter cancels and nothing changes.
    let before = seeded.db.dump().await;
    console.keys(&["r"]);
    let screen = console.wait_for("Retry 1 delivery");
    assert!(screen.contains("globex/orders"), "{screen}");
    assert!(screen.contains("[ Cancel ]"), "{screen}");
    console.keys(&["Enter"]);
    console.wait_for("cancelled: nothing was changed");
    assert_eq!(seeded.db.dump().await, before, "a cancelled retry wrote");

    // Tab to Retry, Enter: retried.
    console.keys(&["r"]);
    console.wait_for("[ Cancel ]");
    console.keys(&["Tab"]);
    console.wait_for("[ Retry ]");
    console.keys(&["Enter"]);
    console.wait_for("retried 1 of 1 deliveries");
    let delivery = delivery_state(&seeded, &target).await;
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.attempts, 0, "a retry starts a fresh schedule");
    assert!(
        delivery.next_attempt_at <= now_millis(),
        "due now, not later"
    );
    for other in &seeded.dead[1..] {
        assert_eq!(
            delivery_state(&seeded, other).await.state,
            DeliveryState::Dead
        );
    }
    let entry = last_audit(&seeded).await;
    assert_by_the_operator(&entry, "delivery.retry");
    assert_eq!(entry.target_ids, vec![target.clone()]);
    // The screen follows: the delivery shows as pending again.
    console.wait_for("○ pending  after 0 attempts");
}

/// The text inside the confirmation dialog, its wrapped lines joined with
/// spaces (the list around it left out), so a test can read a long
/// question whole.
fn dialog_text(screen: &str) -> String {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let Some((top, left)) = lines.iter().enumerate().find_map(|(i, line)| {
        let text: String = line.iter().collect();
        let at = text.find("┌ Confirm")?;
        Some((i, text[..at].chars().count()))
    }) else {
        return String::new();
    };
    let right = lines[top][left..]
        .iter()
        .position(|&c| c == '┐')
        .map_or(lines[top].len(), |w| left + w);
    let mut words = Vec::new();
    for line in &lines[top + 1..] {
        if line.get(left) == Some(&'└') {
            break;
        }
        let inside: String = line
            .get(left + 1..right.min(line.len()))
            .unwrap_or_default()
            .iter()
            .collect();
        words.extend(inside.split_whitespace().map(str::to_string));
    }
    words.join(" ")
}

/// Opens the endpoints list filtered to globex/orders.
fn endpoints_filtered_to_orders(console: &Console) {
    console.keys(&["3"]);
    console.wait_for("initech/audit-trail");
    console.keys(&["/"]);
    console.type_text("orders");
    console.keys(&["Enter"]);
    wait_for_only_orders(console);
    // Loads the filter started may still be arriving: act on a settled list.
    console.wait_still();
}

/// globex/orders as stored now.
async fn orders(seeded: &Seeded) -> hookline::model::Endpoint {
    seeded
        .ops
        .endpoint("globex/orders")
        .await
        .unwrap_or_else(|e| panic!("find globex/orders: {e}"))
}

/// How many deliveries globex/orders holds: pending and retrying.
async fn held_by_orders(seeded: &Seeded) -> (i64, i64) {
    let id = orders(seeded).await.id;
    let queues = seeded
        .store
        .reads()
        .endpoint_queues(Some(std::slice::from_ref(&id)))
        .await
        .unwrap_or_else(|e| panic!("queues: {e}"));
    queues.get(&id).map_or((0, 0), |q| (q.pending, q.retrying))
}

/// `p` asks why and how long, then to confirm (Cancel focused): Cancel
/// changes nothing; confirming pauses with the reason typed, kept and
/// audited. `p` again asks before resuming, naming what it will send.
/// A rate limit set in the edit form, and the breaker forced open from
/// its `b` panel after the question, both audited as the operator's.
async fn rate_limit_and_breaker_from_the_endpoints_view(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    endpoints_filtered_to_orders(&console);

    console.keys(&["e"]);
    console.wait_for("Rate limit (e.g. 50/s");
    for _ in 0..4 {
        console.keys(&["Tab"]);
    }
    console.type_text("20/s burst 3");
    console.keys(&["Enter"]);
    console.wait_for("saved globex/orders");
    let endpoint = orders(&seeded).await;
    assert_eq!(
        endpoint.rate_limit,
        Some(hookline::model::RateLimit::new(20, Some(3)))
    );
    assert_by_the_operator(&last_audit(&seeded).await, "endpoint.update");

    console.keys(&["b"]);
    let panel = console.wait_for("Breaker of globex/orders");
    assert!(panel.contains("closed · auto"), "{panel}");
    assert!(panel.contains("rate limit  20/s burst 3"), "{panel}");
    assert!(panel.contains("never opened"), "{panel}");
    let before = seeded.db.dump().await;
    console.keys(&["o"]);
    let screen = console.wait_for("[ Cancel ]");
    assert!(
        dialog_text(&screen).contains("Force the breaker of globex/orders open?"),
        "{screen}"
    );
    console.keys(&["Enter"]);
    console.wait_for("cancelled: nothing was changed");
    assert_eq!(seeded.db.dump().await, before, "a cancelled force wrote");

    console.keys(&["b"]);
    console.wait_for("Breaker of globex/orders");
    console.keys(&["o"]);
    console.wait_for("[ Cancel ]");
    console.keys(&["Tab"]);
    console.wait_for("[ Force open ]");
    console.keys(&["Enter"]);
    console.wait_for("forced the breaker of globex/orders open");
    let breaker = seeded
        .store
        .breaker(&endpoint.id)
        .await
        .unwrap_or_else(|e| panic!("breaker: {e}"));
    assert_eq!(breaker.state, hookline::model::BreakerState::Open);
    assert_eq!(breaker.mode, hookline::model::BreakerMode::Open);
    assert_by_the_operator(&last_audit(&seeded).await, "endpoint.breaker");
    // The row says so; the panel lists the transition and who made it.
    console.wait_for("breaker");
    console.keys(&["b"]);
    let panel = console.wait_for("closed → open");
    assert!(panel.contains("forced open"), "{panel}");
    assert!(panel.contains(OPERATOR), "{panel}");
}

async fn pause_with_a_reason_through_the_confirmation(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    endpoints_filtered_to_orders(&console);

    let before = seeded.db.dump().await;
    console.keys(&["p"]);
    console.wait_for("Reason (optional");
    console.type_text("ERP vendor maintenance");
    console.keys(&["Enter"]);
    let screen = console.wait_for("[ Cancel ]");
    let question = dialog_text(&screen);
    assert_eq!(
        question,
        "Pause globex/orders? Its deliveries are held, none sent or dropped, \
         until someone resumes it. Reason: ERP vendor maintenance \
         [ Cancel ] Pause",
        "{screen}"
    );
    console.keys(&["Enter"]);
    console.wait_for("cancelled: nothing was changed");
    assert_eq!(seeded.db.dump().await, before, "a cancelled pause wrote");

    console.keys(&["p"]);
    console.wait_for("Reason (optional");
    console.type_text("ERP vendor maintenance");
    console.keys(&["Enter"]);
    console.wait_for("[ Cancel ]");
    console.keys(&["Tab"]);
    console.wait_for("[ Pause ]");
    console.keys(&["Enter"]);
    console.wait_for("paused globex/orders");
    let endpoint = orders(&seeded).await;
    assert_eq!(endpoint.state, EndpointState::Paused);
    assert_eq!(
        endpoint.state_reason.as_deref(),
        Some("ERP vendor maintenance")
    );
    assert_eq!(endpoint.paused_until, None);
    let entry = last_audit(&seeded).await;
    assert_by_the_operator(&entry, "endpoint.pause");
    assert!(entry.detail.contains("ERP vendor maintenance"), "{entry:?}");
    // The row shows the state and why.
    let screen = console.wait_for("‖ paused");
    assert!(screen.contains("ERP vendor maintenance"), "{screen}");

    // p again asks before resuming, naming what it sends and why it was held.
    assert_eq!(
        held_by_orders(&seeded).await,
        (0, 1),
        "the seed: globex/orders holds one retrying delivery, none pending"
    );
    console.keys(&["p"]);
    let screen = console.wait_for("[ Cancel ]");
    let question = dialog_text(&screen);
    // Not "sent now": a retrying delivery waits for its next attempt.
    let sent = "1 retrying delivery keeps its schedule.";
    assert!(
        question.starts_with(&format!("Resume globex/orders? {sent} Paused at "))
            && question.contains(": ERP vendor maintenance."),
        "{question}"
    );
    console.keys(&["Tab"]);
    console.wait_for("[ Resume ]");
    console.keys(&["Enter"]);
    console.wait_for("resumed globex/orders");
    let endpoint = orders(&seeded).await;
    assert_eq!(endpoint.state, EndpointState::Active);
    assert_eq!(endpoint.state_reason, None);
    assert_by_the_operator(&last_audit(&seeded).await, "endpoint.resume");
}

/// Resuming an endpoint hookline disabled after a 410 says that it
/// re-enables it, why and when, before anything changes.
async fn resume_a_disabled_endpoint_naming_why_and_when(backend: Backend) {
    let seeded = seed(backend).await;
    let endpoint = orders(&seeded).await;
    let why = "answered 410 Gone to delivery dlv_01M83K1DCM2DM5CX7MHA4VBXBQ (attempt 1)";
    let hookline = hookline::model::Actor {
        name: "hookline".into(),
        client_addr: None,
        source: Source::System,
    };
    seeded
        .store
        .set_endpoint_state(&endpoint.id, EndpointState::Disabled, Some(why), &hookline)
        .await
        .unwrap_or_else(|e| panic!("disable globex/orders: {e}"));
    let disabled = orders(&seeded).await;
    let at = disabled.state_changed_at.expect("when it was disabled");
    assert_eq!(held_by_orders(&seeded).await, (0, 1), "the seed");

    let console = Console::start(&seeded.db.url, &[]);
    endpoints_filtered_to_orders(&console);
    console.wait_for("⊘ disabled");
    let before = seeded.db.dump().await;
    console.keys(&["p"]);
    let screen = console.wait_for("[ Cancel ]");
    let question = dialog_text(&screen);
    // The pane runs without TZ: local time is UTC.
    let when = hookline::ops::local_time_short(at);
    assert!(when.ends_with("+00:00"), "{when}");
    assert!(
        question.starts_with("Resume globex/orders? 1 retrying delivery keeps its schedule. ")
            && question.contains(&format!(
                "This re-enables an endpoint that hookline disabled at {when}: {why}."
            )),
        "{question}"
    );
    console.keys(&["Enter"]);
    console.wait_for("cancelled: nothing was changed");
    assert_eq!(seeded.db.dump().await, before, "a cancelled resume wrote");
    assert_eq!(orders(&seeded).await.state, EndpointState::Disabled);

    console.keys(&["p"]);
    console.wait_for("[ Cancel ]");
    console.keys(&["Tab"]);
    console.wait_for("[ Resume ]");
    console.keys(&["Enter"]);
    console.wait_for("resumed globex/orders");
    assert_eq!(orders(&seeded).await.state, EndpointState::Active);
    assert_by_the_operator(&last_audit(&seeded).await, "endpoint.resume");
}

/// A `hookline dispatch` process, stopped when dropped.
struct DispatchProcess(std::process::Child);

impl DispatchProcess {
    fn start(url: &str) -> DispatchProcess {
        let child = hookline_command(url, &["dispatch"])
            .env("HOOKLINE_DISPATCH_POLL_INTERVAL", "100ms")
            .env("HOOKLINE_DISPATCH_HEARTBEAT_INTERVAL", "200ms")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn hookline dispatch");
        DispatchProcess(child)
    }
}

impl Drop for DispatchProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pause for a few seconds, typed in the console, is ended by a real
/// dispatcher when due: once, audited as hookline's automatic resume, and
/// the console shows the endpoint active again.
async fn pause_until_a_time_ahead_is_ended_by_a_dispatcher(backend: Backend) {
    let seeded = seed(backend).await;
    let _dispatcher = DispatchProcess::start(&seeded.db.url);
    let console = Console::start(&seeded.db.url, &[]);
    console.wait_for("dispatchers 1 alive");
    endpoints_filtered_to_orders(&console);

    console.keys(&["p"]);
    console.wait_for("Reason (optional");
    console.type_text("deploy window");
    console.keys(&["Tab"]);
    console.type_text("for 10s");
    console.keys(&["Enter"]);
    let screen = console.wait_for("[ Cancel ]");
    let question = dialog_text(&screen);
    assert!(
        question.starts_with("Pause globex/orders until ")
            && question.contains("+00:00 (in ")
            && question.contains("until a running dispatcher resumes it then")
            && question.contains("Reason: deploy window"),
        "{question}"
    );
    console.keys(&["Tab"]);
    console.wait_for("[ Pause ]");
    let asked_at = now_millis();
    console.keys(&["Enter"]);
    console.wait_for("paused globex/orders");
    let paused = orders(&seeded).await;
    assert_eq!(paused.state, EndpointState::Paused);
    assert_eq!(paused.state_reason.as_deref(), Some("deploy window"));
    let until = paused.paused_until.expect("the pause's end is stored");
    assert!(
        (asked_at..=asked_at + 10_000).contains(&until),
        "ends about 10s after it was asked for: {until} vs {asked_at}"
    );
    console.wait_for("‖ paused");

    // The dispatcher resumes it once its time has come (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let resumed = loop {
        let endpoint = orders(&seeded).await;
        if endpoint.state == EndpointState::Active {
            break endpoint;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not resumed 40s after a 10s pause: {endpoint:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(now_millis() >= until, "resumed before its time");
    assert_eq!(resumed.paused_until, None);
    let audit = seeded
        .store
        .list_audit(None, 20)
        .await
        .unwrap_or_else(|e| panic!("list audit: {e}"))
        .items;
    let automatic: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "endpoint.resume" && a.target_ids == vec![paused.id.clone()])
        .collect();
    assert_eq!(automatic.len(), 1, "one resume: {automatic:?}");
    assert_eq!(automatic[0].actor, "hookline", "{:?}", automatic[0]);
    assert_eq!(automatic[0].source, Source::System);
    assert!(
        automatic[0].detail.contains("automatic"),
        "{:?}",
        automatic[0]
    );
    // The console follows without a key pressed.
    console.wait_until("globex/orders active again", |s| {
        s.contains("globex/orders") && s.contains("● active") && !s.contains("‖ paused")
    });
}

/// The subscriptions list is ordered by tenant and endpoint name:
/// `globex/orders` is next to last, before `initech/audit-trail`.
fn edit_orders_subscription(console: &Console) {
    console.keys(&["4"]);
    console.wait_for("order lifecycle for the ERP");
    console.keys(&["G"]);
    console.keys(&["k"]);
    console.keys(&["e"]);
    console.wait_for("Edit subscription of globex/orders");
    console.keys(&["C-u"]);
}

async fn edit_a_subscription(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    edit_orders_subscription(&console);
    console.type_text("order.**");
    console.keys(&["Enter"]);
    console.wait_for("orders now receives order.**");
    let subscription = seeded
        .store
        .get_subscription(&seeded.orders_subscription)
        .await
        .unwrap_or_else(|e| panic!("get the subscription: {e}"));
    assert_eq!(subscription.pattern, "order.**");
    assert_eq!(
        subscription.description.as_deref(),
        Some("order lifecycle for the ERP"),
        "the description is kept"
    );
    assert_by_the_operator(&last_audit(&seeded).await, "subscription.update");
}

async fn a_bad_edit_changes_nothing(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    let before = seeded.db.dump().await;

    // A bad topic pattern: refused in the form, with the reason.
    edit_orders_subscription(&console);
    console.type_text("order..created");
    console.keys(&["Enter"]);
    console.wait_for("✗ empty segment (two dots in a row or a dot at the end)");
    console.keys(&["Escape"]);
    console.wait_for("cancelled: nothing was saved");

    // A non-HTTP URL: refused in the form.
    console.keys(&["3"]);
    console.wait_for("initech/audit-trail");
    console.keys(&["/"]);
    console.type_text("orders");
    console.keys(&["Enter"]);
    wait_for_only_orders(&console);
    console.keys(&["e"]);
    console.wait_for("Edit endpoint globex/orders");
    console.keys(&["C-u"]);
    console.type_text("ftp://erp.globex.example/orders");
    console.keys(&["Enter"]);
    console.wait_for("is not an HTTP(S) URL");

    // Fixed URL, but a cap the store refuses: the reason comes back inline.
    console.keys(&["C-u"]);
    console.type_text("https://erp.globex.example/v2/orders");
    console.keys(&["Tab", "Tab"]);
    console.keys(&["C-u"]);
    console.type_text("0");
    console.keys(&["Enter"]);
    console.wait_for("✗ must be between");
    console.keys(&["Escape"]);
    console.wait_for("cancelled: nothing was saved");

    assert_eq!(
        seeded.db.dump().await,
        before,
        "a refused edit changed the database"
    );
}

async fn read_only_refuses_the_same_keys(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &["--read-only"]);
    let before = seeded.db.dump().await;
    let screen = console.wait_for("READ-ONLY");
    assert!(!screen.contains("<r> retry"), "{screen}");

    open_newest_dead(&console);
    let screen = console.screen();
    assert!(
        !screen.contains("<r> retry"),
        "the hint bar offers retry:\n{screen}"
    );
    console.keys(&["r"]);
    console.wait_for("read-only: r (retry) is disabled");

    console.keys(&["3"]);
    console.wait_for("initech/audit-trail");
    let screen = console.screen();
    assert!(!screen.contains("pause/resume"), "{screen}");
    for (key, refusal) in [
        ("p", "read-only: p (pause/resume) is disabled"),
        ("R", "read-only: R (retry dead) is disabled"),
        ("e", "read-only: e (edit) is disabled"),
        ("d", "read-only: d (delete) is disabled"),
        ("S", "read-only: S (change) is disabled"),
    ] {
        console.keys(&[key]);
        console.wait_for(refusal);
    }
    console.keys(&["4"]);
    console.wait_for("order lifecycle for the ERP");
    for (key, refusal) in [
        ("e", "read-only: e (edit) is disabled"),
        ("n", "read-only: n (new) is disabled"),
    ] {
        console.keys(&[key]);
        console.wait_for(refusal);
    }
    console.keys(&["?"]);
    let help = console.wait_for("Read-only: keys that change anything are disabled.");
    assert!(!help.contains("pause the endpoint"), "{help}");

    assert_eq!(
        seeded.db.dump().await,
        before,
        "the read-only console changed the database"
    );
}

/// The overview's sparklines move on when a new minute starts (a real
/// change, drawn): an observation window must not span one. Returns
/// whether it waited for the next minute.
fn skip_minute_boundary() -> bool {
    let into_minute = now_millis().rem_euclid(60_000);
    let late = into_minute > 53_000;
    if late {
        std::thread::sleep(Duration::from_millis((61_000 - into_minute) as u64));
    }
    late
}

async fn idle_console_writes_nothing(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &["--refresh", "200ms"]);
    for (key, loaded) in [("1", "globex/orders"), ("2", "user.signup")] {
        console.keys(&[key]);
        console.wait_for(loaded);
        console.wait_still();
        if skip_minute_boundary() {
            console.wait_still();
        }
        let file = console.pipe_file();
        let _ = std::fs::remove_file(&file);
        console.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            "c",
            &format!("cat >> '{}'", file.display()),
        ]);
        // The observation window: a quiet database, a refresh every 200 ms,
        // and not one byte may reach the terminal.
        std::thread::sleep(Duration::from_secs(5));
        console.tmux(&["pipe-pane", "-t", "c"]);
        let written = std::fs::metadata(&file).map_or(0, |m| m.len());
        assert_eq!(
            written, 0,
            "view {key}: the idle console wrote {written} bytes in 5 s"
        );
    }
    // The pipe itself works: a key makes output.
    let file = console.pipe_file();
    console.tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        "c",
        &format!("cat >> '{}'", file.display()),
    ]);
    console.keys(&["j"]);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    while std::fs::metadata(&file).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < deadline,
            "pipe-pane saw nothing after a key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn q_quits_and_restores_the_terminal(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    console.wait_for("globex/orders");
    assert_eq!(
        console
            .tmux(&["display", "-p", "-t", "c", "#{alternate_on}"])
            .trim(),
        "1",
        "the console draws on the alternate screen"
    );
    console.keys(&["q"]);
    let screen = console.wait_for_stty_report();
    assert!(screen.contains("rc=0"), "{screen}");
    assert!(!screen.contains("Worst endpoints"), "{screen}");
    assert_eq!(
        console
            .tmux(&["display", "-p", "-t", "c", "#{alternate_on}"])
            .trim(),
        "0",
        "back on the main screen"
    );
    assert_eq!(
        console
            .tmux(&["display", "-p", "-t", "c", "#{cursor_flag}"])
            .trim(),
        "1",
        "the cursor is visible again"
    );
    // `stty -a` ran after the console: cooked mode, echo on.
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "not in cooked mode:\n{screen}");
    assert!(words.contains(&"echo"), "echo is off:\n{screen}");
}

async fn refuses_a_database_that_does_not_exist(backend: Backend) {
    let db = TestDb::new(backend);
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", db.path("typo").join("hookline.db").display()),
        // The cluster is real; the database name is not.
        Backend::Postgres => match db.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/no_such_database"),
            None => panic!("unexpected Postgres URL {}", db.url),
        },
    };
    let output = hookline_command(&url, &["console"])
        .output()
        .expect("run hookline console");
    assert!(!output.status.success(), "the console opened {url}");
    let message = stderr(&output);
    let expected = match backend {
        Backend::Sqlite => "no hookline database at",
        Backend::Postgres => "does not exist",
    };
    assert!(
        message.contains(expected),
        "the message should say there is no such database: {message}"
    );
    if backend == Backend::Sqlite {
        assert!(!db.path("typo").exists(), "a directory or file was created");
    }
}

/// An endpoint's URL password and `Authorization`/`X-Api-Key` values are
/// masked on every screen, the edit form included; `v` shows them until the
/// next key and the audit log says the operator saw them.
async fn secrets_are_masked_on_screen_until_revealed(backend: Backend) {
    use common::{API_KEY, BEARER_TOKEN, URL_PASSWORD, assert_no_plain_secret, with_userinfo};
    let seeded = seed(backend).await;
    seeded
        .ops
        .update_endpoint(
            "globex/orders",
            &hookline::ops::EndpointChanges {
                url: Some(with_userinfo("https://erp.globex.example/hooks")),
                headers: Some(vec![
                    format!("Authorization: Bearer {BEARER_TOKEN}"),
                    format!("X-Api-Key: {API_KEY}"),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("give globex/orders credentials: {e}"));
    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&["3"]);
    console.wait_for("initech/audit-trail");
    assert_no_plain_secret(&console.screen(), "the endpoints screen");
    console.keys(&["/"]);
    console.type_text("orders");
    console.keys(&["Enter"]);
    wait_for_only_orders(&console);
    console.keys(&["e"]);
    let form = console.wait_for("Edit endpoint");
    assert!(
        form.contains("https://bob:****@erp.globex.example/hooks"),
        "{form}"
    );
    assert!(form.contains("authorization: Bearer ****"), "{form}");
    assert_no_plain_secret(&form, "the edit form");
    console.keys(&["Escape"]);
    console.wait_for("cancelled");

    console.keys(&["v"]);
    let revealed = console.wait_for("Secrets of globex/orders");
    for plain in [URL_PASSWORD, BEARER_TOKEN, API_KEY] {
        assert!(
            revealed.contains(plain),
            "{plain} not revealed:\n{revealed}"
        );
    }
    let entry = last_audit(&seeded).await;
    assert_by_the_operator(&entry, "endpoint.reveal_secrets");
    assert!(entry.detail.contains("header:authorization"), "{entry:?}");
    console.keys(&["Escape"]);
    let hidden = console.wait_until("the secrets hidden again", |s| {
        !s.contains("Secrets of globex/orders")
    });
    assert_no_plain_secret(&hidden, "the screen after the reveal");
}

/// The banner's text when no dispatcher ever ran (the seed registers none).
const NO_DISPATCHER: &str = "no dispatcher alive (never seen): nothing is being delivered";

async fn held_work_and_a_missing_dispatcher_are_said_everywhere(backend: Backend) {
    let seeded = seed(backend).await;
    // Under NO_COLOR the banner must still stand out: reverse video.
    let console = Console::launch_with_env(
        &format!("--db '{}' console", seeded.db.url),
        "Overview",
        (120, 40),
        &[],
        "NO_COLOR=1",
    );
    let screen = console.wait_for(NO_DISPATCHER);
    assert_eq!(
        screen.lines().nth(1).map(str::trim),
        Some(NO_DISPATCHER),
        "its own line, under the header:\n{screen}"
    );
    let banner = console
        .screen_with_escapes()
        .lines()
        .find(|l| l.contains("no dispatcher alive"))
        .unwrap_or_default()
        .to_string();
    // tmux writes reverse video as `ESC[7m`, or joined with bold as `ESC[1;7m`.
    assert!(
        banner.contains("\x1b[7m") || banner.contains(";7m"),
        "reverse video: {banner:?}"
    );

    // acme/crm-sync is paused with one pending delivery: held, and counted so.
    console.wait_for("(1 held)");
    console.keys(&["2"]);
    let screen = console.wait_for("○ pending · held: paused");
    let held_row = screen
        .lines()
        .find(|l| l.contains("held: paused"))
        .unwrap_or_default();
    assert!(held_row.contains("crm-sync"), "{screen}");
    assert!(held_row.contains("held"), "{held_row}");
    console.keys(&["3"]);
    let screen = console.wait_for("1 held");
    let row = screen
        .lines()
        .find(|l| l.contains("acme/crm-sync"))
        .unwrap_or_default();
    assert!(row.contains("1 held"), "{screen}");
}

async fn empty_and_refused_lists_say_so(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&["/"]);
    console.type_text("state:dead topic:no.such");
    console.keys(&["Enter"]);
    let screen = console.wait_for("no deliveries matching state:dead topic:no.such");
    assert!(!screen.contains("loading…"), "{screen}");
    console.keys(&[":"]);
    console.type_text("ep nosuch");
    console.keys(&["Enter"]);
    let screen = console.wait_for("could not load deliveries matching endpoint:nosuch");
    assert!(screen.contains("nosuch"), "{screen}");
    assert!(!screen.contains("database unreachable"), "{screen}");
}

/// The old state words still filter, and what comes back speaks the new
/// ones: `/state:scheduled` lists retrying work, `:succeeded` delivered.
async fn old_state_words_filter_and_the_screen_says_the_new_ones(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&["/"]);
    console.type_text("state:scheduled");
    console.keys(&["Enter"]);
    let screen = console.wait_until("retrying rows under state:retrying", |s| {
        s.contains("filter state:retrying") && s.contains("↻ retrying")
    });
    assert!(
        !screen.contains("✓ delivered"),
        "only retrying rows: {screen}"
    );
    assert!(!screen.contains("scheduled"), "no old word shown: {screen}");
    console.keys(&[":"]);
    console.type_text("succeeded");
    console.keys(&["Enter"]);
    let screen = console.wait_until("delivered rows under state:delivered", |s| {
        s.contains("filter state:delivered") && s.contains("✓ delivered")
    });
    assert!(
        !screen.contains("↻ retrying  "),
        "only delivered rows: {screen}"
    );
    assert!(!screen.contains("succeeded"), "no old word shown: {screen}");
}

/// A `resident.update` fanned out to three acme endpoints: two of them
/// (pointed at a live receiver) delivered it, the paused crm-sync holds it.
async fn an_event_shows_its_fan_out_and_opens_each_delivery(backend: Backend) {
    common::install_crypto();
    let seeded = seed(backend).await;
    let receiver = hookline::sink::start(hookline::sink::SinkOptions::default())
        .await
        .unwrap_or_else(|e| panic!("start the receiver: {e}"));
    for name in ["archive", "portal"] {
        add_subscribed(&seeded, name, &receiver.url(), None, "resident.update").await;
    }
    let published = seeded
        .ops
        .publish(hookline::ops::EventInput {
            tenant: Some("acme".to_string()),
            broadcast: false,
            topic: "resident.update".to_string(),
            payload: r#"{"resident":"res_9001","unit":"9F"}"#.into(),
            idempotency_key: None,
        })
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    assert_eq!(published.deliveries, 3);
    let fanout = seeded
        .store
        .reads()
        .event_fanout(&published.event_id, 10)
        .await
        .unwrap_or_else(|e| panic!("read the fan-out: {e}"));
    let id_of = |name: &str| {
        fanout
            .deliveries
            .iter()
            .find(|d| d.endpoint_name == name)
            .map(|d| d.id.clone())
            .unwrap_or_else(|| panic!("no delivery to acme/{name}"))
    };
    let (archive, held, portal) = (id_of("archive"), id_of("crm-sync"), id_of("portal"));
    deliver(&seeded, &[archive, portal]).await;

    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&[":"]);
    console.type_text(&format!("id {}", published.event_id));
    console.keys(&["Enter"]);
    let screen = console.wait_for("Fan-out: 3 endpoints  ✓ 2  ○ 1");
    let row = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(&format!("acme/{name} ")))
            .unwrap_or_else(|| panic!("no row for acme/{name}:\n{screen}"))
            .to_string()
    };
    for name in ["archive", "portal"] {
        let line = row(name);
        assert!(line.contains("✓ delivered"), "{line}");
        assert!(
            line.trim_end().ends_with(" 200") && line.contains(" 1  "),
            "one attempt, answered 200: {line:?}"
        );
    }
    let line = row("crm-sync");
    assert!(line.contains("held: paused"), "{line}");
    assert!(line.trim_end().ends_with(" 0"), "no attempt yet: {line}");
    assert!(
        screen.contains(r#""resident": "res_9001","#),
        "re-indented: {screen}"
    );

    // Enter on the held row opens that delivery; Esc comes back to the event.
    console.keys(&["j", "Enter"]);
    let screen = console.wait_for(&format!("delivery   {held}"));
    assert!(screen.contains("held: endpoint paused"), "{screen}");
    console.keys(&["Escape"]);
    console.wait_for("Fan-out: 3 endpoints");
    console.keys(&["x"]);
    console.wait_for(r#"{"resident":"res_9001","unit":"9F"}"#);
    // From a delivery's detail, Enter opens its event.
    console.keys(&["Escape", "Escape", ":"]);
    console.type_text(&format!("id {held}"));
    console.keys(&["Enter"]);
    console.wait_for(&format!("delivery   {held}"));
    console.keys(&["Enter"]);
    console.wait_for("Fan-out: 3 endpoints");
}

/// A receiver failing two ways (503 for most events, too slow for the
/// rest): the endpoint detail groups its failed attempts by cause with the
/// right counts and shares, and Enter on a cause lists the deliveries that
/// died of it.
async fn endpoint_detail_groups_failures_by_cause(backend: Backend) {
    common::install_crypto();
    let seeded = seed(backend).await;
    // Breaker off: every delivery runs its whole schedule (three attempts).
    let mut config = seeded.config.clone();
    config.protection.breaker = false;
    let store = seeded.db.store_with(&config).await;
    let app = axum::Router::new().fallback(|body: String| async move {
        if body.contains("\"slow\"") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    });
    let (url, _server) = common::serve_receiver(app).await;
    let timeout = Some(Duration::from_millis(300));
    add_subscribed(&seeded, "flaky", &url, timeout, "shipment.*").await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let speed = if n < 3 { "slow" } else { "fast" };
        let published = seeded
            .ops
            .publish(hookline::ops::EventInput {
                tenant: Some("acme".to_string()),
                broadcast: false,
                topic: "shipment.sent".to_string(),
                payload: format!(r#"{{"shipment":{n},"speed":"{speed}"}}"#).into(),
                idempotency_key: None,
            })
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        let fanout = store
            .reads()
            .event_fanout(&published.event_id, 10)
            .await
            .unwrap_or_else(|e| panic!("read the fan-out: {e}"));
        ids.extend(fanout.deliveries.into_iter().map(|d| d.id));
    }
    let dispatcher = common::RunningDispatcher::start(&store, &config);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    for id in &ids {
        while delivery_state(&seeded, id).await.state != DeliveryState::Dead {
            assert!(Instant::now() < deadline, "{id} did not die in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    dispatcher.stop().await;

    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&["3", "/"]);
    console.type_text("flaky");
    console.keys(&["Enter"]);
    console.wait_for("acme/flaky");
    console.keys(&["Enter"]);
    // Five events answered 503 three times each; three timed out three times.
    let screen = console.wait_for("Failures by cause, last hour: 24");
    let row = |cause: &str| {
        screen
            .lines()
            .find(|l| l.trim_start_matches(['›', ' ']).starts_with(cause))
            .unwrap_or_else(|| panic!("no {cause} row:\n{screen}"))
            .to_string()
    };
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let busy = row("http_status 503");
    assert!(
        words(&busy).windows(2).any(|w| w == ["15", "62%"]),
        "15 of 24: {busy}"
    );
    assert!(
        busy.starts_with('›'),
        "the most frequent first, selected: {busy}"
    );
    let slow = row("timeout");
    assert!(
        words(&slow).windows(2).any(|w| w == ["9", "37%"]),
        "9 of 24: {slow}"
    );
    assert!(screen.contains("subscribed shipment.*"), "{screen}");
    console.keys(&["Tab"]);
    console.wait_for("Failures by cause, last day: 24");

    // Enter on the 503s: the deliveries that died of them, and only those.
    console.keys(&["Enter"]);
    let screen = console.wait_until("the five deliveries that died of a 503", |s| {
        s.lines().filter(|l| l.contains("✗ dead")).count() == 5
    });
    assert!(screen.contains("failed with http_status 503"), "{screen}");
    assert!(!screen.contains("timeout"), "{screen}");
    // `l` on the detail lists every delivery of the endpoint.
    console.keys(&["Escape"]);
    console.wait_for("Failures by cause");
    console.keys(&["l"]);
    console.wait_until("all eight deliveries", |s| {
        s.lines().filter(|l| l.contains("✗ dead")).count() == 8
    });
}

/// `y` puts the selected id on the clipboard with OSC 52 (tmux, with
/// `set-clipboard on`, keeps it in its paste buffer), and `Y` a `curl`
/// command for the delivery, shown whole as well.
async fn y_copies_the_id_and_capital_y_a_curl_command(backend: Backend) {
    let seeded = seed(backend).await;
    let console = Console::launch_in(
        &format!("--db '{}' console", seeded.db.url),
        "Overview",
        (120, 40),
        &["set -g set-clipboard on"],
    );
    console.keys(&[":"]);
    console.type_text("failed");
    console.keys(&["Enter"]);
    console.wait_for("filter state:dead  3 rows");
    console.keys(&["y"]);
    let newest = &seeded.dead[0];
    console.wait_for(&format!("copied {newest}"));
    let buffer = || console.tmux(&["show-buffer"]);
    assert_eq!(buffer().trim_end(), newest.as_str());

    console.keys(&["Y"]);
    console.wait_for("Copied");
    let copied = buffer();
    assert!(
        copied.starts_with("curl -X POST 'https://erp.globex.example/api/orders/webhook'"),
        "{copied}"
    );
    assert!(
        copied.contains("-H 'webhook-signature: v1,****'"),
        "{copied}"
    );
    assert!(
        copied.contains(&format!("-H 'webhook-id: {}'", seeded.dead_event)),
        "{copied}"
    );
    assert!(
        copied.contains(r#"--data-binary '{"order":"ord_700"#),
        "{copied}"
    );
    console.keys(&["q"]);
    console.wait_for("filter state:dead");
}

/// `N` on an endpoint sends its retrying deliveries now: the one the seed
/// scheduled half an hour away reaches a live receiver at once, as its
/// second attempt.
async fn retry_now_sends_retrying_deliveries_at_once(backend: Backend) {
    common::install_crypto();
    let seeded = seed(backend).await;
    let receiver = keeping_receiver().await;
    point_at(&seeded, "globex/orders", receiver.url()).await;
    let before = delivery_state(&seeded, &seeded.retrying).await;
    assert_eq!(
        (before.state, before.attempts),
        (DeliveryState::Retrying, 1)
    );
    let console = Console::start(&seeded.db.url, &[]);
    endpoints_filtered_to_orders(&console);
    console.keys(&["N"]);
    let screen = console.wait_for("Send its retrying delivery to globex/orders now");
    assert!(screen.contains("keeps its attempt count"), "{screen}");
    console.keys(&["Tab", "Enter"]);
    console.wait_for("sent the retrying delivery of globex/orders now");
    let moved = delivery_state(&seeded, &seeded.retrying).await;
    assert!(moved.next_attempt_at <= now_millis(), "due now: {moved:?}");
    assert_eq!(last_audit(&seeded).await.action, "endpoint.retry_now");
    deliver(&seeded, std::slice::from_ref(&seeded.retrying)).await;
    let after = delivery_state(&seeded, &seeded.retrying).await;
    assert_eq!(
        after.attempts, 2,
        "the schedule went on from its first attempt"
    );
    let got = receiver
        .requests()
        .iter()
        .filter(|r| {
            r.headers
                .iter()
                .any(|(n, v)| n == "webhook-id" && *v == after.event_id)
        })
        .count();
    assert_eq!(got, 1, "the receiver got it once");
}

/// `R` on a filtered deliveries list previews the blast radius before it
/// asks: the count per endpoint (as the database has it), the oldest and
/// newest, and that a paused endpoint's deliveries will wait; confirmed,
/// exactly those are queued again.
async fn bulk_retry_previews_its_blast_radius(backend: Backend) {
    let seeded = seed(backend).await;
    seeded
        .ops
        .pause_endpoint("globex/orders", Some("ERP upgrade"), None)
        .await
        .unwrap_or_else(|e| panic!("pause globex/orders: {e}"));
    let failed = seeded
        .store
        .reads()
        .list_deliveries(
            &hookline::store::DeliveryFilter {
                states: vec![DeliveryState::Dead, DeliveryState::Retrying],
                ..hookline::store::DeliveryFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap_or_else(|e| panic!("list the failed: {e}"))
        .items;
    assert_eq!(
        failed.len(),
        4,
        "three dead and one retrying, all to globex/orders"
    );
    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&["2", "/"]);
    console.type_text("state:dead,retrying");
    console.keys(&["Enter"]);
    console.wait_for("4 rows");
    console.keys(&["R"]);
    let screen = console.wait_for("Confirm");
    let question = dialog_text(&screen);
    assert!(
        question
            .contains("Retry 4 deliveries (the deliveries matching state:dead,retrying), created"),
        "{question}"
    );
    assert!(
        question.contains("globex/orders 4 (held: paused)"),
        "{question}"
    );
    assert!(
        question.contains("All of them wait until their endpoint takes work again"),
        "{question}"
    );
    console.keys(&["Tab", "Enter"]);
    console.wait_for("retried 4 deliveries at 1 endpoint");
    for delivery in &failed {
        let now = delivery_state(&seeded, &delivery.id).await;
        assert_eq!(
            (now.state, now.attempts),
            (DeliveryState::Pending, 0),
            "{}",
            delivery.id
        );
    }
}

/// While a subscription pattern is typed, the form says how many of the
/// tenant's latest events it matches (counted against the database) with
/// example topics, and an invalid pattern's error, before anything is saved.
async fn a_subscription_pattern_is_previewed_as_it_is_typed(backend: Backend) {
    let seeded = seed(backend).await;
    let globex = seeded
        .ops
        .tenant("globex")
        .await
        .unwrap_or_else(|e| panic!("find globex: {e}"));
    let topics = seeded
        .store
        .reads()
        .recent_topics(&globex.id, 1_000)
        .await
        .unwrap_or_else(|e| panic!("read globex's topics: {e}"));
    let orders = topics.iter().filter(|t| t.starts_with("order.")).count();
    assert!(orders > 0 && orders <= topics.len(), "{topics:?}");
    let console = Console::start(&seeded.db.url, &[]);
    edit_orders_subscription(&console);
    console.type_text("order.*");
    console.wait_for(&format!(
        "matches {orders} of the last {} events: order.created",
        topics.len()
    ));
    console.keys(&["C-u"]);
    console.type_text("order.refunded");
    console.wait_for(&format!("matches 0 of the last {} events", topics.len()));
    console.keys(&["C-u"]);
    console.type_text("order..x");
    let screen = console.wait_for("empty segment");
    let error = screen
        .lines()
        .find(|l| l.contains("empty segment"))
        .unwrap_or_default();
    assert!(error.contains("✗"), "inline, before Enter: {error}");
    let before = seeded.db.dump().await;
    console.keys(&["Escape"]);
    console.wait_for("cancelled: nothing was saved");
    assert_eq!(seeded.db.dump().await, before, "a preview writes nothing");
}

/// `P` probes an endpoint from the console's host, step by step: a live
/// receiver answers the signed test POST; a port nobody listens on fails
/// at connect; and under the default outbound guard (loopback blocked) the
/// same address is refused at DNS, nothing sent. Each probe is audited and
/// none is an attempt.
async fn probe_a_live_a_refused_and_a_blocked_endpoint(backend: Backend) {
    common::install_crypto();
    let seeded = seed(backend).await;
    let receiver = keeping_receiver().await;
    point_at(&seeded, "globex/orders", receiver.url()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("find a free port: {e}"));
    point_at(
        &seeded,
        "acme/billing-prod",
        format!("http://{closed}/hooks"),
    )
    .await;
    let attempts_before = common::scalar(&seeded.db.url, "SELECT COUNT(*) FROM attempts").await;
    let allowed = Console::launch_with_env(
        &format!("--db '{}' console", seeded.db.url),
        "Overview",
        (120, 40),
        &[],
        "HOOKLINE_NETWORK_ALLOW=127.0.0.1/32",
    );
    endpoints_filtered_to_orders(&allowed);
    allowed.keys(&["P"]);
    let screen = allowed.wait_for("Probe: every step passed");
    assert!(screen.contains("127.0.0.1: allowed"), "{screen}");
    assert!(screen.contains("answered 200"), "{screen}");
    assert!(screen.contains("hookline.ping"), "{screen}");
    let pings: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("hookline.ping"))
        .collect();
    assert_eq!(pings.len(), 1, "one signed test POST");
    assert!(
        pings[0]
            .headers
            .iter()
            .any(|(n, v)| n == "webhook-signature" && v.starts_with("v1,")),
        "signed: {:?}",
        pings[0].headers
    );
    assert_eq!(last_audit(&seeded).await.action, "endpoint.probe");

    allowed.keys(&["x", "/", "C-u"]);
    allowed.type_text("billing");
    allowed.keys(&["Enter"]);
    allowed.wait_for("acme/billing-prod");
    allowed.keys(&["P"]);
    let screen = allowed.wait_for("Probe: a step failed");
    assert!(screen.contains("✗ connect"), "{screen}");
    assert!(
        screen.contains(&format!("port {}", closed.port())),
        "{screen}"
    );

    // The default guard blocks loopback: refused before anything is sent.
    let blocked = Console::start(&seeded.db.url, &[]);
    endpoints_filtered_to_orders(&blocked);
    blocked.keys(&["P"]);
    let screen = blocked.wait_for("Probe: a step failed");
    assert!(screen.contains("127.0.0.1: blocked"), "{screen}");
    assert!(screen.contains("allows none of its addresses"), "{screen}");
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("hookline.ping"))
            .count(),
        1,
        "nothing sent to a blocked address"
    );
    assert_eq!(
        common::scalar(&seeded.db.url, "SELECT COUNT(*) FROM attempts").await,
        attempts_before,
        "a probe is not an attempt"
    );
}

/// Adds endpoint `acme/NAME` at `url` (with `timeout`), subscribed to `pattern`.
async fn add_subscribed(
    seeded: &Seeded,
    name: &str,
    url: &str,
    timeout: Option<Duration>,
    pattern: &str,
) {
    let endpoint = seeded
        .ops
        .add_endpoint(&hookline::ops::EndpointInput {
            tenant: "acme".to_string(),
            name: name.to_string(),
            url: url.to_string(),
            secret: None,
            timeout,
            max_in_flight: None,
            headers: Vec::new(),
            description: None,
            rate_limit: None,
            rate_limit_burst: None,
        })
        .await
        .unwrap_or_else(|e| panic!("add acme/{name}: {e}"));
    seeded
        .ops
        .add_subscription(&endpoint.id, pattern, None)
        .await
        .unwrap_or_else(|e| panic!("subscribe acme/{name}: {e}"));
}

/// A live receiver on 127.0.0.1 that keeps every request it gets.
async fn keeping_receiver() -> hookline::sink::SinkHandle {
    hookline::sink::start(hookline::sink::SinkOptions {
        keep: true,
        ..hookline::sink::SinkOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start the receiver: {e}"))
}

/// Points endpoint `key` at `url`.
async fn point_at(seeded: &Seeded, key: &str, url: String) {
    seeded
        .ops
        .update_endpoint(
            key,
            &hookline::ops::EndpointChanges {
                url: Some(url),
                ..hookline::ops::EndpointChanges::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("point {key} at the URL: {e}"));
}

/// Runs a dispatcher until every delivery in `ids` is delivered.
async fn deliver(seeded: &Seeded, ids: &[String]) {
    let dispatcher = common::RunningDispatcher::start(&seeded.store, &seeded.config);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    loop {
        let mut all = true;
        for id in ids {
            all &= delivery_state(seeded, id).await.state == DeliveryState::Delivered;
        }
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "{ids:?} not delivered in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dispatcher.stop().await;
}

async fn a_marked_retry_rereads_the_rows_and_never_resends(backend: Backend) {
    common::install_crypto();
    let seeded = seed(backend).await;
    let receiver = keeping_receiver().await;
    point_at(&seeded, "globex/orders", receiver.url()).await;
    let console = Console::start(&seeded.db.url, &[]);
    console.keys(&[":"]);
    console.type_text("failed");
    console.keys(&["Enter"]);
    console.wait_for("filter state:dead  3 rows");
    console.keys(&["Space", "j", "Space", "j", "Space"]);
    console.wait_for("3 marked");

    // Two of them are delivered on their own before the operator confirms.
    let (delivered, other) = (&seeded.dead[..2], &seeded.dead[2]);
    seeded
        .ops
        .retry(delivered)
        .await
        .unwrap_or_else(|e| panic!("retry two: {e}"));
    deliver(&seeded, delivered).await;

    console.keys(&["r"]);
    let screen = console.wait_for("2 of the 3 marked have since been delivered");
    assert!(screen.contains("retry the other 1"), "{screen}");
    console.keys(&["Tab"]);
    console.wait_for("[ Retry ]");
    console.keys(&["Enter"]);
    console.wait_for("retried 1 of 1 deliveries");
    for id in delivered {
        assert_eq!(
            delivery_state(&seeded, id).await.state,
            DeliveryState::Delivered,
            "a delivered one stays delivered"
        );
    }
    assert_eq!(
        delivery_state(&seeded, other).await.state,
        DeliveryState::Pending
    );
    deliver(&seeded, std::slice::from_ref(other)).await;

    // The receiver got each of the three webhooks exactly once.
    let mut expected = Vec::new();
    for id in &seeded.dead {
        expected.push(delivery_state(&seeded, id).await.event_id);
    }
    expected.sort();
    let mut got: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(name, _)| name == "webhook-id")
                .map(|(_, value)| value.clone())
        })
        .filter(|id| expected.contains(id))
        .collect();
    got.sort();
    assert_eq!(got, expected, "each webhook once, none twice");
}

both_backends!(
    probe_a_live_a_refused_and_a_blocked_endpoint,
    a_subscription_pattern_is_previewed_as_it_is_typed,
    bulk_retry_previews_its_blast_radius,
    retry_now_sends_retrying_deliveries_at_once,
    y_copies_the_id_and_capital_y_a_curl_command,
    endpoint_detail_groups_failures_by_cause,
    an_event_shows_its_fan_out_and_opens_each_delivery,
    rate_limit_and_breaker_from_the_endpoints_view,
    held_work_and_a_missing_dispatcher_are_said_everywhere,
    empty_and_refused_lists_say_so,
    old_state_words_filter_and_the_screen_says_the_new_ones,
    a_marked_retry_rereads_the_rows_and_never_resends,
    secrets_are_masked_on_screen_until_revealed,
    retry_a_dead_delivery,
    pause_with_a_reason_through_the_confirmation,
    resume_a_disabled_endpoint_naming_why_and_when,
    pause_until_a_time_ahead_is_ended_by_a_dispatcher,
    edit_a_subscription,
    a_bad_edit_changes_nothing,
    read_only_refuses_the_same_keys,
    idle_console_writes_nothing,
    q_quits_and_restores_the_terminal,
    refuses_a_database_that_does_not_exist,
);

/// What a newcomer sees first: `hookline demo` opens the console on a live
/// system (the demo notice, failures from the down endpoint arriving), and
/// `q` ends everything and prints the summary, whose counts agree.
#[test]
fn the_demo_opens_the_console_on_a_live_system_and_q_prints_the_summary() {
    let console = Console::launch("demo --rate 20", "DEMO:");
    console.wait_for("dispatchers 1 alive");
    console.wait_for("legacy-crm");
    console.keys(&["q"]);
    let screen = console.wait_for_stty_report();
    assert!(screen.contains("rc=0"), "{screen}");
    assert!(screen.contains("counts agree"), "{screen}");
    assert!(
        screen.contains("storefront-sync"),
        "the summary lists every endpoint: {screen}"
    );
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(
        words.contains(&"icanon") && words.contains(&"echo"),
        "cooked mode:\n{screen}"
    );
}

/// Outside text holding an OSC 52 clipboard write, a clear screen and a
/// right-to-left override, through the real console at 80x24 in a tmux
/// that accepts clipboard writes (`set-clipboard on`, as an operator's
/// might): every screen shows the visible escapes, no raw control or bidi
/// character reaches the pane, nothing cleared the console's header, and
/// tmux never took a clipboard write (it would keep it as a paste buffer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_reaches_the_pane_only_as_visible_escapes() {
    let hostile = seed_hostile(Backend::Sqlite).await;
    let console = Console::launch_in(
        &format!("--db '{}' console", hostile.db.url),
        "Overview",
        (80, 24),
        &["set -g set-clipboard on"],
    );
    let check = |screen: &str, what: &str| {
        let first = screen.lines().next().unwrap_or_default();
        assert!(
            first.contains("hookline") && first.contains("dispatchers"),
            "{what}: the header is gone:\n{screen}"
        );
        assert!(!has_raw_controls(screen), "{what}: raw controls:\n{screen}");
        let attributes = console.screen_with_escapes();
        assert!(
            !attributes.contains("\x1b]") && !attributes.contains(RLO),
            "{what}: an OSC or a bidi control in the pane:\n{attributes:?}"
        );
    };
    let osc = format!("reset {OSC52_SHOWN}");
    check(&console.wait_for(&osc[..20]), "overview");

    console.keys(&["2"]);
    // The overview shows the same error: wait for the list itself, or Enter
    // lands on the overview and opens something else.
    let list = console.wait_until("the deliveries list with the error", |screen| {
        screen
            .lines()
            .nth(2)
            .is_some_and(|l| l.starts_with("Deliveries"))
            && screen.contains("network: reset")
    });
    check(&list, "deliveries");
    console.keys(&["Enter"]);
    let answer = format!("answer {OSC52_SHOWN}{CLEAR_SHOWN}{RLO_SHOWN}gpj.exe");
    let screen = console.wait_for(&answer);
    assert!(
        screen.contains(&format!(
            "last error network: reset {OSC52_SHOWN} {CLEAR_SHOWN}"
        )),
        "{screen}"
    );
    check(&screen, "detail");
    console.keys(&["j"; 12]);
    let screen = console.wait_for(r#""bidi": "\u202egpj.exe""#);
    assert!(screen.contains(r#""clear": "\u009b2J""#), "{screen}");
    check(&screen, "payload");

    console.keys(&["3"]);
    check(&console.wait_for(r"paused \x1b]52;c;"), "endpoints");
    console.keys(&["e"]);
    let screen = console.wait_for("Edit endpoint hostile/receiver");
    for shown in [
        r"https://example.com/h/\x1b]52;c;aGVsbG8=\x07?q=\x1b[2J\u202egpj.exe",
        r"x-note: v\u202e\u009b2J",
    ] {
        assert!(screen.contains(shown), "{shown} in the form:\n{screen}");
    }
    check(&screen, "endpoint form");
    console.keys(&["Escape"]);
    console.wait_for("cancelled: nothing was saved");

    console.keys(&["4"]);
    check(
        &console.wait_for(r"sub \x1b]52;c;aGVsbG8=\x07\x1b[2J"),
        "subscriptions",
    );
    console.keys(&["5"]);
    check(&console.wait_for(r"ana\u202e\x1b["), "audit");

    let buffers = console.tmux(&["list-buffers"]);
    assert!(
        buffers.trim().is_empty(),
        "tmux took a clipboard write: {buffers:?}"
    );
    // The form was cancelled: what is stored is what was seeded.
    let endpoint = hostile
        .ops
        .endpoint("hostile/receiver")
        .await
        .unwrap_or_else(|e| panic!("find the endpoint: {e}"));
    assert!(
        endpoint.url.contains(console_support::OSC52),
        "{endpoint:?}"
    );
}

/// The detail strip of an 80x24 screen: the two lines above the status
/// and hint lines, joined where they wrapped.
fn strip_text(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.len().saturating_sub(4);
    lines[at..lines.len().saturating_sub(2)]
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At 80x24 under `NO_COLOR`, as on-call staff open it over SSH: a name
/// too long for its column keeps its distinguishing end, the strip shows
/// the selected endpoint's name and last error whole, and the endpoints
/// keep their cursor while the operator looks at another screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_80x24_long_names_keep_their_end_and_the_strip_shows_them_whole() {
    let seeded = seed(Backend::Sqlite).await;
    let message = "Connection refused (os error 111) to 203.0.113.40:443";
    add_failing_endpoint(&seeded, "appliance-catalog", "price-comparison", message).await;
    let console = Console::launch_with_env(
        &format!("--db '{}' console", seeded.db.url),
        "Overview",
        (80, 24),
        &[],
        "NO_COLOR=1",
    );
    console.keys(&["3"]);
    let screen = console.wait_for("…/price-comparison");
    assert!(
        strip_text(&screen).contains("url https://billing.acme.example/webhooks"),
        "the first endpoint's URL in the strip:\n{screen}"
    );
    assert!(
        !screen.contains("appliance-catalog/price-comparison"),
        "the column is narrower than the name:\n{screen}"
    );
    // The endpoints are listed by name: the third is the long one.
    console.keys(&["j", "j"]);
    let screen = console.wait_until("the long endpoint selected", |s| {
        strip_text(s).starts_with("endpoint appliance-catalog/price-comparison")
    });
    let strip = strip_text(&screen);
    assert!(
        strip.contains(&format!("connect: {message}")),
        "the whole last error in the strip:\n{screen}"
    );
    let attributes = console.screen_with_escapes();
    let coloured = (0..8).any(|c| {
        [
            format!("\x1b[3{c}"),
            format!("\x1b[9{c}"),
            format!(";3{c}m"),
        ]
        .iter()
        .any(|code| attributes.contains(code.as_str()))
    });
    assert!(!coloured, "no colour under NO_COLOR:\n{attributes:?}");

    console.keys(&["2"]);
    console.wait_for("following");
    console.keys(&["3"]);
    let screen = console.wait_until("the endpoints again", |s| {
        s.lines().take(3).any(|l| l.starts_with("Endpoints"))
    });
    assert!(
        strip_text(&screen).starts_with("endpoint appliance-catalog/price-comparison"),
        "the cursor stayed on the endpoint it was on:\n{screen}"
    );
}
