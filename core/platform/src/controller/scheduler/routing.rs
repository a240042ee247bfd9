//! Routing: queued tickets go to the least-loaded live bot with their
//! skill, and out on that bot's own lane.
//!
//! It owns the one routing step ([`route_step`]), which admission uses too,
//! and the routing pass at the end of each turn that publishes every lane's
//! share at once. It must never route a ticket whose tenant's budget is
//! spent or who is paused (that ticket is parked), nor give a bot more attempts than its
//! limit. A publish that fails (Redis restarting, a link cut) is never
//! taken as sent: its tickets stay routed, holding their slots, and are
//! published again after a backoff (`unpublished.rs`) unless they moved
//! on meanwhile; one whose lane has taken no publish for 30 s goes back
//! to the queue for any bot. Start at [`route_step`], then
//! [`Scheduler::route`].

use std::sync::atomic::Ordering;
use tokio::time::Instant;

use crate::clock::UnixMs;
use crate::lane::LaneEntry;
use crate::ticket::{Ticket, TicketId, TicketState, Transition, TransitionKind};

use super::roster::Roster;
use super::state::Scheduler;
use super::unpublished::REPUBLISH_GIVE_UP;

/// The reason every route records.
const ROUTED: &str = "least-loaded live bot with the skill";

/// The one routing step, the same at admission and in the routing pass: the
/// least-loaded live bot with `t`'s skill takes its next attempt and a slot
/// of its lane. The bot and the transition's record, for the caller to
/// write (in the admitting commit, or in the turn's batch); `None` when no
/// lane with the skill has room. `t` must be queued.
pub(super) fn route_step(
    roster: &mut Roster,
    t: &mut Ticket,
    now: UnixMs,
) -> Option<(usize, Transition)> {
    let bot = roster.least_loaded(&t.skill)?;
    let bot_id = roster.handle(bot).id.clone();
    let routed = match t.apply(TransitionKind::Route, Some(&bot_id), ROUTED, now) {
        Ok(routed) => routed,
        Err(e) => {
            tracing::error!(ticket = %t.id, error = %e, "scheduler attempted an illegal transition");
            return None;
        }
    };
    roster.hold(t.id, t.attempts, bot, t.tenant.clone());
    Some((bot, routed))
}

impl Scheduler {
    /// The entry of `ticket`'s `attempt`, if it is still routed to `bot`
    /// with that attempt (so still to be published there).
    pub(super) fn still_routed(
        &self,
        bot: usize,
        ticket: TicketId,
        attempt: u32,
    ) -> Option<LaneEntry> {
        let t = self.live.get(&ticket)?;
        let held = self.roster.holder(ticket, attempt).map(|h| h.0) == Some(bot);
        (held && t.state == TicketState::Routed && t.attempts == attempt).then(|| LaneEntry::of(t))
    }

    /// Routes queued tickets to the least-loaded live bot with the skill,
    /// publishing each bot's share to its own lane in one call, along with
    /// the tickets routed at admission whose commit is durable now.
    pub(super) async fn route(&mut self) {
        let now = self.clock.now_ms();
        // Each bot's entries, allocated only once something is routed.
        let bots = self.roster.len();
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
        let at = Instant::now();
        for (bot, ticket, attempt, since) in self.unpublished.take_due(at) {
            match self.still_routed(bot, ticket, attempt) {
                None => {}
                Some(_) if at.duration_since(since) >= REPUBLISH_GIVE_UP => {
                    let why = "its lane took no publish for 30 s; requeued for any bot";
                    self.back_to_queue(bot, ticket, attempt, why, now);
                }
                Some(entry) => {
                    self.unpublished.hold_again(ticket, attempt, since);
                    add(&mut per_bot, bot, entry);
                }
            }
        }
        for skill in self.queues.skills_waiting() {
            if !self.roster.knows_skill(&skill) {
                continue;
            }
            while let Some(top) = self.queues.peek(&skill) {
                let Some(t) = self.live.get(&top) else {
                    self.queues.pop(&skill); // cancelled or finished while queued
                    continue;
                };
                if t.state != TicketState::Queued {
                    self.queues.pop(&skill);
                    continue;
                }
                if self.budgets.held_back(&t.tenant) {
                    let tenant = t.tenant.clone();
                    self.queues.pop(&skill);
                    self.budgets.park(tenant, top);
                    continue;
                }
                let Some(mut t) = self.live.remove(&top) else {
                    continue;
                };
                let Some((bot, routed)) = route_step(&mut self.roster, &mut t, now) else {
                    self.live.insert(top, t);
                    break; // every lane with this skill is at its limit
                };
                self.queues.pop(&skill);
                self.record(routed, &t);
                add(&mut per_bot, bot, LaneEntry::of(&t));
                self.live.insert(t.id, t);
            }
        }
        self.publish(per_bot, now).await;
    }

