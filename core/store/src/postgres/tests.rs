//! Against the real PostgreSQL server (`OSHAL_TEST_POSTGRES`, default the
//! local trust-auth server). Each test works in its own schema and drops it.

use super::*;
use crate::TicketUpdate;
use crate::fixtures::{finished_batch, ledger, ticket};
use crate::ticket::TransitionKind;
use sqlx::Connection;

use super::testing::{TestDb, admin_url, assert_refused};

fn tenant_row(name: &str) -> Tenant {
    Tenant {
        id: TenantId::parse(name).unwrap(),
        budget_nusd: None,
        created_at_ms: 1,
    }
}

/// Writes one finished ticket for each of `tenants`; returns them.
async fn seed(store: &PgStore, tenants: &[&str]) -> Vec<Ticket> {
    let mut batch = WriteBatch {
        tenants: tenants.iter().map(|t| tenant_row(t)).collect(),
        ..Default::default()
    };
    let bot = BotId::parse("bot-01").unwrap();
    let mut out = Vec::new();
    for tenant in tenants {
        let (mut t, created) = ticket(tenant, Some("k1"));
        batch.new_tickets.push(t.clone());
        batch.transitions.push(created);
        for (event, at) in [
            (TransitionKind::Route, 1_001),
            (TransitionKind::Start, 1_002),
            (TransitionKind::Succeed, 1_003),
        ] {
            if event == TransitionKind::Succeed {
                t.result = Some(Arc::new(serde_json::json!({"text": "hi"})));
            }
            let b = (event == TransitionKind::Route).then_some(&bot);
            batch.transitions.push(t.apply(event, b, "r", at).unwrap());
            batch.updates.push(TicketUpdate::of(&t));
        }
        batch.ledger.push(ledger(&t, 1, 42));
        out.push(t);
    }
    batch.coalesce();
    store.apply(&batch).await.unwrap();
    out
}

