use std::sync::Arc;

use oshal_ops::alert::{AlertState, Source};
use oshal_ops::incident::IncidentStatus;
use serde_json::{Value, json};

use super::*;
use crate::clock::SystemClock;
use crate::controller::{ControllerConfig, LocalPool};
use crate::store::sqlite::SqliteStore;

async fn open(dir: &std::path::Path) -> (Controller, Operations) {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let controller = Controller::start(
        ControllerConfig::default(),
        store,
        LocalPool::builtin(1),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let ops = Operations::start(controller.clone()).await.unwrap();
    (controller, ops)
}

async fn close(controller: Controller, ops: Operations) {
    ops.shutdown();
    controller.shutdown().await;
}

fn am(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "oshal", "alerts": alerts})
}

fn alert(name: &str, bot: &str, status: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": name, "bot": bot, "severity": "critical"},
        "annotations": {"summary": format!("{name} on {bot}")},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": if status == "resolved" { "2026-12-04T10:05:00Z" } else { "0001-01-01T00:00:00Z" },
    })
}

#[tokio::test]
async fn a_payload_is_kept_whole_and_rebuilt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, ops) = open(dir.path()).await;
    let mut bad = alert("LaneLag", "b9", "firing");
    bad["labels"].as_object_mut().unwrap().remove("alertname");
    let got = ops
        .ingest(
            None,
            Source::Alertmanager,
            am(vec![
                alert("LaneLag", "b1", "firing"),
                bad,
                alert("LaneLag", "b2", "firing"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(got.accepted, 2);
    assert_eq!(got.refused.len(), 1);
    assert_eq!(got.refused[0].path, "alerts[1].labels.alertname");
    assert_eq!(got.opened, ["INC-1"]);
    // The same payload again (Alertmanager repeats): no new incident.
    let again = ops
        .ingest(
            None,
            Source::Alertmanager,
            am(vec![alert("LaneLag", "b1", "firing")]),
        )
        .await
        .unwrap();
    assert!(again.opened.is_empty());
    let moved = ops
        .move_incident(
            "INC-1",
            MoveIncident {
                action: MoveAction::Acknowledge,
                note: "on it".into(),
                tenant: None,
            },
            "ada",
        )
        .await
        .unwrap();
    assert_eq!(moved.incident.status, IncidentStatus::Acknowledged);
    assert!(moved.mtta_ms.is_some());
    let before = ops.incident(None, "INC-1").await.unwrap();
    let alerts_before = ops.alerts(None, &AlertsQuery::default()).await.unwrap();
    close(controller, ops).await;

    let (controller, ops) = open(dir.path()).await;
    assert_eq!(ops.incident(None, "INC-1").await.unwrap(), before);
    assert_eq!(
        ops.alerts(None, &AlertsQuery::default()).await.unwrap(),
        alerts_before
    );
    let b1 = alerts_before
        .iter()
        .find(|a| a.alert.labels["bot"] == "b1")
        .unwrap();
    assert_eq!(b1.alert.count, 2);
    // Numbering goes on from the journal: both resolve, the incident too.
    ops.ingest(
        None,
        Source::Alertmanager,
        am(vec![
            alert("LaneLag", "b1", "resolved"),
            alert("LaneLag", "b2", "resolved"),
        ]),
    )
    .await
    .unwrap();
    let inc = ops.incident(None, "INC-1").await.unwrap();
    assert_eq!(inc.incident.status, IncidentStatus::Resolved);
    assert!(inc.alerts.iter().all(|a| a.state == AlertState::Resolved));
    // A move the table lacks is refused, and nothing is written.
    let err = ops
        .move_incident(
            "INC-1",
            MoveIncident {
                action: MoveAction::Mitigate,
                note: String::new(),
                tenant: None,
            },
            "ada",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, OpsError::Conflict(_)), "{err}");
    close(controller, ops).await;
}

#[tokio::test]
async fn a_payload_that_is_not_alertmanagers_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, ops) = open(dir.path()).await;
    let err = ops
        .ingest(
            None,
            Source::Alertmanager,
            json!({"version": "3", "alerts": []}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpsError::Refused(ref r) if r.path == "version"),
        "{err}"
    );
    let err = ops
        .ingest(Some("nobody"), Source::Alertmanager, am(vec![]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpsError::Controller(_)),
        "an unknown tenant: {err}"
    );
    assert!(
        controller
            .store()
            .journal(BOOK, None)
            .await
            .unwrap()
            .is_empty()
    );
    close(controller, ops).await;
}

#[tokio::test]
async fn a_pagerduty_trigger_and_resolve_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, ops) = open(dir.path()).await;
    let trigger = json!({
        "routing_key": "k", "event_action": "trigger", "dedup_key": "db/primary",
        "payload": {"summary": "primary down", "source": "pg-1", "severity": "critical"}
    });
    let got = ops.ingest(None, Source::Pagerduty, trigger).await.unwrap();
    assert_eq!(got.dedup_key.as_deref(), Some("db/primary"));
    assert_eq!(got.opened.len(), 1);
    let resolve = json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "db/primary"});
    ops.ingest(None, Source::Pagerduty, resolve).await.unwrap();
    let inc = ops.incident(None, &got.opened[0]).await.unwrap();
    assert_eq!(inc.incident.status, IncidentStatus::Resolved);
    close(controller, ops).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_at_once_are_numbered_in_turn_and_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, ops) = open(dir.path()).await;
    controller
        .set_budget(TenantId::parse("acme").unwrap(), None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ops = ops.clone();
        let tenant = if i % 2 == 0 { None } else { Some("acme") };
        tasks.push(tokio::spawn(async move {
            ops.ingest(
                tenant,
                Source::Alertmanager,
                am(vec![alert("LaneLag", &format!("b{i}"), "firing")]),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().accepted, 1);
    }
    for tenant in ["default", "acme"] {
        let q = AlertsQuery {
            tenant: Some(tenant.to_owned()),
            ..AlertsQuery::default()
        };
        assert_eq!(ops.alerts(None, &q).await.unwrap().len(), 10);
    }
    let entries = controller.store().journal(BOOK, None).await.unwrap();
    for tenant in ["default", "acme"] {
        let seqs: Vec<u32> = entries
            .iter()
            .filter(|e| e.tenant.as_str() == tenant)
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u32).collect::<Vec<_>>(), "{tenant}");
    }
    close(controller, ops).await;
}
