//! The operations loop's adapter: `oshal-ops`'s monitor wired to the
//! store's journal, the controller and the API.
//!
//! Each tenant has one monitor (`oshal_ops::monitor::Monitor`), a fold
//! over its events in the journal (book `ops`, one session per tenant),
//! behind a lock of its own.
//! An input (a webhook's alerts, an operator's move, new settings, a
//! silence, a maintenance window, a change event) is decided against a
//! copy of the state, its events are written in one transaction, and only
//! then does the copy become the state: what a payload brings is written
//! whole or not at all (a write that fails reloads the tenant from the
//! journal), and after a restart the journal rebuilds the same monitors.
//! `signals.rs` turns the platform's own state into alerts and change
//! events (tickets requeued and lanes reset among them), `budget.rs` a
//! tenant at its budget into `OshalBudgetExhausted` and one burning it
//! far faster than it is paced for into `OshalSpendBurning`, `failures.rs` a
//! tenant whose tickets keep failing for good into `OshalTicketsDead`,
//! `findings.rs` a secret the Security Center found into
//! `OshalSecretFound`, `outage.rs` a store that stopped answering into
//! `OshalStoreDown` and a `store_outage` change, once it answers again;
//! `gather.rs`
//! investigates each incident opened with a ticket boxed in by the
//! connector broker (grants bound to it alone, for the planned reads) and
//! takes its findings; `heal.rs` proposes the heal a diagnosis calls for
//! and, once a person approves it, runs its one write under one expiring
//! grant bound to its ticket, then re-checks; `tools.rs` serves the reads
//! and the heals' writes (`writes.rs`) as the built-in `oshal-ops`
//! connector; `view.rs` holds the routes' types.

mod budget;
mod failures;
mod findings;
mod gather;
mod heal;
mod outage;
mod signals;
mod tools;
mod view;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;

use oshal_ops::alert::{Alert, AlertState, Fingerprint, Source};
use oshal_ops::burn::{BurnPolicy, Burning, SpendHistory};
use oshal_ops::intake::{self, Intake, Refusal};
use oshal_ops::monitor::{Event, Input, Monitor};
use oshal_ops::rule::{Invalid, Settings};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use gather::conn;
pub use gather::{NARRATIVE_TOKENS, shipped_runbooks, toolsets};
pub use heal::HEAL_GRANT_MS;
pub use tools::READ_SCOPE;
pub use view::{
    AlertRow, AlertsQuery, ChangesQuery, HealDecision, IncidentSummary, IncidentView, Ingested,
    MAX_LIST, MoveAction, MoveIncident, OpsQuery, PagerDutyAck, RefusedAlert, SettingsView,
};

use crate::controller::{Controller, ControllerError};
use crate::store::{JournalEntry, StoreError};
use crate::ticket::{TenantId, TicketId};

/// The journal's book of the operations loop.
pub const BOOK: &str = "ops";

/// Why an operations request was not done.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A webhook payload (or all of it) is not what its sender sends.
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<oshal_ops::monitor::OpsError> for OpsError {
    fn from(e: oshal_ops::monitor::OpsError) -> Self {
        use oshal_ops::monitor::OpsError as E;
        match e {
            E::NotFound { .. } => Self::NotFound(e.to_string()),
            E::Conflict { .. } => Self::Conflict(e.to_string()),
            E::Invalid(i) => Self::Invalid(i),
            E::Postmortem { .. } | E::Heal { .. } => Self::Conflict(e.to_string()),
        }
    }
}

/// One tenant's monitor and the next number of its journal.
#[derive(Debug, Default)]
struct Book {
    monitor: Monitor,
    next_seq: u32,
}

impl Book {
    /// The monitor its entries (in order) rebuild.
    fn replay(tenant: &TenantId, entries: Vec<JournalEntry>) -> Book {
        let mut book = Book::default();
        for e in entries {
            book.next_seq = book.next_seq.max(e.seq + 1);
            match serde_json::from_str::<Event>(&e.body) {
                Ok(event) => book.monitor.apply(&event, e.at_ms),
                Err(err) => {
                    tracing::error!(%tenant, seq = e.seq, error = %err, "an operations event could not be read")
                }
            }
        }
        book
    }
}

