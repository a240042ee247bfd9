//! What a run needs next, given its state and the time.
//!
//! One call proposes every event that can be decided now without the
//! others, but a bounded batch of units handed out ([`batch_after`]); the
//! adapter records them, applies them, acts on them, and calls again until
//! nothing is proposed (an omitted node can let the next one decide; a
//! large fan-out is handed out batch by batch, so its first units start
//! while the rest are being written).

use serde_json::{Map, Value};

use super::{Run, Unit};
use crate::expr::Outcome;
use crate::history::{Event, Failure, NodePhase, RunState, Stop, Task};
use crate::spec::{Items, Timeouts};
use crate::template::{self, Scope};

/// The most units the first [`Run::decide`] of a node hands out
/// (scheduled, or taken from the memo); the next call hands out the next
/// ones.
pub const SCHEDULE_BATCH: usize = 256;

/// The largest batch [`batch_after`] gives.
pub const MAX_SCHEDULE_BATCH: usize = 4_096;

/// The most bytes of payloads and memoized outputs one batch carries,
/// whatever its count (a batch stops at the unit that reaches it): what
/// 256 of the largest events a run's history keeps would take.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// How many units one call may hand out once `handed` units of the node
/// have been: [`SCHEDULE_BATCH`] at first (its first units start at
/// once), then as many as went before, up to [`MAX_SCHEDULE_BATCH`]. A
/// fan-out of 10,000 is handed out in 7 batches, not 40.
pub fn batch_after(handed: usize) -> usize {
    handed.clamp(SCHEDULE_BATCH, MAX_SCHEDULE_BATCH)
}

/// About how many bytes a handed-out unit adds to its batch: its task's
/// payload, or its memoized output.
fn batch_bytes(e: &Event) -> usize {
    match e {
        Event::NodeScheduled { task, .. } => task.payload.to_string().len(),
        Event::NodeMemoized { output, .. } => output.to_string().len(),
        _ => 0,
    }
}

/// Outputs kept by the hash of the input that made them.
pub trait Memo {
    /// The output (and its hash) an earlier unit gave for `input_hash`.
    fn lookup(&self, input_hash: &str) -> Option<(Value, String)>;
}

impl Memo for () {
    fn lookup(&self, _: &str) -> Option<(Value, String)> {
        None
    }
}

impl Memo for std::collections::HashMap<String, (Value, String)> {
    fn lookup(&self, input_hash: &str) -> Option<(Value, String)> {
        self.get(input_hash).cloned()
    }
}

