//! Membership: bots joining and leaving at run time (fleet mode), and what
//! becomes of the work they held.
//!
//! It owns the scheduler's answer to a lost bot or lost lanes: every
//! attempt they held goes back to the queue as a new attempt. It must never
//! run an attempt twice at once: a result that still arrives for a requeued
//! attempt is priced but moves nothing (`results.rs`). Which bots exist is
//! the roster's; start at `on_bots_changed`.

use super::super::{BotHandle, Retired};
use super::state::Scheduler;
use crate::ticket::{BotId, TicketState, TransitionKind};

impl Scheduler {
    /// Bots registering (or coming back) join routing; bots lost leave it,
    /// and what they held goes back to the queue as a new attempt.
    pub(super) fn on_bots_changed(&mut self, up: Vec<BotHandle>, down: Vec<(BotId, String)>) {
        for handle in up {
            let id = handle.id.clone();
            if self.roster.join(handle) {
                tracing::info!(bot = %id, "bot joined");
            }
        }
        for (bot, why) in down {
            let Some(idx) = self.roster.leave(&bot) else {
                continue;
            };
            tracing::warn!(%bot, reason = %why, "bot lost");
            self.requeue_outstanding(&[idx], &format!("bot {bot} lost ({why}); requeued"));
        }
        *self.shared_bots.write().unwrap_or_else(|e| e.into_inner()) = self.roster.handles();
    }

    /// Retires node `node` if none of its bots is live: they leave the
    /// view (they hold nothing: their work was requeued when they were
    /// lost). A bot of it that registers again joins as a new one.
    pub(super) fn retire_node(&mut self, node: &str) -> Retired {
        let answer = self.roster.retire_node(node);
        if matches!(answer, Retired::Forgot(_)) {
            tracing::info!(node, "lost node retired");
        }
        answer
    }

    /// The lanes lost their entries (Redis restarted empty): everything
    /// routed or running is requeued, whichever bot held it.
    pub(super) fn redrive(&mut self, reason: &str) {
        let all: Vec<usize> = (0..self.roster.len()).collect();
        self.requeue_outstanding(&all, reason);
    }

    /// Requeues every attempt outstanding on `bots`: their lane entries are
    /// gone or unreachable. A result that still arrives for one of them is
    /// priced (it cost what it cost) but no longer moves the ticket.
    fn requeue_outstanding(&mut self, bots: &[usize], reason: &str) {
        let now = self.clock.now_ms();
        for (ticket, attempt) in self.roster.release_all_on(bots) {
            let Some(mut t) = self.live.remove(&ticket) else {
                continue;
            };
            if t.attempts == attempt
                && matches!(t.state, TicketState::Routed | TicketState::Running)
            {
                self.transition(&mut t, TransitionKind::Requeue, None, reason, now);
                self.queues.enqueue(&t);
            }
            self.live.insert(ticket, t);
        }
    }
}
