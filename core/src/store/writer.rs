//! Group commit: one task owns every write to the store.
//!
//! Writers hand it a [`WriteBatch`] and a completion callback. While one
//! transaction is committing, new requests queue up; the next transaction
//! takes all of them (up to [`MAX_BATCH_OPS`]), so durability costs one fsync
//! per batch rather than per ticket, and throughput rises with load. Requests
//! are applied in the order they were sent, so a ticket's transitions land in
//! order. Callbacks run after the commit, on this task: they must not block.
//!
//! Failure policy: a failed batch is retried with backoff. Requests that may be
//! refused (new submissions, whose callers can be told "store unavailable"
//! and nothing was written) are failed after [`REFUSABLE_TRIES`]; requests that
//! record what already happened (transitions, results, costs) are retried
//! until they land, because the controller has already acted on them. While
//! the store stays down, a proposal is refused once a try that began after it
//! was queued has failed: never on the word of an older try, which may have
//! begun before the store came back. A retried batch may have landed the time
//! its answer was lost; the store's `apply` is idempotent, so it lands once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Applied, Store, StoreError, WriteBatch};

/// What the writer needs of a store: applying one batch at a time.
#[async_trait::async_trait]
pub trait Apply: Send + Sync {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Apply for S {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        Store::apply(self, batch).await
    }
}

/// The most rows one transaction takes before the rest waits for the next.
pub const MAX_BATCH_OPS: usize = 8192;
/// Attempts for a refusable request before its caller is told it failed.
pub const REFUSABLE_TRIES: u32 = 3;
/// Requests that may wait for the writer before senders are held back.
const QUEUE: usize = 16_384;

/// Called once a request's batch is durable (or finally refused).
pub type Done = Box<dyn FnOnce(Result<&Applied, &StoreError>) + Send>;
/// Called after every commit with the whole batch, e.g. to publish events.
pub type OnCommit = Box<dyn FnMut(&WriteBatch, &Applied) + Send>;

struct Request {
    batch: WriteBatch,
    done: Option<Done>,
    refusable: bool,
    queued_at: Instant,
}

/// A handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &(QUEUE - self.tx.capacity()))
            .finish()
    }
}

