//! The bots the scheduler routes to: every bot it has known (a slot per bot,
//! by index, which never moves), which live bots offer each skill (a
//! drained, cordoned bot is live but offers none), how many
//! attempts each holds, and which bot holds which attempt (`outstanding`).
//!
//! It owns the choice of a bot ([`Roster::least_loaded`]) and the lane slots
//! that choice takes and gives back, and mirrors each bot's load and
//! liveness into the counters the facade reads. It must never touch a
//! ticket, a lane or a channel: what happens to the work a lost bot held is
//! the scheduler's call (`membership.rs`). Start at [`Roster::least_loaded`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::super::{BotHandle, Retired};
use crate::ticket::{BotId, Skill, TenantId, TicketId};

struct BotSlot {
    handle: BotHandle,
    in_flight: usize,
    live: bool,
}

/// Whether a queued ticket of a skill could be routed now, as far as the
/// bots go.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Room {
    /// No live bot offers the skill (or every one is drained).
    NoLiveBot,
    /// Every live bot with the skill holds as many attempts as it may.
    LanesFull {
        bots: usize,
    },
    Free,
}

pub(super) struct Roster {
    slots: Vec<BotSlot>,
    index: HashMap<BotId, usize>,
    /// Live bots per skill, drained ones aside. A skill some bot once offered keeps its (maybe
    /// empty) entry after the bots leave.
    by_skill: HashMap<Skill, Vec<usize>>,
    /// Per skill: where the next tie-break among equally loaded bots starts.
    next_bot: HashMap<Skill, usize>,
    /// (ticket, attempt) → the bot it was routed to and the ticket's tenant,
    /// until its first result (the tenant charges a ticket cancelled meanwhile).
    outstanding: HashMap<(TicketId, u32), (usize, TenantId)>,
    max_in_flight: usize,
    /// Bots the journal says are drained that have not registered since
    /// the controller started: each joins drained.
    /// By bot, with the node its drain was kept with.
    cordon_on_join: HashMap<BotId, Option<String>>,
    /// The nodes those drains named: known even once they are lifted, so
    /// a repeated uncordon of the node changes nothing rather than fail.
    nodes_from_journal: std::collections::HashSet<String>,
}

impl Roster {
    /// The bots the controller starts with, all live, none loaded; a bot
    /// takes at most `max_in_flight` attempts at a time.
    pub(super) fn new(handles: Vec<BotHandle>, max_in_flight: usize) -> Self {
        let mut by_skill: HashMap<Skill, Vec<usize>> = HashMap::new();
        let mut index = HashMap::new();
        for (i, b) in handles.iter().enumerate() {
            index.insert(b.id.clone(), i);
            for s in &b.skills {
                by_skill.entry(s.clone()).or_default().push(i);
            }
        }
        Self {
            slots: handles
                .into_iter()
                .map(|handle| BotSlot {
                    handle,
                    in_flight: 0,
                    live: true,
                })
                .collect(),
            index,
            by_skill,
            next_bot: HashMap::new(),
            outstanding: HashMap::new(),
            max_in_flight,
            cordon_on_join: HashMap::new(),
            nodes_from_journal: std::collections::HashSet::new(),
        }
    }

    /// The drains the journal kept, after a restart: a bot the roster
    /// starts with is drained now, whatever skills that leaves without a
    /// bot (it was so before the restart); one that registers later joins
    /// drained.
    pub(super) fn restore_cordons(
        &mut self,
        bots: impl IntoIterator<Item = (BotId, Option<String>)>,
    ) {
        let mut known = Vec::new();
        for (bot, node) in bots {
            tracing::info!(%bot, "drained before the restart: routed nothing until uncordoned");
            match self.index.get(&bot) {
                Some(&idx) => known.push(idx),
                None => {
                    self.nodes_from_journal.extend(node.clone());
                    self.cordon_on_join.insert(bot, node);
                }
            }
        }
        self.mark_cordoned(&known);
    }

