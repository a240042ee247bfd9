//! Workflow runs live: `oshal workflow` checks a spec (every refusal at
//! its JSON path) and runs it on the bots, each node a ticket under its
//! key. A `kill -9` of the controller mid-run loses nothing and repeats
//! nothing: after the restart the run is rebuilt from its history, the
//! units in flight are found again by their keys, the approval still
//! waits, and once approved the run ends with exactly one ticket per unit.

use oshal_e2e::{Server, oshal_bin};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const FAN: &str = r#"
api_version: oshal.dev/workflow/v1
name: e2e-fan
inputs:
  topic: { default: rivers }
defaults:
  timeouts: { start_to_close: 60s }
  retry: { maximum_attempts: 2, initial_interval: 200ms }
nodes:
  - name: plan
    task: { kind: chat, payload: { prompt: "plan ${{ inputs.topic }}" } }
  - name: part
    dependencies: [plan]
    parallelism: 4
    with_items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]
    task: { kind: chat, payload: { prompt: "part ${{ item }} of ${{ inputs.topic }}", max_tokens: 64 } }
  - name: review
    dependencies: [part]
    approval: { approvers: [operator], timeout: 1h }
  - name: publish
    dependencies: [review]
    task: { kind: chat, payload: { prompt: "publish ${{ inputs.topic }}" } }
"#;

/// Polls run `id` until `done` holds of it.
async fn wait_run(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = server
            .json(&format!("/api/v1/workflows/runs/{id}"))
            .await
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "run {id} stuck: {v:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every ticket of the server, whole, by idempotency key (the list
/// answers summaries; each is read in full).
async fn tickets_by_key(server: &Server) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in server.all_tickets().await.unwrap() {
        let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
        let t = server.json(&path).await.unwrap();
        let key = t["idempotency_key"].as_str().unwrap_or("(none)").to_owned();
        out.entry(key).or_default().push(t);
    }
    out
}

#[tokio::test]
async fn a_run_survives_a_kill_9_without_running_a_node_twice() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("fan.yaml");
    std::fs::write(&spec, FAN).unwrap();
    let mut server = Server::start(&dir.path().join("data"), &["--bots", "2"]).unwrap();
    let spec_arg = spec.to_str().unwrap();

    // A bad spec is refused with the path of its field, by the CLI too.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        FAN.replace("dependencies: [part]", "dependencies: [part, nowhere]"),
    )
    .unwrap();
    let report = server.cli(&["workflow", "validate", bad.to_str().unwrap()]);
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["errors"][0]["path"], "$.nodes[2].dependencies",
        "{report:#}"
    );
    assert_eq!(report["errors"][0]["code"], "undefined");
    let refused = Command::new(oshal_bin())
        .args(["workflow", "run", bad.to_str().unwrap()])
        .env("OSHAL_API", &server.url)
        .env("OSHAL_API_TOKEN", &server.token)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("$.nodes[2].dependencies"), "{stderr}");

    let checked = server.cli(&["workflow", "validate", spec_arg]);
    assert_eq!(checked["valid"], true, "{checked:#}");
    let started = server.cli(&["workflow", "run", spec_arg, "--input", "topic=deltas"]);
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(
        started["spec_hash"], checked["hash"],
        "the run is pinned to what was checked"
    );

    // Kill the controller while the fan-out is under way.
    let mid = wait_run(&server, &id, |v| v["done"].as_u64().unwrap() >= 8).await;
    server.kill9();
    let done_before = mid["done"].as_u64().unwrap();
    assert!(
        done_before < mid["total"].as_u64().unwrap(),
        "killed mid-run: {mid:#}"
    );

    let server = Server::start(&dir.path().join("data"), &["--bots", "2"]).unwrap();
    let waiting = wait_run(&server, &id, |v| v["waiting_approvals"] == 1).await;
    assert_eq!(waiting["state"], "Running");
    let inbox = server.cli(&["workflow", "approvals"]);
    assert_eq!(inbox[0]["node"], "review", "{inbox:#}");
    server.cli(&[
        "workflow",
        "approve",
        &id,
        "review",
        "--comment",
        "looks right",
    ]);
    let done = wait_run(&server, &id, |v| v["state"] != "Running").await;
    assert_eq!(done["state"], "Succeeded", "{done:#}");
    assert_eq!(done["done"], 63);

    // One ticket per unit: nothing finished before the kill ran again.
    let tickets = tickets_by_key(&server).await;
    assert!(
        tickets.keys().all(|k| k.starts_with(&format!("wf/{id}/"))),
        "only the run's tickets"
    );
    let units: usize = done["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] != "approval")
        .map(|n| n["units"].as_array().unwrap().len())
        .sum();
    assert_eq!(units, 62);
    assert_eq!(
        tickets.len(),
        units,
        "{:?}",
        tickets.keys().collect::<Vec<_>>()
    );
    assert!(tickets.values().all(|t| t.len() == 1));
    assert!(
        tickets.keys().all(|k| k.ends_with("/1")),
        "no unit needed a second attempt"
    );
    let part = &done["nodes"][1]["units"];
    for (k, u) in part.as_array().unwrap().iter().enumerate() {
        assert_eq!(u["phase"], "Succeeded");
        assert_eq!(u["tickets"].as_array().unwrap().len(), 1, "{u:#}");
        assert_eq!(u["name"], format!("part[{k}]"));
    }
    let t = server
        .json(&format!(
            "/api/v1/tickets/{}",
            part[3]["tickets"][0].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(t["payload"]["prompt"], "part 3 of deltas");
    assert_eq!(t["correlation_id"], id.as_str());
    let cost: i64 = done["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["cost_nusd"].as_i64().unwrap())
        .sum();
    assert_eq!(done["cost_nusd"].as_i64().unwrap(), cost);
    assert!(cost > 0);

    let history = server.cli(&["workflow", "history", &id]);
    let events: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"run_started"));
    assert_eq!(events.last(), Some(&"run_finished"));
    assert_eq!(
        events.iter().filter(|e| **e == "node_scheduled").count(),
        62
    );
}