#[tokio::test]
async fn a_batch_over_two_tenants_round_trips() {
    let db = TestDb::new().await;
    let written = seed(&db.store, &["acme", "globex"]).await;
    for t in &written {
        let v = db.store.ticket(t.id, None).await.unwrap().expect("stored");
        assert_eq!(v.tenant, t.tenant);
        assert_eq!(v.state, TicketState::Succeeded);
        assert_eq!(v.attempts, 1);
        assert_eq!(v.bot.as_ref().map(BotId::as_str), Some("bot-01"));
        assert_eq!(v.result, Some(serde_json::json!({"text": "hi"})));
        assert_eq!(v.events.len(), 4);
        assert_eq!(v.events[3].from, Some(TicketState::Running));
        assert_eq!(v.events[3].tenant, t.tenant);
        assert_eq!(v.cost.cost_nusd, 42);
        assert_eq!(v.ledger.len(), 1);
    }
    assert!(
        db.store
            .ticket(TicketId::new(), None)
            .await
            .unwrap()
            .is_none()
    );

    let page = db
        .store
        .tickets(&TicketQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tickets.len(), 2);
    assert!(page.tickets[0].id > page.tickets[1].id, "newest first");
    let one = db
        .store
        .tickets(&TicketQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.tickets.len(), 1);
    let rest = db
        .store
        .tickets(&TicketQuery {
            limit: 1,
            cursor: one.next_cursor,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.tickets[0].id, page.tickets[1].id);
    assert_eq!(rest.next_cursor, None);

    let summary = db.store.cost_summary(None).await.unwrap();
    assert_eq!(summary.total.cost_nusd, 84);
    assert_eq!(summary.total.attempts, 2);
    assert_eq!(summary.by_tenant.len(), 2);
    assert_eq!(summary.by_day[0].key, "1970-01-02");
    assert_eq!(
        db.store.state_counts(None).await.unwrap(),
        vec![(TicketState::Succeeded, 2)]
    );
    let spend = db.store.spend_by_tenant().await.unwrap();
    assert_eq!(spend.iter().map(|s| s.1).sum::<i64>(), 84);
    assert!(db.store.unfinished().await.unwrap().is_empty());
    db.drop().await;
}

#[tokio::test]
async fn duplicates_and_repeated_ledger_rows_write_nothing() {
    let db = TestDb::new().await;
    let first = seed(&db.store, &["acme"]).await;
    // Same idempotency key again, and the same ledger row again.
    let (dup, created) = ticket("acme", Some("k1"));
    let batch = WriteBatch {
        new_tickets: vec![dup.clone()],
        transitions: vec![created],
        ledger: vec![ledger(&first[0], 1, 999)],
        ..Default::default()
    };
    let applied = db.store.apply(&batch).await.unwrap();
    assert_eq!(applied.duplicates, vec![(dup.id, first[0].id)]);
    assert!(db.store.ticket(dup.id, None).await.unwrap().is_none());
    assert_eq!(
        db.store.cost_summary(None).await.unwrap().total.cost_nusd,
        42
    );
    db.drop().await;
}

#[tokio::test]
async fn a_batch_applied_twice_lands_once() {
    let db = TestDb::new().await;
    let (keyed, mut batch) = finished_batch("acme", Some("k1"), 42);
    let (plain, other) = finished_batch("globex", None, 8);
    batch.absorb(other);
    batch.tenants = vec![tenant_row("acme"), tenant_row("globex")];
    assert_eq!(db.store.apply(&batch).await.unwrap(), Applied::default());
    // Its answer lost, the writer applies it again: nothing is refused,
    // nothing written twice.
    assert_eq!(db.store.apply(&batch).await.unwrap(), Applied::default());
    for t in [&keyed, &plain] {
        let view = db.store.ticket(t.id, None).await.unwrap().unwrap();
        assert_eq!(view.state, TicketState::Succeeded);
        assert_eq!(view.events.len(), 4, "{view:?}");
        assert_eq!(view.ledger.len(), 1);
    }
    assert_eq!(
        db.store.cost_summary(None).await.unwrap().total.cost_nusd,
        50
    );
    // A new ticket with a stored key is still a duplicate.
    let (dup, created) = ticket("acme", Some("k1"));
    let again = WriteBatch {
        new_tickets: vec![dup.clone()],
        transitions: vec![created],
        ..Default::default()
    };
    let applied = db.store.apply(&again).await.unwrap();
    assert_eq!(applied.duplicates, vec![(dup.id, keyed.id)]);
    db.drop().await;
}

#[tokio::test]
async fn a_failed_batch_writes_nothing() {
    let db = TestDb::new().await;
    let (t, created) = ticket("acme", None);
    // The tenant row is missing: the ticket's foreign key fails the batch.
    let batch = WriteBatch {
        new_tickets: vec![t.clone()],
        transitions: vec![created],
        budgets: vec![tenant_row("other")],
        ..Default::default()
    };
    assert!(db.store.apply(&batch).await.is_err());
    assert!(
        db.store.tenants().await.unwrap().is_empty(),
        "nothing half-written"
    );
    db.drop().await;
}

#[tokio::test]
async fn row_level_security_isolates_tenants_for_the_app_role() {
    let db = TestDb::new().await;
    let written = seed(&db.store, &["acme", "globex"]).await;
    let (acme, globex) = (&written[0], &written[1]);
    let mut app = db.conn(APP_ROLE).await;

    // A tenant's transaction sees only its own rows, in every tenant table.
    let mut tx = app.begin().await.unwrap();
    scope(&mut tx, &acme.tenant).await.unwrap();
    for table in ["tickets", "ticket_events", "ledger"] {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id <> $1"
        ));
        let others: i64 = sqlx::query_scalar(sql)
            .bind(acme.tenant.uuid())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(others, 0, "{table}: another tenant's rows are visible");
    }
    let seen: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tickets WHERE id = $1")
        .bind(globex.id.0)
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, None);
    // Writing a row for another tenant is refused by the policy (42501).
    let err = sqlx::query(
        "INSERT INTO ledger (tenant_id, ticket_id, attempt, bot_id, model, input_tokens, output_tokens, \
         cost_nusd, unpriced, price_version, at_ms) VALUES ($1, $2, 9, 'b', 'm', 1, 1, 1, false, 'v', 1)",
    )
    .bind(globex.tenant.uuid())
    .bind(globex.id.0)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_refused(&err, "a ledger row for another tenant");
    tx.rollback().await.unwrap();

    // Updating another tenant's ticket touches nothing.
    let mut tx = app.begin().await.unwrap();
    scope(&mut tx, &acme.tenant).await.unwrap();
    let n = sqlx::query("UPDATE tickets SET error = 'x' WHERE id = $1")
        .bind(globex.id.0)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 0);
    tx.rollback().await.unwrap();

    // With no tenant set, or a reset one, there are no rows and no error.
    for prelude in ["", "SELECT set_config('app.tenant_id', '', false)"] {
        if !prelude.is_empty() {
            sqlx::query(prelude).execute(&mut app).await.unwrap();
        }
        for table in ["tickets", "ticket_events", "ledger"] {
            let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut app).await.unwrap();
            assert_eq!(n, 0, "{table} with {prelude:?}");
        }
    }
    // The app role may not delete, nor rewrite the ledger or an audit trail.
    for sql in [
        "DELETE FROM tickets",
        "UPDATE ledger SET cost_nusd = 0",
        "UPDATE connector_audit SET reason = ''",
        "UPDATE operator_audit SET reason = ''",
        "DELETE FROM effects",
        "DELETE FROM grants",
    ] {
        let err = sqlx::query(sql).execute(&mut app).await.unwrap_err();
        assert_refused(&err, sql);
    }
    app.close().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn the_app_role_is_least_privileged_and_every_tenant_table_is_forced() {
    let db = TestDb::new().await;
    let mut app = db.conn(APP_ROLE).await;
    let (superuser, bypass, createrole, createdb): (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert!(!superuser && !bypass && !createrole && !createdb);
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1",
    )
    .bind(APP_ROLE)
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(owned, 0, "oshal_app owns nothing");
    // Every table with a tenant_id column in this schema is forced, with a policy.
    let rows: Vec<(String, bool, bool, i64, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                pg_get_userbyid(c.relowner)::text
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r'
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
         ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(&mut app)
    .await
    .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "connector_audit",
            "desk_journal",
            "effects",
            "ledger",
            "ticket_events",
            "tickets"
        ]
    );
    for (table, enabled, forced, policies, owner) in &rows {
        assert!(
            *enabled && *forced,
            "{table} must ENABLE and FORCE row level security"
        );
        assert_eq!(*policies, 1, "{table}");
        assert_eq!(owner, OWNER_ROLE, "{table}");
    }
    app.close().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn bad_configuration_is_refused_with_the_field_named() {
    for bad in ["", "Robert'); DROP TABLE x;--", "9lives", &"a".repeat(64)] {
        let err = check_schema(bad).unwrap_err();
        assert!(err.to_string().contains("schema"), "{err}");
    }
    let err = PgStore::connect("mysql://nope", "oshal").await.unwrap_err();
    assert!(err.to_string().contains("postgres URL"), "{err}");
    setup(&admin_url(), "ok_schema; DROP").await.unwrap_err();
}

