//! Secret scanning: rules (a documented TOML format, shipped in
//! `assets/security/secret-rules.toml`), and the scanner that runs them over
//! files (config files, environment dumps, logs) and over stored text
//! (ticket payloads, results, errors, events; connector audit and effects).
//!
//! The same rules guard the door: [`SecretRules::guard`] refuses a ticket
//! whose payload holds a secret, so none reaches a bot, a model or the
//! store (credentials reach tools through the token broker only); and the
//! way back: [`SecretRules::redact`] blanks one in a reply or an error
//! before the controller keeps it.
//!
//! A hit is reported by rule, place and length; the secret itself never
//! leaves this module. Files are walked without following symbolic links,
//! up to [`MAX_FILES`] files of at most [`MAX_FILE_BYTES`]; binary files
//! (a NUL in the first 8 KiB, such as SQLite databases) are skipped and
//! counted. The walk also reports token files any user can read.

use regex::Regex;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use super::{CheckRun, Location, Severity};
use crate::ticket::{TicketError, Work};

/// The shipped rules.
pub const SHIPPED_RULES: &str = include_str!("../../../assets/security/secret-rules.toml");
/// The most rules a file may hold.
pub const MAX_RULES: usize = 256;
/// The longest regex a rule may hold, in bytes.
pub const MAX_REGEX_BYTES: usize = 4096;
/// Files larger than this are skipped (and counted).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most files one scan reads.
pub const MAX_FILES: usize = 20_000;
/// How deep the walk goes below each scanned path.
pub const MAX_DEPTH: usize = 12;

/// A rules file that cannot be used, naming the field and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RulesError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> RulesError {
    RulesError {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    description: String,
    regex: String,
    #[serde(default)]
    secret_group: usize,
    keywords: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecretRule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    regex: Regex,
    group: usize,
    keywords: Vec<String>,
    allow: Vec<Regex>,
}

/// A set of rules, in file order (an earlier rule wins where two match the
/// same text).
#[derive(Debug, Clone)]
pub struct SecretRules(Vec<SecretRule>);

/// One secret found: which rule, on which line (1-based), how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub line: u32,
    pub len: usize,
}

impl SecretRules {
    pub fn shipped() -> Self {
        Self::from_toml(SHIPPED_RULES).expect("the shipped secret rules parse")
    }

    /// The shipped rules, compiled once per process.
    pub fn shipped_shared() -> Arc<Self> {
        static SHIPPED: LazyLock<Arc<SecretRules>> =
            LazyLock::new(|| Arc::new(SecretRules::shipped()));
        SHIPPED.clone()
    }

