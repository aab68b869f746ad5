//! Untrusted text cannot drive a terminal: the real `hookline` binary with
//! an OSC 52 clipboard write, a clear screen and a right-to-left override
//! stored in every field a tenant, a producer, an operator's environment or
//! a receiver can fill. Its tables, `key: value` blocks, errors and text logs
//! must show them as visible escapes (`\x1b]52;…`, `\x1b[2J`, `\u202e`) and
//! never as raw bytes; `--json` must carry the exact values, with no raw
//! ESC, C1 or bidi byte in its text.
//!
//! What cannot carry them is checked to refuse them: names (tenants,
//! endpoints, API keys) and topics. A header value takes no C0 control, so it
//! carries U+202E and the C1 form of the clear screen; a payload is JSON,
//! whose strings escape C0, so it carries the C1 forms and U+202E raw.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ok, stderr, stdout};
use hookline::text::{Breaks, needs_escape, width};
use serde_json::Value;

const OSC52: &str = "\x1b]52;c;aGVsbG8=\x07";
const OSC52_C1: &str = "\u{9d}52;c;aGVsbG8=\u{9c}";
const CLEAR: &str = "\x1b[2J";
const CLEAR_C1: &str = "\u{9b}2J";
const RLO: &str = "\u{202e}";
const OSC52_SHOWN: &str = r"\x1b]52;c;aGVsbG8=\x07";
const CLEAR_SHOWN: &str = r"\x1b[2J";
const RLO_SHOWN: &str = r"\u202e";
/// The operator who pauses the endpoint, and where from (`USER`, `SSH_CLIENT`).
const HOSTILE_USER: &str = "ana\u{202e}\x1b[2J";
const HOSTILE_ADDR: &str = "203.0.113.9\x1b]52;c;aGVsbG8=\x07";
/// An operator whose name is wide: two CJK characters and an emoji.
const WIDE_USER: &str = "東京👍";
/// How long a dispatcher may take to attempt a delivery on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `text` holds a raw character a terminal acts on or that
/// reorders the line (line feeds aside).
fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && needs_escape(c, Breaks::Keep))
}

#[track_caller]
fn assert_clean(output: &str, what: &str) {
    assert!(
        !has_raw_controls(output),
        "{what}: raw controls in the output:\n{output:?}"
    );
}

/// The database: a SQLite file whose very path carries the hostile strings
/// (it shows up in notes and in the dispatcher's log lines).
struct Hostile {
    _dir: tempfile::TempDir,
    path: String,
    url: String,
}

impl Hostile {
    fn new() -> Hostile {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir
            .path()
            .join(format!("db{OSC52}{CLEAR}{RLO}.db"))
            .to_string_lossy()
            .into_owned();
        let url = format!("sqlite://{path}");
        Hostile {
            _dir: dir,
            path,
            url,
        }
    }

    /// `hookline --db URL ARGS` as `user` from `addr`, quiet logs.
    fn command(&self, args: &[&str], user: &str, addr: Option<&str>) -> Command {
        let mut command = common::hookline_command(&self.url, args);
        command.env("USER", user).env_remove("SSH_CONNECTION");
        match addr {
            Some(addr) => command.env("SSH_CLIENT", format!("{addr} 51234 22")),
            None => command.env_remove("SSH_CLIENT"),
        };
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args, "test-operator", None)
            .output()
            .expect("run hookline")
    }

    /// Runs a command that must succeed and print nothing raw; its stdout.
    #[track_caller]
    fn clean(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_clean(&stderr(&output), &format!("stderr of {args:?}"));
        let out = ok(output);
        assert_clean(&out, &format!("{args:?}"));
        out
    }

    /// With `--json`: no raw control in the text, parsed back.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.clean(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
    }

    /// Runs `hookline dispatch` with `log_args` (HOOKLINE_LOG=info), stderr
    /// to a file, until it has logged its start and `done` holds; then
    /// SIGINT. Returns its stderr.
    fn dispatch_until(&self, log_args: &[&str], done: impl Fn() -> bool) -> String {
        let log = format!("{}.{}.log", self.path, log_args.len());
        let file = std::fs::File::create(&log).expect("create the log file");
        let mut args = log_args.to_vec();
        args.push("dispatch");
        let child = self
            .command(&args, "test-operator", None)
            .env("HOOKLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn hookline dispatch");
        let mut child = Guard(child);
        let deadline = Instant::now() + TIMEOUT;
        let started =
            || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("dispatcher started"));
        while !(started() && done()) {
            assert!(
                Instant::now() < deadline,
                "the dispatcher did not get there; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        child.interrupt_and_wait();
        let bytes = std::fs::read(&log).expect("read the log");
        String::from_utf8(bytes).expect("log lines are UTF-8")
    }
}

