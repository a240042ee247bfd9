//! The API's own tests: its error mapping, and the server as a probe from
//! the Security Center sees it.

use super::*;
use crate::clock::SystemClock;
use crate::controller::{Controller, ControllerConfig, ControllerError, LocalPool};
use crate::security::{CheckRun, CheckStatus, Listener};
use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;
use std::sync::Arc;

/// A refusal of the data by the store is the caller's to fix: 422, never
/// the 503 of an outage (which told clients to retry the same poison).
#[test]
fn a_store_refusing_the_data_is_invalid_not_unavailable() {
    let refused = ControllerError::Store(StoreError::Rejected {
        code: "22P05".into(),
        message: "unsupported Unicode escape sequence".into(),
    });
    let e = ApiError::from(refused);
    assert_eq!((e.kind, e.kind.status()), (ErrorKind::Invalid, 422));
    assert!(e.message.contains("22P05"), "{e:?}");
    let down = ApiError::from(ControllerError::Store(StoreError::Unavailable(
        "reset".into(),
    )));
    assert_eq!(down.kind.status(), 503);
}

/// A local controller on SQLite (one built-in bot) serving its API on a
/// loopback listener (plain HTTP, no domains) until [`Served::stop`].
struct Served {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    controller: Controller,
    addr: std::net::SocketAddr,
    token: http::ApiToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Served {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let controller = Controller::start(
            ControllerConfig::default(),
            store.clone(),
            LocalPool::builtin(1),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = http::ApiToken::generate();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(http::serve(
            controller.clone(),
            None,
            http::Domains::default(),
            listener,
            None,
            crate::tls::Edge::default(),
            token.clone(),
            None,
            shutdown.clone(),
        ));
        Served {
            _dir: dir,
            store,
            controller,
            addr,
            token,
            server,
            shutdown,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
        self.controller.shutdown().await;
    }
}

#[tokio::test]
async fn an_api_listener_is_probed_live() {
    let served = Served::start().await;
    let addr = served.addr;
    // Every gated operation of the contract, on every listener: the token
    // gate was proven on one route, so a route mounted outside it passed.
    let routes = super::routes::surface();
    let ok =
        crate::security::platform::surface_checks(&[Listener { addr, tls: false }], &routes).await;
    assert!(ok.iter().all(CheckRun::passed), "{ok:#?}");
    let n = super::routes::ALL.len() - 1;
    assert_eq!(
        ok[0].evidence,
        format!(
            "1 listeners, {}/{} unauthenticated probes refused with 401 ({n} routes)",
            2 * n,
            2 * n
        )
    );

    // A listener that gates every route but one: the one is found.
    let leaky = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let leaky_addr = leaky.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(|| async { "oshal_up 1" }))
        .fallback(|| async { axum::http::StatusCode::UNAUTHORIZED });
    let leaky_server = tokio::spawn(async move { axum::serve(leaky, app).await });
    let found = crate::security::platform::surface_checks(
        &[Listener {
            addr: leaky_addr,
            tls: false,
        }],
        &routes,
    )
    .await;
    assert_eq!(found[0].status, CheckStatus::Failed, "{found:#?}");
    assert_eq!(
        found[0].observations.len(),
        2,
        "no token, and a wrong one: {found:#?}"
    );
    assert!(
        found[0].observations[0]
            .message
            .contains("/metrics with no token answered 200"),
        "{found:#?}"
    );
    leaky_server.abort();

    // A plain listener that answers anyone, on a non-loopback address.
    let open = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let open_addr = open.local_addr().unwrap();
    let app = axum::Router::new().route("/api/v1/bots", axum::routing::get(|| async { "[]" }));
    let open_server = tokio::spawn(async move { axum::serve(open, app).await });
    let bad = crate::security::platform::surface_checks(
        &[Listener {
            addr: open_addr,
            tls: false,
        }],
        &[],
    )
    .await;
    assert_eq!(bad[0].status, CheckStatus::Failed, "{bad:#?}");
    assert!(bad[0].observations[0].message.contains("answered 200"));
    assert_eq!(bad[1].status, CheckStatus::Failed, "{bad:#?}");
    open_server.abort();
    served.stop().await;
}

/// The token-free health route said why the store was down in the store's
/// own words (its address, its driver's error): now a code for everyone,
/// the words only for a caller holding the token.
#[tokio::test]
async fn health_tells_strangers_a_code_and_the_token_holder_why() {
    let served = Served::start().await;
    let url = format!("{}/api/v1/health", served.base());
    let token = served.token.clone();
    served.store.close().await; // the store goes away
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 503);
    let text = anonymous.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["store"], "unavailable", "{text}");
    assert!(body.get("detail").is_none(), "{text}");
    assert!(
        !text.contains("closed"),
        "the store's own words leaked: {text}"
    );
    let holder: serde_json::Value = client
        .get(&url)
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        holder["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{holder}"
    );
    served.stop().await;
}