#[derive(Debug)]
struct Inner {
    controller: Controller,
    /// Each tenant's book behind a lock of its own: one tenant's slow
    /// write never holds up another's.
    books: std::sync::RwLock<BTreeMap<TenantId, Arc<Mutex<Book>>>>,
    /// The Gather and heal tickets running, with their tenant.
    running: Mutex<BTreeMap<TicketId, TenantId>>,
    /// Held while a heal is released: one at a time.
    healing: Mutex<()>,
    /// Held while an investigation starts: one at a time.
    investigating: Mutex<()>,
    /// The Security Center, once attached (`list_findings` reads it).
    security: std::sync::OnceLock<crate::security::SecurityCenter>,
    /// Each tenant's spend as sampled (`budget.rs`), and the pace its
    /// budget is held to.
    spending: std::sync::Mutex<SpendHistory>,
    tuning: Tuning,
    stop: CancellationToken,
}

/// How often the loop samples spend, and the burn-rate pairs it alerts
/// on (the SRE workbook's unless a test shortens them).
#[derive(Debug, Clone)]
pub struct Tuning {
    pub spend_poll: std::time::Duration,
    pub burn: BurnPolicy,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            spend_poll: std::time::Duration::from_secs(5),
            burn: BurnPolicy::sre(),
        }
    }
}

impl Inner {
    /// The burn-rate pair `tenant`'s spend fires now, if any.
    fn burning(&self, tenant: &str, budget_nusd: Option<i64>, spent_nusd: i64) -> Option<Burning> {
        let history = self.spending.lock().unwrap_or_else(|p| p.into_inner());
        history.burning(&self.tuning.burn, tenant, budget_nusd?, spent_nusd)
    }
}

impl Inner {
    /// A tenant's change events at or after `since_ms`, oldest first.
    async fn changes_since(
        &self,
        tenant: &TenantId,
        since_ms: i64,
    ) -> Vec<oshal_ops::monitor::ChangeEvent> {
        let book = self.book(tenant);
        let book = book.lock().await;
        book.monitor
            .changes()
            .iter()
            .filter(|c| c.at_ms >= since_ms)
            .cloned()
            .collect()
    }

    /// A tenant's book (a fresh one for a tenant with none yet).
    fn book(&self, tenant: &TenantId) -> Arc<Mutex<Book>> {
        if let Some(b) = self
            .books
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return b.clone();
        }
        self.books
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .clone()
    }
}

/// The operations loop: every tenant's alerts and incidents.
#[derive(Debug, Clone)]
pub struct Operations {
    inner: Arc<Inner>,
}

impl Operations {
    /// Rebuilds every tenant's monitor from the journal and starts
    /// watching the platform's own signals.
    pub async fn start(controller: Controller) -> Result<Operations, OpsError> {
        Self::start_tuned(controller, Tuning::default()).await
    }

