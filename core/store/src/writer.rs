//! Group commit: one task owns every write to the store.
//!
//! Writers hand it a [`WriteBatch`] and a completion callback. While one
//! transaction is committing, new requests queue up; the next transaction
//! takes all of them (up to [`MAX_BATCH_OPS`]), so durability costs one fsync
//! per batch rather than per ticket, and throughput rises with load. Callbacks
//! run after the commit, on this task: they must not block.
//!
//! Order: a ticket's writes land in the order they were sent. A store that
//! can commit on several connections at once ([`Apply::parallel_commits`];
//! PostgreSQL) gets up to that many transactions in flight, but only over
//! disjoint footprints: a batch that touches a ticket (or an idempotency key)
//! of one in flight waits for it, and one that writes the tenant directory,
//! or is empty (a barrier), goes alone. Disjoint batches may land in either
//! order, so commit callbacks keep each ticket's order but not the order
//! across tickets.
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
//! A refused proposal may likewise have landed: the scheduler reconciles it
//! with the store once the store answers again (see
//! `Scheduler::reconcile_refused`).
//! After any failure the writer lets its other transactions land, then
//! retries the failed batches together as one transaction, alone, until it
//! lands: a proposal among them is refused by the policy above even while a
//! record beside it keeps failing.
//!
//! A store that refuses a batch for its data ([`StoreError::is_permanent`]:
//! PostgreSQL's SQLSTATE classes 22 and 23) will refuse it on every try, so
//! retrying would stop every write behind it. The writer first replaces any
//! NUL in the batch's text and tries once more (text is cleaned where it
//! enters, so this is a safety net); if the store still refuses, it applies
//! the batch part by part ([`WriteBatch::split`]): each proposal's rows
//! whole, then each ticket's, then each ledger row. A refused proposal is
//! refused with the store's error (it changed nothing); refused records are
//! set aside and reported in [`Applied::rejected`], so the controller can
//! fail their tickets with a reason; everything else lands.

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Applied, RejectedRows, Store, StoreError, WriteBatch};
use crate::ticket::{TenantId, TicketId};

