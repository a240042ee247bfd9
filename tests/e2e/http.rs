//! `oshal serve` over HTTP: the ticket flow, the error contract, events.

use futures::StreamExt;
use oshal_e2e::Server;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tickets_over_http_all_succeed_and_cost_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "4"]).unwrap();
    let prompts = (0..1000).map(|i| format!("ticket {i}: what is the state of the fleet?"));
    let ids = server.submit_all(prompts, 32).await;
    assert_eq!(ids.len(), 1000);

    let mut ledger_sum = 0i64;
    let mut ledger_rows = 0;
    for id in &ids {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        assert!(v["cost"]["input_tokens"].as_i64().unwrap() > 0);
        assert!(v["cost"]["output_tokens"].as_i64().unwrap() > 0);
        assert!(v["cost"]["usd"].as_f64().unwrap() > 0.0);
        for row in v["ledger"].as_array().unwrap() {
            ledger_sum += row["cost_nusd"].as_i64().unwrap();
            ledger_rows += 1;
        }
    }
    assert_eq!(ledger_rows, 1000);
    let summary = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(summary["total"]["attempts"], 1000);
    assert_eq!(
        summary["total"]["cost_nusd"].as_i64().unwrap(),
        ledger_sum,
        "summary equals the sum of ledger rows"
    );
    let by_bot: i64 = summary["by_bot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["cost_nusd"].as_i64().unwrap())
        .sum();
    assert_eq!(by_bot, ledger_sum);
    assert_eq!(
        summary["by_bot"].as_array().unwrap().len(),
        4,
        "every bot took work"
    );

    let all = server.all_tickets().await.unwrap();
    assert_eq!(all.len(), 1000);
    let bots = server.json("/api/v1/bots").await.unwrap();
    let done: u64 = bots
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(done, 1000);
}

