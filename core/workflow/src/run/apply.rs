//! Applying one event of a run's history to its state: the one place a
//! run changes. An event that does not fit (an attempt no longer in
//! flight, a node not waiting for it) is refused with [`Stale`],
//! changing nothing.

use super::{Approval, NodeRun, Run, Stale, Unit, phase_index, stale};
use crate::history::{Event, Failure, NodePhase, RunState};

impl Run {
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
            Event::RunUpgraded { .. } => {
                return Err(stale(
                    name,
                    "an upgrade is applied with its spec (Run::upgrade)",
                ));
            }
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
}
