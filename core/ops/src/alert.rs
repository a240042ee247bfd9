//! An alert as Oshal keeps it, in Alertmanager's and PagerDuty's words: a
//! [`Signal`] is one report from a source (firing, resolved, acknowledged);
//! reports with the same [`Fingerprint`] are one [`Alert`], deduplicated
//! (its `count` rises, nothing new opens).
//!
//! The fingerprint is a hash over the label names the operator chose
//! (every label when none is chosen, as Alertmanager does), or over the
//! sender's own deduplication key when it gives one (PagerDuty's
//! `dedup_key`). Pure logic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use specta::Type;

use oshal_kernel::clock::UnixMs;

/// Labels and annotations: names to values, in name order.
pub type Labels = BTreeMap<String, String>;

/// Labels one alert may carry.
pub const MAX_LABELS: usize = 64;
/// Bytes of a label's name (`[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's rule).
pub const MAX_LABEL_NAME: usize = 128;
/// Bytes of a label's value.
pub const MAX_LABEL_VALUE: usize = 1024;
/// Bytes of one annotation's value.
pub const MAX_ANNOTATION: usize = 8 * 1024;
/// Bytes of a summary (PagerDuty's own limit).
pub const MAX_SUMMARY: usize = 1024;

/// How bad, in PagerDuty's four words (Prometheus rules use the same
/// `severity` label values).
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
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[serde(rename = "AlertSeverity")]
#[schema(as = AlertSeverity)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// A `severity` label's value: the four words, `page` as critical;
    /// anything else (or none) is a warning, so an alert is never dropped
    /// for its wording.
    pub fn from_label(value: Option<&str>) -> Self {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("critical" | "page") => Self::Critical,
            Some("error") => Self::Error,
            Some("info" | "none") => Self::Info,
            _ => Self::Warning,
        }
    }
}

/// What a source says of an alert in one report.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[serde(rename = "AlertReport")]
#[schema(as = AlertReport)]
pub enum Report {
    Firing,
    Resolved,
    /// PagerDuty's `acknowledge`: someone is on it.
    Acknowledged,
}

/// Where an alert came from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[serde(rename = "AlertSource")]
#[schema(as = AlertSource)]
pub enum Source {
    /// Prometheus Alertmanager's webhook.
    Alertmanager,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Oshal's own signals (a bot's heartbeat lost, a lane lagging…).
    Platform,
}

/// An alert's state, as the Operations view shows it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertState {
    Firing,
    Resolved,
    /// Firing, and someone said they are on it.
    Acknowledged,
    /// Firing under a silence: kept, but it opens no incident.
    Suppressed,
    /// Firing inside a maintenance window: kept, but it opens no incident.
    Maintenance,
}

impl AlertState {
    /// Whether it still fires (whatever else is said of it).
    pub fn is_active(self) -> bool {
        self != Self::Resolved
    }
}

/// One report of an alert, as a source sent it (checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Signal {
    pub source: Source,
    /// Alertmanager's `alertname`; PagerDuty's `class`, else its summary.
    pub name: String,
    pub report: Report,
    pub severity: Severity,
    pub labels: Labels,
    pub annotations: Labels,
    /// One line for a person: an annotation `summary`, PagerDuty's summary.
    pub summary: String,
    /// When the source says it began (or ended, for a resolution).
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
    /// The sender's own deduplication key, which then is the fingerprint's
    /// only input (PagerDuty's `dedup_key`).
    pub dedup_key: Option<String>,
    /// Where the source shows it (Alertmanager's `generatorURL`).
    pub link: Option<String>,
}

