//! The scheduler: the one task that owns the controller's mutable state.
//!
//! It holds every live (non-terminal) ticket, the queue per skill, the
//! backoff timers, which bot holds which attempt, and each tenant's spend.
//! Each loop turn handles one message, drains whatever else is ready, routes,
//! and hands everything it decided to the writer as one batch, so the cost of
//! a durable write is shared by every ticket that moved in that turn.
//!
//! Invariants kept here:
//! - a ticket reaches a lane only after it is durable (as `queued`, or as
//!   `routed` when it was routed in the commit that admitted it);
//! - a submission refused on a store failure never runs, even if its commit
//!   landed after all, unless it has an idempotency key (the submitter's
//!   retry with the key is answered with it);
//! - an attempt's result is recorded and priced at most once in memory, and
//!   the ledger's primary key makes the store agree;
//! - a lane entry is acknowledged only after its result is durable.

use serde::{Deserialize, Serialize};
use specta::Type;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{BotHandle, ControllerConfig, ControllerError, SharedBots, Stats};
use crate::bot::{BotReport, CancelRegistry, Outcome};
use crate::clock::{SharedClock, UnixMs};
use crate::cost::{LedgerEntry, Usage};
use crate::lane::{EntryId, Lane, LaneEntry};
use crate::store::writer::{Done, Writer};
use crate::store::{Applied, RejectedRows, Store, StoreError, Tenant, TicketUpdate, WriteBatch};
use crate::text;
use crate::ticket::{
    BotId, Skill, TenantId, Ticket, TicketError, TicketId, TicketState, Transition, TransitionKind,
    ValidTicket, WaitReason,
};

/// How often backoff timers are checked.
const TICK: Duration = Duration::from_millis(20);
/// Messages handled per loop turn before routing and writing.
const DRAIN: usize = 1024;

/// The answer to a submission that was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Submitted {
    pub id: TicketId,
    pub tenant: TenantId,
    pub kind: String,
    pub skill: Skill,
    pub priority: u8,
    pub state: TicketState,
    /// True when the idempotency key matched an earlier ticket, whose id this is.
    pub duplicate: bool,
    #[specta(type = specta_typescript::Number)]
    pub created_at_ms: UnixMs,
}

/// The scheduler's answer to a command on one ticket.
#[derive(Debug)]
pub(crate) enum Answer {
    Done,
    Refused(TicketError),
    /// The scheduler does not hold it: finished, or never existed.
    NotLive,
}

type SubmitReply = oneshot::Sender<Vec<Result<Submitted, ControllerError>>>;

pub(crate) enum Command {
    Submit {
        tickets: Vec<ValidTicket>,
        reply: SubmitReply,
    },
    Persisted {
        tickets: Vec<Ticket>,
        results: Vec<Option<Result<Submitted, ControllerError>>>,
        outcome: Result<Applied, StoreError>,
        new_tenants: Vec<TenantId>,
        reply: SubmitReply,
    },
    Cancel {
        id: TicketId,
        reply: oneshot::Sender<Answer>,
    },
    Approve {
        id: TicketId,
        reply: oneshot::Sender<Answer>,
    },
    Waiting {
        id: TicketId,
        reply: oneshot::Sender<Option<WaitReason>>,
    },
    SetBudget {
        tenant: TenantId,
        budget_nusd: Option<i64>,
        reply: oneshot::Sender<Result<Tenant, ControllerError>>,
    },
    /// A budget's write is durable (or was refused): only now does the
    /// scheduler hold the new budget.
    BudgetWritten {
        row: Tenant,
        outcome: Result<(), StoreError>,
        reply: oneshot::Sender<Result<Tenant, ControllerError>>,
    },
    /// Fleet mode: bots that registered, and bots whose heartbeat stopped
    /// (with why); the latter's unfinished work is requeued.
    BotsChanged {
        up: Vec<BotHandle>,
        down: Vec<(BotId, String)>,
    },
    /// Fleet mode: the lanes lost their entries (Redis restarted empty);
    /// every routed or running ticket is requeued from the store's truth.
    Redrive {
        reason: String,
    },
    /// Which of `ids` (submissions refused after a failed commit) the store
    /// holds after all: those commits landed though their answers were lost.
    Settle {
        ids: Vec<TicketId>,
        budgets: Vec<TenantId>,
        found: Vec<Ticket>,
        tenants: Vec<Tenant>,
    },
    /// Fleet mode: a node asks to make a tool call for `bot`'s attempt of a
    /// ticket; the answer is the ticket's tenant if that attempt is in
    /// flight on that bot, or why not.
    CheckCall {
        ticket: TicketId,
        attempt: u32,
        bot: BotId,
        reply: oneshot::Sender<Result<TenantId, String>>,
    },
    /// The store refused some tickets' records for their data (the writer
    /// set them aside so the rest landed): those tickets are stopped.
    Rejected {
        rows: Vec<RejectedRows>,
    },
    /// The stored state of rejected tickets the scheduler no longer held.
    RejectedStored {
        rows: Vec<RejectedRows>,
        found: Vec<Ticket>,
    },
    Shutdown,
}

/// Queue order: higher priority first, then first come first served.
#[derive(Debug, PartialEq, Eq)]
struct QueueKey {
    priority: u8,
    seq: Reverse<u64>,
    id: TicketId,
}

impl Ord for QueueKey {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}
impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
struct TenantBook {
    budget_nusd: Option<i64>,
    spent_nusd: i64,
    created_at_ms: UnixMs,
}

impl TenantBook {
    /// A stored tenant's book, nothing spent yet.
    fn of(t: &Tenant) -> Self {
        TenantBook {
            budget_nusd: t.budget_nusd,
            spent_nusd: 0,
            created_at_ms: t.created_at_ms,
        }
    }

    fn exhausted(&self) -> bool {
        self.budget_nusd.is_some_and(|b| self.spent_nusd >= b)
    }
}

struct BotSlot {
    handle: BotHandle,
    in_flight: usize,
    live: bool,
}

pub(crate) struct Scheduler {
    config: ControllerConfig,
    store: Arc<dyn Store>,
    writer: Writer,
    bots: Vec<BotSlot>,
    bot_index: HashMap<BotId, usize>,
    by_skill: HashMap<Skill, Vec<usize>>,
    cancels: Arc<CancelRegistry>,
    clock: SharedClock,
    stats: Arc<Stats>,
    inbox: mpsc::UnboundedSender<Command>,

