//! Brokered connectors against real components: OpenBao (Vault's API) as
//! the secret backend, a real HTTP server on loopback as the outside
//! system, SQLite for grants, audit and the effect ledger, and the
//! controller with its bots running `tool` tickets.

use anyhow::Result;
use async_trait::async_trait;
use oshal_core::clock::SystemClock;
use oshal_core::connector::broker::vault::VaultBackend;
use oshal_core::connector::broker::{Secret, SecretBackend};
use oshal_core::connector::gate::CallRef;
use oshal_core::connector::runtime::{ToolError, ToolRequest};
use oshal_core::connector::signing::TrustedKeys;
use oshal_core::connector::store::{AuditKind, Condition, EffectState};
use oshal_core::connector::{Connectors, NewGrant};
use oshal_core::controller::{Controller, ControllerConfig, LocalPool};
use oshal_core::model::builtin::BuiltinModel;
use oshal_core::model::{ChatReply, ChatRequest, Model, ModelError};
use oshal_core::security::secrets::SecretRules;
use oshal_core::store::sqlite::SqliteStore;
use oshal_core::ticket::{BotId, ModelId, NewTicket, TenantId, TicketId, TicketState, Work};
use oshal_e2e::outside::{OpenBao, Outside};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything one test needs: a data directory, OpenBao, the outside
/// system, and connectors over them with `shop` imported and approved.
struct Rig {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    bao: OpenBao,
    prefix: String,
    outside: Outside,
    connectors: Connectors,
    api_key: String,
}

impl Rig {
    async fn new() -> Result<Rig> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(SqliteStore::open(dir.path()).await?);
        let bao = OpenBao::start().await?;
        let api_key = format!("sk_live_{}", uuid::Uuid::new_v4().simple());
        let outside = Outside::start(&api_key).await?;
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let connectors = open(&store, &bao, &prefix).await?;
        connectors
            .import_openapi(&outside.openapi("shop", "api_key"), "test")
            .await?;
        connectors.approve("shop", "test").await?;
        connectors
            .broker()
            .store_credential("shop", &json!({ "api_key": api_key }))
            .await?;
        Ok(Rig {
            dir,
            store,
            bao,
            prefix,
            outside,
            connectors,
            api_key,
        })
    }

    /// The same connectors opened again over the same database and
    /// backend: what a restarted process has.
    async fn reopen(&self) -> Result<Connectors> {
        open(&self.store, &self.bao, &self.prefix).await
    }

    async fn grant(&self, bot: &str, ops: &[&str], scopes: &[&str]) -> Result<String> {
        self.grant_on("shop", bot, ops, scopes).await
    }

    /// Grants `bot` the operations and scopes on `connector`; the grant's id.
    async fn grant_on(
        &self,
        connector: &str,
        bot: &str,
        ops: &[&str],
        scopes: &[&str],
    ) -> Result<String> {
        let g = self
            .connectors
            .grant(
                NewGrant {
                    bot: bot.into(),
                    connector: connector.into(),
                    operations: ops.iter().map(|s| s.to_string()).collect(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    ..NewGrant::default()
                },
                "test",
            )
            .await?;
        Ok(g.id)
    }
}

/// What a served controller's connectors need: OpenBao with its root token
/// in a file (`--vault-token-file`), a fresh key prefix, and the outside
/// system with its API key.
struct Served {
    bao: OpenBao,
    dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
    prefix: String,
    api_key: String,
    outside: Outside,
}

impl Served {
    async fn start() -> Result<Served> {
        let bao = OpenBao::start().await?;
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("vault-token");
        std::fs::write(&token_file, &bao.root_token)?;
        let api_key = format!("sk_live_{}", uuid::Uuid::new_v4().simple());
        let outside = Outside::start(&api_key).await?;
        Ok(Served {
            bao,
            dir,
            token_file,
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
            api_key,
            outside,
        })
    }
}

async fn open(store: &SqliteStore, bao: &OpenBao, prefix: &str) -> Result<Connectors> {
    let backend = VaultBackend::new(
        &bao.addr,
        Secret::new(bao.root_token.clone()),
        "secret",
        prefix,
    )?;
    Ok(Connectors::open(
        oshal_core::connector::store::sqlite(store.pool().clone()),
        Arc::new(backend),
        TrustedKeys::shipped(),
        SecretRules::shipped_shared(),
        Arc::new(SystemClock),
    )
    .await?)
}

fn call(bot: &str, ticket: TicketId, attempt: u32, op: &str, params: Value) -> ToolRequest {
    ToolRequest {
        call: CallRef {
            bot: BotId::parse(bot).unwrap(),
            tenant: Some(TenantId::default_tenant()),
            ticket,
            attempt,
            connector: "shop".into(),
            operation: op.into(),
        },
        params,
        call_index: 0,
        dry_run: false,
    }
}

fn new_ticket() -> TicketId {
    TicketId::parse(&uuid::Uuid::now_v7().to_string()).unwrap()
}

async fn run(
    c: &Connectors,
    req: &ToolRequest,
) -> Result<oshal_core::connector::runtime::ToolResult, ToolError> {
    c.runtime().call(req, &CancellationToken::new()).await
}