    /// Refuses work whose payload holds a secret, naming the field, the rule
    /// and the secret's length and line, never the secret. Every text the
    /// payload carries is read: a chat's prompt and system text, a tool
    /// call's prompt and its params.
    pub fn guard(&self, work: &Work) -> Result<(), TicketError> {
        let check = |field: &'static str, text: &str| match self.scan(text).first() {
            None => Ok(()),
            Some(hit) => Err(TicketError::Invalid {
                field,
                reason: format!(
                    "holds what looks like a secret ({}, {} characters, line {}); \
                     credentials reach tools through the token broker, never in a ticket",
                    self.0[hit.rule].id, hit.len, hit.line
                ),
            }),
        };
        match work {
            Work::Chat(c) => {
                check("payload.prompt", &c.prompt)?;
                check("payload.system", c.system.as_deref().unwrap_or(""))
            }
            Work::Tool(t) => {
                check("payload.prompt", t.prompt.as_deref().unwrap_or(""))?;
                // As JSON, so `{"password": "…"}` reads as an assignment.
                check("payload.params", &t.params.to_string())
            }
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| bad("rules", e.message().to_owned()))?;
        if file.rules.is_empty() || file.rules.len() > MAX_RULES {
            return Err(bad("rules", format!("must hold 1..={MAX_RULES} rules")));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, raw) in file.rules.into_iter().enumerate() {
            let f = |name: &str| format!("rules[{i}].{name}");
            let id_ok = !raw.id.is_empty()
                && raw.id.len() <= 64
                && raw
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !id_ok {
                return Err(bad(f("id"), "must be 1..=64 characters of a-z, 0-9 or '-'"));
            }
            if rules.iter().any(|r: &SecretRule| r.id == raw.id) {
                return Err(bad(f("id"), format!("{:?} is used twice", raw.id)));
            }
            if raw.description.trim().is_empty() || raw.description.len() > 200 {
                return Err(bad(f("description"), "must be 1..=200 bytes"));
            }
            if raw.regex.len() > MAX_REGEX_BYTES {
                return Err(bad(
                    f("regex"),
                    format!("longer than {MAX_REGEX_BYTES} bytes"),
                ));
            }
            let regex = Regex::new(&raw.regex).map_err(|e| bad(f("regex"), e.to_string()))?;
            if raw.secret_group >= regex.captures_len() {
                return Err(bad(
                    f("secret_group"),
                    format!(
                        "the regex has {} groups, so at most {}",
                        regex.captures_len() - 1,
                        regex.captures_len() - 1
                    ),
                ));
            }
            if raw.keywords.is_empty() || raw.keywords.iter().any(|k| k.trim().is_empty()) {
                return Err(bad(f("keywords"), "at least one, none empty"));
            }
            let allow = raw
                .allow
                .iter()
                .enumerate()
                .map(|(j, a)| {
                    Regex::new(a).map_err(|e| bad(format!("rules[{i}].allow[{j}]"), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let severity = match raw.severity.as_deref() {
                None => Severity::High,
                Some(s) => Severity::parse(s).ok_or_else(|| {
                    bad(f("severity"), "must be info, low, medium, high or critical")
                })?,
            };
            rules.push(SecretRule {
                id: raw.id,
                description: raw.description,
                severity,
                regex,
                group: raw.secret_group,
                keywords: raw.keywords.iter().map(|k| k.to_lowercase()).collect(),
                allow,
            });
        }
        Ok(Self(rules))
    }

    pub fn rules(&self) -> &[SecretRule] {
        &self.0
    }

    /// Every secret in `text`. Where two rules match overlapping text, the
    /// earlier rule's hit is kept.
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        self.spans(text).into_iter().map(|(_, _, h)| h).collect()
    }

    /// `text` with every secret replaced by `[redacted: <rule>]`; borrowed
    /// when there is none.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, hit) in spans {
            out.push_str(&text[at..start]);
            out.push_str(&format!("[redacted: {}]", self.0[hit.rule].id));
            at = end;
        }
        out.push_str(&text[at..]);
        std::borrow::Cow::Owned(out)
    }

