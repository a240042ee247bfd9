//! The scheduler's loop: one message, report or tick, then whatever else is
//! ready, then a routing pass, then one write for everything the turn
//! decided.
//!
//! It owns the closed set of messages the scheduler takes ([`Command`]),
//! the clock's work (backoffs ending, the check of refused writes), and the
//! end of a turn ([`Scheduler::flush`]), which hands the batch to the
//! writer and leaves lane acks, results-stream receipts and replies to the
//! writer's callback, so they wait for durability without the loop waiting.
//! Nothing here may await the store. Start at [`Scheduler::run`]; each arm
//! of `on_command` leads to the file that handles it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::super::{BotHandle, ControllerError};
use super::admission::{SubmitReply, Submitted};
use super::requests::Answer;
use super::state::Scheduler;
use crate::bot::BotReport;
use crate::lane::{EntryId, Lane};
use crate::store::writer::Done;
use crate::store::{Applied, RejectedRows, StoreError, Tenant};
use crate::ticket::{
    BotId, TenantId, Ticket, TicketId, TicketState, TransitionKind, ValidTicket, WaitReason,
};

/// How often backoff timers are checked.
const TICK: Duration = Duration::from_millis(20);
/// Messages handled per loop turn before routing and writing.
const DRAIN: usize = 1024;

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
    /// Every tenant's budget and spend, as admissions decide by them.
    Spend {
        reply: oneshot::Sender<Vec<super::budgets::Spend>>,
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
    /// Fleet mode: an operator retires a lost node: its bots (none live)
    /// leave the view.
    RetireNode {
        node: String,
        reply: oneshot::Sender<super::super::Retired>,
    },
    /// A tenant paused or resumed, the change durable: whether it changed
    /// anything.
    PauseTenant {
        tenant: TenantId,
        paused: bool,
        reply: oneshot::Sender<bool>,
    },
    /// An operator or a heal drains a live bot (see `Drained`).
    DrainBot {
        bot: BotId,
        reply: oneshot::Sender<Result<super::super::Drained, ControllerError>>,
    },
    /// An operator or a heal drains every live bot of a node (see
    /// `NodeDrained`).
    DrainNode {
        node: String,
        reply: oneshot::Sender<Result<super::super::NodeDrained, ControllerError>>,
    },
    /// A drained node's bots may take work again (`None`: no such node).
    UncordonNode {
        node: String,
        reply: oneshot::Sender<Option<(u32, u32)>>,
    },
    /// A drained bot may take work again (`None`: no such bot).
    Uncordon {
        bot: BotId,
        reply: oneshot::Sender<Option<(bool, u32)>>,
    },
    /// Fleet mode: the lanes lost their entries (Redis restarted empty);
    /// every routed or running ticket is requeued from the store's truth.
    Redrive {
        reason: String,
    },
    /// Which of `ids` (submissions refused after a failed commit) the store
    /// holds after all: those commits landed though their answers were lost.
    Reconciled {
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

impl Scheduler {
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
            Command::Spend { reply } => {
                let _ = reply.send(self.budgets.spend());
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
            Command::RetireNode { node, reply } => {
                let _ = reply.send(self.retire_node(&node));
            }
            Command::PauseTenant {
                tenant,
                paused,
                reply,
            } => {
                let _ = reply.send(self.pause_tenant(&tenant, paused));
            }
            Command::DrainBot { bot, reply } => {
                let _ = reply.send(self.drain_bot(&bot).await);
            }
            Command::Uncordon { bot, reply } => {
                let _ = reply.send(self.uncordon(&bot));
            }
            Command::DrainNode { node, reply } => {
                let _ = reply.send(self.drain_node(&node).await);
            }
            Command::UncordonNode { node, reply } => {
                let _ = reply.send(self.uncordon_node(&node));
            }
            Command::Redrive { reason } => self.redrive(&reason),
            Command::Reconciled {
                ids,
                budgets,
                found,
                tenants,
            } => self.on_reconciled(ids, budgets, found, tenants),
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

    /// The clock's work: a check of refused writes, if one is due, and the
    /// failed tickets whose backoff ended, retried or given up.
    fn on_tick(&mut self) {
        self.reconcile_refused();
        let now = self.clock.now_ms();
        while let Some(id) = self.queues.next_due(now) {
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
                self.queues.enqueue(&t);
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

    /// Hands this turn's decisions to the writer as one batch. Once it is
    /// durable, the lane entries whose results are in it are acked and the
    /// commands decided in it are answered.
    pub(super) async fn flush(&mut self) {
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
    pub(super) fn answer(&mut self, reply: oneshot::Sender<Answer>, answer: Answer) {
        match answer {
            Answer::Done => self.replies.push((reply, answer)),
            other => {
                let _ = reply.send(other);
            }
        }
    }
}

/// Acknowledges lane entries once their results are durable, batched per lane.
pub(super) fn spawn_acker() -> mpsc::UnboundedSender<Vec<(Arc<dyn Lane>, EntryId)>> {
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
