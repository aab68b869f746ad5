//! The Prometheus alert rules shipped in `docs/alerts.yml`: promtool's unit
//! tests in `docs/alerts.test.yml` pass (each alert fires when it should, with
//! the expected labels and expanded annotations, and stays quiet when it
//! should), `promtool check rules` accepts the file, every alert tells the
//! on-call engineer what to open (`hookline console` or `hookline
//! dispatchers`), and every hookline metric the expressions use is documented
//! in `docs/operations.md`.
//!
//! Needs `promtool` on PATH (Debian's `prometheus` package; `.ci/run`
//! installs it).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The alerts the rule file must define.
const ALERTS: [&str; 6] = [
    "HooklineEndpointFailing",
    "HooklineDeadDeliveriesRising",
    "HooklineNoDispatcherAlive",
    "HooklineOldestDueTooOld",
    "HooklineApiErrors",
    "HooklinePublishLatencyHigh",
];

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs promtool in `dir`, failing the test with an install hint when it is
/// missing, and with its output when it does not succeed.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let output: Output = match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "promtool is not on PATH: install Debian's `prometheus` package \
             (apt-get install --no-install-recommends prometheus; .ci/run installs it)"
        ),
        Err(e) => panic!("running promtool {}: {e}", args.join(" ")),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`promtool {}` in {} failed ({}):\n{text}",
        args.join(" "),
        dir.display(),
        output.status
    );
    text
}

#[test]
fn promtool_unit_tests_pass() {
    let out = promtool(&docs(), &["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "promtool test rules said:\n{out}");
}

#[test]
fn promtool_accepts_the_rule_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = promtool(root, &["check", "rules", "docs/alerts.yml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "promtool check rules said:\n{out}"
    );
}

/// One alerting rule, as much of it as these tests read.
#[derive(Debug, Default)]
struct Alert {
    name: String,
    expr: String,
    summary: String,
    description: String,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A plain scalar's value without its quotes.
fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['\'', '"'] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// The alerts of a rule file, read line by line (there is no YAML parser
/// among the dependencies): `- alert: NAME` starts one; `expr`, `summary`
/// and `description` are taken inline or as a block scalar (`|`, `>-`, …)
/// made of the lines indented deeper than their key. Whitespace, including
/// the line breaks of block scalars, is collapsed to single spaces.
fn parse_alerts(text: &str) -> Vec<Alert> {
    let lines: Vec<&str> = text.lines().collect();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alerts.push(Alert {
                name: unquote(name).to_string(),
                ..Alert::default()
            });
            continue;
        }
        let Some(alert) = alerts.last_mut() else {
            continue;
        };
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let field = match key {
            "expr" => &mut alert.expr,
            "summary" => &mut alert.summary,
            "description" => &mut alert.description,
            _ => continue,
        };
        let value = value.trim();
        let raw = if value.starts_with('|') || value.starts_with('>') {
            let mut block = Vec::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line))
            {
                block.push(lines[i].trim());
                i += 1;
            }
            block.join(" ")
        } else {
            unquote(value).to_string()
        };
        *field = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    alerts
}

fn rule_file() -> Vec<Alert> {
    let alerts = parse_alerts(&read(&docs().join("alerts.yml")));
    let names: Vec<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ALERTS, "the alerts in docs/alerts.yml");
    alerts
}

#[test]
fn every_alert_says_what_to_open() {
    for alert in rule_file() {
        assert!(!alert.expr.is_empty(), "{}: no expr", alert.name);
        assert!(!alert.summary.is_empty(), "{}: no summary", alert.name);
        assert!(
            !alert.description.is_empty(),
            "{}: no description",
            alert.name
        );
        assert!(
            alert.description.contains("hookline console")
                || alert.description.contains("hookline dispatchers"),
            "{}: the description names neither `hookline console` nor \
             `hookline dispatchers`:\n{}",
            alert.name,
            alert.description
        );
    }
}

/// The `hookline_…` names in `text`, whole words only.
fn hookline_names(text: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hookline_") {
        let preceded_by_name = rest[..at].chars().next_back().is_some_and(is_name_char);
        let tail = &rest[at..];
        let end = tail.find(|c| !is_name_char(c)).unwrap_or(tail.len());
        if !preceded_by_name {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The metric families the alerts' expressions use: a histogram's
/// `_bucket`, `_sum` and `_count` series count as their family.
fn metric_families(alerts: &[Alert]) -> BTreeSet<String> {
    let mut families = BTreeSet::new();
    for alert in alerts {
        for name in hookline_names(&alert.expr) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            families.insert(family.to_string());
        }
    }
    families
}

/// The metrics a documentation text leaves out.
fn undocumented(families: &BTreeSet<String>, doc: &str) -> Vec<String> {
    let documented = hookline_names(doc);
    families
        .iter()
        .filter(|family| !documented.contains(*family))
        .cloned()
        .collect()
}

#[test]
fn every_metric_used_is_documented() {
    let families = metric_families(&rule_file());
    assert!(
        families.contains("hookline_delivery_latency_seconds")
            && families.contains("hookline_endpoint_attempts_total"),
        "metric families read from docs/alerts.yml: {families:?}"
    );
    let missing = undocumented(&families, &read(&docs().join("operations.md")));
    assert!(
        missing.is_empty(),
        "metrics used by docs/alerts.yml but missing from docs/operations.md \
         (its Health and metrics table): {missing:?}"
    );
}
