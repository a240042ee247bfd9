//! The `oshal` command line: usage errors and unreachable servers give a
//! clear message and a non-zero exit. (This test also makes `cargo test
//! --workspace` build the `oshal` binary the end-to-end tests drive.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn oshal(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oshal"))
        .args(args)
        .env_remove("OSHAL_API_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = oshal(&["--help"]);
    assert_eq!(code, 0);
    for cmd in [
        "serve",
        "submit",
        "tickets",
        "ticket",
        "cancel",
        "connectors",
        "security",
        "bench",
        "openapi",
        "soak",
        "mesh",
        "health",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

#[test]
fn openapi_prints_the_committed_contract() {
    let (code, out, err) = oshal(&["openapi"]);
    assert_eq!(code, 0, "{err}");
    let kept = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../platform/openapi.json"
    ))
    .unwrap();
    assert!(
        out == kept,
        "`oshal openapi` differs from core/platform/openapi.json"
    );
}

#[test]
fn a_soak_refuses_a_duration_it_cannot_run() {
    let (code, _, err) = oshal(&["soak", "--minutes", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--minutes") && err.contains("1440"), "{err}");
}

#[test]
fn usage_errors_exit_non_zero_with_a_message() {
    let (code, _, err) = oshal(&["serve", "--bots", "many"]);
    assert_ne!(code, 0);
    assert!(err.contains("--bots"), "{err}");
    let (code, _, err) = oshal(&["serve", "--model-max-tokens", "0"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--model-max-tokens") && err.contains("1..=1000000"),
        "{err}"
    );
    let (code, _, err) = oshal(&["tickets", "--state", "asleep", "--token", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("asleep"), "{err}");
}

#[test]
fn an_unreachable_api_is_reported_plainly() {
    let (code, _, err) = oshal(&[
        "ticket",
        "0193a000-0000-7000-8000-000000000000",
        "--api",
        "http://127.0.0.1:9",
        "--token",
        "t",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the Oshal API at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn a_missing_token_says_where_it_looked() {
    let dir = std::env::temp_dir().join(format!("oshal-cli-test-{}", std::process::id()));
    let (code, _, err) = oshal(&["tickets", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no API token") && err.contains("api-token"),
        "{err}"
    );
}

/// The bench's output is a contract (scripts parse its last line); this
/// checks the shape and the accounting, not the speed.
#[test]
fn bench_prints_its_summary_line_last() {
    let (code, out, err) = oshal(&["bench", "--tickets", "300", "--bots", "3"]);
    assert_eq!(code, 0, "{err}");
    let last = out.lines().last().unwrap();
    let fields = keys_of(last);
    assert_eq!(
        fields,
        [
            "tickets",
            "ok",
            "lost",
            "tickets_per_s",
            "p50_ms",
            "p99_ms",
            "store_limit_per_s",
            "store_ratio"
        ],
        "{last}"
    );
    assert!(last.starts_with("tickets=300 ok=300 lost=0 "), "{last}");
    assert!(
        out.contains("baseline sqlite_ticket_inserts_per_s="),
        "{out}"
    );
    assert!(out.contains("ledger_rows=300"), "{out}");
    assert!(out.contains("store_limit per_s="), "{out}");
}

#[test]
fn fleet_bench_prints_its_summary_line_last_and_cleans_up() {
    let pg = std::env::var("OSHAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let redis =
        std::env::var("OSHAL_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let (code, out, err) = oshal(&[
        "bench",
        "--fleet",
        "--redis",
        &redis,
        "--postgres",
        &pg,
        "--tickets",
        "300",
        "--nodes",
        "2",
        "--bots",
        "2",
        "--sequential",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    let last = out.lines().last().unwrap();
    let fields = keys_of(last);
    assert_eq!(
        fields,
        [
            "tickets",
            "ok",
            "lost",
            "tickets_per_s",
            "p50_ms",
            "p99_ms",
            "raw_streams_per_s",
            "ratio",
            "store_limit_per_s",
            "store_ratio"
        ],
        "{last}"
    );
    assert!(last.starts_with("tickets=300 ok=300 lost=0 "), "{last}");
    assert!(out.contains("ledger_rows=300"), "{out}");
    // The limit stands on the server's durability, and says which.
    assert!(out.contains("synchronous_commit="), "{out}");
    // Bad input is refused with the flag named, before anything runs.
    let (code, _, err) = oshal(&["bench", "--fleet", "--redis", &redis]);
    assert_ne!(code, 0);
    assert!(err.contains("--postgres"), "{err}");
}

/// The keys of a `key=value key=value …` line, in order.
fn keys_of(line: &str) -> Vec<&str> {
    line.split(' ')
        .map(|kv| kv.split('=').next().unwrap())
        .collect()
}
