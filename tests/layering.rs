//! The layer rules of `docs/ARCHITECTURE.md`, checked on the source tree.
//!
//! Every `crate::...` and `super::...` path in the code under `src/`
//! (comments aside) is read and resolved to the file it names. A failure
//! names the file and line:
//!
//! * `protocol` imports nothing of Warren's; `store` and `access` import only
//!   `protocol`; `engine` imports `store`, `access` and `protocol`; `net` and
//!   `admin` import `engine` and below; nothing imports `net` or `admin` but
//!   the entry points at the root (`main.rs`, `lib.rs`, `config.rs`).
//! * No import loop spans more than one folder: in the graph of files, every
//!   cycle stays inside one folder (those are printed, and listed in
//!   `docs/ARCHITECTURE.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, and what each may import besides itself.
const RULES: &[(&str, &[&str])] = &[
    ("protocol", &[]),
    ("store", &["protocol"]),
    ("access", &["protocol"]),
    ("engine", &["store", "access", "protocol"]),
    ("net", &["engine", "store", "access", "protocol"]),
    ("admin", &["engine", "store", "access", "protocol"]),
];

/// One `crate::` path found in a file.
struct Import {
    file: String,
    line: usize,
    text: String,
    /// The module path after `crate::`, e.g. `["engine", "queue", "Queue"]`.
    path: Vec<String>,
}

/// The layer of a file, by its path under `src/` (`None` for the root files).
fn layer(file: &str) -> Option<&str> {
    let (first, _) = file.split_once('/')?;
    Some(first)
}

/// The folder of a file itself.
fn own_folder(file: &str) -> String {
    match file.rfind('/') {
        Some(i) => file[..i].to_string(),
        None => String::new(),
    }
}

/// The module path of a file: `engine/queue/mod.rs` is `engine::queue`,
/// `engine/queue/expiry.rs` is `engine::queue::expiry`.
fn module_of(file: &str) -> Vec<String> {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// Every `crate::a::b` or `super::a` path in the code (not in comments) of
/// `files`, as a path from the crate root.
fn imports(files: &BTreeMap<String, String>) -> Vec<Import> {
    let mut out = Vec::new();
    for (file, text) in files {
        let module = module_of(file);
        let lines: Vec<&str> = text.lines().collect();
        for (i, raw) in lines.iter().enumerate() {
            // A file's unit tests (`#[cfg(test)] mod tests`, at its end) are
            // not part of the product's structure, and `super` means the
            // file itself there.
            if raw.trim() == "#[cfg(test)]"
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.starts_with("mod "))
            {
                break;
            }
            let code = match raw.find("//") {
                Some(at) => &raw[..at],
                None => raw,
            };
            let mut rest = code;
            loop {
                let crate_at = rest.find("crate::");
                let super_at = rest.find("super::");
                let (at, mut base, skip) = match (crate_at, super_at) {
                    (Some(c), Some(s)) if s < c => (s, module.clone(), 0),
                    (Some(c), _) => (c, Vec::new(), 7),
                    (None, Some(s)) => (s, module.clone(), 0),
                    (None, None) => break,
                };
                // Not part of a longer identifier (`my_crate::`).
                if at > 0 && rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    rest = &rest[at + 7..];
                    continue;
                }
                let mut tail = &rest[at + skip..];
                while let Some(after) = tail.strip_prefix("super::") {
                    base.pop();
                    tail = after;
                }
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                let path: Vec<String> = base
                    .into_iter()
                    .chain(
                        tail[..end]
                            .split("::")
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    )
                    .collect();
                if !path.is_empty() {
                    out.push(Import {
                        file: file.clone(),
                        line: i + 1,
                        text: raw.trim().to_string(),
                        path,
                    });
                }
                rest = &tail[end..];
            }
        }
    }
    out
}

/// The file a module path names (the longest prefix that is a file or a
/// folder's `mod.rs`), given the set of files.
fn file_of(path: &[String], files: &BTreeSet<String>) -> Option<String> {
    let mut found = None;
    let mut dir = String::new();
    for part in path {
        let here = if dir.is_empty() {
            part.clone()
        } else {
            format!("{dir}/{part}")
        };
        if files.contains(&format!("{here}.rs")) {
            return Some(format!("{here}.rs"));
        }
        if files.contains(&format!("{here}/mod.rs")) {
            found = Some(format!("{here}/mod.rs"));
            dir = here;
            continue;
        }
        break;
    }
    found
}

