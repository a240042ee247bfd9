//! The waiting work: per skill, the tickets queued for a bot, in the order
//! they go out, and the failed tickets backing off until a time.
//!
//! It owns ids, priorities and times only, never a ticket's state, so an
//! entry can outlive the reason it was queued (a ticket cancelled or routed
//! meanwhile): whoever takes an entry checks the ticket it names. It must
//! never read a clock, a channel or the store; the caller passes the time.
//! Start at [`Queues::enqueue`] and [`Queues::next_due`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use crate::clock::UnixMs;
use crate::ticket::{Skill, Ticket, TicketId};

/// Queue order: higher priority first, then first come first served.
#[derive(Debug, PartialEq, Eq)]
struct QueueKey {
    priority: u8,
    seq: Reverse<u64>,
    id: TicketId,
}

impl Ord for QueueKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}
impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
pub(super) struct Queues {
    by_skill: HashMap<Skill, BinaryHeap<QueueKey>>,
    /// Arrival order across every skill: the tie-break within a priority.
    seq: u64,
    backoff: BinaryHeap<Reverse<(UnixMs, TicketId)>>,
}

impl Queues {
    /// Puts `t` at the back of its priority in its skill's queue.
    pub(super) fn enqueue(&mut self, t: &Ticket) {
        self.seq += 1;
        self.by_skill
            .entry(t.skill.clone())
            .or_default()
            .push(QueueKey {
                priority: t.priority,
                seq: Reverse(self.seq),
                id: t.id,
            });
    }

    /// The ticket that goes out next for `skill`, if any is queued.
    pub(super) fn peek(&self, skill: &Skill) -> Option<TicketId> {
        self.by_skill.get(skill)?.peek().map(|k| k.id)
    }

    pub(super) fn pop(&mut self, skill: &Skill) {
        if let Some(q) = self.by_skill.get_mut(skill) {
            q.pop();
        }
    }

    /// Whether anything of `skill` waits, counting entries whose ticket has
    /// moved on: admission only routes past an empty queue, so a newcomer
    /// never overtakes what may still be waiting.
    pub(super) fn has_waiting(&self, skill: &Skill) -> bool {
        self.by_skill.get(skill).is_some_and(|q| !q.is_empty())
    }

    /// Every skill with something queued.
    pub(super) fn skills_waiting(&self) -> Vec<Skill> {
        self.by_skill
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// How many queued entries of `t`'s skill go before it, the position a
    /// surface shows. Within a priority it goes by id, that is by submission
    /// time (UUIDv7), not by when the entry was queued.
    pub(super) fn ahead_of(&self, t: &Ticket) -> usize {
        self.by_skill.get(&t.skill).map_or(0, |q| {
            q.iter()
                .filter(|k| k.priority > t.priority || (k.priority == t.priority && k.id < t.id))
                .count()
        })
    }

    /// Holds `id` back until `until` (unix ms).
    pub(super) fn back_off(&mut self, id: TicketId, until: UnixMs) {
        self.backoff.push(Reverse((until, id)));
    }

    /// Takes the earliest ticket whose backoff ended by `now`, if any.
    pub(super) fn next_due(&mut self, now: UnixMs) -> Option<TicketId> {
        let Reverse((at, id)) = *self.backoff.peek()?;
        if at > now {
            return None;
        }
        self.backoff.pop();
        Some(id)
    }
}

/// The wait before the attempt after `attempts`: `base`, doubling with each
/// attempt, at most `max`.
pub(super) fn backoff_delay(base: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::NewTicket;

    fn ticket(skill: &str, priority: u8) -> Ticket {
        let v = NewTicket {
            skill: Some(skill.into()),
            priority: Some(priority),
            ..NewTicket::chat("hello")
        }
        .validate()
        .unwrap();
        Ticket::create(TicketId::new(), v, 0).0
    }

    fn drain(q: &mut Queues, skill: &Skill) -> Vec<TicketId> {
        let mut out = Vec::new();
        while let Some(id) = q.peek(skill) {
            q.pop(skill);
            out.push(id);
        }
        out
    }

    #[test]
    fn higher_priority_goes_first_then_first_come_first_served() {
        let mut q = Queues::default();
        let (low, high_1, high_2, mid) = (
            ticket("chat", 1),
            ticket("chat", 9),
            ticket("chat", 9),
            ticket("chat", 5),
        );
        for t in [&low, &high_2, &mid, &high_1] {
            q.enqueue(t);
        }
        assert_eq!(
            drain(&mut q, &low.skill),
            vec![high_2.id, high_1.id, mid.id, low.id],
            "a later enqueue of the same priority waits behind, whatever its id"
        );
        assert_eq!(q.peek(&low.skill), None);
    }

    #[test]
    fn each_skill_has_its_own_queue() {
        let mut q = Queues::default();
        let (chat, code) = (ticket("chat", 1), ticket("code", 1));
        assert!(!q.has_waiting(&chat.skill));
        q.enqueue(&chat);
        q.enqueue(&code);
        assert!(q.has_waiting(&chat.skill) && q.has_waiting(&code.skill));
        let mut skills = q.skills_waiting();
        skills.sort();
        assert_eq!(skills, vec![chat.skill.clone(), code.skill.clone()]);
        q.pop(&chat.skill);
        assert!(!q.has_waiting(&chat.skill));
        assert_eq!(q.skills_waiting(), vec![code.skill.clone()]);
        assert_eq!(q.peek(&code.skill), Some(code.id));
    }

    #[test]
    fn the_position_counts_higher_priorities_and_older_ids_of_the_same() {
        let mut q = Queues::default();
        let older = ticket("chat", 5);
        let me = ticket("chat", 5);
        let higher = ticket("chat", 7);
        let lower = ticket("chat", 1);
        let other_skill = ticket("code", 9);
        for t in [&me, &lower, &higher, &older, &other_skill] {
            q.enqueue(t);
        }
        assert_eq!(q.ahead_of(&me), 2, "the older id and the higher priority");
        assert_eq!(q.ahead_of(&higher), 0);
        assert_eq!(q.ahead_of(&lower), 3);
        assert_eq!(Queues::default().ahead_of(&me), 0);
    }

    #[test]
    fn a_backoff_is_due_at_its_time_and_not_before_earliest_first() {
        let mut q = Queues::default();
        let (a, b) = (TicketId::new(), TicketId::new());
        q.back_off(b, 200);
        q.back_off(a, 100);
        assert_eq!(q.next_due(99), None);
        assert_eq!(q.next_due(100), Some(a));
        assert_eq!(q.next_due(150), None);
        assert_eq!(q.next_due(1_000), Some(b));
        assert_eq!(q.next_due(1_000), None);
    }

    #[test]
    fn the_backoff_doubles_per_attempt_up_to_its_limit() {
        let (base, max) = (Duration::from_millis(200), Duration::from_secs(30));
        let delays: Vec<u128> = (0..=9)
            .map(|n| backoff_delay(base, max, n).as_millis())
            .collect();
        assert_eq!(
            delays,
            vec![
                200, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000
            ]
        );
        assert_eq!(backoff_delay(base, max, u32::MAX), max, "no overflow");
    }
}