fn denied(r: Result<oshal_core::connector::runtime::ToolResult, ToolError>) -> String {
    match r {
        Err(ToolError::Denied(reason)) => reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn the_gate_denies_by_default_and_a_grant_allows_exactly_its_operations_and_scopes()
-> Result<()> {
    let rig = Rig::new().await?;
    let c = &rig.connectors;
    let t = new_ticket();

    let why = denied(
        run(
            c,
            &call("bot-01", t, 1, "get_order", json!({"order_id": "o1"})),
        )
        .await,
    );
    assert!(why.contains("denied by default"), "{why}");
    assert_eq!(
        rig.outside.received().len(),
        0,
        "nothing reaches the outside system"
    );

    rig.grant("bot-01", &["get_order"], &["orders:read"])
        .await?;
    let ok = run(
        c,
        &call("bot-01", t, 1, "get_order", json!({"order_id": "o1"})),
    )
    .await
    .unwrap();
    assert_eq!((ok.status, ok.body["id"].as_str()), (200, Some("o1")));
    let got = rig.outside.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-api-key"),
        Some(rig.api_key.as_str()),
        "the broker's credential went on the request"
    );

    // The grant names one operation: its neighbours stay denied, as does another bot.
    denied(run(c, &call("bot-01", t, 1, "list_orders", json!({}))).await);
    denied(
        run(
            c,
            &call("bot-02", t, 1, "get_order", json!({"order_id": "o1"})),
        )
        .await,
    );
    // A grant of the operation without all of its scopes does not allow it.
    rig.grant("bot-03", &["create_order"], &["orders:read"])
        .await?;
    let why = denied(
        run(
            c,
            &call(
                "bot-03",
                t,
                1,
                "create_order",
                json!({"sku": "a", "quantity": 1, "amount": 1}),
            ),
        )
        .await,
    );
    assert!(why.contains("lacks scope orders:write"), "{why}");
    // An imported entry that nobody approved cannot run, grant or not.
    let mut doc = rig.outside.openapi("shop-unapproved", "api_key");
    doc["info"]["title"] = json!("Unapproved");
    let view = c.import_openapi(&doc, "test").await?;
    assert!(!view.enabled && !view.signed);
    rig.grant_on(
        "shop-unapproved",
        "bot-01",
        &["get_order"],
        &["orders:read"],
    )
    .await?;
    let mut req = call("bot-01", t, 1, "get_order", json!({"order_id": "o1"}));
    req.call.connector = "shop-unapproved".into();
    let why = denied(run(c, &req).await);
    assert!(why.contains("not enabled"), "{why}");
    assert_eq!(
        rig.outside.received().len(),
        1,
        "only the allowed call went out"
    );

    // A grant cannot be broader than its connector, and says which field is wrong.
    for (new, field) in [
        (
            NewGrant {
                bot: "bot-01".into(),
                connector: "shop".into(),
                operations: vec!["get_order".into()],
                scopes: vec!["admin:all".into()],
                ..NewGrant::default()
            },
            "scopes[0]",
        ),
        (
            NewGrant {
                bot: "bot-01".into(),
                connector: "shop".into(),
                operations: vec!["drop_tables".into()],
                ..NewGrant::default()
            },
            "operations[0]",
        ),
        (
            NewGrant {
                bot: "bot-01".into(),
                connector: "shop".into(),
                operations: vec!["get_order".into()],
                rate_per_minute: Some(0),
                ..NewGrant::default()
            },
            "rate_per_minute",
        ),
        (
            NewGrant {
                bot: "bot-01".into(),
                connector: "nope".into(),
                operations: vec!["get_order".into()],
                ..NewGrant::default()
            },
            "connector",
        ),
        (
            NewGrant {
                bot: "bad bot".into(),
                connector: "shop".into(),
                operations: vec!["get_order".into()],
                ..NewGrant::default()
            },
            "bot",
        ),
    ] {
        let e = c.grant(new, "test").await.unwrap_err();
        let api = oshal_core::api::ApiError::from(e);
        assert_eq!(api.field.as_deref(), Some(field), "{api:?}");
    }

    // Every decision is in the audit trail, with who, what and why.
    let decisions: Vec<_> = c
        .audit(None, None, 100)
        .await?
        .into_iter()
        .filter(|a| a.kind == AuditKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 6);
    assert_eq!(
        decisions.iter().filter(|d| d.allowed == Some(true)).count(),
        1
    );
    assert!(
        decisions
            .iter()
            .all(|d| d.ticket == Some(t) && d.actor.is_some() && !d.reason.is_empty())
    );
    Ok(())
}

#[tokio::test]
async fn a_policy_error_denies_and_rate_and_budget_limits_deny_with_the_reason() -> Result<()> {
    let rig = Rig::new().await?;
    let c = &rig.connectors;
    let t = new_ticket();
    let grant = |bot: &str, ops: &[&str], conditions: Vec<Condition>, rate, budget| NewGrant {
        bot: bot.into(),
        connector: "shop".into(),
        operations: ops.iter().map(|s| s.to_string()).collect(),
        scopes: vec!["orders:read".into(), "orders:write".into()],
        conditions,
        rate_per_minute: Some(rate),
        budget_calls: Some(budget),
    };
    // A condition that cannot be evaluated (the parameter is missing, or not
    // a number) denies; one that is breached denies; one that holds allows.
    c.grant(
        grant(
            "bot-01",
            &["list_orders"],
            vec![Condition {
                param: "limit".into(),
                max: 10.0,
            }],
            100,
            100,
        ),
        "test",
    )
    .await?;
    let why = denied(run(c, &call("bot-01", t, 1, "list_orders", json!({}))).await);
    assert!(
        why.contains("could not be evaluated") && why.contains("\"limit\""),
        "{why}"
    );
    // A parameter of the wrong type is refused by the operation's schema
    // before any condition reads it.
    match run(
        c,
        &call("bot-01", t, 1, "list_orders", json!({"limit": "ten"})),
    )
    .await
    {
        Err(ToolError::InvalidParams { field, reason }) => {
            assert_eq!(field, "params.limit");
            assert!(reason.contains("integer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let why = denied(
        run(
            c,
            &call("bot-01", t, 1, "list_orders", json!({"limit": 50})),
        )
        .await,
    );
    assert!(
        why.contains("limit = 50 exceeds the grant's limit of 10"),
        "{why}"
    );
    run(c, &call("bot-01", t, 1, "list_orders", json!({"limit": 5})))
        .await
        .unwrap();

    // Rate: 2 calls per minute.
    c.grant(grant("bot-02", &["get_order"], vec![], 2, 100), "test")
        .await?;
    for _ in 0..2 {
        run(
            c,
            &call("bot-02", t, 1, "get_order", json!({"order_id": "x"})),
        )
        .await
        .unwrap();
    }
    let why = denied(
        run(
            c,
            &call("bot-02", t, 1, "get_order", json!({"order_id": "x"})),
        )
        .await,
    );
    assert_eq!(why, "rate limit: 2 calls in the last minute (limit 2)");

    // Budget: 2 calls in all, and the count survives a restart.
    c.grant(grant("bot-03", &["get_order"], vec![], 100, 2), "test")
        .await?;
    run(
        c,
        &call("bot-03", t, 1, "get_order", json!({"order_id": "x"})),
    )
    .await
    .unwrap();
    let again = rig.reopen().await?;
    run(
        &again,
        &call("bot-03", t, 1, "get_order", json!({"order_id": "x"})),
    )
    .await
    .unwrap();
    let why = denied(
        run(
            &again,
            &call("bot-03", t, 1, "get_order", json!({"order_id": "x"})),
        )
        .await,
    );
    assert_eq!(why, "budget spent: 2 of 2 calls");

    // Bad parameters are refused by the gate, naming the field, before they
    // take a rate slot or spend budget; nothing is sent. A grant of one call:
    // two malformed calls, then the good one still goes through.
    c.grant(grant("bot-04", &["list_orders"], vec![], 1, 1), "test")
        .await?;
    let before = rig.outside.received().len();
    for _ in 0..2 {
        let e = run(c, &call("bot-04", t, 1, "list_orders", json!({"limit": 0})))
            .await
            .unwrap_err();
        match e {
            ToolError::InvalidParams { field, .. } => assert_eq!(field, "params.limit"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rig.outside.received().len(), before);
    run(c, &call("bot-04", t, 1, "list_orders", json!({"limit": 5})))
        .await
        .unwrap();
    let why = denied(run(c, &call("bot-04", t, 1, "list_orders", json!({"limit": 5}))).await);
    assert!(
        why.starts_with("rate limit") || why.starts_with("budget spent"),
        "{why}"
    );
    // A bot with no grant is denied by default and learns nothing of the
    // operation's parameters.
    let why = denied(run(c, &call("bot-09", t, 1, "list_orders", json!({"limit": 0}))).await);
    assert!(why.contains("denied by default"), "{why}");
    Ok(())
}

#[tokio::test]
async fn a_secret_in_an_outside_answer_is_redacted_before_it_is_kept_or_returned() -> Result<()> {
    let rig = Rig::new().await?;
    rig.grant(
        "bot-01",
        &["create_order"],
        &["orders:read", "orders:write"],
    )
    .await?;
    let t = new_ticket();
    // The outside system echoes the sku; here it is shaped like a token
    // (a bot's own params are not scanned by this layer; a ticket's are, at
    // admission).
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let order = json!({"sku": token, "quantity": 1, "amount": 1.0});
    let answer = run(
        &rig.connectors,
        &call("bot-01", t, 1, "create_order", order.clone()),
    )
    .await
    .unwrap();
    assert_eq!(answer.body["sku"], "[redacted: github-token]");
    assert_eq!(
        answer.body["status"], "open",
        "the rest of the answer is kept"
    );
    let effects = rig.connectors.effects(Some(t), None, 10).await?;
    assert_eq!(effects.len(), 1);
    let stored = serde_json::to_string(&effects[0].response)?;
    assert!(
        !stored.contains(token),
        "the effect ledger keeps no secret: {stored}"
    );
    assert!(stored.contains("[redacted: github-token]"), "{stored}");
    // A replay returns the recorded, redacted answer.
    let replay = run(
        &rig.connectors,
        &call("bot-01", t, 2, "create_order", order),
    )
    .await
    .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.body, answer.body);
    Ok(())
}

#[tokio::test]
async fn a_write_is_sent_once_across_a_crash_a_retry_and_a_replay() -> Result<()> {
    let rig = Rig::new().await?;
    rig.grant(
        "bot-01",
        &["create_order"],
        &["orders:read", "orders:write"],
    )
    .await?;
    let t = new_ticket();
    let order = json!({"sku": "sku-9", "quantity": 2, "amount": 40.0});

    // The outside system applies the write and its answer is lost; the
    // process dies while waiting for it.
    rig.outside
        .state
        .swallow_write_answers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = {
        let c = rig.connectors.clone();
        let req = call("bot-01", t, 1, "create_order", order.clone());
        tokio::spawn(async move { c.runtime().call(&req, &CancellationToken::new()).await })
    };
    rig.outside.wait_for("POST", "/orders").await?;
    first.abort();
    let _ = first.await;
    let effects = rig.connectors.effects(Some(t), None, 10).await?;
    assert_eq!(effects.len(), 1);
    assert_eq!(
        effects[0].state,
        EffectState::InFlight,
        "an unanswered write is neither done nor failed"
    );
    rig.outside
        .state
        .swallow_write_answers
        .store(false, std::sync::atomic::Ordering::SeqCst);

    // After a restart, the ticket's next attempt reconciles instead of sending.
    let restarted = rig.reopen().await?;
    let second = run(
        &restarted,
        &call("bot-01", t, 2, "create_order", order.clone()),
    )
    .await
    .unwrap();
    assert!(second.replayed);
    assert_eq!(second.body["sku"], "sku-9");
    // A replay of the whole ticket later returns the recorded answer and sends nothing.
    let before = rig.outside.received().len();
    let third = run(
        &restarted,
        &call("bot-01", t, 3, "create_order", order.clone()),
    )
    .await
    .unwrap();
    assert!(third.replayed);
    assert_eq!(third.body, second.body);
    assert_eq!(
        rig.outside.received().len(),
        before,
        "nothing at all was sent for the replay"
    );

    assert_eq!(
        rig.outside.count("POST", "/orders"),
        1,
        "the outside system received the write once"
    );
    assert_eq!(rig.outside.orders(), 1);
    let effects = restarted.effects(Some(t), None, 10).await?;
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0].state, EffectState::Done);
    assert_eq!(
        effects[0].key,
        rig.outside
            .received()
            .iter()
            .find(|r| r.method == "POST")
            .unwrap()
            .header("idempotency-key")
            .unwrap()
    );

    // A different ticket is a different write.
    run(
        &restarted,
        &call("bot-01", new_ticket(), 1, "create_order", order),
    )
    .await
    .unwrap();
    assert_eq!(rig.outside.orders(), 2);
    Ok(())
}

/// A real model that also keeps every prompt it was given.
#[derive(Debug)]
struct Recording {
    inner: BuiltinModel,
    prompts: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Model for Recording {
    fn id(&self) -> &ModelId {
        self.inner.id()
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let text: Vec<String> = request.messages.iter().map(|m| m.content.clone()).collect();
        self.prompts.lock().unwrap().push(text.join("\n"));
        self.inner.chat(request).await
    }
}

/// Log lines, as the process would print them, kept for searching.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start_controller(rig: &Rig, model: Arc<dyn Model>) -> Result<Controller> {
    let pool = LocalPool {
        bots: 2,
        skills: Work::default_skills(),
        model,
        tools: Some(rig.connectors.clone()),
        artifacts: None,
    };
    Ok(Controller::start(
        ControllerConfig::default(),
        rig.store.clone(),
        pool,
        Arc::new(SystemClock),
    )
    .await?)
}

fn tool(op: &str, params: Value) -> NewTicket {
    NewTicket {
        kind: "tool".into(),
        payload: json!({"connector": "shop", "operation": op, "params": params, "prompt": "Summarise the order."}),
        ..NewTicket::default()
    }
}

async fn wait_terminal(c: &Controller, id: TicketId) -> Result<oshal_core::store::TicketView> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = c.ticket(id).await?;
        if t.state.is_terminal() {
            return Ok(t);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ticket {id} stuck in {:?}",
            t.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn no_raw_credential_reaches_a_lane_an_event_a_result_a_prompt_or_a_log() -> Result<()> {
    let logs = LogSink::default();
    let sink = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish(),
    );
    let rig = Rig::new().await?;
    // A second connector on OAuth2 with a refresh token: the broker refreshes
    // (and stores the rotated refresh token) without the bot ever seeing one.
    let oauth = rig.outside.openapi("shop-oauth", "refresh");
    rig.connectors.import_openapi(&oauth, "test").await?;
    rig.connectors.approve("shop-oauth", "test").await?;
    let first_refresh = rig.outside.state.refresh_token.lock().unwrap().clone();
    rig.connectors
        .broker()
        .store_credential(
            "shop-oauth",
            &json!({
                "client_id": rig.outside.state.client_id,
                "client_secret": rig.outside.state.client_secret,
                "refresh_token": first_refresh,
            }),
        )
        .await?;
    for bot in ["bot-01", "bot-02"] {
        rig.grant(
            bot,
            &["get_order", "create_order", "list_orders"],
            &["orders:read", "orders:write"],
        )
        .await?;
        rig.grant_on("shop-oauth", bot, &["list_orders"], &["orders:read"])
            .await?;
    }
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let model = Arc::new(Recording {
        inner: BuiltinModel::new(),
        prompts: prompts.clone(),
    });
    let controller = start_controller(&rig, model).await?;
    let mut events = controller.subscribe();
    let mut oauth_ticket = tool("list_orders", json!({"limit": 5}));
    oauth_ticket.payload["connector"] = json!("shop-oauth");
    let mut ids = Vec::new();
    for t in [
        tool("get_order", json!({"order_id": "o-77"})),
        tool(
            "create_order",
            json!({"sku": "sku-1", "quantity": 1, "amount": 9.5}),
        ),
        tool("list_orders", json!({"limit": 5})),
        oauth_ticket,
    ] {
        ids.push(controller.submit(t).await?.id);
    }
    let mut views = Vec::new();
    for id in &ids {
        let v = wait_terminal(&controller, *id).await?;
        assert_eq!(v.state, TicketState::Succeeded, "{:?}", v.error);
        // Model usage and the tool's effect, both on the ticket.
        let result: Value =
            serde_json::from_str(v.result.as_ref().unwrap()["text"].as_str().unwrap())?;
        assert!(
            result["tool"]["status"].as_u64().is_some() && result["summary"].is_string(),
            "{result}"
        );
        assert!(
            v.cost.input_tokens > 0 && v.ledger.len() == 1,
            "model usage is on the ticket"
        );
        views.push(serde_json::to_string(&v)?);
    }
    let effects = rig.connectors.effects(Some(ids[1]), None, 10).await?;
    assert_eq!(
        effects.len(),
        1,
        "the write is in the effect ledger under its ticket"
    );
    assert_eq!(effects[0].state, EffectState::Done);
    assert_eq!(
        rig.outside.count("POST", "/oauth/token"),
        1,
        "one refresh served both calls' needs"
    );
    controller.shutdown().await;

    // The audit ties every credential read and refresh to its ticket, bot and token.
    let audit = rig.connectors.audit(None, None, 1000).await?;
    for id in &ids {
        let reads: Vec<_> = audit
            .iter()
            .filter(|a| a.kind == AuditKind::CredentialRead && a.ticket == Some(*id))
            .collect();
        assert!(!reads.is_empty(), "no credential read audited for {id}");
        assert!(reads.iter().all(
            |a| a.token_id.as_deref().is_some_and(|t| t.starts_with("tok_"))
                && a.actor.is_some()
                && a.operation.is_some()
        ));
    }
    let refresh: Vec<_> = audit
        .iter()
        .filter(|a| a.kind == AuditKind::Refresh)
        .collect();
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].ticket, Some(ids[3]));
    assert!(
        refresh[0].reason.contains("rotated and stored"),
        "{}",
        refresh[0].reason
    );

    // Now look everywhere a bot, a surface or an operator could see.
    let mut seen = String::new();
    while let Ok(e) = events.try_recv() {
        seen.push_str(&serde_json::to_string(&e)?);
    }
    assert!(seen.contains("succeeded"), "the events were captured");
    seen.push_str(&prompts.lock().unwrap().join("\n"));
    seen.push_str(&views.join("\n"));
    seen.push_str(&serde_json::to_string(&audit)?);
    seen.push_str(&serde_json::to_string(
        &rig.connectors.effects(None, None, 1000).await?,
    )?);
    seen.push_str(&serde_json::to_string(&rig.connectors.list())?);
    seen.push_str(&String::from_utf8_lossy(&logs.0.lock().unwrap()));
    // Every file of the data directory: the store (tickets with their lane
    // payloads and results, events, ledger, audit, effects) and its WAL.
    for entry in std::fs::read_dir(rig.dir.path())? {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(entry?.path())?));
    }
    assert!(seen.len() > 10_000, "searched {} bytes", seen.len());
    let rotated = rig.outside.state.refresh_token.lock().unwrap().clone();
    let mut secrets = vec![
        rig.api_key.clone(),
        rig.outside.state.client_secret.clone(),
        first_refresh,
        rotated.clone(),
        "otk_".to_owned(),
    ];
    // The access tokens the outside system issued to the broker.
    for r in rig.outside.received() {
        if let Some(bearer) = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            secrets.push(bearer.to_owned());
        }
    }
    assert!(
        secrets.len() >= 6,
        "the outside system saw bearer tokens: {}",
        secrets.len()
    );
    for s in &secrets {
        assert!(
            !seen.contains(s.as_str()),
            "a secret ({}…) leaked",
            &s[..6.min(s.len())]
        );
    }
    // And the rotated refresh token really is in the backend.
    let backend = VaultBackend::new(
        &rig.bao.addr,
        Secret::new(rig.bao.root_token.clone()),
        "secret",
        &rig.prefix,
    )?;
    let stored = backend.read("connector/shop-oauth").await?.unwrap();
    assert!(stored.expose().contains(&rotated));
    Ok(())
}