/// A function of this schema: SECURITY DEFINER?, its settings, and whether
/// PUBLIC may execute it.
async fn function_facts(
    db: &TestDb,
    conn: &mut PgConnection,
    name: &str,
) -> (bool, Vec<String>, bool) {
    sqlx::query_as(
        "SELECT p.prosecdef, p.proconfig::text[],
                has_function_privilege('public', p.oid, 'EXECUTE')
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND p.proname = $2",
    )
    .bind(&db.schema)
    .bind(name)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_app_role_may_refresh_statistics_and_apply_batches_and_nothing_more() {
    let db = TestDb::new().await;
    let mut app = db.conn(APP_ROLE).await;
    let ran: bool = sqlx::query_scalar("SELECT refresh_statistics()")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert!(ran);
    // SECURITY DEFINER with the search path pinned to this schema; nobody
    // but oshal_app (and its owner) may execute it.
    let (definer, config, public) = function_facts(&db, &mut app, "refresh_statistics").await;
    assert!(definer);
    assert_eq!(config, [format!("search_path={}, pg_temp", db.schema)]);
    assert!(!public, "PUBLIC must not execute refresh_statistics");
    let mut readonly = db.conn(READONLY_ROLE).await;
    let err = sqlx::query("SELECT refresh_statistics()")
        .execute(&mut readonly)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    // apply_batch runs as its caller, so row-level security applies inside
    // it; only oshal_app may call it.
    let (definer, config, public) = function_facts(&db, &mut app, "apply_batch").await;
    assert!(!definer, "apply_batch must be SECURITY INVOKER");
    assert_eq!(config, [format!("search_path={}, pg_temp", db.schema)]);
    assert!(!public, "PUBLIC must not execute apply_batch");
    let err = apply_batch_query(&WriteBatch::default())
        .execute(&mut readonly)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    readonly.close().await.unwrap();
    app.close().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn a_batched_update_probes_the_primary_key_once_statistics_are_fresh() {
    let db = TestDb::new().await;
    let mut batch = WriteBatch {
        tenants: vec![tenant_row("acme")],
        ..Default::default()
    };
    for i in 0..3_000 {
        let (t, created) = ticket("acme", Some(&format!("k{i}")));
        batch.new_tickets.push(t);
        batch.transitions.push(created);
    }
    db.store.apply(&batch).await.unwrap();
    // The store may be refreshing in the background right now (it just
    // inserted 3,000 tickets), and a second refresh then skips: ask until
    // one ran to the end on our side.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sqlx::query_scalar::<_, bool>("SELECT refresh_statistics()")
        .fetch_one(db.store.pool())
        .await
        .unwrap()
    {
        assert!(std::time::Instant::now() < deadline, "no refresh ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 200 updates through apply_batch itself; the transaction's own scan
    // counters say whether the tickets table was scanned whole.
    let updates = WriteBatch {
        updates: batch
            .new_tickets
            .iter()
            .take(200)
            .map(TicketUpdate::of)
            .collect(),
        ..Default::default()
    };
    let mut tx = db.store.pool().begin().await.unwrap();
    apply_batch_query(&updates)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let (seq, idx): (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
         WHERE schemaname = current_schema() AND relname = 'tickets'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(seq, 0, "the tickets table was scanned whole");
    assert!(
        idx >= 200,
        "each update probes the primary key: {idx} index scans"
    );
    db.drop().await;
}

/// A model reply holding U+0000 reached PostgreSQL, which refuses it in
/// `jsonb` and `text`; every sqlx error was "unavailable", so the writer
/// retried that batch without end and the whole fleet's writes stopped. A
/// refusal of the data must read as permanent, on writes and on reads.
#[tokio::test]
async fn postgres_refusing_a_nul_is_a_rejection_not_an_outage() {
    let db = TestDb::new().await;
    let (mut t, mut batch) = finished_batch("acme", None, 1);
    batch.tenants.push(tenant_row("acme"));
    db.store.apply(&batch).await.unwrap();
    t.result = Some(Arc::new(serde_json::json!({"text": "a\u{0}b"})));
    let poisoned = WriteBatch {
        updates: vec![TicketUpdate::of(&t)],
        ..Default::default()
    };
    let err = db.store.apply(&poisoned).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("SQLSTATE 22"), "{err}");

    let read = db
        .store
        .tickets(&TicketQuery {
            kind: Some("\u{0}".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(read.is_permanent(), "{read:?}");
    db.drop().await;
}

/// The writer in front of the real server: a batch holding a NUL lands
/// cleaned (U+FFFD), and the records beside it land with it.
#[tokio::test]
async fn the_writer_lands_a_nul_cleaned_and_everything_beside_it() {
    use crate::writer::Writer;
    let db = TestDb::new().await;
    let store = Arc::new(
        PgStore::connect(&as_role(&admin_url(), APP_ROLE).unwrap(), &db.schema)
            .await
            .unwrap(),
    );
    let (writer, _task) = Writer::spawn(store.clone(), Box::new(|_, _| {}));
    let (mut bad, created_bad) = finished_batch("acme", None, 1);
    let (mut good, created_good) = finished_batch("globex", None, 2);
    for b in [created_bad, created_good] {
        writer
            .write_and_wait(WriteBatch {
                tenants: b
                    .new_tickets
                    .iter()
                    .map(|t| tenant_row(t.tenant.as_str()))
                    .collect(),
                new_tickets: b.new_tickets,
                transitions: b.transitions[..1].to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut records = WriteBatch::default();
    for (t, text) in [(&mut bad, "poison\u{0}ed"), (&mut good, "fine")] {
        t.result = Some(Arc::new(serde_json::json!({ "text": text })));
        t.error = Some(format!("{text}!"));
        records.updates.push(TicketUpdate::of(t));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    writer
        .record(
            records,
            Some(Box::new(move |r| {
                let _ = tx.send(r.cloned().map_err(Clone::clone));
            })),
        )
        .await
        .unwrap();
    let applied = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
        .await
        .expect("the writer answers at once, not after endless retries")
        .unwrap()
        .unwrap();
    assert!(applied.rejected.is_empty(), "{applied:?}");
    let stored_bad = store.ticket(bad.id, None).await.unwrap().unwrap();
    assert_eq!(stored_bad.result.unwrap()["text"], "poison\u{FFFD}ed");
    assert_eq!(stored_bad.error.as_deref(), Some("poison\u{FFFD}ed!"));
    let stored_good = store.ticket(good.id, None).await.unwrap().unwrap();
    assert_eq!(stored_good.result.unwrap()["text"], "fine");
    store.close().await;
    db.drop().await;
}

/// `oshal serve --postgres URL` on a database never set up stopped with
/// "relation \"connector_catalog\" does not exist"; it must say the schema
/// is missing and how to create it, and likewise for a schema behind the
/// binary's migrations.
#[tokio::test]
async fn a_schema_never_set_up_or_behind_is_refused_with_the_fix() {
    let missing = format!("t_{}", Uuid::now_v7().simple());
    let err = PgStore::connect(&admin_url(), &missing).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("schema {missing} is not set up")),
        "{text}"
    );
    assert!(text.contains("oshal db-setup"), "{text}");

    let db = TestDb::new().await;
    let mut owner = db.conn("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}._sqlx_migrations WHERE version = (SELECT max(version) FROM {}._sqlx_migrations)",
        db.schema, db.schema
    )))
    .execute(&mut owner)
    .await
    .unwrap();
    let app = as_role(&admin_url(), APP_ROLE).unwrap();
    let err = PgStore::connect(&app, &db.schema).await.unwrap_err();
    assert!(
        err.to_string().contains("older than this binary's"),
        "{err}"
    );
    db.drop().await;
}

/// The Security Center checks row-level security against this list, so it
/// must be the migrations' own: every table with a `tenant_id`, no other.
#[tokio::test]
async fn tenant_tables_are_the_tables_the_migrations_give_a_tenant() {
    let db = TestDb::new().await;
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert_eq!(found, TENANT_TABLES);
    db.drop().await;
}

/// Scoped reads run as the one tenant, so row-level security alone keeps
/// the other's rows out (no query filters by tenant).
#[tokio::test]
async fn reads_scoped_to_a_tenant_see_only_it_and_tokens_keep_their_hash() {
    let db = TestDb::new().await;
    crate::fixtures::scoped_reads_and_tokens(&db.store).await;
    db.drop().await;
}

/// Row-level security keeps another tenant's journal out.
#[tokio::test]
async fn a_desk_journal_keeps_each_entry_once_and_per_tenant() {
    let db = TestDb::new().await;
    crate::fixtures::journal(&db.store).await;
    db.drop().await;
}

/// A fleet's history is append-only (the controller's role may not
/// delete): a clear counts the tag's ended tickets as kept.
#[tokio::test]
async fn a_tag_lists_its_tickets_and_a_clear_keeps_them() {
    let db = TestDb::new().await;
    crate::fixtures::tagged(&db.store, false).await;
    db.drop().await;
}
