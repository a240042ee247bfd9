//! Fleet mode across processes: `oshal serve` on PostgreSQL and Redis, bots
//! in `oshal node` processes. A node dies (`kill -9`) or is stopped
//! (SIGTERM) while it holds tickets: every ticket still succeeds, on the
//! bots that remain, and each is charged exactly once.

use futures::StreamExt;
use oshal_e2e::{FleetSpace, Node, Server};
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

enum Exit {
    Kill9,
    Sigterm,
}

async fn a_node_leaving_mid_work_loses_nothing(exit: Exit) {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let serve_args = space.serve_args();
    let serve_args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &serve_args).unwrap();
    let node_args = space.node_args();
    let hole = black_hole().await;
    let mut stuck_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    stuck_args.extend([
        "--bots",
        "2",
        "--model-url",
        &hole,
        "--model-name",
        "hole",
        "--model-price-id",
        "builtin",
    ]);
    let mut stuck = Node::start("stuck", &stuck_args).unwrap();
    wait_for("the stuck node's bots", async || {
        bots_live(&server).await == 2
    })
    .await;

    // 200 tickets, all routed to the only bots there are, which hang.
    let ids: Vec<String> = futures::stream::iter(0..200)
        .map(|i| {
            let server = &server;
            async move { server.submit(&format!("fleet {i}")).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    wait_for("work in the stuck node's hands", async || {
        let bots = server.json("/api/v1/bots").await.unwrap();
        bots.as_array()
            .unwrap()
            .iter()
            .all(|b| b["in_flight"].as_u64().unwrap() > 0)
    })
    .await;

    let mut good_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    good_args.extend(["--bots", "2"]);
    let _good = Node::start("good", &good_args).unwrap();
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