impl Run {
    /// The events the run needs at `now`; none when it waits (for a
    /// ticket, an approver, a timer: see [`Run::next_deadline`]) or has ended.
    pub fn decide(&self, now: i64, memo: &dyn Memo) -> Vec<Event> {
        if self.state != RunState::Running {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(limit) = self.workflow.spec.timeout
            && self.stop.is_none()
            && now >= self.timeout_from + limit.ms_i64()
        {
            self.cancel_in_flight(
                now,
                &format!("the run ran past its timeout of {limit}"),
                &mut out,
            );
            out.push(Event::RunFinished {
                state: RunState::TimedOut,
                at: now,
            });
            return out;
        }
        if let Some(how) = self.stop {
            self.cancel_in_flight(now, "the run was stopped", &mut out);
            for n in &self.nodes {
                if !n.phase.fulfilled() && !n.units.iter().any(Unit::in_flight) {
                    out.push(Event::NodeOmitted {
                        node: n.name.clone(),
                        reason: "the run was stopped".into(),
                        at: now,
                    });
                }
            }
            let stopped = self.nodes.iter().all(|n| n.phase.fulfilled());
            if how == Stop::Terminate || (out.is_empty() && stopped) {
                let state = match how {
                    Stop::Cancel => RunState::Cancelled,
                    Stop::Terminate => RunState::Terminated,
                };
                out.push(Event::RunFinished { state, at: now });
            }
            return out;
        }
        for &i in &self.workflow.order {
            self.decide_node(i, now, memo, &mut out);
        }
        if out.is_empty() && self.nodes.iter().all(|n| n.phase.fulfilled()) {
            let failed = self.nodes.iter().enumerate().any(|(i, n)| {
                matches!(n.phase, NodePhase::Failed | NodePhase::Error) && !self.failure_handled(i)
            });
            let state = if failed {
                RunState::Failed
            } else {
                RunState::Succeeded
            };
            out.push(Event::RunFinished { state, at: now });
        }
        out
    }

    /// The next time [`Run::decide`] has something to do without being
    /// told anything: a timeout, a retry's backoff, an escalation.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.state != RunState::Running {
            return None;
        }
        // A stop under way waits for its tickets, not for the timeout.
        let mut next: Option<i64> = self
            .workflow
            .spec
            .timeout
            .filter(|_| self.stop.is_none())
            .map(|t| self.timeout_from + t.ms_i64());
        let mut at = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(a) = &n.approval
                && a.decided_by.is_none()
                && n.phase == NodePhase::Running
            {
                at(a.deadline);
                if let Some(esc) = &self.workflow.spec.nodes[i]
                    .approval
                    .as_ref()
                    .and_then(|s| s.escalation.clone())
                    && a.escalated_to.is_none()
                {
                    at(a.requested_at + esc.after.ms_i64());
                }
                continue;
            }
            let t = self.workflow.spec.timeouts_of(&self.workflow.spec.nodes[i]);
            for u in &n.units {
                if let Some(r) = u.retry_at {
                    at(r);
                }
                if u.in_flight() && !u.cancel_requested {
                    for (_, deadline) in deadlines(&t, u) {
                        at(deadline);
                    }
                }
            }
        }
        next
    }

    fn cancel_in_flight(&self, now: i64, reason: &str, out: &mut Vec<Event>) {
        for (i, n) in self.nodes.iter().enumerate() {
            for u in n
                .units
                .iter()
                .filter(|u| u.in_flight() && !u.cancel_requested)
            {
                if self.workflow.spec.nodes[i].approval.is_some() {
                    // Nothing to cancel: the approval ends with the run.
                    out.push(Event::NodeFailed {
                        unit: u.name.clone(),
                        attempt: u.attempt,
                        failure: Failure::new("cancelled", reason),
                        cost_nusd: 0,
                        at: now,
                    });
                } else {
                    out.push(Event::NodeCancelRequested {
                        unit: u.name.clone(),
                        attempt: u.attempt,
                        reason: reason.to_owned(),
                        at: now,
                    });
                }
            }
        }
    }

    fn decide_node(&self, i: usize, now: i64, memo: &dyn Memo, out: &mut Vec<Event>) {
        let spec = &self.workflow.spec.nodes[i];
        let n = &self.nodes[i];
        if n.phase.fulfilled() {
            return;
        }
        if let Some(approval) = &spec.approval
            && let Some(a) = &n.approval
        {
            if now >= a.deadline {
                out.push(Event::NodeFailed {
                    unit: n.name.clone(),
                    attempt: n.units[0].attempt,
                    failure: Failure::new(
                        "timeout.approval",
                        format!("no decision within {}", approval.timeout),
                    ),
                    cost_nusd: 0,
                    at: now,
                });
            } else if let Some(esc) = &approval.escalation
                && a.escalated_to.is_none()
                && now >= a.requested_at + esc.after.ms_i64()
            {
                out.push(Event::ApprovalEscalated {
                    node: n.name.clone(),
                    to: esc.to.clone(),
                    at: now,
                });
            }
            return;
        }
        if n.started {
            self.decide_units(i, now, memo, out);
            return;
        }
        let upstream = &self.workflow.upstream[i];
        if !upstream.iter().all(|&j| self.nodes[j].phase.fulfilled()) {
            return;
        }
        let go = self.workflow.condition[i]
            .as_ref()
            .is_none_or(|c| c.eval(&|node, o| self.has_outcome(node, o)));
        if !go {
            let why = match (&spec.depends, &spec.dependencies) {
                (Some(d), _) => format!("depends {d:?} is false"),
                _ => "a dependency did not succeed".to_owned(),
            };
            out.push(Event::NodeOmitted {
                node: n.name.clone(),
                reason: why,
                at: now,
            });
            return;
        }
        if let Some(approval) = &spec.approval {
            out.push(Event::ApprovalRequested {
                node: n.name.clone(),
                deadline: now + approval.timeout.ms_i64(),
                at: now,
            });
        } else if spec.is_fan_out() {
            match self.items(i) {
                Ok(items) => out.push(Event::NodeExpanded {
                    node: n.name.clone(),
                    items,
                    at: now,
                }),
                Err(message) => out.push(Event::NodeErrored {
                    unit: n.name.clone(),
                    message,
                    at: now,
                }),
            }
        } else {
            self.decide_units(i, now, memo, out);
        }
    }

    /// Timeouts of the units in flight, and the next attempts to hand out.
    fn decide_units(&self, i: usize, now: i64, memo: &dyn Memo, out: &mut Vec<Event>) {
        let spec = &self.workflow.spec.nodes[i];
        let n = &self.nodes[i];
        let mut running = n.units.iter().filter(|u| u.in_flight()).count();
        let room = spec.parallelism.map_or(usize::MAX, |p| p as usize);
        let handed = n
            .units
            .iter()
            .filter(|u| u.scheduled_at.is_some() || u.phase.fulfilled())
            .count();
        let mut budget = batch_after(handed).saturating_sub(
            out.iter()
                .filter(|e| matches!(e, Event::NodeScheduled { .. } | Event::NodeMemoized { .. }))
                .count(),
        );
        let mut bytes = 0;
        let t = self.workflow.spec.timeouts_of(spec);
        for u in &n.units {
            if u.in_flight() {
                if u.cancel_requested {
                    continue;
                }
                if let Some((which, _)) = deadlines(&t, u).find(|(_, d)| now >= *d) {
                    let limit = match which {
                        "timeout.schedule_to_start" => "schedule_to_start",
                        "timeout.heartbeat" => "heartbeat",
                        _ => "start_to_close",
                    };
                    out.push(Event::NodeCancelRequested {
                        unit: u.name.clone(),
                        attempt: u.attempt,
                        reason: format!("{which}: past its {limit} timeout"),
                        at: now,
                    });
                    out.push(Event::NodeFailed {
                        unit: u.name.clone(),
                        attempt: u.attempt,
                        failure: Failure::new(
                            which,
                            format!("attempt {} ran past its {limit} timeout", u.attempt),
                        ),
                        cost_nusd: 0,
                        at: now,
                    });
                }
                continue;
            }
            if u.phase != NodePhase::Pending
                || u.retry_at.is_some_and(|r| now < r)
                || running >= room
                || budget == 0
            {
                continue;
            }
            if let Some(c) = &spec.concurrency {
                match &u.group {
                    None => {
                        out.push(self.queue(u, &c.group, now));
                        continue;
                    }
                    Some(_) if !u.admitted => continue,
                    Some(_) => {}
                }
            }
            let e = self.schedule(i, u, now, memo);
            bytes += batch_bytes(&e);
            out.push(e);
            running += 1;
            budget -= 1;
            if bytes >= MAX_BATCH_BYTES {
                budget = 0;
            }
        }
    }

    /// A unit asks for its group's place (the group named from the run's
    /// inputs and id).
    fn queue(&self, u: &Unit, group: &str, now: i64) -> Event {
        let output = |_: &str| None;
        let scope = Scope {
            run_id: &self.id,
            inputs: &self.inputs,
            item: None,
            matrix: None,
            output: &output,
        };
        match template::resolve_text(group, &scope) {
            Ok(Value::String(g)) if !g.is_empty() && g.len() <= 200 => Event::UnitQueued {
                unit: u.name.clone(),
                group: g,
                at: now,
            },
            Ok(other) => Event::NodeErrored {
                unit: u.name.clone(),
                message: format!(
                    "its concurrency group is {other}; a group is a text of 1 to 200 bytes"
                ),
                at: now,
            },
            Err(message) => Event::NodeErrored {
                unit: u.name.clone(),
                message,
                at: now,
            },
        }
    }

    fn schedule(&self, i: usize, u: &Unit, now: i64, memo: &dyn Memo) -> Event {
        let spec = &self.workflow.spec.nodes[i];
        let task = spec
            .task
            .as_ref()
            .expect("only task nodes have units to schedule");
        let matrix = u
            .item
            .as_ref()
            .and_then(Value::as_object)
            .filter(|_| spec.matrix.is_some());
        let output = |node: &str| self.output(node);
        let scope = Scope {
            run_id: &self.id,
            inputs: &self.inputs,
            item: u.item.as_ref().filter(|_| spec.with_items.is_some()),
            matrix,
            output: &output,
        };
        let payload = match template::resolve(&task.payload, &scope) {
            Ok(p) => p,
            Err(e) => {
                return Event::NodeErrored {
                    unit: u.name.clone(),
                    message: e,
                    at: now,
                };
            }
        };
        let task = Task {
            kind: task.kind.clone(),
            payload,
            skill: task.skill.clone(),
            priority: task.priority,
        };
        let input_hash = crate::hash::of(&serde_json::json!({
            "kind": task.kind, "payload": task.payload, "skill": task.skill,
        }));
        if spec.memoize
            && let Some((output, output_hash)) = memo.lookup(&input_hash)
        {
            return Event::NodeMemoized {
                unit: u.name.clone(),
                input_hash,
                output,
                output_hash,
                at: now,
            };
        }
        let attempt = u.attempt + 1;
        Event::NodeScheduled {
            unit: u.name.clone(),
            attempt,
            input_hash,
            key: format!("wf/{}/{}/{attempt}", self.id, u.name),
            task,
            at: now,
        }
    }

    /// A fan-out's items: its list, or what its `${{ … }}` gives; a
    /// matrix's combinations as objects, the keys crossed in order.
    fn items(&self, i: usize) -> Result<Vec<Value>, String> {
        let spec = &self.workflow.spec.nodes[i];
        let output = |node: &str| self.output(node);
        let scope = Scope {
            run_id: &self.id,
            inputs: &self.inputs,
            item: None,
            matrix: None,
            output: &output,
        };
        let list = |items: &Items, at: &str| -> Result<Vec<Value>, String> {
            let v = match items {
                Items::List(l) => return Ok(l.clone()),
                Items::From(text) => template::resolve_text(text, &scope)?,
            };
            match v {
                Value::Array(l) if l.len() <= crate::spec::MAX_ITEMS => Ok(l),
                Value::Array(l) => Err(format!(
                    "{at} gave {} items; the limit is {}",
                    l.len(),
                    crate::spec::MAX_ITEMS
                )),
                other => Err(format!("{at} gave {}, not a list", kind_of(&other))),
            }
        };
        if let Some(items) = &spec.with_items {
            return list(items, "with_items");
        }
        let mut combos = vec![Map::new()];
        for (key, items) in spec.matrix.iter().flatten() {
            let values = list(items, &format!("matrix.{key}"))?;
            let mut next = Vec::with_capacity(combos.len() * values.len());
            for c in &combos {
                for v in &values {
                    let mut c = c.clone();
                    c.insert(key.clone(), v.clone());
                    next.push(c);
                }
            }
            if next.len() > crate::spec::MAX_ITEMS {
                return Err(format!(
                    "the matrix gives {} combinations; the limit is {}",
                    next.len(),
                    crate::spec::MAX_ITEMS
                ));
            }
            combos = next;
        }
        Ok(combos.into_iter().map(Value::Object).collect())
    }

    /// Whether node `name` has the outcome a `depends` tests.
    fn has_outcome(&self, name: &str, o: Outcome) -> bool {
        let Some(i) = self.workflow.index(name) else {
            return false;
        };
        let n = &self.nodes[i];
        match o {
            Outcome::Succeeded => n.phase == NodePhase::Succeeded,
            Outcome::Failed => n.phase == NodePhase::Failed,
            Outcome::Errored => n.phase == NodePhase::Error,
            Outcome::Skipped => n.phase == NodePhase::Skipped,
            Outcome::Omitted => n.phase == NodePhase::Omitted,
            Outcome::AnySucceeded => n.units.iter().any(|u| u.phase == NodePhase::Succeeded),
            Outcome::AllFailed => {
                !n.units.is_empty() && n.units.iter().all(|u| u.phase == NodePhase::Failed)
            }
        }
    }
}

/// A unit's deadlines in flight under its node's timeouts: which, and when.
fn deadlines(t: &Timeouts, u: &Unit) -> impl Iterator<Item = (&'static str, i64)> {
    let (queued, started) = match (u.scheduled_at, u.started_at) {
        (Some(s), None) => (Some(s), None),
        (_, Some(s)) => (None, Some(s)),
        (None, None) => (None, None),
    };
    let to_start = queued
        .zip(t.schedule_to_start)
        .map(|(s, d)| ("timeout.schedule_to_start", s + d.ms_i64()));
    let to_close = started
        .zip(t.start_to_close)
        .map(|(s, d)| ("timeout.start_to_close", s + d.ms_i64()));
    let beat = started.zip(t.heartbeat).map(|(s, d)| {
        (
            "timeout.heartbeat",
            u.heartbeat_at.unwrap_or(s).max(s) + d.ms_i64(),
        )
    });
    to_start.into_iter().chain(to_close).chain(beat)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