    /// `value` with its secrets redacted: each string as by [`Self::redact`],
    /// and a string that holds none alone but does under its key, read as
    /// JSON (`"password": "…"`), replaced whole.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => match self.redact(s) {
                                std::borrow::Cow::Owned(r) => Value::String(r),
                                std::borrow::Cow::Borrowed(_) => {
                                    let pair = serde_json::json!({ k: s }).to_string();
                                    match self.scan(&pair).first() {
                                        Some(hit) => Value::String(format!(
                                            "[redacted: {}]",
                                            self.0[hit.rule].id
                                        )),
                                        None => v.clone(),
                                    }
                                }
                            },
                            other => self.redact_json(other),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Each secret's byte span and hit, in order of position.
    fn spans(&self, text: &str) -> Vec<(usize, usize, Hit)> {
        let lower = text.to_lowercase();
        let mut spans: Vec<(usize, usize, Hit)> = Vec::new();
        for (i, rule) in self.0.iter().enumerate() {
            if !rule.keywords.iter().any(|k| lower.contains(k.as_str())) {
                continue;
            }
            for caps in rule.regex.captures_iter(text) {
                let Some(m) = caps.get(rule.group) else {
                    continue;
                };
                if rule.allow.iter().any(|a| a.is_match(m.as_str())) {
                    continue;
                }
                if spans.iter().any(|(s, e, _)| m.start() < *e && *s < m.end()) {
                    continue;
                }
                let line = text[..m.start()].bytes().filter(|b| *b == b'\n').count() as u32 + 1;
                spans.push((
                    m.start(),
                    m.end(),
                    Hit {
                        rule: i,
                        line,
                        len: m.as_str().chars().count(),
                    },
                ));
            }
        }
        spans.sort_by_key(|(s, _, _)| *s);
        spans
    }

    /// Scans `text` found at `place` into `run`: one observation per rule
    /// and place, naming the lines and lengths, never the secret.
    pub fn report(&self, run: &mut CheckRun, place: &Place, text: &str) {
        let hits = self.scan(text);
        for (i, rule) in self.0.iter().enumerate() {
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
        let Ok(meta) = std::fs::metadata(path) else {
            stats.unreadable += 1;
            continue;
        };
        if meta.len() > MAX_FILE_BYTES {
            stats.skipped_large += 1;
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
            stats.unreadable += 1;
            continue;
        };
        if bytes[..bytes.len().min(8192)].contains(&0) {
            stats.skipped_binary += 1;
            continue;
        }
        stats.files += 1;
        rules.report(
            exposed,
            &Place::File(path.clone()),
            &String::from_utf8_lossy(&bytes),
        );
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_find_secrets_and_spare_placeholders() {
        let rules = SecretRules::shipped();
        let id = |text: &str| -> Vec<String> {
            rules
                .scan(text)
                .iter()
                .map(|h| rules.rules()[h.rule].id.clone())
                .collect()
        };
        assert_eq!(id("aws = AKIAZ7Q4LMNB2XKD3PQR"), ["aws-access-key-id"]);
        assert_eq!(id("key AKIAIOSFODNN7EXAMPLE"), Vec::<String>::new());
        assert_eq!(
            id("OPENAI_API_KEY=sk-proj-Qw3rTy8uIoP4aSdF6gHjK1lZ"),
            ["openai-api-key"],
            "the specific rule wins over the assignment rule"
        );
        assert_eq!(id("password = \"${DB_PASSWORD}\""), Vec::<String>::new());
        assert_eq!(id("password: changeme"), Vec::<String>::new());
        assert_eq!(id("password: Tr0ub4dor&3-horse"), ["assigned-credential"]);
        assert_eq!(
            id("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"),
            ["bearer-token"]
        );
        assert_eq!(id("-----BEGIN OPENSSH PRIVATE KEY-----"), ["private-key"]);
        let hits = rules.scan("a\nb\nghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert_eq!(hits[0].line, 3);
        assert_eq!(hits[0].len, 40);
    }

    #[test]
    fn a_json_answer_is_redacted_string_by_string_and_key_by_key() {
        let rules = SecretRules::shipped();
        let answer = serde_json::json!({
            "id": "ord-1",
            "sku": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "lines": [{"note": "key AKIAZ7Q4LMNB2XKD3PQR here", "password": "hunter2-hunter2"}],
            "amount": 12.5
        });
        let redacted = rules.redact_json(&answer);
        assert_eq!(redacted["id"], "ord-1");
        assert_eq!(redacted["amount"], 12.5);
        assert_eq!(redacted["sku"], "[redacted: github-token]");
        assert_eq!(
            redacted["lines"][0]["note"],
            "key [redacted: aws-access-key-id] here"
        );
        let password = redacted["lines"][0]["password"].as_str().unwrap();
        assert!(password.starts_with("[redacted: "), "{password}");
        assert!(rules.scan(&redacted.to_string()).is_empty(), "{redacted}");
    }

    #[test]
    fn redaction_replaces_each_secret_and_leaves_the_rest() {
        let rules = SecretRules::shipped();
        let text = "a ghp_abcdefghijklmnopqrstuvwxyz0123456789 b\naws = AKIAZ7Q4LMNB2XKD3PQR";
        assert_eq!(
            rules.redact(text),
            "a [redacted: github-token] b\naws = [redacted: aws-access-key-id]"
        );
        assert!(matches!(
            rules.redact("nothing here"),
            std::borrow::Cow::Borrowed("nothing here")
        ));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let cases = [
            ("rules = []", "rules"),
            (
                "[[rules]]\nid='A'\ndescription='d'\nregex='x'\nkeywords=['x']",
                "rules[0].id",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='('\nkeywords=['x']",
                "rules[0].regex",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='x'\nsecret_group=1\nkeywords=['x']",
                "rules[0].secret_group",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='x'\nkeywords=[]",
                "rules[0].keywords",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='x'\nkeywords=['x']\nallow=['[']",
                "rules[0].allow[0]",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='x'\nkeywords=['x']\nseverity='dire'",
                "rules[0].severity",
            ),
            (
                "[[rules]]\nid='a'\ndescription='d'\nregex='x'\nkeywords=['x']\n[[rules]]\nid='a'\ndescription='d'\nregex='x'\nkeywords=['x']",
                "rules[1].id",
            ),
        ];
        for (text, field) in cases {
            let e = SecretRules::from_toml(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }
}
