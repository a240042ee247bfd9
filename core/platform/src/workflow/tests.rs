use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::testkit;
use super::testkit::{close, until};
use super::*;
use crate::controller::LocalPool;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, TicketQuery};
use oshal_workflow::history::{NodePhase, RunState};

async fn open(dir: &std::path::Path) -> (Arc<SqliteStore>, Controller, Workflows) {
    testkit::open(dir, LocalPool::builtin(2)).await
}

/// The run's tickets, whole.
async fn views_of(store: &dyn Store, run: &str) -> Vec<crate::store::TicketView> {
    let page = store
        .tickets(&TicketQuery {
            limit: 1_000,
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in page.tickets {
        let v = store.ticket(t.id, None).await.unwrap().unwrap();
        if v.idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with(&format!("wf/{run}/")))
        {
            out.push(v);
        }
    }
    out
}

/// The keys of the run's tickets, sorted.
async fn tickets_of(store: &dyn Store, run: &str) -> Vec<String> {
    let mut keys: Vec<String> = views_of(store, run)
        .await
        .into_iter()
        .filter_map(|v| v.idempotency_key)
        .collect();
    keys.sort();
    keys
}

const FAN: &str = r#"
api_version: oshal.dev/workflow/v1
name: fan
inputs:
  topic: { default: owls }
defaults:
  timeouts: { start_to_close: 30s }
nodes:
  - name: plan
    task: { kind: chat, payload: { prompt: "list parts of ${{ inputs.topic }}" } }
  - name: part
    dependencies: [plan]
    with_items: [wings, eyes, feathers]
    task: { kind: chat, payload: { prompt: "describe the ${{ item }} of ${{ inputs.topic }}" } }
  - name: join
    dependencies: [part]
    task: { kind: chat, payload: { prompt: "join: ${{ nodes.part.output }}" } }
"#;

#[tokio::test]
async fn a_fan_out_runs_on_the_bots_and_its_history_is_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, controller, workflows) = open(dir.path()).await;
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(FAN),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let done = until(&workflows, &v.summary.id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    assert_eq!((done.summary.done, done.summary.total), (5, 5));
    let part = &done.nodes[1];
    assert_eq!(part.units.len(), 3);
    assert!(
        part.units
            .iter()
            .all(|u| u.phase == NodePhase::Succeeded && u.tickets.len() == 1)
    );
    let join = &done.nodes[2].units[0];
    assert!(join.output.as_ref().unwrap()["text"].is_string());
    assert!(
        done.summary.cost_nusd > 0,
        "the built-in model's tokens are priced"
    );
    assert_eq!(
        done.summary.cost_nusd,
        done.nodes.iter().map(|n| n.cost_nusd).sum::<i64>()
    );
    // The summary's spend by node, the most expensive first.
    let by_node = &done.cost_by_node;
    assert_eq!(by_node.len(), 3, "{by_node:?}");
    assert!(by_node.windows(2).all(|w| w[0].cost_nusd >= w[1].cost_nusd));
    assert_eq!(
        by_node.iter().map(|c| c.cost_nusd).sum::<i64>(),
        done.summary.cost_nusd
    );
    let part = by_node.iter().find(|c| c.node == "part").unwrap();
    assert_eq!(part.tickets, 3);
    let keys = tickets_of(store.as_ref(), &v.summary.id).await;
    assert_eq!(keys.len(), 5, "{keys:?}");
    let done = workflows.view(&v.summary.id, None).unwrap();
    assert_eq!(done.ends_at_ms, done.summary.finished_at_ms);
    assert_eq!(done.critical_path.first().map(String::as_str), Some("plan"));
    assert_eq!(done.critical_path.last().map(String::as_str), Some("join"));
    // A second run of the same workflow is forecast from the first.
    let second = workflows
        .start_run(
            NewRun {
                spec: json!(FAN),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    assert!(second.ends_at_ms.is_some(), "{second:#?}");
    assert!(second.nodes.iter().all(|n| n.estimate_ms.is_some()));
    until(&workflows, &second.summary.id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    let history = workflows.history(&v.summary.id, None).await.unwrap();
    assert_eq!(history[0].event, "run_started");
    assert_eq!(history.last().unwrap().event, "run_finished");
    close(controller, workflows).await;

    // Rebuilt from the journal alone: the same run, and nothing runs again.
    let (store, controller, workflows) = open(dir.path()).await;
    let again = workflows.view(&v.summary.id, None).unwrap();
    assert_eq!(again.summary, done.summary);
    let units = |v: &RunView| v.nodes.iter().map(|n| n.units.clone()).collect::<Vec<_>>();
    assert_eq!(units(&again), units(&done), "the same run, unit for unit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tickets_of(store.as_ref(), &v.summary.id).await.len(), 5);
    assert_eq!(workflows.list(None).len(), 2);
    close(controller, workflows).await;
}

const GATED: &str = r#"
api_version: oshal.dev/workflow/v1
name: gated
defaults:
  timeouts: { start_to_close: 30s }
nodes:
  - name: build
    task: { kind: chat, payload: { prompt: "build it" } }
  - name: approve
    dependencies: [build]
    approval:
      approvers: [tenant]
      timeout: 1h
      escalation: { after: 30m, to: [operator] }
      input_schema: { type: object, required: [env], properties: { env: { enum: [staging, prod] } } }
  - name: ship
    dependencies: [approve]
    task: { kind: chat, payload: { prompt: "ship to ${{ nodes.approve.output.input.env }}" } }
"#;

#[tokio::test]
async fn an_approval_survives_a_restart_and_takes_only_its_approvers_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, controller, workflows) = open(dir.path()).await;
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(GATED),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let id = v.summary.id.clone();
    let waiting = until(&workflows, &id, "the approval", |v| {
        v.summary.waiting_approvals == 1
    })
    .await;
    let deadline = waiting.nodes[1].approval.as_ref().unwrap().deadline_ms;
    assert_eq!(workflows.approvals(None).len(), 1);
    close(controller, workflows).await;

    let (store, controller, workflows) = open(dir.path()).await;
    let inbox = workflows.approvals(None);
    assert_eq!(inbox.len(), 1, "the approval survived the restart");
    assert_eq!(
        (inbox[0].node.as_str(), inbox[0].approval.deadline_ms),
        ("approve", deadline)
    );
    let decision = |input| Decision {
        node: "approve".into(),
        approved: true,
        input,
        comment: "ok".into(),
    };
    let e = workflows
        .decide(
            &id,
            None,
            decision(json!({"env": "prod"})),
            "operator",
            "operator",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, WorkflowError::Forbidden(_)),
        "not escalated yet: {e}"
    );
    let e = workflows
        .decide(
            &id,
            None,
            decision(json!({"env": "moon"})),
            "tenant",
            "tenant default",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, WorkflowError::Invalid { field, .. } if field == "input.env"),
        "{e}"
    );
    workflows
        .decide(
            &id,
            None,
            decision(json!({"env": "staging"})),
            "tenant",
            "tenant default",
        )
        .await
        .unwrap();
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded);
    let ship = tickets_of(store.as_ref(), &id).await;
    assert_eq!(ship.len(), 2, "build once, ship once: {ship:?}");
    let t = views_of(store.as_ref(), &id)
        .await
        .into_iter()
        .find(|t| {
            t.idempotency_key
                .as_deref()
                .is_some_and(|k| k.contains("/ship/"))
        })
        .unwrap();
    assert_eq!(t.payload["prompt"], "ship to staging");
    assert_eq!(
        t.correlation_id.to_string(),
        id,
        "a run's tickets carry its id"
    );
    close(controller, workflows).await;
}

