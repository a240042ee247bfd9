//! The Security Center: the detective layer over the preventive controls.
//!
//! Each preventive control (tenant row-level security, least-privilege
//! database roles, no credential in the clear, trusted connectors, token-only
//! surfaces, fail-closed execution) is bound to checks ([`checks`]) that
//! prove, against the running platform, that it holds: the PostgreSQL
//! catalog and a live canary ([`postgres`]), the secret scan over files and
//! stored text ([`secrets`]), the connectors, the API listeners and probes
//! the gate and broker must refuse ([`platform`]).
//!
//! What a scan sees becomes findings with a stable fingerprint (tool + rule +
//! object, never a line number), kept in SQLite ([`store`]) and triaged
//! ([`triage`]): a new finding files a ticket that a bot triages, an
//! unchanged one changes nothing, one gone for `resolve_after` scans is
//! resolved, one that comes back is reopened with a follow-up ticket (a
//! ticket is immutable once finished, so the follow-up's parent is the
//! earlier one). Suppressions carry a justification and an expiry. Findings
//! go out and come in as SARIF 2.1.0 ([`sarif`]), so Trivy, Checkov or
//! Semgrep results land in the same findings and tickets.
//!
//! No finding, message or ticket ever holds a secret: the secret scan
//! reports rule, place and length only.

pub mod checks;
pub mod platform;
pub mod postgres;
pub mod sarif;
pub mod secrets;
pub mod store;
#[cfg(test)]
mod tests;
pub mod triage;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use specta::Type;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::{SharedClock, UnixMs};
use crate::controller::Controller;
pub use crate::secrets::Severity;
use crate::ticket::{NewTicket, TicketId};

pub use store::SecurityDb;

/// The source name of Oshal's own scan.
pub const OSHAL: &str = "oshal";
/// Scans without a finding before it is resolved, by default.
pub const DEFAULT_RESOLVE_AFTER: u32 = 2;
/// The longest suppression.
pub const MAX_SUPPRESS_DAYS: u32 = 365;
/// The longest suppression reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1000;

/// `ALL`, `as_str` and `parse` for an enum stored and sent by its
/// snake_case name (the same names serde gives it).
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

named!(FindingState { Open => "open", Suppressed => "suppressed", Resolved => "resolved" });
named!(CheckStatus { Passed => "passed", Failed => "failed", Skipped => "skipped", Error => "error" });
named!(ControlStatus {
    Proven => "proven",
    Failing => "failing",
    NotApplicable => "not_applicable",
    NeverRun => "never_run",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    Open,
    Suppressed,
    Resolved,
}

/// Where a finding sits in a file, when it is in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Suppression {
    pub reason: String,
    pub by: String,
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    pub until_ms: UnixMs,
}

/// A finding as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
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
    pub first_seen_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    pub last_seen_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
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
    pub last_run_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_passed_ms: Option<UnixMs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct ControlView {
    pub id: String,
    pub title: String,
    pub prevents: String,
    pub status: ControlStatus,
    /// The evidence of its checks in the last scan, joined.
    pub summary: String,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_run_ms: Option<UnixMs>,
    /// When every applicable check last passed in the same scan.
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_passed_ms: Option<UnixMs>,
    pub open_findings: u32,
    pub checks: Vec<CheckView>,
}

/// What one scan (or one SARIF import) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct ScanReport {
    pub id: String,
    pub source: String,
    #[specta(type = specta_typescript::Number)]
    pub started_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(deny_unknown_fields)]
pub struct SuppressRequest {
    pub reason: String,
    /// How long, 1..=365 days.
    pub days: u32,
}

/// Which findings to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Type)]
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

/// An API listener of this process, for the surface checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// What a Security Center scans.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Fleet mode's PostgreSQL (none in local mode).
    pub postgres: Option<postgres::PgTarget>,
    /// Config files, environment dumps and logs: files or directories.
    pub scan_paths: Vec<PathBuf>,
    /// Files holding tokens, which no other user may read.
    pub token_files: Vec<PathBuf>,
    /// Clean scans before a finding is resolved (at least 1).
    pub resolve_after: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            postgres: None,
            scan_paths: Vec::new(),
            token_files: Vec::new(),
            resolve_after: DEFAULT_RESOLVE_AFTER,
        }
    }
}

/// The facade every surface holds. Cheap to clone.
#[derive(Clone)]
pub struct SecurityCenter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SecurityCenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityCenter").finish_non_exhaustive()
    }
}

