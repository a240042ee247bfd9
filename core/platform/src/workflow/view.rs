//! What the workflow routes take and give: a spec to check or run, a run
//! as every surface shows it (its nodes with their phases, attempts,
//! tickets, durations and cost), the approval inbox and the decisions.

use oshal_workflow::history::{NodePhase, RunState, Stop};
use oshal_workflow::run::Run;
use oshal_workflow::spec::SpecError;
use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::ticket::TenantId;

/// The contract's `spec`: a `WorkflowSpec` object, or its JSON or YAML text.
pub(super) fn spec_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type as T};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(T::Object))
        .item(
            ObjectBuilder::new()
                .schema_type(T::String)
                .max_length(Some(oshal_workflow::spec::MAX_SPEC_BYTES)),
        )
        .into()
}

/// A spec to check: JSON (an object, or its text) or YAML text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecSource {
    /// A `WorkflowSpec` object, or its JSON or YAML text.
    #[specta(type = specta_typescript::Unknown)]
    #[schema(schema_with = spec_schema)]
    pub spec: serde_json::Value,
}

/// A run to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// A `WorkflowSpec` object, or its JSON or YAML text; or leave it out
    /// and name a published `definition`.
    #[serde(default)]
    #[specta(type = specta_typescript::Unknown)]
    #[schema(schema_with = spec_schema)]
    pub spec: serde_json::Value,
    /// A published definition's name, run instead of `spec`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub definition: Option<String>,
    /// Its version; the latest if absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// A dry run: every write its tasks would make is refused before it
    /// is sent (a tool's write by the connector runtime, a media publish
    /// by the bot), and answered with what would have been written.
    #[serde(default)]
    pub dry_run: bool,
    /// The run's inputs by name; each not given takes its default.
    #[serde(default)]
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// A known tenant; the token's tenant, or `default`, if absent.
    #[serde(default)]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
}

/// One refusal of a spec, at the JSON path of its field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SpecIssue {
    /// `$.nodes[2].depends`.
    pub path: String,
    /// `parse`, `cycle`, `undefined`, `depends_and_dependencies`,
    /// `expression`, `unknown_kind`, `timeout_required`, `limit`, …
    pub code: String,
    pub message: String,
}

impl From<SpecError> for SpecIssue {
    fn from(e: SpecError) -> Self {
        SpecIssue {
            path: e.path,
            code: e.code,
            message: e.message,
        }
    }
}

/// What checking a spec found: its hash and DAG if it passed, else every
/// refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub name: Option<String>,
    /// What a run of it is pinned to: `sha256:…`.
    pub hash: Option<String>,
    /// The DAG, each node with what it waits on.
    pub nodes: Vec<NodeOutline>,
    pub errors: Vec<SpecIssue>,
}

/// A node of a spec's DAG, as its preview draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct NodeOutline {
    pub name: String,
    /// The task's ticket kind, or `approval`.
    pub kind: String,
    pub upstream: Vec<String>,
    /// Its condition as an expression (`depends`, or `dependencies` as `a && b`).
    pub condition: Option<String>,
    /// `matrix`, `with_items` or none.
    pub fan_out: Option<String>,
}

/// A run as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub spec_hash: String,
    pub tenant: TenantId,
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub state: RunState,
    pub started_by: String,
    /// A dry run: every write its tasks would make was refused.
    pub dry_run: bool,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub started_at_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub finished_at_ms: Option<UnixMs>,
    /// Units fulfilled, and in all (a fan-out not yet expanded counts one).
    pub done: u32,
    pub total: u32,
    /// Approvals waiting for a decision.
    pub waiting_approvals: u32,
    /// The run this one is a sub-workflow of (a unit of it started this).
    pub parent_run: Option<String>,
    /// Model and connector spend of every ticket the run took, nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
}

/// A run whole: its summary, inputs and nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub summary: RunSummary,
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// By the spec's order.
    pub nodes: Vec<NodeView>,
    /// When the run is expected to end (its end, once it has): from the
    /// medians of what its nodes took in earlier runs; absent when a node
    /// on the way has never run.
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub ends_at_ms: Option<UnixMs>,
    /// The nodes on the longest chain to the end, first to last.
    pub critical_path: Vec<String>,
    /// When the run next acts unprompted (a timeout, a retry, an escalation).
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub next_deadline_ms: Option<UnixMs>,
    /// Events in its history.
    pub events: u32,
    /// What each node that took a ticket spent so far (a unit's spend is
    /// counted as each of its attempts ends), the most expensive first.
    pub cost_by_node: Vec<NodeCost>,
}

