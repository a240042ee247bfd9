//! `oshal soak` for a minute, as CI runs it: a controller and two nodes on
//! PostgreSQL and a Redis of the soak's own, steady load, two nodes killed
//! with SIGKILL and restarted, Redis restarted empty once; nothing lost,
//! nothing counted twice.

use std::process::Command;

#[test]
fn a_minute_of_load_kills_and_a_redis_restart_loses_nothing() {
    let out = Command::new(oshal_e2e::oshal_bin())
        .args(["soak", "--minutes", "1", "--rate", "30", "--bots", "2"])
        .args(["--postgres-admin", &oshal_e2e::postgres_admin_url()])
        .output()
        .expect("oshal soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("seconds="))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}\n{stderr}"));
    let field = |name: &str| -> u64 {
        summary
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {summary}"))
    };
    assert_eq!(field("lost"), 0, "{summary}");
    assert_eq!(field("doubled"), 0, "{summary}");
    assert_eq!(field("refused"), 0, "{summary}");
    assert_eq!(field("node_kills"), 2, "{summary}");
    assert_eq!(field("redis_restarts"), 1, "{summary}");
    assert!(field("accepted") >= 1000, "{summary}");
    assert_eq!(field("succeeded"), field("accepted"), "{summary}");
    assert!(stdout.contains("rss_kib controller:"), "{stdout}");
    eprintln!("{stdout}");
}
