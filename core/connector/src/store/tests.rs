//! The connector store's contract, run on both engines (SQLite in a temp
//! dir, PostgreSQL in a schema of its own as `oshal_app`), and the fleet's
//! tenant isolation of audit rows and writes, enforced by the database.

use super::*;
use oshal_store::postgres::testing::{TestDb, assert_refused};
use oshal_store::sqlite::SqliteStore;
use sqlx::Connection;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn grant(id: &str, bot: &str, budget: u32) -> Grant {
    Grant {
        id: id.into(),
        bot: Some(BotId::parse(bot).unwrap()),
        ticket: None,
        connector: "shop".into(),
        operations: vec!["get_order".into()],
        scopes: vec!["orders:read".into()],
        conditions: vec![Condition {
            param: "amount".into(),
            max: 5.0,
        }],
        rate_per_minute: 60,
        budget_calls: budget,
        calls_used: 0,
        created_at_ms: 10,
        expires_at_ms: None,
    }
}

/// A grant bound to `ticket` (and `bot`, if named).
fn ticket_grant(id: &str, bot: Option<&str>, ticket: TicketId, at: UnixMs) -> Grant {
    Grant {
        bot: bot.map(|b| BotId::parse(b).unwrap()),
        ticket: Some(ticket),
        created_at_ms: at,
        expires_at_ms: Some(at + 1_000),
        ..grant(id, "bot-01", 3)
    }
}

fn effect(key: &str, tenant: &TenantId, ticket: TicketId) -> EffectRow {
    EffectRow {
        key: key.into(),
        tenant: tenant.clone(),
        ticket,
        attempt: 1,
        connector: "shop".into(),
        operation: "create_order".into(),
        token_id: "tok_1".into(),
        state: EffectState::InFlight,
        status: None,
        response: None,
        created_at_ms: 100,
        updated_at_ms: 100,
    }
}

fn call_audit(tenant: &TenantId, ticket: TicketId, reason: &str) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::Decision, reason);
    e.at_ms = 50;
    e.allowed = Some(true);
    e.actor = Some("bot-01".into());
    e.tenant = Some(tenant.clone());
    e.ticket = Some(ticket);
    e.attempt = Some(1);
    e
}