/// One node's spend in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct NodeCost {
    pub node: String,
    /// Model and connector spend of its tickets, nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    /// Tickets its units took (every attempt's).
    pub tickets: u32,
}

/// A node of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub outline: NodeOutline,
    /// Argo's node phase.
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub phase: NodePhase,
    /// Why it was omitted or errored.
    pub message: Option<String>,
    pub units: Vec<UnitView>,
    pub approval: Option<ApprovalView>,
    /// Its units' spend, nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    /// What one of its units took in earlier runs (the median), if any ran.
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub estimate_ms: Option<i64>,
    /// When it is expected to end (its end, once it has), if that is known.
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub expected_end_ms: Option<UnixMs>,
}

/// One unit: the node, or one item of a fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct UnitView {
    pub name: String,
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub item: Option<serde_json::Value>,
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub phase: NodePhase,
    /// The last attempt's number (they never repeat, across retries).
    pub attempt: u32,
    /// Each attempt's ticket, oldest first.
    pub tickets: Vec<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub scheduled_at_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub started_at_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub finished_at_ms: Option<UnixMs>,
    /// 0 to 100, when the work reports it.
    pub progress: Option<u8>,
    /// Its output was an earlier run's, for the same input hash.
    pub memoized: bool,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: Option<serde_json::Value>,
    /// The last attempt's failure: its type (what a retry policy names) and why.
    pub error_type: Option<String>,
    pub error: Option<String>,
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
}

/// An approval node's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ApprovalView {
    pub approvers: Vec<String>,
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<serde_json::Value>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub requested_at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub deadline_ms: UnixMs,
    pub escalated_to: Option<Vec<String>>,
    pub decided_by: Option<String>,
}

/// An approval waiting, as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct PendingApproval {
    pub run: String,
    pub workflow: String,
    pub node: String,
    pub tenant: TenantId,
    #[serde(flatten)]
    pub approval: ApprovalView,
}

/// A decision on an approval node, made by whoever holds the token: the
/// approval must name them (`operator`: the server's token; `tenant`: an
/// operator-role token of the run's tenant), or its escalation must have
/// gone to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub node: String,
    pub approved: bool,
    /// What the approval's `input_schema` asks for (checked against it).
    #[serde(default)]
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Why; at most 1,000 bytes.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub comment: String,
}

/// Run a node again, and everything downstream of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    pub node: String,
}

/// Stop a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// `cancel` (what runs is cancelled, and the run ends once it has
    /// stopped) or `terminate` (the run ends at once).
    #[schema(value_type = String, pattern = "^(cancel|terminate)$")]
    #[specta(type = String)]
    pub how: Stop,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub reason: String,
}

/// One event of a run's history, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub seq: u32,
    pub event: String,
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub at_ms: UnixMs,
}

/// The DAG of a checked spec, for a preview.
pub(super) fn outline(w: &oshal_workflow::validate::Workflow) -> Vec<NodeOutline> {
    w.spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeOutline {
            name: n.name.clone(),
            kind: n
                .task
                .as_ref()
                .map_or_else(|| "approval".to_owned(), |t| t.kind.clone()),
            upstream: w.upstream[i]
                .iter()
                .map(|&j| w.spec.nodes[j].name.clone())
                .collect(),
            condition: w.condition[i].as_ref().map(ToString::to_string),
            fan_out: if n.matrix.is_some() {
                Some("matrix".into())
            } else if n.with_items.is_some() {
                Some("with_items".into())
            } else {
                None
            },
        })
        .collect()
}

