//! A built-in connector served in process: through the same gate, ledger,
//! redaction and clipping as any other, with no credential; its writes
//! only under a grant bound to the ticket.

use serde_json::json;

use crate::runtime::{MAX_RESPONSE_BYTES, ToolError, effect_key};
use crate::store::{AuditKind, EffectState};
use crate::testing::{OPS, PLANTED, Rig, T0, call, ops_manifest, request};
use crate::ticket::TicketId;
use crate::{NewGrant, Source};

fn operator_grant(bot: &str, op: &str, scope: &str) -> NewGrant {
    NewGrant {
        bot: bot.into(),
        connector: OPS.into(),
        operations: vec![op.into()],
        scopes: vec![scope.into()],
        ..NewGrant::default()
    }
}

fn decisions(trail: &[crate::store::AuditEntry]) -> Vec<Option<bool>> {
    trail
        .iter()
        .rev()
        .filter(|a| a.kind == AuditKind::Decision)
        .map(|a| a.allowed)
        .collect()
}

#[tokio::test]
async fn a_built_in_is_listed_enabled_and_cannot_be_taken_over() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let view = c.list().into_iter().find(|v| v.id == OPS).unwrap();
    assert_eq!(view.source, Source::BuiltIn);
    assert!(view.enabled && !view.signed);
    assert_eq!(
        (view.base_url.as_str(), view.auth.as_str()),
        ("oshal://oshal-ops", "none")
    );
    assert_eq!(serde_json::to_value(view.source).unwrap(), "built_in");
    assert!(c.catalog().iter().all(|v| v.id != OPS));
    let e = c.approve(OPS, "op").await.unwrap_err();
    assert!(e.to_string().contains("built in"), "{e}");
    let (enabled, problems) = c.untrusted_enabled().await.unwrap();
    assert!(enabled >= 5 && problems.is_empty(), "{problems:?}");

    // The catalog cannot import over it.
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Oshal Ops", "version": "1.0"},
        "servers": [{"url": "https://ops.example"}],
        "components": {"securitySchemes": {"k": {"type": "http", "scheme": "bearer"}}},
        "security": [{"k": []}],
        "paths": {"/x": {"get": {"operationId": "x"}}}
    });
    let e = c.import_openapi(&doc, "op").await.unwrap_err();
    assert!(e.to_string().contains("is a built-in connector"), "{e}");
    // Nor may a built-in take a curated connector's id, or any manifest
    // but a built-in's use the `oshal` scheme.
    let curated = c
        .list()
        .into_iter()
        .find(|v| v.source == Source::Curated)
        .unwrap();
    let mut theirs = ops_manifest();
    theirs.id = curated.id.clone();
    theirs.base_url = format!("oshal://{}", curated.id);
    let e = c.mount(theirs, rig.platform.clone()).unwrap_err();
    assert!(e.to_string().contains("is a curated connector"), "{e}");
    let e = ops_manifest().validate().unwrap_err();
    assert_eq!(e.field, "base_url");
    let mut elsewhere = ops_manifest();
    elsewhere.base_url = "oshal://another".into();
    let e = c.mount(elsewhere, rig.platform.clone()).unwrap_err();
    assert!(e.to_string().contains("oshal://oshal-ops"), "{e}");
}

