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

mod apply;
mod decide;
pub use decide::{MAX_BATCH_BYTES, MAX_SCHEDULE_BATCH, Memo, SCHEDULE_BATCH, batch_after};

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

impl NodeRun {
    /// A node that has not begun, as `spec` defines it.
    fn fresh(spec: &crate::spec::NodeSpec) -> NodeRun {
        let mut n = NodeRun {
            name: spec.name.clone(),
            phase: NodePhase::Pending,
            started: false,
            units: if spec.is_fan_out() {
                Vec::new()
            } else {
                vec![Unit::new(spec.name.clone(), None)]
            },
            approval: None,
            message: None,
            counts: [0; 7],
        };
        n.recount();
        n
    }

    /// Whether it is under way: a unit in flight, or an approval waiting.
    fn busy(&self) -> bool {
        self.units.iter().any(Unit::in_flight)
            || (self.approval.is_some() && !self.phase.fulfilled())
    }
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
    /// A dry run: its tasks' writes are refused by the platform.
    pub dry_run: bool,
    /// The unit of another run this one is a sub-workflow of, by its key.
    pub parent: Option<String>,
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
        Self::start_as(workflow, id, inputs, by, at, (false, None))
    }

    /// As [`Run::start`]; a dry run if `dry_run`, a sub-workflow of the
    /// unit keyed `parent` if given.
    pub fn start_as(
        workflow: Arc<Workflow>,
        id: &str,
        inputs: Map<String, Value>,
        by: &str,
        at: i64,
        (dry_run, parent): (bool, Option<String>),
    ) -> (Run, Event) {
        let event = Event::RunStarted {
            run: id.to_owned(),
            spec_hash: workflow.hash.clone(),
            inputs,
            by: by.to_owned(),
            dry_run,
            parent,
            at,
        };
        let run = Run::replay(workflow, std::slice::from_ref(&event)).expect("a first event fits");
        (run, event)
    }

    /// Moves the run to `workflow` (the spec of `event`, a `run_upgraded`):
    /// a node that has begun keeps its record, whatever its new
    /// definition; one that has not takes the new one; a node the new
    /// version drops must not be under way. New inputs take their
    /// defaults; one without a default refuses the move.
    pub fn upgrade(&mut self, workflow: Arc<Workflow>, event: &Event) -> Result<(), Stale> {
        const NAME: &str = "run_upgraded";
        let Event::RunUpgraded { spec_hash, .. } = event else {
            return Err(stale(NAME, "not an upgrade"));
        };
        if *spec_hash != workflow.hash {
            return Err(stale(
                NAME,
                format!("it names {spec_hash}, not {}", workflow.hash),
            ));
        }
        if self.state != RunState::Running || self.stop.is_some() {
            return Err(stale(NAME, "the run has ended or is stopping"));
        }
        if *spec_hash == self.workflow.hash {
            return Err(stale(NAME, "the run is on that version already"));
        }
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| n.busy() && workflow.index(&n.name).is_none())
        {
            return Err(stale(
                NAME,
                format!("node {} is under way and the new version drops it", n.name),
            ));
        }
        // A node that has begun keeps its record: its shape must still fit.
        for n in self.nodes.iter().filter(|n| n.started) {
            let (Some(i), Some(j)) = (self.workflow.index(&n.name), workflow.index(&n.name)) else {
                continue;
            };
            let (was, is) = (&self.workflow.spec.nodes[i], &workflow.spec.nodes[j]);
            if was.task.is_some() != is.task.is_some() || was.is_fan_out() != is.is_fan_out() {
                return Err(stale(
                    NAME,
                    format!(
                        "node {} has begun as a {}; the new version makes it a {}",
                        n.name,
                        shape(was),
                        shape(is)
                    ),
                ));
            }
        }
        let kept: Map<String, Value> = self
            .inputs
            .iter()
            .filter(|(k, _)| workflow.spec.inputs.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let inputs = workflow
            .inputs(&kept)
            .map_err(|e| stale(NAME, format!("{}: {}", e.path, e.message)))?;
        let mut old: BTreeMap<String, NodeRun> =
            self.nodes.drain(..).map(|n| (n.name.clone(), n)).collect();
        self.nodes = workflow
            .spec
            .nodes
            .iter()
            .map(|spec| match old.remove(&spec.name) {
                Some(prev) if prev.started => prev,
                _ => {
                    // Attempt numbers go on (no key is used twice), and what
                    // earlier attempts took is carried, as after a retry.
                    let mut n = NodeRun::fresh(spec);
                    for u in &mut n.units {
                        u.attempt = self.last_attempt.get(&u.name).copied().unwrap_or(0);
                        u.counted_from = u.attempt;
                        if let Some((tickets, cost)) = self.carried.get(&u.name) {
                            u.tickets = tickets.clone();
                            u.cost_nusd = *cost;
                        }
                    }
                    n
                }
            })
            .collect();
        self.inputs = inputs;
        self.workflow = workflow;
        self.events += 1;
        Ok(())
    }

    /// The run its history describes.
    pub fn replay(workflow: Arc<Workflow>, history: &[Event]) -> Result<Run, Stale> {
        let Some(Event::RunStarted {
            run,
            spec_hash,
            inputs,
            by,
            dry_run,
            parent,
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
        let nodes = workflow.spec.nodes.iter().map(NodeRun::fresh).collect();
        let mut state = Run {
            workflow,
            id: run.clone(),
            inputs: inputs.clone(),
            started_by: by.clone(),
            started_at: *at,
            dry_run: *dry_run,
            parent: parent.clone(),
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

/// What kind of node a spec node is, in words.
fn shape(n: &crate::spec::NodeSpec) -> &'static str {
    match (n.task.is_some(), n.is_fan_out()) {
        (false, _) => "approval",
        (true, true) => "fan-out",
        (true, false) => "task",
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
