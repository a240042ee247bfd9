//! A run: its state, rebuilt from its history ([`Run::apply`]), and the
//! next events it needs ([`Run::decide`], in `run/decide.rs`).
//!
//! Like a Temporal workflow task, deciding is a pure function of the state
//! and the time: the adapter records what it proposes and acts on it; a
//! replay applies the recorded events and never decides the past again.
//! An event that does not fit the state (a ticket's answer for an attempt
//! that already timed out) is refused with [`Stale`], changing nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::history::{Event, Failure, NodePhase, RunState, Stop, Task};
use crate::validate::Workflow;

mod decide;
pub use decide::Memo;

/// The most bytes a node's output may take in the history.
pub const MAX_OUTPUT_BYTES: usize = 32 * 1024;

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event} does not fit the run: {why}")]
pub struct Stale {
    pub event: &'static str,
    pub why: String,
}

/// One unit of work: a node, or one item of a fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// The node's name, or `name[i]`.
    pub name: String,
    /// A `with_items` item, or a matrix combination as an object.
    pub item: Option<Value>,
    pub phase: NodePhase,
    /// The last attempt number used (keys never reuse one).
    pub attempt: u32,
    /// Attempts before this one are not counted against the retry policy
    /// (a retry from the node started counting again).
    pub counted_from: u32,
    pub scheduled_at: Option<i64>,
    pub started_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub progress: Option<u8>,
    pub finished_at: Option<i64>,
    /// Waiting for a retry until then.
    pub retry_at: Option<i64>,
    pub key: Option<String>,
    /// The last attempt's ticket, its placeholders resolved.
    pub task: Option<Task>,
    /// Every ticket an attempt of it took, oldest first.
    pub tickets: Vec<String>,
    pub input_hash: Option<String>,
    pub output: Option<Value>,
    pub output_hash: Option<String>,
    pub memoized: bool,
    /// The last attempt's failure.
    pub failure: Option<Failure>,
    pub cancel_requested: bool,
    /// Its concurrency group, once it asked for the slot.
    pub group: Option<String>,
    /// Whether it holds its group's slot.
    pub admitted: bool,
    /// What its attempts' tickets cost, nano-dollars.
    pub cost_nusd: i64,
}

impl Unit {
    fn new(name: String, item: Option<Value>) -> Unit {
        Unit {
            name,
            item,
            phase: NodePhase::Pending,
            attempt: 0,
            counted_from: 0,
            scheduled_at: None,
            started_at: None,
            heartbeat_at: None,
            progress: None,
            finished_at: None,
            retry_at: None,
            key: None,
            task: None,
            tickets: Vec::new(),
            input_hash: None,
            output: None,
            output_hash: None,
            memoized: false,
            failure: None,
            cancel_requested: false,
            group: None,
            admitted: false,
            cost_nusd: 0,
        }
    }

    /// An attempt was handed out and has not ended.
    pub fn in_flight(&self) -> bool {
        !self.phase.fulfilled() && self.scheduled_at.is_some()
    }

    /// Attempts counted against the retry policy.
    pub fn attempts_counted(&self) -> u32 {
        self.attempt - self.counted_from
    }
}

/// An approval node's request.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub requested_at: i64,
    pub deadline: i64,
    pub escalated_to: Option<Vec<String>>,
    pub decided_by: Option<String>,
}

/// One node of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRun {
    pub name: String,
    /// Derived from its units, or set for the node whole (omitted, errored).
    pub phase: NodePhase,
    /// Whether it has begun: scheduled, expanded or asked for approval.
    pub started: bool,
    /// One for a task or an approval; one per item for a fan-out, once expanded.
    pub units: Vec<Unit>,
    pub approval: Option<Approval>,
    /// Why it was omitted or errored.
    pub message: Option<String>,
    /// How many of its units are in each phase (by [`phase_index`]), kept
    /// as events land so a fan-out's phase costs nothing per event.
    counts: [usize; 7],
}