#[tokio::test]
async fn a_built_in_read_runs_through_the_gate_redacted_and_clipped() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let t = TicketId::new();
    let read = |id: &str| request(call("bot-01", t, OPS, "get_incident"), json!({"id": id}));

    let e = rig.call(&read("i-1")).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Denied(why) if why.contains("denied by default")),
        "{e}"
    );
    assert_eq!(
        rig.platform.reads(),
        0,
        "a denied call never reaches the handler"
    );

    c.grant(
        operator_grant("bot-01", "get_incident", "incidents:read"),
        "op",
    )
    .await
    .unwrap();
    let ok = rig.call(&read("i-1")).await.unwrap();
    assert_eq!(
        (ok.status, ok.replayed, ok.effect.as_deref()),
        (200, false, None)
    );
    assert_eq!(ok.body["state"], "firing");
    assert_eq!(ok.body["env"]["note"], "token [redacted: github-token]");
    assert!(!ok.body.to_string().contains(PLANTED));
    assert_eq!(rig.platform.reads(), 1);

    // Past the limit: the first MAX_RESPONSE_BYTES, no longer JSON, as text.
    let big = rig.call(&read("big")).await.unwrap();
    let text = big.body.as_str().expect("a clipped body is text");
    assert_eq!(text.len(), MAX_RESPONSE_BYTES);
    assert!(text.starts_with("{\"log\":\"xxx"));

    // A status of 400 or more is a refusal, as an HTTP answer's would be.
    let e = rig.call(&read("missing")).await.unwrap_err();
    assert!(
        matches!(&e, ToolError::Refused { status: 404, body, .. } if body["error"] == "no incident missing"),
        "{e:?}"
    );
    assert!(!e.retryable());

    // Audited both ways; no token issued, no credential read.
    let trail = c.audit(Some(t), None, 50).await.unwrap();
    assert_eq!(
        decisions(&trail),
        [Some(false), Some(true), Some(true), Some(true)]
    );
    assert!(
        trail
            .iter()
            .all(|a| a.kind == AuditKind::Decision && a.token_id.is_none())
    );
}

#[tokio::test]
async fn a_built_in_write_needs_a_grant_bound_to_the_ticket_and_runs_once() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let (t, other) = (TicketId::new(), TicketId::new());
    let params = json!({"service": "api"});
    let write = request(call("bot-01", t, OPS, "restart"), params.clone());

    let approval = |e: ToolError| match e {
        ToolError::ApprovalRequired(why) => why,
        other => panic!("expected approval_required, got {other:?}"),
    };
    let why = approval(rig.call(&write).await.unwrap_err());
    assert!(why.contains("oshal-ops.restart"), "{why}");
    assert!(why.contains("approved heal"), "{why}");
    // A bot's own grant covering the write does not do.
    c.grant(operator_grant("bot-01", "restart", "services:write"), "op")
        .await
        .unwrap();
    let e = rig.call(&write).await.unwrap_err();
    assert!(!e.retryable());
    assert!(e.to_string().starts_with("approval required: "), "{e}");
    // Nor does a dry run skip the question.
    let dry = crate::runtime::ToolRequest {
        dry_run: true,
        ..write.clone()
    };
    approval(rig.call(&dry).await.unwrap_err());
    assert_eq!(rig.platform.writes(), 0);
    let trail = c.audit(Some(t), None, 50).await.unwrap();
    assert_eq!(
        decisions(&trail),
        [Some(false); 3],
        "each refusal audited as denied"
    );

    // Approved: a grant bound to the ticket lets it write, once.
    c.grant_ticket(t, OPS, &["restart".into()], T0 + 60_000, 5, "operator")
        .await
        .unwrap();
    let e = rig.call(&dry).await.unwrap_err();
    assert!(matches!(e, ToolError::DryRun(_)), "{e:?}");
    assert_eq!(rig.platform.writes(), 0, "a dry run sends nothing");
    let done = rig.call(&write).await.unwrap();
    let key = effect_key(&write);
    assert_eq!((done.status, done.replayed), (201, false));
    assert_eq!(done.effect.as_deref(), Some(key.as_str()));
    assert_eq!(done.body, json!({"restarted": "api", "key": key}));
    assert_eq!(rig.platform.writes(), 1);
    // The same call again (another attempt): replayed from the ledger.
    let mut again = write.clone();
    again.call.attempt = 2;
    let replay = rig.call(&again).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.body, done.body);
    assert_eq!(rig.platform.writes(), 1, "the handler wrote once");
    let effects = c.effects(Some(t), None, 10).await.unwrap();
    assert_eq!(effects.len(), 1);
    assert_eq!(
        (
            effects[0].state,
            effects[0].status,
            effects[0].token_id.as_str()
        ),
        (EffectState::Done, Some(201), "built-in")
    );

    // Another ticket of the same bot is not approved by it.
    let elsewhere = request(call("bot-01", other, OPS, "restart"), params);
    approval(rig.call(&elsewhere).await.unwrap_err());
    assert_eq!(rig.platform.writes(), 1);
}
