//! One viewer's feed of the bots: changes, not the whole fleet each second.
//!
//! The controller publishes every bot once a second (`BotsUpdated`), which
//! its own watchers read whole. A surface (a WebSocket, the desktop
//! window) forwards the controller's events through a [`BotFeed`], which
//! turns each whole list after its first into `BotsChanged`: the bots
//! that are new or whose figures moved since this feed last said them,
//! and those gone. The first goes whole (`BotsUpdated`), so a viewer that
//! connects, or connects again, replaces what it held; a list where
//! nothing moved says nothing. The feed remembers what it sent, not what
//! the viewer saw, so an event the controller's channel dropped
//! (`Lagged`) loses nothing: the next list is compared with what was
//! sent.

use std::collections::{HashMap, HashSet};

use super::{BotView, CoreEvent};
use crate::ticket::BotId;

/// What one viewer has been told of the bots.
#[derive(Debug, Default)]
pub struct BotFeed {
    sent: HashMap<BotId, BotView>,
    /// Whether the whole list has gone out once.
    spoke: bool,
}

impl BotFeed {
    /// The event to send for `event`: every other event as it is, the
    /// first whole list as it is, a later one as what changed in it
    /// (`None` when nothing did).
    pub fn next(&mut self, event: CoreEvent) -> Option<CoreEvent> {
        let CoreEvent::BotsUpdated { bots } = event else {
            return Some(event);
        };
        if !self.spoke {
            self.spoke = true;
            self.sent = bots.iter().map(|b| (b.id.clone(), b.clone())).collect();
            return Some(CoreEvent::BotsUpdated { bots });
        }
        let listed: HashSet<&BotId> = bots.iter().map(|b| &b.id).collect();
        let mut gone: Vec<BotId> = self
            .sent
            .keys()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect();
        gone.sort();
        for id in &gone {
            self.sent.remove(id);
        }
        let mut changed = Vec::new();
        for b in bots {
            if self.sent.get(&b.id) != Some(&b) {
                self.sent.insert(b.id.clone(), b.clone());
                changed.push(b);
            }
        }
        (!changed.is_empty() || !gone.is_empty())
            .then_some(CoreEvent::BotsChanged { changed, gone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Skill;

    fn bot(id: &str, in_flight: u32) -> BotView {
        BotView {
            id: BotId::parse(id).unwrap(),
            skills: vec![Skill::parse("chat").unwrap()],
            model: crate::ticket::ModelId::parse("builtin").unwrap(),
            node: None,
            live: true,
            cordoned: false,
            in_flight,
            succeeded: 0,
            failed: 0,
            attempt_ms: None,
            lane: None,
        }
    }

    fn updated(bots: &[BotView]) -> CoreEvent {
        CoreEvent::BotsUpdated {
            bots: bots.to_vec(),
        }
    }

    #[test]
    fn the_first_list_goes_whole_then_only_what_moved() {
        let mut feed = BotFeed::default();
        let (a, b) = (bot("a", 0), bot("b", 0));
        let first = updated(&[a.clone(), b.clone()]);
        assert_eq!(feed.next(first.clone()), Some(first));
        assert_eq!(
            feed.next(updated(&[a.clone(), b.clone()])),
            None,
            "nothing moved"
        );
        let busy = bot("b", 3);
        assert_eq!(
            feed.next(updated(&[a.clone(), busy.clone()])),
            Some(CoreEvent::BotsChanged {
                changed: vec![busy.clone()],
                gone: vec![],
            })
        );
        let c = bot("c", 0);
        assert_eq!(
            feed.next(updated(&[busy.clone(), c.clone()])),
            Some(CoreEvent::BotsChanged {
                changed: vec![c],
                gone: vec![a.id.clone()],
            })
        );
    }

    #[test]
    fn other_events_pass_as_they_are_and_a_lag_loses_no_change() {
        let mut feed = BotFeed::default();
        let lag = CoreEvent::Lagged { missed: 3 };
        assert_eq!(feed.next(lag.clone()), Some(lag));
        feed.next(updated(&[bot("a", 0)]));
        // The controller's list of a moment the viewer missed: the next one
        // is compared with what was sent, so the move still goes out.
        let moved = bot("a", 1);
        assert_eq!(
            feed.next(updated(std::slice::from_ref(&moved))),
            Some(CoreEvent::BotsChanged {
                changed: vec![moved],
                gone: vec![],
            })
        );
    }
}
