//! The desk's orders at a venue in a process of its own: `oshal venue`
//! behind its signed connector, its API key in OpenBao through the broker.
//! Each order is a `tool` ticket a bot runs through the gate and the
//! connector runtime; the fills are the in-process backtest's, bit for
//! bit. The venue is killed mid-session (the order due meanwhile stays
//! reconciling, then is answered once) and so is the controller (the
//! session is rebuilt from its journal and tickets and reconciled with the
//! venue): no order reaches the venue twice and the books agree.

use oshal_e2e::Server;
use oshal_e2e::outside::OpenBao;
use oshal_e2e::venue::VenueProcess;
use serde_json::{Value, json};
use std::collections::BTreeSet;

use crate::desk::{backtest_hash, call, desk_cli, signal_tickets, wait_session};

/// The venue's own record of session `id`'s orders.
async fn venue_orders(venue: &VenueProcess, id: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/accounts/{id}/orders", venue.url))
        .header("X-Api-Key", venue.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["orders"]
        .as_array()
        .unwrap()
        .clone()
}

/// The session's orders that reached the venue, by client order id, from
/// its blotter and fills; and that none reached it twice.
async fn assert_each_order_once(server: &Server, venue: &VenueProcess, id: &str) -> usize {
    let at_venue = venue_orders(venue, id).await;
    let ids: BTreeSet<&str> = at_venue
        .iter()
        .map(|o| o["order"]["client_order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), at_venue.len(), "no client order id twice");
    let blotter = desk_cli(server, &["blotter", id]);
    for f in blotter["fills"].as_array().unwrap() {
        assert!(ids.contains(f["order"].as_str().unwrap()), "{f:#}");
    }
    at_venue.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_trades_at_the_venue_process_and_rides_out_its_restart_and_the_controllers() {
    let bao = OpenBao::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut venue = VenueProcess::init(&dir.path().join("venue")).unwrap();
    venue.start().unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, &bao.root_token).unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut args: Vec<String> = [
        "--bots",
        "2",
        "--vault-addr",
        &bao.addr,
        "--vault-token-file",
        token_file.to_str().unwrap(),
        "--vault-prefix",
        &prefix,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(venue.serve_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &args).unwrap();

    // The venue's connector, signed by the publisher key `init` made.
    let connectors = server.json("/api/v1/connectors").await.unwrap();
    let connector = connectors
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "venue-paper")
        .unwrap_or_else(|| panic!("{connectors:#}"));
    assert_eq!(connector["signed"], true, "{connector:#}");
    assert_eq!(connector["enabled"], true);
    let (status, e) = call(
        &server,
        "POST",
        "/api/v1/trading/sessions",
        Some(json!({
            "strategy": {"name": "ema_cross", "fast": 5, "slow": 20},
            "instrument": "ETHUSD.SIM", "bar_seconds": 60, "bars": 120, "venue": "nowhere"
        })),
    )
    .await;
    assert_eq!(status, 422, "{e:#}");
    assert_eq!(e["error"]["field"], "venue");

    // The key goes to the broker; the bots get grants, never the key.
    let (status, e) = call(
        &server,
        "PUT",
        "/api/v1/connectors/venue-paper/credential",
        Some(json!({"api_key": venue.api_key()})),
    )
    .await;
    assert_eq!(status, 204, "{e:#}");
    for bot in ["bot-01", "bot-02"] {
        let (status, e) = call(
            &server,
            "POST",
            "/api/v1/grants",
            Some(json!({
                "bot": bot, "connector": "venue-paper",
                "operations": ["submit_order", "list_orders"],
                "scopes": ["orders:read", "orders:write"]
            })),
        )
        .await;
        assert_eq!(status, 201, "{e:#}");
    }

    // A venue elsewhere takes no resting order: limit entries are refused.
    let (status, e) = call(
        &server,
        "POST",
        "/api/v1/trading/sessions",
        Some(json!({
            "strategy": {"name": "ema_cross", "fast": 5, "slow": 20},
            "instrument": "ETHUSD.SIM", "bar_seconds": 60, "bars": 120,
            "venue": "venue-paper", "entries": "limit"
        })),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (422, Some("entries")),
        "{e:#}"
    );

    // A whole session at the venue: the backtest's fills, bit for bit.
    let opened = desk_cli(
        &server,
        &[
            "open",
            "--strategy",
            "ema-cross",
            "--seed",
            "7",
            "--bars",
            "480",
            "--venue",
            "venue-paper",
        ],
    );
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["spec"]["venue"], "venue-paper");
    let s = wait_session(&server, &id, |v| v["status"] == "finished").await;
    assert_eq!(
        s["fill_hash"].as_str().unwrap(),
        backtest_hash("7", "480"),
        "the venue process gives the fills of the venue in process: {s:#}"
    );
    assert!(s["flow"]["fills"].as_u64().unwrap() > 0);
    assert_eq!(s["reconciling"], json!([]));
    let sent = assert_each_order_once(&server, &venue, &id).await;
    assert!(sent > 0);
    // Each order that reached the venue is a tool ticket a bot ran; its
    // answer is the venue's report, and no ticket holds the key.
    let blotter = desk_cli(&server, &["blotter", &id]);
    let with_orders: Vec<&Value> = blotter["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["order_tickets"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(with_orders.len(), sent);
    let ticket = with_orders[0]["order_tickets"][0].as_str().unwrap();
    let t = server
        .json(&format!("/api/v1/tickets/{ticket}"))
        .await
        .unwrap();
    assert_eq!(
        (t["kind"].as_str(), t["state"].as_str()),
        (Some("tool"), Some("succeeded"))
    );
    let answer: Value = serde_json::from_str(t["result"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        answer["tool"]["body"]["client_order_id"], with_orders[0]["order"],
        "{answer:#}"
    );
    let every = serde_json::to_string(&server.all_tickets().await.unwrap()).unwrap();
    assert!(
        !every.contains(venue.api_key()),
        "no ticket carries the venue's key"
    );

    // A paced session; the venue is killed while it runs.
    let opened = desk_cli(
        &server,
        &[
            "open",
            "--strategy",
            "ema-cross",
            "--seed",
            "11",
            "--bars",
            "600",
            "--speed",
            "1200",
            "--venue",
            "venue-paper",
        ],
    );
    let id = opened["id"].as_str().unwrap().to_owned();
    wait_session(&server, &id, |v| v["flow"]["fills"].as_u64().unwrap() > 0).await;
    venue.kill9();
    let stuck = wait_session(&server, &id, |v| {
        v["reconciling"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let order = stuck["reconciling"][0]["order"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its outcome is unknown: it is not assumed filled, nor anything after it.
    let quotes = stuck["quotes"].as_u64().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let still = server
        .json(&format!("/api/v1/trading/sessions/{id}"))
        .await
        .unwrap();
    assert_eq!(still["quotes"], quotes, "the desk waits for the report");
    assert_eq!(still["reconciling"][0]["order"], order.as_str());
    venue.start().unwrap();
    let answered = wait_session(&server, &id, |v| {
        v["reconciliations"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["reason"] == "retried_order"))
    })
    .await;
    let r = answered["reconciliations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "retried_order")
        .unwrap();
    assert_eq!(r["differences"], json!([]), "{r:#}");
    assert!(r["orders"].as_u64().unwrap() > 0);

    // The controller is killed while the session runs, and comes back.
    server.kill9();
    let server = Server::start(&data, &args).unwrap();
    let done = wait_session(&server, &id, |v| v["status"] == "finished").await;
    assert_eq!(
        done["fill_hash"].as_str().unwrap(),
        backtest_hash("11", "600"),
        "through both restarts, the backtest's fills: {done:#}"
    );
    let restart = done["reconciliations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "restart")
        .unwrap_or_else(|| panic!("{done:#}"));
    assert_eq!(restart["differences"], json!([]), "{restart:#}");
    assert_each_order_once(&server, &venue, &id).await;
    for (key, tickets) in signal_tickets(&server, &id).await {
        assert_eq!(tickets.len(), 1, "{key} asked for twice");
    }
}