#[tokio::test]
async fn a_refused_spec_names_its_path_and_a_failed_node_retries_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, controller, workflows) = open(dir.path()).await;
    let bad = FAN.replace(
        "dependencies: [part]",
        "dependencies: [part]\n    depends: part",
    );
    let e = workflows
        .start_run(
            NewRun {
                spec: json!(bad),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap_err();
    let WorkflowError::Spec(issues) = e else {
        panic!("{e}")
    };
    assert_eq!(issues[0].path, "$.nodes[2].depends");
    let report = validate(&SpecSource {
        spec: json!(FAN.replace("kind: chat", "kind: email")),
    });
    assert!(!report.valid);
    assert_eq!(report.errors[0].path, "$.nodes[0].task.kind");
    assert_eq!(
        validate(&SpecSource { spec: json!(FAN) }).nodes[2].upstream,
        ["part"]
    );

    // A tool call with no connectors configured fails its ticket.
    let failing = r#"
api_version: oshal.dev/workflow/v1
name: flaky
defaults:
  timeouts: { start_to_close: 30s }
nodes:
  - name: fetch
    task: { kind: chat, payload: { prompt: "fetch" } }
  - name: call
    dependencies: [fetch]
    task: { kind: tool, payload: { connector: nowhere, operation: get } }
"#;
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(failing),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let id = v.summary.id.clone();
    let failed = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(failed.summary.state, RunState::Failed, "{failed:#?}");
    assert!(matches!(
        failed.nodes[1].phase,
        NodePhase::Failed | NodePhase::Error
    ));
    let e = workflows
        .retry(
            &id,
            None,
            RetryRequest {
                node: "fetch".into(),
            },
            "operator",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, WorkflowError::Conflict(_)),
        "fetch succeeded: {e}"
    );
    workflows
        .retry(
            &id,
            None,
            RetryRequest {
                node: "call".into(),
            },
            "operator",
        )
        .await
        .unwrap();
    let again = until(&workflows, &id, "a second end", |v| {
        v.summary.state != RunState::Running && v.nodes[1].units[0].attempt == 2
    })
    .await;
    assert_eq!(again.nodes[1].units[0].tickets.len(), 2);
    let keys = tickets_of(store.as_ref(), &id).await;
    assert_eq!(
        keys.iter().filter(|k| k.contains("/fetch/")).count(),
        1,
        "fetch kept: {keys:?}"
    );
    assert!(keys.iter().any(|k| k.ends_with("/call/2")), "{keys:?}");
    close(controller, workflows).await;
}