    /// How many bots the roster has known, live or not.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn handle(&self, bot: usize) -> &BotHandle {
        &self.slots[bot].handle
    }

    /// Every bot known, live or not, for the facade's view.
    pub(super) fn handles(&self) -> Vec<BotHandle> {
        self.slots.iter().map(|b| b.handle.clone()).collect()
    }

    pub(super) fn index_of(&self, id: &BotId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The bot with the fewest attempts in flight among the live bots with
    /// `skill`, below the per-bot limit; ties go round-robin so equal bots
    /// share the work.
    pub(super) fn least_loaded(&mut self, skill: &Skill) -> Option<usize> {
        let candidates = self.by_skill.get(skill)?;
        let n = candidates.len();
        let start = self.next_bot.get(skill).copied().unwrap_or(0) % n.max(1);
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let pos = (start + k) % n;
            let load = self.slots[candidates[pos]].in_flight;
            if load < self.max_in_flight && best.is_none_or(|(_, l)| load < l) {
                best = Some((pos, load));
            }
        }
        let (pos, _) = best?;
        self.next_bot.insert(skill.clone(), pos + 1);
        Some(candidates[pos])
    }

    /// Whether a skill some bot once offered is still known. A skill never
    /// offered has nothing to route to, and its queue is left untouched.
    pub(super) fn knows_skill(&self, skill: &Skill) -> bool {
        self.by_skill.contains_key(skill)
    }

    pub(super) fn room_for(&self, skill: &Skill) -> Room {
        let candidates = self
            .by_skill
            .get(skill)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if candidates.is_empty() {
            Room::NoLiveBot
        } else if candidates
            .iter()
            .all(|&b| self.slots[b].in_flight >= self.max_in_flight)
        {
            Room::LanesFull {
                bots: candidates.len(),
            }
        } else {
            Room::Free
        }
    }

    /// `bot` takes attempt `attempt` of `ticket`: one of its lane slots is
    /// taken until [`Self::release`].
    pub(super) fn hold(&mut self, ticket: TicketId, attempt: u32, bot: usize, tenant: TenantId) {
        self.outstanding.insert((ticket, attempt), (bot, tenant));
        self.load(bot, 1);
    }

    /// Which bot holds the attempt, and the ticket's tenant.
    pub(super) fn holder(&self, ticket: TicketId, attempt: u32) -> Option<&(usize, TenantId)> {
        self.outstanding.get(&(ticket, attempt))
    }

    /// Forgets the attempt and gives its bot's lane slot back; `None` when
    /// no bot held it (already released).
    pub(super) fn release(&mut self, ticket: TicketId, attempt: u32) -> Option<(usize, TenantId)> {
        let held = self.outstanding.remove(&(ticket, attempt))?;
        self.load(held.0, -1);
        Some(held)
    }

    /// Gives back the lane slot of an entry `bot`'s lane refused, and
    /// forgets the attempt, whether or not it was still held.
    pub(super) fn release_refused(&mut self, bot: usize, ticket: TicketId, attempt: u32) {
        self.outstanding.remove(&(ticket, attempt));
        self.load(bot, -1);
    }

    /// Releases every attempt held by one of `bots`, and says which they were.
    pub(super) fn release_all_on(&mut self, bots: &[usize]) -> Vec<(TicketId, u32)> {
        let held: Vec<(TicketId, u32)> = self
            .outstanding
            .iter()
            .filter(|(_, (b, _))| bots.contains(b))
            .map(|(&key, _)| key)
            .collect();
        for &(ticket, attempt) in &held {
            self.release(ticket, attempt);
        }
        held
    }

    /// Whether `bot` holds attempt `attempt` of `ticket` (which the caller
    /// knows to be in flight): the ticket's tenant if it does, or why not.
    pub(super) fn check_holder(
        &self,
        ticket: TicketId,
        attempt: u32,
        bot: &BotId,
    ) -> Result<TenantId, String> {
        match self.outstanding.get(&(ticket, attempt)) {
            Some((i, tenant)) if self.slots.get(*i).is_some_and(|b| &b.handle.id == bot) => {
                Ok(tenant.clone())
            }
            Some((i, _)) => Err(format!(
                "ticket {ticket} attempt {attempt} is held by {}, not {bot}",
                self.slots
                    .get(*i)
                    .map_or("another bot", |b| b.handle.id.as_str())
            )),
            None => Err(format!(
                "ticket {ticket} attempt {attempt} is not in flight"
            )),
        }
    }

    /// A bot registering, or coming back: it joins routing for its skills
    /// (a drained one stays drained, out of routing).
    /// False (and nothing changes) when it is live already.
    pub(super) fn join(&mut self, handle: BotHandle) -> bool {
        let idx = match self.index.get(&handle.id) {
            Some(&i) => {
                if self.slots[i].live {
                    return false;
                }
                // A cordoned bot that comes back stays cordoned.
                let cordoned = self.cordoned(i);
                handle.counters.cordoned.store(cordoned, Ordering::Relaxed);
                self.slots[i].live = true;
                self.slots[i].handle = handle.clone();
                i
            }
            None => {
                let i = self.slots.len();
                if self.cordon_on_join.remove(&handle.id).is_some() {
                    handle.counters.cordoned.store(true, Ordering::Relaxed);
                }
                self.index.insert(handle.id.clone(), i);
                self.slots.push(BotSlot {
                    handle: handle.clone(),
                    in_flight: 0,
                    live: true,
                });
                i
            }
        };
        handle.counters.live.store(true, Ordering::Relaxed);
        if self.cordoned(idx) {
            return true;
        }
        for s in &handle.skills {
            let list = self.by_skill.entry(s.clone()).or_default();
            if !list.contains(&idx) {
                list.push(idx);
            }
        }
        true
    }

    /// Marks every bot of `node` retired, if none is live and one is not
    /// retired yet.
    pub(super) fn retire_node(&mut self, node: &str) -> Retired {
        let of: Vec<&BotSlot> = self
            .slots
            .iter()
            .filter(|s| s.handle.node.as_deref() == Some(node))
            .collect();
        let live: Vec<BotId> = of
            .iter()
            .filter(|s| s.live)
            .map(|s| s.handle.id.clone())
            .collect();
        if !live.is_empty() {
            return Retired::Live(live);
        }
        let fresh: Vec<BotId> = of
            .iter()
            .filter(|s| !s.handle.counters.retired.load(Ordering::Relaxed))
            .map(|s| s.handle.id.clone())
            .collect();
        if of.is_empty() {
            return Retired::Unknown;
        }
        if fresh.is_empty() {
            return Retired::Already;
        }
        for s in of {
            s.handle.counters.retired.store(true, Ordering::Relaxed);
            // One that registers again joins as new, not drained.
            s.handle.counters.cordoned.store(false, Ordering::Relaxed);
        }
        Retired::Forgot(fresh)
    }

    /// Takes a live bot out of routing while it stays live (Kubernetes'
    /// cordon): it finishes what it holds and is given nothing more until
    /// [`Self::uncordon`]. The skills it would leave with no bot to route
    /// to are refused (nothing changes), as a drain that would strand them.
    pub(super) fn cordon(&mut self, bot: usize) -> Result<(), Vec<Skill>> {
        self.cordon_all(&[bot])
    }

    /// Cordons `bots` together (a node's): refused whole, nothing
    /// changed, when they are all that is left of a skill.
    pub(super) fn cordon_all(&mut self, bots: &[usize]) -> Result<(), Vec<Skill>> {
        let mut stranded: Vec<Skill> = bots
            .iter()
            .flat_map(|&b| &self.slots[b].handle.skills)
            .filter(|s| {
                self.by_skill
                    .get(*s)
                    .is_some_and(|list| list.iter().all(|i| bots.contains(i)))
            })
            .cloned()
            .collect();
        stranded.sort();
        stranded.dedup();
        if !stranded.is_empty() {
            return Err(stranded);
        }
        self.mark_cordoned(bots);
        Ok(())
    }

    /// Cordons `bots`: marked so, and taken out of every skill's list.
    fn mark_cordoned(&mut self, bots: &[usize]) {
        for &bot in bots {
            self.slots[bot]
                .handle
                .counters
                .cordoned
                .store(true, Ordering::Relaxed);
        }
        for list in self.by_skill.values_mut() {
            list.retain(|i| !bots.contains(i));
        }
    }

    /// The bots of `node` not retired (only the live ones, if `live`).
    pub(super) fn of_node(&self, node: &str, live: bool) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                (s.live || !live)
                    && s.handle.node.as_deref() == Some(node)
                    && !s.handle.counters.retired.load(Ordering::Relaxed)
            })
            .collect()
    }

    /// Whether any bot, live or not, ever came from `node`, or the
    /// journal's drains named it at start.
    pub(super) fn knows_node(&self, node: &str) -> bool {
        self.nodes_from_journal.contains(node)
            || self
                .slots
                .iter()
                .any(|s| s.handle.node.as_deref() == Some(node))
    }

    /// How many live bots offering `skill` are drained.
    pub(super) fn drained_with(&self, skill: &Skill) -> usize {
        self.slots
            .iter()
            .filter(|s| s.live && s.handle.skills.contains(skill))
            .filter(|s| s.handle.counters.cordoned.load(Ordering::Relaxed))
            .count()
    }

    /// Whether the bot is cordoned.
    pub(super) fn cordoned(&self, bot: usize) -> bool {
        self.slots[bot]
            .handle
            .counters
            .cordoned
            .load(Ordering::Relaxed)
    }

    /// Forgets the drain a bot restored from the journal was to take when
    /// it registers; whether there was one.
    pub(super) fn forget_cordon_on_join(&mut self, bot: &BotId) -> bool {
        self.cordon_on_join.remove(bot).is_some()
    }

    /// Forgets the drains the bots of `node` restored from the journal
    /// were to take when they register: those bots.
    pub(super) fn forget_node_cordons_on_join(&mut self, node: &str) -> Vec<BotId> {
        let bots: Vec<BotId> = self
            .cordon_on_join
            .iter()
            .filter(|(_, n)| n.as_deref() == Some(node))
            .map(|(b, _)| b.clone())
            .collect();
        for b in &bots {
            self.cordon_on_join.remove(b);
        }
        bots
    }

    /// Lets a cordoned bot take work again (once live). False when it was
    /// not cordoned.
    pub(super) fn uncordon(&mut self, bot: usize) -> bool {
        if !self.cordoned(bot) {
            return false;
        }
        let slot = &self.slots[bot];
        slot.handle
            .counters
            .cordoned
            .store(false, Ordering::Relaxed);
        if slot.live {
            for s in &slot.handle.skills {
                let list = self.by_skill.entry(s.clone()).or_default();
                if !list.contains(&bot) {
                    list.push(bot);
                }
            }
        }
        true
    }

    /// A bot lost: it leaves routing, keeping its slot (and what it holds,
    /// for the caller to release). Its index, or `None` when it was not live.
    pub(super) fn leave(&mut self, id: &BotId) -> Option<usize> {
        let idx = self.index_of(id)?;
        if !self.slots[idx].live {
            return None;
        }
        self.slots[idx].live = false;
        self.slots[idx]
            .handle
            .counters
            .live
            .store(false, Ordering::Relaxed);
        for list in self.by_skill.values_mut() {
            list.retain(|&i| i != idx);
        }
        Some(idx)
    }

    fn load(&mut self, bot: usize, delta: isize) {
        let slot = &mut self.slots[bot];
        slot.in_flight = slot.in_flight.saturating_add_signed(delta);
        slot.handle
            .counters
            .in_flight
            .store(slot.in_flight as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::controller::BotCounters;
    use crate::lane::Lane;
    use crate::lane::local::LocalLane;
    use crate::ticket::ModelId;
    use std::sync::Arc;

    /// A bot offering `skills`, on an in-process lane.
    pub(in super::super) fn bot(id: &str, skills: &[&str]) -> BotHandle {
        let id = BotId::parse(id).unwrap();
        BotHandle {
            id: id.clone(),
            skills: skills.iter().map(|s| Skill::parse(s).unwrap()).collect(),
            model: ModelId::parse("builtin").unwrap(),
            node: None,
            lane: Arc::new(LocalLane::new(id, 16)) as Arc<dyn Lane>,
            counters: BotCounters::live(),
        }
    }

    fn skill(s: &str) -> Skill {
        Skill::parse(s).unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::default_tenant()
    }

    fn in_flight(r: &Roster, bot: usize) -> u64 {
        r.handle(bot).counters.in_flight.load(Ordering::Relaxed)
    }

    #[test]
    fn the_least_loaded_bot_with_the_skill_is_chosen_and_ties_take_turns() {
        let mut r = Roster::new(
            vec![
                bot("a", &["chat"]),
                bot("b", &["chat", "code"]),
                bot("c", &["code"]),
            ],
            2,
        );
        let chat = skill("chat");
        // Equal bots take turns.
        assert_eq!(r.least_loaded(&chat), Some(0));
        assert_eq!(r.least_loaded(&chat), Some(1));
        assert_eq!(r.least_loaded(&chat), Some(0));
        // A loaded bot is passed over for an idle one.
        r.hold(TicketId::new(), 1, 0, tenant());
        assert_eq!(r.least_loaded(&chat), Some(1));
        assert_eq!(r.least_loaded(&chat), Some(1));
        assert_eq!(r.least_loaded(&skill("code")), Some(1));
        assert_eq!(r.least_loaded(&skill("none")), None);
    }

    #[test]
    fn a_bot_at_its_limit_takes_nothing_more() {
        let mut r = Roster::new(vec![bot("a", &["chat"])], 2);
        let chat = skill("chat");
        let (t1, t2) = (TicketId::new(), TicketId::new());
        assert_eq!(r.room_for(&chat), Room::Free);
        r.hold(t1, 1, 0, tenant());
        r.hold(t2, 1, 0, tenant());
        assert_eq!(in_flight(&r, 0), 2, "the facade sees the load");
        assert_eq!(r.least_loaded(&chat), None);
        assert_eq!(r.room_for(&chat), Room::LanesFull { bots: 1 });
        assert_eq!(r.release(t1, 1), Some((0, tenant())));
        assert_eq!(r.release(t1, 1), None, "released once");
        assert_eq!(in_flight(&r, 0), 1);
        assert_eq!(r.least_loaded(&chat), Some(0));
        assert_eq!(r.room_for(&skill("code")), Room::NoLiveBot);
    }

    #[test]
    fn a_node_is_retired_only_once_all_its_bots_are_lost_and_comes_back_as_new() {
        let on = |id: &str, node: &str| BotHandle {
            node: Some(node.into()),
            ..bot(id, &["chat"])
        };
        let mut r = Roster::new(
            vec![on("n1-a", "n1"), on("n2-a", "n2"), on("n2-b", "n2")],
            4,
        );
        let id = |s: &str| BotId::parse(s).unwrap();
        assert_eq!(
            r.retire_node("n2"),
            Retired::Live(vec![id("n2-a"), id("n2-b")])
        );
        r.leave(&id("n2-a"));
        assert_eq!(
            r.retire_node("n2"),
            Retired::Live(vec![id("n2-b")]),
            "one still answers"
        );
        r.leave(&id("n2-b"));
        assert_eq!(
            r.retire_node("n2"),
            Retired::Forgot(vec![id("n2-a"), id("n2-b")])
        );
        assert_eq!(r.retire_node("n2"), Retired::Already);
        assert_eq!(r.retire_node("n9"), Retired::Unknown, "never known");
        let retired = |r: &Roster, i: usize| r.handle(i).counters.retired.load(Ordering::Relaxed);
        assert!(retired(&r, 1) && retired(&r, 2) && !retired(&r, 0));
        // A bot of it that registers again is a new bot, not a retired one.
        assert!(r.join(on("n2-a", "n2")));
        assert!(!retired(&r, 1));
        r.leave(&id("n1-a"));
        assert_eq!(r.least_loaded(&skill("chat")), Some(1), "it takes work");
    }

    #[test]
    fn a_drained_bot_is_routed_nothing_until_uncordoned_even_after_a_rejoin() {
        let mut r = Roster::new(vec![bot("a", &["chat"]), bot("b", &["chat", "tool"])], 4);
        let (chat, tool) = (skill("chat"), skill("tool"));
        assert_eq!(r.cordon(1), Err(vec![tool.clone()]), "b is tool's only bot");
        assert!(!r.cordoned(1), "a refusal changes nothing");
        assert_eq!(r.cordon(0), Ok(()));
        for _ in 0..3 {
            assert_eq!(r.least_loaded(&chat), Some(1));
        }
        assert_eq!(r.drained_with(&chat), 1);
        // Lost and back (a node restarted): still drained.
        r.leave(&BotId::parse("a").unwrap());
        assert!(r.join(bot("a", &["chat"])));
        assert!(r.cordoned(0));
        assert_eq!(r.cordon(1), Err(vec![chat.clone(), tool.clone()]));
        assert!(r.uncordon(0));
        assert!(!r.uncordon(0), "once");
        assert_eq!(r.drained_with(&chat), 0);
        let picks: Vec<_> = (0..2).filter_map(|_| r.least_loaded(&chat)).collect();
        assert!(picks.contains(&0), "routed again: {picks:?}");
    }

    #[test]
    fn a_lost_bot_leaves_routing_and_its_attempts_are_released() {
        let mut r = Roster::new(vec![bot("a", &["chat"]), bot("b", &["chat"])], 4);
        let chat = skill("chat");
        let (on_a, on_b) = (TicketId::new(), TicketId::new());
        r.hold(on_a, 1, 0, tenant());
        r.hold(on_b, 3, 1, tenant());
        let a = BotId::parse("a").unwrap();
        assert_eq!(r.leave(&a), Some(0));
        assert_eq!(r.leave(&a), None, "already gone");
        assert!(!r.handle(0).counters.live.load(Ordering::Relaxed));
        assert_eq!(r.release_all_on(&[0]), vec![(on_a, 1)]);
        assert_eq!(in_flight(&r, 0), 0);
        assert!(r.holder(on_b, 3).is_some(), "b's attempt is b's");
        for _ in 0..3 {
            assert_eq!(r.least_loaded(&chat), Some(1));
        }
        assert!(r.knows_skill(&chat));
        // Back with a new handle: the same slot, live again.
        assert!(r.join(bot("a", &["chat"])));
        assert!(!r.join(bot("a", &["chat"])), "already live");
        assert_eq!(r.index_of(&a), Some(0));
        assert_eq!(r.least_loaded(&chat), Some(0));
        // A new bot gets the next slot and its skills.
        assert!(r.join(bot("c", &["code"])));
        assert_eq!(r.len(), 3);
        assert_eq!(r.least_loaded(&skill("code")), Some(2));
        // Every bot known stays in the facade's view.
        let ids: Vec<String> = r.handles().iter().map(|h| h.id.to_string()).collect();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_skill_whose_bots_all_left_is_still_known_one_never_offered_is_not() {
        let mut r = Roster::new(vec![bot("a", &["chat"])], 4);
        r.leave(&BotId::parse("a").unwrap());
        assert!(r.knows_skill(&skill("chat")));
        assert_eq!(r.room_for(&skill("chat")), Room::NoLiveBot);
        assert_eq!(r.least_loaded(&skill("chat")), None);
        assert!(!r.knows_skill(&skill("code")));
    }

    #[test]
    fn only_the_bot_holding_an_attempt_may_act_for_it() {
        let mut r = Roster::new(vec![bot("a", &["chat"]), bot("b", &["chat"])], 4);
        let t = TicketId::new();
        r.hold(t, 2, 0, tenant());
        let (a, b) = (BotId::parse("a").unwrap(), BotId::parse("b").unwrap());
        assert_eq!(r.check_holder(t, 2, &a), Ok(tenant()));
        let not_b = r.check_holder(t, 2, &b).unwrap_err();
        assert!(not_b.contains("held by a, not b"), "{not_b}");
        let stale = r.check_holder(t, 1, &a).unwrap_err();
        assert!(stale.contains("is not in flight"), "{stale}");
    }

    #[test]
    fn a_refused_entry_gives_its_slot_back_on_the_bot_that_refused_it() {
        let mut r = Roster::new(vec![bot("a", &["chat"])], 4);
        let t = TicketId::new();
        r.hold(t, 1, 0, tenant());
        r.release_refused(0, t, 1);
        assert_eq!(in_flight(&r, 0), 0);
        assert!(r.holder(t, 1).is_none());
        r.release_refused(0, t, 1);
        assert_eq!(in_flight(&r, 0), 0, "the load never goes below zero");
    }
}
