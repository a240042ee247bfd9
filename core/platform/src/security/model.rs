//! What the Security Center speaks: findings and their states, checks and
//! their runs, controls, scan reports, suppressions, and its error. Plain
//! data with the few rules that belong to it (a finding's fingerprint, how
//! a check run records what it saw).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use specta::Type;

use crate::clock::UnixMs;
use crate::ticket::TicketId;

use super::{Severity, checks};

/// The source name of Oshal's own scan.
pub const OSHAL: &str = "oshal";
/// Scans without a finding before it is resolved, by default.
pub const DEFAULT_RESOLVE_AFTER: u32 = 2;
/// The longest suppression.
pub const MAX_SUPPRESS_DAYS: u32 = 365;
/// The longest suppression reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1000;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
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
pub enum FindingState {
    Open,
    Suppressed,
    Resolved,
}

/// Where a finding sits in a file, when it is in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Location {
    pub uri: String,
    pub line: Option<u32>,
}

/// One thing a check (or an imported scanner) saw break its rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub rule: String,
    pub title: String,
    pub control: Option<String>,
    pub severity: Severity,
    /// What breaks the rule: "table oshal.tickets", "file /etc/x (rule)", …
    pub object: String,
    pub message: String,
    pub location: Option<Location>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
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
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not applicable here (e.g. no PostgreSQL in local mode).
    Skipped,
    /// Could not run: proves nothing.
    Error,
}

/// One check's run in one scan.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub check: String,
    pub status: CheckStatus,
    /// What it looked at, in numbers: "RLS forced 3/3 tenant tables".
    pub evidence: String,
    pub observations: Vec<Observation>,
}

impl CheckRun {
    /// A run that passes until something is found.
    pub fn new(check: &str) -> Self {
        Self {
            check: check.to_owned(),
            status: CheckStatus::Passed,
            evidence: String::new(),
            observations: Vec::new(),
        }
    }

    pub fn skipped(check: &str, why: impl Into<String>) -> Self {
        Self {
            status: CheckStatus::Skipped,
            evidence: why.into(),
            ..Self::new(check)
        }
    }

    /// A check that could not run: a `scan.check-error` finding on it.
    pub fn error(check: &str, error: impl Into<String>) -> Self {
        let error = error.into();
        let info = checks::check(checks::CHECK_ERROR).expect("the check-error rule exists");
        let control = checks::check(check).map(|c| c.control.to_owned());
        // One finding per control that cannot be proven, not one per check:
        // a database outage is one problem, not eleven.
        let object = match &control {
            Some(c) => format!("control {c}"),
            None => format!("check {check}"),
        };
        Self {
            status: CheckStatus::Error,
            evidence: format!("could not run: {error}"),
            observations: vec![Observation {
                rule: info.id.to_owned(),
                title: info.title.to_owned(),
                control,
                severity: info.severity,
                object,
                message: format!("check {check} could not run: {error}"),
                location: None,
            }],
            ..Self::new(check)
        }
    }

    /// Records that `object` breaks this check's rule.
    pub fn found(&mut self, object: impl Into<String>, message: impl Into<String>) {
        let severity = checks::check(&self.check).map_or(Severity::Medium, |c| c.severity);
        self.found_with(object, message, severity, None);
    }

    pub fn found_with(
        &mut self,
        object: impl Into<String>,
        message: impl Into<String>,
        severity: Severity,
        location: Option<Location>,
    ) {
        let info = checks::check(&self.check);
        self.status = CheckStatus::Failed;
        self.observations.push(Observation {
            rule: self.check.clone(),
            title: info.map_or_else(|| self.check.clone(), |c| c.title.to_owned()),
            control: info.map(|c| c.control.to_owned()),
            severity,
            object: object.into(),
            message: message.into(),
            location,
        });
    }

    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }
}

/// Why a finding is suppressed, by whom and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Suppression {
    pub reason: String,
    pub by: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub until_ms: UnixMs,
}

/// A finding as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Finding {
    /// The first 16 hex digits of the fingerprint.
    pub id: String,
    /// sha256 of tool, rule and object: stable across scans and line moves.
    pub fingerprint: String,
    /// `oshal`, or the scanner an imported SARIF run came from.
    pub source: String,
    pub rule: String,
    pub title: String,
    /// The preventive control it breaks (Oshal's own rules).
    pub control: Option<String>,
    pub severity: Severity,
    pub object: String,
    pub message: String,
    pub location: Option<Location>,
    pub state: FindingState,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub first_seen_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub last_seen_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub resolved_at_ms: Option<UnixMs>,
    /// Scans in a row that did not see it.
    pub clean_scans: u32,
    /// How often it came back after being resolved.
    pub reopened: u32,
    /// The ticket that tracks it now.
    pub ticket: Option<TicketId>,
    /// The tickets of earlier rounds, oldest first.
    pub previous_tickets: Vec<TicketId>,
    pub suppression: Option<Suppression>,
}

/// sha256(source ∘ rule ∘ object), hex.
pub fn fingerprint(source: &str, rule: &str, object: &str) -> String {
    let mut h = Sha256::new();
    for part in [source, rule, object] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    crate::text::hex(&h.finalize())
}

/// A check's latest run, as the controls board shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct CheckView {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub rationale: String,
    pub remediation: String,
    /// `None`: never run.
    pub status: Option<CheckStatus>,
    pub evidence: Option<String>,
    /// Open findings of this check.
    pub open: u32,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub last_run_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub last_passed_ms: Option<UnixMs>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
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
pub enum ControlStatus {
    /// Every applicable check ran and passed in the last scan.
    Proven,
    /// A check found something, or could not run.
    Failing,
    /// No check applies here (e.g. PostgreSQL controls in local mode).
    NotApplicable,
    NeverRun,
}

/// One preventive control and the checks that prove it, live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ControlView {
    pub id: String,
    pub title: String,
    pub prevents: String,
    pub status: ControlStatus,
    /// The evidence of its checks in the last scan, joined.
    pub summary: String,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub last_run_ms: Option<UnixMs>,
    /// When every applicable check last passed in the same scan.
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub last_passed_ms: Option<UnixMs>,
    pub open_findings: u32,
    pub checks: Vec<CheckView>,
}

/// What one scan (or one SARIF import) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ScanReport {
    pub id: String,
    pub source: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub started_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub finished_ms: UnixMs,
    /// Observations seen (distinct fingerprints).
    pub seen: u32,
    pub new: u32,
    pub reopened: u32,
    pub resolved: u32,
    /// Tickets filed by this scan.
    pub tickets_filed: u32,
    /// Every finding of this source that is not resolved, worst first.
    pub findings: Vec<Finding>,
}

/// A suppression as a surface asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressRequest {
    /// Why, 1..=1000 bytes (not only spaces).
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub reason: String,
    /// How long, 1..=365 days.
    #[schema(minimum = 1, maximum = 365)]
    pub days: u32,
}

/// Which findings to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    pub state: Option<FindingState>,
    pub source: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("finding {0} not found")]
    NotFound(String),
    /// The finding's state does not allow this (suppressing a resolved one).
    #[error("{0}")]
    Conflict(String),
    #[error("security store: {0}")]
    Db(String),
    #[error("{0} is larger than the limit of {1} bytes")]
    TooLarge(&'static str, usize),
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SecurityError {
    SecurityError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl From<sqlx::Error> for SecurityError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.to_string())
    }
}
