//! The writer against real stores: a SQLite store behind switches that
//! fail, hold or refuse its commits, and the real PostgreSQL server.

use super::*;
use crate::fixtures::finished_batch;
use crate::sqlite::SqliteStore;
use crate::ticket::TicketState;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::sync::Notify;

/// A real SQLite store behind a switch: while `down`, every apply fails
/// (after waiting for `release` when `hold` is set, to stand for a try
/// that is slow to fail, like a connect attempt timing out).
struct Outage {
    store: SqliteStore,
    down: AtomicBool,
    hold: AtomicBool,
    tries: AtomicU32,
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl Apply for Outage {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if !self.down.load(Ordering::SeqCst) {
            return Store::apply(&self.store, batch).await;
        }
        if self.hold.load(Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

/// The race a PostgreSQL restart showed: a record keeps the writer
/// retrying; the store comes back while a try that began before is still
/// failing; a proposal that arrived meanwhile must be written, not
/// refused on that try's word.
#[tokio::test]
async fn a_proposal_is_refused_only_by_a_try_that_began_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let outage = Arc::new(Outage {
        store: SqliteStore::open(dir.path()).await.unwrap(),
        down: AtomicBool::new(false),
        hold: AtomicBool::new(false),
        tries: AtomicU32::new(0),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let (writer, _task) = Writer::spawn(outage.clone(), Box::new(|_, _| {}));

    // A ticket is created while the store is up...
    let (early, whole) = finished_batch("default", None, 7);
    let creation = WriteBatch {
        new_tickets: whole.new_tickets.clone(),
        transitions: whole.transitions[..1].to_vec(),
        ..Default::default()
    };
    writer.write_and_wait(creation).await.unwrap();
    // ...and finishes while it is down: a record, retried until it lands.
    outage.down.store(true, Ordering::SeqCst);
    outage.tries.store(0, Ordering::SeqCst);
    let finish = WriteBatch {
        new_tickets: Vec::new(),
        transitions: whole.transitions[1..].to_vec(),
        ..whole
    };
    let (recorded, landed) = tokio::sync::oneshot::channel();
    let done: Done = Box::new(move |r| {
        let _ = recorded.send(r.is_ok());
    });
    writer.record(finish, Some(done)).await.unwrap();
    while outage.tries.load(Ordering::SeqCst) < REFUSABLE_TRIES {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A proposal queued while down, before a try: refused by its failure.
    let new_ticket = |key: Option<&str>| {
        let (t, b) = finished_batch("default", key, 1);
        let batch = WriteBatch {
            new_tickets: b.new_tickets,
            transitions: b.transitions[..1].to_vec(),
            ..Default::default()
        };
        (t, batch)
    };
    let (refused, batch) = new_ticket(None);
    assert!(matches!(
        writer.write_and_wait(batch).await,
        Err(StoreError::Unavailable(_))
    ));

    // The next try is slow to fail; a proposal arrives during it, then
    // the store comes back.
    outage.hold.store(true, Ordering::SeqCst);
    outage.entered.notified().await;
    let (after, batch) = new_ticket(Some("after"));
    let w = writer.clone();
    let submitted = tokio::spawn(async move { w.write_and_wait(batch).await });
    while writer.tx.capacity() == QUEUE {
        tokio::task::yield_now().await;
    }
    outage.down.store(false, Ordering::SeqCst);
    outage.release.notify_one();

    assert_eq!(submitted.await.unwrap().unwrap(), Applied::default());
    assert!(landed.await.unwrap(), "the record landed");
    let stored = outage.store.ticket(after.id, None).await.unwrap().unwrap();
    assert_eq!(stored.state, TicketState::Queued);
    let early = outage.store.ticket(early.id, None).await.unwrap().unwrap();
    assert_eq!(early.state, TicketState::Succeeded);
    assert_eq!(early.ledger.len(), 1);
    assert!(
        outage
            .store
            .ticket(refused.id, None)
            .await
            .unwrap()
            .is_none()
    );
}

/// A real PostgreSQL store whose tries wait at a gate: each announces
/// the tickets it writes, then waits for the test to let it through
/// (`true`) or fail it as a lost connection would (`false`).
struct Gated {
    store: crate::postgres::PgStore,
    entered: mpsc::UnboundedSender<(Vec<TicketId>, tokio::sync::oneshot::Sender<bool>)>,
}

#[async_trait::async_trait]
impl Apply for Gated {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        let mut ids: Vec<TicketId> = (batch.new_tickets.iter().map(|t| t.id))
            .chain(batch.transitions.iter().map(|t| t.ticket))
            .collect();
        ids.sort();
        ids.dedup();
        let (open, gate) = tokio::sync::oneshot::channel();
        let _ = self.entered.send((ids, open));
        match gate.await {
            Ok(true) => Store::apply(&self.store, batch).await,
            _ => Err(StoreError::Unavailable("connection reset".into())),
        }
    }

    fn parallel_commits(&self) -> usize {
        2
    }
}

type Entered = mpsc::UnboundedReceiver<(Vec<TicketId>, tokio::sync::oneshot::Sender<bool>)>;

/// A writer over a gated store in a fresh schema, with the tenant
/// `default` already written.
async fn gated() -> (
    crate::postgres::testing::TestDb,
    Writer,
    tokio::task::JoinHandle<()>,
    Entered,
) {
    let db = crate::postgres::testing::TestDb::new().await;
    let (entered, mut rx) = mpsc::unbounded_channel();
    let gated = Arc::new(Gated {
        store: db.store.clone(),
        entered,
    });
    let (writer, task) = Writer::spawn(gated, Box::new(|_, _| {}));
    tenant(&writer, &mut rx).await;
    (db, writer, task, rx)
}

/// The next try to reach the store, within a second.
async fn next_try(entered: &mut Entered) -> (Vec<TicketId>, tokio::sync::oneshot::Sender<bool>) {
    tokio::time::timeout(Duration::from_secs(1), entered.recv())
        .await
        .expect("a try reaches the store")
        .expect("the writer is running")
}

/// Asserts that no try reaches the store for a while.
async fn no_try(entered: &mut Entered, why: &str) {
    let r = tokio::time::timeout(Duration::from_millis(150), entered.recv()).await;
    assert!(r.is_err(), "{why}: {:?}", r.map(|e| e.map(|(ids, _)| ids)));
}

/// A ticket's creation, and the rest of its life, as separate batches.
fn life(tenant: &str) -> (TicketId, WriteBatch, WriteBatch) {
    let (t, whole) = finished_batch(tenant, None, 7);
    let creation = WriteBatch {
        new_tickets: whole.new_tickets.clone(),
        transitions: whole.transitions[..1].to_vec(),
        ..Default::default()
    };
    let rest = WriteBatch {
        new_tickets: Vec::new(),
        transitions: whole.transitions[1..].to_vec(),
        ..whole
    };
    (t.id, creation, rest)
}

fn propose(
    writer: &Writer,
    batch: WriteBatch,
) -> tokio::task::JoinHandle<Result<Applied, StoreError>> {
    let w = writer.clone();
    tokio::spawn(async move { w.write_and_wait(batch).await })
}

async fn record(writer: &Writer, batch: WriteBatch) -> tokio::sync::oneshot::Receiver<bool> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done: Done = Box::new(move |r| {
        let _ = tx.send(r.is_ok());
    });
    writer.record(batch, Some(done)).await.unwrap();
    rx
}

async fn tenant(writer: &Writer, entered: &mut Entered) {
    let t = propose(
        writer,
        WriteBatch {
            tenants: vec![crate::Tenant {
                id: TenantId::parse("default").unwrap(),
                budget_nusd: None,
                created_at_ms: 1,
            }],
            ..Default::default()
        },
    );
    next_try(entered).await.1.send(true).unwrap();
    t.await.unwrap().unwrap();
}

#[tokio::test]
async fn disjoint_batches_commit_at_once_and_a_ticket_waits_for_its_own() {
    let (db, writer, task, mut entered) = gated().await;
    let (a, create_a, rest_a) = life("default");
    let (b, create_b, rest_b) = life("default");

    // Two creations are in the store at once.
    let created_a = propose(&writer, create_a);
    let (ids, open_a) = next_try(&mut entered).await;
    assert_eq!(ids, vec![a]);
    let created_b = propose(&writer, create_b);
    let (ids, open_b) = next_try(&mut entered).await;
    assert_eq!(
        ids,
        vec![b],
        "a disjoint batch goes while the first is in flight"
    );

    // The rest of a's life waits for a's creation, even with a slot free.
    let finished_a = record(&writer, rest_a).await;
    open_b.send(true).unwrap();
    created_b.await.unwrap().unwrap();
    no_try(&mut entered, "a's finish must wait for a's creation").await;
    open_a.send(true).unwrap();
    created_a.await.unwrap().unwrap();
    let (ids, open) = next_try(&mut entered).await;
    assert_eq!(ids, vec![a]);
    open.send(true).unwrap();
    assert!(finished_a.await.unwrap());

    // A barrier (an empty batch) lands after everything sent before it.
    let finished_b = record(&writer, rest_b).await;
    let (ids, open_rest_b) = next_try(&mut entered).await;
    assert_eq!(ids, vec![b]);
    let barrier = propose(&writer, WriteBatch::default());
    no_try(&mut entered, "the barrier must wait").await;
    open_rest_b.send(true).unwrap();
    assert!(finished_b.await.unwrap());
    let (ids, open) = next_try(&mut entered).await;
    assert!(ids.is_empty());
    open.send(true).unwrap();
    barrier.await.unwrap().unwrap();

    for id in [a, b] {
        let t = db.store.ticket(id, None).await.unwrap().unwrap();
        assert_eq!(t.state, TicketState::Succeeded);
        assert_eq!((t.events.len(), t.ledger.len()), (4, 1));
    }
    drop(writer);
    task.await.unwrap();
    db.drop().await;
}

/// A proposal that fails beside a record must still be refused while
/// the store stays down: the record is retried until it lands, and the
/// submitter (an API client told to retry on 503) must not wait for the
/// store's return. Seen locally as a hung PostgreSQL crash e2e test.
#[tokio::test]
async fn a_proposal_failing_beside_a_record_is_refused_while_the_store_is_down() {
    let (db, writer, task, mut entered) = gated().await;
    let (a, create_a, rest_a) = life("default");
    let (b, create_b, _) = life("default");
    let created_a = propose(&writer, create_a);
    next_try(&mut entered).await.1.send(true).unwrap();
    created_a.await.unwrap().unwrap();

    // a's finish (a record) and b's creation (a proposal) are in flight
    // at once, and the store goes down under both.
    let finished_a = record(&writer, rest_a).await;
    let (ids, open_a) = next_try(&mut entered).await;
    assert_eq!(ids, vec![a]);
    let created_b = propose(&writer, create_b);
    let (ids, open_b) = next_try(&mut entered).await;
    assert_eq!(ids, vec![b]);
    open_a.send(false).unwrap();
    open_b.send(false).unwrap();

    // Every try fails; b is refused after the policy's tries.
    let mut tries = 1;
    while !created_b.is_finished() {
        assert!(
            tries <= REFUSABLE_TRIES,
            "b still waits after {tries} tries"
        );
        next_try(&mut entered).await.1.send(false).unwrap();
        tries += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        created_b.await.unwrap(),
        Err(StoreError::Unavailable(_))
    ));
    // The store is back: only a's rows are left to write.
    let (ids, open) = next_try(&mut entered).await;
    assert_eq!(ids, vec![a]);
    open.send(true).unwrap();
    assert!(finished_a.await.unwrap());
    let stored = db.store.ticket(a, None).await.unwrap().unwrap();
    assert_eq!(stored.state, TicketState::Succeeded);
    assert!(db.store.ticket(b, None).await.unwrap().is_none());
    drop(writer);
    task.await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn after_a_failure_the_others_land_and_the_failed_batch_is_retried_alone() {
    let (db, writer, task, mut entered) = gated().await;
    let (a, create_a, _) = life("default");
    let (b, create_b, _) = life("default");
    let (c, create_c, _) = life("default");

    let created_a = propose(&writer, create_a);
    let (_, open_a) = next_try(&mut entered).await;
    let created_b = propose(&writer, create_b);
    let (_, open_b) = next_try(&mut entered).await;
    // a's try fails; b is still in flight, and c waits behind both.
    open_a.send(false).unwrap();
    let created_c = propose(&writer, create_c);
    no_try(
        &mut entered,
        "nothing new starts while a failed batch awaits its retry",
    )
    .await;
    open_b.send(true).unwrap();
    created_b.await.unwrap().unwrap();
    // a is retried alone, then c goes.
    let (ids, open) = next_try(&mut entered).await;
    assert_eq!(ids, vec![a], "the failed batch is retried first");
    no_try(&mut entered, "the retry goes alone").await;
    open.send(true).unwrap();
    created_a.await.unwrap().unwrap();
    let (ids, open) = next_try(&mut entered).await;
    assert_eq!(ids, vec![c]);
    open.send(true).unwrap();
    created_c.await.unwrap().unwrap();

    for id in [a, b, c] {
        let t = db.store.ticket(id, None).await.unwrap().unwrap();
        assert_eq!((t.state, t.events.len()), (TicketState::Queued, 1));
    }
    drop(writer);
    task.await.unwrap();
    db.drop().await;
}

/// A real SQLite store that refuses, for its data, any batch carrying
/// "poison" in a result or a payload, the way PostgreSQL refuses a NUL;
/// while `hold` is set, the next apply waits for `release`, so the test
/// can queue requests that then go in one transaction.
struct Picky {
    store: SqliteStore,
    hold: AtomicBool,
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl Apply for Picky {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        crate::fixtures::refuse_poison(batch)?;
        Store::apply(&self.store, batch).await
    }
}

/// One refused record held a whole fleet's writes: the writer retried it
/// without end. Now the refused rows are set aside (reported), a refused
/// submission is refused, and every other row of the same transaction
/// lands.
#[tokio::test]
async fn rows_the_store_refuses_for_their_data_stop_nothing_else() {
    use crate::TicketUpdate;
    use crate::fixtures::{ledger, ticket};
    use crate::ticket::TransitionKind;
    let dir = tempfile::tempdir().unwrap();
    let picky = Arc::new(Picky {
        store: SqliteStore::open(dir.path()).await.unwrap(),
        hold: AtomicBool::new(false),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let (writer, _task) = Writer::spawn(picky.clone(), Box::new(|_, _| {}));
    let mut seeded = Vec::new();
    for _ in 0..3 {
        let (t, created) = ticket("default", None);
        writer
            .write_and_wait(WriteBatch {
                new_tickets: vec![t.clone()],
                transitions: vec![created],
                ..Default::default()
            })
            .await
            .unwrap();
        seeded.push(t);
    }
    let [mut bad, mut good, held] = seeded.try_into().unwrap();

    // The first transaction waits; everything after it queues up and
    // goes in the next one, together.
    picky.hold.store(true, Ordering::SeqCst);
    let mut cancelled = held.clone();
    let cancel = cancelled
        .apply(TransitionKind::Cancel, None, "r", 2)
        .unwrap();
    writer
        .record(
            WriteBatch {
                transitions: vec![cancel],
                updates: vec![TicketUpdate::of(&cancelled)],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    picky.entered.notified().await;
    let mut records = WriteBatch::default();
    for (t, text) in [(&mut bad, "poison"), (&mut good, "fine")] {
        let bot = crate::ticket::BotId::parse("bot-01").unwrap();
        records
            .transitions
            .push(t.apply(TransitionKind::Route, Some(&bot), "r", 3).unwrap());
        t.result = Some(Arc::new(serde_json::json!({ "text": text })));
        records.updates.push(TicketUpdate::of(t));
        records.ledger.push(ledger(t, 1, 5));
    }
    let (recorded, record_answer) = tokio::sync::oneshot::channel();
    writer
        .record(
            records,
            Some(Box::new(move |r| {
                let _ = recorded.send(r.cloned().map_err(Clone::clone));
            })),
        )
        .await
        .unwrap();
    let propose = |prompt: &str| {
        let (t, created) = ticket("default", None);
        let mut t = t;
        t.work = Arc::new(
            crate::ticket::Work::parse("chat", serde_json::json!({ "prompt": prompt })).unwrap(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r.cloned().map_err(Clone::clone));
        });
        let batch = WriteBatch {
            new_tickets: vec![t.clone()],
            transitions: vec![created],
            ..Default::default()
        };
        (t, batch, done, rx)
    };
    let (clean, clean_batch, clean_done, clean_answer) = propose("hello");
    let (dirty, dirty_batch, dirty_done, dirty_answer) = propose("a poison pill");
    writer.propose(clean_batch, clean_done).await.unwrap();
    writer.propose(dirty_batch, dirty_done).await.unwrap();
    picky.release.notify_one();

    let within = |rx| tokio::time::timeout(Duration::from_secs(10), rx);
    let applied = within(record_answer).await.unwrap().unwrap().unwrap();
    assert_eq!(applied.rejected.len(), 1, "{applied:?}");
    assert_eq!(applied.rejected[0].ticket, bad.id);
    assert!(!applied.rejected[0].ledger_only);
    assert!(applied.rejected[0].error.contains("22P05"), "{applied:?}");
    assert!(within(clean_answer).await.unwrap().unwrap().is_ok());
    let refused = within(dirty_answer).await.unwrap().unwrap().unwrap_err();
    assert!(refused.is_permanent(), "{refused:?}");

    let stored = |id| Store::ticket(&picky.store, id, None);
    let bad_view = stored(bad.id).await.unwrap().unwrap();
    assert_eq!(
        bad_view.state,
        TicketState::Queued,
        "its refused rows never landed"
    );
    assert_eq!(
        bad_view.ledger.len(),
        1,
        "its charge, a part of its own, landed"
    );
    let good_view = stored(good.id).await.unwrap().unwrap();
    assert_eq!(good_view.state, TicketState::Routed);
    assert_eq!(good_view.result.unwrap()["text"], "fine");
    assert_eq!(good_view.ledger.len(), 1);
    assert_eq!(
        stored(held.id).await.unwrap().unwrap().state,
        TicketState::Cancelled
    );
    assert!(stored(clean.id).await.unwrap().is_some());
    assert!(stored(dirty.id).await.unwrap().is_none());

    // And the writer goes on.
    let (next, created) = ticket("default", None);
    writer
        .write_and_wait(WriteBatch {
            new_tickets: vec![next],
            transitions: vec![created],
            ..Default::default()
        })
        .await
        .unwrap();
}
