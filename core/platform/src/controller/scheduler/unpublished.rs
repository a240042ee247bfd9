//! Routed tickets whose lane publish failed (Redis restarting, a link
//! cut): held, not taken as sent, and published again once a backoff has
//! passed (50 ms, doubling to 2 s, back to 50 ms once a publish goes
//! through). A plain struct: the scheduler rebuilds each entry from its
//! live ticket when it is due, so one that moved on meanwhile (cancelled,
//! re-driven, its bot lost) is dropped there, and it requeues one held
//! past [`REPUBLISH_GIVE_UP`] for any bot.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

use crate::ticket::TicketId;

/// The first wait before a failed publish is tried again, and the longest
/// (it doubles between).
const REPUBLISH_FIRST: Duration = Duration::from_millis(50);
const REPUBLISH_MAX: Duration = Duration::from_secs(2);
/// How long a ticket's publish may keep failing before it goes back to
/// the queue as a new attempt (its lane may be the one that fails).
pub(super) const REPUBLISH_GIVE_UP: Duration = Duration::from_secs(30);

/// What failed to publish: (bot, ticket, attempt), since when each has
/// failed, and when the next try is due.
#[derive(Debug, Default)]
pub(crate) struct Unpublished {
    held: Vec<(usize, TicketId, u32)>,
    since: HashMap<(TicketId, u32), Instant>,
    due: Option<Instant>,
    delay: Duration,
}

impl Unpublished {
    /// Holds what a publish to `bot` failed to send, and backs off.
    pub(super) fn failed(&mut self, bot: usize, sent: Vec<(TicketId, u32)>, now: Instant) {
        for (t, a) in sent {
            self.since.entry((t, a)).or_insert(now);
            self.held.push((bot, t, a));
        }
        self.delay = (self.delay * 2).clamp(REPUBLISH_FIRST, REPUBLISH_MAX);
        self.due = Some(now + self.delay);
    }

    /// A publish of `sent` went through: they are forgotten, and once
    /// nothing is held the next failure starts from the first wait.
    pub(super) fn succeeded(&mut self, sent: &[(TicketId, u32)]) {
        if !self.since.is_empty() {
            for key in sent {
                self.since.remove(key);
            }
        }
        if self.held.is_empty() {
            self.delay = Duration::ZERO;
        }
    }

    /// What is due to be sent again now (nothing before its backoff ends),
    /// each with the time it first failed; each is forgotten unless
    /// [`Self::hold_again`] keeps its time for the publish it goes into.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<(usize, TicketId, u32, Instant)> {
        match self.due {
            Some(at) if now >= at => {
                self.due = None;
                std::mem::take(&mut self.held)
                    .into_iter()
                    .map(|(b, t, a)| (b, t, a, self.since.remove(&(t, a)).unwrap_or(now)))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Keeps the time `ticket`'s `attempt` first failed while it is tried
    /// again: a failure then counts from it.
    pub(super) fn hold_again(&mut self, ticket: TicketId, attempt: u32, since: Instant) {
        self.since.insert((ticket, attempt), since);
    }

    /// Takes out what was held for `bot` (a drained bot's never-sent work).
    pub(super) fn take_for(&mut self, bot: usize) -> Vec<(TicketId, u32)> {
        let (of, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|&(b, _, _)| b == bot);
        self.held = rest;
        of.into_iter()
            .map(|(_, t, a)| {
                self.since.remove(&(t, a));
                (t, a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_backs_off_doubling_and_keeps_when_it_first_failed() {
        let mut u = Unpublished::default();
        let (t0, a, b) = (Instant::now(), TicketId::new(), TicketId::new());
        u.failed(0, vec![(a, 1), (b, 1)], t0);
        assert!(u.take_due(t0).is_empty(), "not before its backoff");
        let due = u.take_due(t0 + REPUBLISH_FIRST);
        assert_eq!(due.len(), 2);
        assert!(
            due.iter()
                .all(|&(bot, _, _, since)| bot == 0 && since == t0)
        );
        // Tried again and failed again: it still counts from t0, and the
        // wait doubles.
        let t1 = t0 + REPUBLISH_FIRST;
        u.hold_again(a, 1, t0);
        u.failed(0, vec![(a, 1)], t1);
        assert!(u.take_due(t1 + REPUBLISH_FIRST).is_empty());
        let due = u.take_due(t1 + REPUBLISH_FIRST * 2);
        assert_eq!(due, vec![(0, a, 1, t0)]);
        // Through at last: forgotten, and the next failure waits the least.
        u.hold_again(a, 1, t0);
        u.succeeded(&[(a, 1)]);
        assert!(u.since.is_empty());
        u.failed(1, vec![(b, 2)], t1);
        assert_eq!(u.take_due(t1 + REPUBLISH_FIRST).len(), 1);
    }

    #[test]
    fn a_drained_bot_takes_back_only_its_own() {
        let mut u = Unpublished::default();
        let (a, b) = (TicketId::new(), TicketId::new());
        let now = Instant::now();
        u.failed(0, vec![(a, 1)], now);
        u.failed(1, vec![(b, 1)], now);
        assert_eq!(u.take_for(1), vec![(b, 1)]);
        assert_eq!(u.since.len(), 1);
        let due = u.take_due(now + REPUBLISH_MAX);
        assert_eq!(due, vec![(0, a, 1, now)]);
    }
}