pub(super) fn summary(run: &Run, tenant: &TenantId) -> RunSummary {
    let (done, total) = run.progress();
    RunSummary {
        id: run.id.clone(),
        workflow: run.workflow.spec.name.clone(),
        spec_hash: run.workflow.hash.clone(),
        tenant: tenant.clone(),
        state: run.state,
        started_by: run.started_by.clone(),
        dry_run: run.dry_run,
        started_at_ms: run.started_at,
        finished_at_ms: run.finished_at,
        done: u32::try_from(done).unwrap_or(u32::MAX),
        total: u32::try_from(total).unwrap_or(u32::MAX),
        waiting_approvals: u32::try_from(waiting(run).count()).unwrap_or(u32::MAX),
        parent_run: run
            .parent
            .as_deref()
            .and_then(|k| k.strip_prefix("wf/"))
            .and_then(|k| k.split('/').next())
            .map(str::to_owned),
        cost_nusd: run
            .nodes
            .iter()
            .flat_map(|n| &n.units)
            .map(|u| u.cost_nusd)
            .sum(),
    }
}

/// The approval nodes of `run` waiting for a decision.
pub(super) fn waiting(run: &Run) -> impl Iterator<Item = (usize, &oshal_workflow::run::Approval)> {
    run.nodes.iter().enumerate().filter_map(|(i, n)| {
        n.approval
            .as_ref()
            .filter(|a| a.decided_by.is_none() && n.phase == NodePhase::Running)
            .map(|a| (i, a))
    })
}

pub(super) fn approval_view(run: &Run, i: usize) -> Option<ApprovalView> {
    let spec = run.workflow.spec.nodes[i].approval.as_ref()?;
    let a = run.nodes[i].approval.as_ref()?;
    Some(ApprovalView {
        approvers: spec.approvers.clone(),
        input_schema: spec.input_schema.clone(),
        requested_at_ms: a.requested_at,
        deadline_ms: a.deadline,
        escalated_to: a.escalated_to.clone(),
        decided_by: a.decided_by.clone(),
    })
}

pub(super) fn run_view(
    run: &Run,
    tenant: &TenantId,
    estimates: &oshal_workflow::forecast::Estimates,
    now: UnixMs,
) -> RunView {
    let forecast = run.forecast(now, estimates);
    let outlines = outline(&run.workflow);
    let nodes = run
        .nodes
        .iter()
        .zip(outlines)
        .enumerate()
        .map(|(i, (n, outline))| {
            let units: Vec<UnitView> = n
                .units
                .iter()
                .map(|u| UnitView {
                    name: u.name.clone(),
                    item: u.item.clone(),
                    phase: u.phase,
                    attempt: u.attempt,
                    tickets: u.tickets.clone(),
                    scheduled_at_ms: u.scheduled_at,
                    started_at_ms: u.started_at,
                    finished_at_ms: u.finished_at,
                    progress: u.progress,
                    memoized: u.memoized,
                    input_hash: u.input_hash.clone(),
                    output_hash: u.output_hash.clone(),
                    output: u.output.clone(),
                    error_type: u.failure.as_ref().map(|f| f.error_type.clone()),
                    error: u.failure.as_ref().map(|f| f.message.clone()),
                    cost_nusd: u.cost_nusd,
                })
                .collect();
            NodeView {
                outline,
                phase: n.phase,
                message: n.message.clone(),
                cost_nusd: units.iter().map(|u| u.cost_nusd).sum(),
                units,
                approval: approval_view(run, i),
                estimate_ms: estimates.of(&n.name),
                expected_end_ms: forecast.node_end[i],
            }
        })
        .collect::<Vec<NodeView>>();
    let mut cost_by_node: Vec<NodeCost> = nodes
        .iter()
        .map(|n| NodeCost {
            node: n.outline.name.clone(),
            cost_nusd: n.cost_nusd,
            tickets: u32::try_from(n.units.iter().map(|u| u.tickets.len()).sum::<usize>())
                .unwrap_or(u32::MAX),
        })
        .filter(|c| c.tickets > 0)
        .collect();
    cost_by_node.sort_by(|a, b| b.cost_nusd.cmp(&a.cost_nusd).then(a.node.cmp(&b.node)));
    RunView {
        summary: summary(run, tenant),
        inputs: run.inputs.clone(),
        nodes,
        ends_at_ms: forecast.ends_at,
        critical_path: forecast.critical_path,
        next_deadline_ms: run.next_deadline(),
        events: u32::try_from(run.events).unwrap_or(u32::MAX),
        cost_by_node,
    }
}
