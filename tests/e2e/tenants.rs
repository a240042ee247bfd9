//! Tenant-scoped API tokens, tried as their holders would: the real `oshal`
//! binary in local mode (SQLite) and as a fleet controller (PostgreSQL,
//! where a tenant's reads run as that tenant under row-level security).
//! The operator makes tokens with `oshal tokens create`; a tenant's token
//! then sees and acts on its tenant alone, on every route.

use futures::StreamExt;
use oshal_e2e::{FleetSpace, Server};
use serde_json::{Value, json};
use std::time::Duration;

/// `oshal tokens …` against `server` with the operator's token.
fn tokens_cli(server: &Server, args: &[&str]) -> Value {
    server.cli(&[&["tokens"], args].concat())
}

/// One holder of a token, speaking to `server`.
struct Holder<'a> {
    server: &'a Server,
    token: String,
}

impl Holder<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .server
            .raw()
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    /// Submits a chat ticket (`kind` filled in).
    async fn submit(&self, mut body: Value) -> (u16, Value) {
        body["kind"] = json!("chat");
        self.call("POST", "/api/v1/tickets", Some(body)).await
    }
}

/// Creates a token through the CLI; its holder.
fn holder<'a>(server: &'a Server, tenant: &str, role: &str) -> Holder<'a> {
    let issued = tokens_cli(
        server,
        &[
            "create", "--tenant", tenant, "--role", role, "--label", "e2e",
        ],
    );
    assert_eq!(issued["tenant"], tenant, "{issued:#}");
    assert_eq!(issued["role"], role);
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("oshal_") && token.len() == 70, "{token}");
    Holder { server, token }
}