#[tokio::test]
async fn a_stop_cancels_what_waits_and_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, controller, workflows) = open(dir.path()).await;
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(GATED),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let id = v.summary.id.clone();
    until(&workflows, &id, "the approval", |v| {
        v.summary.waiting_approvals == 1
    })
    .await;
    workflows
        .stop(
            &id,
            None,
            StopRequest {
                how: Stop::Cancel,
                reason: "not today".into(),
            },
            "operator",
        )
        .await
        .unwrap();
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Cancelled);
    assert_eq!(done.nodes[2].phase, NodePhase::Omitted);
    assert!(workflows.approvals(None).is_empty());
    let e = workflows
        .stop(
            &id,
            None,
            StopRequest {
                how: Stop::Terminate,
                reason: String::new(),
            },
            "operator",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, WorkflowError::Conflict(_)), "{e}");
    close(controller, workflows).await;
}

#[tokio::test]
async fn terminate_cancels_the_tickets_in_flight_and_stays_ended_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, controller, workflows) = open(dir.path()).await;
    // No bot has the skill: the unit's ticket waits, queued.
    let spec = r#"
api_version: oshal.dev/workflow/v1
name: stuck
defaults:
  timeouts: { start_to_close: 30s }
nodes:
  - name: wait
    task: { kind: chat, skill: gpu, payload: { prompt: "never" } }
"#;
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(spec),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let id = v.summary.id.clone();
    for _ in 0..200 {
        if !views_of(store.as_ref(), &id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workflows
        .stop(
            &id,
            None,
            StopRequest {
                how: Stop::Terminate,
                reason: "enough".into(),
            },
            "operator",
        )
        .await
        .unwrap();
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Terminated);
    assert_eq!(
        done.nodes[0].units[0].error_type.as_deref(),
        Some("cancelled")
    );
    let mut state = None;
    for _ in 0..200 {
        let t = views_of(store.as_ref(), &id).await;
        state = t.first().map(|t| t.state);
        if state == Some(crate::ticket::TicketState::Cancelled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        state,
        Some(crate::ticket::TicketState::Cancelled),
        "its spend stops"
    );
    close(controller, workflows).await;

    let (store, controller, workflows) = open(dir.path()).await;
    assert_eq!(workflows.state(&id, None).unwrap(), RunState::Terminated);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        views_of(store.as_ref(), &id).await.len(),
        1,
        "nothing submitted again"
    );
    close(controller, workflows).await;
}