/// Every refusal: the documented status, the error body naming the field,
/// and nothing changed in the store.
#[tokio::test]
async fn bad_input_gets_the_documented_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "1"]).unwrap();
    let http = server.raw();
    let url = |p: &str| format!("{}{p}", server.url);
    let auth = format!("Bearer {}", server.token);

    let finished = server.submit("finish me").await.unwrap();
    server.wait_terminal(&finished).await.unwrap();

    let huge = "x".repeat(1024 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .body("{not json"),
            400,
            "malformed",
            Some("body"),
        ),
        (
            "unknown kind",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "teleport", "payload": {}})),
            422,
            "invalid",
            Some("kind"),
        ),
        (
            "wrong payload",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "chat", "payload": {"prompt": 7}})),
            422,
            "invalid",
            Some("payload"),
        ),
        (
            "unknown field",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "chat", "payload": {"prompt": "x"}, "colour": "red"})),
            422,
            "invalid",
            Some("colour"),
        ),
        (
            "missing kind",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"payload": {"prompt": "x"}})),
            422,
            "invalid",
            Some("kind"),
        ),
        (
            "bad priority",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "chat", "payload": {"prompt": "x"}, "priority": 99})),
            422,
            "invalid",
            Some("priority"),
        ),
        (
            "bad tenant",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "chat", "payload": {"prompt": "x"}, "tenant": "a b"})),
            422,
            "invalid",
            Some("tenant"),
        ),
        (
            "oversized payload",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .json(&json!({"kind": "chat", "payload": {"prompt": huge}})),
            413,
            "too_large",
            Some("payload"),
        ),
        (
            "oversized body",
            http.post(url("/api/v1/tickets"))
                .header("authorization", &auth)
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
            "too_large",
            Some("body"),
        ),
        (
            "missing token",
            http.post(url("/api/v1/tickets"))
                .json(&json!({"kind": "chat", "payload": {"prompt": "x"}})),
            401,
            "unauthorized",
            None,
        ),
        (
            "wrong token",
            http.post(url("/api/v1/tickets"))
                .header("authorization", "Bearer wrong-token-wrong-token")
                .json(&json!({"kind": "chat", "payload": {"prompt": "x"}})),
            401,
            "unauthorized",
            None,
        ),
        (
            "wrong scheme",
            http.get(url("/api/v1/bots"))
                .header("authorization", format!("Basic {}", server.token)),
            401,
            "unauthorized",
            None,
        ),
        (
            "token on loopback still needed",
            http.get(url("/api/v1/tickets")),
            401,
            "unauthorized",
            None,
        ),
        (
            "metrics need a token",
            http.get(url("/metrics")),
            401,
            "unauthorized",
            None,
        ),
        (
            "unknown id",
            http.get(url(&format!("/api/v1/tickets/{}", uuid::Uuid::now_v7())))
                .header("authorization", &auth),
            404,
            "not_found",
            None,
        ),
        (
            "not an id",
            http.get(url("/api/v1/tickets/does-not-exist"))
                .header("authorization", &auth),
            404,
            "not_found",
            None,
        ),
        (
            "cancel unknown",
            http.post(url(&format!(
                "/api/v1/tickets/{}/cancel",
                uuid::Uuid::now_v7()
            )))
            .header("authorization", &auth),
            404,
            "not_found",
            None,
        ),
        (
            "cancel finished",
            http.post(url(&format!("/api/v1/tickets/{finished}/cancel")))
                .header("authorization", &auth),
            409,
            "illegal_transition",
            None,
        ),
        (
            "bad state filter",
            http.get(url("/api/v1/tickets?state=asleep"))
                .header("authorization", &auth),
            422,
            "invalid",
            Some("state"),
        ),
        (
            "bad limit",
            http.get(url("/api/v1/tickets?limit=5000"))
                .header("authorization", &auth),
            422,
            "invalid",
            Some("limit"),
        ),
        (
            "no such route",
            http.get(url("/api/v1/nope")).header("authorization", &auth),
            404,
            "not_found",
            None,
        ),
    ];
    for (name, req, status, kind, field) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: body is not JSON: {e}"));
        let err = &body["error"];
        assert_eq!(err["kind"], kind, "{name}: {body}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{name}: {body}");
        }
    }
    // Nothing but the one good ticket exists, and it is unchanged.
    let all = server.all_tickets().await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["state"], "succeeded");
    let summary = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(summary["total"]["attempts"], 1);
    let tenants = server.json("/api/v1/tenants").await.unwrap();
    assert_eq!(
        tenants.as_array().unwrap().len(),
        1,
        "a refused ticket creates no tenant: {tenants}"
    );
    // Health needs no token.
    let h = http.get(url("/api/v1/health")).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test]
