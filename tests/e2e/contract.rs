//! The API against its own contract: Schemathesis (PyPI) generates requests
//! from `core/platform/openapi.json` — valid ones, invalid ones, and chains
//! that follow the contract's links (submit, then read, cancel and approve
//! what came back) — and checks every answer: no 5xx, every status and body
//! as the contract says, every refusal in the one JSON error shape, no route
//! answering without the token. Once against a local `oshal serve`, once
//! against a fleet controller on the real PostgreSQL and Redis with a node.
//! `scripts/test` installs Schemathesis and sets `OSHAL_SCHEMATHESIS`.

use oshal_e2e::{FleetSpace, Server};
use std::path::Path;
use std::process::Command;

/// What one Schemathesis run found.
#[derive(Debug)]
struct Run {
    cases: u64,
    report: serde_json::Value,
    output: String,
}

/// Runs Schemathesis against `server` with `tests/schemathesis.toml`, `seed`
/// making it repeatable.
fn schemathesis(server: &Server, seed: u64) -> Run {
    let bin = std::env::var("OSHAL_SCHEMATHESIS")
        .expect("OSHAL_SCHEMATHESIS is unset: scripts/test installs Schemathesis and sets it");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = tempfile::tempdir().unwrap();
    let report = reports.path().join("run.json");
    let out = Command::new(bin)
        .arg("--config-file")
        .arg(root.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("../core/platform/openapi.json"))
        .args(["--url", &server.url])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.token),
        ])
        .args(["--checks", "all"])
        .args(["--max-examples", "25", "--seed", &seed.to_string()])
        .args(["--workers", "1", "--request-timeout", "20"])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = std::fs::read_to_string(&report)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no report ({}):\n{output}", out.status));
    Run {
        cases: report["test_cases"]["generated"].as_u64().unwrap_or(0),
        report,
        output,
    }
}

fn assert_clean(run: &Run, what: &str) {
    let r = &run.report;
    let clean = r["exit_code"] == 0
        && r["complete"] == true
        && r["failures"].as_array().is_some_and(Vec::is_empty)
        && r["errors"].as_array().is_some_and(Vec::is_empty)
        && r["operations"]["tested"] == r["operations"]["total"];
    assert!(clean, "{what}: {}\n{}", r["failures"], run.output);
    assert!(
        run.cases >= 1000,
        "{what}: only {} cases ran\n{}",
        run.cases,
        run.output
    );
    eprintln!(
        "{what}: {} cases over {} operations, 0 failures",
        run.cases, r["operations"]["tested"]
    );
}

#[tokio::test]
async fn a_local_server_keeps_its_contract_under_fuzzing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let run = schemathesis(&server, 1);
    assert_clean(&run, "local serve");
}

#[tokio::test]
async fn a_fleet_controller_keeps_its_contract_under_fuzzing() {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let node = space.node("node-a", &["--bots", "2"]).unwrap();
    let run = schemathesis(&server, 2);
    drop(node);
    drop(server);
    space.cleanup().await.unwrap();
    assert_clean(&run, "fleet controller");
}

/// The refusals that used to leave in another shape (plain text, or an
/// empty 405), each now in the one JSON error shape naming what it can.
#[tokio::test]
async fn every_refusal_is_the_one_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "1"]).unwrap();
    let http = server.raw();
    let cases: [(reqwest::Method, &str, u16, &str, Option<&str>); 8] = [
        (
            reqwest::Method::GET,
            "/api/v1/tickets?state=queued&state=dead",
            422,
            "invalid",
            Some("state"),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/security/findings?colour=red",
            422,
            "invalid",
            Some("colour"),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/events",
            400,
            "malformed",
            Some("upgrade"),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tickets/%FF",
            422,
            "invalid",
            Some("id"),
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/tickets",
            405,
            "method_not_allowed",
            None,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tickets?kind=%00",
            422,
            "invalid",
            Some("kind"),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/grants?id=%00",
            422,
            "invalid",
            Some("id"),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tickets?tenant=",
            422,
            "invalid",
            Some("tenant"),
        ),
    ];
    for (method, path, status, kind, field) in cases {
        let r = http
            .request(method.clone(), format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        if status == 405 {
            let allow = r.headers()["allow"].to_str().unwrap().to_owned();
            assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        }
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["kind"], kind, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        match field {
            Some(f) => assert_eq!(body["error"]["field"], f, "{method} {path}: {body}"),
            None => assert!(body["error"].get("field").is_none(), "{body}"),
        }
    }
    // The contract is served, behind the token like everything but health.
    let r = http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let contract = server.json("/api/v1/openapi.json").await.unwrap();
    assert_eq!(contract["openapi"], "3.1.0");
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/platform/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(contract, kept, "the server serves the committed contract");
}