/// What every mode must hold; returns the acme operator's token and the
/// revoked viewer's, for a restart to check again.
async fn a_tenant_token_sees_and_acts_on_its_tenant_alone(server: &Server) -> (String, String) {
    let operator = Holder {
        server,
        token: server.token.clone(),
    };
    let acme = holder(server, "acme", "operator");
    let viewer = holder(server, "acme", "viewer");
    let globex = holder(server, "globex", "operator");

    // Who each token is.
    let (s, me) = viewer.get("/api/v1/whoami").await;
    assert_eq!(s, 200);
    assert_eq!(
        me,
        json!({"scope": "tenant", "tenant": "acme", "role": "viewer"})
    );
    let (_, me) = operator.get("/api/v1/whoami").await;
    assert_eq!(me["scope"], "all_tenants");

    // Submitting: a tenant token's tickets are its tenant's; it names no other.
    let (s, mine) = acme
        .submit(json!({"payload": {"prompt": "acme work"}}))
        .await;
    assert_eq!(s, 201, "{mine:#}");
    let mine = mine["id"].as_str().unwrap().to_owned();
    let (s, e) = acme
        .submit(json!({"tenant": "globex", "payload": {"prompt": "not mine"}}))
        .await;
    assert_eq!(
        (s, e["error"]["kind"].as_str()),
        (403, Some("forbidden")),
        "{e:#}"
    );
    assert_eq!(e["error"]["field"], "tenant");
    let (s, theirs) = globex
        .submit(json!({"tenant": "globex", "payload": {"prompt": "globex work"}}))
        .await;
    assert_eq!(s, 201);
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    let (s, e) = acme
        .call(
            "POST",
            "/api/v1/tickets/batch",
            Some(json!({"tickets": [
                {"kind": "chat", "payload": {"prompt": "a"}},
                {"kind": "chat", "tenant": "globex", "payload": {"prompt": "b"}},
            ]})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (403, Some("tickets[1].tenant"))
    );
    for id in [&mine, &theirs] {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
    }

    // Another tenant's ticket does not exist for it: 404, never 403.
    let (s, v) = acme.get(&format!("/api/v1/tickets/{mine}")).await;
    assert_eq!((s, v["tenant"].as_str()), (200, Some("acme")));
    for (method, path) in [
        ("GET", format!("/api/v1/tickets/{theirs}")),
        ("POST", format!("/api/v1/tickets/{theirs}/cancel")),
        ("POST", format!("/api/v1/tickets/{theirs}/approve")),
    ] {
        let (s, e) = acme.call(method, &path, None).await;
        assert_eq!(
            (s, e["error"]["kind"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }

    // Lists, counts, cost and the tenant directory: its own share.
    let (_, page) = acme.get("/api/v1/tickets").await;
    let tenants: Vec<&str> = page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert!(
        !tenants.is_empty() && tenants.iter().all(|t| *t == "acme"),
        "{tenants:?}"
    );
    let (s, _) = acme.get("/api/v1/tickets?tenant=globex").await;
    assert_eq!(s, 403);
    let (_, counts) = viewer.get("/api/v1/tickets/counts").await;
    let n: u64 = counts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(n, tenants.len() as u64, "{counts:#}");
    let (_, cost) = viewer.get("/api/v1/cost/summary").await;
    let by_tenant: Vec<&str> = cost["by_tenant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(by_tenant, ["acme"], "{cost:#}");
    let (_, dir) = viewer.get("/api/v1/tenants").await;
    let names: Vec<&str> = dir
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    let (_, all) = operator.get("/api/v1/cost/summary").await;
    assert_eq!(all["by_tenant"].as_array().unwrap().len(), 2, "{all:#}");

    // Metrics: its figures, labelled with it, and nothing of the fleet's.
    let (s, text) = viewer.get("/metrics").await;
    let text = text.as_str().unwrap().to_owned();
    assert_eq!(s, 200);
    assert!(
        text.contains("oshal_tenant_tickets{tenant=\"acme\",state=\"succeeded\"}"),
        "{text}"
    );
    assert!(
        !text.contains("globex") && !text.contains("oshal_bot_"),
        "{text}"
    );

    // A viewer reads; it does not write.
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/tickets".to_owned(),
            Some(json!({"kind": "chat", "payload": {"prompt": "x"}})),
        ),
        ("POST", format!("/api/v1/tickets/{mine}/cancel"), None),
        (
            "POST",
            "/api/v1/tickets/bulk".to_owned(),
            Some(json!({"action": "cancel", "dry_run": true})),
        ),
    ] {
        let (s, e) = viewer.call(method, &path, body).await;
        assert_eq!(
            (s, e["error"]["kind"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {e:#}"
        );
    }
    // Bulk: fenced to its tenant, and no other may be named.
    let (s, report) = acme
        .call(
            "POST",
            "/api/v1/tickets/bulk",
            Some(json!({"action": "retry", "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{report:#}");
    assert_eq!(
        report["matched"].as_u64(),
        Some(tenants.len() as u64),
        "{report:#}"
    );
    let (s, e) = acme
        .call(
            "POST",
            "/api/v1/tickets/bulk",
            Some(json!({"action": "cancel", "dry_run": true, "filter": {"tenant": "globex"}})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (403, Some("filter.tenant"))
    );

    // The operator's routes are the operator's.
    for (method, path) in [
        ("GET", "/api/v1/bots"),
        ("PUT", "/api/v1/tenants/acme"),
        ("GET", "/api/v1/connectors"),
        ("GET", "/api/v1/grants"),
        ("POST", "/api/v1/security/scans"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        // A heal writes the platform's own state: no tenant approves one.
        ("POST", "/api/v1/ops/incidents/INC-1/heal"),
    ] {
        let body = (method != "GET").then(|| json!({}));
        let (s, e) = acme.call(method, path, body).await;
        assert_eq!(
            (s, e["error"]["kind"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }

    // The audit and effect ledgers: its tenant's rows alone.
    for path in ["/api/v1/audit", "/api/v1/effects"] {
        let (s, rows) = acme.get(path).await;
        if s == 200 {
            assert!(
                rows.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["tenant"] == "acme"),
                "{path}: {rows:#}"
            );
        } else {
            assert_eq!(s, 404, "{path}: a controller without connectors");
        }
    }

    // Events: a viewer's socket carries its tenant's transitions alone.
    let ws_url = format!(
        "{}/api/v1/events?token={}",
        server.url.replace("http://", "ws://"),
        viewer.token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    // The socket subscribes once upgraded: a round whose events came before
    // that is simply followed by another.
    let mut seen_mine = false;
    for _round in 0..10 {
        let (s, _) = globex
            .submit(json!({"tenant": "globex", "payload": {"prompt": "unseen"}}))
            .await;
        assert_eq!(s, 201);
        let (s, late) = acme.submit(json!({"payload": {"prompt": "seen"}})).await;
        assert_eq!(s, 201);
        let late = late["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg.unwrap() else {
                continue;
            };
            let event: Value = serde_json::from_str(&text).unwrap();
            let kind = event["type"].as_str().unwrap_or_default();
            assert!(
                !kind.starts_with("bots_"),
                "the fleet's bots are the operator's: {kind}"
            );
            for t in event["transitions"].as_array().into_iter().flatten() {
                assert_eq!(t["tenant"], "acme", "{event:#}");
                seen_mine |= t["ticket"] == late.as_str();
            }
            for e in event["entries"].as_array().into_iter().flatten() {
                assert_eq!(e["tenant"], "acme", "{event:#}");
            }
            if seen_mine {
                break;
            }
        }
        if seen_mine {
            break;
        }
    }
    assert!(
        seen_mine,
        "the viewer's socket carried its tenant's transitions"
    );

    // The operations loop: a tenant's alerts and incidents are its own.
    let payload = json!({"version": "4", "alerts": [{
        "status": "firing", "labels": {"alertname": "AcmeDown", "severity": "critical"}
    }]});
    let (s, got) = acme
        .call("POST", "/api/v1/ops/alertmanager", Some(payload.clone()))
        .await;
    assert_eq!((s, got["tenant"].as_str()), (200, Some("acme")), "{got}");
    let incident = got["opened"][0].as_str().unwrap().to_owned();
    let (s, _) = viewer
        .call("POST", "/api/v1/ops/alertmanager", Some(payload.clone()))
        .await;
    assert_eq!(s, 403, "a viewer sends no alerts");
    let (s, _) = globex
        .call(
            "POST",
            "/api/v1/ops/alertmanager?tenant=acme",
            Some(payload),
        )
        .await;
    assert_eq!(s, 403, "nor does another tenant for acme");
    let (_, alerts) = globex.get("/api/v1/ops/alerts").await;
    assert!(
        !alerts.to_string().contains("AcmeDown"),
        "globex sees none of acme's alerts: {alerts}"
    );
    let (_, incidents) = globex.get("/api/v1/ops/incidents").await;
    assert!(!incidents.to_string().contains("AcmeDown"), "{incidents}");
    let (s, _) = globex
        .get(&format!("/api/v1/ops/incidents/{incident}?tenant=acme"))
        .await;
    assert_eq!(s, 403);
    let (s, view) = viewer
        .get(&format!("/api/v1/ops/incidents/{incident}"))
        .await;
    assert_eq!(
        (s, view["incident"]["title"].as_str()),
        (200, Some("AcmeDown")),
        "{view}"
    );
    let (_, all) = operator.get("/api/v1/ops/incidents").await;
    assert!(
        all.to_string().contains("AcmeDown"),
        "the operator sees every tenant's"
    );

    // Listed without values; revoked, refused from the next request on.
    let listed = tokens_cli(server, &["list"]);
    let listed = listed.as_array().unwrap();
    assert!(listed.len() >= 3);
    let body = serde_json::to_string(listed).unwrap();
    for h in [&acme, &viewer, &globex] {
        assert!(!body.contains(&h.token), "a listing shows no token's value");
    }
    let viewer_id = listed
        .iter()
        .find(|t| t["tenant"] == "acme" && t["role"] == "viewer" && t["revoked_at_ms"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokens_cli(server, &["revoke", &viewer_id]);
    let (s, e) = viewer.get("/api/v1/tickets").await;
    assert_eq!(
        (s, e["error"]["kind"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = operator
        .call("DELETE", &format!("/api/v1/tokens/{viewer_id}"), None)
        .await;
    assert_eq!(s, 404, "a token is revoked once");
    (acme.token.clone(), viewer.token.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_fence_every_route_in_local_mode_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let (acme, revoked) = a_tenant_token_sees_and_acts_on_its_tenant_alone(&server).await;
    server.stop().unwrap();

    // Nothing under the data directory holds a token's value.
    for entry in oshal_e2e::files_under(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for token in [&acme, &revoked] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds a token's value",
                entry.display()
            );
        }
    }

    // After a restart the live token still works and the revoked one does not.
    let server = Server::start(dir.path(), &["--bots", "1"]).unwrap();
    let status = |token: &str| {
        let req = server
            .raw()
            .get(format!("{}/api/v1/tickets", server.url))
            .bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(&acme).await, 200);
    assert_eq!(status(&revoked).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_fence_every_route_of_a_fleet_controller() {
    let space = FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(dir.path()).unwrap();
    let _node = space.node("n1", &["--bots", "2"]).unwrap();
    a_tenant_token_sees_and_acts_on_its_tenant_alone(&server).await;
    drop(server);
    space.cleanup().await.unwrap();
}
