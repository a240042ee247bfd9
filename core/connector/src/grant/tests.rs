//! Grants bound to a ticket and expiring, decided by the gate over a real
//! SQLite store; and the migration that made room for them.

use serde_json::json;

use crate::store::{AuditKind, Grant};
use crate::testing::{OPS, Rig, T0, call};
use crate::ticket::TicketId;
use crate::{ConnectorError, NewGrant};

fn ops(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn field(e: ConnectorError) -> String {
    match e {
        ConnectorError::Invalid { field, .. } => field,
        other => panic!("expected a refusal naming a field, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ticket_bound_grant_allows_its_ticket_from_any_bot_and_no_other_ticket() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let (t1, t2) = (TicketId::new(), TicketId::new());
    let g = c
        .grant_ticket(
            t1,
            OPS,
            &ops(&["get_incident"]),
            T0 + 60_000,
            10,
            "operator",
        )
        .await
        .unwrap();
    assert_eq!((&g.bot, g.ticket), (&None, Some(t1)));
    assert_eq!(g.scopes, ["incidents:read"], "the operations' scopes");
    assert_eq!((g.rate_per_minute, g.budget_calls), (600, 10));
    assert_eq!(g.expires_at_ms, Some(T0 + 60_000));

    let params = json!({"id": "i-1"});
    for bot in ["bot-01", "bot-02"] {
        let d = c.decide(&call(bot, t1, OPS, "get_incident"), &params).await;
        assert!(d.allowed, "{bot}: {}", d.reason);
        assert_eq!(d.grant.as_deref(), Some(g.id.as_str()));
    }
    let d = c
        .decide(&call("bot-01", t2, OPS, "get_incident"), &params)
        .await;
    assert!(!d.allowed);
    assert!(d.reason.contains("denied by default"), "{}", d.reason);
    assert_eq!(d.grant, None, "another ticket's grant is no candidate");

    // Listed with every grant and with its ticket's, not as a bot's.
    let spent = Grant {
        calls_used: 2,
        ..g.clone()
    };
    assert_eq!(c.grants(None).await.unwrap(), std::slice::from_ref(&spent));
    assert!(c.grants(Some("bot-01")).await.unwrap().is_empty());
    assert_eq!(c.grants_of_ticket(t1).await.unwrap(), [spent]);
    assert!(c.grants_of_ticket(t2).await.unwrap().is_empty());

    // Bound to a bot and a ticket: both must match.
    let both = Grant {
        id: "g-both".into(),
        bot: Some(crate::testing::bot("bot-03")),
        ticket: Some(t2),
        ..g.clone()
    };
    rig.connectors.inner.db.insert_grant(&both).await.unwrap();
    let d = c
        .decide(&call("bot-03", t2, OPS, "get_incident"), &params)
        .await;
    assert!(d.allowed, "{}", d.reason);
    let d = c
        .decide(&call("bot-02", t2, OPS, "get_incident"), &params)
        .await;
    assert!(!d.allowed, "another bot on that ticket: {}", d.reason);
    let d = c
        .decide(&call("bot-03", t1, OPS, "get_incident"), &params)
        .await;
    assert_eq!(
        d.grant.as_deref(),
        Some(g.id.as_str()),
        "on t1 bot-03 has t1's grant only"
    );
    // A grant bound to neither is refused by the store.
    let neither = Grant {
        id: "g-neither".into(),
        bot: None,
        ticket: None,
        ..g.clone()
    };
    let e = rig
        .connectors
        .inner
        .db
        .insert_grant(&neither)
        .await
        .unwrap_err();
    assert!(e.is_refused_data(), "{e}");

    // The grant is audited as the operator's, on its ticket's trail.
    let trail = c.audit(Some(t1), None, 50).await.unwrap();
    let minted = trail.iter().find(|a| a.kind == AuditKind::Grant).unwrap();
    assert_eq!(minted.actor.as_deref(), Some("operator"));
    assert_eq!(minted.grant_id.as_deref(), Some(g.id.as_str()));
    assert!(
        minted.reason.contains(&format!("ticket {t1}")),
        "{}",
        minted.reason
    );
}

#[tokio::test]
async fn a_ticket_grant_names_what_is_wrong_with_it() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let t = TicketId::new();
    let e = c
        .grant_ticket(t, OPS, &ops(&["get_incident", "reboot"]), T0 + 1, 1, "op")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"reboot\""), "{e}");
    assert_eq!(field(e), "operations[1]");
    let cases = [
        ("nope", ops(&["get_incident"]), T0 + 1, 1, "connector"),
        (OPS, vec![], T0 + 1, 1, "operations"),
        (OPS, ops(&["get_incident"]), T0, 1, "expires_at_ms"),
        (OPS, ops(&["get_incident"]), T0 + 1, 0, "budget_calls"),
        (
            OPS,
            ops(&["get_incident"]),
            T0 + 1,
            10_000_001,
            "budget_calls",
        ),
    ];
    for (connector, operations, expires, budget, named) in cases {
        let e = c
            .grant_ticket(t, connector, &operations, expires, budget, "op")
            .await
            .unwrap_err();
        assert_eq!(field(e), named);
    }
    for _ in 0..crate::MAX_GRANTS_PER_TICKET {
        c.grant_ticket(t, OPS, &ops(&["get_incident"]), T0 + 1, 1, "op")
            .await
            .unwrap();
    }
    let e = c
        .grant_ticket(t, OPS, &ops(&["get_incident"]), T0 + 1, 1, "op")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("limit 16"), "{e}");
    assert_eq!(field(e), "ticket");
    // An operator's grant still needs a bot.
    let e = c
        .grant(
            NewGrant {
                bot: String::new(),
                connector: OPS.into(),
                operations: ops(&["get_incident"]),
                ..NewGrant::default()
            },
            "op",
        )
        .await
        .unwrap_err();
    assert_eq!(field(e), "bot");
}