/// What every engine must do the same way.
async fn contract(db: ConnectorDb) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let (t1, t2) = (TicketId::new(), TicketId::new());

    // The catalog: a re-import withdraws the approval.
    let manifest = serde_json::json!({"id": "shop", "version": "1"});
    db.put_catalog("shop", &manifest, 1).await.unwrap();
    assert!(!db.approve_catalog("nope", "op", 2).await.unwrap());
    assert!(db.approve_catalog("shop", "op", 2).await.unwrap());
    let rows = db.catalog().await.unwrap();
    assert_eq!(
        (rows.len(), rows[0].approved_by.as_deref()),
        (1, Some("op"))
    );
    assert_eq!(rows[0].manifest, manifest);
    db.put_catalog("shop", &manifest, 3).await.unwrap();
    assert_eq!(db.catalog().await.unwrap()[0].approved_by, None);

    // Grants: a budget is spent atomically and exactly; revoked is gone.
    db.insert_grant(&grant("g1", "bot-01", 2)).await.unwrap();
    db.insert_grant(&grant("g2", "bot-02", 9)).await.unwrap();
    assert!(db.spend("g1").await.unwrap());
    assert!(db.spend("g1").await.unwrap());
    assert!(!db.spend("g1").await.unwrap(), "the budget is spent");
    let mine = db.grants(Some("bot-01"), Some("shop")).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].calls_used, 2);
    assert_eq!(
        mine[0],
        Grant {
            calls_used: 2,
            ..grant("g1", "bot-01", 2)
        }
    );
    assert_eq!(db.grants(None, None).await.unwrap().len(), 2);
    assert!(db.revoke_grant("g2", 20).await.unwrap());
    assert!(!db.revoke_grant("g2", 21).await.unwrap());
    assert!(
        !db.spend("g2").await.unwrap(),
        "a revoked grant spends nothing"
    );
    assert_eq!(db.grants(None, None).await.unwrap().len(), 1);

    // Grants bound to a ticket: found for that ticket's calls alone.
    let (t3, t4) = (TicketId::new(), TicketId::new());
    db.insert_grant(&ticket_grant("g3", None, t3, 11))
        .await
        .unwrap();
    db.insert_grant(&ticket_grant("g4", Some("bot-02"), t3, 12))
        .await
        .unwrap();
    db.insert_grant(&ticket_grant("g5", None, t4, 13))
        .await
        .unwrap();
    let ids = |gs: Vec<Grant>| gs.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.grants_for_call("bot-01", t3, "shop").await.unwrap()),
        ["g1", "g3"],
        "bot-01's own grant and t3's"
    );
    assert_eq!(
        ids(db.grants_for_call("bot-02", t3, "shop").await.unwrap()),
        ["g3", "g4"]
    );
    assert_eq!(
        ids(db.grants_for_call("bot-02", t4, "shop").await.unwrap()),
        ["g5"],
        "g4 is bot-02's for t3 only"
    );
    assert!(
        db.grants_for_call("bot-01", t3, "other")
            .await
            .unwrap()
            .is_empty()
    );
    let g3 = db.grants_of_ticket(t3).await.unwrap();
    assert_eq!(g3[0], ticket_grant("g3", None, t3, 11));
    assert_eq!(ids(g3), ["g3", "g4"]);
    assert_eq!(
        ids(db.grants(Some("bot-01"), None).await.unwrap()),
        ["g1"],
        "a bot's listing: its own"
    );
    assert_eq!(db.grants(None, None).await.unwrap().len(), 4);
    let neither = Grant {
        bot: None,
        ..grant("g6", "bot-01", 1)
    };
    assert!(
        db.insert_grant(&neither)
            .await
            .unwrap_err()
            .is_refused_data()
    );
    assert!(db.spend("g3").await.unwrap());
    assert_eq!(db.revoke_ticket_grants(t3, 30).await.unwrap(), ["g3", "g4"]);
    assert!(db.revoke_ticket_grants(t3, 31).await.unwrap().is_empty());
    assert!(db.grants_of_ticket(t3).await.unwrap().is_empty());
    assert!(
        !db.spend("g4").await.unwrap(),
        "a revoked grant spends nothing"
    );
    assert_eq!(
        ids(db.grants_for_call("bot-02", t4, "shop").await.unwrap()),
        ["g5"]
    );
    assert!(db.revoke_grant("g5", 32).await.unwrap());
    assert_eq!(db.grants(None, None).await.unwrap().len(), 1);

    // The audit: operator rows and each tenant's call rows, in one order.
    let mut op = AuditEntry::new(AuditKind::Grant, "granted");
    op.actor = Some("operator".into());
    db.audit(&op).await.unwrap();
    db.audit(&call_audit(&acme, t1, "acme call")).await.unwrap();
    db.audit(&call_audit(&globex, t2, "globex call"))
        .await
        .unwrap();
    let trail = db.audit_trail(None, None, 10).await.unwrap();
    let reasons: Vec<&str> = trail.iter().map(|a| a.reason.as_str()).collect();
    assert_eq!(reasons, ["globex call", "acme call", "granted"]);
    assert!(trail.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(trail[1].tenant.as_ref(), Some(&acme));
    assert_eq!(trail[2].tenant, None);
    assert_eq!(trail[1].ticket, Some(t1));
    let of_t1 = db.audit_trail(Some(t1), None, 10).await.unwrap();
    assert_eq!(of_t1.len(), 1);
    assert_eq!(of_t1[0].reason, "acme call");
    assert_eq!(db.audit_trail(None, None, 2).await.unwrap().len(), 2);
    let of_acme = db.audit_trail(None, Some(&acme), 10).await.unwrap();
    let reasons: Vec<&str> = of_acme.iter().map(|a| a.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["acme call"],
        "a tenant's trail: its calls, no operator rows"
    );

    // Effects: in flight, then settled; another tenant's key is not found.
    db.begin_effect(&effect("k1", &acme, t1)).await.unwrap();
    db.begin_effect(&effect("k2", &globex, t2)).await.unwrap();
    let found = db.effect(&acme, "k1").await.unwrap().unwrap();
    assert_eq!(found.state, EffectState::InFlight);
    assert_eq!(db.effect(&globex, "k1").await.unwrap(), None);
    let body = serde_json::json!({"id": "o-1"});
    db.settle_effect(&Settled {
        tenant: &acme,
        key: "k1",
        state: EffectState::Done,
        status: Some(201),
        response: Some(&body),
        at: 200,
    })
    .await
    .unwrap();
    // Settling under the wrong tenant changes nothing.
    db.settle_effect(&Settled {
        tenant: &globex,
        key: "k1",
        state: EffectState::Failed,
        status: Some(400),
        response: None,
        at: 300,
    })
    .await
    .unwrap();
    let done = db.effect(&acme, "k1").await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.status, done.response, done.updated_at_ms),
        (EffectState::Done, Some(201), Some(body), 200)
    );
    // Another attempt moves it back in flight, keeping its creation time.
    let mut again = effect("k1", &acme, t1);
    again.attempt = 2;
    again.created_at_ms = 400;
    db.begin_effect(&again).await.unwrap();
    let row = db.effect(&acme, "k1").await.unwrap().unwrap();
    assert_eq!(
        (row.attempt, row.state, row.created_at_ms),
        (2, EffectState::InFlight, 100)
    );
    assert_eq!(db.effects(None, None, 10).await.unwrap().len(), 2);
    let of_t2 = db.effects(Some(t2), None, 10).await.unwrap();
    assert_eq!(of_t2.len(), 1);
    assert_eq!(of_t2[0].tenant, globex);
    let of_acme = db.effects(None, Some(&acme), 10).await.unwrap();
    assert_eq!(of_acme.len(), 1);
    assert_eq!(of_acme[0].tenant, acme);
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    contract(sqlite(store.pool().clone())).await;
    store.close().await;
}

