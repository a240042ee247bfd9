//! The Security Center's facade: what `serve`, the API and the desktop
//! hold. It runs scans (every check, then triage into findings and
//! tickets), answers the board of controls and the findings, suppresses,
//! and exports and imports SARIF. Start with [`SecurityCenter::scan`].

use oshal_kernel::name::Named;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::{SharedClock, UnixMs};
use crate::controller::Controller;
use crate::ticket::NewTicket;

use super::*;

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
    /// Every gated operation of the API (`serve` passes its route table),
    /// each probed on every listener without a token; none: one gated read.
    pub surface_routes: Vec<platform::SurfaceRoute>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            postgres: None,
            scan_paths: Vec::new(),
            token_files: Vec::new(),
            resolve_after: DEFAULT_RESOLVE_AFTER,
            surface_routes: Vec::new(),
        }
    }
}

/// The facade every surface holds. Cheap to clone.
#[derive(Clone)]
pub struct SecurityCenter {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for SecurityCenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityCenter").finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub(super) db: SecurityDb,
    pub(super) controller: Controller,
    pub(super) config: SecurityConfig,
    pub(super) listeners: RwLock<Vec<Listener>>,
    pub(super) clock: SharedClock,
    /// One scan or import at a time.
    pub(super) busy: tokio::sync::Mutex<()>,
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
        runs.extend(
            platform::surface_checks(&self.listeners(), &self.inner.config.surface_routes).await,
        );
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
            match (
                c.audit(None, None, 10_000).await,
                c.effects(None, None, 10_000).await,
            ) {
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

    /// A finding by id (or fingerprint).
    pub async fn finding(&self, id: &str) -> Result<Finding, SecurityError> {
        self.inner.db.finding(id).await
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
