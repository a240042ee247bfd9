//! Admission: a submission is checked (capacity, tenant, budget), proposed
//! to the store, and answered only once it is durable. A paused tenant's
//! tickets are admitted, never routed at admission.
//!
//! It owns the path from [`Command::Submit`] to [`Command::Persisted`] and
//! the route a ticket may take in the commit that admits it. A ticket must
//! never be held, queued or published before its commit is durable, nor
//! overtake work of its skill already waiting. Start at `on_submit`, then
//! `on_persisted`.
//!
//! [`Command::Submit`]: super::Command::Submit
//! [`Command::Persisted`]: super::Command::Persisted

use serde::{Deserialize, Serialize};
use specta::Type;
use std::cmp::Reverse;
use std::collections::HashMap;
use tokio::sync::oneshot;

use super::super::ControllerError;
use super::budgets::Standing;
use super::main_loop::Command;
use super::routing::route_step;
use super::state::Scheduler;
use crate::clock::UnixMs;
use crate::lane::LaneEntry;
use crate::store::writer::Done;
use crate::store::{Applied, StoreError, WriteBatch};
use crate::ticket::{
    Skill, TenantId, Ticket, TicketId, TicketState, Transition, TransitionKind, ValidTicket,
};

/// The answer to a submission that was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
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
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
}

pub(crate) type SubmitReply = oneshot::Sender<Vec<Result<Submitted, ControllerError>>>;

impl Scheduler {
    /// Admission: tenant, budget and capacity; then the tickets are proposed
    /// to the store, and the caller is answered once they are durable.
    pub(super) async fn on_submit(&mut self, tickets: Vec<ValidTicket>, reply: SubmitReply) {
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
            match self.budgets.admit(&v.tenant, now) {
                Standing::Unknown => {
                    results.push(Some(Err(ControllerError::UnknownTenant(v.tenant))));
                    continue;
                }
                Standing::Created(row) => {
                    batch.tenants.push(row);
                    new_tenants.push(v.tenant.clone());
                }
                Standing::Exhausted(over) => {
                    results.push(Some(Err(ControllerError::BudgetExhausted {
                        tenant: v.tenant,
                        spent_usd: over.spent_usd,
                        budget_usd: over.budget_usd,
                    })));
                    continue;
                }
                Standing::Open => {}
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
            || self.queues.has_waiting(&t.skill)
            || self.budgets.paused(&t.tenant)
        {
            return None;
        }
        route_step(&mut self.roster, t, now).map(|(_, routed)| routed)
    }

    /// Gives back the lane slot of a ticket routed at admission that was not
    /// admitted after all (refused by the store, or a duplicate).
    fn release_admission_route(&mut self, t: &Ticket) {
        if t.state == TicketState::Routed {
            self.roster.release(t.id, t.attempts);
        }
    }

    /// A ticket routed at admission is durable: its entry goes out with the
    /// next routing pass, unless its bot was lost or drained, or its tenant
    /// paused, meanwhile, when it is requeued like any attempt its bot took
    /// down (and a paused tenant's is parked by the routing pass).
    fn publish_admitted(&mut self, t: &mut Ticket) {
        let now = self.clock.now_ms();
        let paused = self.budgets.paused(&t.tenant);
        match self.roster.holder(t.id, t.attempts) {
            Some(&(bot, _)) if !self.roster.cordoned(bot) && !paused => {
                self.admitted_routes.push((bot, LaneEntry::of(t)))
            }
            Some(_) => {
                self.roster.release(t.id, t.attempts);
                let why = if paused {
                    "tenant paused; requeued"
                } else {
                    "bot drained; requeued"
                };
                self.transition(t, TransitionKind::Requeue, None, why, now);
                self.queues.enqueue(t);
            }
            None => {
                self.transition(t, TransitionKind::Requeue, None, "bot lost; requeued", now);
                self.queues.enqueue(t);
            }
        }
    }

    pub(super) fn on_persisted(
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
                    self.budgets.forget(&tenant);
                }
                for t in &tickets {
                    self.release_admission_route(t);
                }
                // A refusal for the data is final; any other may have
                // landed after all, and is reconciled once the store answers.
                if !e.is_permanent() {
                    self.unreconciled.extend(tickets.iter().map(|t| t.id));
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
                            TicketState::Queued => self.queues.enqueue(&t),
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
}