/// Every rule broken in `files` (paths relative to `src/`, with contents),
/// and the import loops that stay inside one folder (allowed, reported).
fn check(files: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for import in imports(files) {
        let target_layer = import.path[0].as_str();
        if let Some(own) = layer(&import.file) {
            let allowed = RULES
                .iter()
                .find(|(l, _)| *l == own)
                .map(|(_, a)| *a)
                .unwrap_or(&[]);
            let known = RULES.iter().any(|(l, _)| *l == target_layer);
            if known && target_layer != own && !allowed.contains(&target_layer) {
                problems.push(format!(
                    "src/{}:{}: {own} must not import {target_layer}: {}",
                    import.file, import.line, import.text
                ));
            }
        }
        if let Some(to) = file_of(&import.path, &names) {
            if to != import.file {
                edges
                    .entry((import.file.clone(), to))
                    .or_insert_with(|| format!("src/{}:{}", import.file, import.line));
            }
        }
    }
    let mut inside = Vec::new();
    for cycle in cycles(&edges) {
        let folders: BTreeSet<String> = cycle.iter().map(|f| own_folder(f)).collect();
        let mut text = format!("import loop between {}:", cycle.join(", "));
        for ((from, to), at) in &edges {
            if cycle.contains(from) && cycle.contains(to) {
                text.push_str(&format!("\n    {from} -> {to} ({at})"));
            }
        }
        if folders.len() > 1 {
            problems.push(text);
        } else {
            inside.push(text);
        }
    }
    (problems, inside)
}

fn violations(files: &BTreeMap<String, String>) -> Vec<String> {
    check(files).0
}

/// The strongly connected groups of more than one file (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, st: &mut State<'a>) {
        let i = st.index.len();
        st.index.insert(v, i);
        st.low.insert(v, i);
        st.stack.push(v);
        st.on_stack.insert(v);
        for &w in &next[v] {
            if !st.index.contains_key(w) {
                visit(w, next, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut group = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                st.out.push(group);
            }
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in next.keys() {
        if !st.index.contains_key(v) {
            visit(v, &next, &mut st);
        }
    }
    st.out
}

fn read_tree(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(base)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("read source");
            out.insert(rel, text);
        }
    }
}

#[test]
fn the_source_tree_follows_the_layer_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() > 30, "found only {} files", files.len());
    let (problems, inside) = check(&files);
    for text in &inside {
        eprintln!("allowed (one folder): {text}");
    }
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_planted_upward_import_is_caught_with_its_file_and_line() {
    let files = tree(&[
        ("lib.rs", "pub mod store;\npub mod net;"),
        ("net/mod.rs", "pub mod outbox;"),
        ("net/outbox.rs", "pub struct Outbox;"),
        ("store/mod.rs", "pub mod log;"),
        (
            "store/log.rs",
            "//! the log\n// crate::net in a comment is fine\nuse crate::net::outbox::Outbox;\n",
        ),
        ("store/meta.rs", "use super::super::net::outbox::Outbox;\n"),
    ]);
    let problems = violations(&files);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("src/store/log.rs:3: store must not import net"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("src/store/meta.rs:1: store must not import net"),
        "{problems:?}"
    );
}

#[test]
fn a_planted_loop_between_folders_is_caught() {
    let files = tree(&[
        ("lib.rs", "pub mod engine;"),
        ("engine/mod.rs", "pub mod vhost;\npub mod queue;"),
        ("engine/vhost.rs", "use crate::engine::queue::Queue;"),
        (
            "engine/queue/mod.rs",
            "use crate::engine::vhost::VHost;\npub struct Queue;",
        ),
    ]);
    let problems = violations(&files);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("import loop between engine/queue/mod.rs, engine/vhost.rs"),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("src/engine/queue/mod.rs:1"),
        "{problems:?}"
    );
}

#[test]
fn a_loop_inside_one_folder_is_allowed() {
    let files = tree(&[
        ("lib.rs", "pub mod engine;"),
        ("engine/mod.rs", "pub mod a;\npub mod b;"),
        ("engine/a.rs", "use crate::engine::b::B;\npub struct A;"),
        ("engine/b.rs", "use crate::engine::a::A;\npub struct B;"),
    ]);
    let (problems, inside) = check(&files);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(inside.len(), 1, "{inside:?}");
}
