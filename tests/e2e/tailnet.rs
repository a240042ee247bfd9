//! The mesh's data plane, for real: four hosts in network namespaces joined
//! by userspace WireGuard on 100.64.R.0/24 (`oshal_e2e::tailnet`). The
//! controller, its PostgreSQL and its Redis on host 1; a node on each of
//! hosts 2 and 3, reaching Redis only over the tailnet; the attaching
//! client on host 4, reaching the API only over the tailnet. Tickets flow
//! across the mesh; a node whose link is cut goes offline in the topology
//! and its tickets are requeued to the other; restored, it rejoins.

use oshal_e2e::tailnet::Tailnet;
use oshal_e2e::{FleetSpace, Node, PrivatePostgres, PrivateRedis, Server, oshal_bin};
use serde_json::Value;
use std::time::{Duration, Instant};

const API_PORT: u16 = 7411;

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + oshal_e2e::WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Live bots per node, as the controller's topology has them.
async fn live(server: &Server, node: &str) -> usize {
    let bots = server.json("/api/v1/bots").await.unwrap();
    bots.as_array()
        .unwrap()
        .iter()
        .filter(|b| b["node"] == node && b["live"] == true)
        .count()
}

/// `oshal submit` from the client host, over the tailnet; the ticket's id.
fn submit_from(net: &Tailnet, server: &Server, prompt: &str) -> String {
    let out = net
        .command(4, oshal_bin())
        .args(["submit", prompt])
        .env("OSHAL_API", format!("http://{}:{API_PORT}", net.addr(1)))
        .env("OSHAL_API_TOKEN", &server.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "submit over the tailnet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_cross_a_wireguard_mesh_and_a_cut_node_is_requeued_then_rejoins() {
    let net = Tailnet::start(4).unwrap();
    let pg = PrivatePostgres::start_on(&net, 1).await.unwrap();
    let redis = PrivateRedis::start_on(&net, 1).await.unwrap();
    let space = FleetSpace::on(&pg.admin_url(), &redis.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hosts = serde_json::json!([
        {"name": "n1", "addresses": [net.addr(2)], "tags": ["tag:oshal-node"]},
        {"name": "n2", "addresses": [net.addr(3)], "tags": ["tag:oshal-node"]},
        {"name": "client", "addresses": [net.addr(4)]}
    ]);
    let list = dir.path().join("mesh.json");
    std::fs::write(&list, hosts.to_string()).unwrap();
    let app = oshal_core::store::postgres::as_role(&pg.admin_url(), "oshal_app").unwrap();
    let server = Server::start_on(
        &net,
        1,
        API_PORT,
        &dir.path().join("data"),
        &[
            "--postgres",
            &app,
            "--postgres-schema",
            &space.schema,
            "--redis",
            &redis.url(),
            "--redis-prefix",
            &space.prefix,
            "--mesh-static",
            list.to_str().unwrap(),
        ],
        Some(&dir.path().join("serve.log")),
    )
    .unwrap();
    server.no_investigations().await.unwrap();
    // The nodes know Redis only by its tailnet address.
    let over_mesh = format!("redis://{}:6379/", net.addr(1));
    let node_args = [
        "--redis",
        &over_mesh,
        "--redis-prefix",
        &space.prefix,
        "--bots",
        "2",
    ];
    let _n1 = Node::start_on(&net, 2, "n1", &node_args, None).unwrap();
    let _n2 = Node::start_on(&net, 3, "n2", &node_args, None).unwrap();
    until("both nodes' bots live over the mesh", async || {
        live(&server, "n1").await == 2 && live(&server, "n2").await == 2
    })
    .await;

    // The client submits over the tailnet; both nodes do work.
    let ids: Vec<String> = (0..16)
        .map(|i| submit_from(&net, &server, &format!("across the mesh {i}")))
        .collect();
    let mut by_node = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        let bot = v["bot"].as_str().unwrap();
        *by_node.entry(bot[..2].to_owned()).or_default() += 1;
    }
    assert_eq!(by_node.len(), 2, "both nodes ran tickets: {by_node:?}");
    // The controller measures each node over WireGuard.
    let mesh = server.json("/api/v1/mesh").await.unwrap();
    let n1 = mesh["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n1")
        .unwrap()
        .clone();
    assert_eq!(n1["status"], "online", "{mesh:#}");
    assert!(n1["latency_ms"].as_f64().is_some(), "{mesh:#}");
    assert_eq!(n1["bots"], 2);

    // Cut n1's link. What is routed to it meanwhile is requeued to n2
    // once its heartbeat is missed; every ticket succeeds, once charged.
    net.cut(2).unwrap();
    let during: Vec<String> = (0..16)
        .map(|i| submit_from(&net, &server, &format!("while n1 is cut {i}")))
        .collect();
    until("n1 offline in the topology", async || {
        live(&server, "n1").await == 0
    })
    .await;
    let mut requeued = 0;
    for id in &during {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert!(v["bot"].as_str().unwrap().starts_with("n2-"), "{v:#}");
        assert_eq!(
            v["ledger"].as_array().unwrap().len(),
            1,
            "charged once: {v:#}"
        );
        if v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("lost"))
        {
            requeued += 1;
        }
    }
    assert!(requeued > 0, "n1 held some of them when it was cut");
    let mesh = server.json("/api/v1/mesh").await.unwrap();
    let n1 = mesh["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n1")
        .unwrap()
        .clone();
    assert!(
        n1["latency_ms"].is_null(),
        "unreachable, not measured: {n1:#}"
    );
    assert_eq!(n1["bots"], 0);

    // Restored, n1 rejoins and takes work again.
    net.restore(2).unwrap();
    until("n1 back in the topology", async || {
        live(&server, "n1").await == 2
    })
    .await;
    let after: Vec<String> = (0..16)
        .map(|i| submit_from(&net, &server, &format!("after the cut {i}")))
        .collect();
    let mut n1_again = 0;
    for id in &after {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        n1_again += usize::from(v["bot"].as_str().unwrap().starts_with("n1-"));
    }
    assert!(n1_again > 0, "n1 ran tickets again after rejoining");
    let cost = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(cost["total"]["attempts"], 48, "every attempt charged once");
    eprintln!("{}", net.wg_show(1));
}