async fn events_stream_over_websocket_and_metrics_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let ws_url = server.url.replace("http://", "ws://") + "/api/v1/events";

    // No token, no stream.
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    let id = server.submit("stream me").await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(&"succeeded".to_owned()) {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("events within 30s")
            .unwrap()
            .unwrap();
        // A keepalive ping is no event.
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
            continue;
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["type"] == "tickets_transitioned" {
            for t in event["transitions"].as_array().unwrap() {
                if t["ticket"] == id.as_str() {
                    seen.push(t["to"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    assert_eq!(seen, ["queued", "routed", "running", "succeeded"]);
    ws.close(None).await.unwrap();

    let metrics = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("oshal_tickets{state=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("oshal_ledger_rows_total 1"), "{metrics}");
    assert!(
        metrics.contains("oshal_lane_depth{bot=\"bot-01\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_token_file_is_private_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("api-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(server.token.len() >= 32);
    let status = server.stop().unwrap();
    assert!(status.success(), "{status:?}");
    // The same token is used on the next start.
    let token = server.token.clone();
    let again = Server::start(dir.path(), &[]).unwrap();
    assert_eq!(again.token, token);
}

/// Bulk cancel and retry by filter: a dry run counts and changes nothing;
/// the run acts on exactly what it counted; a second retry of the same
/// tickets makes no second copy; bad requests name their field.
#[tokio::test]
async fn bulk_cancel_and_retry_by_filter_with_a_dry_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let mut held = Vec::new();
    for i in 0..5 {
        let r = server
            .post("/api/v1/tickets")
            .json(&json!({"kind": "chat", "payload": {"prompt": format!("held {i}")}, "requires_approval": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        held.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let done = server.submit("runs to the end").await.unwrap();
    server.wait_terminal(&done).await.unwrap();
    // Everything, dry: 6 match, 5 are unfinished; nothing changes.
    let (status, dry) = bulk(&server, json!({"action": "cancel", "dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (
            dry["matched"].as_u64(),
            dry["eligible"].as_u64(),
            dry["done"].as_u64()
        ),
        (Some(6), Some(5), Some(0))
    );
    assert_eq!(count(&server, "awaiting_approval").await, 5);

    let (_, run) = bulk(
        &server,
        json!({"action": "cancel", "filter": {"state": "awaiting_approval"}}),
    )
    .await;
    assert_eq!(
        (run["eligible"].as_u64(), run["done"].as_u64()),
        (Some(5), Some(5)),
        "{run}"
    );
    assert_eq!(count(&server, "awaiting_approval").await, 0);
    assert_eq!(count(&server, "cancelled").await, 5);

    // Retry the cancelled ones: new tickets whose parent is the original.
    let (_, dry) = bulk(
        &server,
        json!({"action": "retry", "filter": {"state": "cancelled"}, "dry_run": true}),
    )
    .await;
    assert_eq!(dry["eligible"].as_u64(), Some(5), "{dry}");
    let (_, run) = bulk(
        &server,
        json!({"action": "retry", "filter": {"state": "cancelled"}}),
    )
    .await;
    assert_eq!(run["done"].as_u64(), Some(5), "{run}");
    let created: Vec<String> = run["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for id in &created {
        let t = server.wait_terminal(id).await.unwrap();
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert!(held.contains(&t["parent_id"].as_str().unwrap().to_owned()));
    }
    let (_, again) = bulk(
        &server,
        json!({"action": "retry", "filter": {"state": "cancelled"}}),
    )
    .await;
    assert_eq!(again["done"].as_u64(), Some(0), "{again}");
    assert_eq!(again["failed"].as_array().unwrap().len(), 5);
    assert!(
        again["failed"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("already retried as")
    );

    for (body, field) in [
        (json!({"action": "cancel", "max": 0}), "max"),
        (json!({"action": "cancel", "max": 10001}), "max"),
        (
            json!({"action": "cancel", "filter": {"cursor": "x"}}),
            "filter",
        ),
        (
            json!({"action": "cancel", "filter": {"state": "asleep"}}),
            "state",
        ),
        (json!({"action": "explode"}), "action"),
        (
            json!({"action": "cancel", "everything": true}),
            "everything",
        ),
    ] {
        let (status, err) = bulk(&server, body.clone()).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
}

#[tokio::test]
async fn a_batch_admits_each_ticket_on_its_own_and_a_malformed_one_admits_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let chat = |p: &str| json!({"kind": "chat", "payload": {"prompt": p}});

    // Refused whole: nothing admitted.
    let too_many: Vec<Value> = (0..1001).map(|i| chat(&format!("t{i}"))).collect();
    for (name, body, field) in [
        ("empty", json!({"tickets": []}), "tickets"),
        ("too many", json!({ "tickets": too_many }), "tickets"),
        ("not a list", json!({"tickets": {}}), "tickets"),
        (
            "a malformed ticket",
            json!({"tickets": [chat("fine"), {"kind": "chat", "payload": {}, "colour": "red"}]}),
            "tickets[1].colour",
        ),
        (
            "a ticket missing its kind",
            json!({"tickets": [chat("fine"), {"payload": {}}]}),
            "tickets[1].kind",
        ),
    ] {
        let (status, v) = post(&server, "/api/v1/tickets/batch", body).await;
        assert_eq!(status, 422, "{name}: {v}");
        assert_eq!(v["error"]["kind"], "invalid", "{name}: {v}");
        assert_eq!(v["error"]["field"], field, "{name}: {v}");
    }
    let empty = server.json("/api/v1/tickets/counts").await.unwrap();
    assert!(
        empty.as_array().unwrap().iter().all(|c| c["count"] == 0),
        "a refused batch admits nothing: {empty}"
    );

    // Admitted one by one: the bad one is refused by its place, the rest run.
    let (status, v) = post(
        &server,
        "/api/v1/tickets/batch",
        json!({"tickets": [
            chat("first"),
            {"kind": "chat", "payload": {"prompt": "second"}, "priority": 99},
            {"kind": "chat", "payload": {"prompt": "third"}, "tenant": "acme"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{v}");
    let refused = &results[1]["refused"];
    assert_eq!(refused["kind"], "invalid", "{v}");
    assert_eq!(refused["field"], "tickets[1].priority", "{v}");
    assert_eq!(results[2]["accepted"]["tenant"], "acme", "{v}");
    for r in [&results[0], &results[2]] {
        let id = r["accepted"]["id"].as_str().unwrap();
        let t = server.wait_terminal(id).await.unwrap();
        assert_eq!(t["state"], "succeeded", "{t:#}");
    }
    assert_eq!(server.all_tickets().await.unwrap().len(), 2);
}

async fn bulk(server: &Server, body: Value) -> (u16, Value) {
    post(server, "/api/v1/tickets/bulk", body).await
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = server.post(path).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

async fn count(server: &Server, state: &str) -> u64 {
    let counts = server.json("/api/v1/tickets/counts").await.unwrap();
    counts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["state"] == state)
        .map_or(0, |c| c["count"].as_u64().unwrap())
}

/// An operator's feed says the bots whole once, then only what moved: a
/// bot that ran a ticket, and nothing at all while the pool is idle.
#[tokio::test]
async fn the_bots_feed_says_them_whole_once_then_only_what_moved() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let ws_url = format!(
        "{}/api/v1/events?token={}",
        server.url.replace("http://", "ws://"),
        server.token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    // The bots' messages within `for`, in order.
    async fn bots_said(
        ws: &mut (
                 impl futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin
             ),
        until: impl Fn(&[Value]) -> bool,
        within: Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut said = Vec::new();
        while !until(&said) {
            let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await else {
                break;
            };
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg.unwrap() else {
                continue;
            };
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["type"].as_str().unwrap().starts_with("bots_") {
                said.push(event);
            }
        }
        said
    }
    let first = bots_said(&mut ws, |s| !s.is_empty(), Duration::from_secs(10)).await;
    assert_eq!(first[0]["type"], "bots_updated", "{first:#?}");
    assert_eq!(first[0]["bots"].as_array().unwrap().len(), 2);

    let id = server.submit("move one bot").await.unwrap();
    let ran = server.wait_terminal(&id).await.unwrap();
    let bot = ran["bot"].as_str().unwrap().to_owned();
    let moved = bots_said(
        &mut ws,
        |s| {
            s.iter().any(|e| {
                e["changed"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|b| b["id"] == bot.as_str() && b["succeeded"] == 1)
                })
            })
        },
        Duration::from_secs(10),
    )
    .await;
    for e in &moved {
        assert_eq!(e["type"], "bots_changed", "{e:#}");
        assert_eq!(e["gone"], json!([]), "{e:#}");
    }
    assert!(!moved.is_empty(), "the bot that ran was never said to move");
    // Idle once the bot that ran is still (nothing in flight, its lane
    // empty and acknowledged): from then on, silence.
    let still = |b: &Value| {
        b["in_flight"] == 0
            && b["lane"]["depth"] == 0
            && b["lane"]["pending"] == 0
            && b["lane"]["acked_total"] == b["lane"]["published_total"]
    };
    let said_still = |s: &[Value]| {
        s.iter().any(|e| {
            e["changed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["id"] == bot.as_str() && still(b)))
        })
    };
    if !moved.iter().any(|e| said_still(std::slice::from_ref(e))) {
        let settled = bots_said(&mut ws, said_still, Duration::from_secs(10)).await;
        assert!(
            said_still(&settled),
            "the bot never went still: {settled:#?}"
        );
    }
    let quiet = bots_said(&mut ws, |_| false, Duration::from_secs(3)).await;
    assert!(quiet.is_empty(), "an idle pool still sent {quiet:#?}");
}
