//! Membership: bots joining and leaving at run time (fleet mode), bots
//! drained and uncordoned, and what becomes of the work they held.
//!
//! It owns the scheduler's answer to a lost bot or lost lanes: every
//! attempt they held goes back to the queue as a new attempt. It must never
//! run an attempt twice at once: a result that still arrives for a requeued
//! attempt is priced but moves nothing (`results.rs`). Which bots exist is
//! the roster's; start at `on_bots_changed`.

use std::sync::atomic::Ordering;

use super::super::{BotHandle, ControllerError, Drained, NodeDrained, Retired};
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

    /// Drains a live bot: cordons it, then takes back what waits in its
    /// lane (never delivered, so never started or paid for) and requeues
    /// each as a new attempt for another bot. What it already took stays
    /// with it. A lane that cannot be read leaves the bot cordoned and its
    /// entries where they are (an error): a repeat takes them back, and
    /// until then the bot runs them. Nothing is lost.
    pub(super) async fn drain_bot(&mut self, id: &BotId) -> Result<Drained, ControllerError> {
        let Some(idx) = self.roster.index_of(id) else {
            return Ok(Drained::Unknown);
        };
        if !self
            .roster
            .handle(idx)
            .counters
            .live
            .load(Ordering::Relaxed)
        {
            return Ok(Drained::NotLive);
        }
        // A repeat withdraws again: what an earlier drain's failed or
        // unanswered withdrawal left is taken back now.
        let again = self.roster.cordoned(idx);
        if !again && let Err(skills) = self.roster.cordon(idx) {
            return Ok(Drained::LastOfSkills(skills));
        }
        *self.shared_bots.write().unwrap_or_else(|e| e.into_inner()) = self.roster.handles();
        // Routed at admission, not yet published: never sent.
        let (unsent, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.admitted_routes)
            .into_iter()
            .partition(|(bot, _)| *bot == idx);
        self.admitted_routes = kept;
        let lane = self.roster.handle(idx).lane.clone();
        let mut back: Vec<_> = unsent.into_iter().map(|(_, e)| e).collect();
        // A publish that failed: not known to be in the lane, nor to be
        // withdrawn from it. Requeued all the same; should it have landed,
        // the bot may run that attempt too, and its reply is charged to
        // it, once, as any late reply is.
        for (t, a) in self.unpublished.take_for(idx) {
            back.extend(self.still_routed(idx, t, a));
        }
        // Those never sent are requeued even when the lane fails.
        let failed = match lane.withdraw().await {
            Ok(withdrawn) => {
                back.extend(withdrawn);
                None
            }
            Err(e) => Some(e),
        };
        let now = self.clock.now_ms();
        let reason = format!("bot {id} drained; requeued from its lane");
        let mut requeued = Vec::with_capacity(back.len());
        for e in back {
            // An entry answered twice (a repeat) is requeued once.
            if self.roster.holder(e.ticket, e.attempt).map(|h| h.0) != Some(idx) {
                continue;
            }
            self.roster.release(e.ticket, e.attempt);
            let Some(mut t) = self.live.remove(&e.ticket) else {
                continue;
            };
            if t.attempts == e.attempt && t.state == TicketState::Routed {
                self.transition(&mut t, TransitionKind::Requeue, None, &reason, now);
                self.queues.enqueue(&t);
                requeued.push(t.id);
            }
            self.live.insert(e.ticket, t);
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        let held = self
            .roster
            .handle(idx)
            .counters
            .in_flight
            .load(Ordering::Relaxed) as u32;
        if again && requeued.is_empty() {
            return Ok(Drained::Already { held });
        }
        tracing::info!(bot = %id, requeued = requeued.len(), held, "bot drained");
        Ok(Drained::Drained { requeued, held })
    }

    /// Drains every live bot of `node` at once (Kubernetes' `kubectl
    /// drain` of a node): they are cordoned together, refused whole when
    /// that would leave a skill no bot, then each bot's lane is taken
    /// back as [`Self::drain_bot`] does. A lane that cannot be read leaves
    /// its bot cordoned and the error is answered once every other lane
    /// was taken back; a repeat takes the rest.
    pub(super) async fn drain_node(&mut self, node: &str) -> Result<NodeDrained, ControllerError> {
        let live = self.roster.of_node(node, true);
        if live.is_empty() {
            return Ok(if self.roster.knows_node(node) {
                NodeDrained::NotLive
            } else {
                NodeDrained::Unknown
            });
        }
        let fresh: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| !self.roster.cordoned(i))
            .collect();
        if let Err(skills) = self.roster.cordon_all(&fresh) {
            return Ok(NodeDrained::LastOfSkills(skills));
        }
        let mut bots = Vec::with_capacity(live.len());
        let mut failed = None;
        for idx in live {
            let id = self.roster.handle(idx).id.clone();
            match self.drain_bot(&id).await {
                Ok(d) => bots.push((id, d)),
                Err(e) => {
                    tracing::warn!(bot = %id, error = %e, "a drained node's lane could not be taken back");
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let fresh = !fresh.is_empty()
            || bots
                .iter()
                .any(|(_, d)| matches!(d, Drained::Drained { .. }));
        tracing::info!(node, bots = bots.len(), "node drained");
        Ok(NodeDrained::Drained { bots, fresh })
    }

    /// Lets every drained bot of `node` take work again, those drained
    /// before a restart that have not registered since among them (they
    /// join as any bot does): how many were drained, and the attempts its
    /// bots hold; `None` for a node never known.
    pub(super) fn uncordon_node(&mut self, node: &str) -> Option<(u32, u32)> {
        if !self.roster.knows_node(node) {
            return None;
        }
        let (mut was, mut held) = (0, 0);
        for idx in self.roster.of_node(node, false) {
            let id = self.roster.handle(idx).id.clone();
            if let Some((w, h)) = self.uncordon(&id) {
                was += u32::from(w);
                held += h;
            }
        }
        let unregistered = self.roster.forget_node_cordons_on_join(node);
        if !unregistered.is_empty() {
            tracing::info!(
                node,
                bots = unregistered.len(),
                "a node's bots uncordoned before they registered again"
            );
        }
        was += unregistered.len() as u32;
        Some((was, held))
    }

    /// Lets a drained bot take work again: whether it was drained, and
    /// the attempts it holds; `None` for a bot never known.
    pub(super) fn uncordon(&mut self, id: &BotId) -> Option<(bool, u32)> {
        let Some(idx) = self.roster.index_of(id) else {
            // Drained before a restart and not registered since: it will
            // join as any bot does, holding nothing.
            let was = self.roster.forget_cordon_on_join(id);
            if was {
                tracing::info!(bot = %id, "bot uncordoned before it registered again");
            }
            return was.then_some((true, 0));
        };
        let was = self.roster.uncordon(idx);
        if was {
            tracing::info!(bot = %id, "bot uncordoned");
            *self.shared_bots.write().unwrap_or_else(|e| e.into_inner()) = self.roster.handles();
        }
        let held = self
            .roster
            .handle(idx)
            .counters
            .in_flight
            .load(Ordering::Relaxed);
        Some((was, held as u32))
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
