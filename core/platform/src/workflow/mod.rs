//! Workflows' adapter: runs of `oshal-workflow` specs whose nodes are
//! tickets.
//!
//! `oshal-workflow` is the logic, pure; this module records a run's
//! history in the store's journal (book `workflow`: the first entry holds
//! the spec the run is pinned to, each next one an event), submits every
//! scheduled node as a ticket of the run's tenant under its key
//! `wf/<run>/<unit>/<attempt>` with the run's id as its correlation id,
//! and reports each ticket's start and end back as events, with what the
//! ticket cost. One task drives each live run ([`runner`]); operators
//! decide approvals, retry from a node and stop runs through [`Workflows`].
//!
//! Nothing the runner holds is the only copy. An event is in the journal
//! before it is applied or acted on; after a restart each run is rebuilt
//! from its history, every node in flight is found again by its key (the
//! controller answers the ticket it already has), and the run goes on
//! without a finished node run twice. An approval waiting survives a
//! restart with its deadline.

mod catalog;
mod children;
pub mod definitions;
mod generator;
mod groups;
mod handle;
mod runner;
mod tickets;
mod upgrade;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use oshal_workflow::history::{Event, Stop};
use oshal_workflow::run::Run;
use oshal_workflow::spec::{SpecError, TaskSpec, WorkflowSpec};
use oshal_workflow::validate::{Registry, Workflow};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::controller::{Controller, ControllerError};
use crate::store::{JournalEntry, StoreError};
use crate::ticket::{TenantId, TicketId, Work};
pub use catalog::{Shape, ShapeInput, shapes};
pub use definitions::{DefinitionDiff, DefinitionQuery, DefinitionView, NewDefinition, SpecChange};
pub use generator::{GenerateRequest, Generated, check_reply};
pub use upgrade::{UpgradeRequest, UpgradeView};
pub use view::{
    ApprovalView, Decision, HistoryEntry, NewRun, NodeCost, NodeOutline, NodeView, PendingApproval,
    RetryRequest, RunSummary, RunView, SpecIssue, SpecSource, StopRequest, UnitView, Validation,
};

/// The journal's book of workflow runs.
pub const BOOK: &str = "workflow";
/// The most runs one controller keeps live at once.
pub const MAX_LIVE_RUNS: usize = 256;
/// The most memoized outputs kept in memory (each at most 32 KiB); past
/// it, new ones are not kept (their nodes run again) until a restart.
pub const MAX_MEMO: usize = 10_000;
/// Who may be named to approve: the server's token, or an operator-role
/// token of the run's tenant.
pub const APPROVERS: [&str; 2] = ["operator", "tenant"];