/// What the writer needs of a store: applying batches.
#[async_trait::async_trait]
pub trait Apply: Send + Sync {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError>;
    /// How many batches may be applied at once (each in its own
    /// transaction, on its own connection).
    fn parallel_commits(&self) -> usize {
        1
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Apply for S {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        Store::apply(self, batch).await
    }

    fn parallel_commits(&self) -> usize {
        Store::parallel_commits(self)
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
    /// A proposal's tickets and tenants, so that its rows can be told apart
    /// after they are merged into a transaction (see [`isolate`]).
    owns: Option<Owns>,
}

/// What a proposal creates or sets: the rows that land or fail with it.
/// Lists, not sets: taken on every submission, read only after the store
/// refused a batch for its data.
#[derive(Debug, Default)]
struct Owns {
    tickets: Vec<TicketId>,
    tenants: Vec<TenantId>,
}

impl Owns {
    fn of(b: &WriteBatch) -> Owns {
        Owns {
            tickets: b.new_tickets.iter().map(|t| t.id).collect(),
            tenants: b
                .tenants
                .iter()
                .chain(&b.budgets)
                .map(|t| t.id.clone())
                .collect(),
        }
    }
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
                owns: None,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Queues a batch its caller may be refused (`done` gets the error).
    pub async fn propose(&self, batch: WriteBatch, done: Done) -> Result<(), StoreError> {
        debug_assert!(batch.updates.is_empty() && batch.ledger.is_empty());
        let owns = Some(Owns::of(&batch));
        self.tx
            .send(Request {
                batch,
                done: Some(done),
                refusable: true,
                queued_at: Instant::now(),
                owns,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Writes `batch` and waits until it is durable.
    pub async fn write_and_wait(&self, batch: WriteBatch) -> Result<Applied, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r.cloned().map_err(StoreError::clone));
        });
        self.propose(batch, done).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// What a batch writes, for deciding whether it may commit beside another.
#[derive(Debug)]
enum Footprint {
    /// Goes alone: it writes the tenant directory, or holds a barrier.
    Whole,
    Keys(HashSet<Key>),
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    Ticket(TicketId),
    Idempotency(TenantId, String),
}

impl Footprint {
    fn add(&mut self, b: &WriteBatch) {
        let Footprint::Keys(keys) = self else {
            return;
        };
        if b.is_empty() || !b.tenants.is_empty() || !b.budgets.is_empty() {
            *self = Footprint::Whole;
            return;
        }
        for t in &b.new_tickets {
            keys.insert(Key::Ticket(t.id));
            if let Some(k) = &t.idempotency_key {
                keys.insert(Key::Idempotency(t.tenant.clone(), k.clone()));
            }
        }
        keys.extend(b.updates.iter().map(|u| Key::Ticket(u.id)));
        keys.extend(b.transitions.iter().map(|t| Key::Ticket(t.ticket)));
        keys.extend(b.ledger.iter().map(|l| Key::Ticket(l.ticket)));
    }

    fn disjoint(&self, other: &Footprint) -> bool {
        match (self, other) {
            (Footprint::Keys(a), Footprint::Keys(b)) => a.is_disjoint(b),
            _ => false,
        }
    }
}

/// The requests of the next transaction, taken oldest first.
struct Next {
    requests: Vec<Request>,
    ops: usize,
    /// Whether a second transaction may run beside this one. If not, the
    /// footprint is `Whole` from the start and no key is collected.
    parallel: bool,
    footprint: Footprint,
}

impl Next {
    fn new(parallel: bool) -> Next {
        Next {
            requests: Vec::new(),
            ops: 0,
            parallel,
            footprint: if parallel {
                Footprint::Keys(HashSet::new())
            } else {
                Footprint::Whole
            },
        }
    }

    /// The requests taken so far, leaving this one empty.
    fn take(&mut self) -> Next {
        std::mem::replace(self, Next::new(self.parallel))
    }

    /// Takes requests, oldest first, up to [`MAX_BATCH_OPS`] rows.
    fn top_up(&mut self, backlog: &mut VecDeque<Request>, rx: &mut mpsc::Receiver<Request>) {
        while self.ops < MAX_BATCH_OPS {
            let r = match backlog.pop_front() {
                Some(r) => r,
                None => match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            self.ops += r.batch.len();
            self.footprint.add(&r.batch);
            self.requests.push(r);
        }
    }

    /// Puts the requests back at the front of the queue, in order.
    fn put_back(&mut self, backlog: &mut VecDeque<Request>) {
        for r in self.take().requests.into_iter().rev() {
            backlog.push_front(r);
        }
    }
}

/// A batch being applied: its requests, their rows, and the first try.
struct Flight {
    seq: u64,
    pending: Vec<Request>,
    combined: WriteBatch,
    began: Instant,
    result: Result<Applied, StoreError>,
}

/// The transactions in flight, with their footprints.
struct Flying {
    flights: FuturesUnordered<BoxFuture<'static, Flight>>,
    footprints: Vec<(u64, Footprint)>,
    seq: u64,
}

impl Flying {
    fn len(&self) -> usize {
        self.footprints.len()
    }

    /// The next transaction to land, if any is in flight.
    async fn landed(&mut self) -> Option<Flight> {
        let f = self.flights.next().await?;
        self.footprints.retain(|(s, _)| *s != f.seq);
        Some(f)
    }

    fn launch<S: Apply + ?Sized + 'static>(&mut self, store: &Arc<S>, next: Next) {
        let Next {
            requests: mut pending,
            footprint,
            ..
        } = next;
        let mut combined = WriteBatch::default();
        for r in pending.iter_mut() {
            combined.absorb(std::mem::take(&mut r.batch));
        }
        combined.coalesce();
        self.seq += 1;
        let seq = self.seq;
        self.footprints.push((seq, footprint));
        let store = store.clone();
        self.flights.push(Box::pin(async move {
            let began = Instant::now();
            let result = store.apply(&combined).await;
            Flight {
                seq,
                pending,
                combined,
                began,
                result,
            }
        }));
    }
}

async fn run<S: Apply + ?Sized + 'static>(
    store: Arc<S>,
    mut rx: mpsc::Receiver<Request>,
    mut on_commit: OnCommit,
) {
    let parallel = store.parallel_commits().max(1);
    // Requests set aside while the store was down (records, and proposals
    // still awaiting a try's answer), oldest first; they go before anything
    // received later.
    let mut backlog: VecDeque<Request> = VecDeque::new();
    let mut next = Next::new(parallel > 1);
    let mut flying = Flying {
        flights: FuturesUnordered::new(),
        footprints: Vec::new(),
        seq: 0,
    };
    let mut w = Landing {
        store: &*store,
        on_commit: &mut on_commit,
        backlog: &mut backlog,
    };
    loop {
        if next.requests.is_empty() && w.backlog.is_empty() {
            let received = if flying.len() == 0 {
                rx.recv().await
            } else {
                tokio::select! {
                    r = rx.recv() => r,
                    Some(f) = flying.landed() => {
                        w.land(f, &mut flying, &mut next, &mut rx).await;
                        continue;
                    }
                }
            };
            match received {
                Some(r) => w.backlog.push_back(r),
                None => {
                    while let Some(f) = flying.landed().await {
                        w.land(f, &mut flying, &mut next, &mut rx).await;
                    }
                    return;
                }
            }
        }
        // Taken as late as possible, so a transaction takes all that waits.
        next.top_up(w.backlog, &mut rx);
        let free = flying.len() < parallel
            && flying
                .footprints
                .iter()
                .all(|(_, f)| f.disjoint(&next.footprint));
        if free {
            flying.launch(&store, next.take());
        } else if let Some(f) = flying.landed().await {
            w.land(f, &mut flying, &mut next, &mut rx).await;
        }
    }
}

/// What landing a transaction whose try has ended needs: its requests are
/// answered, or retried as the failure policy says.
struct Landing<'a, S: ?Sized> {
    store: &'a S,
    on_commit: &'a mut OnCommit,
    backlog: &'a mut VecDeque<Request>,
}

impl<S: Apply + ?Sized> Landing<'_, S> {
    /// Lands a transaction whose try has ended. After a failure, the others in flight
    /// land first; then the failed batches are retried together, as one
    /// transaction alone, before anything new starts (the batch being
    /// gathered goes back to the front of the queue), so the retry policy
    /// sees one transaction at a time, as with a store that commits one at a
    /// time.
    async fn land(
        &mut self,
        flight: Flight,
        flying: &mut Flying,
        next: &mut Next,
        rx: &mut mpsc::Receiver<Request>,
    ) {
        if flight.result.is_ok() {
            self.finish(flight, rx).await;
            return;
        }
        let mut failed = vec![flight];
        while let Some(f) = flying.landed().await {
            if f.result.is_ok() {
                self.finish(f, rx).await;
            } else {
                failed.push(f);
            }
        }
        next.put_back(self.backlog);
        // The failed batches are retried as one, so a proposal among them
        // is refused as the policy says even while a record beside it keeps
        // failing (retried alone in turn, the record would hold it back
        // until the store returned). They were disjoint, so their rows merge.
        failed.sort_by_key(|f| f.seq);
        let mut failed = failed.into_iter();
        let Some(mut merged) = failed.next() else {
            return;
        };
        for f in failed {
            merged.combined.absorb(f.combined);
            merged.pending.extend(f.pending);
            merged.began = merged.began.min(f.began);
        }
        merged.combined.coalesce();
        self.finish(merged, rx).await;
    }

