//! The restart heal, end to end on a real fleet: node n2's one bot calls a
//! real model server through a link that holds every connection already
//! open 3 s a call (its pooled connection pinned to a sick path) while a
//! new connection goes through at once. Its lane lags, the incident is
//! diagnosed a slow model, and the operator's own rule (no shipped rule
//! restarts a node) proposes to restart n2. Approved, n2 stops as on
//! SIGTERM and replaces its own image (the same pid, a new run with fresh
//! connections): its calls are quick again, the re-check passes, every
//! ticket succeeds, charged once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pinned_to_a_slow_path_is_restarted_after_an_approval_and_is_quick_again() {
    let bao = OpenBao::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, &bao.root_token).unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let vault = [
        "--vault-addr",
        bao.addr.as_str(),
        "--vault-token-file",
        token_file.to_str().unwrap(),
        "--vault-prefix",
        prefix.as_str(),
    ];
    let space = oshal_e2e::FleetSpace::new().await.unwrap();
    let server = space.serve_with(&dir.path().join("data"), &vault).unwrap();
    // The operator's rule, tried before the shipped drains.
    first_rule(
        &server,
        json!({"name": "restart-slow-node", "trigger": "slow_model",
            "matchers": ["alertname=\"OshalLaneLag\""], "action": {"action": "restart_node"}}),
    )
    .await;

    // n1 runs the loop's own work (investigations, the heal's write).
    let _n1 = space.node("n1", &["--bots", "1"]).unwrap();
    let (_llama, link, n2) = behind_a_slow_link(&space, "n2", 1).await;
    until("both nodes' bots live", 60, async || {
        let h = server.json("/api/v1/health").await.ok()?;
        (h["bots_live"] == 2).then_some(())
    })
    .await;
    budget(&server, "slowco", None).await;
    let summary = |n: usize| {
        json!({"kind": "chat", "skill": "summarize", "tenant": "slowco",
            "payload": {"prompt": format!("Summarise in one word: order {n} shipped."), "max_tokens": 4}})
    };
    // One call opens the bot's connection; from then on it is held.
    let warm = submit(&server, summary(0)).await;
    assert_eq!(
        server.wait_terminal(&warm).await.unwrap()["state"],
        "succeeded"
    );
    assert_eq!(link.accepted(), 1, "one pooled connection");
    link.slow_open_ones(Duration::from_secs(3));
    let mut summaries = Vec::new();
    for n in 1..=40 {
        summaries.push(submit(&server, summary(n)).await);
    }

    let slow = incident_of(&server, "OshalLaneLag", &[("bot", "n2-bot-01")]).await;
    let v = investigated(&server, &slow).await;
    let d = &v["investigations"][0]["diagnosis"];
    assert_eq!(d["causes"][0]["kind"], "slow_model", "{d:#}");
    let heal = proposed(&server, &slow).await;
    assert_eq!(heal["rule"], "restart-slow-node", "{heal:#}");
    assert_eq!(heal["action"]["action"], "restart_node", "{heal:#}");
    assert_eq!(heal["action"]["node"], "n2", "{heal:#}");
    // The run the approval names is the one that will stop.
    let run = heal["action"]["run"].as_str().unwrap();
    assert_eq!(heal["dry_run"]["before"]["run"], run, "{heal:#}");
    assert_eq!(heal["dry_run"]["blast"]["bots"], json!(["n2-bot-01"]));
    assert_eq!(link.accepted(), 1, "nothing restarted before the approval");
    let pid = n2.pid();

    let (passed, v) = approved(
        &server,
        &slow,
        "n2's model connection is stuck on a sick path",
    )
    .await;
    assert!(passed, "{v:#}");
    let line = n2.next_up().unwrap();
    assert!(line.starts_with("node n2 up"), "{line}");
    assert_eq!(n2.pid(), pid, "the same process, a new run");
    for id in &summaries {
        let t = server.wait_terminal(id).await.unwrap();
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(
            t["ledger"].as_array().unwrap().len(),
            1,
            "charged once: {t:#}"
        );
    }
    assert!(link.accepted() >= 2, "the new run's fresh connection");
    let changes = server.json("/api/v1/ops/changes").await.unwrap();
    assert!(
        changes.to_string().contains("node_restarted"),
        "{changes:#}"
    );
    resolved(&server, &slow).await;
    drop(server);
    space.cleanup().await.unwrap();
}