/// A phase's place in [`NodeRun`]'s counts.
fn phase_index(p: NodePhase) -> usize {
    match p {
        NodePhase::Pending => 0,
        NodePhase::Running => 1,
        NodePhase::Succeeded => 2,
        NodePhase::Skipped => 3,
        NodePhase::Failed => 4,
        NodePhase::Error => 5,
        NodePhase::Omitted => 6,
    }
}

impl NodeRun {
    fn recount(&mut self) {
        self.counts = [0; 7];
        for u in &self.units {
            self.counts[phase_index(u.phase)] += 1;
        }
        self.derive();
    }

    /// A started node's phase from its units': any unfulfilled, Running
    /// (once one has begun) or Pending; then any Failed, Failed; any
    /// Error, Error; any Omitted, Omitted; else Succeeded.
    fn derive(&mut self) {
        if !self.started {
            return;
        }
        let c = |p| self.counts[phase_index(p)];
        let open = c(NodePhase::Pending) + c(NodePhase::Running);
        self.phase = if open > 0 {
            if open < self.units.len() || c(NodePhase::Running) > 0 {
                NodePhase::Running
            } else {
                NodePhase::Pending
            }
        } else if c(NodePhase::Failed) > 0 {
            NodePhase::Failed
        } else if c(NodePhase::Error) > 0 {
            NodePhase::Error
        } else if c(NodePhase::Omitted) > 0 {
            NodePhase::Omitted
        } else {
            NodePhase::Succeeded
        };
    }
}

/// A run's state.
#[derive(Debug, Clone)]
pub struct Run {
    pub workflow: Arc<Workflow>,
    pub id: String,
    pub inputs: Map<String, Value>,
    pub started_by: String,
    pub started_at: i64,
    /// Where the spec's `timeout` counts from: the start, or the last
    /// retry from a node.
    pub timeout_from: i64,
    pub state: RunState,
    pub finished_at: Option<i64>,
    pub stop: Option<Stop>,
    /// By index of the spec's nodes.
    pub nodes: Vec<NodeRun>,
    /// The last attempt used by each unit name, across retries from a node.
    last_attempt: BTreeMap<String, u32>,
    /// What units reset by a retry had taken (their tickets and spend),
    /// carried to the units of the same name.
    carried: BTreeMap<String, (Vec<String>, i64)>,
    /// Events applied.
    pub events: usize,
}

impl Run {
    /// A new run of `workflow`, and the event that starts it.
    pub fn start(
        workflow: Arc<Workflow>,
        id: &str,
        inputs: Map<String, Value>,
        by: &str,
        at: i64,
    ) -> (Run, Event) {
        let event = Event::RunStarted {
            run: id.to_owned(),
            spec_hash: workflow.hash.clone(),
            inputs,
            by: by.to_owned(),
            at,
        };
        let run = Run::replay(workflow, std::slice::from_ref(&event)).expect("a first event fits");
        (run, event)
    }

    /// The run its history describes.
    pub fn replay(workflow: Arc<Workflow>, history: &[Event]) -> Result<Run, Stale> {
        let Some(Event::RunStarted {
            run,
            spec_hash,
            inputs,
            by,
            at,
        }) = history.first()
        else {
            return Err(stale("history", "it does not begin with run_started"));
        };
        if *spec_hash != workflow.hash {
            return Err(stale(
                "run_started",
                format!("the run is pinned to {spec_hash}, not {}", workflow.hash),
            ));
        }
        let nodes = workflow
            .spec
            .nodes
            .iter()
            .map(|n| NodeRun {
                name: n.name.clone(),
                phase: NodePhase::Pending,
                started: false,
                units: if n.is_fan_out() {
                    Vec::new()
                } else {
                    vec![Unit::new(n.name.clone(), None)]
                },
                approval: None,
                message: None,
                counts: [0; 7],
            })
            .map(|mut n| {
                n.recount();
                n
            })
            .collect::<Vec<NodeRun>>();
        let mut state = Run {
            workflow,
            id: run.clone(),
            inputs: inputs.clone(),
            started_by: by.clone(),
            started_at: *at,
            timeout_from: *at,
            state: RunState::Running,
            finished_at: None,
            stop: None,
            nodes,
            last_attempt: BTreeMap::new(),
            carried: BTreeMap::new(),
            events: 1,
        };
        for e in &history[1..] {
            state.apply(e)?;
        }
        Ok(state)
    }

