//! The Security Center end to end: the real `oshal serve` (local mode, and
//! as a fleet controller on PostgreSQL), driven over HTTP and by the
//! `oshal security` CLI.

use anyhow::Result;
use std::process::Command;

const GITHUB: &str = "ghp_E2eT0kenN0tR3alAbCdEfGhIjKlMnOpQrStU";

fn cli(server: &oshal_e2e::Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(oshal_e2e::oshal_bin())
        .arg("security")
        .args(["--api", &server.url, "--token", &server.token])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn control<'a>(controls: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    controls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

#[tokio::test]
async fn local_mode_scans_files_tickets_and_proves_its_surfaces_over_http_and_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let extra = dir.path().join("etc");
    std::fs::create_dir_all(&extra)?;
    std::fs::write(
        extra.join("deploy.log"),
        format!("10:00:01 WARN pushing with {GITHUB}\n"),
    )?;
    let mut server = oshal_e2e::Server::start(
        &data,
        &[
            "--bots",
            "2",
            "--security-scan-every-min",
            "0",
            "--security-scan-path",
            extra.to_str().unwrap(),
        ],
    )?;

    // Deny by default: the token is required on every security route.
    for path in [
        "/api/v1/security/controls",
        "/api/v1/security/findings",
        "/api/v1/security/sarif",
    ] {
        let r = server
            .raw()
            .get(format!("{}{path}", server.url))
            .send()
            .await?;
        assert_eq!(r.status(), 401, "{path}");
    }
    let before = server.json("/api/v1/security/controls").await?;
    assert_eq!(control(&before, "tenant-isolation")["status"], "never_run");

    // A secret in a ticket's prompt is refused at the door: it reaches no
    // bot, no model and no store, and the refusal does not repeat it.
    let r = server
        .post("/api/v1/tickets")
        .json(&serde_json::json!({
            "kind": "chat",
            "payload": {"prompt": format!("deploy with token {GITHUB} please")},
        }))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let refusal = r.text().await?;
    assert!(!refusal.contains(GITHUB), "{refusal}");
    let refusal: serde_json::Value = serde_json::from_str(&refusal)?;
    assert_eq!(refusal["error"]["field"], "payload.prompt", "{refusal:#}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("github-token"),
        "{refusal:#}"
    );
    assert!(server.all_tickets().await?.is_empty());

    let sarif_file = dir.path().join("scan.sarif");
    let (code, out, err) = cli(&server, &["scan", "--sarif", sarif_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let mut objects: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["rule"].as_str().unwrap(),
                f["object"].as_str().unwrap()
            )
        })
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        [format!(
            "secrets.exposed file {} (github-token)",
            extra.join("deploy.log").display()
        )],
        "{report:#}"
    );
    assert_eq!(report["tickets_filed"], 1);

    // The controls board: what holds is proven live, with numbers.
    let controls = server.json("/api/v1/security/controls").await?;
    let surfaces = control(&controls, "authenticated-surfaces");
    assert_eq!(surfaces["status"], "proven", "{surfaces:#}");
    assert!(
        surfaces["summary"].as_str().unwrap().contains(&{
            // Every gated operation of the route table, with and without
            // a wrong token (it was one route).
            let n = oshal_core::api::routes::ALL.len() - 1;
            format!(
                "{}/{} unauthenticated probes refused with 401 ({n} routes)",
                2 * n,
                2 * n
            )
        }),
        "{surfaces:#}"
    );
    assert_eq!(control(&controls, "fail-closed")["status"], "proven");
    assert_eq!(control(&controls, "connector-trust")["status"], "proven");
    assert_eq!(
        control(&controls, "tenant-isolation")["status"],
        "not_applicable"
    );
    let hygiene = control(&controls, "secret-hygiene");
    assert_eq!(hygiene["status"], "failing");
    assert_eq!(hygiene["open_findings"], 1);

    // The SARIF file the CLI wrote, and the export route, hold the findings
    // and never the secret.
    let sarif: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif_file)?)?;
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 1);
    let exported = server.get("/api/v1/security/sarif").send().await?;
    assert_eq!(exported.headers()["content-type"], "application/sarif+json");
    let exported = exported.text().await?;
    for text in [
        exported.as_str(),
        &out,
        &std::fs::read_to_string(&sarif_file)?,
    ] {
        assert!(!text.contains(GITHUB));
    }

    // Each finding's ticket was triaged by a bot.
    for f in report["findings"].as_array().unwrap() {
        let t = server.wait_terminal(f["ticket"].as_str().unwrap()).await?;
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert!(!t.to_string().contains(GITHUB));
    }

    // Bad input names its field.
    for (query, field) in [("?state=bogus", "state"), ("?limit=0", "limit")] {
        let r = server
            .get(&format!("/api/v1/security/findings{query}"))
            .send()
            .await?;
        assert_eq!(r.status(), 422, "{query}");
        let body: serde_json::Value = r.json().await?;
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let id = report["findings"][0]["id"].as_str().unwrap().to_owned();
    let (code, _, err) = cli(
        &server,
        &["suppress", &id, "--reason", "known", "--days", "0"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("days"), "{err}");
    let r = server
        .post(&format!("/api/v1/security/findings/{id}/suppress"))
        .json(&serde_json::json!({"reason": "rotated", "days": 7, "by": "me"}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let (code, out, err) = cli(
        &server,
        &[
            "suppress",
            &id,
            "--reason",
            "rotated on 2026-11-21",
            "--days",
            "7",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let suppressed: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(suppressed["state"], "suppressed");
    assert_eq!(suppressed["suppression"]["reason"], "rotated on 2026-11-21");

    // Another scanner's SARIF lands in the same findings and tickets.
    let trivy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/platform/tests/fixtures/trivy.sarif.json");
    let (code, out, err) = cli(&server, &["import", trivy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let imported: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(imported[0]["source"], "trivy");
    assert_eq!(imported[0]["new"], 3);
    let r = server
        .post("/api/v1/security/sarif")
        .header("content-type", "application/json")
        .body("{\"version\": \"2.1.0\", \"runs\": [{}]}")
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["error"]["field"], "runs[0].tool", "{body}");
    let trivy_open = server
        .json("/api/v1/security/findings?source=trivy&state=open")
        .await?;
    assert_eq!(trivy_open.as_array().unwrap().len(), 3);

    server.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_fleet_controller_proves_tenant_isolation_and_least_privilege_live() -> Result<()> {
    let space = oshal_e2e::FleetSpace::new().await?;
    let dir = tempfile::tempdir()?;
    let mut server = space.serve(dir.path())?;
    // Two tenants with data, so the canary has something to miss.
    for tenant in ["acme", "globex"] {
        let r = server
            .post("/api/v1/tickets")
            .json(
                &serde_json::json!({"kind": "chat", "payload": {"prompt": "hi"}, "tenant": tenant}),
            )
            .send()
            .await?;
        assert!(r.status().is_success(), "{}", r.text().await?);
    }
    let r = server.post("/api/v1/security/scans").send().await?;
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await?;
    let controls = server.json("/api/v1/security/controls").await?;
    let isolation = control(&controls, "tenant-isolation");
    assert_eq!(isolation["status"], "proven", "{isolation:#} {report:#}");
    let summary = isolation["summary"].as_str().unwrap();
    assert!(
        summary.contains("RLS forced 6/6 tenant tables"),
        "{summary}"
    );
    assert!(summary.contains("canary 0 rows"), "{summary}");
    assert!(summary.contains("real tenants"), "{summary}");
    let privilege = control(&controls, "least-privilege");
    assert_eq!(privilege["status"], "proven", "{privilege:#}");
    assert!(
        privilege["summary"]
            .as_str()
            .unwrap()
            .contains("oshal_app owns 0 objects"),
        "{privilege:#}"
    );
    // No findings of the database checks.
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["rule"].as_str().unwrap().starts_with("pg.")),
        "{report:#}"
    );
    server.stop()?;
    space.cleanup().await?;
    Ok(())
}
