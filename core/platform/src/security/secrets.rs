//! The secret scanner: the secret rules ([`crate::secrets`]) run over
//! files (config files, environment dumps, logs) and over stored text
//! (ticket payloads, results, errors, events; connector audit and effects).
//!
//! A hit is reported by rule, place and length; the secret itself never
//! leaves this module. Files are walked without following symbolic links,
//! up to [`MAX_FILES`] files of at most [`MAX_FILE_BYTES`]; binary files
//! (a NUL in the first 8 KiB, such as SQLite databases) are skipped and
//! counted. The walk also reports token files any user can read.

use std::path::{Path, PathBuf};

use super::{CheckRun, Location, Severity};
pub use crate::secrets::{
    Hit, MAX_REGEX_BYTES, MAX_RULES, RulesError, SHIPPED_RULES, SecretRule, SecretRules,
};

/// Files larger than this are skipped (and counted).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most files one scan reads.
pub const MAX_FILES: usize = 20_000;
/// How deep the walk goes below each scanned path.
pub const MAX_DEPTH: usize = 12;

/// Scans `text` found at `place` into `run`: one observation per rule
/// and place, naming the lines and lengths, never the secret.
pub fn report(rules: &SecretRules, run: &mut CheckRun, place: &Place, text: &str) {
    let hits = rules.scan(text);
    for (i, rule) in rules.rules().iter().enumerate() {
        let mine: Vec<&Hit> = hits.iter().filter(|h| h.rule == i).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let lines: Vec<String> = mine.iter().take(5).map(|h| h.line.to_string()).collect();
        let at = match place {
            Place::File(p) => format!("{} line {}", p.display(), lines.join(", ")),
            Place::Stored(what) => what.clone(),
        };
        let message = format!(
            "{} ({} characters{}) in {at}; the value is not shown",
            rule.description,
            first.len,
            if mine.len() > 1 {
                format!(", {} matches", mine.len())
            } else {
                String::new()
            }
        );
        let location = match place {
            Place::File(p) => Some(Location {
                uri: p.display().to_string(),
                line: Some(first.line),
            }),
            Place::Stored(_) => None,
        };
        run.found_with(
            format!("{} ({})", place.object(), rule.id),
            message,
            rule.severity,
            location,
        );
    }
}

/// Where a text was found.
#[derive(Debug, Clone)]
pub enum Place {
    File(PathBuf),
    /// Stored text: "ticket <id> result", "connector audit 12", …
    Stored(String),
}

impl Place {
    fn object(&self) -> String {
        match self {
            Place::File(p) => format!("file {}", p.display()),
            Place::Stored(what) => what.clone(),
        }
    }
}

/// What a walk over files saw.
#[derive(Debug, Default)]
pub struct WalkStats {
    pub files: usize,
    pub skipped_binary: usize,
    pub skipped_large: usize,
    pub unreadable: usize,
    pub truncated: bool,
}

/// Whether a file's name says it holds a token or key.
fn looks_like_token_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [
        "token",
        "secret",
        "credential",
        "password",
        ".env",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|k| name.contains(k))
        || [".key", ".pem", ".p12", ".pfx"]
            .iter()
            .any(|e| name.ends_with(e))
}

/// Every regular file under `roots` (a root may be a file), without
/// following links.
fn walk(roots: &[PathBuf], stats: &mut WalkStats) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = roots.iter().map(|r| (r.clone(), 0)).collect();
    while let Some((path, depth)) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            if out.len() >= MAX_FILES {
                stats.truncated = true;
                break;
            }
            out.push(path);
        } else if meta.is_dir() && depth < MAX_DEPTH {
            match std::fs::read_dir(&path) {
                Ok(entries) => {
                    let mut children: Vec<PathBuf> =
                        entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
                }
                Err(_) => stats.unreadable += 1,
            }
        }
    }
    out
}

#[cfg(unix)]
fn world_readable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o004 != 0
}

#[cfg(not(unix))]
fn world_readable(_meta: &std::fs::Metadata) -> bool {
    // Windows files carry ACLs, not mode bits; the profile directory is
    // private to its user.
    false
}

/// Scans the files under `roots` for secrets (into `exposed`) and for token
/// files every user can read (into `perms`, together with `token_files`,
/// which are checked whatever their names).
pub fn scan_files(
    rules: &SecretRules,
    roots: &[PathBuf],
    token_files: &[PathBuf],
    exposed: &mut CheckRun,
    perms: &mut CheckRun,
) -> WalkStats {
    let mut stats = WalkStats::default();
    let files = walk(roots, &mut stats);
    let mut permission_checked = 0;
    for path in token_files
        .iter()
        .filter(|p| p.is_file())
        .chain(files.iter().filter(|p| looks_like_token_file(p)))
    {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        permission_checked += 1;
        if world_readable(&meta) {
            perms.found_with(
                format!("file {}", path.display()),
                format!("{} is readable by every user", path.display()),
                Severity::High,
                Some(Location {
                    uri: path.display().to_string(),
                    line: None,
                }),
            );
        }
    }
    perms.observations.dedup_by(|a, b| a.object == b.object);
    perms.evidence = format!("{permission_checked} token files checked");
    for path in &files {
        let text = match read_text(path) {
            Ok(text) => text,
            Err(Unread::Unreadable(_)) => {
                stats.unreadable += 1;
                continue;
            }
            Err(Unread::Large(_)) => {
                stats.skipped_large += 1;
                continue;
            }
            Err(Unread::Binary) => {
                stats.skipped_binary += 1;
                continue;
            }
        };
        stats.files += 1;
        report(rules, exposed, &Place::File(path.clone()), &text);
    }
    stats
}

/// Why a file's text was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    /// Gone, not a regular file (a link is not followed), or not readable.
    Unreadable(String),
    /// Its size, over [`MAX_FILE_BYTES`].
    Large(u64),
    /// A NUL in its first 8 KiB.
    Binary,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Unreadable(why) => f.write_str(why),
            Unread::Large(n) => write!(f, "{n} bytes, over the {MAX_FILE_BYTES} a scan reads"),
            Unread::Binary => f.write_str("a binary file"),
        }
    }
}

/// A file's text as a scan reads it: a regular file (a link is not
/// followed) of at most [`MAX_FILE_BYTES`], not binary.
pub fn read_text(path: &Path) -> Result<String, Unread> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Unread::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(Unread::Unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Unread::Large(meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| Unread::Unreadable(e.to_string()))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(Unread::Binary);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