/// Why a workflow request was refused or could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("the spec is refused: {}", summarize(.0))]
    Spec(Vec<SpecIssue>),
    #[error("workflow run {0} not found")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} runs are live; the limit is {MAX_LIVE_RUNS}")]
    TooMany(usize),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summarize(issues: &[SpecIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the platform tells the checks of a spec: the ticket kinds, a
/// payload without placeholders parsed as its kind's, and who may approve.
struct Kinds;

impl Registry for Kinds {
    fn check_task(&self, task: &TaskSpec, at: &str) -> Vec<SpecError> {
        if task.kind == children::KIND {
            return match children::check(&task.payload) {
                Ok(()) => Vec::new(),
                Err(e) => vec![SpecError::new(format!("{at}.payload"), "payload", e)],
            };
        }
        if !Work::KINDS.contains(&task.kind.as_str()) {
            return vec![SpecError::new(
                format!("{at}.kind"),
                "unknown_kind",
                format!(
                    "{:?} is not a kind of ticket; the kinds are {} (and {} for a sub-workflow)",
                    task.kind,
                    Work::KINDS.join(", "),
                    children::KIND
                ),
            )];
        }
        let templated = task.payload.to_string().contains("${{");
        match Work::parse(&task.kind, task.payload.clone()) {
            Err(e) if !templated => vec![SpecError::new(
                format!("{at}.payload"),
                "payload",
                e.to_string(),
            )],
            _ => Vec::new(),
        }
    }

    fn heartbeats(&self, task: &TaskSpec) -> bool {
        // Only media steps that run ffmpeg report progress as they go
        // (ingest, probe and publish report once, at the start).
        task.kind == "media"
            && matches!(
                task.payload.get("op").and_then(Value::as_str),
                Some("transcode" | "concat" | "check")
            )
    }

    fn check_approvers(&self, names: &[String], at: &str) -> Vec<SpecError> {
        names
            .iter()
            .enumerate()
            .filter(|(_, n)| !APPROVERS.contains(&n.as_str()))
            .map(|(k, n)| {
                SpecError::new(
                    format!("{at}[{k}]"),
                    "approver",
                    format!(
                        "{n:?} is not an approver; name {} (the server's token) or {} (an operator-role token of the run's tenant)",
                        APPROVERS[0], APPROVERS[1]
                    ),
                )
            })
            .collect()
    }
}

/// A spec from what a request sent: an object, or JSON or YAML text.
fn read_spec(source: &Value) -> Result<Workflow, Vec<SpecIssue>> {
    let spec = match source {
        Value::String(text) => WorkflowSpec::from_text(text),
        other => WorkflowSpec::from_value(other.clone()),
    }
    .map_err(|e| vec![SpecIssue::from(e)])?;
    Workflow::new(spec, &Kinds).map_err(|e| e.into_iter().map(SpecIssue::from).collect())
}

/// Checks a spec without running anything.
pub fn validate(source: &SpecSource) -> Validation {
    match read_spec(&source.spec) {
        Ok(w) => Validation {
            valid: true,
            name: Some(w.spec.name.clone()),
            hash: Some(w.hash.clone()),
            nodes: view::outline(&w),
            errors: Vec::new(),
        },
        Err(errors) => Validation {
            valid: false,
            name: None,
            hash: None,
            nodes: Vec::new(),
            errors,
        },
    }
}

/// The runs of one controller: live ones driven, ended ones kept to read.
#[derive(Debug, Clone)]
pub struct Workflows {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    controller: Controller,
    runs: RwLock<BTreeMap<String, Arc<handle::Handle>>>,
    /// Outputs of memoized units by tenant and input hash.
    memo: Mutex<HashMap<(TenantId, String), (Value, String)>>,
    /// Concurrency groups by tenant and name: who runs, who waits.
    groups: Mutex<HashMap<(TenantId, String), groups::Slot>>,
    /// Published definitions, by tenant and name.
    definitions: definitions::Definitions,
    cancel: CancellationToken,
}

/// What the journal's first entry of a run holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Started {
    spec: WorkflowSpec,
    event: Event,
}

impl Workflows {
    /// Starts the adapter: every run in the journal is rebuilt, and those
    /// not ended go on. A run whose history does not read is logged and
    /// left out; it keeps no other from starting.
    pub async fn start(controller: Controller) -> Result<Workflows, WorkflowError> {
        let definitions = definitions::Definitions::load(controller.store().as_ref()).await?;
        let workflows = Workflows {
            inner: Arc::new(Inner {
                controller: controller.clone(),
                runs: RwLock::new(BTreeMap::new()),
                memo: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                definitions,
                cancel: CancellationToken::new(),
            }),
        };
        let mut by_run: BTreeMap<String, Vec<JournalEntry>> = BTreeMap::new();
        for e in controller.store().journal(BOOK, None).await? {
            by_run.entry(e.session.clone()).or_default().push(e);
        }
        let mut handles = Vec::new();
        for (id, entries) in by_run {
            match handle::Handle::rebuild(&entries) {
                Ok(handle) => {
                    let handle = Arc::new(handle);
                    let run = handle.snapshot();
                    workflows.remember(&handle.tenant, &run);
                    workflows.cancel_left_behind(&run);
                    workflows.insert(handle.clone());
                    handles.push(handle);
                }
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "a workflow run could not be rebuilt")
                }
            }
        }
        // The groups as the runs left them, before any runner asks anew.
        let notices = workflows.rebuild_groups(&handles);
        workflows.deliver(notices).await;
        // Every run is in: a child whose parent moved on from it stops.
        workflows.stop_orphans(None).await;
        for handle in handles {
            workflows.drive(handle);
        }
        Ok(workflows)
    }

    /// Stops every runner; their runs go on at the next start.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }

    fn insert(&self, handle: Arc<handle::Handle>) {
        self.inner
            .runs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.id.clone(), handle);
    }

    fn drive(&self, handle: Arc<handle::Handle>) {
        if handle.claim_runner() {
            let runner = runner::Runner::new(self.clone(), handle);
            tokio::spawn(runner.run());
        }
    }

    /// A run that ended while units were in flight (terminated, timed
    /// out) had their tickets cancelled as it ended; if the controller
    /// stopped in between, the cancels are sent again (an ended ticket
    /// refuses one, which changes nothing).
    fn cancel_left_behind(&self, run: &Run) {
        if run.state == oshal_workflow::history::RunState::Running {
            return;
        }
        let tickets: Vec<TicketId> = run
            .nodes
            .iter()
            .flat_map(|n| &n.units)
            .filter(|u| {
                u.failure
                    .as_ref()
                    .is_some_and(|f| f.error_type == "cancelled")
            })
            .filter_map(|u| u.tickets.last())
            .filter_map(|t| TicketId::parse(t).ok())
            .collect();
        if tickets.is_empty() {
            return;
        }
        let controller = self.inner.controller.clone();
        tokio::spawn(async move {
            for t in tickets {
                let _ = controller.cancel(t).await;
            }
        });
    }

    /// Keeps the outputs of `run`'s memoized units for later runs.
    fn remember(&self, tenant: &TenantId, run: &Run) {
        // A dry run's answers (writes refused) are never anyone's outputs.
        if run.dry_run {
            return;
        }
        let mut memo = self.inner.memo.lock().unwrap_or_else(|p| p.into_inner());
        for (i, n) in run.nodes.iter().enumerate() {
            if !run.workflow.spec.nodes[i].memoize {
                continue;
            }
            for u in &n.units {
                if let (Some(input), Some(output), Some(hash)) =
                    (&u.input_hash, &u.output, &u.output_hash)
                    && u.phase == oshal_workflow::history::NodePhase::Succeeded
                {
                    let key = (tenant.clone(), input.clone());
                    if memo.len() < MAX_MEMO || memo.contains_key(&key) {
                        memo.insert(key, (output.clone(), hash.clone()));
                    }
                }
            }
        }
    }

    /// Starts a run of `new.spec`, or of a published definition's version,
    /// pinned to its hash.
    pub async fn start_run(&self, new: NewRun, by: &str) -> Result<RunView, WorkflowError> {
        self.begin(new, by, None).await
    }

    /// Starts a run; a sub-workflow of the unit keyed `parent`, if given.
    async fn begin(
        &self,
        new: NewRun,
        by: &str,
        parent: Option<String>,
    ) -> Result<RunView, WorkflowError> {
        let source = match (&new.definition, new.spec.is_null()) {
            (None, false) => new.spec.clone(),
            (Some(name), true) => {
                let tenant = self
                    .inner
                    .controller
                    .known_tenant(new.tenant.as_deref())
                    .await?;
                let (spec, _) = self.inner.definitions.spec(&tenant, name, new.version)?;
                serde_json::to_value(spec).expect("a spec serializes")
            }
            (Some(_), false) => {
                return Err(WorkflowError::Invalid {
                    field: "definition".into(),
                    reason: "give a spec or a published definition's name, not both".into(),
                });
            }
            (None, true) => {
                return Err(WorkflowError::Invalid {
                    field: "spec".into(),
                    reason: "give a spec, or a published definition's name".into(),
                });
            }
        };
        let workflow = Arc::new(read_spec(&source).map_err(WorkflowError::Spec)?);
        let inputs = workflow
            .inputs(&new.inputs)
            .map_err(|e| WorkflowError::Spec(vec![e.into()]))?;
        let tenant = self
            .inner
            .controller
            .known_tenant(new.tenant.as_deref())
            .await?;
        let live = self.live_count();
        if live >= MAX_LIVE_RUNS {
            return Err(WorkflowError::TooMany(live));
        }
        let id = TicketId::new().to_string();
        let now = self.inner.controller.clock().now_ms();
        let (run, event) = Run::start_as(
            workflow.clone(),
            &id,
            inputs,
            by,
            now,
            (new.dry_run, parent),
        );
        let body = serde_json::to_string(&Started {
            spec: workflow.spec.clone(),
            event,
        })
        .expect("a spec serializes");
        let entry = JournalEntry {
            book: BOOK.into(),
            session: id.clone(),
            seq: 0,
            tenant: tenant.clone(),
            kind: "run_started".into(),
            body,
            at_ms: now,
        };
        if self
            .inner
            .controller
            .store()
            .append_journal(&[entry])
            .await?
            == 0
        {
            return Err(WorkflowError::Conflict(format!("run id {id} is taken")));
        }
        tracing::info!(run = %id, workflow = %workflow.spec.name, %tenant, by, "workflow run started");
        let handle = Arc::new(handle::Handle::new(id, tenant.clone(), run, 1));
        let view = self.run_view(&handle.snapshot(), &tenant);
        self.insert(handle.clone());
        self.drive(handle);
        Ok(view)
    }

    /// Publishes a spec as the next version of its name (nothing new if
    /// the latest version has its hash).
    pub async fn publish(
        &self,
        new: NewDefinition,
        by: &str,
    ) -> Result<DefinitionView, WorkflowError> {
        let tenant = self
            .inner
            .controller
            .known_tenant(new.tenant.as_deref())
            .await?;
        let now = self.inner.controller.clock().now_ms();
        self.inner
            .definitions
            .publish(
                self.inner.controller.store().as_ref(),
                &tenant,
                &new,
                by,
                now,
            )
            .await
    }

    /// The latest version of each definition `only` may see.
    pub fn definitions(&self, only: Option<&TenantId>) -> Vec<DefinitionView> {
        self.inner.definitions.latest(only)
    }

    /// Every version of a definition, newest first.
    pub async fn definition(
        &self,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<DefinitionView>, WorkflowError> {
        let tenant = self.inner.controller.known_tenant(tenant).await?;
        self.inner.definitions.versions(&tenant, name)
    }

    /// A candidate spec compared with the latest version of its name.
    pub async fn compare(&self, source: &NewDefinition) -> Result<DefinitionDiff, WorkflowError> {
        definitions::check_note(source)?;
        let tenant = self
            .inner
            .controller
            .known_tenant(source.tenant.as_deref())
            .await?;
        Ok(self.inner.definitions.compare(&tenant, &source.spec))
    }

    fn live_count(&self) -> usize {
        self.inner
            .runs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|h| h.snapshot_state() == oshal_workflow::history::RunState::Running)
            .count()
    }

    fn handle(
        &self,
        id: &str,
        only: Option<&TenantId>,
    ) -> Result<Arc<handle::Handle>, WorkflowError> {
        self.inner
            .runs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|h| only.is_none_or(|t| *t == h.tenant))
            .cloned()
            .ok_or_else(|| WorkflowError::NotFound(id.to_owned()))
    }

    /// Every run (or `only`'s), newest first.
    pub fn list(&self, only: Option<&TenantId>) -> Vec<RunSummary> {
        let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<RunSummary> = runs
            .values()
            .filter(|h| only.is_none_or(|t| *t == h.tenant))
            .map(|h| view::summary(&h.snapshot(), &h.tenant))
            .collect();
        out.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(b.id.cmp(&a.id)));
        out
    }

    /// The run's state alone: cheap, whatever the run's size.
    pub fn state(
        &self,
        id: &str,
        only: Option<&TenantId>,
    ) -> Result<oshal_workflow::history::RunState, WorkflowError> {
        Ok(self.handle(id, only)?.snapshot_state())
    }

    pub fn view(&self, id: &str, only: Option<&TenantId>) -> Result<RunView, WorkflowError> {
        let h = self.handle(id, only)?;
        Ok(self.run_view(&h.snapshot(), &h.tenant))
    }

    /// The most earlier runs a forecast reads.
    const PAST_RUNS: usize = 20;

    /// A run's view, its forecast from the tenant's last runs of the same
    /// workflow that succeeded (and what of this one has ended).
    fn run_view(&self, run: &Run, tenant: &TenantId) -> RunView {
        let past: Vec<Arc<Run>> = {
            let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
            let mut mine: Vec<&Arc<handle::Handle>> = runs
                .values()
                .filter(|h| h.tenant == *tenant && h.id != run.id)
                .filter(|h| h.snapshot_state() == oshal_workflow::history::RunState::Succeeded)
                .collect();
            mine.sort_by(|a, b| b.id.cmp(&a.id));
            mine.into_iter()
                .map(|h| h.snapshot())
                .filter(|r| r.workflow.spec.name == run.workflow.spec.name)
                .take(Self::PAST_RUNS)
                .collect()
        };
        let estimates = oshal_workflow::forecast::Estimates::from_runs(
            past.iter().map(|r| r.as_ref()).chain(std::iter::once(run)),
        );
        view::run_view(
            run,
            tenant,
            &estimates,
            self.inner.controller.clock().now_ms(),
        )
    }

    /// The run's history as stored.
    pub async fn history(
        &self,
        id: &str,
        only: Option<&TenantId>,
    ) -> Result<Vec<HistoryEntry>, WorkflowError> {
        let h = self.handle(id, only)?;
        let entries = self
            .inner
            .controller
            .store()
            .journal_of(BOOK, id, &h.tenant)
            .await?;
        Ok(entries
            .into_iter()
            .map(|e| HistoryEntry {
                seq: e.seq,
                event: e.kind,
                body: serde_json::from_str(&e.body).unwrap_or(Value::String(e.body)),
                at_ms: e.at_ms,
            })
            .collect())
    }

    /// Approvals waiting for a decision (or `only`'s).
    pub fn approvals(&self, only: Option<&TenantId>) -> Vec<PendingApproval> {
        let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for h in runs
            .values()
            .filter(|h| only.is_none_or(|t| *t == h.tenant))
        {
            let run = h.snapshot();
            for (i, _) in view::waiting(&run) {
                if let Some(approval) = view::approval_view(&run, i) {
                    out.push(PendingApproval {
                        run: run.id.clone(),
                        workflow: run.workflow.spec.name.clone(),
                        node: run.nodes[i].name.clone(),
                        tenant: h.tenant.clone(),
                        approval,
                    });
                }
            }
        }
        out.sort_by_key(|p| p.approval.deadline_ms);
        out
    }

    /// Decides an approval. `as_approver` is who the caller is
    /// (`operator`, or `tenant` for an operator-role tenant token); the
    /// approval, or its escalation once it has happened, must name them.
    pub async fn decide(
        &self,
        id: &str,
        only: Option<&TenantId>,
        decision: Decision,
        as_approver: &str,
        by: &str,
    ) -> Result<RunView, WorkflowError> {
        let h = self.handle(id, only)?;
        let run = h.snapshot();
        let i = run
            .workflow
            .index(&decision.node)
            .ok_or_else(|| WorkflowError::Invalid {
                field: "node".into(),
                reason: format!("the run has no node {:?}", decision.node),
            })?;
        let (Some(spec), Some(state)) = (
            run.workflow.spec.nodes[i].approval.as_ref(),
            run.nodes[i].approval.as_ref(),
        ) else {
            return Err(WorkflowError::Conflict(format!(
                "{} is not an approval waiting for a decision",
                decision.node
            )));
        };
        let named = spec.approvers.iter().any(|a| a == as_approver)
            || state
                .escalated_to
                .as_ref()
                .is_some_and(|to| to.iter().any(|a| a == as_approver));
        if !named {
            return Err(WorkflowError::Forbidden(format!(
                "{as_approver} may not decide {}: its approvers are {}{}",
                decision.node,
                spec.approvers.join(", "),
                state
                    .escalated_to
                    .as_ref()
                    .map_or(String::new(), |to| format!(
                        ", and after escalation {}",
                        to.join(", ")
                    ))
            )));
        }
        if decision.comment.len() > 1_000 {
            return Err(WorkflowError::Invalid {
                field: "comment".into(),
                reason: format!("{} bytes; the limit is 1000", decision.comment.len()),
            });
        }
        if decision.approved
            && let Some(schema) = &spec.input_schema
        {
            check_input(schema, &decision.input)?;
        }
        let now = self.inner.controller.clock().now_ms();
        let event = Event::ApprovalDecided {
            node: decision.node,
            approved: decision.approved,
            by: by.to_owned(),
            input: decision.input,
            comment: decision.comment,
            at: now,
        };
        self.command(&h, event).await
    }

    /// Runs `node` again, and everything downstream of it, keeping every
    /// other output.
    pub async fn retry(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: RetryRequest,
        by: &str,
    ) -> Result<RunView, WorkflowError> {
        let h = self.handle(id, only)?;
        let now = self.inner.controller.clock().now_ms();
        let event = Event::RetryRequested {
            node: request.node,
            by: by.to_owned(),
            at: now,
        };
        let view = self.command(&h, event).await?;
        self.drive(h);
        Ok(view)
    }

    /// Stops a run: its tickets in flight are cancelled (their spend stops).
    pub async fn stop(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: StopRequest,
        by: &str,
    ) -> Result<RunView, WorkflowError> {
        if request.reason.len() > 1_000 {
            return Err(WorkflowError::Invalid {
                field: "reason".into(),
                reason: format!("{} bytes; the limit is 1000", request.reason.len()),
            });
        }
        let h = self.handle(id, only)?;
        let now = self.inner.controller.clock().now_ms();
        let event = Event::StopRequested {
            how: request.how,
            by: by.to_owned(),
            reason: request.reason,
            at: now,
        };
        self.command(&h, event).await
    }

    /// Records an operator's event (checked against the run first) and
    /// wakes the runner.
    async fn command(
        &self,
        h: &Arc<handle::Handle>,
        event: Event,
    ) -> Result<RunView, WorkflowError> {
        let store = self.inner.controller.store().clone();
        let run = h.record_command(store.as_ref(), event).await?;
        h.wake();
        Ok(self.run_view(&run, &h.tenant))
    }
}

/// An approver's input checked against the approval's JSON Schema.
fn check_input(schema: &Value, input: &Value) -> Result<(), WorkflowError> {
    let validator = jsonschema::validator_for(schema).map_err(|e| WorkflowError::Invalid {
        field: "input".into(),
        reason: format!("the approval's input_schema is not a schema: {e}"),
    })?;
    if let Some(e) = validator.iter_errors(input).next() {
        let at = e.instance_path().to_string();
        return Err(WorkflowError::Invalid {
            field: if at.is_empty() {
                "input".into()
            } else {
                format!("input{}", at.replace('/', "."))
            },
            reason: e.to_string(),
        });
    }
    Ok(())
}

/// A stop as the CLI names it.
pub fn parse_stop(how: &str) -> Option<Stop> {
    serde_json::from_value(Value::String(how.to_owned())).ok()
}

#[cfg(test)]
mod shapes;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
