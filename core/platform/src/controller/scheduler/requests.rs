//! Requests about one ticket or tenant: cancel, approve, why a ticket
//! waits, a tenant's budget, a tenant paused or resumed, and a node's
//! check that a tool call is its bot's to make.
//!
//! It owns the answers the facade and the fleet's tool server wait on. A
//! change is answered only once it is durable ([`Scheduler::answer`]), and
//! a budget is held only once its write landed: a refused change must
//! change nothing. Start at `on_cancel`.

use tokio::sync::oneshot;

use super::super::ControllerError;
use super::main_loop::Command;
use super::roster::Room;
use super::state::Scheduler;
use crate::store::writer::Done;
use crate::store::{Applied, StoreError, Tenant, WriteBatch};
use crate::ticket::{
    BotId, TenantId, TicketError, TicketId, TicketState, TransitionKind, WaitReason,
};

/// The scheduler's answer to a command on one ticket.
#[derive(Debug)]
pub(crate) enum Answer {
    Done,
    Refused(TicketError),
    /// The scheduler does not hold it: finished, or never existed.
    NotLive,
}

impl Scheduler {
    pub(super) fn on_cancel(&mut self, id: TicketId) -> Answer {
        let Some(mut t) = self.live.remove(&id) else {
            return Answer::NotLive;
        };
        let now = self.clock.now_ms();
        let was = t.state;
        match t.apply(TransitionKind::Cancel, None, "cancelled by operator", now) {
            Ok(record) => {
                self.record(record, &t);
                if matches!(was, TicketState::Routed | TicketState::Running) {
                    // Abort the bot's model call now; its report then
                    // acknowledges the lane entry and frees the bot's slot.
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

    pub(super) fn on_approve(&mut self, id: TicketId) -> Answer {
        let Some(mut t) = self.live.remove(&id) else {
            return Answer::NotLive;
        };
        let now = self.clock.now_ms();
        let answer = match t.apply(TransitionKind::Approve, None, "approved by operator", now) {
            Ok(record) => {
                self.record(record, &t);
                self.queues.enqueue(&t);
                Answer::Done
            }
            Err(e) => Answer::Refused(e),
        };
        self.live.insert(id, t);
        answer
    }

    /// Whether `bot` holds attempt `attempt` of `ticket` now (routed or
    /// running, not cancelled): only then may it make the ticket's calls.
    pub(super) fn check_call(
        &self,
        ticket: TicketId,
        attempt: u32,
        bot: &BotId,
    ) -> Result<TenantId, String> {
        let in_flight = self
            .live
            .get(&ticket)
            .is_some_and(|t| matches!(t.state, TicketState::Routed | TicketState::Running));
        if !in_flight {
            return Err(format!(
                "ticket {ticket} attempt {attempt} is not in flight"
            ));
        }
        self.roster.check_holder(ticket, attempt, bot)
    }

    /// Proposes the budget to the store; the scheduler takes it on only once
    /// it is durable ([`Self::on_budget_written`]), so a refused change
    /// changes nothing.
    pub(super) async fn on_set_budget(
        &mut self,
        tenant: TenantId,
        budget_nusd: Option<i64>,
        reply: oneshot::Sender<Result<Tenant, ControllerError>>,
    ) {
        let created_at_ms = self
            .budgets
            .created_at(&tenant)
            .unwrap_or_else(|| self.clock.now_ms());
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

    pub(super) fn on_budget_written(
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
                    self.unreconciled_budgets.push(row.id);
                }
                Err(e.into())
            }
        };
        let _ = reply.send(answer);
    }

    /// Pauses or resumes a tenant whose change is durable: whether that
    /// changed anything. Resumed (and within its budget), its parked
    /// tickets are queued again.
    pub(super) fn pause_tenant(&mut self, tenant: &TenantId, paused: bool) -> bool {
        let (changed, freed) = self.budgets.set_paused(tenant, paused);
        for id in freed {
            if let Some(t) = self.live.get(&id) {
                self.queues.enqueue(t);
            }
        }
        changed
    }

    /// Takes on `row`'s budget; tickets parked on the tenant's budget move
    /// again if it now has room.
    pub(super) fn hold_budget(&mut self, row: &Tenant) {
        for id in self.budgets.hold(row) {
            if let Some(t) = self.live.get(&id) {
                self.queues.enqueue(t);
            }
        }
    }

    /// Why a live ticket is not moving, from what the scheduler knows now.
    pub(super) fn waiting(&self, id: TicketId) -> Option<WaitReason> {
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
                if self.budgets.paused(&t.tenant) {
                    return Some(WaitReason::TenantPaused {
                        tenant: t.tenant.clone(),
                    });
                }
                if let Some(over) = self.budgets.exhaustion(&t.tenant) {
                    return Some(WaitReason::TenantBudgetExhausted {
                        tenant: t.tenant.clone(),
                        spent_usd: over.spent_usd,
                        budget_usd: over.budget_usd,
                    });
                }
                match self.roster.room_for(&t.skill) {
                    Room::NoLiveBot => match self.roster.drained_with(&t.skill) {
                        0 => WaitReason::NoLiveBotWithSkill {
                            skill: t.skill.clone(),
                        },
                        n => WaitReason::BotsDrained {
                            skill: t.skill.clone(),
                            bots: n as u32,
                        },
                    },
                    Room::LanesFull { bots } => WaitReason::LanesFull {
                        skill: t.skill.clone(),
                        bots: bots as u32,
                    },
                    Room::Free => WaitReason::InQueue {
                        position: self.queues.ahead_of(t) as u32,
                    },
                }
            }
            _ => return None,
        })
    }
}
