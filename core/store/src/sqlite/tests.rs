use super::*;
use crate::fixtures::{finished_batch, ledger, ticket};
use crate::ticket::TransitionKind;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_batch_round_trips_every_field() {
    let (_dir, store) = store().await;
    let (mut t, created) = ticket("default", Some("k1"));
    let mut batch = WriteBatch {
        new_tickets: vec![t.clone()],
        transitions: vec![created],
        ..Default::default()
    };
    let bot = BotId::parse("bot-01").unwrap();
    batch.transitions.push(
        t.apply(TransitionKind::Route, Some(&bot), "r", 1_001)
            .unwrap(),
    );
    batch.updates.push(TicketUpdate::of(&t));
    batch
        .transitions
        .push(t.apply(TransitionKind::Start, None, "s", 1_002).unwrap());
    batch.updates.push(TicketUpdate::of(&t));
    t.result = Some(Arc::new(serde_json::json!({"text": "hi"})));
    batch
        .transitions
        .push(t.apply(TransitionKind::Succeed, None, "ok", 1_003).unwrap());
    batch.updates.push(TicketUpdate::of(&t));
    batch.ledger.push(ledger(&t, 1, 42));
    batch.coalesce();
    assert_eq!(batch.updates.len(), 1, "one update per ticket per batch");
    store.apply(&batch).await.unwrap();

    let view = store.ticket(t.id, None).await.unwrap().unwrap();
    assert_eq!(view.state, TicketState::Succeeded);
    assert_eq!(view.attempts, 1);
    assert_eq!(view.bot, Some(bot));
    assert_eq!(view.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(view.result, Some(serde_json::json!({"text": "hi"})));
    assert_eq!(view.payload, serde_json::json!({"prompt": "hello"}));
    let states: Vec<_> = view.events.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        states,
        vec![
            (None, TicketState::Queued),
            (Some(TicketState::Queued), TicketState::Routed),
            (Some(TicketState::Routed), TicketState::Running),
            (Some(TicketState::Running), TicketState::Succeeded),
        ]
    );
    assert_eq!(
        view.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(view.cost.cost_nusd, 42);
    assert_eq!(view.cost.attempts_charged, 1);
    assert!(store.unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_ledger_never_charges_an_attempt_twice() {
    let (_dir, store) = store().await;
    let (t, created) = ticket("default", None);
    store
        .apply(&WriteBatch {
            new_tickets: vec![t.clone()],
            transitions: vec![created],
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        store
            .apply(&WriteBatch {
                ledger: vec![ledger(&t, 1, 100)],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    store
        .apply(&WriteBatch {
            ledger: vec![ledger(&t, 2, 7), ledger(&t, 2, 7)],
            ..Default::default()
        })
        .await
        .unwrap();
    let summary = store.cost_summary(None).await.unwrap();
    assert_eq!(summary.total.attempts, 2);
    assert_eq!(summary.total.cost_nusd, 107);
    assert_eq!(summary.by_day[0].key, "1970-01-02");
    assert_eq!(summary.by_tenant[0].key, "default");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_ticket_and_writes_nothing_else() {
    let (_dir, store) = store().await;
    let (first, c1) = ticket("default", Some("same"));
    store
        .apply(&WriteBatch {
            new_tickets: vec![first.clone()],
            transitions: vec![c1],
            ..Default::default()
        })
        .await
        .unwrap();
    // A later batch, and a duplicate within one batch.
    let (second, c2) = ticket("default", Some("same"));
    let (third, c3) = ticket("default", Some("other"));
    let (fourth, c4) = ticket("default", Some("other"));
    let applied = store
        .apply(&WriteBatch {
            new_tickets: vec![second.clone(), third.clone(), fourth.clone()],
            transitions: vec![c2, c3, c4],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        applied.duplicates,
        vec![(second.id, first.id), (fourth.id, third.id)]
    );
    assert!(store.ticket(second.id, None).await.unwrap().is_none());
    assert_eq!(
        store
            .ticket(first.id, None)
            .await
            .unwrap()
            .unwrap()
            .events
            .len(),
        1
    );
    let page = store
        .tickets(&TicketQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.tickets.len(),
        2,
        "no events or rows for refused duplicates"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(events, 2);
}

#[tokio::test]
async fn pages_are_newest_first_with_a_cursor_and_filters() {
    let (_dir, store) = store().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (t, c) = ticket("default", None);
        ids.push(t.id);
        store
            .apply(&WriteBatch {
                new_tickets: vec![t],
                transitions: vec![c],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let p1 = store
        .tickets(&TicketQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        p1.tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let p2 = store
        .tickets(&TicketQuery {
            limit: 2,
            cursor: p1.next_cursor,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        p2.tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let p3 = store
        .tickets(&TicketQuery {
            limit: 2,
            cursor: p2.next_cursor,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p3.tickets.len(), 1);
    assert_eq!(p3.next_cursor, None);
    let none = store
        .tickets(&TicketQuery {
            limit: 10,
            state: Some(TicketState::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.tickets.is_empty());
    assert_eq!(store.unfinished().await.unwrap().len(), 5);
}

/// The batched statements must look rows up by primary key, not scan the
/// table: at a million tickets a scan per batch would be the bottleneck.
#[tokio::test]
async fn batched_updates_use_the_primary_key() {
    let (_dir, store) = store().await;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {UPDATE_TICKETS}"
    )))
    .bind("[]")
    .fetch_all(store.pool())
    .await
    .unwrap();
    let plan = rows
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect::<Vec<_>>()
        .join(" | ");
    assert!(
        plan.contains("USING PRIMARY KEY")
            || plan.contains("USING INDEX sqlite_autoindex_tickets_1"),
        "{plan}"
    );
    assert!(!plan.contains("SCAN tickets"), "{plan}");
}

#[tokio::test]
async fn a_failed_batch_writes_nothing() {
    let (_dir, store) = store().await;
    let (t, c) = ticket("default", None);
    let mut bad = ledger(&t, 1, 1);
    bad.price_version = String::new();
    // A ledger row whose JSON lacks a NOT NULL column makes the transaction fail.
    let batch = WriteBatch {
        new_tickets: vec![t.clone()],
        transitions: vec![c],
        ..Default::default()
    };
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON ledger BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let mut with_ledger = batch;
    with_ledger.ledger.push(bad);
    assert!(store.apply(&with_ledger).await.is_err());
    assert!(
        store.ticket(t.id, None).await.unwrap().is_none(),
        "the ticket of a failed batch must not exist"
    );
}

#[tokio::test]
async fn a_batch_applied_twice_lands_once() {
    let (_dir, store) = store().await;
    let (keyed, mut batch) = finished_batch("default", Some("k1"), 42);
    let (plain, other) = finished_batch("default", None, 8);
    batch.absorb(other);
    assert_eq!(store.apply(&batch).await.unwrap(), Applied::default());
    // Its answer lost, the writer applies it again: nothing is refused,
    // nothing written twice.
    assert_eq!(store.apply(&batch).await.unwrap(), Applied::default());
    for t in [&keyed, &plain] {
        let view = store.ticket(t.id, None).await.unwrap().unwrap();
        assert_eq!(view.state, TicketState::Succeeded);
        assert_eq!(view.events.len(), 4, "{view:?}");
        assert_eq!(view.ledger.len(), 1);
    }
    assert_eq!(store.cost_summary(None).await.unwrap().total.cost_nusd, 50);
    // A new ticket with a stored key is still a duplicate.
    let (dup, created) = ticket("default", Some("k1"));
    let again = WriteBatch {
        new_tickets: vec![dup.clone()],
        transitions: vec![created],
        ..Default::default()
    };
    let applied = store.apply(&again).await.unwrap();
    assert_eq!(applied.duplicates, vec![(dup.id, keyed.id)]);
}

#[tokio::test]
async fn reads_scoped_to_a_tenant_see_only_it_and_tokens_keep_their_hash() {
    let (_dir, store) = store().await;
    crate::fixtures::scoped_reads_and_tokens(&store).await;
}

#[tokio::test]
async fn a_desk_journal_keeps_each_entry_once_and_per_tenant() {
    let (_dir, store) = store().await;
    crate::fixtures::journal(&store).await;
}

/// The embedded store is one operator's file: the walk-through's ended
/// tickets can be removed.
#[tokio::test]
async fn a_tag_lists_its_tickets_and_a_clear_removes_the_ended_ones() {
    let (_dir, store) = store().await;
    crate::fixtures::tagged(&store, true).await;
}
