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
//!
//! What changed is said in parts of at most [`PART`] bots: a fleet of
//! 10,000 whose every bot moved in a second is three megabytes of JSON,
//! which one message would make the viewer parse in one long task (a
//! dropped frame each second); parts let it draw between them, and each
//! part holds whole bots, so one folded before the next arrives is never
//! false. The bots gone go with the last part. The whole list goes whole,
//! once per connection: it replaces, so a part of it would be a fleet cut
//! short.

use std::collections::{HashMap, HashSet};

use super::{BotView, CoreEvent};
use crate::ticket::BotId;

/// The most bots one event carries (about 150 KB of JSON).
pub const PART: usize = 500;

/// What one viewer has been told of the bots.
#[derive(Debug, Default)]
pub struct BotFeed {
    sent: HashMap<BotId, BotView>,
    /// Whether the whole list has gone out once.
    spoke: bool,
}

impl BotFeed {
    /// The events to send for `event`: every other event as it is, the
    /// first whole list as it is, a later one as what changed in it (none
    /// when nothing did) in parts of at most [`PART`] bots.
    pub fn next(&mut self, event: CoreEvent) -> Vec<CoreEvent> {
        let CoreEvent::BotsUpdated { bots } = event else {
            return vec![event];
        };
        if !self.spoke {
            self.spoke = true;
            self.sent = bots.iter().map(|b| (b.id.clone(), b.clone())).collect();
            return vec![CoreEvent::BotsUpdated { bots }];
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
        parts(changed, gone)
    }
}

/// `changed` as `BotsChanged` events of at most [`PART`] bots each, `gone`
/// with the last; none when both are empty.
fn parts(changed: Vec<BotView>, gone: Vec<BotId>) -> Vec<CoreEvent> {
    if changed.is_empty() && gone.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<CoreEvent> = Vec::with_capacity(changed.len().div_ceil(PART).max(1));
    let mut changed = changed.into_iter().peekable();
    while changed.peek().is_some() {
        out.push(CoreEvent::BotsChanged {
            changed: changed.by_ref().take(PART).collect(),
            gone: Vec::new(),
        });
    }
    match out.last_mut() {
        Some(CoreEvent::BotsChanged { gone: last, .. }) => *last = gone,
        _ => out.push(CoreEvent::BotsChanged {
            changed: Vec::new(),
            gone,
        }),
    }
    out
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
        assert_eq!(feed.next(first.clone()), vec![first]);
        assert_eq!(
            feed.next(updated(&[a.clone(), b.clone()])),
            vec![],
            "nothing moved"
        );
        let busy = bot("b", 3);
        assert_eq!(
            feed.next(updated(&[a.clone(), busy.clone()])),
            vec![CoreEvent::BotsChanged {
                changed: vec![busy.clone()],
                gone: vec![],
            }]
        );
        let c = bot("c", 0);
        assert_eq!(
            feed.next(updated(&[busy.clone(), c.clone()])),
            vec![CoreEvent::BotsChanged {
                changed: vec![c],
                gone: vec![a.id.clone()],
            }]
        );
        assert_eq!(
            feed.next(updated(std::slice::from_ref(&busy))),
            vec![CoreEvent::BotsChanged {
                changed: vec![],
                gone: vec![BotId::parse("c").unwrap()],
            }],
            "only a bot gone"
        );
    }

    #[test]
    fn other_events_pass_as_they_are_and_a_lag_loses_no_change() {
        let mut feed = BotFeed::default();
        let lag = CoreEvent::Lagged { missed: 3 };
        assert_eq!(feed.next(lag.clone()), vec![lag]);
        feed.next(updated(&[bot("a", 0)]));
        // The controller's list of a moment the viewer missed: the next one
        // is compared with what was sent, so the move still goes out.
        let moved = bot("a", 1);
        assert_eq!(
            feed.next(updated(std::slice::from_ref(&moved))),
            vec![CoreEvent::BotsChanged {
                changed: vec![moved],
                gone: vec![],
            }]
        );
    }

    /// The ids a `BotsChanged` carries, changed and gone.
    fn ids(event: &CoreEvent) -> (Vec<String>, Vec<String>) {
        match event {
            CoreEvent::BotsChanged { changed, gone } => (
                changed.iter().map(|b| b.id.to_string()).collect(),
                gone.iter().map(ToString::to_string).collect(),
            ),
            other => panic!("not what changed: {other:?}"),
        }
    }

    #[test]
    fn a_large_fleets_moves_are_said_in_parts_the_gone_last() {
        let mut feed = BotFeed::default();
        let fleet: Vec<BotView> = (0..PART * 2 + 1)
            .map(|i| bot(&format!("b{i:04}"), 0))
            .collect();
        // The whole list goes whole: a part of it would replace the fleet
        // with a piece of it.
        assert_eq!(feed.next(updated(&fleet)), vec![updated(&fleet)]);

        // Every bot moved but the first, which left: the moves in parts,
        // the one gone with the last.
        let moved: Vec<BotView> = fleet[1..]
            .iter()
            .map(|b| BotView {
                in_flight: 1,
                ..b.clone()
            })
            .collect();
        let next: Vec<_> = feed.next(updated(&moved)).iter().map(ids).collect();
        assert_eq!(
            next.iter().map(|(c, _)| c.len()).collect::<Vec<_>>(),
            [PART, PART]
        );
        let said: Vec<String> = next.iter().flat_map(|(c, _)| c.clone()).collect();
        assert_eq!(
            said,
            moved.iter().map(|b| b.id.to_string()).collect::<Vec<_>>(),
            "in the fleet's order"
        );
        assert!(next[0].1.is_empty());
        assert_eq!(next[1].1, ["b0000"]);
    }

    #[test]
    fn an_empty_fleet_is_still_said_whole_first() {
        let mut feed = BotFeed::default();
        assert_eq!(feed.next(updated(&[])), vec![updated(&[])]);
        assert_eq!(feed.next(updated(&[])), vec![]);
    }
}
