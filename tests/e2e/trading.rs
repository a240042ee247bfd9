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
