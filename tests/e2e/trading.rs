//! The trading desk from the command line: a backtest over a seeded day
//! prints its fill stream's hash, a replay with `--expect-hash` checks it
//! bit for bit, and a diverging replay or a bad instrument is refused.

use oshal_e2e::oshal_bin;
use std::process::{Command, Output};

fn oshal(args: &[&str]) -> Output {
    Command::new(oshal_bin()).args(args).output().unwrap()
}

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {stdout}"))
}

#[test]
fn a_seeded_backtest_replays_bit_for_bit_and_a_divergence_is_refused() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "trading",
            "backtest",
            "--seed",
            "7",
            "--strategy",
            "breakout",
        ];
        args.extend_from_slice(extra);
        oshal(&args)
    };
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8(first.stdout).unwrap();
    assert_eq!(field(&out, "events"), "86400");
    assert!(field(&out, "fills").parse::<u32>().unwrap() > 0, "{out}");
    assert_eq!(field(&out, "ledger_imbalance"), "0");
    // The recap: net P&L and the figures a practitioner reads first.
    field(&out, "net_pnl_usd").parse::<f64>().unwrap();
    field(&out, "max_drawdown_usd").parse::<f64>().unwrap();
    assert!(
        out.contains("win_rate=") && out.contains("sharpe="),
        "{out}"
    );
    let hash = field(&out, "fill_hash").to_owned();
    assert_eq!(hash.len(), 64);

    let replay = run(&["--expect-hash", &hash]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(
        field(&String::from_utf8(replay.stdout).unwrap(), "fill_hash"),
        hash
    );

    let diverged = run(&["--expect-hash", &"0".repeat(64)]);
    assert!(!diverged.status.success());
    let err = String::from_utf8_lossy(&diverged.stderr);
    assert!(err.contains("the replay diverged"), "{err}");

    let other = oshal(&[
        "trading",
        "backtest",
        "--seed",
        "8",
        "--strategy",
        "breakout",
    ]);
    let other = String::from_utf8(other.stdout).unwrap();
    assert_ne!(
        field(&other, "fill_hash"),
        hash,
        "another seed, other fills"
    );

    let bad = oshal(&["trading", "backtest", "--instrument", "DOGE.SIM"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--instrument") && err.contains("ETHUSD.SIM"),
        "{err}"
    );
}

/// A bot makes a signal as a ticket: the insight is a pure function of the
/// payload (the same payload, the same inputs hash), the model's
/// explanation is priced in the ledger, and what the desk does not know is
/// refused at submission, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_makes_a_signal_ticket_and_a_bad_one_is_refused_by_field() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server = oshal_e2e::Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let payload = json!({
        "strategy": {"name": "ema_cross", "fast": 5, "slow": 20},
        "instrument": "ETHUSD.SIM", "seed": 7, "bar_seconds": 60, "bars": 120
    });
    let mut insights = Vec::new();
    for _ in 0..2 {
        let r = server
            .post("/api/v1/tickets")
            .json(&json!({"kind": "signal", "payload": payload}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let v = server.wait_terminal(&id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert_eq!(
            v["ledger"].as_array().unwrap().len(),
            1,
            "the explanation is priced"
        );
        let result: serde_json::Value =
            serde_json::from_str(v["result"]["text"].as_str().unwrap()).unwrap();
        assert!(!result["explanation"].as_str().unwrap().is_empty());
        assert_eq!(result["insight"]["instrument"], "ETHUSD.SIM");
        insights.push(result["insight"].clone());
    }
    assert_eq!(
        insights[0], insights[1],
        "the same payload, the same insight"
    );

    for (bad, field) in [
        (
            json!({"strategy": {"name": "martingale"}}),
            "payload.strategy",
        ),
        (
            json!({"strategy": {"name": "ema_cross", "fast": 30, "slow": 20}}),
            "payload.strategy",
        ),
        (json!({"instrument": "DOGE.SIM"}), "payload.instrument"),
        (json!({"bars": 5}), "payload.bars"),
        (json!({"bars": 2000, "bar_seconds": 3600}), "payload.bars"),
    ] {
        let mut p = payload.clone();
        for (k, v) in bad.as_object().unwrap() {
            p[k] = v.clone();
        }
        let r = server
            .post("/api/v1/tickets")
            .json(&json!({"kind": "signal", "payload": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{bad}: {e:#}");
    }
}