    live: HashMap<TicketId, Ticket>,
    queues: HashMap<Skill, BinaryHeap<QueueKey>>,
    seq: u64,
    parked: HashMap<TenantId, Vec<TicketId>>,
    backoff: BinaryHeap<Reverse<(UnixMs, TicketId)>>,
    /// (ticket, attempt) → the bot it was routed to and the ticket's tenant,
    /// until its first result (the tenant charges a ticket cancelled meanwhile).
    outstanding: HashMap<(TicketId, u32), (usize, TenantId)>,
    tenants: HashMap<TenantId, TenantBook>,
    /// Submissions handed to the writer and not yet answered.
    admitting: usize,
    /// Submissions refused because their commit failed: a commit whose
    /// answer was lost may have landed all the same ([`Self::settle`]).
    unsettled: Vec<TicketId>,
    /// Tenants whose budget write was refused: it too may have landed.
    unsettled_budgets: Vec<TenantId>,
    /// Tickets stopped because the store refused their records: one
    /// refused again is left to restart recovery, never stopped in a loop.
    stopped_rejected: HashSet<TicketId>,
    /// Whether a check of `unsettled` against the store is under way.
    settling: bool,
    /// Tickets routed in the commit that admitted them, durable now, to be
    /// published with the next routing pass: (bot, entry).
    admitted_routes: Vec<(usize, LaneEntry)>,

    /// What this turn decided, written at the end of the turn.
    batch: WriteBatch,
    acks: Vec<(Arc<dyn Lane>, EntryId)>,
    /// Results-stream entries (fleet mode) whose results are in this turn.
    receipts: Vec<EntryId>,
    /// Answers to send once this turn's batch is durable.
    replies: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// Per skill: where the next tie-break among equally loaded bots starts.
    next_bot: HashMap<Skill, usize>,
    acker: mpsc::UnboundedSender<Vec<(Arc<dyn Lane>, EntryId)>>,
    receipt_sink: Option<mpsc::UnboundedSender<Vec<EntryId>>>,
    /// The facade's view of the bots, updated as bots come and go.
    shared_bots: SharedBots,
}