/// The identity of an alert: 32 hex digits of a SHA-256.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Signal {
    /// Its fingerprint over `by` (label names; every label when empty), or
    /// over its own `dedup_key`. A label `by` names that the signal lacks
    /// counts as empty, so it still hashes the same every time.
    pub fn fingerprint(&self, by: &[String]) -> Fingerprint {
        let mut h = Sha256::new();
        if let Some(key) = &self.dedup_key {
            h.update(b"dedup_key\x00");
            h.update(key.as_bytes());
        } else if by.is_empty() {
            for (k, v) in &self.labels {
                h.update(k.as_bytes());
                h.update(b"\x00");
                h.update(v.as_bytes());
                h.update(b"\x00");
            }
        } else {
            let mut names: Vec<&String> = by.iter().collect();
            names.sort();
            names.dedup();
            for k in names {
                h.update(k.as_bytes());
                h.update(b"\x00");
                h.update(self.labels.get(k).map_or("", String::as_str).as_bytes());
                h.update(b"\x00");
            }
        }
        Fingerprint(oshal_kernel::text::hex(&h.finalize()[..16]))
    }
}

/// A label's name by Prometheus's rule, or why not.
pub fn check_label_name(name: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if name.len() > MAX_LABEL_NAME {
        return Err(format!(
            "a label name is at most {MAX_LABEL_NAME} bytes; this one is {}",
            name.len()
        ));
    }
    if !ok_start || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "label name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]*"
        ));
    }
    Ok(())
}

/// One alert: every report of one fingerprint, folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    pub name: String,
    pub source: Source,
    pub state: AlertState,
    pub severity: Severity,
    pub labels: Labels,
    pub annotations: Labels,
    pub summary: String,
    pub link: Option<String>,
    /// When it first fired (this time round, after a resolution).
    #[specta(type = specta_typescript::Number)]
    pub first_ms: UnixMs,
    /// The newest report.
    #[specta(type = specta_typescript::Number)]
    pub last_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    pub resolved_ms: Option<UnixMs>,
    /// Reports received for it, duplicates included.
    #[specta(type = specta_typescript::Number)]
    pub count: u64,
    /// Who acknowledged it, while it fires.
    pub acknowledged_by: Option<String>,
    /// The open or last incident it belongs to.
    pub incident: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(labels: &[(&str, &str)]) -> Signal {
        Signal {
            source: Source::Alertmanager,
            name: "LaneLag".into(),
            report: Report::Firing,
            severity: Severity::Warning,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: Labels::new(),
            summary: String::new(),
            at_ms: 0,
            dedup_key: None,
            link: None,
        }
    }

    #[test]
    fn the_fingerprint_reads_the_chosen_labels_alone() {
        let a = signal(&[("alertname", "LaneLag"), ("bot", "b1"), ("pod", "x")]);
        let b = signal(&[("alertname", "LaneLag"), ("bot", "b1"), ("pod", "y")]);
        assert_ne!(a.fingerprint(&[]), b.fingerprint(&[]), "every label");
        let by = ["bot".to_owned(), "alertname".to_owned()];
        assert_eq!(a.fingerprint(&by), b.fingerprint(&by));
        assert_eq!(a.fingerprint(&by).0.len(), 32);
        // A missing label is empty, and the order `by` names them in is not read.
        let c = signal(&[("alertname", "LaneLag")]);
        assert_ne!(a.fingerprint(&by), c.fingerprint(&by));
        let rev = ["alertname".to_owned(), "bot".to_owned()];
        assert_eq!(a.fingerprint(&by), a.fingerprint(&rev));
    }

    #[test]
    fn a_dedup_key_is_the_fingerprint() {
        let mut a = signal(&[("alertname", "X")]);
        let mut b = signal(&[("alertname", "Y")]);
        a.dedup_key = Some("disk-1".into());
        b.dedup_key = Some("disk-1".into());
        assert_eq!(a.fingerprint(&[]), b.fingerprint(&[]));
    }

    #[test]
    fn label_names_follow_prometheus() {
        assert!(check_label_name("severity").is_ok());
        assert!(check_label_name("_x9").is_ok());
        assert!(check_label_name("9x").is_err());
        assert!(check_label_name("a-b").is_err());
        assert!(check_label_name("").is_err());
        assert!(check_label_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn severities_never_drop_an_alert() {
        assert_eq!(Severity::from_label(Some("CRITICAL")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("page")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("sev9")), Severity::Warning);
        assert_eq!(Severity::from_label(None), Severity::Warning);
        assert!(Severity::Critical > Severity::Warning);
    }
}