/// Adds tenants to a fleet's directory, as the controller does on admission.
async fn add_tenants(db: &TestDb, names: &[&str]) {
    for name in names {
        sqlx::query("INSERT INTO tenants (id, name, created_at_ms) VALUES ($1, $2, 1)")
            .bind(tenant(name).uuid())
            .bind(*name)
            .execute(db.store.pool())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_postgres_store_keeps_the_contract() {
    let db = TestDb::new().await;
    add_tenants(&db, &["acme", "globex"]).await;
    contract(postgres(db.store.pool().clone())).await;
    // The table's CHECK holds a grant to a bot or a ticket below the code.
    let e = sqlx::query(
        "INSERT INTO grants (id, connector, operations, scopes, conditions, rate_per_minute, budget_calls, created_at_ms)
         VALUES ('g-none', 'shop', '[]', '[]', '[]', 1, 1, 1)",
    )
    .execute(db.store.pool())
    .await
    .unwrap_err();
    assert!(e.to_string().contains("grants_bound"), "{e}");
    db.drop().await;
}

#[tokio::test]
async fn in_a_fleet_a_tenant_sees_only_its_own_tool_audit_and_writes() {
    let db = TestDb::new().await;
    add_tenants(&db, &["acme", "globex"]).await;
    let store = postgres(db.store.pool().clone());
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    store
        .audit(&call_audit(&acme, TicketId::new(), "acme call"))
        .await
        .unwrap();
    store
        .audit(&call_audit(&globex, TicketId::new(), "globex call"))
        .await
        .unwrap();
    store
        .begin_effect(&effect("ka", &acme, TicketId::new()))
        .await
        .unwrap();
    store
        .begin_effect(&effect("kg", &globex, TicketId::new()))
        .await
        .unwrap();

    let mut app = db.conn(oshal_store::postgres::APP_ROLE).await;
    // Scoped to acme: globex's rows are invisible, and cannot be written.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(acme.uuid().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in ["connector_audit", "effects"] {
        let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, 1, "{table}: acme sees its own row only");
    }
    let err = sqlx::query(
        "INSERT INTO connector_audit (tenant_id, at_ms, kind, reason) VALUES ($1, 1, 'decision', 'forged')",
    )
    .bind(globex.uuid())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_refused(&err, "an audit row for another tenant");
    tx.rollback().await.unwrap();
    // No tenant set: nothing, and no error.
    for table in ["connector_audit", "effects"] {
        let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut app).await.unwrap();
        assert_eq!(n, 0, "{table} with no tenant set");
    }
    app.close().await.unwrap();
    // The controller, visiting tenant by tenant, sees both.
    assert_eq!(store.audit_trail(None, None, 10).await.unwrap().len(), 2);
    assert_eq!(store.effects(None, None, 10).await.unwrap().len(), 2);
    db.drop().await;
}

/// PostgreSQL refuses U+0000 in text: that is the request's data, not the
/// store's health, so it must not read as "unavailable" (a 503 a client
/// would retry forever). The HTTP edge refuses it first; this is the floor.
#[tokio::test]
async fn data_the_database_refuses_is_told_from_a_store_that_is_down() {
    let db = TestDb::new().await;
    add_tenants(&db, &["acme", "globex"]).await;
    let store = postgres(db.store.pool().clone());
    let e = store.revoke_grant("g\u{0}1", 0).await.unwrap_err();
    assert!(e.is_refused_data(), "{e}");
    let gone = postgres(
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(300))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap(),
    );
    let e = gone.revoke_grant("g1", 0).await.unwrap_err();
    assert!(!e.is_refused_data(), "{e}");
    db.drop().await;
}
