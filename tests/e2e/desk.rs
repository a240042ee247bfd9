//! The trading desk live: a paper session opened with `oshal desk open`
//! trades on signals the bots make as `signal` tickets, in local mode and
//! as a fleet controller whose bots run in `oshal node`. Its fills hash to
//! what an in-process backtest of the same seed prints; every fill leads
//! to its signal, the signal to its ticket and model call, and the recap's
//! model spend is the tickets' ledger. A kill switch pulled mid-session is
//! journalled: after a `kill -9` and a restart the session is rebuilt with
//! the same kill and the same fills, and no signal ticket twice.

use oshal_e2e::{FleetSpace, Server, oshal_bin};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// `oshal desk …` against `server` with the operator's token.
pub(crate) fn desk_cli(server: &Server, args: &[&str]) -> Value {
    server.cli(&[&["desk"], args].concat())
}

/// The fill hash `oshal trading backtest` prints for an EMA cross.
pub(crate) fn backtest_hash(seed: &str, bars: &str) -> String {
    let out = Command::new(oshal_bin())
        .args([
            "trading",
            "backtest",
            "--strategy",
            "ema-cross",
            "--seed",
            seed,
            "--bars",
            bars,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("fill_hash="))
        .unwrap_or_else(|| panic!("no fill_hash in {stdout}"))
        .to_owned()
}

/// Polls session `id` until `done` holds of it.
pub(crate) async fn wait_session(
    server: &Server,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = server
            .json(&format!("/api/v1/trading/sessions/{id}"))
            .await
            .unwrap();
        assert_ne!(v["status"], "failed", "{v:#}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "session {id} stuck: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn call(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = server
        .raw()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(&server.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The signal tickets of session `id`, by idempotency key.
pub(crate) async fn signal_tickets(server: &Server, id: &str) -> BTreeMap<String, Vec<Value>> {
    let prefix = format!("desk/{id}/");
    let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in server.all_tickets().await.unwrap() {
        if let Some(key) = t["idempotency_key"]
            .as_str()
            .filter(|k| k.starts_with(&prefix))
        {
            by_key.entry(key.to_owned()).or_default().push(t);
        }
    }
    by_key
}

/// A whole unpaced session: its fills are the backtest's, each fill leads
/// to its signal and ticket, and the recap's sums agree.
async fn a_session_trades_on_the_bots_signals(server: &Server, bars: u32) -> String {
    let bars_arg = bars.to_string();
    let opened = desk_cli(
        server,
        &[
            "open",
            "--strategy",
            "ema-cross",
            "--seed",
            "7",
            "--bars",
            &bars_arg,
        ],
    );
    let id = opened["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ds-"), "{opened:#}");
    assert_eq!(opened["tenant"], "default");

    let s = wait_session(server, &id, |v| v["status"] == "finished").await;
    let flow = &s["flow"];
    // EMA 5/20 reads 21 bars; the last bar never closes within the session.
    assert_eq!(flow["signals"], bars - 21, "{s:#}");
    assert_eq!(flow["missed"], 0);
    assert!(
        flow["fills"].as_u64().unwrap() > 0,
        "the session trades: {s:#}"
    );
    assert_eq!(s["position"]["ledger_imbalance"], 0);
    assert_eq!(s["quotes"], u64::from(bars) * 60);
    assert_eq!(
        s["fill_hash"].as_str().unwrap(),
        backtest_hash("7", &bars_arg),
        "live on the bots' signals, the same fills as the backtest"
    );

    let blotter = desk_cli(server, &["blotter", &id]);
    let signals = blotter["signals"].as_array().unwrap();
    assert_eq!(signals.len() as u64, flow["signals"].as_u64().unwrap());
    let by_id: BTreeMap<&str, &Value> = signals
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    // Every fill leads to its order, its signal and the signal's ticket.
    let mut followed = BTreeSet::new();
    for f in blotter["fills"].as_array().unwrap() {
        let signal = by_id[f["signal"].as_str().unwrap()];
        assert_eq!(signal["order"], f["order"], "{f:#}");
        assert!(
            signal["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["pass"] == true),
            "a filled order passed every check: {signal:#}"
        );
        followed.insert(signal["ticket"].as_str().unwrap().to_owned());
    }
    for ticket in followed.iter().take(3) {
        let t = server
            .json(&format!("/api/v1/tickets/{ticket}"))
            .await
            .unwrap();
        assert_eq!(t["kind"], "signal");
        assert_eq!(t["state"], "succeeded");
        let signal = signals.iter().find(|s| s["ticket"] == *ticket).unwrap();
        assert_eq!(signal["cost_nusd"], t["cost"]["cost_nusd"], "{t:#}");
        assert_eq!(signal["bot"], t["bot"]);
        let answer: Value = serde_json::from_str(t["result"]["text"].as_str().unwrap()).unwrap();
        assert_eq!(signal["inputs_hash"], answer["insight"]["inputs_hash"]);
        assert_eq!(signal["explanation"], answer["explanation"]);
    }

    // A fill's order and what the desk's ledger posted for it: the
    // reservation, the trade and its commission, the release; the
    // postings balance.
    let order = blotter["fills"][0]["order"].as_str().unwrap();
    let orders = desk_cli(server, &["orders", &id, "--order", order]);
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders:#}");
    let o = &orders[0];
    assert_eq!(o["id"], order);
    assert!(o["source"].as_str().unwrap().starts_with("S-"), "{o:#}");
    let reasons: Vec<&str> = o["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    for want in ["reserve", "trade", "commission", "release"] {
        assert!(reasons.contains(&want), "{want} in {reasons:?}");
    }
    let all = desk_cli(server, &["orders", &id]);
    assert_eq!(
        all.as_array().unwrap().len() as u64,
        s["flow"]["orders"].as_u64().unwrap()
    );
    let (status, e) = call(
        server,
        "GET",
        &format!("/api/v1/trading/sessions/{id}/orders?order=S-1"),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (422, Some("order")),
        "{e:#}"
    );

    // The recap nets the model spend the tickets' ledger holds.
    let recap = desk_cli(server, &["recap", &id]);
    let cost: i64 = signals
        .iter()
        .map(|s| s["cost_nusd"].as_i64().unwrap())
        .sum();
    assert!(cost > 0, "the bots' model calls are priced");
    let total = &recap["total"];
    assert_eq!(total["signals"], flow["signals"]);
    let usd = |v: &Value| v.as_f64().unwrap();
    assert!((usd(&total["signal_cost_usd"]) - cost as f64 / 1e9).abs() < 1e-9);
    let bots = recap["by_bot"].as_array().unwrap();
    assert!(!bots.is_empty());
    assert_eq!(
        bots.iter()
            .map(|b| b["signals"].as_u64().unwrap())
            .sum::<u64>(),
        flow["signals"].as_u64().unwrap()
    );
    let net: f64 = bots.iter().map(|b| usd(&b["net_usd"])).sum();
    assert!((net - usd(&total["net_usd"])).abs() < 1e-6, "{recap:#}");

    // Each signal was asked for once.
    for (key, tickets) in signal_tickets(server, &id).await {
        assert_eq!(tickets.len(), 1, "{key}");
    }

    // Its market is over: the kill switch has nothing left to act on.
    let (status, e) = call(
        server,
        "POST",
        &format!("/api/v1/trading/sessions/{id}/kill"),
        Some(json!({"level": "flatten", "reason": "end of day"})),
    )
    .await;
    assert_eq!(status, 409, "{e:#}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_session_trades_on_signal_tickets_and_survives_a_kill_9_with_its_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let first = a_session_trades_on_the_bots_signals(&server, 480).await;

    // Another tenant's token sees none of it and cannot act on it.
    let acme = server.cli(&["tokens", "create", "--tenant", "acme", "--role", "operator"]);
    let acme = acme["token"].as_str().unwrap();
    let as_acme = |method: &str, path: String, body: Option<Value>| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = server
            .raw()
            .request(method, format!("{}{path}", server.url))
            .bearer_auth(acme);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, list) = as_acme("GET", "/api/v1/trading/sessions".into(), None).await;
    assert_eq!((status, list), (200, json!([])));
    for tail in ["", "/blotter", "/recap"] {
        let (status, _) = as_acme(
            "GET",
            format!("/api/v1/trading/sessions/{first}{tail}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "{tail}");
    }
    let kill = json!({"level": "halt_entries", "reason": "not mine"});
    let (status, _) = as_acme(
        "POST",
        format!("/api/v1/trading/sessions/{first}/kill"),
        Some(kill),
    )
    .await;
    assert_eq!(status, 404);
    let spec = json!({
        "strategy": {"name": "breakout", "window": 20}, "instrument": "ETHUSD.SIM",
        "bar_seconds": 60, "bars": 30, "tenant": "default"
    });
    let (status, _) = as_acme("POST", "/api/v1/trading/sessions".into(), Some(spec)).await;
    assert_eq!(
        status, 403,
        "a tenant's token opens sessions for its tenant alone"
    );

    // Bad input, each refused by its field.
    for (body, field) in [
        (json!({"bars": 10}), "bars"),
        (json!({"instrument": "DOGE.SIM"}), "instrument"),
        (json!({"strategy": {"name": "martingale"}}), "strategy"),
        (json!({"speed": 100_000}), "speed"),
        (json!({"bars": 2000, "bar_seconds": 3600}), "bars"),
        (json!({"tenant": "nobody"}), "tenant"),
    ] {
        let mut spec = json!({
            "strategy": {"name": "ema_cross", "fast": 5, "slow": 20},
            "instrument": "ETHUSD.SIM", "bar_seconds": 60, "bars": 120
        });
        for (k, v) in body.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (status, e) = call(&server, "POST", "/api/v1/trading/sessions", Some(spec)).await;
        assert_eq!(status, 422, "{body}: {e:#}");
        assert_eq!(e["error"]["field"], field, "{body}: {e:#}");
    }
    let (status, _) = call(
        &server,
        "GET",
        "/api/v1/trading/sessions/ds-000000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A paced session (ten simulated minutes a second), killed mid-way.
    let opened = desk_cli(
        &server,
        &[
            "open",
            "--strategy",
            "ema-cross",
            "--seed",
            "11",
            "--bars",
            "1000",
            "--speed",
            "600",
        ],
    );
    let id = opened["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/trading/sessions/{id}/kill");
    let (status, e) = call(
        &server,
        "POST",
        &path,
        Some(json!({"level": "flatten", "reason": " "})),
    )
    .await;
    assert_eq!(status, 422, "{e:#}");
    assert_eq!(e["error"]["field"], "reason");
    let open = |v: &Value| {
        v["position"]["quantity"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    wait_session(&server, &id, |v| {
        v["flow"]["fills"].as_u64().unwrap() > 0 && open(v) != 0.0
    })
    .await;
    let kill = desk_cli(
        &server,
        &[
            "kill",
            &id,
            "--level",
            "flatten",
            "--reason",
            "drawdown limit",
        ],
    );
    assert_eq!(kill["id"], "K-1", "{kill:#}");
    assert_eq!(kill["by"], "operator");
    let flat = wait_session(&server, &id, |v| v["kills"][0]["flat"] == true).await;
    assert_eq!(flat["trading_state"], "REDUCING");
    assert_eq!(open(&flat), 0.0);
    let hash = flat["fill_hash"].as_str().unwrap().to_owned();
    let fills = flat["flow"]["fills"].clone();
    // Flat and REDUCING: every later order would open, so none fills.
    let later = wait_session(&server, &id, |v| {
        v["sim_ms"].as_i64().unwrap() > flat["sim_ms"].as_i64().unwrap() + 30 * 60_000
    })
    .await;
    assert_eq!(later["fill_hash"], hash);
    // One bot's signals halted on top: recorded, and rebuilt after the kill.
    let halted = desk_cli(
        &server,
        &[
            "state",
            &id,
            "--state",
            "halted",
            "--bot",
            "bot-02",
            "--reason",
            "stale model",
        ],
    );
    assert_eq!(halted["id"], "T-1", "{halted:#}");
    assert_eq!(halted["state"], "HALTED");

    // kill -9, and back: the session is rebuilt from its journal and its
    // tickets, the kill at the same point, the same fills.
    server.kill9();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    // Past the point of the last control (the bot's state, set after
    // `later` was read).
    let again = wait_session(&server, &id, |v| {
        v["sim_ms"].as_i64().unwrap() >= later["sim_ms"].as_i64().unwrap()
            && v["state_changes"].as_array().is_some_and(|c| c.len() == 1)
    })
    .await;
    assert_eq!(again["kills"].as_array().unwrap().len(), 1, "{again:#}");
    assert_eq!(again["kills"][0]["id"], "K-1");
    assert_eq!(again["kills"][0]["reason"], "drawdown limit");
    assert_eq!(again["kills"][0]["at_ms"], kill["at_ms"]);
    assert_eq!(again["fill_hash"], hash, "the same fills, none twice");
    assert_eq!(
        again["bot_states"],
        json!([{"bot": "bot-02", "state": "HALTED"}]),
        "{again:#}"
    );
    assert_eq!(again["state_changes"][0]["reason"], "stale model");
    assert_eq!(again["flow"]["fills"], fills);
    for (key, tickets) in signal_tickets(&server, &id).await {
        assert_eq!(tickets.len(), 1, "{key} asked for twice");
    }
    // Closed: it stops where it is; its switch has nothing left to act on.
    let closed = desk_cli(&server, &["close", &id, "--reason", "end of drill"]);
    assert_eq!(closed["status"], "closed", "{closed:#}");
    assert_eq!(closed["closed"], "by operator: end of drill");
    let (status, _) = call(
        &server,
        "POST",
        &format!("/api/v1/trading/sessions/{id}/state"),
        Some(json!({"state": "ACTIVE", "reason": "too late"})),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_session_trades_on_signals_from_node_bots() {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let _node = space.node("n1", &["--bots", "2"]).unwrap();
    a_session_trades_on_the_bots_signals(&server, 480).await;
    drop(server);
    space.cleanup().await.unwrap();
}
