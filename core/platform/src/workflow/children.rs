//! Sub-workflows: a task of kind `workflow` runs a published definition as
//! a run of its own, the child, whose end is the unit's.
//!
//! ```yaml
//! - name: ship
//!   task: { kind: workflow, payload: { definition: build, version: 3, inputs: { branch: main } } }
//! ```
//!
//! The child runs in the parent's tenant, as a dry run if the parent is
//! one, and names the unit's key (`wf/<run>/<unit>/<attempt>`) as its
//! parent in its first event, so after a restart the unit finds its child
//! again instead of starting a second. The unit's output is
//! `{"run", "outputs": {node: output}}` (every node of the child that
//! succeeded) and its cost the child's. A unit the parent moves on from (a
//! timeout, a stop, a retry) stops its child. Children nest at most
//! [`MAX_DEPTH`] deep. Retries, timeouts, fan-outs and `memoize` (which
//! needs a pinned `version`) work on a sub-workflow as on any task.

use std::collections::HashMap;
use std::sync::Arc;

use oshal_workflow::history::{Event, Failure, NodePhase, RunState, Stop};
use oshal_workflow::run::{MAX_OUTPUT_BYTES, Run};
use serde_json::{Map, Value};

use super::handle::Handle;
use super::{NewRun, StopRequest, WorkflowError, Workflows};

/// The task kind of a sub-workflow.
pub const KIND: &str = "workflow";
/// How deep runs nest: a run, its child, its grandchild, …
pub const MAX_DEPTH: usize = 4;

/// A sub-workflow task's payload.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubRun {
    definition: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    inputs: Map<String, Value>,
}

/// Checks a sub-workflow task's payload as written in a spec (a
/// placeholder may stand for any value): the reason it is refused.
pub(super) fn check(payload: &Value) -> Result<(), String> {
    let Some(p) = payload.as_object() else {
        return Err(
            "a sub-workflow's payload is {\"definition\", \"version\"?, \"inputs\"?}".into(),
        );
    };
    if let Some(k) = p
        .keys()
        .find(|k| !["definition", "version", "inputs"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {k:?}; a sub-workflow takes definition, version and inputs"
        ));
    }
    let templated = |v: &Value| v.as_str().is_some_and(|s| s.contains("${{"));
    match p.get("definition") {
        Some(Value::String(_)) => {}
        _ => return Err("definition: name the published definition to run".into()),
    }
    match p.get("version") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) || templated(v) => {}
        Some(v) => return Err(format!("version: {v} is not a version (1 or more)")),
    }
    match p.get("inputs") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(v) if templated(v) => Ok(()),
        Some(_) => Err("inputs: an object of the child's inputs".into()),
    }
}

/// The parent run's id in a unit key `wf/<run>/<unit>/<attempt>`.
fn run_of_key(key: &str) -> Option<&str> {
    parse_key(key).map(|(run, _, _)| run)
}

/// A unit key's run, unit and attempt.
fn parse_key(key: &str) -> Option<(&str, &str, u32)> {
    let mut parts = key.strip_prefix("wf/")?.split('/');
    let (run, unit, attempt) = (parts.next()?, parts.next()?, parts.next()?);
    Some((run, unit, attempt.parse().ok()?))
}

impl Workflows {
    /// The run started for the unit with `key`, if there is one.
    fn child_of(&self, key: &str) -> Option<Arc<Handle>> {
        let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
        runs.values()
            .find(|h| h.parent.as_deref() == Some(key))
            .cloned()
    }

    /// How many runs `id` is nested in.
    fn depth(&self, id: &str) -> usize {
        let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
        let mut depth = 0;
        let mut at = runs.get(id);
        while let Some(parent) = at.and_then(|h| h.parent.as_deref()).and_then(run_of_key) {
            depth += 1;
            if depth > MAX_DEPTH {
                break;
            }
            at = runs.get(parent);
        }
        depth
    }

    /// Wakes the runner of the run `child` is a sub-workflow of.
    pub(super) fn child_ended(&self, child: &Handle) {
        if let Some(parent) = child.parent.as_deref().and_then(run_of_key)
            && let Ok(h) = self.handle(parent, None)
        {
            h.wake.notify_one();
        }
    }