#[tokio::test]
async fn cancelling_a_ticket_revokes_its_token_and_nothing_is_sent_after() -> Result<()> {
    let rig = Rig::new().await?;
    for bot in ["bot-01", "bot-02"] {
        rig.grant(bot, &["get_order"], &["orders:read"]).await?;
    }
    // The outside system is slow and failing: the runtime keeps retrying the read.
    rig.outside
        .state
        .fail_reads
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    rig.outside
        .state
        .read_delay_ms
        .store(150, std::sync::atomic::Ordering::SeqCst);
    let controller = start_controller(&rig, Arc::new(BuiltinModel::new())).await?;
    let id = controller
        .submit(tool("get_order", json!({"order_id": "o-1"})))
        .await?
        .id;
    rig.outside.wait_for("GET", "/orders/").await?;
    controller.cancel(id).await?;
    let cancelled_at = Instant::now();
    let v = wait_terminal(&controller, id).await?;
    assert_eq!(v.state, TicketState::Cancelled);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late: Vec<_> = rig
        .outside
        .received()
        .into_iter()
        .filter(|r| r.at > cancelled_at)
        .collect();
    assert!(late.is_empty(), "{} requests after the cancel", late.len());
    let audit = rig.connectors.audit(Some(id), None, 100).await?;
    let revoked: Vec<_> = audit
        .iter()
        .filter(|a| a.kind == AuditKind::Revoke)
        .collect();
    assert_eq!(revoked.len(), 1, "{audit:?}");
    let read = audit
        .iter()
        .find(|a| a.kind == AuditKind::CredentialRead)
        .unwrap();
    assert_eq!(
        revoked[0].token_id, read.token_id,
        "the token the call used is the one revoked"
    );
    controller.shutdown().await;

    // A revoked token cannot be exchanged any more.
    let c = &rig.connectors;
    let t = new_ticket();
    let req = call("bot-01", t, 1, "get_order", json!({}));
    let token = c.broker().issue(&req.call, &["orders:read".into()]);
    let manifest = c.registry().get("shop").unwrap();
    c.broker()
        .exchange(&token, &req.call, &manifest, &[])
        .await?;
    assert_eq!(c.broker().revoke_ticket(t), 1);
    let e = c
        .broker()
        .exchange(&token, &req.call, &manifest, &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    // Nor used for another call, or for more scopes than it was issued with.
    let other = call("bot-02", new_ticket(), 1, "get_order", json!({}));
    let token = c.broker().issue(&other.call, &["orders:read".into()]);
    let e = c
        .broker()
        .exchange(&token, &req.call, &manifest, &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bound to another call"), "{e}");
    let e = c
        .broker()
        .exchange(&token, &other.call, &manifest, &["orders:write".into()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lacks scope orders:write"), "{e}");
    Ok(())
}

#[tokio::test]
async fn the_vault_backend_reads_and_writes_and_a_read_only_token_cannot_write() -> Result<()> {
    let bao = OpenBao::start().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let root = VaultBackend::new(
        &bao.addr,
        Secret::new(bao.root_token.clone()),
        "secret",
        &prefix,
    )?;
    assert!(root.read("connector/none").await?.is_none());
    root.write("connector/x", &Secret::new(r#"{"api_key":"k-1"}"#))
        .await?;
    let read: Value = serde_json::from_str(root.read("connector/x").await?.unwrap().expose())?;
    assert_eq!(read, json!({"api_key": "k-1"}));

    let policy = format!(r#"path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}"#);
    let limited = bao.token_with_policy("oshal-read-only", &policy).await?;
    let reader = VaultBackend::new(&bao.addr, Secret::new(limited.clone()), "secret", &prefix)?;
    let read: Value = serde_json::from_str(reader.read("connector/x").await?.unwrap().expose())?;
    assert_eq!(read, json!({"api_key": "k-1"}));
    let e = reader
        .write("connector/x", &Secret::new(r#"{"api_key":"stolen"}"#))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    assert!(
        !format!("{e:?}{reader:?}").contains(&limited),
        "the token is never printed"
    );
    let read: Value = serde_json::from_str(root.read("connector/x").await?.unwrap().expose())?;
    assert_eq!(
        read,
        json!({"api_key": "k-1"}),
        "the refused write changed nothing"
    );
    // Outside its path, the limited token reads nothing.
    let elsewhere = VaultBackend::new(&bao.addr, Secret::new(limited), "secret", "other")?;
    assert!(
        elsewhere
            .read("connector/x")
            .await
            .unwrap_err()
            .to_string()
            .contains("403")
    );
    Ok(())
}

#[tokio::test]
async fn the_keyring_backend_round_trips_through_the_os_keyring() -> Result<()> {
    if std::env::var_os("OSHAL_TEST_KEYRING").is_none() {
        eprintln!(
            "skipped: set OSHAL_TEST_KEYRING=1 inside a D-Bus session with an unlocked keyring (scripts/test does)"
        );
        return Ok(());
    }
    use oshal_core::connector::broker::keyring::KeyringBackend;
    let backend = KeyringBackend::new(format!("dev.oshal.test.{}", uuid::Uuid::new_v4().simple()));
    assert!(backend.read("connector/shop").await?.is_none());
    backend
        .write("connector/shop", &Secret::new(r#"{"api_key":"kr-1"}"#))
        .await?;
    assert_eq!(
        backend.read("connector/shop").await?.unwrap().expose(),
        r#"{"api_key":"kr-1"}"#
    );
    backend.delete("connector/shop").await?;
    assert!(backend.read("connector/shop").await?.is_none());
    Ok(())
}

/// A tool ticket over HTTP.
async fn submit_tool(server: &oshal_e2e::Server, op: &str, params: Value) -> Result<String> {
    let r = server
        .post("/api/v1/tickets")
        .json(&json!({"kind": "tool", "max_attempts": 3, "payload": {"connector": "shop", "operation": op, "params": params}}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status() == 201,
        "submit: {} {}",
        r.status(),
        r.text().await?
    );
    Ok(r.json::<Value>().await?["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn over_http_an_operator_imports_approves_and_grants_and_a_write_survives_kill_9()
-> Result<()> {
    let Served {
        bao,
        dir,
        token_file,
        prefix,
        api_key,
        outside,
    } = Served::start().await?;
    let data = dir.path().join("data");
    let token_path = token_file.to_str().unwrap();
    let args = [
        "--bots",
        "2",
        "--vault-addr",
        &bao.addr,
        "--vault-token-file",
        token_path,
        "--vault-prefix",
        &prefix,
    ];
    let mut server = oshal_e2e::Server::start(&data, &args)?;
    let http = server.raw().clone();
    let url = |p: &str| format!("{}{p}", server.url);

    let r = http.get(url("/api/v1/connectors")).send().await?;
    assert_eq!(r.status(), 401, "the token is required even on loopback");
    let listed = server.json("/api/v1/connectors").await?;
    let (curated, built_in): (Vec<&Value>, Vec<&Value>) = listed
        .as_array()
        .unwrap()
        .iter()
        .partition(|c| c["source"] != "built_in");
    assert_eq!(curated.len(), 4);
    // The operations loop's own read-only tools, served in process.
    assert_eq!(built_in.len(), 1);
    assert_eq!(built_in[0]["id"], "oshal-ops");
    assert!(
        curated
            .iter()
            .all(|c| c["signed"] == true && c["enabled"] == true && c["source"] == "curated")
    );
    let mut categories: Vec<&str> = curated
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    categories.sort();
    assert_eq!(categories, ["commerce", "finance", "media", "travel"]);

    // Import: a bad document is refused naming the field; a good one is disabled.
    let r = server
        .post("/api/v1/catalog/import")
        .json(&json!({"openapi": "2.0"}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await?["error"]["field"], "openapi");
    let r = server
        .post("/api/v1/catalog/import")
        .json(&outside.openapi("shop", "api_key"))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let entry: Value = r.json().await?;
    assert_eq!(
        (entry["enabled"].as_bool(), entry["signed"].as_bool()),
        (Some(false), Some(false))
    );

    let r = http
        .put(url("/api/v1/connectors/shop/credential"))
        .bearer_auth(&server.token)
        .json(&json!({"api_key": api_key}))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    let r = server.post("/api/v1/grants").json(&json!({"bot": "bot-01", "connector": "shop", "operations": ["get_order"], "scopes": ["admin"]})).send().await?;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await?["error"]["field"], "scopes[0]");
    let mut grant_ids = Vec::new();
    for bot in ["bot-01", "bot-02"] {
        let r = server
            .post("/api/v1/grants")
            .json(&json!({"bot": bot, "connector": "shop", "operations": ["get_order", "create_order"], "scopes": ["orders:read", "orders:write"]}))
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        grant_ids.push(r.json::<Value>().await?["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        server
            .json("/api/v1/grants")
            .await?
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Not approved yet: the ticket cannot reach the outside system.
    let id = submit_tool(&server, "get_order", json!({"order_id": "o-5"})).await?;
    let t = server.wait_terminal(&id).await?;
    assert_eq!(t["state"], "dead", "{t:#}");
    assert!(
        t["error"].as_str().unwrap().contains("not enabled"),
        "{t:#}"
    );
    assert_eq!(outside.received().len(), 0);

    let r = server.post("/api/v1/catalog/shop/approve").send().await?;
    assert_eq!(r.status(), 200);
    let catalog = server.json("/api/v1/catalog").await?;
    assert_eq!(catalog[0]["approved_by"], "operator");
    assert_eq!(catalog[0]["enabled"], true);
    let id = submit_tool(&server, "get_order", json!({"order_id": "o-5"})).await?;
    let t = server.wait_terminal(&id).await?;
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let result: Value = serde_json::from_str(t["result"]["text"].as_str().unwrap())?;
    assert_eq!(result["tool"]["body"]["id"], "o-5");

    // A write whose answer is lost when the process is killed.
    outside
        .state
        .swallow_write_answers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let id = submit_tool(
        &server,
        "create_order",
        json!({"sku": "sku-3", "quantity": 1, "amount": 3.0}),
    )
    .await?;
    let id_of_write = id.clone();
    outside.wait_for("POST", "/orders").await?;
    server.kill9();
    outside
        .state
        .swallow_write_answers
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let server = oshal_e2e::Server::start(&data, &args)?;
    let t = server.wait_terminal(&id).await?;
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert!(
        t["attempts"].as_u64().unwrap() >= 2,
        "the restart ran it again: {t:#}"
    );
    assert_eq!(
        outside.count("POST", "/orders"),
        1,
        "the outside system received the write once"
    );
    assert_eq!(outside.orders(), 1);
    let effects = server.json(&format!("/api/v1/effects?ticket={id}")).await?;
    assert_eq!(effects.as_array().unwrap().len(), 1);
    assert_eq!(effects[0]["state"], "done");
    let audit = server.json(&format!("/api/v1/audit?ticket={id}")).await?;
    let reads = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "credential_read")
        .count();
    assert!(
        reads >= 2,
        "the write and its reconciling read each read the credential: {audit:#}"
    );

    // Revoke the grants: the next call is denied by default.
    for g in &grant_ids {
        let r = server
            .raw()
            .delete(format!("{}/api/v1/grants/{g}", server.url))
            .bearer_auth(&server.token)
            .send()
            .await?;
        assert_eq!(r.status(), 204);
    }
    let id = submit_tool(&server, "get_order", json!({"order_id": "o-6"})).await?;
    let t = server.wait_terminal(&id).await?;
    assert_eq!(t["state"], "dead");
    assert!(
        t["error"].as_str().unwrap().contains("denied by default"),
        "{t:#}"
    );
    let r = server.get("/api/v1/audit?limit=0").send().await?;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await?["error"]["field"], "limit");
    // The credential never comes back out of the API.
    let everything = format!(
        "{}{}{}",
        server.json("/api/v1/audit?limit=5000").await?,
        server.json("/api/v1/connectors").await?,
        server.json("/api/v1/effects").await?
    );
    assert!(!everything.contains(&api_key));

    // The same through the command line.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(oshal_e2e::oshal_bin())
            .args(["connectors"])
            .args(["--api", &server.url, "--token", &server.token])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    // The four curated, the one imported, and the operations loop's built-in.
    assert_eq!(
        serde_json::from_str::<Value>(&out)?
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let grant = |extra: &[&str]| {
        let base = [
            "grant",
            "--bot",
            "bot-01",
            "--connector",
            "shop",
            "--operations",
            "get_order",
        ];
        cli(&[&base[..], extra].concat())
    };
    let (code, _, err) = grant(&["--scopes", "admin"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("(field: scopes[0])"), "{err}");
    let (code, _, err) = grant(&["--condition", "amount=5"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("param<=max"), "{err}");
    let (code, out, _) = grant(&["--scopes", "orders:read", "--condition", "amount<=5"]);
    assert_eq!(code, Some(0));
    let grant: Value = serde_json::from_str(&out)?;
    assert_eq!(
        grant["conditions"][0],
        json!({"param": "amount", "max": 5.0})
    );
    let (code, out, _) = cli(&["revoke", grant["id"].as_str().unwrap()]);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    let (code, out, _) = cli(&["effects", "--ticket", &id_of_write]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&out)?[0]["state"], "done");
    Ok(())
}

/// Everything a fleet holds about itself, as text: every Redis key under
/// its prefix (streams entry by entry, strings, sets, hashes) and every row
/// of every table of its schema (read as the administrator, past RLS).
async fn fleet_contents(space: &oshal_e2e::FleetSpace) -> Result<String> {
    let mut all = String::new();
    let client = redis::Client::open(space.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", space.prefix))
        .query_async(&mut conn)
        .await?;
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut conn).await?;
        let mut read = match kind.as_str() {
            "stream" => redis::cmd("XRANGE"),
            "string" => redis::cmd("GET"),
            "set" => redis::cmd("SMEMBERS"),
            "hash" => redis::cmd("HGETALL"),
            other => anyhow::bail!("{key}: unexpected type {other}"),
        };
        read.arg(key);
        if kind == "stream" {
            read.arg("-").arg("+");
        }
        let value: redis::Value = read.query_async(&mut conn).await?;
        all.push_str(&format!("{key} {value:?}\n"));
    }
    let mut pg = sqlx_admin(&space.postgres_admin).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(&space.schema)
    .fetch_all(&mut pg)
    .await?;
    anyhow::ensure!(tables.len() >= 9, "tables: {tables:?}");
    for table in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {}.{table} t",
            space.schema
        );
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut pg)
            .await?;
        all.push_str(&rows);
    }
    Ok(all)
}

async fn sqlx_admin(url: &str) -> Result<sqlx::PgConnection> {
    use sqlx::Connection;
    Ok(sqlx::PgConnection::connect(url).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_fleet_node_bots_call_through_the_controller_and_never_hold_a_credential() -> Result<()>
{
    let Served {
        bao,
        dir,
        token_file,
        prefix,
        api_key,
        outside,
    } = Served::start().await?;
    let mut space = oshal_e2e::FleetSpace::new().await?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    space.logs = Some(logs.clone());
    let vault = [
        "--vault-addr",
        &bao.addr,
        "--vault-token-file",
        token_file.to_str().unwrap(),
        "--vault-prefix",
        &prefix,
    ];
    let server = space.serve_with(&dir.path().join("data"), &vault)?;
    // The node is given nothing but Redis: no Vault, no database.
    let _node = space.node("tooly", &["--bots", "2"])?;

    let r = server
        .post("/api/v1/catalog/import")
        .json(&outside.openapi("shop", "api_key"))
        .send()
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let r = server.post("/api/v1/catalog/shop/approve").send().await?;
    assert_eq!(r.status(), 200);
    let r = server
        .raw()
        .put(format!("{}/api/v1/connectors/shop/credential", server.url))
        .bearer_auth(&server.token)
        .json(&json!({"api_key": api_key}))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    for bot in ["tooly-bot-01", "tooly-bot-02"] {
        let r = server
            .post("/api/v1/grants")
            .json(&json!({"bot": bot, "connector": "shop", "operations": ["get_order", "create_order"], "scopes": ["orders:read", "orders:write"]}))
            .send()
            .await?;
        assert_eq!(r.status(), 201);
    }

    // A read and a write, each made by a node's bot at the controller.
    let read = submit_tool(&server, "get_order", json!({"order_id": "o-7"})).await?;
    let t = server.wait_terminal(&read).await?;
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let read_bot = t["bot"].clone();
    assert!(
        read_bot.as_str().unwrap().starts_with("tooly-bot-"),
        "{t:#}"
    );
    let result: Value = serde_json::from_str(t["result"]["text"].as_str().unwrap())?;
    assert_eq!(result["tool"]["body"]["id"], "o-7");
    let write = submit_tool(
        &server,
        "create_order",
        json!({"sku": "sku-1", "quantity": 2, "amount": 4.0}),
    )
    .await?;
    let t = server.wait_terminal(&write).await?;
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(outside.count("POST", "/orders"), 1);
    assert!(
        outside
            .received()
            .iter()
            .all(|r| r.header("x-api-key") == Some(api_key.as_str())),
        "the outside system got the credential on every request"
    );
    let effects = server
        .json(&format!("/api/v1/effects?ticket={write}"))
        .await?;
    assert_eq!(effects.as_array().unwrap().len(), 1, "{effects:#}");
    assert_eq!(
        (effects[0]["state"].as_str(), effects[0]["tenant"].as_str()),
        (Some("done"), Some("default"))
    );
    let audit = server.json(&format!("/api/v1/audit?ticket={read}")).await?;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"decision") && kinds.contains(&"credential_read"),
        "{audit:#}"
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["tenant"] == "default" && a["actor"] == read_bot),
        "each row is the ticket's tenant's, and its bot's: {audit:#}"
    );

    // A call for a ticket the bot does not hold is refused before the gate
    // and audited; nothing reaches the outside system.
    let client = redis::Client::open(space.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let forged_ticket = new_ticket();
    let forged = json!({
        "id": "forged-1",
        "node": "evil",
        "request": {
            "call": {"bot": "tooly-bot-01", "tenant": "default", "ticket": forged_ticket,
                     "attempt": 1, "connector": "shop", "operation": "create_order"},
            "params": {"sku": "sku-9", "quantity": 1, "amount": 1.0},
            "call_index": 0
        }
    });
    let before = outside.received().len();
    redis::cmd("XADD")
        .arg(format!("{}:tools", space.prefix))
        .arg("*")
        .arg("t")
        .arg(forged.to_string())
        .query_async::<()>(&mut conn)
        .await?;
    let answers = format!("{}:tools:evil", space.prefix);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(&answers)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await?;
        let text = format!("{v:?}");
        if text.contains("forged-1") {
            break text;
        }
        assert!(Instant::now() < deadline, "no answer to the forged call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(answer.contains("refused before the gate"), "{answer}");
    assert!(answer.contains("not in flight"), "{answer}");
    assert_eq!(outside.received().len(), before);
    let refusal = server
        .json(&format!("/api/v1/audit?ticket={forged_ticket}"))
        .await?;
    assert_eq!(refusal[0]["allowed"], false, "{refusal:#}");
    assert_eq!(
        refusal[0]["tenant"],
        Value::Null,
        "the node's claim of a tenant is not taken"
    );

    // Cancel mid-call: the controller's call stops and nothing is sent after.
    outside
        .state
        .fail_reads
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    outside
        .state
        .read_delay_ms
        .store(150, std::sync::atomic::Ordering::SeqCst);
    let slow = submit_tool(&server, "get_order", json!({"order_id": "o-8"})).await?;
    let gets = outside.count("GET", "/orders/o-8");
    let deadline = Instant::now() + Duration::from_secs(20);
    while outside.count("GET", "/orders/o-8") == gets {
        assert!(Instant::now() < deadline, "the slow read never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = server
        .post(&format!("/api/v1/tickets/{slow}/cancel"))
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.status());
    let cancelled_at = Instant::now();
    let t = server.wait_terminal(&slow).await?;
    assert_eq!(t["state"], "cancelled", "{t:#}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = outside
        .received()
        .into_iter()
        .filter(|r| r.at > cancelled_at)
        .count();
    assert_eq!(late, 0, "requests after the cancel");
    let audit = server.json(&format!("/api/v1/audit?ticket={slow}")).await?;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "revoke"),
        "{audit:#}"
    );

    // The credential is nowhere in the fleet's Redis or PostgreSQL, in the
    // controller's or the node's TRACE logs, nor in what the API shows; the
    // positive control: the outside system has it.
    let mut log_text = String::new();
    for entry in std::fs::read_dir(&logs)? {
        log_text.push_str(&String::from_utf8_lossy(&std::fs::read(entry?.path())?));
    }
    assert!(
        log_text.contains("tool") && log_text.len() > 10_000,
        "the logs hold the run ({} bytes)",
        log_text.len()
    );
    let everything = format!(
        "{log_text}{}{}{}{}",
        fleet_contents(&space).await?,
        server.json("/api/v1/audit?limit=5000").await?,
        server.json("/api/v1/effects").await?,
        server.json("/api/v1/tickets?limit=500").await?,
    );
    assert!(
        everything.len() > 5_000,
        "searched {} bytes",
        everything.len()
    );
    assert!(!everything.contains(&api_key), "the credential leaked");
    assert!(!everything.contains("otk_"), "a broker token leaked");
    assert!(
        !everything.contains(&bao.root_token),
        "the Vault token leaked"
    );
    drop(server);
    space.cleanup().await?;
    Ok(())
}

/// A path parameter could leave its operation's path: `order_id=".."` on
/// `/orders/{order_id}` was sent as `/orders/..`, which is `/`; and `/`,
/// `?`, `#` or a space in one broke out of its segment. A dot segment is
/// now refused before the gate spends a rate slot or a budget, and every
/// other value stays one segment, exactly as given.
#[tokio::test]
async fn a_path_parameter_cannot_leave_its_operations_path() -> Result<()> {
    let rig = Rig::new().await?;
    rig.grant("bot-01", &["get_order"], &["orders:read"])
        .await?;
    for dots in [".", ".."] {
        let r = run(
            &rig.connectors,
            &call(
                "bot-01",
                new_ticket(),
                1,
                "get_order",
                json!({"order_id": dots}),
            ),
        )
        .await;
        match r {
            Err(ToolError::InvalidParams { field, reason }) => {
                assert_eq!(field, "params.order_id");
                assert!(reason.contains("leave the operation's path"), "{reason}");
            }
            other => panic!("{dots:?} was not refused: {other:?}"),
        }
    }
    assert!(
        rig.outside.received().is_empty(),
        "{:?}",
        rig.outside.received()
    );

    // Anything else is one segment: the outside system sees it encoded
    // inside /orders/…, and answers for that id (here: no such order).
    let odd = "a/b?c#d e%..";
    let _ = run(
        &rig.connectors,
        &call(
            "bot-01",
            new_ticket(),
            1,
            "get_order",
            json!({"order_id": odd}),
        ),
    )
    .await;
    let seen = rig.outside.received();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/orders/a%2Fb%3Fc%23d%20e%25%2E%2E");
    Ok(())
}

/// A dry run sends no write: the gate decides as for a real call, then the
/// runtime refuses the write before a token is issued or a byte is sent
/// (audited, with the reason); a read in the same dry run is sent. Through
/// a ticket, the bot answers what would have been written and asks no
/// model.
#[tokio::test]
async fn a_dry_run_refuses_every_write_before_it_is_sent_and_still_reads() -> Result<()> {
    let rig = Rig::new().await?;
    rig.grant(
        "bot-01",
        &["create_order", "get_order"],
        &["orders:read", "orders:write"],
    )
    .await?;
    let t = new_ticket();
    let order = json!({"sku": "sku-1", "quantity": 1, "amount": 5.0});
    let mut write = call("bot-01", t, 1, "create_order", order.clone());
    write.dry_run = true;
    let refused = run(&rig.connectors, &write).await;
    assert!(
        matches!(&refused, Err(ToolError::DryRun(why)) if why.contains("dry run")),
        "{refused:?}"
    );
    assert_eq!(rig.outside.received().len(), 0, "nothing was sent");
    let trail = rig.connectors.audit(Some(t), None, 10).await?;
    assert!(
        trail
            .iter()
            .any(|e| e.allowed == Some(false) && e.reason.contains("dry run")),
        "{trail:?}"
    );
    let mut read = call("bot-01", t, 1, "get_order", json!({"order_id": "o1"}));
    read.dry_run = true;
    let ok = run(&rig.connectors, &read).await.unwrap();
    assert_eq!(ok.status, 200, "a dry run still reads");
    assert_eq!(rig.outside.count("POST", "/orders"), 0);

    // Through a ticket on the bots: succeeded, saying what would have been sent.
    rig.grant(
        "bot-02",
        &["create_order"],
        &["orders:read", "orders:write"],
    )
    .await?;
    let controller = start_controller(&rig, Arc::new(BuiltinModel::new())).await?;
    let mut ticket = tool("create_order", order);
    ticket.payload["dry_run"] = json!(true);
    let id = controller.submit(ticket).await?.id;
    let v = wait_terminal(&controller, id).await?;
    assert_eq!(v.state, TicketState::Succeeded, "{v:?}");
    let text = v.result.as_ref().unwrap()["text"].as_str().unwrap();
    let answer: Value = serde_json::from_str(text)?;
    assert_eq!(answer["dry_run"]["operation"], "create_order");
    assert_eq!(v.cost.cost_nusd, 0, "no model was asked");
    assert_eq!(rig.outside.count("POST", "/orders"), 0, "nothing was sent");
    controller.shutdown().await;
    Ok(())
}

/// A stored OAuth2 refresh token, as `Rig::oauth` stores it.
fn refresh_of(rig: &Rig) -> String {
    rig.outside.state.refresh_token.lock().unwrap().clone()
}

impl Rig {
    /// Imports, approves and stores connector `id` on the outside system's
    /// refresh-token flow; `revocation` keeps the RFC 7009 endpoint the
    /// document names.
    async fn oauth(&self, id: &str, revocation: bool) -> Result<()> {
        let mut doc = self.outside.openapi(id, "refresh");
        if !revocation {
            let flow = doc
                .pointer_mut("/components/securitySchemes/shop/flows/authorizationCode")
                .and_then(Value::as_object_mut)
                .expect("the document has its refresh flow");
            assert!(flow.remove("x-revocation-endpoint").is_some());
        }
        self.connectors.import_openapi(&doc, "test").await?;
        self.connectors.approve(id, "test").await?;
        self.connectors
            .broker()
            .store_credential(
                id,
                &json!({
                    "client_id": self.outside.state.client_id,
                    "client_secret": self.outside.state.client_secret,
                    "refresh_token": refresh_of(self),
                }),
            )
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_exposed_refresh_token_is_told_apart_rotated_revoked_and_refused() -> Result<()> {
    use oshal_core::connector::broker::BrokerError;
    use std::sync::atomic::Ordering;
    let rig = Rig::new().await?;
    // A provider that keeps a replaced token working until it is revoked
    // (a reuse grace period): only a revocation ends it.
    rig.outside
        .state
        .keep_replaced_refresh_tokens
        .store(true, Ordering::SeqCst);
    rig.oauth("shop-oauth", true).await?;
    let first = refresh_of(&rig);
    let c = &rig.connectors;
    let owner = async |v: &str| c.credential_owners(&[v]).await.unwrap().remove(0);
    let of = |c: &str, f: &'static str| Some((c.to_owned(), f));

    // Whose credential a found value is: compared inside the broker.
    assert_eq!(owner(&first).await, of("shop-oauth", "refresh_token"));
    let secret = rig.outside.state.client_secret.clone();
    assert_eq!(owner(&secret).await, of("shop-oauth", "client_secret"));
    assert_eq!(owner(&rig.api_key).await, of("shop", "api_key"));
    assert_eq!(owner("rt-not-anyones-token").await, None);

    // A call refreshes, and the provider rotates: the first token is
    // replaced, still known as this connector's.
    rig.grant_on("shop-oauth", "bot-01", &["list_orders"], &["orders:read"])
        .await?;
    let list = || {
        let mut r = call(
            "bot-01",
            new_ticket(),
            1,
            "list_orders",
            json!({"limit": 5}),
        );
        r.call.connector = "shop-oauth".into();
        r
    };
    run(c, &list()).await?;
    let second = refresh_of(&rig);
    assert_ne!(second, first);
    assert_eq!(owner(&second).await, of("shop-oauth", "refresh_token"));
    assert_eq!(
        owner(&first).await,
        of("shop-oauth", "replaced_refresh_token")
    );

    let heal = CallRef {
        bot: BotId::parse("ops-loop").unwrap(),
        tenant: Some(TenantId::default_tenant()),
        ticket: new_ticket(),
        attempt: 1,
        connector: "oshal-ops".into(),
        operation: "rotate_credential".into(),
    };
    // A value that is none of its refresh tokens is never sent.
    let tokens_asked = rig.outside.count("POST", "/oauth/token");
    let err = c
        .rotate_credential(&heal, "shop-oauth", &[Secret::new("rt-someone-elses")])
        .await
        .unwrap()
        .expect_err("an unknown value is refused");
    assert!(
        matches!(&err, BrokerError::NotRotated(why) if why.contains("nothing was sent")),
        "{err}"
    );
    assert_eq!(rig.outside.count("POST", "/oauth/token"), tokens_asked);

    // The exposed token is the replaced first one: the stored second and
    // the first are both revoked and both refused.
    let rotation = c
        .rotate_credential(&heal, "shop-oauth", &[Secret::new(first.clone())])
        .await
        .unwrap()?;
    assert!(rotation.revoked, "{rotation:?}");
    assert_eq!(rotation.probe, "400 Bad Request: invalid_grant");
    assert_eq!(rig.outside.count("POST", "/oauth/revoke"), 2);
    let third = refresh_of(&rig);
    assert!(third != first && third != second);
    assert_eq!(
        owner(&third).await,
        of("shop-oauth", "refresh_token"),
        "the new token is the one stored"
    );
    for dead in [&first, &second] {
        let reuse = reqwest::Client::new()
            .post(format!("{}/oauth/token", rig.outside.base_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", dead.as_str()),
                ("client_id", rig.outside.state.client_id.as_str()),
                ("client_secret", secret.as_str()),
            ])
            .send()
            .await?;
        assert_eq!(reuse.status(), 400);
    }
    // Calls go on under the new token.
    run(c, &list()).await?;
    let audit = c.audit(Some(heal.ticket), None, 50).await?;
    let rotated = audit
        .iter()
        .find(|e| e.kind == AuditKind::Revoke && e.allowed == Some(true))
        .expect("the rotation is audited");
    assert_eq!(rotated.connector.as_deref(), Some("shop-oauth"));
    assert!(
        rotated
            .reason
            .contains("2 ended (the old one and 1 exposed) by revocation at the provider"),
        "{}",
        rotated.reason
    );
    for e in &audit {
        for t in [&first, &second, &third] {
            assert!(!e.reason.contains(t.as_str()), "{}", e.reason);
        }
    }

    // With no revocation endpoint, this provider's old token still works:
    // the rotation is refused as not done, and the newest token is kept.
    rig.oauth("shop-norevoke", false).await?;
    let why = c
        .credential_owners(&[&secret])
        .await
        .expect_err("both connectors hold the provider's one client secret")
        .to_string();
    assert!(why.contains("both shop-norevoke and shop-oauth"), "{why}");
    let held = refresh_of(&rig);
    let refused = c
        .rotate_credential(&heal, "shop-norevoke", &[])
        .await
        .unwrap();
    let why = refused
        .expect_err("an old token still accepted is no rotation")
        .to_string();
    assert!(
        why.contains("still accepted") && why.contains("no revocation_url"),
        "{why}"
    );
    assert_ne!(refresh_of(&rig), held);
    assert_eq!(
        owner(&refresh_of(&rig)).await,
        of("shop-norevoke", "refresh_token"),
        "the newest token the provider gave is the one stored: nothing is lost"
    );

    // A static key is changed only at its provider; an unknown connector
    // is none.
    let why = c
        .rotate_credential(&heal, "shop", &[])
        .await
        .unwrap()
        .expect_err("an API key cannot be rotated from here")
        .to_string();
    assert!(why.contains("api key") && why.contains("provider"), "{why}");
    assert!(c.rotate_credential(&heal, "no-such", &[]).await.is_none());
    Ok(())
}
