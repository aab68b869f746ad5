//! The layering of ARCHITECTURE.md, checked on the source: every `crate::…`
//! path a module names (in `use` lines or inline) must point at a layer the
//! table below allows, so the layers cannot drift apart unnoticed.
//!
//! Test code (`*_tests.rs` files and everything after a file's first
//! `#[cfg(test)]`) is exempt: tests may stand up a real receiver anywhere.

use std::path::{Path, PathBuf};

/// Plain data and pure functions: they may import only each other. Also
/// the process's metric instruments, which every layer records into (as it
/// logs through `tracing`) and which know nothing of any layer.
const PLAIN: &[&str] = &[
    "model", "topic", "api_key", "config", "health", "sign", "redact", "seal", "text", "held",
    "metrics", "protect", "cause",
];

/// What each layer may import besides the plain modules; `None` means
/// anything (the modules that compose the system).
fn allowed(layer: &str) -> Option<&'static [&'static str]> {
    match layer {
        "model" | "topic" | "api_key" | "config" | "health" | "sign" | "redact" | "seal"
        | "text" | "held" | "metrics" | "protect" | "cause" => Some(&[]),
        "store" => Some(&[]),
        "dispatch" => Some(&["store"]),
        "prune" => Some(&["dispatch", "store"]),
        "ops" => Some(&["dispatch", "store"]),
        // The read side of the store only: no `Store` (see `writes_through_store`).
        "api" | "console" | "sink" => Some(&["ops", "store"]),
        "demo" | "bench" => None,
        other => panic!("{other} is in no layer of tests/layers.rs: add it to the table"),
    }
}

/// Layers that may read the store but never hold the handle that writes.
const READ_ONLY: &[&str] = &["api", "console", "sink"];

/// One forbidden arrow: where, and what it points at.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    target: String,
}

/// The crate-level modules `code` names through `crate::`, with their line numbers.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                for name in
                    top_level_names(group, &code.lines().skip(number + 1).collect::<Vec<_>>())
                {
                    found.push((number + 1, name));
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((number + 1, name));
                }
            }
            rest = after;
        }
    }
    found
}

/// The first path segment of each item in a `use crate::{…}` group, which
/// may span lines (`first` is the rest of the opening line).
fn top_level_names(first: &str, following: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut expecting_name = true;
    for c in std::iter::once(first)
        .chain(following.iter().copied())
        .flat_map(|l| l.chars().chain(['\n']))
    {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting_name = true,
            c if expecting_name && (c.is_ascii_alphanumeric() || c == '_') => current.push(c),
            _ if expecting_name && !current.is_empty() => {
                names.push(std::mem::take(&mut current));
                expecting_name = false;
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        names.push(current);
    }
    names
}

/// `source` without comments and without its test code.
fn production_code(source: &str) -> String {
    let code = match source.find("#[cfg(test)]") {
        Some(at) => &source[..at],
        None => source,
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a read-only layer's `code` takes the writing `Store` handle from
/// the store (`crate::store::Store`, or `Store` in a `crate::store::{…}` group).
fn writes_through_store(code: &str) -> Option<usize> {
    let lines: Vec<&str> = code.lines().collect();
    lines.iter().enumerate().find_map(|(number, line)| {
        let mut rest = *line;
        while let Some(at) = rest.find("crate::store::") {
            let after = &rest[at + "crate::store::".len()..];
            let names = match after.strip_prefix('{') {
                Some(group) => group_items(group, &lines[number + 1..]),
                None => vec![
                    after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                ],
            };
            if names.iter().any(|name| name == "Store") {
                return Some(number + 1);
            }
            rest = after;
        }
        None
    })
}

/// The last path segment of each item of a `{…}` group (`first` is the
/// rest of the opening line): the names it brings into scope.
fn group_items(first: &str, following: &[&str]) -> Vec<String> {
    let mut text = String::from(first);
    for line in following {
        if text.contains('}') {
            break;
        }
        text.push_str(line);
    }
    let body = text.split('}').next().unwrap_or_default();
    body.split(',')
        .filter_map(|item| item.rsplit("::").next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The forbidden arrows in one file of `layer`.
fn check(file: &str, layer: &str, source: &str) -> Vec<Violation> {
    let code = production_code(source);
    let mut violations = Vec::new();
    if let Some(may) = allowed(layer) {
        for (line, target) in crate_paths(&code) {
            let fine = target == layer
                || PLAIN.contains(&target.as_str())
                || may.contains(&target.as_str());
            if !fine {
                violations.push(Violation {
                    file: file.to_string(),
                    line,
                    target: format!("crate::{target}"),
                });
            }
        }
    }
    if READ_ONLY.contains(&layer)
        && let Some(line) = writes_through_store(&code)
    {
        violations.push(Violation {
            file: file.to_string(),
            line,
            target: "store::Store (the read-only layers use store::Reads)".to_string(),
        });
    }
    violations
}

/// Every library source file under `dir` with its layer (the first path
/// component under `src/`); the binary's own files (`main.rs`, `cli/`) may
/// import anything and are left out.
fn library_files(dir: &Path, src: &Path, files: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            library_files(&path, src, files);
            continue;
        }
        let Some(relative) = path.strip_prefix(src).ok().map(Path::to_path_buf) else {
            continue;
        };
        let name = relative.to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name.ends_with("_tests.rs") {
            continue;
        }
        let layer = name
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(layer.as_str(), "main" | "lib" | "cli") {
            continue;
        }
        files.push((path, layer));
    }
}

#[test]
fn every_import_follows_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    library_files(&src, &src, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut violations = Vec::new();
    for (path, layer) in &files {
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let shown = path
            .strip_prefix(&src)
            .unwrap_or(path)
            .display()
            .to_string();
        violations.extend(check(&shown, layer, &source));
    }
    assert!(
        violations.is_empty(),
        "imports the layer table forbids (ARCHITECTURE.md, tests/layers.rs):\n{}",
        violations
            .iter()
            .map(|v| format!("  src/{}:{} -> {}", v.file, v.line, v.target))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_check_finds_forbidden_arrows_in_every_form() {
    let store = "use crate::model::Event;\nuse crate::{\n    topic::Topic,\n    dispatch::Slots,\n};\nfn f() { crate::ops::Ops::new(); }\n";
    let found: Vec<String> = check("store/x.rs", "store", store)
        .into_iter()
        .map(|v| format!("{}:{}", v.line, v.target))
        .collect();
    assert_eq!(found, ["2:crate::dispatch", "6:crate::ops"]);

    let console = "use crate::store::{Reads, Store};\n";
    assert_eq!(check("console/x.rs", "console", console).len(), 1);
    let console =
        "use crate::store::{Reads, StoreError};\nfn f() { crate::store::Store::open(); }\n";
    assert_eq!(check("console/x.rs", "console", console).len(), 1);
    let api = "use crate::store::{\n    Reads,\n    StoreError,\n};\nmatch e { OpsError::Store(e) => e }\n";
    assert!(check("api/x.rs", "api", api).is_empty());

    let tests_only =
        "use crate::model::Event;\n#[cfg(test)]\nmod tests { use crate::sink::start; }\n";
    assert!(check("dispatch/x.rs", "dispatch", tests_only).is_empty());
    let commented = "// see crate::ops for why\nuse crate::store::Store;\n";
    assert!(check("dispatch/x.rs", "dispatch", commented).is_empty());
}
