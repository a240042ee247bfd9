//! Fleet mode across processes: `oshal serve` on PostgreSQL and Redis, bots
//! in `oshal node` processes. A node dies (`kill -9`) or is stopped
//! (SIGTERM) while it holds tickets: every ticket still succeeds, on the
//! bots that remain, and each is charged exactly once. Redis restarts empty
//! mid-load: the controller re-drives from PostgreSQL and nothing is lost.
//! PostgreSQL crashes mid-load: submissions are refused (503, nothing
//! written) until it is back, and the work already accepted completes,
//! charged once. A node ordered to restart replaces its own image and
//! hands back what it held, charged once.

use oshal_e2e::{FleetSpace, LlamaServer, PrivatePostgres, PrivateRedis, Server};
use std::time::{Duration, Instant};

/// A model endpoint that accepts connections and never answers: a node
/// pointed at it holds its tickets `running` for as long as it lives.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/v1")
}

async fn bots_live(server: &Server) -> u64 {
    server.json("/api/v1/health").await.unwrap()["bots_live"]
        .as_u64()
        .unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + oshal_e2e::WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every bot holds work (`what` names whose, for the timeout).
async fn every_bot_holds_work(server: &Server, what: &str) {
    wait_for(&format!("work in {what}"), async || {
        let bots = server.json("/api/v1/bots").await.unwrap();
        bots.as_array()
            .unwrap()
            .iter()
            .all(|b| b["in_flight"].as_u64().unwrap() > 0)
    })
    .await;
}

enum Exit {
    Kill9,
    Sigterm,
}

async fn a_node_leaving_mid_work_loses_nothing(exit: Exit) {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    // This test counts every attempt charged: no investigation of the
    // node or lanes it breaks runs beside its tickets.
    server.no_investigations().await.unwrap();
    let hole = black_hole().await;
    let stuck_args = [
        "--bots",
        "2",
        "--model-url",
        &hole,
        "--model-name",
        "hole",
        "--model-price-id",
        "builtin",
    ];
    let mut stuck = space.node("stuck", &stuck_args).unwrap();
    wait_for("the stuck node's bots", async || {
        bots_live(&server).await == 2
    })
    .await;

    // 200 tickets, all routed to the only bots there are, which hang.
    let ids = server
        .submit_all((0..200).map(|i| format!("fleet {i}")), 16)
        .await;
    every_bot_holds_work(&server, "the stuck node's hands").await;

    let _good = space.node("good", &["--bots", "2"]).unwrap();
    match exit {
        Exit::Kill9 => stuck.kill9(),
        Exit::Sigterm => assert!(stuck.stop().unwrap().success()),
    }

    let mut requeued = 0;
    for id in &ids {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert!(v["bot"].as_str().unwrap().starts_with("good-"), "{v:#}");
        let ledger = v["ledger"].as_array().unwrap();
        assert_eq!(ledger.len(), 1, "charged once: {v:#}");
        assert_eq!(ledger[0]["attempt"], v["attempts"], "{v:#}");
        let events = v["events"].as_array().unwrap();
        if events
            .iter()
            .any(|e| e["reason"].as_str().unwrap().contains("lost"))
        {
            requeued += 1;
        }
    }
    // The stuck node held (at least) the in-flight limit of each of its bots.
    assert!(requeued >= 2, "requeued {requeued}");
    let cost = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(cost["total"]["attempts"], 200);
    drop(server);
    space.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_mid_load_requeues_its_tickets_to_the_survivors() {
    a_node_leaving_mid_work_loses_nothing(Exit::Kill9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_node_hands_back_its_in_flight_tickets() {
    a_node_leaving_mid_work_loses_nothing(Exit::Sigterm).await;
}

/// `POST /api/v1/nodes/{id}/restart`: the node, a real `oshal node`, stops
/// as on SIGTERM and replaces its own image (the same pid, a new run under
/// the same name) while its bots' real model calls are under way: what
/// they held is handed back and every ticket succeeds, charged once. A node
/// none knows is 404; the embedded pool has no node to restart (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ordered_to_restart_comes_back_in_the_same_process_and_loses_nothing() {
    let llama = LlamaServer::start().await.unwrap();
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    server.no_investigations().await.unwrap();
    // A real model: its calls take long enough to be under way at the order.
    let args = [&["--bots", "2"][..], &llama.model_flags()].concat();
    let mut node = space.node("n1", &args).unwrap();
    wait_for("the node's bots", async || bots_live(&server).await == 2).await;
    let pid = node.pid();

    // Few and short: on a machine running the whole suite, what the
    // restart hands back must still be run again well within the wait.
    let payloads = (0..12).map(|i| {
        serde_json::json!({"prompt": format!("Say the number {i} in one word."), "max_tokens": 8})
    });
    let ids = server.submit_all_chats(payloads, 8).await;
    every_bot_holds_work(&server, "the node's hands").await;
    let r = server
        .post("/api/v1/nodes/n1/restart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ordered: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ordered["node"], "n1", "{ordered:#}");
    assert_eq!(ordered["bots"].as_array().unwrap().len(), 2, "{ordered:#}");
    assert!(ordered["held"].as_u64().unwrap() > 0, "{ordered:#}");
    let line = node.next_up().unwrap();
    assert!(line.starts_with("node n1 up with 2 bots"), "{line}");
    assert_eq!(node.pid(), pid);
    assert!(node.running(), "the same process goes on");

    let mut requeued = 0;
    for id in &ids {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert_eq!(
            v["ledger"].as_array().unwrap().len(),
            1,
            "charged once: {v:#}"
        );
        requeued += usize::from(v["attempts"].as_u64().unwrap() > 1);
    }
    assert!(requeued > 0, "the restart handed work back");
    let cost = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(cost["total"]["attempts"], 12);
    wait_for("the node's bots again", async || {
        bots_live(&server).await == 2
    })
    .await;

    let r = server
        .post("/api/v1/nodes/n9/restart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(server);
    space.cleanup().await.unwrap();

    let local = Server::start(&dir.path().join("local"), &["--bots", "1"]).unwrap();
    let r = local.post("/api/v1/nodes/n1/restart").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no node to restart"),
        "{body:#}"
    );
}

/// Redis keeps nothing on disk here: a restart loses every stream, group,
/// registration and result in flight. PostgreSQL is the source of truth, so
/// the controller notices the lost epoch, re-drives every routed ticket that
/// had not finished, the node re-registers and re-creates its groups, and
/// every ticket still succeeds. The ledger holds one row per attempt whose
/// result was recorded, never two for one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_mid_load_loses_no_ticket() {
    let llama = LlamaServer::start().await.unwrap();
    let mut redis = PrivateRedis::start().await.unwrap();
    let mut space = FleetSpace::on(&oshal_e2e::postgres_admin_url(), &redis.url())
        .await
        .unwrap();
    // Its processes' logs (at TRACE) outlive a failure, which names them;
    // a pass removes them.
    let logs = std::env::temp_dir().join(format!("oshal-redis-restart-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&logs).unwrap();
    space.logs = Some(logs.clone());
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    // This test counts every attempt charged: no investigation of the
    // node or lanes it breaks runs beside its tickets.
    server.no_investigations().await.unwrap();
    // The real model answers in tenths of a second: slow enough that the
    // restart lands mid-load. Replies are bounded: unbounded, this small
    // model may ramble to the end of its context, and a bot's share of the
    // re-driven work then outlasts the wait on a busy machine.
    let model = [&["--bots", "2"][..], &llama.model_flags()].concat();
    let _node = space.node("n1", &model).unwrap();
    wait_for("the node's bots", async || bots_live(&server).await == 2).await;

    let payloads = (0..24).map(|i| {
        serde_json::json!({"prompt": format!("Say the number {i} in one word."), "max_tokens": 16})
    });
    let ids = server.submit_all_chats(payloads, 8).await;
    wait_for("some tickets done, most not", async || {
        let done = server
            .all_tickets()
            .await
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "succeeded")
            .count();
        done >= 2
    })
    .await;
    redis.restart_empty().await.unwrap();

    let mut redriven = 0;
    let mut ledger_rows = 0;
    for id in &ids {
        let v = server
            .wait_terminal(id)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\nlogs in {}", logs.display()));
        assert_eq!(v["state"], "succeeded", "{v:#}");
        let ledger = v["ledger"].as_array().unwrap();
        let attempts: Vec<u64> = ledger
            .iter()
            .map(|l| l["attempt"].as_u64().unwrap())
            .collect();
        let mut unique = attempts.clone();
        unique.dedup();
        assert_eq!(unique, attempts, "one row per attempt: {v:#}");
        assert!(
            attempts.contains(&v["attempts"].as_u64().unwrap()),
            "the succeeding attempt is charged: {v:#}"
        );
        ledger_rows += ledger.len();
        let reasons: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        if reasons.iter().any(|r| r.contains("redis lost")) {
            redriven += 1;
        }
        // The node never went away: its bots re-register within a heartbeat
        // and are not declared lost on top of the re-drive.
        assert!(
            !reasons.iter().any(|r| r.contains("heartbeat stopped")),
            "{v:#}"
        );
    }
    assert!(redriven >= 1, "the restart re-drove in-flight tickets");
    // What the bots had read ahead before the restart is superseded once
    // the node sees the new epoch: skipped, not run and paid for again.
    // (Only calls started before the node learned it are charged twice.)
    assert!(
        ledger_rows < ids.len() + redriven,
        "{ledger_rows} ledger rows for {} tickets, {redriven} re-driven: stale entries were run",
        ids.len()
    );
    let cost = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(cost["total"]["attempts"], ledger_rows as u64);
    drop(server);
    space.cleanup().await.unwrap();
    let _ = std::fs::remove_dir_all(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashing_mid_load_refuses_new_work_and_loses_none() {
    let mut pg = PrivatePostgres::start().await.unwrap();
    let space = FleetSpace::on(&pg.admin_url(), &oshal_e2e::redis_url())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    // This test counts every attempt charged: no investigation of the
    // node or lanes it breaks runs beside its tickets.
    server.no_investigations().await.unwrap();
    let _node = space.node("n1", &["--bots", "2"]).unwrap();
    wait_for("the node's bots", async || bots_live(&server).await == 2).await;

    let mut accepted = server
        .submit_all((0..100).map(|i| format!("before {i}")), 16)
        .await;
    pg.crash().unwrap();

    // Refused with the one error shape, and nothing was written.
    let r = server
        .post("/api/v1/tickets")
        .json(&serde_json::json!({"kind": "chat", "payload": {"prompt": "while down"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "store_unavailable", "{body:#}");
    let health = server.get("/api/v1/health").send().await.unwrap();
    assert_eq!(health.status(), 503);

    pg.start_again().unwrap();
    wait_for("the store to answer again", async || {
        server
            .get("/api/v1/health")
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The API tells a refused client to retry, so this client does: a
    // submission that races the store's return may still be refused (503,
    // nothing written), though the writer no longer refuses one on the word
    // of a try that began before it (`store::writer::tests`).
    let mut tries = 0;
    let after = loop {
        match server.submit("after").await {
            Ok(id) => break id,
            Err(e) if tries < 50 && e.to_string().contains("store_unavailable") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("submit after the restart: {e}"),
        }
    };
    accepted.push(after);

    for id in &accepted {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert_eq!(
            v["ledger"].as_array().unwrap().len(),
            1,
            "charged once: {v:#}"
        );
    }
    let all = server.all_tickets().await.unwrap();
    assert_eq!(
        all.len(),
        accepted.len(),
        "the refused submission left no ticket"
    );
    let cost = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(cost["total"]["attempts"], accepted.len() as u64);
    drop(server);
    space.cleanup().await.unwrap();
}

/// An OpenAI-compatible model server that answers a prompt mentioning
/// "poison" with a reply holding U+0000 (JSON `\u0000`), and any other with
/// a plain one.
async fn nul_model() -> String {
    use axum::{Json, Router, routing::post};
    async fn complete(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        let content = if prompt.contains("poison") {
            "half\u{0}way"
        } else {
            "fine"
        };
        Json(serde_json::json!({
            "model": "nul-model",
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }))
    }
    let app = Router::new().route("/v1/chat/completions", post(complete));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

/// Tried on main as a user would: one model reply holding U+0000 made
/// PostgreSQL refuse the results commit, the controller retried it every
/// 1.6 s without end, the ticket stayed `routed`, and every submission
/// after it was refused with 503; `?kind=%00` answered 503 too. Now the
/// reply is cleaned where it enters, bad input is refused as such, and
/// every other tenant's work flows on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_from_a_model_or_a_client_stops_nothing_in_a_fleet() {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let model = nul_model().await;
    let model_args = [
        "--bots",
        "2",
        "--model-url",
        &model,
        "--model-name",
        "nul-model",
        "--model-price-id",
        "builtin",
    ];
    let _node = space.node("n1", &model_args).unwrap();
    wait_for("the node's bots", async || bots_live(&server).await == 2).await;

    let submit = async |tenant: &str, prompt: &str| {
        server
            .post("/api/v1/tickets")
            .json(&serde_json::json!({"kind": "chat", "tenant": tenant, "payload": {"prompt": prompt}}))
            .send()
            .await
            .unwrap()
    };
    let poisoned = submit("acme", "poison me").await;
    assert_eq!(poisoned.status(), 201);
    let poisoned: serde_json::Value = poisoned.json().await.unwrap();
    let poisoned = poisoned["id"].as_str().unwrap().to_owned();
    let v = server.wait_terminal(&poisoned).await.unwrap();
    assert_eq!(v["state"], "succeeded", "{v:#}");
    assert_eq!(v["result"]["text"], "half\u{FFFD}way", "{v:#}");
    let said = v["events"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(said.contains("1 NUL character (U+0000)"), "{said}");

    // Bad input from a client is refused as such, never as an outage.
    let r = submit("acme", "a\u{0}b").await;
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "payload.prompt", "{e:#}");
    for query in ["kind=%00", "tenant=%00", "bot=a%00b"] {
        let r = server
            .get(&format!("/api/v1/tickets?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["kind"], "invalid", "{query}: {e:#}");
    }

    // Meanwhile and after, other tenants' tickets are accepted and succeed.
    let mut others = Vec::new();
    for i in 0..20 {
        let r = submit(&format!("tenant-{}", i % 4), &format!("hello {i}")).await;
        assert_eq!(r.status(), 201, "submission {i} after the poison");
        let body: serde_json::Value = r.json().await.unwrap();
        others.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &others {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert_eq!(v["ledger"].as_array().unwrap().len(), 1, "{v:#}");
    }
    drop(server);
    space.cleanup().await.unwrap();
}

/// With Redis unreachable, every lane read as an empty, healthy lane
/// (depth 0, pending 0) in the API, /metrics and the topology. Unknown is
/// not zero: the lane is `null`, and /metrics says `oshal_lane_known 0`
/// and has no depth sample for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_figures_cannot_be_read_is_unknown_not_empty() {
    let mut redis = PrivateRedis::start().await.unwrap();
    let space = FleetSpace::on(&oshal_e2e::postgres_admin_url(), &redis.url())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let _node = space.node("n1", &["--bots", "1"]).unwrap();
    wait_for("the node's bot", async || bots_live(&server).await == 1).await;
    let bots = server.json("/api/v1/bots").await.unwrap();
    assert!(bots[0]["lane"]["depth"].is_u64(), "{bots:#}");

    redis.kill();
    let bots = server.json("/api/v1/bots").await.unwrap();
    assert!(bots[0]["lane"].is_null(), "{bots:#}");
    let metrics = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bot = bots[0]["id"].as_str().unwrap();
    assert!(
        metrics.contains(&format!("oshal_lane_known{{bot=\"{bot}\"}} 0")),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!("oshal_lane_depth{{bot=\"{bot}\"}}")),
        "{metrics}"
    );
    drop(server);
    redis.restart_empty().await.unwrap();
    space.cleanup().await.unwrap();
}
