//! The layer order written in ARCHITECTURE.md ("## Layers"), held by a
//! test: no crate depends on one above it (Cargo refuses cycles, not
//! upward edges), a domain crate depends on the kernel alone, and inside
//! each crate no module imports (`use crate::x`, a `crate::x::…` path, or
//! `super::x` from a top-level file) a module ranked above it. A crate's
//! root (lib.rs, main.rs) declares the modules and holds what they share;
//! edges to and from it are not ranked. Test code (`tests.rs`, `testing.rs`,
//! `fixtures.rs`, `#[cfg(test)]` blocks) is left out.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `## Layers` section: `- name: a, b < c < d` lines, ranks by position.
fn layers() -> HashMap<String, HashMap<String, usize>> {
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut out = HashMap::new();
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let Some((name, order)) = rest.split_once("`: ") else {
            continue;
        };
        let mut ranks = HashMap::new();
        for (rank, level) in order.trim_end_matches('.').split(" < ").enumerate() {
            for item in level.split(", ") {
                ranks.insert(item.trim().trim_matches('`').to_owned(), rank);
            }
        }
        out.insert(name.to_owned(), ranks);
    }
    out
}

/// The crates under core/ with the internal crates each depends on.
fn crates() -> Vec<(String, PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("core")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or("")
            .split("\n[")
            .next()
            .unwrap()
            .lines()
            .filter_map(|l| l.split(['.', ' ']).next())
            .filter(|d| d.starts_with("oshal-"))
            .map(str::to_owned)
            .collect();
        out.push((name, dir, deps));
    }
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let name = p.file_name().unwrap().to_str().unwrap();
            if !matches!(name, "tests.rs" | "testing.rs" | "fixtures.rs") {
                out.push(p);
            }
        }
    }
}

/// Each module this code names through `crate::`, with its line number;
/// `super::x` counts too when `top_level` (a file directly in src/).
fn imports(code: &str, top_level: bool) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut prefixes = vec!["crate::"];
    if top_level {
        prefixes.push("super::");
    }
    // A `use` statement, gathered over its lines: (text, first line).
    let mut statement: Option<(String, usize)> = None;
    for (n, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break; // the rest of the file is its test module
        }
        let line = line.split("//").next().unwrap();
        let trimmed = line.trim_start();
        let opens_use = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|u| trimmed.strip_prefix(u));
        if let Some(rest) = opens_use {
            statement = Some((String::new(), n + 1));
            if let Some((text, _)) = &mut statement {
                text.push_str(rest);
            }
        } else if let Some((text, _)) = &mut statement {
            text.push_str(trimmed);
        } else {
            for prefix in &prefixes {
                for (i, _) in line.match_indices(prefix) {
                    push_head(&line[i + prefix.len()..], n + 1, &mut out);
                }
            }
        }
        if let Some((text, first)) = statement.take_if(|(t, _)| t.contains(';')) {
            let text = text.split(';').next().unwrap().trim();
            for prefix in &prefixes {
                if let Some(tree) = text.strip_prefix(prefix) {
                    for head in tree_heads(tree) {
                        out.push((head, first));
                    }
                }
            }
        }
    }
    out
}

/// The first names of a use tree: `a::b` gives `a`, `{a, b::{c, d}}`
/// gives `a` and `b`.
fn tree_heads(tree: &str) -> Vec<String> {
    let Some(inner) = tree.strip_prefix('{') else {
        return head(tree).into_iter().collect();
    };
    let mut heads = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.extend(head(&inner[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.extend(head(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    heads
}

fn head(item: &str) -> Option<String> {
    let head: String = item
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    (!head.is_empty() && head != "self").then_some(head)
}

fn push_head(item: &str, line: usize, out: &mut Vec<(String, usize)>) {
    if let Some(h) = head(item) {
        out.push((h, line));
    }
}

#[test]
fn no_crate_depends_on_one_above_it_and_domains_on_the_kernel_alone() {
    let layers = layers();
    let order = &layers["crates"];
    let mut checked = 0;
    for (name, _, deps) in crates() {
        let rank = *order
            .get(&name)
            .unwrap_or_else(|| panic!("crate {name} has no place in ARCHITECTURE.md's layers"));
        for dep in deps {
            let dep_rank = order[&dep];
            assert!(
                dep_rank < rank,
                "{name} depends on {dep}, which is not below it in ARCHITECTURE.md's layers"
            );
            checked += 1;
        }
    }
    for (name, _, deps) in crates() {
        if layers["domains"].contains_key(&name) {
            assert_eq!(
                deps,
                ["oshal-kernel"],
                "{name} must depend on the kernel alone"
            );
        }
    }
    assert!(checked >= 10, "read only {checked} dependencies");
}

#[test]
fn no_module_imports_one_ranked_above_it() {
    let layers = layers();
    let mut violations = Vec::new();
    let mut edges = 0;
    for (name, dir, _) in crates() {
        let Some(ranks) = layers.get(&name) else {
            continue;
        };
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let module = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let Some(&mine) = ranks.get(&module) else {
                violations.push(format!(
                    "{name}: module {module} has no place in ARCHITECTURE.md's layers"
                ));
                continue;
            };
            let code = std::fs::read_to_string(&file).unwrap();
            let top_level = rel.components().count() == 1;
            for (target, line) in imports(&code, top_level) {
                // Not a module of this crate: a lower crate's, re-exported.
                let Some(&theirs) = ranks.get(&target) else {
                    continue;
                };
                edges += 1;
                if theirs > mine {
                    violations.push(format!(
                        "{}:{line}: {module} imports {target}, which is above it",
                        file.strip_prefix(repo()).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert!(edges >= 50, "read only {edges} imports");
}

#[test]
fn the_import_reader_sees_groups_paths_and_super() {
    let code = "use crate::{a, b::c,\n    d::{e, f}};\nlet x = crate::g::h();\npub(crate) use super::k;\n#[cfg(test)]\nuse crate::z;";
    let heads: Vec<String> = imports(code, true).into_iter().map(|(h, _)| h).collect();
    assert_eq!(heads, ["a", "b", "d", "g", "k"]);
    let heads: Vec<String> = imports("use super::k;", false)
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert!(heads.is_empty());
}
