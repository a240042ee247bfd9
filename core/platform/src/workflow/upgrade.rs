//! Moving a run to another published version of its spec: an explicit
//! act that first shows the diff. Without `confirm` nothing changes and
//! the diff is the answer; with it, the move is recorded with the new
//! spec (so a replay makes the same run) and the run goes on under it: a
//! node that has begun keeps its record, one that has not takes the new
//! definition ([`oshal_workflow::run::Run::upgrade`]).

use std::sync::Arc;

use oshal_workflow::history::Event;
use oshal_workflow::validate::Workflow;
use serde::{Deserialize, Serialize};
use specta::Type;

use super::view::RunView;
use super::{Kinds, SpecChange, WorkflowError, Workflows, definitions};
use crate::ticket::TenantId;

/// Which version to move a run to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// A published version of the run's workflow; the latest if absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// Move the run; without it, only the diff is shown.
    #[serde(default)]
    pub confirm: bool,
}

/// What a move does (or did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct UpgradeView {
    pub from_hash: String,
    pub to_version: u32,
    pub to_hash: String,
    /// The run's spec against the version's.
    pub changes: Vec<SpecChange>,
    /// Whether the run moved (only with `confirm`).
    pub applied: bool,
    /// The run, as it is now.
    pub run: RunView,
}

impl Workflows {
    /// Shows (or, confirmed, makes) a run's move to a published version.
    pub async fn upgrade(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: UpgradeRequest,
        by: &str,
    ) -> Result<UpgradeView, WorkflowError> {
        let h = self.handle(id, only)?;
        let run = h.snapshot();
        let name = run.workflow.spec.name.clone();
        let (spec, version) = self
            .inner
            .definitions
            .spec(&h.tenant, &name, request.version)?;
        let workflow = Arc::new(Workflow::new(spec, &Kinds).map_err(|e| {
            WorkflowError::Spec(e.into_iter().map(super::SpecIssue::from).collect())
        })?);
        let changes = definitions::changes(&run.workflow.spec, &workflow.spec);
        let mut view = UpgradeView {
            from_hash: run.workflow.hash.clone(),
            to_version: version,
            to_hash: workflow.hash.clone(),
            changes,
            applied: false,
            run: self.run_view(&run, &h.tenant),
        };
        if !request.confirm {
            return Ok(view);
        }
        let event = Event::RunUpgraded {
            spec_hash: workflow.hash.clone(),
            version: Some(version),
            by: by.to_owned(),
            at: self.inner.controller.clock().now_ms(),
        };
        let store = self.inner.controller.store().clone();
        let moved = h.record_upgrade(store.as_ref(), workflow, event).await?;
        tracing::info!(run = %id, workflow = %name, version, by, "workflow run moved to another version");
        h.wake();
        view.applied = true;
        view.run = self.run_view(&moved, &h.tenant);
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Decision, NewDefinition, NewRun, WorkflowError};
    use super::*;
    use crate::controller::{Controller, LocalPool};
    use oshal_workflow::history::{NodePhase, RunState};

    const V1: &str = r#"
api_version: oshal.dev/workflow/v1
name: ship
defaults: { timeouts: { start_to_close: 1m } }
nodes:
  - { name: build, task: { kind: chat, payload: { prompt: build it } } }
  - { name: gate, dependencies: [build], approval: { approvers: [operator], timeout: 1h } }
  - { name: ship, dependencies: [gate], task: { kind: chat, payload: { prompt: ship v1 } } }
"#;

    async fn open(dir: &std::path::Path) -> (Controller, Workflows) {
        let (_, controller, workflows) =
            super::super::testkit::open(dir, LocalPool::builtin(1)).await;
        (controller, workflows)
    }

    async fn until(w: &Workflows, id: &str, done: impl Fn(&RunView) -> bool) -> RunView {
        super::super::testkit::until(w, id, "a state", done).await
    }

    fn publish(spec: &str) -> NewDefinition {
        NewDefinition {
            spec: json!(spec),
            note: String::new(),
            tenant: None,
        }
    }

    #[tokio::test]
    async fn a_run_moves_to_a_newer_version_only_when_confirmed_and_stays_moved_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (controller, workflows) = open(dir.path()).await;
        let v1 = workflows.publish(publish(V1), "operator").await.unwrap();
        let run = workflows
            .start_run(
                NewRun {
                    spec: Value::Null,
                    inputs: Default::default(),
                    tenant: None,
                    definition: Some("ship".into()),
                    version: None,
                    dry_run: false,
                },
                "operator",
            )
            .await
            .unwrap();
        let id = run.summary.id.clone();
        until(&workflows, &id, |v| v.nodes[1].phase == NodePhase::Running).await;
        let v2 = workflows
            .publish(publish(&V1.replace("ship v1", "ship v2")), "operator")
            .await
            .unwrap();

        // Shown first: nothing moves without confirm.
        let preview = workflows
            .upgrade(&id, None, UpgradeRequest::default(), "operator")
            .await
            .unwrap();
        assert!(!preview.applied);
        assert_eq!(
            (preview.to_version, preview.from_hash.as_str()),
            (2, v1.hash.as_str())
        );
        assert_eq!(preview.changes[0].path, "$.nodes[ship].task.payload.prompt");
        assert_eq!(
            workflows.view(&id, None).unwrap().summary.spec_hash,
            v1.hash
        );

        let moved = workflows
            .upgrade(
                &id,
                None,
                UpgradeRequest {
                    version: None,
                    confirm: true,
                },
                "operator",
            )
            .await
            .unwrap();
        assert!(moved.applied);
        assert_eq!(moved.run.summary.spec_hash, v2.hash);
        let again = workflows
            .upgrade(
                &id,
                None,
                UpgradeRequest {
                    version: None,
                    confirm: true,
                },
                "operator",
            )
            .await
            .unwrap_err();
        assert!(matches!(again, WorkflowError::Conflict(_)), "{again}");

        // The gate decided, `ship` runs as version 2 defines it.
        workflows
            .decide(
                &id,
                None,
                Decision {
                    node: "gate".into(),
                    approved: true,
                    input: json!({}),
                    comment: String::new(),
                },
                "operator",
                "operator",
            )
            .await
            .unwrap();
        let done = until(&workflows, &id, |v| v.summary.state != RunState::Running).await;
        assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
        let history = workflows.history(&id, None).await.unwrap();
        let scheduled_ship = history
            .iter()
            .find(|e| e.event == "node_scheduled" && e.body["unit"] == "ship")
            .unwrap();
        assert_eq!(scheduled_ship.body["task"]["payload"]["prompt"], "ship v2");
        assert!(history.iter().any(|e| e.event == "run_upgraded"));
        workflows.shutdown();
        controller.shutdown().await;

        // Rebuilt from the journal: on version 2, as it ended.
        let (controller, workflows) = open(dir.path()).await;
        let rebuilt = workflows.view(&id, None).unwrap();
        assert_eq!(rebuilt.summary, done.summary);
        workflows.shutdown();
        controller.shutdown().await;
    }
}