struct Inner {
    db: SecurityDb,
    controller: Controller,
    config: SecurityConfig,
    listeners: RwLock<Vec<Listener>>,
    clock: SharedClock,
    /// One scan or import at a time.
    busy: tokio::sync::Mutex<()>,
}

impl SecurityCenter {
    /// Over `pool` (the local store's SQLite file, or the controller's own
    /// one in fleet mode), scanning for `controller`.
    pub async fn open(
        pool: sqlx::SqlitePool,
        controller: Controller,
        config: SecurityConfig,
        clock: SharedClock,
    ) -> Result<Self, SecurityError> {
        if config.resolve_after == 0 {
            return Err(invalid("resolve_after", "must be at least 1"));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db: SecurityDb::new(pool),
                controller,
                config,
                listeners: RwLock::default(),
                clock,
                busy: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Registers an API listener of this process for the surface checks.
    pub fn add_listener(&self, listener: Listener) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    fn listeners(&self) -> Vec<Listener> {
        self.inner
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs every check now, triages what it saw and files tickets.
    pub async fn scan(&self) -> Result<ScanReport, SecurityError> {
        let _one = self.inner.busy.lock().await;
        let started = self.inner.clock.now_ms();
        let runs = self.run_checks().await;
        let observations: Vec<Observation> = runs
            .iter()
            .flat_map(|r| r.observations.iter().cloned())
            .collect();
        let unproven: BTreeSet<String> = runs
            .iter()
            .filter(|r| matches!(r.status, CheckStatus::Error | CheckStatus::Skipped))
            .map(|r| r.check.clone())
            .collect();
        let finished = self.inner.clock.now_ms();
        self.inner.db.record_checks(&runs, finished).await?;
        let mut report = self.triage(OSHAL, observations, &unproven, started).await?;
        report.finished_ms = finished;
        Ok(report)
    }

    async fn run_checks(&self) -> Vec<CheckRun> {
        let mut runs = Vec::new();
        match &self.inner.config.postgres {
            Some(target) => runs.extend(postgres::run(target).await),
            None => {
                for c in checks::checks_of("tenant-isolation")
                    .chain(checks::checks_of("least-privilege"))
                {
                    runs.push(CheckRun::skipped(
                        c.id,
                        "local mode: no PostgreSQL (the store is SQLite in the data directory)",
                    ));
                }
            }
        }
        runs.extend(self.secret_checks().await);
        let connectors = self.inner.controller.connectors();
        let bots: Vec<String> = self
            .inner
            .controller
            .bots()
            .await
            .into_iter()
            .map(|b| b.id.to_string())
            .collect();
        runs.extend(platform::connector_checks(connectors, &bots).await);
        runs.extend(platform::probes(connectors).await);
        runs.extend(platform::surface_checks(&self.listeners()).await);
        runs
    }

    async fn secret_checks(&self) -> Vec<CheckRun> {
        let mut exposed = CheckRun::new("secrets.exposed");
        let mut perms = CheckRun::new("secrets.token-file-permissions");
        // The controller's rules: what it refuses and redacts is what the
        // scan looks for.
        let (rules, roots, tokens) = (
            self.inner.controller.secret_rules(),
            self.inner.config.scan_paths.clone(),
            self.inner.config.token_files.clone(),
        );
        let files = tokio::task::spawn_blocking(move || {
            let stats = secrets::scan_files(&rules, &roots, &tokens, &mut exposed, &mut perms);
            (exposed, perms, stats)
        })
        .await;
        let (mut exposed, perms, stats) = match files {
            Ok(r) => r,
            Err(e) => {
                return vec![
                    CheckRun::error("secrets.exposed", format!("the file scan stopped: {e}")),
                    CheckRun::error(
                        "secrets.token-file-permissions",
                        format!("the file scan stopped: {e}"),
                    ),
                ];
            }
        };
        // Stored text: every ticket's payload, result, error and events,
        // then the connectors' audit trail and effect ledger.
        let rules = self.inner.controller.secret_rules();
        let mut texts = 0usize;
        let mut after = None;
        loop {
            let page = match self.inner.controller.stored_texts(after, 500).await {
                Ok(p) => p,
                Err(e) => {
                    return vec![
                        CheckRun::error("secrets.exposed", format!("reading stored tickets: {e}")),
                        perms,
                    ];
                }
            };
            let Some(last) = page.iter().map(|t| t.ticket).max() else {
                break;
            };
            for t in &page {
                texts += 1;
                let place = secrets::Place::Stored(format!("ticket {} {}", t.ticket, t.field));
                secrets::report(&rules, &mut exposed, &place, &t.text);
            }
            after = Some(last);
        }
        if let Some(c) = self.inner.controller.connectors() {
            match (c.audit(None, 10_000).await, c.effects(None, 10_000).await) {
                (Ok(audit), Ok(effects)) => {
                    for a in &audit {
                        texts += 1;
                        let place = secrets::Place::Stored(format!("connector audit {}", a.seq));
                        secrets::report(&rules, &mut exposed, &place, &a.reason);
                    }
                    for e in &effects {
                        if let Some(r) = &e.response {
                            texts += 1;
                            let place =
                                secrets::Place::Stored(format!("connector effect {}", e.key));
                            secrets::report(&rules, &mut exposed, &place, &r.to_string());
                        }
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    return vec![
                        CheckRun::error(
                            "secrets.exposed",
                            format!("reading the connector audit: {e}"),
                        ),
                        perms,
                    ];
                }
            }
        }
        exposed.evidence = format!(
            "{} files and {texts} stored texts scanned with {} rules{}{}",
            stats.files,
            rules.rules().len(),
            if stats.skipped_binary + stats.skipped_large > 0 {
                format!(
                    " ({} binary, {} too large skipped)",
                    stats.skipped_binary, stats.skipped_large
                )
            } else {
                String::new()
            },
            if stats.truncated {
                format!(", stopped at {} files", secrets::MAX_FILES)
            } else {
                String::new()
            }
        );
        vec![exposed, perms]
    }

    /// Applies one source's observations: stores the changes in one
    /// transaction, then files the tickets they call for. Findings of the
    /// `unproven` rules (checks that could not run) are left as they are.
    async fn triage(
        &self,
        source: &str,
        observations: Vec<Observation>,
        unproven: &BTreeSet<String>,
        started: UnixMs,
    ) -> Result<ScanReport, SecurityError> {
        let now = self.inner.clock.now_ms();
        let mut seen: BTreeMap<String, Observation> = BTreeMap::new();
        for o in observations {
            seen.entry(fingerprint(source, &o.rule, &o.object))
                .or_insert(o);
        }
        let mut known = self.inner.db.known(source).await?;
        known.retain(|_, k| !unproven.contains(&k.rule));
        let keys: BTreeSet<String> = seen.keys().cloned().collect();
        let changes = triage::triage(&known, &keys, self.inner.config.resolve_after, now);
        self.inner.db.apply(source, &seen, &changes, now).await?;
        let scan_id = uuid::Uuid::now_v7().to_string();
        let count = |c: triage::Change| changes.values().filter(|v| **v == c).count() as u32;
        let mut report = ScanReport {
            id: scan_id,
            source: source.to_owned(),
            started_ms: started,
            finished_ms: now,
            seen: seen.len() as u32,
            new: count(triage::Change::New),
            reopened: count(triage::Change::Reopened),
            resolved: count(triage::Change::Resolved),
            tickets_filed: 0,
            findings: Vec::new(),
        };
        self.inner.db.record_scan(&report).await?;
        report.tickets_filed = self.file_tickets().await?;
        report.findings = self
            .inner
            .db
            .findings(&FindingQuery {
                state: None,
                source: Some(source.to_owned()),
                limit: Some(store::MAX_LIST),
            })
            .await?
            .into_iter()
            .filter(|f| f.state != FindingState::Resolved)
            .collect();
        Ok(report)
    }

    /// Files a ticket for every open finding whose current round has none.
    /// The idempotency key is the fingerprint and round, so a crash between
    /// the ticket and its record files no second ticket: the retry gets the
    /// first one back.
    async fn file_tickets(&self) -> Result<u32, SecurityError> {
        let mut filed = 0;
        for f in self.inner.db.needing_tickets().await? {
            let remediation = checks::check(&f.rule).map_or("", |c| c.remediation);
            let prompt = format!(
                "Security finding {id} ({severity}) from {source}: {title}.\n\
                 Object: {object}\nWhat was seen: {message}\n{control}{fix}\
                 Write a short triage note: the risk in one sentence, then the first step to fix it.",
                id = f.id,
                severity = f.severity.as_str(),
                source = f.source,
                title = f.title,
                object = f.object,
                message = f.message,
                control = f
                    .control
                    .as_deref()
                    .map(|c| format!("Control it breaks: {c}\n"))
                    .unwrap_or_default(),
                fix = if remediation.is_empty() {
                    String::new()
                } else {
                    format!("Known remediation: {remediation}\n")
                },
            );
            let new = NewTicket {
                kind: "chat".into(),
                payload: serde_json::json!({
                    "prompt": crate::text::clip(&prompt, 8_000),
                    "system": "You are the security triage bot of an AI-agent platform. Be brief and concrete."
                }),
                idempotency_key: Some(format!("security-{}-{}", &f.fingerprint[..40], f.reopened)),
                priority: Some(f.severity.priority()),
                skill: Some("chat".into()),
                parent_id: f.previous_tickets.last().map(|t| t.to_string()),
                causation_id: f.previous_tickets.last().map(|t| t.to_string()),
                ..NewTicket::default()
            };
            match self.inner.controller.submit(new).await {
                Ok(s) => {
                    self.inner
                        .db
                        .set_ticket(&f.fingerprint, s.id, f.reopened)
                        .await?;
                    if !s.duplicate {
                        filed += 1;
                    }
                }
                Err(e) => {
                    // Left pending: the next scan files it.
                    tracing::warn!(finding = %f.id, error = %e, "could not file a security ticket");
                }
            }
        }
        Ok(filed)
    }

    /// Findings, worst and newest first.
    pub async fn findings(&self, query: &FindingQuery) -> Result<Vec<Finding>, SecurityError> {
        if let Some(l) = query.limit
            && (l == 0 || l > store::MAX_LIST)
        {
            return Err(invalid("limit", format!("must be 1..={}", store::MAX_LIST)));
        }
        self.inner.db.findings(query).await
    }

    /// The controls board: every control with its checks' last runs.
    pub async fn controls(&self) -> Result<Vec<ControlView>, SecurityError> {
        self.inner.db.controls().await
    }

    /// Suppresses a finding for `days` with a justification.
    pub async fn suppress(
        &self,
        id: &str,
        request: &SuppressRequest,
        by: &str,
    ) -> Result<Finding, SecurityError> {
        let reason = request.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
            return Err(invalid(
                "reason",
                format!("a justification of 1..={MAX_REASON_BYTES} bytes is required"),
            ));
        }
        if request.days == 0 || request.days > MAX_SUPPRESS_DAYS {
            return Err(invalid("days", format!("must be 1..={MAX_SUPPRESS_DAYS}")));
        }
        let now = self.inner.clock.now_ms();
        let s = Suppression {
            reason: reason.to_owned(),
            by: by.to_owned(),
            at_ms: now,
            until_ms: now + i64::from(request.days) * 86_400_000,
        };
        let _one = self.inner.busy.lock().await;
        self.inner.db.suppress(id, &s).await
    }

    /// Every finding not resolved, as one SARIF 2.1.0 log (a run per tool).
    pub async fn export_sarif(&self) -> Result<serde_json::Value, SecurityError> {
        let findings = self
            .inner
            .db
            .findings(&FindingQuery {
                state: None,
                source: None,
                limit: Some(store::MAX_LIST),
            })
            .await?;
        Ok(sarif::export(&findings))
    }

    /// Imports a SARIF 2.1.0 log: each run is a scan of its tool's source,
    /// triaged into the same findings and tickets.
    pub async fn import_sarif(&self, log: &[u8]) -> Result<Vec<ScanReport>, SecurityError> {
        let runs = sarif::import(log)?;
        let _one = self.inner.busy.lock().await;
        let mut reports = Vec::new();
        for (source, observations) in runs {
            if source == OSHAL {
                return Err(invalid(
                    "runs[].tool.driver.name",
                    "\"oshal\" is this Security Center's own source; import other tools' results",
                ));
            }
            let started = self.inner.clock.now_ms();
            reports.push(
                self.triage(&source, observations, &BTreeSet::new(), started)
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Scans every `every` until `shutdown`, the first one shortly after
    /// start. A failed scan is logged and retried at the next tick.
    pub fn spawn_schedule(
        &self,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let center = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(2);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match center.scan().await {
                    Ok(r) => tracing::info!(
                        seen = r.seen,
                        new = r.new,
                        resolved = r.resolved,
                        reopened = r.reopened,
                        "security scan"
                    ),
                    Err(e) => tracing::warn!(error = %e, "security scan failed"),
                }
                wait = every;
            }
        })
    }
}
