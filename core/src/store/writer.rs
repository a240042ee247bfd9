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
//! until they land, because the controller has already acted on them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::{Applied, Store, StoreError, WriteBatch};

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
    pub fn spawn(
        store: Arc<dyn Store>,
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

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Request>, mut on_commit: OnCommit) {
    // Records set aside while the store was down, oldest first; they go
    // before anything received later.
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
/// While the store stays down, proposals that arrive meanwhile are refused at
/// once (their callers hear "unavailable" instead of waiting for the store to
/// return), and records are set aside in `backlog`, in order.
async fn commit(
    store: &dyn Store,
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
                    while let Ok(r) = rx.try_recv() {
                        if r.refusable {
                            if let Some(done) = r.done {
                                done(Err(&e));
                            }
                        } else {
                            backlog.push_back(r);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50u64 << tries.min(6))).await;
            }
        }
    }
}
