//! A run's history: the append-only events its state is rebuilt from, and
//! the words they use (Argo's node phases, the run's states).
//!
//! The history is the run. [`crate::run::Run::decide`] proposes the next
//! events; the adapter records each durably, then acts on those that ask
//! for an effect (`node_scheduled`: submit the ticket under its key;
//! `node_cancel_requested`: cancel it; `approval_requested`: show it in the
//! inbox). After a crash the history is applied again and the run goes on
//! from where it was: a node already scheduled is found again by its key,
//! never submitted twice.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Argo's node phases.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum NodePhase {
    /// Not started, waiting for what it depends on, for a bot or for a retry.
    Pending,
    Running,
    Succeeded,
    /// Not run, and that is a success: nothing of it was needed.
    Skipped,
    /// It ran and failed (the bot reported a failure, or an approver denied it).
    Failed,
    /// It could not run or finish: a timeout, a refusal, a dead letter, a cancel.
    Error,
    /// Not run: its `depends` came out false, or the run stopped first.
    Omitted,
}

impl NodePhase {
    /// Whether the node is done, one way or another.
    pub fn fulfilled(self) -> bool {
        !matches!(self, NodePhase::Pending | NodePhase::Running)
    }
}

/// A run's states, in Temporal's words.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    /// Stopped on request, once what was running had stopped.
    Cancelled,
    /// Stopped on request at once, whatever was running.
    Terminated,
    /// It ran past the spec's `timeout`.
    TimedOut,
}

/// Why one attempt of a node did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `failed` (the bot reported it), `denied` (an approver), `dead`,
    /// `refused`, `cancelled`, `superseded`, `timeout.schedule_to_start`,
    /// `timeout.start_to_close`, `timeout.heartbeat`, `timeout.approval`,
    /// `output_too_large`: what a retry policy's
    /// `non_retryable_error_types` names.
    pub error_type: String,
    pub message: String,
}

impl Failure {
    pub fn new(error_type: &str, message: impl Into<String>) -> Failure {
        Failure {
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    /// What the node becomes if this failure ends it: `Failed` when the
    /// work itself failed, `Error` when it could not run or finish.
    pub fn phase(&self) -> NodePhase {
        match self.error_type.as_str() {
            "failed" | "denied" => NodePhase::Failed,
            _ => NodePhase::Error,
        }
    }
}

/// The ticket a scheduled node submits, its placeholders resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub kind: String,
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// How a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Cancel what runs, wait for it to stop, end `Cancelled`.
    Cancel,
    /// Cancel what runs and end `Terminated` at once.
    Terminate,
}

/// One event of a run's history. `unit` is a node's name, or
/// `name[i]` for the i-th item of a fan-out; `at` is unix ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run: String,
        spec_hash: String,
        inputs: Map<String, Value>,
        by: String,
        /// A dry run: the platform refuses every write its tasks would make.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
        /// The unit of another run this run is a sub-workflow of, by its
        /// key (`wf/<run>/<unit>/<attempt>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
        at: i64,
    },
    /// A fan-out's items, fixed once: replay never evaluates them again.
    NodeExpanded {
        node: String,
        items: Vec<Value>,
        at: i64,
    },
    NodeScheduled {
        unit: String,
        attempt: u32,
        input_hash: String,
        task: Task,
        /// The ticket's idempotency key: `wf/<run>/<unit>/<attempt>`.
        key: String,
        at: i64,
    },
    /// A unit of a node with a concurrency group asks for the group's slot;
    /// it is scheduled once admitted.
    UnitQueued {
        unit: String,
        group: String,
        at: i64,
    },
    /// The group's slot is the unit's: it may run.
    GroupAdmitted {
        unit: String,
        at: i64,
    },
    /// A newer unit took the unit's place in its group: it ends
    /// (`superseded`), and its ticket, if one runs, is cancelled.
    GroupSuperseded {
        unit: String,
        /// The run whose unit took the place.
        by: String,
        at: i64,
    },
    /// The output of an earlier run of the same input, reused.
    NodeMemoized {
        unit: String,
        input_hash: String,
        output: Value,
        output_hash: String,
        at: i64,
    },
    NodeStarted {
        unit: String,
        attempt: u32,
        ticket: String,
        at: i64,
    },
    NodeHeartbeat {
        unit: String,
        attempt: u32,
        /// 0 to 100, if the work reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<u8>,
        at: i64,
    },
    NodeSucceeded {
        unit: String,
        attempt: u32,
        output: Value,
        output_hash: String,
        /// What the attempt's ticket cost, nano-dollars.
        #[serde(default)]
        cost_nusd: i64,
        at: i64,
    },
    NodeFailed {
        unit: String,
        attempt: u32,
        failure: Failure,
        #[serde(default)]
        cost_nusd: i64,
        at: i64,
    },
    /// The unit's ticket is to be cancelled (a timeout, a stop).
    NodeCancelRequested {
        unit: String,
        attempt: u32,
        reason: String,
        at: i64,
    },
    /// Every unit of the node not yet run will not run.
    NodeOmitted {
        node: String,
        reason: String,
        at: i64,
    },
    /// A unit could not start (a placeholder did not resolve), or a
    /// fan-out node (its items did not resolve to a list).
    NodeErrored {
        unit: String,
        message: String,
        at: i64,
    },
    ApprovalRequested {
        node: String,
        deadline: i64,
        at: i64,
    },
    ApprovalEscalated {
        node: String,
        to: Vec<String>,
        at: i64,
    },
    ApprovalDecided {
        node: String,
        approved: bool,
        by: String,
        #[serde(default)]
        input: Value,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        comment: String,
        at: i64,
    },
    /// Run the node again, and everything downstream of it, keeping the
    /// outputs of everything else.
    RetryRequested {
        node: String,
        by: String,
        at: i64,
    },
    StopRequested {
        how: Stop,
        by: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
        at: i64,
    },
    RunFinished {
        state: RunState,
        at: i64,
    },
    /// Moved to another version of its spec (recorded with that spec): a
    /// node that has begun keeps its record; one that has not takes the
    /// new definition.
    RunUpgraded {
        spec_hash: String,
        /// The published version, if it is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        by: String,
        at: i64,
    },
}