    /// Where the unit named `unit` is: (node index, unit index).
    pub fn find(&self, unit: &str) -> Option<(usize, usize)> {
        let (node, j) = match unit.split_once('[') {
            // A fan-out's k-th unit is `name[k]`, at index k.
            Some((node, rest)) => (node, rest.strip_suffix(']')?.parse::<usize>().ok()?),
            None => (unit, 0),
        };
        let i = self.workflow.index(node)?;
        let found = self.nodes[i].units.get(j).filter(|u| u.name == unit)?;
        debug_assert_eq!(found.name, unit);
        Some((i, j))
    }

    /// Whether `attempt` of `unit` was handed out and has not ended: the
    /// only attempt whose news the run takes.
    pub fn in_flight(&self, unit: &str, attempt: u32) -> bool {
        self.unit(unit)
            .is_some_and(|u| u.attempt == attempt && u.in_flight())
    }

    /// The units holding or waiting for a place in a group: (group, unit,
    /// admitted). What a restarted controller rebuilds the groups from.
    pub fn group_places(&self) -> Vec<(String, String, bool)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.workflow.spec.nodes[*i].concurrency.is_some())
            .flat_map(|(_, n)| &n.units)
            .filter(|u| !u.phase.fulfilled())
            .filter_map(|u| Some((u.group.clone()?, u.name.clone(), u.admitted)))
            .collect()
    }

    pub fn unit(&self, unit: &str) -> Option<&Unit> {
        self.find(unit).map(|(i, j)| &self.nodes[i].units[j])
    }

    /// The node's output: a unit's, or a fan-out's list of them.
    pub fn output(&self, node: &str) -> Option<Value> {
        let i = self.workflow.index(node)?;
        let n = &self.nodes[i];
        if self.workflow.spec.nodes[i].is_fan_out() {
            n.phase.fulfilled().then(|| {
                Value::Array(
                    n.units
                        .iter()
                        .map(|u| u.output.clone().unwrap_or(Value::Null))
                        .collect(),
                )
            })
        } else {
            n.units.first().and_then(|u| u.output.clone())
        }
    }

    /// Applies one event of the history, or refuses it changing nothing.
    pub fn apply(&mut self, event: &Event) -> Result<(), Stale> {
        let name = event.name();
        let finished = self.state != RunState::Running;
        if finished && !matches!(event, Event::RetryRequested { .. }) {
            return Err(stale(name, format!("the run has ended {:?}", self.state)));
        }
        // The one unit the event is about, if it is about one: its phase
        // before, so the node's counts move by that unit alone.
        let one = match event {
            Event::NodeScheduled { unit, .. }
            | Event::NodeMemoized { unit, .. }
            | Event::NodeStarted { unit, .. }
            | Event::NodeHeartbeat { unit, .. }
            | Event::NodeSucceeded { unit, .. }
            | Event::NodeFailed { unit, .. }
            | Event::NodeCancelRequested { unit, .. }
            | Event::NodeErrored { unit, .. }
            | Event::UnitQueued { unit, .. }
            | Event::GroupAdmitted { unit, .. }
            | Event::GroupSuperseded { unit, .. } => self.find(unit),
            Event::ApprovalRequested { node, .. }
            | Event::ApprovalEscalated { node, .. }
            | Event::ApprovalDecided { node, .. } => self.find(node),
            _ => None,
        }
        .map(|(i, j)| (i, j, self.nodes[i].units[j].phase));
        match event {
            Event::RunStarted { .. } => return Err(stale(name, "the run has started already")),
            Event::NodeExpanded { node, items, .. } => {
                let i = self.node_index(name, node)?;
                let spec = &self.workflow.spec.nodes[i];
                let n = &mut self.nodes[i];
                if !spec.is_fan_out() || n.started || n.phase != NodePhase::Pending {
                    return Err(stale(
                        name,
                        format!("{node} is not a fan-out waiting to start"),
                    ));
                }
                n.started = true;
                n.units = items
                    .iter()
                    .enumerate()
                    .map(|(k, item)| {
                        let mut u = Unit::new(format!("{node}[{k}]"), Some(item.clone()));
                        // Numbers go on from an earlier expansion's, so no key is reused.
                        u.attempt = self.last_attempt.get(&u.name).copied().unwrap_or(0);
                        u.counted_from = u.attempt;
                        if let Some((tickets, cost)) = self.carried.get(&u.name) {
                            u.tickets = tickets.clone();
                            u.cost_nusd = *cost;
                        }
                        u
                    })
                    .collect();
            }
            Event::NodeScheduled {
                unit,
                attempt,
                input_hash,
                key,
                task,
                at,
            } => {
                let u = self.unit_mut(name, unit)?;
                if u.phase != NodePhase::Pending
                    || u.scheduled_at.is_some()
                    || *attempt != u.attempt + 1
                {
                    return Err(stale(
                        name,
                        format!("{unit} is not waiting for attempt {attempt}"),
                    ));
                }
                u.attempt = *attempt;
                u.scheduled_at = Some(*at);
                u.started_at = None;
                u.heartbeat_at = None;
                u.progress = None;
                u.retry_at = None;
                u.cancel_requested = false;
                u.key = Some(key.clone());
                u.task = Some(task.clone());
                u.input_hash = Some(input_hash.clone());
                self.last_attempt.insert(unit.clone(), *attempt);
                self.mark_started(unit);
            }
            Event::UnitQueued { unit, group, .. } => {
                let u = self.unit_mut(name, unit)?;
                if u.phase != NodePhase::Pending || u.scheduled_at.is_some() || u.group.is_some() {
                    return Err(stale(name, format!("{unit} is not waiting to start")));
                }
                u.group = Some(group.clone());
                self.mark_started(unit);
            }
            Event::GroupAdmitted { unit, .. } => {
                let u = self.unit_mut(name, unit)?;
                if u.group.is_none() || u.admitted || u.phase.fulfilled() {
                    return Err(stale(name, format!("{unit} is not waiting for its group")));
                }
                u.admitted = true;
            }
            Event::GroupSuperseded { unit, by, at } => {
                let u = self.unit_mut(name, unit)?;
                if u.group.is_none() || u.phase.fulfilled() {
                    return Err(stale(name, format!("{unit} holds no place in a group")));
                }
                u.phase = NodePhase::Error;
                u.failure = Some(Failure::new(
                    "superseded",
                    format!(
                        "run {by} took its place in group {}",
                        u.group.as_deref().unwrap_or("")
                    ),
                ));
                u.scheduled_at = None;
                u.retry_at = None;
                u.finished_at = Some(*at);
            }
            Event::NodeMemoized {
                unit,
                input_hash,
                output,
                output_hash,
                at,
            } => {
                let u = self.unit_mut(name, unit)?;
                if u.phase != NodePhase::Pending || u.scheduled_at.is_some() {
                    return Err(stale(name, format!("{unit} is not waiting to start")));
                }
                u.phase = NodePhase::Succeeded;
                u.memoized = true;
                u.input_hash = Some(input_hash.clone());
                u.output = Some(output.clone());
                u.output_hash = Some(output_hash.clone());
                u.finished_at = Some(*at);
                self.mark_started(unit);
            }
            Event::NodeStarted {
                unit,
                attempt,
                ticket,
                at,
            } => {
                let u = self.current(name, unit, *attempt)?;
                if !u.tickets.contains(ticket) {
                    u.tickets.push(ticket.clone());
                }
                if u.phase == NodePhase::Pending {
                    u.phase = NodePhase::Running;
                    u.started_at = Some(*at);
                }
            }
            Event::NodeHeartbeat {
                unit,
                attempt,
                progress,
                at,
            } => {
                let u = self.current(name, unit, *attempt)?;
                u.heartbeat_at = Some(*at);
                if progress.is_some() {
                    u.progress = progress.map(|p| p.min(100));
                }
            }
            Event::NodeSucceeded {
                unit,
                attempt,
                output,
                output_hash,
                cost_nusd,
                at,
            } => {
                let u = self.current(name, unit, *attempt)?;
                u.cost_nusd += cost_nusd;
                u.phase = NodePhase::Succeeded;
                u.output = Some(output.clone());
                u.output_hash = Some(output_hash.clone());
                u.failure = None;
                u.progress = Some(100);
                u.finished_at = Some(*at);
                u.started_at.get_or_insert(*at);
            }
            Event::NodeFailed {
                unit,
                attempt,
                failure,
                cost_nusd,
                at,
            } => {
                let stopping = self.stop.is_some();
                let (i, _) = self
                    .find(unit)
                    .ok_or_else(|| stale(name, format!("no unit {unit}")))?;
                let spec = &self.workflow.spec;
                // An approval is asked once: its failure (a timeout, a denial) ends it.
                let policy = spec
                    .retry_of(&spec.nodes[i])
                    .filter(|_| spec.nodes[i].approval.is_none())
                    .cloned();
                let u = self.current(name, unit, *attempt)?;
                u.cost_nusd += cost_nusd;
                u.failure = Some(failure.clone());
                u.scheduled_at = None;
                u.cancel_requested = false;
                let retry = policy.filter(|p| {
                    !stopping
                        && !matches!(failure.error_type.as_str(), "denied" | "refused")
                        && p.retries(&failure.error_type)
                        && u.attempts_counted() < p.maximum_attempts
                });
                match retry {
                    Some(p) => {
                        u.phase = NodePhase::Pending;
                        u.started_at = None;
                        u.retry_at = Some(at + p.delay_after(u.attempts_counted()).ms_i64());
                    }
                    None => {
                        u.phase = failure.phase();
                        u.finished_at = Some(*at);
                    }
                }
            }
            Event::NodeCancelRequested { unit, attempt, .. } => {
                self.current(name, unit, *attempt)?.cancel_requested = true;
            }
            Event::NodeOmitted { node, reason, at } => {
                let i = self.node_index(name, node)?;
                let n = &mut self.nodes[i];
                if n.phase.fulfilled() || n.units.iter().any(Unit::in_flight) {
                    return Err(stale(name, format!("{node} is not waiting to start")));
                }
                for u in n.units.iter_mut().filter(|u| !u.phase.fulfilled()) {
                    u.phase = NodePhase::Omitted;
                    u.finished_at = Some(*at);
                    u.retry_at = None;
                }
                n.message = Some(reason.clone());
                if n.units.is_empty() || !n.started {
                    n.phase = NodePhase::Omitted;
                }
            }
            Event::NodeErrored { unit, message, at } => {
                if let Some((i, j)) = self.find(unit) {
                    let u = &mut self.nodes[i].units[j];
                    if u.phase != NodePhase::Pending || u.scheduled_at.is_some() {
                        return Err(stale(name, format!("{unit} is not waiting to start")));
                    }
                    u.phase = NodePhase::Error;
                    u.failure = Some(Failure::new("template", message.clone()));
                    u.finished_at = Some(*at);
                    self.nodes[i].started = true;
                } else {
                    let i = self.node_index(name, unit)?;
                    let n = &mut self.nodes[i];
                    if n.started || n.phase != NodePhase::Pending {
                        return Err(stale(name, format!("{unit} is not waiting to start")));
                    }
                    n.phase = NodePhase::Error;
                    n.message = Some(message.clone());
                }
            }
            Event::ApprovalRequested { node, deadline, at } => {
                let i = self.node_index(name, node)?;
                let last = self.last_attempt.get(node).copied().unwrap_or(0);
                let n = &mut self.nodes[i];
                if self.workflow.spec.nodes[i].approval.is_none() || n.started {
                    return Err(stale(
                        name,
                        format!("{node} is not an approval waiting to start"),
                    ));
                }
                n.started = true;
                n.approval = Some(Approval {
                    requested_at: *at,
                    deadline: *deadline,
                    escalated_to: None,
                    decided_by: None,
                });
                let u = &mut n.units[0];
                u.attempt = last + 1;
                u.phase = NodePhase::Running;
                u.scheduled_at = Some(*at);
                u.started_at = Some(*at);
                self.last_attempt.insert(node.clone(), last + 1);
            }
            Event::ApprovalEscalated { node, to, .. } => {
                let i = self.node_index(name, node)?;
                match &mut self.nodes[i].approval {
                    Some(a) if a.decided_by.is_none() => a.escalated_to = Some(to.clone()),
                    _ => return Err(stale(name, format!("{node} is not waiting for approval"))),
                }
            }
            Event::ApprovalDecided {
                node,
                approved,
                by,
                input,
                comment,
                at,
            } => {
                let i = self.node_index(name, node)?;
                let n = &mut self.nodes[i];
                let (Some(a), Some(u)) = (&mut n.approval, n.units.first_mut()) else {
                    return Err(stale(name, format!("{node} is not waiting for approval")));
                };
                if a.decided_by.is_some() || u.phase != NodePhase::Running {
                    return Err(stale(name, format!("{node} is not waiting for approval")));
                }
                a.decided_by = Some(by.clone());
                u.finished_at = Some(*at);
                u.scheduled_at = None;
                if *approved {
                    u.phase = NodePhase::Succeeded;
                    let output = serde_json::json!({ "approved_by": by, "input": input, "comment": comment });
                    u.output_hash = Some(crate::hash::of(&output));
                    u.output = Some(output);
                } else {
                    u.phase = NodePhase::Failed;
                    u.failure = Some(Failure::new("denied", format!("denied by {by}: {comment}")));
                }
            }
            Event::RetryRequested { node, at, .. } => {
                self.retry_from(node)?;
                self.timeout_from = *at;
            }
            Event::StopRequested { how, .. } => {
                if self.stop.is_some() {
                    return Err(stale(name, "a stop was requested already"));
                }
                self.stop = Some(*how);
            }
            Event::RunFinished { state, at } => {
                if *state == RunState::Running {
                    return Err(stale(name, "a run does not finish Running"));
                }
                self.state = *state;
                self.finished_at = Some(*at);
                // What was running or waiting ends with the run.
                for n in &mut self.nodes {
                    for u in n.units.iter_mut().filter(|u| !u.phase.fulfilled()) {
                        if u.in_flight() {
                            u.phase = NodePhase::Error;
                            u.failure = Some(Failure::new(
                                "cancelled",
                                format!("the run ended {state:?}"),
                            ));
                        } else {
                            u.phase = NodePhase::Omitted;
                        }
                        u.finished_at = Some(*at);
                        u.scheduled_at = None;
                        u.retry_at = None;
                    }
                    if !n.phase.fulfilled() && !n.started {
                        n.phase = NodePhase::Omitted;
                    }
                }
            }
        }
        self.events += 1;
        match one {
            Some((i, j, before)) => {
                let n = &mut self.nodes[i];
                let after = n.units[j].phase;
                n.counts[phase_index(before)] -= 1;
                n.counts[phase_index(after)] += 1;
                n.derive();
            }
            // Expansions, omissions, retries, the end: every node recounted.
            None => self.nodes.iter_mut().for_each(NodeRun::recount),
        }
        Ok(())
    }

    fn retry_from(&mut self, node: &str) -> Result<(), Stale> {
        let name = "retry_requested";
        let i = self.node_index(name, node)?;
        let phase = self.nodes[i].phase;
        if self.stop.is_some() && self.state == RunState::Running {
            return Err(stale(name, "the run is being stopped"));
        }
        let retryable = match self.state {
            RunState::Succeeded => false,
            RunState::Running => matches!(phase, NodePhase::Failed | NodePhase::Error),
            _ => matches!(
                phase,
                NodePhase::Failed | NodePhase::Error | NodePhase::Omitted
            ),
        };
        if !retryable {
            return Err(stale(
                name,
                format!(
                    "{node} is {phase:?} in a run that is {:?}; retry a failed node",
                    self.state
                ),
            ));
        }
        let mut again = self.workflow.descendants(i);
        again.insert(i);
        if again
            .iter()
            .any(|&j| self.nodes[j].units.iter().any(Unit::in_flight))
        {
            return Err(stale(
                name,
                format!("something downstream of {node} is still running"),
            ));
        }
        for j in again {
            let spec = &self.workflow.spec.nodes[j];
            let n = &mut self.nodes[j];
            for u in &n.units {
                self.carried
                    .insert(u.name.clone(), (u.tickets.clone(), u.cost_nusd));
            }
            n.phase = NodePhase::Pending;
            n.started = false;
            n.approval = None;
            n.message = None;
            n.units = if spec.is_fan_out() {
                Vec::new()
            } else {
                vec![Unit::new(n.name.clone(), None)]
            };
            for u in &mut n.units {
                u.attempt = self.last_attempt.get(&u.name).copied().unwrap_or(0);
                u.counted_from = u.attempt;
                if let Some((tickets, cost)) = self.carried.get(&u.name) {
                    u.tickets = tickets.clone();
                    u.cost_nusd = *cost;
                }
            }
        }
        self.state = RunState::Running;
        self.finished_at = None;
        self.stop = None;
        Ok(())
    }

    fn mark_started(&mut self, unit: &str) {
        if let Some((i, _)) = self.find(unit) {
            self.nodes[i].started = true;
        }
    }

    fn node_index(&self, event: &'static str, node: &str) -> Result<usize, Stale> {
        self.workflow
            .index(node)
            .ok_or_else(|| stale(event, format!("the workflow has no node {node:?}")))
    }

    fn unit_mut(&mut self, event: &'static str, unit: &str) -> Result<&mut Unit, Stale> {
        let (i, j) = self
            .find(unit)
            .ok_or_else(|| stale(event, format!("the run has no unit {unit:?}")))?;
        Ok(&mut self.nodes[i].units[j])
    }

    /// The unit if `attempt` is its attempt in flight.
    fn current(
        &mut self,
        event: &'static str,
        unit: &str,
        attempt: u32,
    ) -> Result<&mut Unit, Stale> {
        let u = self.unit_mut(event, unit)?;
        if u.attempt != attempt || !u.in_flight() {
            return Err(stale(
                event,
                format!(
                    "attempt {attempt} of {unit} is not in flight (its attempt is {}, {:?})",
                    u.attempt, u.phase
                ),
            ));
        }
        Ok(u)
    }

    /// Whether a node's failure is handled: some node that waits on it
    /// ran all the same (its `depends` took the failure, as with
    /// `b.Failed` or `x.AnySucceeded`). A failure that only kept its
    /// downstream from running fails the run.
    pub fn failure_handled(&self, i: usize) -> bool {
        self.workflow
            .upstream
            .iter()
            .enumerate()
            .any(|(j, up)| up.contains(&i) && self.nodes[j].started)
    }

    /// Units done and in all (a fan-out not yet expanded counts as one).
    pub fn progress(&self) -> (usize, usize) {
        self.nodes.iter().fold((0, 0), |(done, all), n| {
            let units = n.units.len().max(1);
            let fin = if n.units.is_empty() {
                usize::from(n.phase.fulfilled())
            } else {
                n.units.iter().filter(|u| u.phase.fulfilled()).count()
            };
            (done + fin, all + units)
        })
    }
}

fn stale(event: &'static str, why: impl Into<String>) -> Stale {
    Stale {
        event,
        why: why.into(),
    }
}

#[cfg(test)]
mod tests;
