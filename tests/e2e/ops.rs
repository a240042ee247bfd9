//! The operations loop's monitor with the real thing: Debian's Prometheus
//! scrapes `oshal serve`'s `/metrics` with the API token, a rule over
//! Oshal's own counter fires, and Debian's Alertmanager posts it to
//! Oshal's webhook, where it becomes an alert and opens an incident.
//! Both read the token from Oshal's own token file (mode 0600), never
//! from their configuration. A malformed payload is refused with the field
//! named; an alert of it that is malformed is refused alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oshal_e2e::{Server, free_port};
use serde_json::{Value, json};

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(bin: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{bin} is missing: scripts/test installs Debian's prometheus and prometheus-alertmanager"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_owned()
}

fn spawn(bin: &str, args: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    Killed(
        Command::new(which(bin))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_and_alertmanager_reach_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--bots", "1"]).unwrap();
    let oshal = server.url.trim_start_matches("http://").to_owned();
    let token_file = data.join("api-token");
    let (prom_port, am_port) = (free_port(), free_port());
    let cfg = dir.path();
    std::fs::write(
        cfg.join("rules.yml"),
        r#"
groups:
  - name: oshal
    interval: 1s
    rules:
      - alert: OshalTicketsSubmitted
        expr: oshal_tickets_submitted_total > 0
        labels: { severity: warning }
        annotations: { summary: "tickets were submitted" }
"#,
    )
    .unwrap();
    std::fs::write(
        cfg.join("prometheus.yml"),
        format!(
            r#"
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: oshal
    authorization: {{ credentials_file: "{token}" }}
    static_configs: [{{ targets: ["{oshal}"] }}]
alerting:
  alertmanagers:
    - static_configs: [{{ targets: ["127.0.0.1:{am_port}"] }}]
"#,
            rules = cfg.join("rules.yml").display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("am.yml"),
        format!(
            r#"
route: {{ receiver: oshal, group_wait: 1s, group_interval: 1s, repeat_interval: 1h }}
receivers:
  - name: oshal
    webhook_configs:
      - url: "{url}/api/v1/ops/alertmanager"
        send_resolved: true
        http_config: {{ authorization: {{ credentials_file: "{token}" }} }}
"#,
            url = server.url,
            token = token_file.display(),
        ),
    )
    .unwrap();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", cfg.join("am.yml").display()),
            format!("--storage.path={}", cfg.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &cfg.join("am.log"),
    );
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", cfg.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", cfg.join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=debug".into(),
        ],
        &cfg.join("prom.log"),
    );
    server.submit("hello").await.unwrap();
    let http = reqwest::Client::new();

    // Prometheus scrapes /metrics with the token.
    let targets = format!("http://127.0.0.1:{prom_port}/api/v1/targets");
    until("the scrape of oshal up", 60, async || {
        let v: Value = http.get(&targets).send().await.ok()?.json().await.ok()?;
        let t = v["data"]["activeTargets"].as_array()?.first()?.clone();
        (t["health"] == "up").then_some(())
    })
    .await;

    // The rule fires, Alertmanager posts it, the monitor opens an incident.
    let alert = until("the alert at oshal", 90, async || {
        let v = server.json("/api/v1/ops/alerts").await.ok()?;
        v.as_array()?
            .iter()
            .find(|a| a["name"] == "OshalTicketsSubmitted")
            .cloned()
    })
    .await;
    let logs = || {
        format!(
            "prometheus: {}\nalertmanager: {}",
            std::fs::read_to_string(cfg.join("prom.log")).unwrap_or_default(),
            std::fs::read_to_string(cfg.join("am.log")).unwrap_or_default()
        )
    };
    assert_eq!(alert["source"], "alertmanager", "{}", logs());
    assert_eq!(alert["state"], "FIRING");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["summary"], "tickets were submitted");
    assert_eq!(alert["labels"]["job"], "oshal");
    let incident = alert["incident"].as_str().expect("an incident").to_owned();
    let view = server
        .json(&format!("/api/v1/ops/incidents/{incident}"))
        .await
        .unwrap();
    assert_eq!(view["incident"]["status"], "triggered");
    assert_eq!(view["alerts"][0]["fingerprint"], alert["fingerprint"]);

    // Alertmanager sends again and again: one alert, one incident.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incidents = server.json("/api/v1/ops/incidents").await.unwrap();
    let ours = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["title"] == "OshalTicketsSubmitted")
        .count();
    assert_eq!(ours, 1, "{incidents}");

    // The command line moves it, as a person on call would.
    let moved = server.cli(&["ops", "move", &incident, "ack", "--note", "looking"]);
    assert_eq!(moved["incident"]["status"], "acknowledged", "{moved}");
    assert!(moved["mtta_ms"].as_i64().is_some());
    let firing = server.cli(&["ops", "alerts", "--state", "firing"]);
    assert!(
        firing
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["fingerprint"] == alert["fingerprint"]),
        "{firing}"
    );

    // Malformed payloads name their field; without the token, 401.
    let post = |body: Value| server.post("/api/v1/ops/alertmanager").json(&body).send();
    let r = post(json!({"version": "3", "alerts": []})).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "version", "{body}");
    let r = post(json!({"version": "4", "alerts": [
        {"status": "firing", "labels": {"severity": "critical"}},
        {"status": "firing", "labels": {"alertname": "Fine"}}
    ]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["refused"][0]["path"], "alerts[0].labels.alertname");
    let r = http
        .post(format!("{}/api/v1/ops/alertmanager", server.url))
        .json(&json!({"version": "4", "alerts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// A fleet's node killed with `kill -9`: the controller's own signals
/// raise `OshalNodeLost` for it, which opens an incident whose timeline
/// holds the node leaving; when the node is back the alert resolves, and
/// with it the incident, the node joining on the same timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_is_an_incident_until_it_is_back() {
    let space = oshal_e2e::FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let _n1 = space.node("n1", &["--bots", "1"]).unwrap();
    let mut n2 = space.node("n2", &["--bots", "1"]).unwrap();
    until("both nodes' bots live", 60, async || {
        let h = server.json("/api/v1/health").await.ok()?;
        (h["bots_live"] == 2).then_some(())
    })
    .await;

    n2.kill9();
    let lost = until("OshalNodeLost for n2", 60, async || {
        let v = server.json("/api/v1/ops/alerts?state=FIRING").await.ok()?;
        v.as_array()?
            .iter()
            .find(|a| a["name"] == "OshalNodeLost" && a["labels"]["node"] == "n2")
            .cloned()
    })
    .await;
    assert_eq!(lost["source"], "platform");
    assert_eq!(lost["severity"], "critical");
    let incident = lost["incident"].as_str().expect("an incident").to_owned();
    let path = format!("/api/v1/ops/incidents/{incident}");
    let view = server.json(&path).await.unwrap();
    let timeline = view["incident"]["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["moment"] == "change" && t["subject"] == "n2" && t["detail"] == "node_left"),
        "the node leaving is evidence on the incident: {view:#}"
    );

    // Gather and Diagnose: a ticket on n1's bot, boxed in by the broker,
    // reads the bots, the changes and the store; the top cause is n2 down,
    // each of its claims backed by a call kept as evidence.
    let view = until("the incident investigated", 60, async || {
        let v = server.json(&path).await.ok()?;
        let phase = v["investigations"][0]["phase"].as_str()?;
        (phase != "Running").then_some(v)
    })
    .await;
    let inv = &view["investigations"][0];
    assert_eq!(inv["phase"], "Succeeded", "{inv:#}");
    let evidence = inv["evidence"].as_array().unwrap();
    let tools: Vec<&str> = evidence
        .iter()
        .map(|e| e["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["get_bots", "list_changes", "get_health"], "{inv:#}");
    assert!(evidence.iter().all(|e| e["status"] == "success"), "{inv:#}");
    let top = &inv["diagnosis"]["causes"][0];
    assert_eq!(
        (top["kind"].as_str(), top["subject"].as_str()),
        (Some("node_down"), Some("n2")),
        "{inv:#}"
    );
    assert_eq!(inv["diagnosis"]["inconclusive"], false);
    let ids: Vec<&str> = evidence.iter().map(|e| e["id"].as_str().unwrap()).collect();
    for claim in top["supports"].as_array().unwrap() {
        for id in claim["evidence"].as_array().unwrap() {
            assert!(
                ids.contains(&id.as_str().unwrap()),
                "{claim} names evidence that exists"
            );
        }
    }
    // The same lookup, replayed by a person with the operator's token.
    let replay = evidence[0]["replay"].as_str().unwrap();
    let bots = server
        .json(replay.trim_start_matches("GET "))
        .await
        .unwrap();
    assert!(
        bots.as_array()
            .unwrap()
            .iter()
            .any(|b| b["node"] == "n2" && b["live"] == false),
        "{bots:#}"
    );
    let summary = server.json("/api/v1/ops/incidents").await.unwrap();
    assert!(
        summary
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == incident.as_str() && i["diagnosis"] == "node_down: n2"),
        "{summary:#}"
    );

    let _n2 = space.node("n2", &["--bots", "1"]).unwrap();
    let view = until("the incident resolved with n2 back", 60, async || {
        let v = server.json(&path).await.ok()?;
        (v["incident"]["status"] == "resolved").then_some(v)
    })
    .await;
    let timeline = view["incident"]["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["moment"] == "change" && t["detail"] == "node_joined"),
        "{view:#}"
    );
    assert!(view["mttr_ms"].as_i64().unwrap() > 0);
    drop(server);
    space.cleanup().await.unwrap();
}