    /// Every lane's share at once: over Redis the publishes share one
    /// multiplexed connection, so they cost one round trip, not one each.
    /// What a lane refuses (it is full) goes back to the queue; what a
    /// publish that failed held is sent again after a backoff.
    async fn publish(&mut self, per_bot: Vec<Vec<LaneEntry>>, now: UnixMs) {
        let publishes: Vec<_> = per_bot
            .into_iter()
            .enumerate()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(bot, entries)| {
                let lane = self.roster.handle(bot).lane.clone();
                let sent: Vec<(TicketId, u32)> =
                    entries.iter().map(|e| (e.ticket, e.attempt)).collect();
                async move { (bot, sent, lane.publish(entries).await) }
            })
            .collect();
        for (bot, sent, published) in futures::future::join_all(publishes).await {
            let refused = match published {
                Ok(rest) => {
                    self.stats
                        .routed
                        .fetch_add((sent.len() - rest.len()) as u64, Ordering::Relaxed);
                    self.unpublished.succeeded(&sent);
                    rest
                }
                Err(e) => {
                    // Not known to be in the lane, so not taken as sent: a
                    // ticket whose entry is nowhere would wait forever. One
                    // that did land is delivered twice at worst, and an
                    // attempt is recorded and charged once.
                    tracing::warn!(bot = %self.roster.handle(bot).id, error = %e, tickets = sent.len(), "lane publish failed; sending again after a backoff");
                    self.unpublished.failed(bot, sent, Instant::now());
                    Vec::new()
                }
            };
            for entry in refused {
                self.back_to_queue(bot, entry.ticket, entry.attempt, "lane full", now);
            }
        }
    }

    /// Takes `attempt` of `ticket` back from `bot`, which never had it in
    /// its lane, and queues the ticket again as a new attempt.
    fn back_to_queue(
        &mut self,
        bot: usize,
        ticket: TicketId,
        attempt: u32,
        why: &str,
        now: UnixMs,
    ) {
        self.roster.release_refused(bot, ticket, attempt);
        if let Some(mut t) = self.live.remove(&ticket) {
            self.transition(&mut t, TransitionKind::Requeue, None, why, now);
            self.queues.enqueue(&t);
            self.live.insert(t.id, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::roster::tests::bot;
    use super::*;
    use crate::ticket::{NewTicket, TicketId};

    fn queued(skill: &str) -> Ticket {
        let v = NewTicket {
            skill: Some(skill.into()),
            ..NewTicket::chat("hello")
        }
        .validate()
        .unwrap();
        Ticket::create(TicketId::new(), v, 0).0
    }

    #[test]
    fn a_step_routes_to_the_least_loaded_bot_and_takes_its_slot() {
        let mut roster = Roster::new(vec![bot("a", &["chat"]), bot("b", &["chat"])], 1);
        let (mut t1, mut t2, mut t3) = (queued("chat"), queued("chat"), queued("chat"));

        let (bot1, routed) = route_step(&mut roster, &mut t1, 5).unwrap();
        assert_eq!((t1.state, t1.attempts), (TicketState::Routed, 1));
        assert_eq!(t1.bot.as_ref(), Some(&roster.handle(bot1).id));
        assert_eq!((routed.reason.as_str(), routed.at_ms), (ROUTED, 5));
        assert_eq!(roster.holder(t1.id, 1).map(|h| h.0), Some(bot1));

        let (bot2, _) = route_step(&mut roster, &mut t2, 6).unwrap();
        assert_ne!(bot1, bot2, "the other bot is less loaded");

        // Both lanes are at their limit: the ticket stays as it was.
        assert!(route_step(&mut roster, &mut t3, 7).is_none());
        assert_eq!((t3.state, t3.attempts), (TicketState::Queued, 0));
        roster.release(t1.id, 1);
        assert_eq!(route_step(&mut roster, &mut t3, 8).map(|r| r.0), Some(bot1));
    }

    #[test]
    fn a_step_finds_no_bot_for_a_skill_none_offers() {
        let mut roster = Roster::new(vec![bot("a", &["chat"])], 4);
        let mut t = queued("code");
        assert!(route_step(&mut roster, &mut t, 0).is_none());
        assert_eq!(t.state, TicketState::Queued);
    }
}