    /// Stops every child run (of `parent`'s, if given) whose unit the
    /// parent has moved on from (it ended, timed out, was retried or
    /// stopped) while the child still runs: after a restart, and as a run
    /// ends.
    pub(super) async fn stop_orphans(&self, parent: Option<&str>) {
        let children: Vec<(String, String, String, u32)> = {
            let runs = self.inner.runs.read().unwrap_or_else(|p| p.into_inner());
            runs.values()
                .filter(|h| h.snapshot_state() == RunState::Running)
                .filter_map(|h| {
                    let (run, unit, attempt) = parse_key(h.parent.as_deref()?)?;
                    parent
                        .is_none_or(|p| p == run)
                        .then(|| (h.id.clone(), run.to_owned(), unit.to_owned(), attempt))
                })
                .collect()
        };
        for (child, run, unit, attempt) in children {
            let wanted = match self.handle(&run, None) {
                Ok(p) if p.snapshot_state() == RunState::Running => {
                    p.with_run(|r| r.in_flight(&unit, attempt)).await
                }
                _ => false,
            };
            if !wanted {
                self.stop_child(&child).await;
            }
        }
    }

    async fn stop_child(&self, id: &str) {
        let request = StopRequest {
            how: Stop::Cancel,
            reason: "its parent moved on from it".into(),
        };
        if let Err(e) = self.stop(id, None, request, "workflow").await {
            tracing::debug!(run = %id, error = %e, "a sub-workflow was not stopped");
        }
    }
}

/// A runner's children in flight: child run → (unit, attempt); and the
/// scheduled units whose child could not start yet.
#[derive(Debug, Default)]
pub(super) struct Children {
    flying: HashMap<String, (String, u32)>,
    waiting: Vec<Event>,
}

impl Children {
    pub fn is_empty(&self) -> bool {
        self.flying.is_empty() && self.waiting.is_empty()
    }

    pub fn take_waiting(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.waiting)
    }

    /// The children in flight and their units.
    pub fn flying(&self) -> Vec<(String, (String, u32))> {
        self.flying
            .iter()
            .map(|(id, u)| (id.clone(), u.clone()))
            .collect()
    }

    /// Starts the child of each scheduled unit (or finds it, after a
    /// restart): the events to record (its start, or its refusal). One
    /// that cannot start for now (the store is out, too many runs live)
    /// waits for the next sweep.
    pub async fn start(
        &mut self,
        workflows: &Workflows,
        parent: &Handle,
        dry_run: bool,
        scheduled: Vec<Event>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for e in scheduled {
            let Event::NodeScheduled {
                unit,
                attempt,
                task,
                key,
                ..
            } = &e
            else {
                continue;
            };
            let now = workflows.inner.controller.clock().now_ms();
            let child = match workflows.child_of(key) {
                Some(h) => Ok(h.id.clone()),
                None => start_child(workflows, parent, dry_run, key, task.payload.clone()).await,
            };
            match child {
                Ok(id) => {
                    self.flying.insert(id.clone(), (unit.clone(), *attempt));
                    events.push(Event::NodeStarted {
                        unit: unit.clone(),
                        attempt: *attempt,
                        ticket: id,
                        at: now,
                    });
                }
                Err(err)
                    if matches!(err, WorkflowError::TooMany(_))
                        || super::runner::transient(&err) =>
                {
                    tracing::debug!(run = %parent.id, %unit, error = %err, "a sub-workflow waits to start");
                    self.waiting.push(e);
                }
                Err(err) => events.push(Event::NodeFailed {
                    unit: unit.clone(),
                    attempt: *attempt,
                    failure: Failure::new(
                        "refused",
                        format!("the sub-workflow was refused: {err}"),
                    ),
                    cost_nusd: 0,
                    at: now,
                }),
            }
        }
        events
    }

    /// The ends of children that have ended, and a stop for each child
    /// whose unit the run has moved on from; `looks` tells, per child,
    /// whether its unit is in flight and whether the run left it behind.
    pub async fn sweep(
        &mut self,
        workflows: &Workflows,
        looks: &HashMap<String, (bool, bool)>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut gone = Vec::new();
        for (id, (unit, attempt)) in &self.flying {
            let (in_flight, behind) = looks.get(id).copied().unwrap_or((false, false));
            if !in_flight {
                gone.push(id.clone());
                if behind {
                    workflows.stop_child(id).await;
                }
                continue;
            }
            let Ok(child) = workflows.handle(id, None) else {
                continue;
            };
            if child.snapshot_state() == RunState::Running {
                continue;
            }
            // Read under the child's lock: a copy may lag its state.
            let end = child
                .with_run(|r| {
                    (r.state != RunState::Running).then(|| end_of(r, unit.clone(), *attempt))
                })
                .await;
            events.extend(end);
        }
        for id in gone {
            self.flying.remove(&id);
        }
        events
    }

    /// Stops the child of `unit`'s `attempt`, if it has one in flight.
    pub async fn cancel(&mut self, workflows: &Workflows, unit: &str, attempt: u32) {
        let child = self
            .flying
            .iter()
            .find(|(_, (u, a))| u == unit && *a == attempt)
            .map(|(id, _)| id.clone());
        if let Some(id) = child {
            workflows.stop_child(&id).await;
        }
    }
}