impl Writer {
    /// Starts the writer task over `store`.
    pub fn spawn<S: Apply + ?Sized + 'static>(
        store: Arc<S>,
        on_commit: OnCommit,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(store, rx, on_commit));
        (Writer { tx }, handle)
    }

    /// Queues a batch that records what already happened: it is retried
    /// until it lands. Waits only if the writer is saturated.
    ///
    /// A record never creates tickets or tenants, and a proposal carries only
    /// those (and their creation events), so refusing proposals after a
    /// failure drops exactly their rows and keeps every record.
    pub async fn record(&self, batch: WriteBatch, done: Option<Done>) -> Result<(), StoreError> {
        debug_assert!(
            batch.new_tickets.is_empty() && batch.tenants.is_empty() && batch.budgets.is_empty()
        );
        self.tx
            .send(Request {
                batch,
                done,
                refusable: false,
                queued_at: Instant::now(),
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Queues a batch its caller may be refused (`done` gets the error).
    pub async fn propose(&self, batch: WriteBatch, done: Done) -> Result<(), StoreError> {
        debug_assert!(batch.updates.is_empty() && batch.ledger.is_empty());
        self.tx
            .send(Request {
                batch,
                done: Some(done),
                refusable: true,
                queued_at: Instant::now(),
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Writes `batch` and waits until it is durable.
    pub async fn write_and_wait(&self, batch: WriteBatch) -> Result<Applied, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(
                r.cloned()
                    .map_err(|e| StoreError::Unavailable(e.to_string())),
            );
        });
        self.propose(batch, done).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run<S: Apply + ?Sized>(
    store: Arc<S>,
    mut rx: mpsc::Receiver<Request>,
    mut on_commit: OnCommit,
) {
    // Requests set aside while the store was down (records, and proposals
    // still awaiting a try's answer), oldest first; they go before anything
    // received later.
    let mut backlog: VecDeque<Request> = VecDeque::new();
    loop {
        if backlog.is_empty() {
            match rx.recv().await {
                Some(r) => backlog.push_back(r),
                None => return,
            }
        }
        let mut pending = Vec::new();
        let mut ops = 0;
        while ops < MAX_BATCH_OPS {
            let next = match backlog.pop_front() {
                Some(r) => r,
                None => match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            ops += next.batch.len();
            pending.push(next);
        }
        commit(&*store, &mut pending, &mut on_commit, &mut rx, &mut backlog).await;
    }
}

/// Commits every request in `pending` together, retrying as the policy says.
///
/// While the store stays down, proposals that arrive meanwhile are refused
/// after the next failed try (their callers hear "unavailable" instead of
/// waiting for the store to return), and records are set aside in
/// `backlog`, in order.
async fn commit<S: Apply + ?Sized>(
    store: &S,
    pending: &mut Vec<Request>,
    on_commit: &mut OnCommit,
    rx: &mut mpsc::Receiver<Request>,
    backlog: &mut VecDeque<Request>,
) {
    let mut combined = WriteBatch::default();
    for r in pending.iter_mut() {
        combined.absorb(std::mem::take(&mut r.batch));
    }
    combined.coalesce();
    let mut tries = 0u32;
    loop {
        let began = Instant::now();
        match store.apply(&combined).await {
            Ok(applied) => {
                on_commit(&combined, &applied);
                for r in pending.drain(..) {
                    if let Some(done) = r.done {
                        done(Ok(&applied));
                    }
                }
                return;
            }
            Err(e) => {
                tries += 1;
                tracing::error!(error = %e, tries, rows = combined.len(), "store write failed; retrying");
                if tries >= REFUSABLE_TRIES && pending.iter().any(|r| r.refusable) {
                    // Refuse every refusable request: drop exactly its rows
                    // (see `Writer::record` for why they are separable).
                    let refused: std::collections::HashSet<_> =
                        combined.new_tickets.iter().map(|t| t.id).collect();
                    combined.new_tickets.clear();
                    combined.tenants.clear();
                    combined.budgets.clear();
                    combined
                        .transitions
                        .retain(|t| !refused.contains(&t.ticket));
                    for r in pending.extract_if(.., |r| r.refusable) {
                        if let Some(done) = r.done {
                            done(Err(&e));
                        }
                    }
                    if pending.is_empty() {
                        return;
                    }
                }
                if tries >= REFUSABLE_TRIES {
                    // Proposals queued before this try began are refused;
                    // later ones wait for the next try's answer.
                    while let Ok(r) = rx.try_recv() {
                        backlog.push_back(r);
                    }
                    let mut kept = VecDeque::with_capacity(backlog.len());
                    for r in backlog.drain(..) {
                        match r.done {
                            Some(done) if r.refusable && r.queued_at < began => done(Err(&e)),
                            done => kept.push_back(Request { done, ..r }),
                        }
                    }
                    *backlog = kept;
                }
                tokio::time::sleep(backoff(tries)).await;
            }
        }
    }
}

/// The wait after the `tries`-th failure: 100 ms, doubling, at most 1.6 s
/// (so work resumes soon after the store does).
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(50u64 << tries.clamp(1, 5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::finished_batch;
    use crate::store::sqlite::SqliteStore;
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
        let stored = outage.store.ticket(after.id).await.unwrap().unwrap();
        assert_eq!(stored.state, TicketState::Queued);
        let early = outage.store.ticket(early.id).await.unwrap().unwrap();
        assert_eq!(early.state, TicketState::Succeeded);
        assert_eq!(early.ledger.len(), 1);
        assert!(outage.store.ticket(refused.id).await.unwrap().is_none());
    }
}