#[tokio::test]
async fn an_expired_grant_is_refused_saying_when_and_revoking_a_ticket_counts() {
    let rig = Rig::new().await;
    let c = &rig.connectors;
    let (t1, t2) = (TicketId::new(), TicketId::new());
    let expires = T0 + 1_000;
    let g = c
        .grant_ticket(t1, OPS, &ops(&["get_incident"]), expires, 10, "operator")
        .await
        .unwrap();
    let params = json!({"id": "i-1"});
    let at = call("bot-01", t1, OPS, "get_incident");
    assert!(c.decide(&at, &params).await.allowed);
    rig.clock.advance(1_000);
    let d = c.decide(&at, &params).await;
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        format!("grant {} expired at {expires}; refused", g.id)
    );
    assert_eq!(
        d.grant.as_deref(),
        Some(g.id.as_str()),
        "kept as the closest"
    );
    let decided = c.audit(Some(t1), None, 1).await.unwrap();
    assert_eq!(decided[0].allowed, Some(false));
    assert!(
        decided[0].reason.contains("expired at"),
        "{}",
        decided[0].reason
    );

    // Revoking the ticket's grants revokes them all, and only them.
    c.grant_ticket(t1, OPS, &ops(&["restart"]), T0 + 60_000, 1, "operator")
        .await
        .unwrap();
    c.grant_ticket(t2, OPS, &ops(&["get_incident"]), T0 + 60_000, 1, "operator")
        .await
        .unwrap();
    assert_eq!(c.revoke_ticket_grants(t1, "operator").await.unwrap(), 2);
    assert_eq!(c.revoke_ticket_grants(t1, "operator").await.unwrap(), 0);
    assert!(c.grants_of_ticket(t1).await.unwrap().is_empty());
    assert_eq!(c.grants_of_ticket(t2).await.unwrap().len(), 1);
    let ungrants: Vec<_> = c
        .audit(Some(t1), None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AuditKind::Ungrant)
        .collect();
    assert_eq!(ungrants.len(), 2);
    assert!(
        ungrants
            .iter()
            .all(|a| a.actor.as_deref() == Some("operator"))
    );
    assert!(
        ungrants
            .iter()
            .any(|a| a.grant_id.as_deref() == Some(g.id.as_str()))
    );
}

/// The grants table was rebuilt to let `bot` be NULL (SQLite cannot drop
/// a NOT NULL): a bot's grant made before it keeps working after it.
#[tokio::test]
async fn the_ticket_grants_migration_keeps_existing_bot_grants() {
    use sqlx::migrate::Migrator;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oshal.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let migrations =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations/sqlite");
    let mut before = Migrator::new(migrations).await.unwrap();
    let all = before.migrations.len();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    assert!(
        before.migrations.len() < all,
        "0008 is among the migrations"
    );
    before.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO grants (id, bot, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at)
         VALUES ('g-old', 'bot-01', 'oshal-ops', '[\"get_incident\"]', '[\"incidents:read\"]', '[]', 60, 5, 1, 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // Opening the store runs the rest, as an upgrade does.
    let store = oshal_store::sqlite::SqliteStore::open(dir.path())
        .await
        .unwrap();
    let db = crate::store::sqlite(store.pool().clone());
    let t = TicketId::new();
    let kept = db.grants_for_call("bot-01", t, OPS).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (
            kept[0].id.as_str(),
            kept[0].bot.as_ref().map(|b| b.as_str())
        ),
        ("g-old", Some("bot-01"))
    );
    assert_eq!((kept[0].ticket, kept[0].expires_at_ms), (None, None));
    assert_eq!(
        (
            kept[0].calls_used,
            kept[0].budget_calls,
            kept[0].created_at_ms
        ),
        (1, 5, 7)
    );
    assert!(db.spend("g-old").await.unwrap(), "its budget still spends");
    // The table's CHECK holds the invariant below the code.
    let e = sqlx::query(
        "INSERT INTO grants (id, connector, operations, scopes, conditions, rate_per_minute, budget_calls, created_at)
         VALUES ('g-none', 'oshal-ops', '[]', '[]', '[]', 1, 1, 1)",
    )
    .execute(store.pool())
    .await
    .unwrap_err();
    assert!(e.to_string().contains("CHECK"), "{e}");
    store.close().await;
}
