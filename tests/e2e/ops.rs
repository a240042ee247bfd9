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

use oshal_e2e::outside::{OpenBao, Outside};
use oshal_e2e::slowlink::SlowLink;
use oshal_e2e::{LlamaServer, Server, free_port};
use serde_json::{Value, json};

mod restart;

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

/// Sets a tenant's budget in dollars (`None` lifts it), creating it.
async fn budget(server: &Server, tenant: &str, usd: Option<f64>) {
    let r = server
        .put(&format!("/api/v1/tenants/{tenant}"))
        .json(&json!({ "budget_usd": usd }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Submits a ticket (`201` required); its id.
async fn submit(server: &Server, body: Value) -> String {
    let r = server
        .post("/api/v1/tickets")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{body}");
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The incident an alert named `name` with `labels` opened.
async fn incident_of(server: &Server, name: &str, labels: &[(&str, &str)]) -> String {
    until(
        &format!("{name} {labels:?} opens an incident"),
        90,
        async || {
            let v = server.json("/api/v1/ops/alerts").await.ok()?;
            v.as_array()?
                .iter()
                .find(|a| a["name"] == name && labels.iter().all(|(k, v)| a["labels"][k] == *v))
                .and_then(|a| a["incident"].as_str().map(str::to_owned))
        },
    )
    .await
}

async fn investigated(server: &Server, incident: &str) -> Value {
    let path = format!("/api/v1/ops/incidents/{incident}");
    until(&format!("{incident} investigated"), 90, async || {
        let v = server.json(&path).await.ok()?;
        let phase = v["investigations"][0]["phase"].as_str()?;
        (phase != "Running").then_some(v)
    })
    .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The outside system imported as connector `shop` with its credential,
/// a read grant for `bot` and the operator's approval; the grant's id.
async fn connect_shop(server: &Server, outside: &Outside, api_key: &str, bot: &str) -> String {
    let r = server
        .post("/api/v1/catalog/import")
        .json(&outside.openapi("shop", "api_key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = server
        .put("/api/v1/connectors/shop/credential")
        .json(&json!({ "api_key": api_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = server
        .post("/api/v1/grants")
        .json(&json!({"bot": bot, "connector": "shop", "operations": ["get_order"], "scopes": ["orders:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let grant = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server
        .post("/api/v1/catalog/shop/approve")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    grant
}

/// Node `name` of `bots` bots with the `summarize` skill only (so the
/// loop's own work runs elsewhere), calling a real model server through
/// a [`SlowLink`] that passes bytes on at once until told otherwise.
async fn behind_a_slow_link(
    space: &oshal_e2e::FleetSpace,
    name: &str,
    bots: usize,
) -> (LlamaServer, SlowLink, oshal_e2e::Node) {
    let llama = LlamaServer::start().await.unwrap();
    let upstream = llama
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let link = SlowLink::start(upstream).await.unwrap();
    let model_url = format!("{}/v1", link.url);
    let bots = bots.to_string();
    let args = [
        "--bots",
        &bots,
        "--skills",
        "summarize",
        "--model-url",
        &model_url,
        "--model-name",
        LlamaServer::MODEL,
    ];
    let node = space.node(name, &args).unwrap();
    (llama, link, node)
}

/// Puts the operator's heal `rule` first in the monitor's settings.
async fn first_rule(server: &Server, rule: Value) {
    let mut settings = server.json("/api/v1/ops/settings").await.unwrap()["settings"].clone();
    settings["heal"].as_array_mut().unwrap().insert(0, rule);
    let r = server
        .put("/api/v1/ops/settings")
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The incident's first heal once it is proposed (pending).
async fn proposed(server: &Server, incident: &str) -> Value {
    let path = format!("/api/v1/ops/incidents/{incident}");
    until(&format!("{incident}'s heal proposed"), 90, async || {
        let v = server.json(&path).await.ok()?;
        (v["heals"][0]["phase"] == "pending").then(|| v["heals"][0].clone())
    })
    .await
}

/// Approves the incident's first heal with the CLI and waits for its
/// re-check's verdict; the incident's view then.
async fn approved(server: &Server, incident: &str, note: &str) -> (bool, Value) {
    server.cli(&["ops", "heal", incident, "H-1", "--approve", "--note", note]);
    let path = format!("/api/v1/ops/incidents/{incident}");
    until(&format!("{incident}'s heal re-checked"), 90, async || {
        let v = server.json(&path).await.ok()?;
        v["heals"][0]["recheck"]["passed"].as_bool().map(|p| (p, v))
    })
    .await
}

/// Waits for the incident to resolve.
async fn resolved(server: &Server, incident: &str) {
    let path = format!("/api/v1/ops/incidents/{incident}");
    until(&format!("{incident} resolved"), 90, async || {
        let v = server.json(&path).await.ok()?;
        (v["incident"]["status"] == "resolved").then_some(())
    })
    .await;
}

/// The fault catalogue, injected into a real fleet (a controller and two
/// nodes over PostgreSQL and Redis, credentials in OpenBao, a real
/// outside system): a node killed with `kill -9`, a tenant's budget
/// exhausted, a poison input that fails every attempt, an outside system
/// answering 503, the lanes' Redis restarted empty mid-work, a
/// connector's live refresh token planted where the Security Center finds
/// it, PostgreSQL stopped, a
/// slow model (a real model server behind a link that holds each call).
/// Each raises the platform's own alert, opens an incident, is
/// investigated through the connector gate and diagnosed from its
/// evidence; the budget is healed after an approval given with the CLI,
/// re-checked, and its postmortem published; the killed node is retired
/// and the tickets the outside system failed are replayed, once it is
/// back, the planted refresh token rotated (revoked and refused at the
/// provider, the finding suppressed), and the slow model's node (both its
/// bots slow) drained once a node with its skill joins and the incident is
/// investigated again, each after an approval.
/// `oshal ops eval` then scores
/// the record: every fault's injected cause ranked first, every claim
/// backed by evidence, every heal approved before it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oshal_ops_eval_scores_the_injected_faults() {
    let mut redis = oshal_e2e::PrivateRedis::start().await.unwrap();
    let mut pg = oshal_e2e::PrivatePostgres::start().await.unwrap();
    let space = oshal_e2e::FleetSpace::on(&pg.admin_url(), &redis.url())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, &bao.root_token).unwrap();
    let api_key = format!("sk_live_{}", uuid::Uuid::new_v4().simple());
    let outside = Outside::start(&api_key).await.unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let vault = [
        "--vault-addr",
        bao.addr.as_str(),
        "--vault-token-file",
        token_file.to_str().unwrap(),
        "--vault-prefix",
        prefix.as_str(),
    ];
    let server = space.serve_with(&dir.path().join("data"), &vault).unwrap();
    let _n1 = space.node("n1", &["--bots", "1"]).unwrap();
    let mut n2 = space.node("n2", &["--bots", "1"]).unwrap();
    until("both nodes' bots live", 60, async || {
        let h = server.json("/api/v1/health").await.ok()?;
        (h["bots_live"] == 2).then_some(())
    })
    .await;
    let mut catalogue = Vec::new();

    // 1. A node killed.
    let at = now_ms();
    n2.kill9();
    catalogue.push(json!({"fault": "kill -9 node n2", "alert": "OshalNodeLost",
        "labels": {"node": "n2"}, "cause": "node_down", "subject": "n2", "heal": true,
        "injected_ms": at}));
    let node = incident_of(&server, "OshalNodeLost", &[("node", "n2")]).await;
    investigated(&server, &node).await;
    // n2 is gone for good: retired after an approval, its alert resolves.
    let heal = proposed(&server, &node).await;
    assert_eq!(
        heal["action"],
        json!({"action": "retire_node", "node": "n2"}),
        "{heal:#}"
    );
    assert_eq!(heal["dry_run"]["blast"]["bots"], json!(["n2-bot-01"]));
    let (passed, v) = approved(&server, &node, "n2 is decommissioned").await;
    assert!(passed, "{v:#}");
    resolved(&server, &node).await;
    let bots = server.json("/api/v1/bots").await.unwrap();
    assert!(
        bots.as_array().unwrap().iter().all(|b| b["node"] != "n2"),
        "{bots:#}"
    );

    // 2. A tenant's budget exhausted: healed after an approval.
    let at = now_ms();
    budget(&server, "evalco", Some(0.0)).await;
    catalogue.push(json!({"fault": "tenant evalco's budget exhausted",
        "alert": "OshalBudgetExhausted", "labels": {"tenant": "evalco"},
        "cause": "budget_exhausted", "subject": "evalco", "heal": true, "injected_ms": at}));
    let spent = incident_of(&server, "OshalBudgetExhausted", &[("tenant", "evalco")]).await;
    // The operator's budget change is kept as evidence of it.
    let changes = server.json("/api/v1/ops/changes").await.unwrap();
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "budget_changed"
                && c["subject"] == "evalco"
                && c["detail"] == "budget set to $0.000000 by operator"),
        "{changes:#}"
    );
    let heal = proposed(&server, &spent).await;
    assert_eq!(heal["dry_run"]["blast"]["tenants"][0], "evalco", "{heal:#}");
    let (passed, v) = approved(&server, &spent, "eval").await;
    assert!(passed, "{v:#}");
    assert!(
        v["heals"][0]["decided_by"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    resolved(&server, &spent).await;
    let published = server.cli(&["ops", "postmortem", &spent, "--publish"]);
    assert_eq!(published["status"], "published");
    assert!(
        published["resolution"]
            .as_str()
            .unwrap()
            .contains("heal H-1"),
        "{published:#}"
    );

    // 3. A poison input: work that fails every attempt.
    budget(&server, "poisonco", None).await;
    let at = now_ms();
    for n in 0..3 {
        let id = submit(
            &server,
            json!({"kind": "tool", "tenant": "poisonco",
                "payload": {"connector": "no-such-crm", "operation": "find", "params": {"n": n}}}),
        )
        .await;
        server.wait_terminal(&id).await.unwrap();
    }
    catalogue.push(json!({"fault": "a poison input fails every attempt",
        "alert": "OshalTicketsDead", "labels": {"tenant": "poisonco"},
        "cause": "poison_input", "subject": "tool", "injected_ms": at}));
    let poison = incident_of(&server, "OshalTicketsDead", &[("tenant", "poisonco")]).await;
    investigated(&server, &poison).await;

    // 4. An outside system answering 503 to every read.
    connect_shop(&server, &outside, &api_key, "n1-bot-01").await;
    budget(&server, "shopco", None).await;
    outside
        .state
        .fail_reads
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    let at = now_ms();
    for n in 0..3 {
        let id = submit(
            &server,
            json!({"kind": "tool", "tenant": "shopco", "max_attempts": 2,
                "payload": {"connector": "shop", "operation": "get_order", "params": {"order_id": format!("o-{n}")}}}),
        )
        .await;
        let t = server.wait_terminal(&id).await.unwrap();
        assert_eq!(t["state"], "dead", "{t:#}");
    }
    catalogue.push(json!({"fault": "an outside system answers 503",
        "alert": "OshalTicketsDead", "labels": {"tenant": "shopco"},
        "cause": "outside_system_failing", "subject": "shop", "heal": true, "injected_ms": at}));
    let failing = incident_of(&server, "OshalTicketsDead", &[("tenant", "shopco")]).await;
    investigated(&server, &failing).await;

    // 5. The lanes' Redis restarted empty while reads are in flight.
    outside
        .state
        .fail_reads
        .store(0, std::sync::atomic::Ordering::SeqCst);
    outside
        .state
        .read_delay_ms
        .store(2_000, std::sync::atomic::Ordering::SeqCst);
    let mut slow = Vec::new();
    for n in 0..3 {
        let body = json!({"kind": "tool", "tenant": "shopco",
            "payload": {"connector": "shop", "operation": "get_order", "params": {"order_id": format!("s-{n}")}}});
        slow.push(submit(&server, body).await);
    }
    outside.wait_for("GET", "/orders").await.unwrap();
    let at = now_ms();
    redis.restart_empty().await.unwrap();
    catalogue.push(json!({"fault": "Redis restarted empty mid-work",
        "alert": "OshalLanesReset", "cause": "redis_data_loss", "subject": "redis", "injected_ms": at}));
    let lost = incident_of(&server, "OshalLanesReset", &[]).await;
    investigated(&server, &lost).await;
    for id in &slow {
        let t = server.wait_terminal(id).await.unwrap();
        assert_eq!(
            t["state"], "succeeded",
            "no ticket lost to the reset: {t:#}"
        );
    }

    // The outside system answers again: the tickets it failed are replayed
    // after an approval, and the re-check finds none dying since.
    outside
        .state
        .read_delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let heal = proposed(&server, &failing).await;
    assert_eq!(heal["action"]["action"], "replay_dead", "{heal:#}");
    assert_eq!(
        heal["dry_run"]["blast"]["tickets_total"], 3,
        "the three tickets shop failed: {heal:#}"
    );
    let replayed = approved(&server, &failing, "shop is back").await;
    assert!(replayed.0, "{:#}", replayed.1);
    assert!(
        replayed.1["heals"][0]["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("3 succeeded")),
        "{:#}",
        replayed.1
    );

    // 6. A connector's live refresh token planted in a log the Security
    // Center reads; the provider keeps a replaced token working until it
    // is revoked, so only the revocation ends it.
    let r = server
        .post("/api/v1/catalog/import")
        .json(&outside.openapi("shop-oauth", "refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let leaked = outside.state.refresh_token.lock().unwrap().clone();
    let r = server
        .put("/api/v1/connectors/shop-oauth/credential")
        .json(&json!({"client_id": outside.state.client_id,
            "client_secret": outside.state.client_secret, "refresh_token": leaked}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    outside
        .state
        .keep_replaced_refresh_tokens
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let at = now_ms();
    std::fs::write(
        dir.path().join("data").join("deploy.log"),
        format!("10:00:01 DEBUG oauth refresh_token={leaked} client=oshal\n"),
    )
    .unwrap();
    let r = server.post("/api/v1/security/scans").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let findings = server
        .json("/api/v1/security/findings?state=open")
        .await
        .unwrap();
    let leak = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["rule"] == "secrets.exposed" && f["object"].as_str().unwrap().contains("deploy.log")
        })
        .unwrap_or_else(|| panic!("the planted secret found: {findings:#}"))
        .clone();
    catalogue.push(
        json!({"fault": "a connector's refresh token planted in a log",
        "alert": "OshalSecretFound", "labels": {"finding": leak["id"]},
        "cause": "secret_exposed", "subject": leak["object"], "heal": true, "injected_ms": at}),
    );
    let finding = leak["id"].as_str().unwrap();
    let secret = incident_of(&server, "OshalSecretFound", &[("finding", finding)]).await;
    investigated(&server, &secret).await;
    let heal = proposed(&server, &secret).await;
    assert_eq!(
        heal["action"],
        json!({"action": "rotate_credential", "connector": "shop-oauth", "finding": finding}),
        "{heal:#}"
    );
    let rotated = approved(&server, &secret, "rotate the leaked token").await;
    assert!(rotated.0, "{:#}", rotated.1);
    assert_eq!(outside.count("POST", "/oauth/revoke"), 1);
    let reuse = reqwest::Client::new()
        .post(format!("{}/oauth/token", outside.base_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", leaked.as_str()),
            ("client_id", outside.state.client_id.as_str()),
            ("client_secret", outside.state.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 400, "the leaked token is dead");
    let shown = rotated.1.to_string();
    assert!(
        !shown.contains(&leaked)
            && !shown.contains(outside.state.refresh_token.lock().unwrap().as_str()),
        "no token in the incident, its evidence, its heal or its diagnosis"
    );
    let r = server
        .json("/api/v1/security/findings?state=suppressed")
        .await
        .unwrap();
    assert!(
        r.as_array().unwrap().iter().any(|f| f["id"] == finding),
        "the finding is suppressed with what was done: {r:#}"
    );

    // 7. PostgreSQL, the store, stopped for a few seconds.
    let at = now_ms();
    pg.crash().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.start_again().unwrap();
    catalogue.push(json!({"fault": "PostgreSQL stopped for 4 s",
        "alert": "OshalStoreDown", "cause": "store_down", "subject": "store", "injected_ms": at}));
    let down = incident_of(&server, "OshalStoreDown", &[]).await;
    investigated(&server, &down).await;

    // 8. A slow model: node n3's two bots call a real model server
    // through a link that holds every request 3 s, and their lanes lag
    // behind it.
    let (_llama, link, _n3) = behind_a_slow_link(&space, "n3", 2).await;
    until("n3's bots live", 60, async || {
        let h = server.json("/api/v1/health").await.ok()?;
        (h["bots_live"] == 3).then_some(())
    })
    .await;
    budget(&server, "slowco", None).await;
    let at = now_ms();
    link.set_delay(Duration::from_secs(3));
    let mut summaries = Vec::new();
    for n in 0..72 {
        let body = json!({"kind": "chat", "skill": "summarize", "tenant": "slowco",
            "payload": {"prompt": format!("Summarise in one word: order {n} shipped."), "max_tokens": 4}});
        summaries.push(submit(&server, body).await);
    }
    // Both lanes lag: one incident (grouped by alert name and tenant)
    // holds both alerts. Both bots are as slow; the diagnosis ranks equal
    // causes by subject, so n3-bot-01 first, whichever alert fired first.
    catalogue.push(
        json!({"fault": "a slow model (3 s a call) behind both bots of node n3", "alert": "OshalLaneLag",
        "labels": {"bot": "n3-bot-01"}, "cause": "slow_model", "subject": "n3-bot-01",
        "heal": true, "injected_ms": at}),
    );
    let slow = incident_of(&server, "OshalLaneLag", &[("bot", "n3-bot-01")]).await;
    assert_eq!(
        incident_of(&server, "OshalLaneLag", &[("bot", "n3-bot-02")]).await,
        slow,
        "both lanes' alerts in one incident"
    );
    let v = investigated(&server, &slow).await;
    let d = &v["investigations"][0]["diagnosis"];
    assert_eq!(d["causes"][0]["kind"], "slow_model", "{d:#}");
    assert_eq!(
        v["heals"],
        json!([]),
        "n3's bots are the last with summarize: no drain to propose"
    );
    // The operator adds a node with the skill and a quick model, then asks
    // for the incident to be investigated again: every bot of n3 is slow,
    // so the node's drain is proposed (not one bot's), approved, and n3's
    // waiting tickets go to n4.
    let _n4 = space
        .node("n4", &["--bots", "1", "--skills", "summarize"])
        .unwrap();
    until("n4's bot live", 60, async || {
        let h = server.json("/api/v1/health").await.ok()?;
        (h["bots_live"] == 4).then_some(())
    })
    .await;
    let again = server.cli(&["ops", "investigate", &slow]);
    assert_eq!(again["investigations"][1]["phase"], "Running", "{again:#}");
    let heal = proposed(&server, &slow).await;
    assert_eq!(heal["rule"], "drain-slow-node", "{heal:#}");
    assert_eq!(
        heal["action"],
        json!({"action": "drain_node", "node": "n3"}),
        "{heal:#}"
    );
    assert_eq!(
        heal["dry_run"]["blast"]["bots"],
        json!(["n3-bot-01", "n3-bot-02", "n4-bot-01"])
    );
    let (passed, v) = approved(&server, &slow, "n3's model server is slow").await;
    assert!(passed, "{v:#}");
    let bots = server.json("/api/v1/bots").await.unwrap();
    for b in bots.as_array().unwrap() {
        let on_n3 = b["node"] == "n3";
        assert_eq!(b["cordoned"], on_n3, "only n3's bots drained: {b}");
    }
    link.set_delay(Duration::ZERO);
    for id in &summaries {
        let t = server.wait_terminal(id).await.unwrap();
        assert_eq!(
            t["state"], "succeeded",
            "no ticket lost to a slow model: {t:#}"
        );
        assert_eq!(
            t["ledger"].as_array().unwrap().len(),
            1,
            "charged once: {t:#}"
        );
    }

    let file = dir.path().join("catalogue.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&catalogue).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let report = server.cli(&["ops", "eval", file, "--json"]);
    let totals = &report["totals"];
    assert_eq!(totals["faults"], 8, "{report:#}");
    assert_eq!(
        totals["top1"], 1.0,
        "every injected cause ranked first: {report:#}"
    );
    assert_eq!(
        totals["backed"], 1.0,
        "every claim backed by evidence: {report:#}"
    );
    assert_eq!(totals["unapproved_writes"], 0, "{report:#}");
    assert_eq!(totals["writes"], 5, "each heal's one write: {report:#}");
    assert_eq!(
        (totals["healed"].as_u64(), totals["heals_expected"].as_u64()),
        (Some(5), Some(5))
    );
    // The table a person reads, in the test's log.
    let table = std::process::Command::new(oshal_e2e::oshal_bin())
        .args(["ops", "eval", file])
        .env("OSHAL_API", &server.url)
        .env("OSHAL_API_TOKEN", &server.token)
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    eprintln!("{table}");
    assert!(
        table.contains("top-1 100%") && table.contains("0 of 5 writes without an approval"),
        "{table}"
    );
    drop(server);
    space.cleanup().await.unwrap();
}

/// A heal that stops the calls to a failing outside system: an operator's
/// rule revokes the standing grants on it. Proposed with the grants and
/// bots it touches, applied only after an approval, re-checked; a call
/// after it is denied at the gate and never reaches the outside system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_outside_systems_grants_are_revoked_after_an_approval() {
    let bao = OpenBao::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, &bao.root_token).unwrap();
    let api_key = format!("sk_live_{}", uuid::Uuid::new_v4().simple());
    let outside = Outside::start(&api_key).await.unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--bots",
            "1",
            "--vault-addr",
            &bao.addr,
            "--vault-token-file",
            token_file.to_str().unwrap(),
            "--vault-prefix",
            &prefix,
        ],
    )
    .unwrap();
    let grant = connect_shop(&server, &outside, &api_key, "bot-01").await;
    // The operator's rule, tried before the shipped replay.
    first_rule(
        &server,
        json!({"name": "stop-calling-a-failing-system", "trigger": "outside_system_failing",
            "matchers": ["alertname=\"OshalTicketsDead\""], "action": {"action": "revoke_grants"}}),
    )
    .await;

    outside
        .state
        .fail_reads
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    let get_order = |n: usize| {
        json!({"kind": "tool", "max_attempts": 2,
            "payload": {"connector": "shop", "operation": "get_order", "params": {"order_id": format!("o-{n}")}}})
    };
    for n in 0..3 {
        let id = submit(&server, get_order(n)).await;
        assert_eq!(server.wait_terminal(&id).await.unwrap()["state"], "dead");
    }
    let incident = incident_of(&server, "OshalTicketsDead", &[("tenant", "default")]).await;
    let heal = proposed(&server, &incident).await;
    assert_eq!(
        heal["action"],
        json!({"action": "revoke_grants", "connector": "shop", "grants": [grant]}),
        "{heal:#}"
    );
    assert_eq!(heal["dry_run"]["blast"]["bots"], json!(["bot-01"]));
    // Nothing is revoked before the approval.
    let grants = server.json("/api/v1/grants").await.unwrap();
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == grant.as_str())
    );

    let (passed, v) = approved(&server, &incident, "stop calling shop").await;
    assert!(passed, "{v:#}");
    let grants = server.json("/api/v1/grants").await.unwrap();
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["connector"] != "shop"),
        "{grants:#}"
    );
    let changes = server.json("/api/v1/ops/changes").await.unwrap();
    assert!(
        changes.to_string().contains("grants_revoked"),
        "{changes:#}"
    );
    // A call now is denied at the gate: the outside system never hears it.
    let heard = outside.received().len();
    let id = submit(&server, get_order(9)).await;
    let t = server.wait_terminal(&id).await.unwrap();
    assert_eq!(t["state"], "dead", "{t:#}");
    assert!(
        t["error"]
            .as_str()
            .is_some_and(|e| e.contains("denied by default")),
        "{t:#}"
    );
    assert_eq!(outside.received().len(), heard);
}