/// The architecture's edges as the API counts them: each request the gate
/// decides, each ticket admitted, routed and back, each commit; and the
/// last two minutes as committed, for charts opened after the work ended.
#[tokio::test]
async fn the_flow_counts_each_edge_and_the_series_remembers_what_finished() {
    let served = Served::start().await;
    let (controller, base, token) = (&served.controller, served.base(), &served.token);
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(token.expose())
            .send()
    };
    let flow =
        async || -> serde_json::Value { get("/api/v1/flow").await.unwrap().json().await.unwrap() };
    let before = flow().await;
    assert_eq!(before["surface"], "http");
    assert_eq!(
        before["tools"],
        serde_json::Value::Null,
        "no connectors here"
    );
    let refused = client
        .get(format!("{base}/api/v1/tickets"))
        .bearer_auth("not-the-token-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r: serde_json::Value = client
            .post(format!("{base}/api/v1/tickets"))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({"kind": "chat", "payload": {"prompt": format!("t{i}")}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let id = crate::ticket::TicketId::parse(id).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while !controller.ticket(id).await.unwrap().state.is_terminal() {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // The commit hook counts after the commit: read until it has.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let now = flow().await;
        if now["results"].as_u64() >= before["results"].as_u64().map(|r| r + 5)
            || tokio::time::Instant::now() > deadline
        {
            break now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let moved = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!(moved("submitted"), 5, "{after:#}");
    assert_eq!((moved("routed"), moved("results")), (5, 5), "{after:#}");
    assert!(moved("commits") >= 1 && moved("committed_rows") >= 5 * 4);
    // Between the two reads the gate let the five submissions through and
    // refused one request; its own reads of the counts are not traffic.
    let gate = |v: &serde_json::Value, k: &str| v["gate"][k].as_u64().unwrap();
    assert_eq!(gate(&after, "admitted") - gate(&before, "admitted"), 5);
    assert_eq!(gate(&after, "refused") - gate(&before, "refused"), 1);

    // The current second is not in the series until it is over: read until
    // the five are.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (seconds, finished) = loop {
        let seconds: Vec<serde_json::Value> =
            get("/api/v1/series").await.unwrap().json().await.unwrap();
        let finished: u64 = seconds
            .iter()
            .map(|s| s["finished"].as_u64().unwrap())
            .sum();
        if finished >= 5 || tokio::time::Instant::now() > deadline {
            break (seconds, finished);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(finished, 5, "{seconds:#?}");
    assert!(
        seconds
            .windows(2)
            .all(|w| w[1]["t_ms"].as_i64().unwrap() - w[0]["t_ms"].as_i64().unwrap() == 1000)
    );
    served.stop().await;
}

/// Draining over HTTP: the token is required, the last bot of a skill is
/// refused with why (409), an unknown bot or node is 404, and uncordoning
/// a bot that is not drained changes nothing.
#[tokio::test]
async fn a_bot_is_drained_and_uncordoned_over_http_with_the_token() {
    let served = Served::start().await;
    let (controller, base, token) = (&served.controller, served.base(), &served.token);
    let client = reqwest::Client::new();
    let bot = controller.bots().await[0].id.to_string();
    let post = |path: String, auth: bool| {
        let r = client.post(format!("{base}{path}"));
        if auth {
            r.bearer_auth(token.expose())
        } else {
            r
        }
        .send()
    };
    let r = post(format!("/api/v1/bots/{bot}/drain"), false)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post(format!("/api/v1/bots/{bot}/drain"), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("last live bot with")),
        "{body}"
    );
    let r = post("/api/v1/bots/nobody/drain".into(), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = post(format!("/api/v1/bots/{bot}/uncordon"), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hold: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (hold["cordoned"].as_bool(), hold["changed"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(!controller.bots().await[0].cordoned);
    // A node: the token is required, the local pool is on no node (404),
    // and a name no bot could carry is refused naming it (422).
    let r = post("/api/v1/nodes/n1/drain".into(), false).await.unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/api/v1/nodes/n1/drain", "/api/v1/nodes/n1/uncordon"] {
        let r = post(path.into(), true).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no node n1")),
            "{body}"
        );
    }
    let r = post("/api/v1/nodes/Not%20A%20Node/drain".into(), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "node", "{body}");
    served.stop().await;
}

/// The tenant directory says which tenants are paused, as pausing and
/// resuming over HTTP leave them.
#[tokio::test]
async fn the_tenant_directory_says_which_tenants_are_paused() {
    let served = Served::start().await;
    let (base, token) = (served.base(), &served.token);
    let client = reqwest::Client::new();
    for tenant in ["acme", "globex"] {
        let r = client
            .put(format!("{base}/api/v1/tenants/{tenant}"))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({ "budget_usd": 5 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let paused = || async {
        let list: Vec<serde_json::Value> = client
            .get(format!("{base}/api/v1/tenants"))
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut list: Vec<(String, Option<bool>)> = list
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_owned(), t["paused"].as_bool()))
            .collect();
        list.sort();
        list
    };
    let globex = ("globex".to_owned(), Some(false));
    assert_eq!(
        paused().await,
        [("acme".to_owned(), Some(false)), globex.clone()]
    );
    for (action, now) in [("pause", true), ("resume", false)] {
        let r = client
            .post(format!("{base}/api/v1/tenants/acme/{action}"))
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}");
        assert_eq!(
            paused().await,
            [("acme".to_owned(), Some(now)), globex.clone()],
            "{action}: only acme moves"
        );
    }
    served.stop().await;
}

/// The walk-through's tickets, tagged by their keys, are listed by the tag
/// and cleared over HTTP: the unfinished cancelled, the ended removed
/// (SQLite), an untagged ticket untouched; a tenant's token clears only its
/// tenant's; any tag but one tour's whole one is refused, naming the field.
#[tokio::test]
async fn a_walk_through_s_tickets_are_listed_by_tag_and_cleared() {
    let served = Served::start().await;
    let (base, token) = (served.base(), served.token.expose().to_owned());
    let client = reqwest::Client::new();
    let send =
        |method: reqwest::Method, path: String, bearer: &str, body: Option<serde_json::Value>| {
            let r = client.request(method, format!("{base}{path}"));
            let r = if bearer.is_empty() {
                r
            } else {
                r.bearer_auth(bearer)
            };
            match body {
                Some(b) => r.json(&b),
                None => r,
            }
            .send()
        };
    let r = send(
        reqwest::Method::PUT,
        "/api/v1/tenants/acme".into(),
        &token,
        Some(serde_json::json!({"budget_usd": 10.0})),
    );
    assert!(r.await.unwrap().status().is_success());
    let r = send(
        reqwest::Method::POST,
        "/api/v1/tokens".into(),
        &token,
        Some(serde_json::json!({"tenant": "acme", "role": "operator"})),
    );
    let acme: serde_json::Value = r.await.unwrap().json().await.unwrap();
    let acme = acme["token"].as_str().unwrap().to_owned();

    let tag = "tour:0193a0c4-1b2c-7def-8000-00000000abcd:";
    let mut ids = Vec::new();
    for (tenant, key, held) in [
        ("default", format!("{tag}route-1"), false),
        ("default", format!("{tag}cancel-1"), true),
        ("acme", format!("{tag}route-2"), false),
        ("default", "mine".to_owned(), false),
    ] {
        let body = serde_json::json!({"kind": "chat", "payload": {"prompt": "hello"}, "tenant": tenant, "idempotency_key": key, "requires_approval": held});
        let r = send(
            reqwest::Method::POST,
            "/api/v1/tickets".into(),
            &token,
            Some(body),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        ids.push(crate::ticket::TicketId::parse(body["id"].as_str().unwrap()).unwrap());
    }
    // All but the second run to the end; the second waits for an approval.
    for id in [ids[0], ids[2], ids[3]] {
        let mut ended = false;
        for _ in 0..300 {
            ended = served
                .controller
                .ticket(id)
                .await
                .unwrap()
                .state
                .is_terminal();
            if ended {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ended, "{id} did not end");
    }
    let listed = |bearer: String| {
        let r = send(
            reqwest::Method::GET,
            format!("/api/v1/tickets?tag={tag}"),
            &bearer,
            None,
        );
        async move {
            let page: crate::store::TicketPage = r.await.unwrap().json().await.unwrap();
            let mut got: Vec<_> = page.tickets.iter().map(|t| t.id).collect();
            got.sort();
            got
        }
    };
    let mut want = vec![ids[0], ids[1], ids[2]];
    want.sort();
    assert_eq!(listed(token.clone()).await, want);
    assert_eq!(
        listed(acme.clone()).await,
        vec![ids[2]],
        "a tenant lists its own"
    );

    let delete = |query: String, bearer: String| {
        send(
            reqwest::Method::DELETE,
            format!("/api/v1/tickets?{query}"),
            &bearer,
            None,
        )
    };
    assert_eq!(
        delete(format!("tag={tag}"), String::new())
            .await
            .unwrap()
            .status(),
        401
    );
    for (query, says) in [
        ("tag=mine", "not a walk-through"),
        ("tag=TOUR:x", "'T'"),
        ("tag=tour:", "not a walk-through"),
        // A prefix of every tour's tag (their UUIDs begin alike) is not one tour's.
        ("tag=tour:0", "not a walk-through"),
    ] {
        let r = delete(query.into(), token.clone()).await.unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["field"], "tag", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let cleared = |bearer: String| {
        let r = delete(format!("tag={tag}"), bearer);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<crate::store::Cleared>().await.unwrap()
        }
    };
    // acme's token reaches acme's ticket alone.
    let by_acme = cleared(acme.clone()).await;
    assert_eq!(
        by_acme,
        crate::store::Cleared {
            removed: 1,
            ..Default::default()
        }
    );
    let by_operator = cleared(token.clone()).await;
    assert_eq!(
        by_operator,
        crate::store::Cleared {
            cancelled: 1,
            removed: 2,
            unfinished: 0,
            kept: 0
        }
    );
    for (id, status) in [(ids[0], 404), (ids[1], 404), (ids[2], 404), (ids[3], 200)] {
        let r = send(
            reqwest::Method::GET,
            format!("/api/v1/tickets/{id}"),
            &token,
            None,
        );
        assert_eq!(r.await.unwrap().status(), status, "{id}");
    }
    // Again: nothing is left to clear.
    assert_eq!(
        cleared(token.clone()).await,
        crate::store::Cleared::default()
    );
    served.stop().await;
}

/// A ticket submitted over HTTP keeps the time the gate admitted its
/// request (a caller cannot set it), at or before the controller's
/// admission; one submitted in process passed no gate and has none.
#[tokio::test]
async fn a_ticket_over_http_keeps_the_gate_s_time_and_one_in_process_has_none() {
    let served = Served::start().await;
    let client = reqwest::Client::new();
    let before = crate::clock::Clock::now_ms(&SystemClock);
    let submit = |body: serde_json::Value| {
        client
            .post(format!("{}/api/v1/tickets", served.base()))
            .bearer_auth(served.token.expose())
            .json(&body)
            .send()
    };
    let r =
        submit(serde_json::json!({"kind": "chat", "payload": {"prompt": "hi"}, "gate_at_ms": 5}))
            .await
            .unwrap();
    assert_eq!(r.status(), 422, "a caller cannot say when the gate decided");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gate_at_ms"),
        "{body}"
    );
    let r = submit(serde_json::json!({"kind": "chat", "payload": {"prompt": "hi"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id: serde_json::Value = r.json().await.unwrap();
    let id = crate::ticket::TicketId::parse(id["id"].as_str().unwrap()).unwrap();
    let view = served.controller.ticket(id).await.unwrap();
    let gate = view.gate_at_ms.expect("a gate decision is recorded");
    assert!(
        before <= gate && gate <= view.created_at_ms,
        "{before} {gate} {}",
        view.created_at_ms
    );
    assert_eq!(view.events[0].at_ms, view.created_at_ms);
    let inside = served
        .controller
        .submit(crate::ticket::NewTicket::chat("hi"))
        .await
        .unwrap();
    let view = served.controller.ticket(inside.id).await.unwrap();
    assert_eq!(view.gate_at_ms, None);
    served.stop().await;
}