/// A child process, killed if the test fails before it ends.
struct Guard(Child);

impl Guard {
    fn interrupt_and_wait(&mut self) {
        let pid = i32::try_from(self.0.id()).expect("a pid");
        // SAFETY: kill(2) with a pid this test spawned; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        let status = self.0.wait().expect("wait for the dispatcher");
        assert!(status.success(), "dispatch ended with {status}");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A receiver on 127.0.0.1 that answers every request with a 500 whose
/// body is the hostile strings, raw. Returns its address and a request count.
fn hostile_receiver(body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
    let address = listener.local_addr().expect("its address").to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            read_request(&mut stream);
            seen.fetch_add(1, Ordering::SeqCst);
            let answer = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (address, count)
}

/// Reads one request's head and its `content-length` body.
fn read_request(stream: &mut std::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            return;
        }
    }
}

/// The column, in terminal cells, where `needle` starts in `line`.
fn column_of(line: &str, needle: &str) -> Option<usize> {
    line.find(needle).map(|at| width(&line[..at]))
}

#[test]
fn hostile_text_is_escaped_in_tables_errors_and_logs_and_exact_in_json() {
    let db = Hostile::new();
    let body: &'static str = "\x1b]52;c;aGVsbG8=\x07\x1b[2J\u{202e}gpj.exe\u{9b}2J";
    let (receiver, requests) = hostile_receiver(body);

    // migrate's note names the database path: escaped.
    let migrated = db.clean(&["migrate"]);
    assert!(
        migrated.contains(&format!(
            "db{OSC52_SHOWN}{CLEAR_SHOWN}{RLO_SHOWN}.db migrated"
        )),
        "{migrated}"
    );
    db.clean(&["tenant", "add", "hostile"]);

    // Names and topics refuse them, and the refusal shows them escaped.
    for args in [
        vec!["tenant", "add", HOSTILE_USER],
        vec![
            "endpoint",
            "add",
            "--tenant",
            "hostile",
            "--name",
            HOSTILE_USER,
            "--url",
            "http://127.0.0.1:9/",
        ],
        vec!["apikey", "create", "--name", HOSTILE_ADDR, "--admin"],
        vec![
            "publish",
            "--tenant",
            "hostile",
            "--topic",
            HOSTILE_USER,
            "--payload",
            "{}",
        ],
        vec!["endpoint", "show", OSC52],
    ] {
        let output = db.run(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let error = stderr(&output);
        assert_clean(&error, &format!("the refusal of {args:?}"));
        assert!(error.starts_with("error: "), "{error}");
        assert!(
            [r"\u{202e}", r"\u{1b}", RLO_SHOWN, r"\x1b"]
                .iter()
                .any(|escape| error.contains(escape)),
            "the refusal quotes the input, escaped: {error}"
        );
    }

    // Every field that takes text gets the three strings.
    let url = format!("http://{receiver}/h/{OSC52}?q={CLEAR}{RLO}gpj.exe");
    let description = format!("desc {OSC52} {CLEAR} {RLO}gpj.exe");
    let header = format!("X-Note: v{RLO}{CLEAR_C1}");
    db.clean(&[
        "endpoint",
        "add",
        "--tenant",
        "hostile",
        "--name",
        "receiver",
        "--url",
        &url,
        "--description",
        &description,
        "--header",
        &header,
    ]);
    let sub_description = format!("sub {OSC52}{CLEAR}{RLO}");
    db.clean(&[
        "subscription",
        "add",
        "--endpoint",
        "hostile/receiver",
        "--topic",
        "*",
        "--description",
        &sub_description,
    ]);
    let payload = format!(
        r#"{{"osc":"\u001b]52;c;aGVsbG8=\u0007","c1":"{OSC52_C1}","clear":"{CLEAR_C1}","bidi":"{RLO}gpj.exe"}}"#
    );
    let published = db.json(&[
        "publish",
        "--tenant",
        "hostile",
        "--topic",
        "order.created",
        "--payload",
        &payload,
    ]);
    let event = published["id"].as_str().expect("an event id").to_string();

    // A dispatcher delivers it to the receiver, which answers with them;
    // its text log names the database path.
    let attempted = || {
        requests.load(Ordering::SeqCst) > 0
            && db.json(&["delivery", "list"])[0]["attempts"].as_i64() >= Some(1)
    };
    let log = db.dispatch_until(&[], attempted);
    assert_clean(&log, "the text log");
    let started = log
        .lines()
        .find(|l| l.contains("dispatcher started"))
        .unwrap_or_else(|| panic!("no start line in the log:\n{log}"));
    assert!(
        started.contains(&format!(
            "database={}",
            hookline::text::escape_controls(&db.path)
        )),
        "{started}"
    );
    assert!(started.contains(&format!("db{OSC52_SHOWN}{CLEAR_SHOWN}{RLO_SHOWN}.db")));
    assert!(
        log.lines()
            .all(|l| l.contains(" INFO ") || l.contains(" WARN ")),
        "{log}"
    );

    // The same in JSON logs: the exact path, no raw ESC, C1 or bidi byte.
    let json_log = db.dispatch_until(&["--log-format", "json"], || true);
    assert_clean(&json_log, "the JSON log");
    let lines: Vec<Value> = json_log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "dispatcher started")
        .unwrap_or_else(|| panic!("no start line:\n{json_log}"));
    assert_eq!(started["fields"]["database"], db.path.as_str());
    assert!(json_log.contains(r"\u202e"), "{json_log}");

    // An operator with a hostile name and address pauses it, giving a
    // hostile reason; another with a wide name changes its timeout.
    let reason = format!("paused {OSC52} {CLEAR} {RLO}");
    let paused = db
        .command(
            &["endpoint", "pause", "hostile/receiver", "--reason", &reason],
            HOSTILE_USER,
            Some(HOSTILE_ADDR),
        )
        .output()
        .expect("pause");
    assert_clean(&ok(paused), "pause");
    let updated = db
        .command(
            &["endpoint", "update", "hostile/receiver", "--timeout", "5s"],
            WIDE_USER,
            None,
        )
        .output()
        .expect("update");
    assert_clean(&ok(updated), "update");

    // Tables and blocks: every field shows its escapes.
    let url_shown = format!("/h/{OSC52_SHOWN}?q={CLEAR_SHOWN}{RLO_SHOWN}gpj.exe");
    let endpoints = db.clean(&["endpoint", "list"]);
    assert!(endpoints.contains(&url_shown), "{endpoints}");
    let shown = db.clean(&["endpoint", "show", "hostile/receiver"]);
    for field in [
        url_shown.clone(),
        format!("desc {OSC52_SHOWN} {CLEAR_SHOWN} {RLO_SHOWN}gpj.exe"),
        r#"["x-note: v\u202e\u009b2J"]"#.to_string(),
        format!("paused {OSC52_SHOWN} {CLEAR_SHOWN} {RLO_SHOWN}"),
    ] {
        assert!(shown.contains(&field), "{field} in:\n{shown}");
    }
    let subscriptions = db.clean(&["subscription", "list"]);
    assert!(
        subscriptions.contains(&format!("sub {OSC52_SHOWN}{CLEAR_SHOWN}{RLO_SHOWN}")),
        "{subscriptions}"
    );
    let deliveries = db.json(&["delivery", "list"]);
    let delivery = deliveries[0]["id"]
        .as_str()
        .expect("a delivery id")
        .to_string();
    db.clean(&["delivery", "list"]);
    let detail = db.clean(&["delivery", "show", &delivery]);
    for field in [
        r#""osc": "\u001b]52;c;aGVsbG8=\u0007""#,
        r#""c1": "\u009d52;c;aGVsbG8=\u009c""#,
        r#""clear": "\u009b2J""#,
        r#""bidi": "\u202egpj.exe""#,
        r"response: \x1b]52;c;aGVsbG8=\x07\x1b[2J\u202egpj.exe\u009b2J",
    ] {
        assert!(detail.contains(field), "{field} in:\n{detail}");
    }
    let event_detail = db.clean(&["delivery", "show", &event]);
    assert!(
        event_detail.contains(r#""c1":"\u009d52;c;aGVsbG8=\u009c","clear":"\u009b2J""#),
        "{event_detail}"
    );
    let audit = db.clean(&["audit"]);
    for field in [
        r"ana\u202e\x1b[2J",
        r"203.0.113.9\x1b]52;c;aGVsbG8=\x07",
        r#""reason":"paused \u001b]52;c;aGVsbG8=\u0007 \u001b[2J \u202e""#,
    ] {
        assert!(audit.contains(field), "{field} in:\n{audit}");
    }
    for args in [
        vec!["tenant", "list"],
        vec!["apikey", "list"],
        vec!["dispatchers"],
    ] {
        db.clean(&args);
    }

    // Columns line up by terminal cells: the wide name, the escapes and
    // plain names all end where the next column starts.
    let header = audit.lines().next().expect("a header");
    let source = column_of(header, "SOURCE").expect("SOURCE in the header");
    for row in audit.lines().skip(1) {
        assert_eq!(
            column_of(row, " cli ").map(|c| c + 1),
            Some(source),
            "the SOURCE column moved:\n{audit}"
        );
    }
    assert!(audit.contains(WIDE_USER), "{audit}");

    // JSON: the exact values, and no raw control in the text (checked by
    // `json`): C1 and bidi characters are written as \uXXXX.
    let endpoint = db.json(&["endpoint", "show", "hostile/receiver"]);
    assert_eq!(endpoint["url"], url.as_str());
    assert_eq!(endpoint["description"], description.as_str());
    assert_eq!(endpoint["headers"]["x-note"], format!("v{RLO}{CLEAR_C1}"));
    assert_eq!(endpoint["state_reason"], reason.as_str());
    let listed = db.json(&["endpoint", "list"]);
    assert_eq!(listed[0]["url"], url.as_str());
    let subscriptions = db.json(&["subscription", "list"]);
    assert_eq!(subscriptions[0]["description"], sub_description.as_str());
    let detail = db.json(&["delivery", "show", &delivery]);
    let published: Value = serde_json::from_str(&payload).expect("the payload is JSON");
    assert_eq!(detail["event"]["payload"], published);
    assert_eq!(detail["attempts"][0]["response_body"], body);
    assert_eq!(
        detail["attempts"][0]["request_headers"]["webhook-id"],
        event.as_str()
    );
    let event_json = db.json(&["delivery", "show", &event]);
    assert_eq!(event_json["payload"], published);
    let audit = db.json(&["audit"]);
    let pause = audit
        .as_array()
        .and_then(|a| a.iter().find(|e| e["action"] == "endpoint.pause"))
        .unwrap_or_else(|| panic!("no pause in the audit log: {audit}"));
    assert_eq!(pause["actor"], HOSTILE_USER);
    assert_eq!(pause["from"], HOSTILE_ADDR);
    assert_eq!(pause["detail"]["reason"], reason.as_str());
    let raw = stdout(&db.run(&["delivery", "show", &delivery, "--json"]));
    assert!(raw.contains(r"\u202e") && raw.contains(r"\u009d"), "{raw}");
}

/// Clean text prints exactly as before: a wide name pads by cells, and a
/// line break in a multi-line value keeps its line, indented under the
/// values.
#[test]
fn multi_line_values_stay_under_their_key() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", Path::new(dir.path()).join("h.db").display());
    let run = |args: &[&str]| ok(common::hookline_command(&url, args).output().expect("run"));
    run(&["migrate"]);
    run(&["tenant", "add", "acme"]);
    run(&[
        "endpoint",
        "add",
        "--tenant",
        "acme",
        "--name",
        "prod",
        "--url",
        "http://127.0.0.1:9/",
    ]);
    run(&["subscription", "add", "--endpoint", "prod", "--topic", "*"]);
    let published = run(&[
        "publish",
        "--tenant",
        "acme",
        "--topic",
        "a.b",
        "--payload",
        "{\"a\":\n 1}",
        "--json",
    ]);
    let event: Value = serde_json::from_str(&published).expect("JSON");
    let event = event["id"].as_str().expect("an id");
    let shown = run(&["delivery", "show", event]);
    assert!(
        shown.contains("payload:     {\"a\":\n              1}\n"),
        "{shown}"
    );
}