impl Event {
    /// Its name as the history stores it (`node_scheduled`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::NodeExpanded { .. } => "node_expanded",
            Event::NodeScheduled { .. } => "node_scheduled",
            Event::UnitQueued { .. } => "unit_queued",
            Event::GroupAdmitted { .. } => "group_admitted",
            Event::GroupSuperseded { .. } => "group_superseded",
            Event::NodeMemoized { .. } => "node_memoized",
            Event::NodeStarted { .. } => "node_started",
            Event::NodeHeartbeat { .. } => "node_heartbeat",
            Event::NodeSucceeded { .. } => "node_succeeded",
            Event::NodeFailed { .. } => "node_failed",
            Event::NodeCancelRequested { .. } => "node_cancel_requested",
            Event::NodeOmitted { .. } => "node_omitted",
            Event::NodeErrored { .. } => "node_errored",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalEscalated { .. } => "approval_escalated",
            Event::ApprovalDecided { .. } => "approval_decided",
            Event::RetryRequested { .. } => "retry_requested",
            Event::StopRequested { .. } => "stop_requested",
            Event::RunFinished { .. } => "run_finished",
            Event::RunUpgraded { .. } => "run_upgraded",
        }
    }

    pub fn at(&self) -> i64 {
        match self {
            Event::RunUpgraded { at, .. }
            | Event::RunStarted { at, .. }
            | Event::NodeExpanded { at, .. }
            | Event::NodeScheduled { at, .. }
            | Event::UnitQueued { at, .. }
            | Event::GroupAdmitted { at, .. }
            | Event::GroupSuperseded { at, .. }
            | Event::NodeMemoized { at, .. }
            | Event::NodeStarted { at, .. }
            | Event::NodeHeartbeat { at, .. }
            | Event::NodeSucceeded { at, .. }
            | Event::NodeFailed { at, .. }
            | Event::NodeCancelRequested { at, .. }
            | Event::NodeOmitted { at, .. }
            | Event::NodeErrored { at, .. }
            | Event::ApprovalRequested { at, .. }
            | Event::ApprovalEscalated { at, .. }
            | Event::ApprovalDecided { at, .. }
            | Event::RetryRequested { at, .. }
            | Event::StopRequested { at, .. }
            | Event::RunFinished { at, .. } => *at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_kernel::name::Named;

    #[test]
    fn event_names_are_the_serialized_tags() {
        let e = Event::NodeOmitted {
            node: "a".into(),
            reason: "r".into(),
            at: 1,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], e.name());
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
        assert_eq!(NodePhase::Succeeded.as_str(), "Succeeded");
        assert_eq!(
            serde_json::to_value(RunState::TimedOut).unwrap(),
            "TimedOut"
        );
        assert!(NodePhase::Omitted.fulfilled() && !NodePhase::Running.fulfilled());
        assert_eq!(
            Failure::new("timeout.heartbeat", "x").phase(),
            NodePhase::Error
        );
        assert_eq!(Failure::new("denied", "x").phase(), NodePhase::Failed);
    }
}