    /// [`Operations::start`] with its own spend sampling and burn pairs.
    pub async fn start_tuned(
        controller: Controller,
        tuning: Tuning,
    ) -> Result<Operations, OpsError> {
        let mut by_tenant: BTreeMap<TenantId, Vec<JournalEntry>> = BTreeMap::new();
        for e in controller.store().journal(BOOK, None).await? {
            by_tenant.entry(e.tenant.clone()).or_default().push(e);
        }
        let mut books: BTreeMap<TenantId, Book> = by_tenant
            .into_iter()
            .map(|(t, entries)| {
                let book = Book::replay(&t, entries);
                (t, book)
            })
            .collect();
        // PostgreSQL reads a book tenant by tenant from its directory, where
        // `default` (the platform's own signals) may not be listed yet.
        let default = TenantId::default_tenant();
        if let std::collections::btree_map::Entry::Vacant(slot) = books.entry(default.clone()) {
            let entries = controller
                .store()
                .journal_of(BOOK, default.as_str(), &default)
                .await?;
            slot.insert(Book::replay(&default, entries));
        }
        let ops = Operations {
            inner: Arc::new(Inner {
                controller,
                books: std::sync::RwLock::new(
                    books
                        .into_iter()
                        .map(|(t, b)| (t, Arc::new(Mutex::new(b))))
                        .collect(),
                ),
                running: Mutex::default(),
                healing: Mutex::default(),
                investigating: Mutex::default(),
                security: std::sync::OnceLock::new(),
                spending: std::sync::Mutex::default(),
                tuning,
                stop: CancellationToken::new(),
            }),
        };
        signals::watch(ops.clone(), ops.inner.stop.clone());
        budget::watch(ops.clone(), ops.inner.stop.clone());
        failures::watch(ops.clone(), ops.inner.stop.clone());
        outage::watch(ops.clone(), ops.inner.stop.clone());
        gather::mount(&ops)?;
        ops.resume_running().await;
        ops.resume_heals(true).await;
        gather::follow(ops.clone(), ops.inner.stop.clone());
        Ok(ops)
    }

    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }

    /// Lets the loop read the Security Center's findings (`list_findings`)
    /// and raise `OshalSecretFound` for a secret found in the clear. Once:
    /// a second center is ignored.
    pub fn attach_security(&self, center: crate::security::SecurityCenter) {
        if self.inner.security.set(center.clone()).is_ok() {
            findings::watch(self.clone(), center, self.inner.stop.clone());
        }
    }

    /// A tenant's book (a fresh one for a tenant with none yet).
    fn book(&self, tenant: &TenantId) -> Arc<Mutex<Book>> {
        self.inner.book(tenant)
    }

    fn read_books(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<TenantId, Arc<Mutex<Book>>>> {
        self.inner.books.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The books `only` (or every tenant's) may read, each with its tenant.
    fn books_of(&self, only: Option<&TenantId>) -> Vec<(TenantId, Arc<Mutex<Book>>)> {
        self.read_books()
            .iter()
            .filter(|(t, _)| only.is_none_or(|o| o == *t))
            .map(|(t, b)| (t.clone(), b.clone()))
            .collect()
    }

    async fn tenant(&self, asked: Option<&str>) -> Result<TenantId, OpsError> {
        Ok(self.inner.controller.known_tenant(asked).await?)
    }

    /// Decides `inputs` in order against a copy of the tenant's monitor,
    /// writes every event they lead to in one transaction, then keeps the
    /// copy. An input refused stops nothing but itself: its error is in
    /// its place in the answer.
    async fn take(
        &self,
        tenant: &TenantId,
        inputs: Vec<Input>,
    ) -> Result<Vec<Result<Vec<Event>, OpsError>>, OpsError> {
        let now = self.inner.controller.clock().now_ms();
        let book = self.book(tenant);
        let mut book = book.lock().await;
        let book = &mut *book;
        let mut next = book.monitor.clone();
        let mut entries = Vec::new();
        let mut answers = Vec::with_capacity(inputs.len());
        for input in inputs {
            match next.decide(input, now) {
                Ok(events) => {
                    for e in &events {
                        next.apply(e, now);
                        entries.push(JournalEntry {
                            book: BOOK.into(),
                            session: tenant.to_string(),
                            seq: book.next_seq + entries.len() as u32,
                            tenant: tenant.clone(),
                            kind: e.kind().into(),
                            body: serde_json::to_string(e).expect("an event serializes"),
                            at_ms: now,
                        });
                    }
                    answers.push(Ok(events));
                }
                Err(e) => answers.push(Err(e.into())),
            }
        }
        if !entries.is_empty() {
            let store = self.inner.controller.store();
            let written = store.append_journal(&entries).await;
            if !matches!(written, Ok(n) if n > 0) {
                // Whatever happened (a lost answer to a commit that took, a
                // writer elsewhere), the journal is the truth: read it again.
                if let Ok(fresh) = store.journal_of(BOOK, tenant.as_str(), tenant).await {
                    *book = Book::replay(tenant, fresh);
                }
                written?;
                return Err(OpsError::Conflict(format!(
                    "tenant {tenant}'s operations journal moved on meanwhile; retry"
                )));
            }
            book.next_seq += entries.len() as u32;
            book.monitor = next;
            let opened: Vec<String> = answers
                .iter()
                .flatten()
                .flatten()
                .filter_map(|e| match e {
                    Event::IncidentOpened { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect();
            gather::on_opened(self, tenant, opened);
        }
        Ok(answers)
    }

    async fn take_one(&self, tenant: &TenantId, input: Input) -> Result<Vec<Event>, OpsError> {
        self.take(tenant, vec![input])
            .await?
            .pop()
            .expect("one answer per input")
    }

    /// Takes a webhook's payload from `source` for `tenant`.
    pub async fn ingest(
        &self,
        tenant: Option<&str>,
        source: Source,
        body: Value,
    ) -> Result<Ingested, OpsError> {
        let tenant = self.tenant(tenant).await?;
        let now = self.inner.controller.clock().now_ms();
        let Intake {
            signals,
            mut refused,
            dedup_key,
        } = match source {
            Source::Alertmanager => intake::alertmanager(body, now),
            Source::Pagerduty => intake::pagerduty(body, now),
            Source::Platform => Err(Refusal {
                path: "source".into(),
                reason: "the platform's own signals do not come over a webhook".into(),
                limit: None,
            }),
        }
        .map_err(OpsError::Refused)?;
        let by = self
            .book(&tenant)
            .lock()
            .await
            .monitor
            .settings()
            .fingerprint_by
            .clone();
        let fingerprints: Vec<Fingerprint> = signals.iter().map(|s| s.fingerprint(&by)).collect();
        let answers = self
            .take(&tenant, signals.into_iter().map(Input::Signal).collect())
            .await?;
        let mut opened = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(events) => opened.extend(events.into_iter().filter_map(|e| match e {
                    Event::IncidentOpened { id, .. } => Some(id),
                    _ => None,
                })),
                Err(e) => refused.push(Refusal {
                    path: format!("alerts[{i}]"),
                    reason: e.to_string(),
                    limit: None,
                }),
            }
        }
        Ok(Ingested {
            tenant,
            accepted: fingerprints.len() as u32,
            alerts: fingerprints.into_iter().map(|f| f.0).collect(),
            refused: refused.into_iter().map(RefusedAlert::from).collect(),
            opened,
            dedup_key,
        })
    }

    /// Takes the platform's own signals or change events; whether they
    /// were recorded.
    pub(crate) async fn observe(&self, tenant: &TenantId, inputs: Vec<Input>) -> bool {
        if inputs.is_empty() {
            return true;
        }
        match self.take(tenant, inputs).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the platform's own signals could not be recorded; they are tried again at the next update");
                false
            }
        }
    }

    /// Alerts, newest report first; a tenant's alone for `only`, or for
    /// the query's (which must exist).
    pub async fn alerts(
        &self,
        only: Option<&TenantId>,
        q: &AlertsQuery,
    ) -> Result<Vec<AlertRow>, OpsError> {
        if q.tenant.is_some() {
            self.tenant(q.tenant.as_deref()).await?;
        }
        let mut out: Vec<AlertRow> = Vec::new();
        for (t, b) in self.books_of(only) {
            if q.tenant.as_deref().is_some_and(|w| w != t.as_str()) {
                continue;
            }
            let b = b.lock().await;
            out.extend(
                b.monitor
                    .alerts()
                    .into_iter()
                    .filter(|a| q.state.is_none_or(|s| a.state == s))
                    .map(|a| AlertRow {
                        tenant: t.clone(),
                        alert: a.clone(),
                    }),
            );
        }
        out.sort_by_key(|a| std::cmp::Reverse(a.alert.last_ms));
        out.truncate(q.limit.unwrap_or(view::MAX_LIST) as usize);
        Ok(out)
    }

    /// Acknowledges an alert by its fingerprint.
    pub async fn acknowledge_alert(
        &self,
        tenant: Option<&str>,
        fingerprint: &str,
        by: &str,
    ) -> Result<Alert, OpsError> {
        let tenant = self.tenant(tenant).await?;
        let fp = Fingerprint(fingerprint.to_owned());
        self.take_one(
            &tenant,
            Input::AcknowledgeAlert {
                fingerprint: fp.clone(),
                by: by.to_owned(),
            },
        )
        .await?;
        let book = self.book(&tenant);
        let book = book.lock().await;
        Ok(book
            .monitor
            .alert(&fp)
            .cloned()
            .expect("an acknowledged alert exists"))
    }

    /// Incidents, newest first.
    pub async fn incidents(&self, only: Option<&TenantId>) -> Vec<IncidentSummary> {
        let mut out: Vec<IncidentSummary> = Vec::new();
        for (t, b) in self.books_of(only) {
            let b = b.lock().await;
            out.extend(
                b.monitor
                    .incidents()
                    .map(|i| IncidentSummary::of(&t, i, &b.monitor)),
            );
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.opened_ms));
        out.truncate(view::MAX_LIST as usize);
        out
    }

    /// One incident with its alerts and timeline.
    pub async fn incident(&self, tenant: Option<&str>, id: &str) -> Result<IncidentView, OpsError> {
        let tenant = self.tenant(tenant).await?;
        let book = self.book(&tenant);
        let book = book.lock().await;
        let inc = book
            .monitor
            .incident(id)
            .ok_or_else(|| OpsError::NotFound(format!("no incident {id} of tenant {tenant}")))?;
        Ok(IncidentView::of(&tenant, inc, &book.monitor))
    }

    /// An incident's postmortem: published, or the draft its record
    /// supports now with the edits laid over it.
    pub async fn postmortem(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<oshal_ops::report::Postmortem, OpsError> {
        let tenant = self.tenant(tenant).await?;
        let book = self.book(&tenant);
        let book = book.lock().await;
        book.monitor
            .postmortem(id)
            .ok_or_else(|| OpsError::NotFound(format!("no incident {id} of tenant {tenant}")))
    }

    /// Edits a postmortem's draft (its prose), or publishes it (`edit`
    /// `None`): a published one is frozen.
    pub async fn write_postmortem(
        &self,
        tenant: Option<&str>,
        id: &str,
        edit: Option<oshal_ops::report::PostmortemEdit>,
        by: &str,
    ) -> Result<oshal_ops::report::Postmortem, OpsError> {
        let t = self.tenant(tenant).await?;
        let (incident, by) = (id.to_owned(), by.to_owned());
        let input = match edit {
            Some(edit) => Input::EditPostmortem { incident, edit, by },
            None => Input::PublishPostmortem { incident, by },
        };
        self.take_one(&t, input).await?;
        self.postmortem(Some(t.as_str()), id).await
    }

    /// Acknowledges, mitigates or resolves an incident.
    pub async fn move_incident(
        &self,
        id: &str,
        req: MoveIncident,
        by: &str,
    ) -> Result<IncidentView, OpsError> {
        if req.note.len() > view::MAX_NOTE || req.note.contains('\0') {
            return Err(OpsError::Invalid(Invalid {
                path: "note".into(),
                reason: format!("must be at most {} bytes, without NUL", view::MAX_NOTE),
                limit: Some(view::MAX_NOTE as u64),
            }));
        }
        let tenant = self.tenant(req.tenant.as_deref()).await?;
        self.take_one(
            &tenant,
            Input::Incident {
                id: id.to_owned(),
                action: req.action.into(),
                by: by.to_owned(),
                note: req.note,
            },
        )
        .await?;
        self.incident(Some(tenant.as_str()), id).await
    }

    /// A tenant's change events at or after `since_ms`, oldest first.
    pub async fn changes(
        &self,
        tenant: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<oshal_ops::monitor::ChangeEvent>, OpsError> {
        let tenant = self.tenant(tenant).await?;
        Ok(self.inner.changes_since(&tenant, since_ms).await)
    }

    /// A tenant's settings, with its silences and maintenance windows.
    pub async fn settings(&self, tenant: Option<&str>) -> Result<SettingsView, OpsError> {
        let tenant = self.tenant(tenant).await?;
        let book = self.book(&tenant);
        let book = book.lock().await;
        Ok(SettingsView::of(&tenant, &book.monitor))
    }

    /// Replaces a tenant's settings.
    pub async fn set_settings(
        &self,
        tenant: Option<&str>,
        settings: Settings,
        by: &str,
    ) -> Result<SettingsView, OpsError> {
        let t = self.tenant(tenant).await?;
        self.take_one(
            &t,
            Input::Settings {
                settings,
                by: by.to_owned(),
            },
        )
        .await?;
        self.settings(Some(t.as_str())).await
    }

    /// Keeps, as the operator's change event, that `by` set `tenant`'s
    /// budget by hand (a heal's cap is no longer in force after it). A
    /// record that fails is logged and not tried again: the budget is
    /// set all the same.
    pub async fn budget_set(&self, tenant: &TenantId, budget_nusd: Option<i64>, by: &str) {
        let to = budget_nusd.map_or_else(
            || "lifted".to_owned(),
            |b| format!("set to ${:.6}", crate::cost::usd(b)),
        );
        let change = oshal_ops::change::ChangeEvent {
            kind: oshal_ops::change::ChangeKind::BudgetChanged,
            subject: tenant.to_string(),
            detail: format!("budget {to} by {by}"),
            count: 0,
            at_ms: 0,
        };
        if let Err(e) = self
            .take_one(&TenantId::default_tenant(), Input::Change(change))
            .await
        {
            tracing::warn!(%tenant, error = %e, "a budget set by hand could not be kept as a change event");
        }
    }

    /// Adds a silence, a maintenance window or a change event. A budget's
    /// change is the platform's own record (of `PUT /api/v1/tenants/{id}`
    /// and of the heals' writes), never written by hand: it decides
    /// whether a capped budget may be raised.
    pub async fn add(&self, tenant: Option<&str>, input: Input) -> Result<SettingsView, OpsError> {
        use oshal_ops::change::ChangeKind;
        if let Input::Change(c) = &input
            && matches!(c.kind, ChangeKind::BudgetChanged | ChangeKind::BudgetCapped)
        {
            return Err(OpsError::Invalid(Invalid {
                path: "kind".into(),
                reason: "a budget's change is recorded by the platform when the budget is set (PUT /api/v1/tenants/{id}); it is not written by hand".into(),
                limit: None,
            }));
        }
        let t = self.tenant(tenant).await?;
        self.take_one(&t, input).await?;
        self.settings(Some(t.as_str())).await
    }

    /// Whether an alert of `tenant` is firing (for the platform's own
    /// signals, which resolve what no longer holds).
    async fn firing(&self, tenant: &TenantId) -> Vec<Alert> {
        let book = self.book(tenant);
        let book = book.lock().await;
        book.monitor
            .alerts()
            .into_iter()
            .filter(|a| a.source == Source::Platform && a.state != AlertState::Resolved)
            .cloned()
            .collect()
    }

    /// The `label` of each of the platform's own `name` alerts not
    /// resolved (the operator's): where a per-key watcher resumes.
    async fn firing_keys(&self, name: &str, label: &str) -> std::collections::BTreeSet<String> {
        self.firing(&TenantId::default_tenant())
            .await
            .into_iter()
            .filter(|a| a.name == name)
            .filter_map(|a| a.labels.get(label).cloned())
            .collect()
    }
}

#[cfg(test)]
mod gather_tests;
#[cfg(test)]
mod tests;