const GROUPED: &str = r#"
api_version: oshal.dev/workflow/v1
name: grouped
inputs:
  branch: { default: main }
defaults:
  timeouts: { start_to_close: 30s }
nodes:
  - name: deploy
    concurrency: { group: "deploy-${{ inputs.branch }}" }
    task: { kind: chat, skill: gpu, payload: { prompt: "deploy" } }
"#;

#[tokio::test]
async fn a_concurrency_group_runs_one_keeps_one_waiting_and_supersedes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, controller, workflows) = open(dir.path()).await;
    let start = |spec: String, branch: &str| {
        let mut inputs = serde_json::Map::new();
        inputs.insert("branch".into(), json!(branch));
        let w = workflows.clone();
        async move {
            w.start_run(
                NewRun {
                    spec: json!(spec),
                    inputs,
                    tenant: None,
                    definition: None,
                    version: None,
                    dry_run: false,
                },
                "operator",
            )
            .await
            .unwrap()
            .summary
            .id
        }
    };
    let unit = |id: &str| workflows.view(id, None).unwrap().nodes[0].units[0].clone();
    // No bot has the skill: a unit that gets its place waits there, queued.
    let a = start(GROUPED.into(), "main").await;
    until(&workflows, &a, "a ticket", |v| {
        v.nodes[0].units[0].attempt == 1
    })
    .await;
    let b = start(GROUPED.into(), "main").await;
    until(&workflows, &b, "its place in line", |v| {
        v.nodes[0].phase == NodePhase::Pending && v.events >= 2
    })
    .await;
    assert_eq!(unit(&b).attempt, 0, "b waits while a holds the place");
    let other = start(GROUPED.into(), "dev").await;
    until(&workflows, &other, "a ticket", |v| {
        v.nodes[0].units[0].attempt == 1
    })
    .await;
    let c = start(GROUPED.into(), "main").await;
    let b_done = until(&workflows, &b, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(
        b_done.nodes[0].units[0].error_type.as_deref(),
        Some("superseded")
    );
    assert_eq!(unit(&c).attempt, 0, "c waits in b's place");

    // a ends: its place passes to c.
    workflows
        .stop(
            &a,
            None,
            StopRequest {
                how: Stop::Terminate,
                reason: String::new(),
            },
            "operator",
        )
        .await
        .unwrap();
    until(&workflows, &c, "its turn", |v| {
        v.nodes[0].units[0].attempt == 1
    })
    .await;

    // A newer one with cancel_in_progress takes the place from c at once.
    let cip = GROUPED.replace(
        "deploy-${{ inputs.branch }}\" }",
        "deploy-${{ inputs.branch }}\", cancel_in_progress: true }",
    );
    let e = start(cip, "main").await;
    let c_done = until(&workflows, &c, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(
        c_done.nodes[0].units[0].error_type.as_deref(),
        Some("superseded")
    );
    until(&workflows, &e, "its turn", |v| {
        v.nodes[0].units[0].attempt == 1
    })
    .await;
    assert_eq!(unit(&other).attempt, 1, "another group is another place");
    let c_ticket = c_done.nodes[0].units[0].tickets.last().cloned();
    let mut cancelled = false;
    for _ in 0..200 {
        let t = views_of(_store.as_ref(), &c).await;
        if t.iter()
            .all(|t| t.state == crate::ticket::TicketState::Cancelled)
            && !t.is_empty()
        {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        cancelled,
        "c's ticket {c_ticket:?} is cancelled when it is superseded"
    );
    close(controller, workflows).await;

    // After a restart the groups are as the runs left them: e holds
    // main's place, so a new run waits.
    let (_store, controller, workflows) = open(dir.path()).await;
    let mut inputs = serde_json::Map::new();
    inputs.insert("branch".into(), json!("main"));
    let f = workflows
        .start_run(
            NewRun {
                spec: json!(GROUPED),
                inputs,
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap()
        .summary
        .id;
    until(&workflows, &f, "its place in line", |v| v.events >= 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        workflows.view(&f, None).unwrap().nodes[0].units[0].attempt,
        0
    );
    assert_eq!(
        workflows.view(&e, None).unwrap().nodes[0].units[0].attempt,
        1
    );
    close(controller, workflows).await;
}