    async fn finish(&mut self, f: Flight, rx: &mut mpsc::Receiver<Request>) {
        let Flight {
            mut pending,
            combined,
            began,
            result,
            ..
        } = f;
        commit(
            self.store,
            &mut pending,
            combined,
            (began, result),
            self.on_commit,
            rx,
            self.backlog,
        )
        .await;
    }
}

/// Finishes the requests in `pending`, whose rows are `combined`, given the
/// outcome of a first try, retrying as the policy says.
///
/// While the store stays down, proposals that arrive meanwhile are refused
/// after the next failed try (their callers hear "unavailable" instead of
/// waiting for the store to return), and records are set aside in
/// `backlog`, in order.
async fn commit<S: Apply + ?Sized>(
    store: &S,
    pending: &mut Vec<Request>,
    mut combined: WriteBatch,
    first: (Instant, Result<Applied, StoreError>),
    on_commit: &mut OnCommit,
    rx: &mut mpsc::Receiver<Request>,
    backlog: &mut VecDeque<Request>,
) {
    let (mut began, mut outcome) = first;
    let mut tries = 0u32;
    let mut cleaned = false;
    // What parts that landed on their own found, for the final answer.
    let mut found = Applied::default();
    loop {
        match outcome {
            Ok(mut applied) => {
                on_commit(&combined, &applied);
                applied.absorb(found);
                for r in pending.drain(..) {
                    if let Some(done) = r.done {
                        done(Ok(&applied));
                    }
                }
                return;
            }
            Err(e) if e.is_permanent() && !cleaned => {
                cleaned = true;
                let replaced = combined.clean();
                tracing::warn!(error = %e, replaced, rows = combined.len(), "store refused a batch for its data; retrying it with each NUL replaced");
                if replaced == 0 {
                    outcome = Err(e);
                    continue;
                }
            }
            Err(e) if e.is_permanent() => {
                tracing::error!(error = %e, rows = combined.len(), "store refused a batch for its data; applying it part by part");
                match isolate(store, pending, combined, on_commit, &mut found).await {
                    Ok(()) => {
                        for r in pending.drain(..) {
                            if let Some(done) = r.done {
                                done(Ok(&found));
                            }
                        }
                        return;
                    }
                    Err(Unfinished {
                        rest,
                        began: b,
                        error,
                    }) => {
                        // The store went away meanwhile: what is left goes
                        // back to the ordinary retries.
                        (combined, began, cleaned) = (rest, b, false);
                        outcome = Err(error);
                        continue;
                    }
                }
            }
            Err(e) => {
                tries += 1;
                tracing::error!(error = %e, tries, rows = combined.len(), "store write failed; retrying");
                if tries >= REFUSABLE_TRIES && pending.iter().any(|r| r.refusable) {
                    // Refuse every refusable request: drop exactly its rows
                    // (see `Writer::record` for why they are separable).
                    let refused: HashSet<_> = combined.new_tickets.iter().map(|t| t.id).collect();
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
        began = Instant::now();
        outcome = store.apply(&combined).await;
    }
}

/// What is left when the store stopped answering during [`isolate`].
struct Unfinished {
    rest: WriteBatch,
    began: Instant,
    error: StoreError,
}

/// Applies `rows` part by part after the store refused them for their data:
/// each proposal of `pending` whole, then the records ticket by ticket
/// ([`WriteBatch::split`]). A proposal whose part is refused is answered
/// with the store's error and leaves `pending`, as does one whose part
/// landed; refused records are added to `found.rejected`, landed parts'
/// duplicates to `found.duplicates`. If the store stops answering, returns
/// what has not landed, with the error, for the ordinary retries.
async fn isolate<S: Apply + ?Sized>(
    store: &S,
    pending: &mut Vec<Request>,
    mut rows: WriteBatch,
    on_commit: &mut OnCommit,
    found: &mut Applied,
) -> Result<(), Unfinished> {
    let mut parts: VecDeque<(Option<usize>, WriteBatch)> = VecDeque::new();
    for (i, r) in pending.iter().enumerate() {
        if let Some(owns) = &r.owns {
            let tickets = owns.tickets.iter().copied().collect();
            let tenants = owns.tenants.iter().cloned().collect();
            parts.push_back((Some(i), rows.take_part(&tickets, &tenants)));
        }
    }
    parts.extend(rows.split().into_iter().map(|p| (None, p)));
    // Each proposal's answer, by its place in `pending`.
    let mut answers: Vec<(usize, Result<Applied, StoreError>)> = Vec::new();
    let mut unfinished = None;
    while let Some((owner, part)) = parts.pop_front() {
        let began = Instant::now();
        let result = if part.is_empty() {
            Ok(Applied::default())
        } else {
            store.apply(&part).await
        };
        match result {
            Ok(applied) => {
                on_commit(&part, &applied);
                found.duplicates.extend(applied.duplicates.iter().cloned());
                if let Some(i) = owner {
                    answers.push((i, Ok(applied)));
                }
            }
            Err(e) if e.is_permanent() => match owner {
                Some(i) => {
                    tracing::error!(error = %e, tickets = part.new_tickets.len(), "store refused a submission for its data; it is refused");
                    answers.push((i, Err(e)));
                }
                None => {
                    let ledger_only = part.new_tickets.is_empty()
                        && part.updates.is_empty()
                        && part.transitions.is_empty();
                    for ticket in part.tickets() {
                        tracing::error!(%ticket, ledger_only, error = %e, "store refused a ticket's record for its data; it is set aside");
                        found.rejected.push(RejectedRows {
                            ticket,
                            ledger_only,
                            error: e.to_string(),
                        });
                    }
                }
            },
            Err(error) => {
                let mut rest = part;
                for (_, p) in parts.drain(..) {
                    rest.absorb(p);
                }
                unfinished = Some(Unfinished { rest, began, error });
            }
        }
    }
    // Answer the proposals decided here, latest place first so the places
    // of the others hold.
    answers.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, answer) in answers {
        let r = pending.remove(i);
        if let Some(done) = r.done {
            done(answer.as_ref());
        }
    }
    match unfinished {
        None => Ok(()),
        Some(u) => Err(u),
    }
}

/// The wait after the `tries`-th failure: 100 ms, doubling, at most 1.6 s
/// (so work resumes soon after the store does).
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(50u64 << tries.clamp(1, 5))
}

#[cfg(test)]
mod tests;
