//! The scheduler's state, and how it is rebuilt from the store at start.
//!
//! [`Scheduler`] owns the live tickets and, through its plain parts, the
//! queues, the bots and the tenants' books; beside them it keeps what the
//! current turn decided, to be written as one batch at the turn's end. Only
//! the scheduler's own task ever holds it: nothing here may be shared or
//! locked, and no method here may await the store except
//! [`Scheduler::recover`], before the loop starts. Start at
//! [`Scheduler::recover`]; the loop is in `main_loop.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::super::{BotHandle, ControllerConfig, ControllerError, SharedBots, Stats};
use super::budgets::Budgets;
use super::main_loop::{Command, spawn_acker};
use super::queues::Queues;
use super::requests::Answer;
use super::roster::Roster;
use super::unpublished::Unpublished;
use crate::bot::CancelRegistry;
use crate::clock::{SharedClock, UnixMs};
use crate::lane::{EntryId, Lane, LaneEntry};
use crate::store::writer::Writer;
use crate::store::{Store, TicketUpdate, WriteBatch};
use crate::ticket::{BotId, TenantId, Ticket, TicketId, TicketState, Transition, TransitionKind};

pub(crate) struct Scheduler {
    pub(super) config: ControllerConfig,
    pub(super) store: Arc<dyn Store>,
    pub(super) writer: Writer,
    pub(super) cancels: Arc<CancelRegistry>,
    pub(super) clock: SharedClock,
    pub(super) stats: Arc<Stats>,
    pub(super) inbox: mpsc::UnboundedSender<Command>,

    pub(super) live: HashMap<TicketId, Ticket>,
    pub(super) queues: Queues,
    pub(super) roster: Roster,
    pub(super) budgets: Budgets,
    /// Submissions handed to the writer and not yet answered.
    pub(super) admitting: usize,
    /// Submissions refused because their commit failed: a commit whose
    /// answer was lost may have landed all the same
    /// ([`Self::reconcile_refused`]).
    pub(super) unreconciled: Vec<TicketId>,
    /// Tenants whose budget write was refused: it too may have landed.
    pub(super) unreconciled_budgets: Vec<TenantId>,
    /// Whether a check of `unreconciled` against the store is under way.
    pub(super) reconciling: bool,
    /// Tickets stopped because the store refused their records: one
    /// refused again is left to restart recovery, never stopped in a loop.
    pub(super) stopped_rejected: HashSet<TicketId>,
    /// Tickets routed in the commit that admitted them, durable now, to be
    /// published with the next routing pass: (bot, entry).
    pub(super) admitted_routes: Vec<(usize, LaneEntry)>,
    /// Routed tickets whose publish failed: sent again, after a backoff.
    pub(super) unpublished: Unpublished,

    /// What this turn decided, written at the end of the turn.
    pub(super) batch: WriteBatch,
    pub(super) acks: Vec<(Arc<dyn Lane>, EntryId)>,
    /// Results-stream entries (fleet mode) whose results are in this turn.
    pub(super) receipts: Vec<EntryId>,
    /// Answers to send once this turn's batch is durable.
    pub(super) replies: Vec<(oneshot::Sender<Answer>, Answer)>,
    pub(super) acker: mpsc::UnboundedSender<Vec<(Arc<dyn Lane>, EntryId)>>,
    pub(super) receipt_sink: Option<mpsc::UnboundedSender<Vec<EntryId>>>,
    /// The facade's view of the bots, updated as bots come and go.
    pub(super) shared_bots: SharedBots,
    /// The surfaces' event stream, for what is never stored (progress).
    pub(super) events: tokio::sync::broadcast::Sender<crate::controller::CoreEvent>,
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
        events: tokio::sync::broadcast::Sender<crate::controller::CoreEvent>,
    ) -> Result<Self, ControllerError> {
        let bots: Vec<BotHandle> = shared_bots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut roster = Roster::new(bots, config.max_in_flight_per_bot);
        roster.restore_cordons(
            super::super::holds::cordoned(&*store)
                .await?
                .into_iter()
                .map(|c| (c.bot, c.node)),
        );
        let acker = spawn_acker();
        let mut budgets = Budgets::new(
            store.tenants().await?,
            store.spend_by_tenant().await?,
            config.auto_create_tenants,
            config.default_budget_nusd,
        );
        for tenant in super::super::holds::paused(&*store).await? {
            let _ = budgets.set_paused(&tenant, true);
        }
        let mut s = Self {
            config,
            store: store.clone(),
            writer,
            cancels,
            clock,
            stats,
            inbox,
            live: HashMap::new(),
            queues: Queues::default(),
            roster,
            budgets,
            admitting: 0,
            unreconciled: Vec::new(),
            unreconciled_budgets: Vec::new(),
            reconciling: false,
            stopped_rejected: HashSet::new(),
            admitted_routes: Vec::new(),
            unpublished: Unpublished::default(),
            batch: WriteBatch::default(),
            acks: Vec::new(),
            receipts: Vec::new(),
            replies: Vec::new(),
            acker,
            receipt_sink,
            shared_bots,
            events,
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

    /// Applies a transition the scheduler has decided is legal, and queues
    /// its record. An illegal one here is a bug: it is logged, not applied.
    pub(super) fn transition(
        &mut self,
        t: &mut Ticket,
        event: TransitionKind,
        bot: Option<&BotId>,
        reason: &str,
        now: UnixMs,
    ) -> bool {
        match t.apply(event, bot, reason, now) {
            Ok(record) => {
                self.record(record, t);
                true
            }
            Err(e) => {
                tracing::error!(ticket = %t.id, error = %e, "scheduler attempted an illegal transition");
                false
            }
        }
    }

    /// Queues an applied transition's record and the ticket's new row.
    pub(super) fn record(&mut self, record: Transition, t: &Ticket) {
        self.batch.transitions.push(record);
        self.batch.updates.push(TicketUpdate::of(t));
    }

    /// Takes on an unfinished ticket from the store: queued, it waits its
    /// turn; routed or running (its lane entry is gone, or never went out),
    /// it is requeued as a new attempt, saying `why`; failed, it waits out
    /// its backoff.
    pub(super) fn adopt(&mut self, mut t: Ticket, why: &str, now: UnixMs) {
        match t.state {
            TicketState::Routed | TicketState::Running => {
                self.transition(&mut t, TransitionKind::Requeue, None, why, now);
                self.queues.enqueue(&t);
            }
            TicketState::Queued => self.queues.enqueue(&t),
            TicketState::Failed => self.queues.back_off(t.id, t.not_before_ms.unwrap_or(now)),
            _ => {}
        }
        self.live.insert(t.id, t);
    }
}