async fn start_child(
    workflows: &Workflows,
    parent: &Handle,
    dry_run: bool,
    key: &str,
    payload: Value,
) -> Result<String, WorkflowError> {
    let sub: SubRun = serde_json::from_value(payload).map_err(|e| WorkflowError::Invalid {
        field: "payload".into(),
        reason: e.to_string(),
    })?;
    if workflows.depth(&parent.id) + 1 > MAX_DEPTH {
        return Err(WorkflowError::Invalid {
            field: "definition".into(),
            reason: format!("sub-workflows nest at most {MAX_DEPTH} deep"),
        });
    }
    let new = NewRun {
        spec: Value::Null,
        inputs: sub.inputs,
        tenant: Some(parent.tenant.to_string()),
        definition: Some(sub.definition),
        version: sub.version,
        dry_run,
    };
    let view = workflows
        .begin(
            new,
            &format!("workflow {}", parent.id),
            Some(key.to_owned()),
        )
        .await?;
    Ok(view.summary.id)
}

/// The unit's end, from its child's.
fn end_of(child: &Run, unit: String, attempt: u32) -> Event {
    let cost_nusd = child
        .nodes
        .iter()
        .flat_map(|n| &n.units)
        .map(|u| u.cost_nusd)
        .sum();
    let at = child.finished_at.unwrap_or(child.started_at);
    if child.state == RunState::Succeeded {
        let outputs: Map<String, Value> = child
            .nodes
            .iter()
            .filter(|n| n.phase == NodePhase::Succeeded)
            .filter_map(|n| Some((n.name.clone(), child.output(&n.name)?)))
            .collect();
        let output = serde_json::json!({ "run": child.id, "outputs": outputs });
        let size = output.to_string().len();
        if size <= MAX_OUTPUT_BYTES {
            return Event::NodeSucceeded {
                unit,
                attempt,
                output_hash: oshal_workflow::hash::of(&output),
                output,
                cost_nusd,
                at,
            };
        }
        return Event::NodeFailed {
            unit,
            attempt,
            failure: Failure::new(
                "output_too_large",
                format!(
                    "the sub-workflow's outputs are {size} bytes; a run keeps at most {MAX_OUTPUT_BYTES} per unit (the run {} holds them)",
                    child.id
                ),
            ),
            cost_nusd,
            at,
        };
    }
    let why = child
        .nodes
        .iter()
        .flat_map(|n| &n.units)
        .find_map(|u| u.failure.as_ref())
        .map(|f| format!(": {}", f.message))
        .unwrap_or_default();
    let error_type = match child.state {
        RunState::Cancelled | RunState::Terminated => "cancelled",
        RunState::TimedOut => "timeout.run",
        _ => "failed",
    };
    Event::NodeFailed {
        unit,
        attempt,
        failure: Failure::new(
            error_type,
            format!(
                "the sub-workflow run {} ended {:?}{why}",
                child.id, child.state
            ),
        ),
        cost_nusd,
        at,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::definitions::NewDefinition;
    use super::super::testkit::{close, open, until};
    use super::super::view::Decision;
    use super::super::{NewRun, RunView, StopRequest, WorkflowError, Workflows};
    use crate::controller::LocalPool;
    use oshal_workflow::history::{NodePhase, RunState, Stop};

    const HEAD: &str =
        "api_version: oshal.dev/workflow/v1\ndefaults: { timeouts: { start_to_close: 1m } }\n";

    fn definition(body: &str) -> NewDefinition {
        NewDefinition {
            spec: json!(format!("{HEAD}{body}")),
            note: String::new(),
            tenant: None,
        }
    }

    fn run(body: &str, inputs: Value) -> NewRun {
        NewRun {
            spec: json!(format!("{HEAD}{body}")),
            inputs: inputs.as_object().cloned().unwrap_or_default(),
            tenant: None,
            definition: None,
            version: None,
            dry_run: false,
        }
    }

    fn unit_output(v: &RunView, node: &str) -> Value {
        v.nodes
            .iter()
            .find(|n| n.outline.name == node)
            .unwrap()
            .units[0]
            .output
            .clone()
            .unwrap_or(Value::Null)
    }

    /// The runs of the workflow named `name`.
    fn runs_of(w: &Workflows, name: &str) -> Vec<super::super::RunSummary> {
        w.list(None)
            .into_iter()
            .filter(|r| r.workflow == name)
            .collect()
    }

    const CHILD: &str = "name: child\ninputs: { topic: {} }\nnodes:\n  - { name: say, task: { kind: chat, payload: { prompt: 'say ${{ inputs.topic }}' } } }\n";
    const PARENT: &str = "name: parent\ninputs: { topic: { default: rivers } }\nnodes:\n  - { name: sub, task: { kind: workflow, payload: { definition: child, inputs: { topic: '${{ inputs.topic }}' } } } }\n  - { name: after, dependencies: [sub], task: { kind: chat, payload: { prompt: 'after ${{ nodes.sub.output.outputs.say.text }}' } } }\n";

    #[tokio::test]
    async fn a_sub_workflow_runs_as_a_child_run_whose_outputs_and_cost_are_its_units() {
        let dir = tempfile::tempdir().unwrap();
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(2)).await;
        workflows
            .publish(definition(CHILD), "operator")
            .await
            .unwrap();
        let v = workflows
            .start_run(run(PARENT, json!({})), "operator")
            .await
            .unwrap();
        let done = until(&workflows, &v.summary.id, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
        let sub = unit_output(&done, "sub");
        let child_id = sub["run"].as_str().unwrap().to_owned();
        assert!(sub["outputs"]["say"]["text"].is_string(), "{sub}");
        let child = workflows.view(&child_id, None).unwrap();
        assert_eq!(child.summary.state, RunState::Succeeded);
        assert_eq!(
            child.summary.parent_run.as_deref(),
            Some(v.summary.id.as_str())
        );
        assert_eq!(child.inputs["topic"], "rivers");
        let sub_node = done.nodes.iter().find(|n| n.outline.name == "sub").unwrap();
        assert_eq!(
            sub_node.units[0].tickets,
            std::slice::from_ref(&child_id),
            "the unit names its run"
        );
        assert!(child.summary.cost_nusd > 0);
        assert_eq!(
            sub_node.cost_nusd, child.summary.cost_nusd,
            "the child's spend is the unit's"
        );
        assert_eq!(runs_of(&workflows, "child").len(), 1);
        close(controller, workflows).await;
    }

    const WAITING_CHILD: &str = "name: gated\nnodes:\n  - { name: ok, approval: { approvers: [operator], timeout: 1h } }\n  - { name: go, dependencies: [ok], task: { kind: chat, payload: { prompt: go } } }\n";
    const WAITING_PARENT: &str = "name: outer\nnodes:\n  - { name: sub, task: { kind: workflow, payload: { definition: gated } } }\n";

    async fn child_waiting(workflows: &Workflows, parent: &str) -> String {
        let v = until(workflows, parent, "a child", |v| {
            v.nodes[0]
                .units
                .first()
                .is_some_and(|u| !u.tickets.is_empty())
        })
        .await;
        let child = v.nodes[0].units[0].tickets[0].clone();
        until(workflows, &child, "its approval", |v| {
            v.summary.waiting_approvals == 1
        })
        .await;
        child
    }

    #[tokio::test]
    async fn a_child_survives_a_restart_without_a_second_and_a_stop_of_the_parent_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(1)).await;
        workflows
            .publish(definition(WAITING_CHILD), "operator")
            .await
            .unwrap();
        let parent = workflows
            .start_run(run(WAITING_PARENT, json!({})), "operator")
            .await
            .unwrap()
            .summary
            .id;
        let child = child_waiting(&workflows, &parent).await;
        close(controller, workflows).await;

        // After a restart the unit finds its child; approving it ends both.
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(1)).await;
        let decision = Decision {
            node: "ok".into(),
            approved: true,
            input: Value::Null,
            comment: String::new(),
        };
        workflows
            .decide(&child, None, decision, "operator", "operator")
            .await
            .unwrap();
        let done = until(&workflows, &parent, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
        assert_eq!(runs_of(&workflows, "gated").len(), 1, "one child, not two");

        // A stop of the parent stops the child it waits on.
        let parent = workflows
            .start_run(run(WAITING_PARENT, json!({})), "operator")
            .await
            .unwrap()
            .summary
            .id;
        let child = child_waiting(&workflows, &parent).await;
        let stop = StopRequest {
            how: Stop::Cancel,
            reason: "not now".into(),
        };
        workflows
            .stop(&parent, None, stop, "operator")
            .await
            .unwrap();
        let stopped = until(&workflows, &child, "its stop", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(stopped.summary.state, RunState::Cancelled, "{stopped:#?}");
        let parent = until(&workflows, &parent, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(parent.summary.state, RunState::Cancelled);
        close(controller, workflows).await;
    }

    #[tokio::test]
    async fn a_unit_that_times_out_stops_its_child_and_so_does_a_restart_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(1)).await;
        workflows
            .publish(definition(WAITING_CHILD), "operator")
            .await
            .unwrap();
        let body = "name: impatient\nnodes:\n  - { name: sub, timeouts: { start_to_close: 2s }, retry: { maximum_attempts: 1 }, task: { kind: workflow, payload: { definition: gated } } }\n";
        let parent = workflows
            .start_run(run(body, json!({})), "operator")
            .await
            .unwrap()
            .summary
            .id;
        let child = child_waiting(&workflows, &parent).await;
        let stopped = until(&workflows, &child, "its stop", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(stopped.summary.state, RunState::Cancelled, "{stopped:#?}");
        let done = until(&workflows, &parent, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(done.summary.state, RunState::Failed);
        assert_eq!(
            done.nodes[0].units[0].error_type.as_deref(),
            Some("timeout.start_to_close"),
            "{done:#?}"
        );

        // Down while the unit's time runs out: after the restart the unit
        // times out and its child, found again, is stopped.
        let parent = workflows
            .start_run(run(body, json!({})), "operator")
            .await
            .unwrap()
            .summary
            .id;
        let child = child_waiting(&workflows, &parent).await;
        close(controller, workflows).await;
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(1)).await;
        let stopped = until(&workflows, &child, "its stop", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(stopped.summary.state, RunState::Cancelled, "{stopped:#?}");
        assert_eq!(
            runs_of(&workflows, "gated").len(),
            2,
            "no child started again"
        );
        close(controller, workflows).await;
    }

    #[tokio::test]
    async fn bad_sub_workflows_are_refused_by_path_and_recursion_stops_at_the_depth_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (_, controller, workflows) = open(dir.path(), LocalPool::builtin(1)).await;
        for (body, path) in [
            (
                "name: a\nnodes:\n  - { name: s, task: { kind: workflow, payload: { definition: child, shell: ls } } }\n",
                "$.nodes[0].task.payload",
            ),
            (
                "name: a\nnodes:\n  - { name: s, task: { kind: workflow, payload: { version: 1 } } }\n",
                "$.nodes[0].task.payload",
            ),
            (
                "name: a\nnodes:\n  - { name: s, memoize: true, task: { kind: workflow, payload: { definition: child } } }\n",
                "$.nodes[0].memoize",
            ),
        ] {
            let e = workflows
                .start_run(run(body, json!({})), "operator")
                .await
                .unwrap_err();
            let WorkflowError::Spec(issues) = e else {
                panic!("{e}")
            };
            assert_eq!(issues[0].path, path, "{body}: {issues:?}");
        }
        // A definition that is not published fails its unit, naming it.
        let v = workflows
            .start_run(
                run(
                    "name: a\nnodes:\n  - { name: s, retry: { maximum_attempts: 1 }, task: { kind: workflow, payload: { definition: nowhere } } }\n",
                    json!({}),
                ),
                "operator",
            )
            .await
            .unwrap();
        let done = until(&workflows, &v.summary.id, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        let unit = &done.nodes[0].units[0];
        // Refused before it ran: Argo's Error, not a Failed run of it.
        assert_eq!(unit.phase, NodePhase::Error);
        assert!(
            unit.error.as_deref().unwrap().contains("nowhere"),
            "{unit:#?}"
        );

        // A definition that runs itself stops at the depth limit.
        workflows
            .publish(
                definition("name: again\nnodes:\n  - { name: s, retry: { maximum_attempts: 1 }, task: { kind: workflow, payload: { definition: again } } }\n"),
                "operator",
            )
            .await
            .unwrap();
        let v = workflows
            .start_run(
                NewRun {
                    spec: Value::Null,
                    definition: Some("again".into()),
                    ..run("", json!({}))
                },
                "operator",
            )
            .await
            .unwrap();
        let done = until(&workflows, &v.summary.id, "an end", |v| {
            v.summary.state != RunState::Running
        })
        .await;
        assert_eq!(done.summary.state, RunState::Failed);
        assert!(
            done.nodes[0].units[0]
                .error
                .as_deref()
                .unwrap()
                .contains("nest at most 4 deep"),
            "{done:#?}"
        );
        assert_eq!(runs_of(&workflows, "again").len(), 1 + super::MAX_DEPTH);
        close(controller, workflows).await;
    }
}
