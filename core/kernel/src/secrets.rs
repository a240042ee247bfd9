//! Secret rules: what a credential looks like (a documented TOML format,
//! shipped in `assets/security/secret-rules.toml`), found in text and
//! redacted from it.
//!
//! The same rules guard the door: [`SecretRules::guard`] refuses a ticket
//! whose payload holds a secret, so none reaches a bot, a model or the
//! store (credentials reach tools through the token broker only); and the
//! way back: [`SecretRules::redact`] blanks one in a reply, an error or an
//! outside system's answer before anything keeps it. The Security Center
//! runs them over files and stored text (`security::secrets`). A hit names
//! the rule, the line and the length; the secret never leaves this module.
//! Pure logic: the caller brings the text.

use crate::name::Named;
use regex::Regex;
use serde::{Deserialize, Serialize};
use specta::Type;
use std::sync::{Arc, LazyLock};

use crate::ticket::{TicketError, Work};

/// The shipped rules.
pub const SHIPPED_RULES: &str = include_str!("../../../assets/security/secret-rules.toml");
/// The most rules a file may hold.
pub const MAX_RULES: usize = 256;
/// The longest regex a rule may hold, in bytes.
pub const MAX_REGEX_BYTES: usize = 4096;

/// How bad a finding is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// GitHub code scanning's `security-severity` (a CVSS-like score).
    pub fn score(self) -> f64 {
        match self {
            Self::Info => 0.0,
            Self::Low => 3.0,
            Self::Medium => 5.5,
            Self::High => 8.0,
            Self::Critical => 9.5,
        }
    }

    /// The band a `security-severity` score falls in (GitHub's bands).
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Info,
        }
    }

    /// A ticket's priority (0..=9, higher first).
    pub fn priority(self) -> u8 {
        match self {
            Self::Info => 2,
            Self::Low => 3,
            Self::Medium => 5,
            Self::High => 7,
            Self::Critical => 9,
        }
    }
}

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
                check("payload.system", c.system.as_deref().unwrap_or(""))?;
                // Sent to the model server: as JSON, like a tool's params.
                match &c.response_schema {
                    Some(schema) => check("payload.response_schema", &schema.to_string()),
                    None => Ok(()),
                }
            }
            Work::Tool(t) => {
                check("payload.prompt", t.prompt.as_deref().unwrap_or(""))?;
                // As JSON, so `{"password": "…"}` reads as an assignment.
                check("payload.params", &t.params.to_string())
            }
            // Numbers and names the trading crate checks; as JSON all the same.
            Work::Signal(s) => check("payload.strategy", &s.strategy.to_string()),
            // Artifact ids and file names, each of a closed character set.
            Work::Media(_) => Ok(()),
            // Names and hashes, but a test's arguments and expected text.
            Work::Build(b) => check("payload.args", &b.free_text()),
            // An alert's name and the calls' params, as JSON.
            Work::Investigate(i) => {
                check("payload.alert", &i.alert)?;
                let params: Vec<&serde_json::Value> = i.calls.iter().map(|c| &c.params).collect();
                check(
                    "payload.calls",
                    &serde_json::to_string(&params).unwrap_or_default(),
                )
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

    /// Every secret in `text` with the text it matched, for a caller that
    /// must tell whose secret it is (the connector broker compares it with
    /// its stored credentials); never for showing or keeping.
    pub fn matches<'a>(&self, text: &'a str) -> Vec<(Hit, &'a str)> {
        self.spans(text)
            .into_iter()
            .map(|(s, e, h)| (h, &text[s..e]))
            .collect()
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
        let found: Vec<&str> = rules.matches(text).into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            found,
            [
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "AKIAZ7Q4LMNB2XKD3PQR"
            ],
            "the matched text, without the assignment around it"
        );
        assert_eq!(
            rules.matches("refresh_token=rt-0123456789abcdef")[0].1,
            "rt-0123456789abcdef"
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