impl Scheduler {
    /// Builds the scheduler from the store: every unfinished ticket is driven
    /// on. Tickets that were routed or running when the last process stopped
    /// are requeued (their lane entries died with it) as a new attempt.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn recover(
        config: ControllerConfig,
        store: Arc<dyn Store>,
        writer: Writer,
        shared_bots: SharedBots,
        cancels: Arc<CancelRegistry>,
        clock: SharedClock,
        stats: Arc<Stats>,
        inbox: mpsc::UnboundedSender<Command>,
        receipt_sink: Option<mpsc::UnboundedSender<Vec<EntryId>>>,
    ) -> Result<Self, ControllerError> {
        let bots: Vec<BotHandle> = shared_bots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut by_skill: HashMap<Skill, Vec<usize>> = HashMap::new();
        let mut bot_index = HashMap::new();
        for (i, b) in bots.iter().enumerate() {
            bot_index.insert(b.id.clone(), i);
            for s in &b.skills {
                by_skill.entry(s.clone()).or_default().push(i);
            }
        }
        let acker = spawn_acker();
        let mut tenants: HashMap<TenantId, TenantBook> = store
            .tenants()
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), TenantBook::of(&t)))
            .collect();
        for (tenant, spent) in store.spend_by_tenant().await? {
            if let Some(book) = tenants.get_mut(&tenant) {
                book.spent_nusd = spent;
            }
        }
        let mut s = Self {
            config,
            store: store.clone(),
            writer,
            bots: bots
                .into_iter()
                .map(|handle| BotSlot {
                    handle,
                    in_flight: 0,
                    live: true,
                })
                .collect(),
            bot_index,
            by_skill,
            cancels,
            clock,
            stats,
            inbox,
            live: HashMap::new(),
            queues: HashMap::new(),
            seq: 0,
            parked: HashMap::new(),
            backoff: BinaryHeap::new(),
            outstanding: HashMap::new(),
            admitted_routes: Vec::new(),
            tenants,
            admitting: 0,
            unsettled: Vec::new(),
            unsettled_budgets: Vec::new(),
            stopped_rejected: HashSet::new(),
            settling: false,
            batch: WriteBatch::default(),
            acks: Vec::new(),
            receipts: Vec::new(),
            replies: Vec::new(),
            next_bot: HashMap::new(),
            acker,
            receipt_sink,
            shared_bots,
        };
        let now = s.clock.now_ms();
        let unfinished = store.unfinished().await?;
        let recovered = unfinished.len();
        for t in unfinished {
            let reason = format!(
                "recovered after restart: attempt {} was in flight when the controller stopped",
                t.attempts
            );
            s.adopt(t, &reason, now);
        }
        if recovered > 0 {
            tracing::info!(recovered, "recovered unfinished tickets");
        }
        s.flush().await;
        Ok(s)
    }

    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Command>,
        mut reports: mpsc::Receiver<BotReport>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                cmd = inbox.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd).await,
                },
                Some(report) = reports.recv() => self.on_report(report),
                _ = tick.tick() => self.on_tick(),
            }
            for _ in 0..DRAIN {
                let mut idle = true;
                if let Ok(report) = reports.try_recv() {
                    self.on_report(report);
                    idle = false;
                }
                match inbox.try_recv() {
                    Ok(Command::Shutdown) => return self.flush().await,
                    Ok(cmd) => {
                        self.on_command(cmd).await;
                        idle = false;
                    }
                    Err(_) => {}
                }
                if idle {
                    break;
                }
            }
            self.route().await;
            self.flush().await;
        }
        self.flush().await;
    }

    // ---- bookkeeping helpers -------------------------------------------------

    /// Applies a transition the scheduler has decided is legal, and queues
    /// its record. An illegal one here is a bug: it is logged, not applied.
    fn transition(
        &mut self,
        t: &mut Ticket,
        event: TransitionKind,
        bot: Option<&BotId>,
        reason: &str,
        now: UnixMs,
    ) -> bool {
        match t.apply(event, bot, reason, now) {
            Ok(record) => {
                self.batch.transitions.push(record);
                self.batch.updates.push(TicketUpdate::of(t));
                true
            }
            Err(e) => {
                tracing::error!(ticket = %t.id, error = %e, "scheduler attempted an illegal transition");
                false
            }
        }
    }

    /// Takes on an unfinished ticket from the store: queued, it waits its
    /// turn; routed or running (its lane entry is gone, or never went out),
    /// it is requeued as a new attempt, saying `why`; failed, it waits out
    /// its backoff.
    fn adopt(&mut self, mut t: Ticket, why: &str, now: UnixMs) {
        match t.state {
            TicketState::Routed | TicketState::Running => {
                self.transition(&mut t, TransitionKind::Requeue, None, why, now);
                self.enqueue(&t);
            }
            TicketState::Queued => self.enqueue(&t),
            TicketState::Failed => self
                .backoff
                .push(Reverse((t.not_before_ms.unwrap_or(now), t.id))),
            _ => {}
        }
        self.live.insert(t.id, t);
    }

    fn enqueue(&mut self, t: &Ticket) {
        self.seq += 1;
        self.queues
            .entry(t.skill.clone())
            .or_default()
            .push(QueueKey {
                priority: t.priority,
                seq: Reverse(self.seq),
                id: t.id,
            });
    }

    fn set_in_flight(&mut self, bot: usize, delta: isize) {
        let slot = &mut self.bots[bot];
        slot.in_flight = slot.in_flight.saturating_add_signed(delta);
        slot.handle
            .counters
            .in_flight
            .store(slot.in_flight as u64, Ordering::Relaxed);
    }

    fn backoff_for(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.config
            .backoff_base
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }

    /// Hands this turn's decisions to the writer as one batch. Once it is
    /// durable, the lane entries whose results are in it are acked and the
    /// commands decided in it are answered.
    async fn flush(&mut self) {
        if self.batch.is_empty()
            && self.acks.is_empty()
            && self.receipts.is_empty()
            && self.replies.is_empty()
        {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let acks = std::mem::take(&mut self.acks);
        let receipts = std::mem::take(&mut self.receipts);
        let replies = std::mem::take(&mut self.replies);
        let (acker, receipt_sink, inbox) = (
            self.acker.clone(),
            self.receipt_sink.clone(),
            self.inbox.clone(),
        );
        let done: Option<Done> = Some(Box::new(move |r: Result<&Applied, &StoreError>| {
            let Ok(applied) = r else { return };
            if !acks.is_empty() {
                let _ = acker.send(acks);
            }
            if let (Some(sink), false) = (receipt_sink, receipts.is_empty()) {
                let _ = sink.send(receipts);
            }
            for (reply, answer) in replies {
                let _ = reply.send(answer);
            }
            if !applied.rejected.is_empty() {
                let _ = inbox.send(Command::Rejected {
                    rows: applied.rejected.clone(),
                });
            }
        }));
        if self.writer.record(batch, done).await.is_err() {
            tracing::error!(
                "store writer is gone; decisions of this turn are lost until restart recovery"
            );
        }
    }

    /// Answers `reply` once what this turn decided is durable; refusals,
    /// which changed nothing, are answered at once.
    fn answer(&mut self, reply: oneshot::Sender<Answer>, answer: Answer) {
        match answer {
            Answer::Done => self.replies.push((reply, answer)),
            other => {
                let _ = reply.send(other);
            }
        }
    }

    // ---- commands ------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { tickets, reply } => self.on_submit(tickets, reply).await,
            Command::Persisted {
                tickets,
                results,
                outcome,
                new_tenants,
                reply,
            } => self.on_persisted(tickets, results, outcome, new_tenants, reply),
            Command::Cancel { id, reply } => {
                let answer = self.on_cancel(id);
                self.answer(reply, answer);
            }
            Command::Approve { id, reply } => {
                let answer = self.on_approve(id);
                self.answer(reply, answer);
            }
            Command::Waiting { id, reply } => {
                let _ = reply.send(self.waiting(id));
            }
            Command::SetBudget {
                tenant,
                budget_nusd,
                reply,
            } => self.on_set_budget(tenant, budget_nusd, reply).await,
            Command::BudgetWritten {
                row,
                outcome,
                reply,
            } => self.on_budget_written(row, outcome, reply),
            Command::BotsChanged { up, down } => self.on_bots_changed(up, down),
            Command::Redrive { reason } => {
                let all: Vec<usize> = (0..self.bots.len()).collect();
                self.requeue_outstanding(&all, &reason);
            }
            Command::Settle {
                ids,
                budgets,
                found,
                tenants,
            } => self.on_settle(ids, budgets, found, tenants),
            Command::CheckCall {
                ticket,
                attempt,
                bot,
                reply,
            } => {
                let _ = reply.send(self.check_call(ticket, attempt, &bot));
            }
            Command::Rejected { rows } => self.on_rejected(rows),
            Command::RejectedStored { rows, found } => self.on_rejected_stored(rows, found),
            Command::Shutdown => {}
        }
    }

    /// Admission: tenant, budget and capacity; then the tickets are proposed
    /// to the store, and the caller is answered once they are durable.
    async fn on_submit(&mut self, tickets: Vec<ValidTicket>, reply: SubmitReply) {
        let now = self.clock.now_ms();
        let mut results: Vec<Option<Result<Submitted, ControllerError>>> =
            Vec::with_capacity(tickets.len());
        let mut batch = WriteBatch::default();
        let mut accepted = Vec::new();
        let mut new_tenants = Vec::new();
        for v in tickets {
            let live = self.live.len() + self.admitting + accepted.len();
            if live >= self.config.max_live_tickets {
                results.push(Some(Err(ControllerError::Overloaded {
                    live,
                    limit: self.config.max_live_tickets,
                })));
                continue;
            }
            match self.tenants.get(&v.tenant) {
                None if !self.config.auto_create_tenants => {
                    results.push(Some(Err(ControllerError::UnknownTenant(v.tenant))));
                    continue;
                }
                None => {
                    let book = TenantBook {
                        budget_nusd: self.config.default_budget_nusd,
                        spent_nusd: 0,
                        created_at_ms: now,
                    };
                    batch.tenants.push(Tenant {
                        id: v.tenant.clone(),
                        budget_nusd: book.budget_nusd,
                        created_at_ms: now,
                    });
                    new_tenants.push(v.tenant.clone());
                    self.tenants.insert(v.tenant.clone(), book);
                }
                Some(book) if book.exhausted() => {
                    results.push(Some(Err(ControllerError::BudgetExhausted {
                        tenant: v.tenant,
                        spent_usd: crate::cost::usd(book.spent_nusd),
                        budget_usd: crate::cost::usd(book.budget_nusd.unwrap_or(0)),
                    })));
                    continue;
                }
                Some(_) => {}
            }
            let (ticket, created) = Ticket::create(TicketId::new(), v, now);
            batch.transitions.push(created);
            accepted.push(ticket);
            results.push(None);
        }
        // Highest priority first, then in the order submitted.
        let mut order: Vec<usize> = (0..accepted.len()).collect();
        order.sort_by_key(|&i| (Reverse(accepted[i].priority), i));
        for i in order {
            if let Some(routed) = self.route_at_admission(&mut accepted[i], now) {
                batch.transitions.push(routed);
            }
        }
        batch.new_tickets = accepted.clone();
        if accepted.is_empty() {
            let _ = reply.send(
                results
                    .into_iter()
                    .map(|r| r.unwrap_or(Err(ControllerError::ShuttingDown)))
                    .collect(),
            );
            return;
        }
        self.admitting += accepted.len();
        let inbox = self.inbox.clone();
        let done: Done = Box::new(move |r: Result<&Applied, &StoreError>| {
            let outcome = r.cloned().map_err(StoreError::clone);
            let _ = inbox.send(Command::Persisted {
                tickets: accepted,
                results,
                outcome,
                new_tenants,
                reply,
            });
        });
        if let Err(e) = self.writer.propose(batch, done).await {
            tracing::error!(error = %e, "store writer is gone; submission refused");
        }
    }

    /// Routes a ticket being admitted when nothing of its skill waits and a
    /// lane has room, so the commit that admits it records its route too
    /// (one durable write fewer than routing it after). Its lane entry is
    /// published once that commit is durable ([`Self::publish_admitted`]).
    fn route_at_admission(&mut self, t: &mut Ticket, now: UnixMs) -> Option<Transition> {
        if t.state != TicketState::Queued
            || self.queues.get(&t.skill).is_some_and(|q| !q.is_empty())
        {
            return None;
        }
        let candidates = self.by_skill.get(&t.skill)?.clone();
        let bot = self.least_loaded(&t.skill, &candidates)?;
        let bot_id = self.bots[bot].handle.id.clone();
        let routed = t
            .apply(
                TransitionKind::Route,
                Some(&bot_id),
                "least-loaded live bot with the skill",
                now,
            )
            .ok()?;
        self.outstanding
            .insert((t.id, t.attempts), (bot, t.tenant.clone()));
        self.set_in_flight(bot, 1);
        Some(routed)
    }

    /// Gives back the lane slot of a ticket routed at admission that was not
    /// admitted after all (refused by the store, or a duplicate).
    fn release_admission_route(&mut self, t: &Ticket) {
        if t.state == TicketState::Routed
            && let Some((bot, _)) = self.outstanding.remove(&(t.id, t.attempts))
        {
            self.set_in_flight(bot, -1);
        }
    }

    /// A ticket routed at admission is durable: its entry goes out with the
    /// next routing pass, unless its bot was lost meanwhile, when it is
    /// requeued like any attempt its bot took down.
    fn publish_admitted(&mut self, t: &mut Ticket) {
        match self.outstanding.get(&(t.id, t.attempts)) {
            Some(&(bot, _)) => self.admitted_routes.push((bot, LaneEntry::of(t))),
            None => {
                let now = self.clock.now_ms();
                self.transition(t, TransitionKind::Requeue, None, "bot lost; requeued", now);
                self.enqueue(t);
            }
        }
    }

    fn on_persisted(
        &mut self,
        tickets: Vec<Ticket>,
        mut results: Vec<Option<Result<Submitted, ControllerError>>>,
        outcome: Result<Applied, StoreError>,
        new_tenants: Vec<TenantId>,
        reply: SubmitReply,
    ) {
        self.admitting = self.admitting.saturating_sub(tickets.len());
        let mut pending = results.iter_mut().filter(|r| r.is_none());
        match outcome {
            Err(e) => {
                for tenant in new_tenants {
                    self.tenants.remove(&tenant);
                }
                for t in &tickets {
                    self.release_admission_route(t);
                }
                // A refusal for the data is final; any other may have
                // landed after all, and is settled once the store answers.
                if !e.is_permanent() {
                    self.unsettled.extend(tickets.iter().map(|t| t.id));
                }
                for slot in pending {
                    *slot = Some(Err(e.clone().into()));
                }
            }
            Ok(applied) => {
                let duplicates: HashMap<TicketId, TicketId> =
                    applied.duplicates.into_iter().collect();
                for mut t in tickets {
                    let Some(slot) = pending.next() else { break };
                    let (id, duplicate) = match duplicates.get(&t.id) {
                        Some(existing) => (*existing, true),
                        None => (t.id, false),
                    };
                    let state = if duplicate {
                        self.live.get(&id).map_or(t.state, |l| l.state)
                    } else {
                        t.state
                    };
                    *slot = Some(Ok(Submitted {
                        id,
                        tenant: t.tenant.clone(),
                        kind: t.work.kind().to_owned(),
                        skill: t.skill.clone(),
                        priority: t.priority,
                        state,
                        duplicate,
                        created_at_ms: t.created_at_ms,
                    }));
                    if duplicate {
                        self.release_admission_route(&t);
                    } else {
                        match t.state {
                            TicketState::Queued => self.enqueue(&t),
                            TicketState::Routed => self.publish_admitted(&mut t),
                            _ => {}
                        }
                        self.live.insert(t.id, t);
                    }
                }
            }
        }
        let _ = reply.send(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Err(ControllerError::ShuttingDown)))
                .collect(),
        );
    }

    /// Stops the tickets whose records the store refused for their data, so
    /// none waits on a write that can never land: the scheduler's own copy
    /// if it still holds the ticket, else the store's (read in the
    /// background). A refused ledger row alone is only reported: its ticket
    /// went on, and its charge stays in the in-memory spend.
    fn on_rejected(&mut self, rows: Vec<RejectedRows>) {
        let mut stored = Vec::new();
        for r in rows {
            if r.ledger_only {
                tracing::error!(ticket = %r.ticket, error = %r.error, "the store refused a ledger row; its charge is not recorded");
                continue;
            }
            if !self.stopped_rejected.insert(r.ticket) {
                tracing::error!(ticket = %r.ticket, error = %r.error, "the store refused the record that stops this ticket; restart recovery will find it");
                continue;
            }
            match self.live.remove(&r.ticket) {
                Some(t) => self.stop_rejected(t, &r.error),
                None => stored.push(r),
            }
        }
        if stored.is_empty() {
            return;
        }
        let (store, inbox) = (self.store.clone(), self.inbox.clone());
        tokio::spawn(async move {
            match store.unfinished().await {
                Ok(all) => {
                    let ids: HashSet<TicketId> = stored.iter().map(|r| r.ticket).collect();
                    let found = all.into_iter().filter(|t| ids.contains(&t.id)).collect();
                    let _ = inbox.send(Command::RejectedStored {
                        rows: stored,
                        found,
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, tickets = stored.len(), "cannot read tickets whose records the store refused; restart recovery will requeue them");
                }
            }
        });
    }

    fn on_rejected_stored(&mut self, rows: Vec<RejectedRows>, found: Vec<Ticket>) {
        let errors: HashMap<TicketId, String> =
            rows.into_iter().map(|r| (r.ticket, r.error)).collect();
        for t in found {
            // Held again meanwhile (a requeue of the stored copy): ours wins.
            let t = self.live.remove(&t.id).unwrap_or(t);
            let error = errors.get(&t.id).map_or("", String::as_str);
            self.stop_rejected(t, error);
        }
    }

    /// Ends `t` as `dead` (or `cancelled`, before it ran) with the store's
    /// refusal as its reason. Its result, if any, is dropped: it is what the
    /// store could not hold.
    fn stop_rejected(&mut self, mut t: Ticket, error: &str) {
        let now = self.clock.now_ms();
        let why = format!("the store refused this ticket's record ({error}); it was stopped");
        t.result = None;
        t.error = Some(why.clone());
        let steps: &[TransitionKind] = match t.state {
            TicketState::Routed | TicketState::Running => {
                &[TransitionKind::Fail, TransitionKind::GiveUp]
            }
            TicketState::Failed => &[TransitionKind::GiveUp],
            TicketState::Queued | TicketState::AwaitingApproval => &[TransitionKind::Cancel],
            TicketState::Succeeded | TicketState::Dead | TicketState::Cancelled => &[],
        };
        for &step in steps {
            self.transition(&mut t, step, None, &why, now);
        }
        if steps.is_empty() {
            self.batch.updates.push(TicketUpdate::of(&t));
        }
        if !t.state.is_terminal() {
            self.live.insert(t.id, t);
        }
    }

    /// Starts a check of the refused submissions against the store, once it
    /// answers again (retrying with backoff until it does, or until the
    /// controller stops). A refused commit lands nothing after its refusal,
    /// so what the check finds is final.
    fn settle(&mut self) {
        if self.settling || (self.unsettled.is_empty() && self.unsettled_budgets.is_empty()) {
            return;
        }
        self.settling = true;
        let ids = std::mem::take(&mut self.unsettled);
        let budgets = std::mem::take(&mut self.unsettled_budgets);
        let (store, inbox) = (self.store.clone(), self.inbox.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                let read = async {
                    Ok::<_, StoreError>((store.unfinished().await?, store.tenants().await?))
                };
                match read.await {
                    Ok((found, tenants)) => {
                        let _ = inbox.send(Command::Settle {
                            ids,
                            budgets,
                            found,
                            tenants,
                        });
                        return;
                    }
                    Err(e) if !inbox.is_closed() => {
                        tracing::warn!(error = %e, refused = ids.len(), "cannot yet check refused submissions against the store");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// Refused submissions the store holds after all. The submitter was told
    /// "store unavailable", so one without an idempotency key is cancelled,
    /// never run: a retry of it is a new ticket. One with a key is run: the
    /// submitter's retry with that key is answered with this ticket.
    /// Refused budgets: the scheduler takes the stored one, whichever it is.
    fn on_settle(
        &mut self,
        ids: Vec<TicketId>,
        budgets: Vec<TenantId>,
        found: Vec<Ticket>,
        tenants: Vec<Tenant>,
    ) {
        self.settling = false;
        for id in budgets {
            if let Some(row) = tenants.iter().find(|t| t.id == id) {
                self.hold_budget(row);
            }
        }
        let ids: std::collections::HashSet<TicketId> = ids.into_iter().collect();
        let now = self.clock.now_ms();
        for mut t in found {
            if !ids.contains(&t.id) || self.live.contains_key(&t.id) {
                continue;
            }
            if t.idempotency_key.is_none() {
                let why = "its submitter was told the store was unavailable, though the commit had landed; cancelled, never run";
                self.transition(&mut t, TransitionKind::Cancel, None, why, now);
                tracing::warn!(ticket = %t.id, "a refused submission had landed; cancelled");
                continue;
            }
            if let Some(tenant) = tenants.iter().find(|x| x.id == t.tenant) {
                self.tenants
                    .entry(t.tenant.clone())
                    .or_insert_with(|| TenantBook::of(tenant));
            }
            tracing::warn!(ticket = %t.id, "a refused submission with an idempotency key had landed; running it");
            let why = "its submitter was told the store was unavailable, though the commit had landed; run under its idempotency key";
            self.adopt(t, why, now);
        }
    }

    fn on_cancel(&mut self, id: TicketId) -> Answer {
        let Some(mut t) = self.live.remove(&id) else {
            return Answer::NotLive;
        };
        let now = self.clock.now_ms();
        let was = t.state;
        match t.apply(TransitionKind::Cancel, None, "cancelled by operator", now) {
            Ok(record) => {
                self.batch.transitions.push(record);
                self.batch.updates.push(TicketUpdate::of(&t));
                if matches!(was, TicketState::Routed | TicketState::Running) {
                    // Abort the bot's model call now; its report settles the lane.
                    self.cancels.cancel(id);
                }
                Answer::Done
            }
            Err(e) => {
                self.live.insert(id, t);
                Answer::Refused(e)
            }
        }
    }

    /// Whether `bot` holds attempt `attempt` of `ticket` now (routed or
    /// running, not cancelled): only then may it make the ticket's calls.
    fn check_call(&self, ticket: TicketId, attempt: u32, bot: &BotId) -> Result<TenantId, String> {
        let live = self
            .live
            .get(&ticket)
            .filter(|t| matches!(t.state, TicketState::Routed | TicketState::Running));
        match (live, self.outstanding.get(&(ticket, attempt))) {
            (Some(_), Some((i, tenant)))
                if self.bots.get(*i).is_some_and(|b| &b.handle.id == bot) =>
            {
                Ok(tenant.clone())
            }
            (Some(_), Some((i, _))) => Err(format!(
                "ticket {ticket} attempt {attempt} is held by {}, not {bot}",
                self.bots
                    .get(*i)
                    .map_or("another bot", |b| b.handle.id.as_str())
            )),
            _ => Err(format!(
                "ticket {ticket} attempt {attempt} is not in flight"
            )),
        }
    }

    fn on_approve(&mut self, id: TicketId) -> Answer {
        let Some(mut t) = self.live.remove(&id) else {
            return Answer::NotLive;
        };
        let now = self.clock.now_ms();
        let answer = match t.apply(TransitionKind::Approve, None, "approved by operator", now) {
            Ok(record) => {
                self.batch.transitions.push(record);
                self.batch.updates.push(TicketUpdate::of(&t));
                self.enqueue(&t);
                Answer::Done
            }
            Err(e) => Answer::Refused(e),
        };
        self.live.insert(id, t);
        answer
    }

    /// Proposes the budget to the store; the scheduler takes it on only once
    /// it is durable ([`Self::on_budget_written`]), so a refused change
    /// changes nothing.
    async fn on_set_budget(
        &mut self,
        tenant: TenantId,
        budget_nusd: Option<i64>,
        reply: oneshot::Sender<Result<Tenant, ControllerError>>,
    ) {
        let created_at_ms = self
            .tenants
            .get(&tenant)
            .map_or_else(|| self.clock.now_ms(), |b| b.created_at_ms);
        let row = Tenant {
            id: tenant,
            budget_nusd,
            created_at_ms,
        };
        let batch = WriteBatch {
            budgets: vec![row.clone()],
            ..WriteBatch::default()
        };
        let inbox = self.inbox.clone();
        let done: Done = Box::new(move |r: Result<&Applied, &StoreError>| {
            let _ = inbox.send(Command::BudgetWritten {
                row,
                outcome: r.map(|_| ()).map_err(StoreError::clone),
                reply,
            });
        });
        let _ = self.writer.propose(batch, done).await;
    }

    fn on_budget_written(
        &mut self,
        row: Tenant,
        outcome: Result<(), StoreError>,
        reply: oneshot::Sender<Result<Tenant, ControllerError>>,
    ) {
        let answer = match outcome {
            Ok(()) => {
                self.hold_budget(&row);
                Ok(row)
            }
            Err(e) => {
                // Its answer may have been lost after it landed (a refusal
                // for its data is final: nothing landed).
                if !e.is_permanent() {
                    self.unsettled_budgets.push(row.id);
                }
                Err(e.into())
            }
        };
        let _ = reply.send(answer);
    }

    /// Takes on `row`'s budget; tickets parked on the tenant's budget move
    /// again if it now has room.
    fn hold_budget(&mut self, row: &Tenant) {
        let book = self
            .tenants
            .entry(row.id.clone())
            .or_insert_with(|| TenantBook::of(row));
        book.budget_nusd = row.budget_nusd;
        if book.exhausted() {
            return;
        }
        for id in self.parked.remove(&row.id).unwrap_or_default() {
            if let Some(t) = self.live.get(&id) {
                let t = t.clone();
                self.enqueue(&t);
            }
        }
    }

    /// Why a live ticket is not moving, from what the scheduler knows now.
    fn waiting(&self, id: TicketId) -> Option<WaitReason> {
        let t = self.live.get(&id)?;
        Some(match t.state {
            TicketState::AwaitingApproval => WaitReason::AwaitingApproval,
            TicketState::Failed => WaitReason::BackingOff {
                until_ms: t.not_before_ms.unwrap_or_else(|| self.clock.now_ms()),
            },
            TicketState::Routed => WaitReason::InLane {
                bot: t.bot.clone()?,
            },
            TicketState::Running => WaitReason::Running {
                bot: t.bot.clone()?,
                since_ms: t.updated_at_ms,
            },
            TicketState::Queued => {
                if let Some(book) = self.tenants.get(&t.tenant)
                    && book.exhausted()
                {
                    return Some(WaitReason::TenantBudgetExhausted {
                        tenant: t.tenant.clone(),
                        spent_usd: crate::cost::usd(book.spent_nusd),
                        budget_usd: crate::cost::usd(book.budget_nusd.unwrap_or(0)),
                    });
                }
                let candidates = self
                    .by_skill
                    .get(&t.skill)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if candidates.is_empty() {
                    return Some(WaitReason::NoLiveBotWithSkill {
                        skill: t.skill.clone(),
                    });
                }
                if candidates
                    .iter()
                    .all(|&b| self.bots[b].in_flight >= self.config.max_in_flight_per_bot)
                {
                    return Some(WaitReason::LanesFull {
                        skill: t.skill.clone(),
                        bots: candidates.len() as u32,
                    });
                }
                let ahead = self.queues.get(&t.skill).map_or(0, |q| {
                    q.iter()
                        .filter(|k| {
                            k.priority > t.priority || (k.priority == t.priority && k.id < t.id)
                        })
                        .count()
                });
                WaitReason::InQueue {
                    position: ahead as u32,
                }
            }
            _ => return None,
        })
    }

    // ---- time ----------------------------------------------------------------

    fn on_tick(&mut self) {
        self.settle();
        let now = self.clock.now_ms();
        while let Some(Reverse((at, id))) = self.backoff.peek().copied() {
            if at > now {
                break;
            }
            self.backoff.pop();
            let Some(mut t) = self.live.remove(&id) else {
                continue;
            };
            if t.state != TicketState::Failed {
                self.live.insert(id, t);
                continue;
            }
            if t.can_retry() {
                let reason = format!(
                    "backoff elapsed; attempt {} of {}",
                    t.attempts + 1,
                    t.max_attempts
                );
                self.transition(&mut t, TransitionKind::Retry, None, &reason, now);
                self.enqueue(&t);
                self.live.insert(id, t);
            } else {
                self.transition(
                    &mut t,
                    TransitionKind::GiveUp,
                    None,
                    "no attempts left",
                    now,
                );
            }
        }
    }

    // ---- routing -------------------------------------------------------------

    /// Routes queued tickets to the least-loaded live bot with the skill,
    /// publishing each bot's share to its own lane in one call.
    async fn route(&mut self) {
        let now = self.clock.now_ms();
        // Each bot's entries, allocated only once something is routed.
        let bots = self.bots.len();
        let mut per_bot: Vec<Vec<LaneEntry>> = Vec::new();
        let add = |per_bot: &mut Vec<Vec<LaneEntry>>, bot: usize, entry| {
            if per_bot.is_empty() {
                per_bot.resize_with(bots, Vec::new);
            }
            per_bot[bot].push(entry);
        };
        for (bot, entry) in std::mem::take(&mut self.admitted_routes) {
            add(&mut per_bot, bot, entry);
        }
        let skills: Vec<Skill> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        for skill in skills {
            let Some(candidates) = self.by_skill.get(&skill).cloned() else {
                continue;
            };
            while let Some(top) = self.queues.get(&skill).and_then(|q| q.peek()).map(|k| k.id) {
                let Some(t) = self.live.get(&top) else {
                    self.pop(&skill); // cancelled or finished while queued
                    continue;
                };
                if t.state != TicketState::Queued {
                    self.pop(&skill);
                    continue;
                }
                if self
                    .tenants
                    .get(&t.tenant)
                    .is_some_and(TenantBook::exhausted)
                {
                    let tenant = t.tenant.clone();
                    self.pop(&skill);
                    self.parked.entry(tenant).or_default().push(top);
                    continue;
                }
                let Some(bot) = self.least_loaded(&skill, &candidates) else {
                    break; // every lane with this skill is at its limit
                };
                self.pop(&skill);
                let Some(mut t) = self.live.remove(&top) else {
                    continue;
                };
                let bot_id = self.bots[bot].handle.id.clone();
                self.transition(
                    &mut t,
                    TransitionKind::Route,
                    Some(&bot_id),
                    "least-loaded live bot with the skill",
                    now,
                );
                self.outstanding
                    .insert((t.id, t.attempts), (bot, t.tenant.clone()));
                self.set_in_flight(bot, 1);
                add(&mut per_bot, bot, LaneEntry::of(&t));
                self.live.insert(t.id, t);
            }
        }
        // Every lane's share at once: over Redis the publishes share one
        // multiplexed connection, so they cost one round trip, not one each.
        let publishes: Vec<_> = per_bot
            .into_iter()
            .enumerate()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(bot, entries)| {
                let lane = self.bots[bot].handle.lane.clone();
                async move { (bot, lane.publish(entries).await) }
            })
            .collect();
        for (bot, published) in futures::future::join_all(publishes).await {
            let refused = match published {
                Ok(rest) => rest,
                Err(e) => {
                    tracing::warn!(bot = %self.bots[bot].handle.id, error = %e, "lane publish failed");
                    Vec::new()
                }
            };
            for entry in refused {
                self.outstanding.remove(&(entry.ticket, entry.attempt));
                self.set_in_flight(bot, -1);
                if let Some(mut t) = self.live.remove(&entry.ticket) {
                    self.transition(&mut t, TransitionKind::Requeue, None, "lane full", now);
                    self.enqueue(&t);
                    self.live.insert(t.id, t);
                }
            }
        }
    }

    /// The bot with the fewest tickets in flight among `candidates`, below
    /// the per-bot limit; ties go round-robin so equal bots share the work.
    fn least_loaded(&mut self, skill: &Skill, candidates: &[usize]) -> Option<usize> {
        let n = candidates.len();
        let start = self.next_bot.get(skill).copied().unwrap_or(0) % n.max(1);
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let pos = (start + k) % n;
            let load = self.bots[candidates[pos]].in_flight;
            if load < self.config.max_in_flight_per_bot && best.is_none_or(|(_, l)| load < l) {
                best = Some((pos, load));
            }
        }
        let (pos, _) = best?;
        self.next_bot.insert(skill.clone(), pos + 1);
        Some(candidates[pos])
    }

    fn pop(&mut self, skill: &Skill) {
        if let Some(q) = self.queues.get_mut(skill) {
            q.pop();
        }
    }

    // ---- fleet membership ----------------------------------------------------

    /// Bots registering (or coming back) join routing; bots lost leave it,
    /// and what they held goes back to the queue as a new attempt.
    fn on_bots_changed(&mut self, up: Vec<BotHandle>, down: Vec<(BotId, String)>) {
        for handle in up {
            let idx = match self.bot_index.get(&handle.id) {
                Some(&i) => {
                    if self.bots[i].live {
                        continue;
                    }
                    self.bots[i].live = true;
                    self.bots[i].handle = handle.clone();
                    i
                }
                None => {
                    let i = self.bots.len();
                    self.bot_index.insert(handle.id.clone(), i);
                    self.bots.push(BotSlot {
                        handle: handle.clone(),
                        in_flight: 0,
                        live: true,
                    });
                    i
                }
            };
            handle.counters.live.store(true, Ordering::Relaxed);
            for s in &handle.skills {
                let list = self.by_skill.entry(s.clone()).or_default();
                if !list.contains(&idx) {
                    list.push(idx);
                }
            }
            tracing::info!(bot = %handle.id, "bot joined");
        }
        for (bot, why) in down {
            let Some(&idx) = self.bot_index.get(&bot) else {
                continue;
            };
            if !self.bots[idx].live {
                continue;
            }
            self.bots[idx].live = false;
            self.bots[idx]
                .handle
                .counters
                .live
                .store(false, Ordering::Relaxed);
            for list in self.by_skill.values_mut() {
                list.retain(|&i| i != idx);
            }
            tracing::warn!(%bot, reason = %why, "bot lost");
            self.requeue_outstanding(&[idx], &format!("bot {bot} lost ({why}); requeued"));
        }
        let handles: Vec<BotHandle> = self.bots.iter().map(|b| b.handle.clone()).collect();
        *self.shared_bots.write().unwrap_or_else(|e| e.into_inner()) = handles;
    }

    /// Requeues every attempt outstanding on `bots`: their lane entries are
    /// gone or unreachable. A result that still arrives for one of them is
    /// priced (it cost what it cost) but no longer moves the ticket.
    fn requeue_outstanding(&mut self, bots: &[usize], reason: &str) {
        let now = self.clock.now_ms();
        let held: Vec<(TicketId, u32, usize)> = self
            .outstanding
            .iter()
            .filter(|(_, (b, _))| bots.contains(b))
            .map(|(&(t, a), (b, _))| (t, a, *b))
            .collect();
        for (ticket, attempt, bot) in held {
            self.outstanding.remove(&(ticket, attempt));
            self.set_in_flight(bot, -1);
            let Some(mut t) = self.live.remove(&ticket) else {
                continue;
            };
            if t.attempts == attempt
                && matches!(t.state, TicketState::Routed | TicketState::Running)
            {
                self.transition(&mut t, TransitionKind::Requeue, None, reason, now);
                self.enqueue(&t);
            }
            self.live.insert(ticket, t);
        }
    }

    // ---- results -------------------------------------------------------------

    fn on_report(&mut self, report: BotReport) {
        match report {
            BotReport::Started {
                ticket,
                attempt,
                at_ms,
                ..
            } => {
                let Some(mut t) = self.live.remove(&ticket) else {
                    return;
                };
                if t.attempts == attempt {
                    self.mark_started(&mut t, at_ms);
                }
                self.live.insert(ticket, t);
            }
            BotReport::Finished {
                bot,
                entry,
                ticket,
                attempt,
                outcome,
                started_at_ms,
                at_ms,
                receipt,
            } => {
                let at = (started_at_ms, at_ms);
                self.on_finished(bot, entry, ticket, attempt, outcome, at, receipt);
            }
        }
    }

    /// `routed → running`, once, whichever report shows it first.
    fn mark_started(&mut self, t: &mut Ticket, at_ms: UnixMs) {
        if t.state == TicketState::Routed {
            self.transition(
                t,
                TransitionKind::Start,
                None,
                "bot started the model call",
                at_ms,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_finished(
        &mut self,
        bot: BotId,
        entry: EntryId,
        ticket: TicketId,
        attempt: u32,
        outcome: Outcome,
        (started_at_ms, at_ms): (UnixMs, UnixMs),
        receipt: Option<EntryId>,
    ) {
        // The results-stream entry is settled with this turn, whatever it says.
        self.receipts.extend(receipt);
        let Some(&bot_idx) = self.bot_index.get(&bot) else {
            tracing::warn!(%bot, "result from an unknown bot ignored");
            return;
        };
        self.acks
            .push((self.bots[bot_idx].handle.lane.clone(), entry));
        let held = self.outstanding.remove(&(ticket, attempt));
        let first = held.is_some();
        if let Some((routed_to, _)) = &held {
            self.set_in_flight(*routed_to, -1);
        }
        // A reply costs what it cost, even for a ticket cancelled meanwhile.
        let tenant = self
            .live
            .get(&ticket)
            .map(|t| t.tenant.clone())
            .or(held.map(|(_, tenant)| tenant));
        if let (Outcome::Succeeded { usage, .. }, Some(tenant)) = (&outcome, tenant) {
            self.charge(ticket, attempt, tenant, bot_idx, *usage, at_ms, first);
        }
        let Some(mut t) = self.live.remove(&ticket) else {
            return;
        };
        let current =
            t.attempts == attempt && matches!(t.state, TicketState::Routed | TicketState::Running);
        if !current {
            self.live.insert(ticket, t);
            return;
        }
        // A result can arrive in the same turn as its start report, or
        // without it (a node drops the start when both travel together).
        self.mark_started(&mut t, started_at_ms);
        let counters = self.bots[bot_idx].handle.counters.clone();
        match outcome {
            Outcome::Succeeded {
                text,
                usage,
                reported_model,
            } => {
                // A secret a model repeats (from a tool's answer, say) is not
                // kept, shown or streamed; a NUL no store can hold is
                // replaced, and the history says so.
                let (text, nuls) = text::clean(&text);
                let text = self.config.secret_rules.redact(&text);
                let (reported_model, nuls_in_model) = match reported_model {
                    Some(m) => {
                        let (m, n) = text::clean(&m);
                        (Some(m.into_owned()), n)
                    }
                    None => (None, 0),
                };
                t.result = Some(Arc::new(serde_json::json!({
                    "text": text,
                    "model": self.bots[bot_idx].handle.model,
                    "reported_model": reported_model,
                    "usage": usage,
                })));
                let reason = format!("model replied{}", text::note(nuls + nuls_in_model));
                self.transition(&mut t, TransitionKind::Succeed, None, &reason, at_ms);
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed { error, retryable } => {
                // An upstream error may quote a credential, or hold a NUL.
                let (error, nuls) = text::clean(&error);
                let error =
                    self.config.secret_rules.redact(&error).into_owned() + &text::note(nuls);
                counters.failed.fetch_add(1, Ordering::Relaxed);
                t.error = Some(error.clone());
                if retryable && t.can_retry() {
                    let delay = self.backoff_for(t.attempts);
                    t.not_before_ms = Some(at_ms + delay.as_millis() as i64);
                    let reason = format!("{error}; retrying in {} ms", delay.as_millis());
                    self.transition(&mut t, TransitionKind::Fail, None, &reason, at_ms);
                    self.backoff
                        .push(Reverse((t.not_before_ms.unwrap_or(at_ms), t.id)));
                } else {
                    self.transition(&mut t, TransitionKind::Fail, None, &error, at_ms);
                    let why = if retryable {
                        "no attempts left"
                    } else {
                        "error is not retryable"
                    };
                    self.transition(&mut t, TransitionKind::GiveUp, None, why, at_ms);
                }
            }
            Outcome::Cancelled => {
                // The scheduler cancels tickets itself; a bot reporting a
                // cancel for a ticket still current means the token outlived
                // its ticket. Treat it as a lost attempt and run it again.
                self.transition(
                    &mut t,
                    TransitionKind::Requeue,
                    None,
                    "bot abandoned the attempt",
                    at_ms,
                );
                self.enqueue(&t);
            }
        }
        if !t.state.is_terminal() {
            self.live.insert(ticket, t);
        }
    }

    /// Prices one finished attempt, centrally, and records its ledger row.
    /// In-memory spend moves only for the first result of an attempt; the
    /// ledger's primary key keeps the store from counting a duplicate.
    #[allow(clippy::too_many_arguments)]
    fn charge(
        &mut self,
        ticket: TicketId,
        attempt: u32,
        tenant: TenantId,
        bot_idx: usize,
        usage: Usage,
        at_ms: UnixMs,
        first: bool,
    ) {
        let model = self.bots[bot_idx].handle.model.clone();
        let priced = match self.config.prices.price(&model, usage) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%ticket, error = %e, "attempt not charged");
                return;
            }
        };
        if first {
            if let Some(book) = self.tenants.get_mut(&tenant) {
                book.spent_nusd += priced.cost_nusd;
            }
            self.stats.ledger_rows.fetch_add(1, Ordering::Relaxed);
            self.stats
                .cost_nusd
                .fetch_add(priced.cost_nusd as u64, Ordering::Relaxed);
            self.stats
                .input_tokens
                .fetch_add(u64::from(usage.input_tokens), Ordering::Relaxed);
            self.stats
                .output_tokens
                .fetch_add(u64::from(usage.output_tokens), Ordering::Relaxed);
        }
        self.batch.ledger.push(LedgerEntry {
            ticket,
            attempt,
            tenant,
            bot: self.bots[bot_idx].handle.id.clone(),
            model,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_nusd: priced.cost_nusd,
            unpriced: priced.unpriced,
            price_version: self.config.prices.version().to_owned(),
            at_ms,
        });
    }
}

/// Acknowledges lane entries once their results are durable, batched per lane.
fn spawn_acker() -> mpsc::UnboundedSender<Vec<(Arc<dyn Lane>, EntryId)>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<(Arc<dyn Lane>, EntryId)>>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut all = first;
            while let Ok(more) = rx.try_recv() {
                all.extend(more);
            }
            let mut per_lane: HashMap<BotId, (Arc<dyn Lane>, Vec<EntryId>)> = HashMap::new();
            for (lane, id) in all {
                per_lane
                    .entry(lane.bot().clone())
                    .or_insert_with(|| (lane.clone(), Vec::new()))
                    .1
                    .push(id);
            }
            let acks = per_lane.into_iter().map(|(bot, (lane, ids))| async move {
                if let Err(e) = lane.ack(&ids).await {
                    tracing::warn!(%bot, error = %e, "lane ack failed; entries will be redelivered");
                }
            });
            futures::future::join_all(acks).await;
        }
    });
    tx
}
