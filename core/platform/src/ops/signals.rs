//! The platform's own signals, turned into alerts and change events of
//! the `default` tenant (the operator's): a bot's lane lagging past
//! [`LAG_MS`], a lane whose figures cannot be read, a node whose bots
//! all left (its heartbeat lost), the lanes' Redis having lost its data
//! (`OshalLanesReset`, from the tickets re-driven, resolved a minute after
//! every lane reads again), and nodes joining and leaving as change
//! events. Read from the controller's `BotsUpdated` (about once a
//! second); only a change of what holds is recorded, so a steady fleet
//! writes nothing. What no longer holds is resolved, after a restart too
//! (the watcher starts from the alerts the journal says are firing); a
//! lost node an operator retired (`Controller::retired_nodes`) resolves
//! as retired, and is lost anew if it comes back and goes again.

use std::collections::{BTreeMap, BTreeSet};

use oshal_ops::alert::{Labels, Report, Severity, Signal, Source};
use oshal_ops::monitor::{ChangeEvent, ChangeKind, Input};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Operations;
use crate::controller::fleet::REDRIVE_REASON;
use crate::controller::{BotView, CoreEvent};
use crate::ticket::{TenantId, TicketState, Transition};

/// A lane whose oldest entry has waited this long is lagging.
pub const LAG_MS: u64 = 30_000;
/// A lagging lane is back once its oldest entry has waited less than this
/// (a lag hovering at the threshold does not flap).
pub const LAG_CLEAR_MS: u64 = LAG_MS / 2;

/// The alert of a node whose bots all left.
const NODE_LOST: &str = "OshalNodeLost";
/// The alert of a lane lagging past [`LAG_MS`].
const LANE_LAG: &str = "OshalLaneLag";
/// The alert of a lane whose figures cannot be read.
const LANE_UNKNOWN: &str = "OshalLaneUnknown";
/// The alert of the lanes' Redis having lost its data (tickets re-driven).
pub const LANES_RESET: &str = "OshalLanesReset";
/// How long a lanes reset stays firing once every lane reads again.
pub const RESET_HOLD_MS: i64 = 60_000;

/// An alert of the platform's: its name and labels.
type Key = (String, Labels);

pub(super) fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.insert("alertname".into(), name.into());
    l
}

/// What holds now of the bots, given what fired before (`was`): the
/// alerts that fire, with their summary and severity, and the nodes
/// present.
fn assess(
    bots: &[BotView],
    was: &BTreeMap<Key, (String, Severity)>,
) -> (BTreeMap<Key, (String, Severity)>, BTreeSet<String>) {
    let mut firing = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    for b in bots {
        let node = b.node.clone().unwrap_or_else(|| "local".into());
        if b.live {
            nodes.insert(node.clone());
        }
        let bot = b.id.to_string();
        match &b.lane {
            None => {
                let name = LANE_UNKNOWN;
                firing.insert(
                    (name.into(), labels(name, &[("bot", &bot), ("node", &node)])),
                    (
                        format!("the figures of bot {bot}'s lane cannot be read"),
                        Severity::Warning,
                    ),
                );
            }
            Some(l)
                if l.lag_ms >= LAG_MS
                    || (l.lag_ms >= LAG_CLEAR_MS
                        && was.contains_key(&(
                            LANE_LAG.to_owned(),
                            labels(LANE_LAG, &[("bot", &bot), ("node", &node)]),
                        ))) =>
            {
                let name = LANE_LAG;
                firing.insert(
                    (name.into(), labels(name, &[("bot", &bot), ("node", &node)])),
                    (
                        format!(
                            "bot {bot}'s lane lags {} s ({} waiting, {} pending)",
                            l.lag_ms / 1000,
                            l.depth,
                            l.pending
                        ),
                        Severity::Warning,
                    ),
                );
            }
            Some(_) => {}
        }
    }
    (firing, nodes)
}

pub(super) fn signal(
    name: &str,
    labels: Labels,
    report: Report,
    summary: String,
    sev: Severity,
    at: i64,
) -> Input {
    Input::Signal(Signal {
        source: Source::Platform,
        name: name.into(),
        report,
        severity: sev,
        labels,
        annotations: Labels::new(),
        summary,
        at_ms: at,
        dedup_key: None,
        link: None,
    })
}

/// An alert a watcher raises once per key (a tenant, a finding): its
/// name, the label the key goes under, and its severity.
pub(super) struct Keyed {
    pub name: &'static str,
    pub label: &'static str,
    pub severity: Severity,
}

impl Keyed {
    /// What changed, as the monitor's inputs: each key of `firing` not in
    /// `was` fires with its summary; each key of `was` that no longer
    /// `holds` resolves, saying `resolved(key)`.
    pub(super) fn changes(
        &self,
        was: &BTreeSet<String>,
        firing: &BTreeMap<String, String>,
        holds: impl Fn(&str) -> bool,
        resolved: impl Fn(&str) -> String,
        at: i64,
    ) -> Vec<Input> {
        let say = |key: &str, report, summary: String| {
            signal(
                self.name,
                labels(self.name, &[(self.label, key)]),
                report,
                summary,
                self.severity,
                at,
            )
        };
        let mut out: Vec<Input> = firing
            .iter()
            .filter(|(k, _)| !was.contains(*k))
            .map(|(k, summary)| say(k, Report::Firing, summary.clone()))
            .collect();
        out.extend(
            was.iter()
                .filter(|k| !holds(k))
                .map(|k| say(k, Report::Resolved, resolved(k))),
        );
        out
    }
}

/// What the watcher remembers between updates: the platform's alerts it
/// last saw firing, the nodes present (unknown before the first update)
/// and the nodes it reported lost.
#[derive(Debug, Clone, Default)]
struct Watch {
    firing: BTreeMap<Key, (String, Severity)>,
    nodes: Option<BTreeSet<String>>,
    lost: BTreeSet<String>,
    /// When the lanes were last reset, while `OshalLanesReset` fires.
    reset_at: Option<i64>,
}

impl Watch {
    /// Starts from what the journal says fires of its own alerts, so a
    /// restart resolves what no longer holds (and leaves the other
    /// watchers' alerts to them).
    fn resume(firing: Vec<oshal_ops::alert::Alert>) -> Self {
        let mut w = Watch::default();
        for a in firing {
            if a.name == NODE_LOST {
                w.lost.extend(a.labels.get("node").cloned());
            } else if a.name == LANES_RESET {
                w.reset_at = Some(a.last_ms);
            } else if a.name == LANE_LAG || a.name == LANE_UNKNOWN {
                w.firing
                    .insert((a.name.clone(), a.labels.clone()), (a.summary, a.severity));
            }
            // Any other alert is another watcher's.
        }
        w
    }

    /// The inputs one update of the bots leads to: only what changed.
    fn step(&mut self, bots: &[BotView], retired: &BTreeSet<String>, at: i64) -> Vec<Input> {
        let (now, present) = assess(bots, &self.firing);
        let mut inputs = Vec::new();
        for (key, (summary, sev)) in &now {
            if !self.firing.contains_key(key) {
                inputs.push(signal(
                    &key.0,
                    key.1.clone(),
                    Report::Firing,
                    summary.clone(),
                    *sev,
                    at,
                ));
            }
        }
        for (key, (summary, sev)) in &self.firing {
            if !now.contains_key(key) {
                inputs.push(signal(
                    &key.0,
                    key.1.clone(),
                    Report::Resolved,
                    summary.clone(),
                    *sev,
                    at,
                ));
            }
        }
        let change = |kind, n: &String| {
            Input::Change(ChangeEvent {
                kind,
                subject: n.clone(),
                detail: String::new(),
                count: 0,
                at_ms: at,
            })
        };
        if let Some(before) = &self.nodes {
            for n in present.difference(before) {
                inputs.push(change(ChangeKind::NodeJoined, n));
            }
            for n in before.difference(&present) {
                inputs.push(change(ChangeKind::NodeLeft, n));
                if self.lost.insert(n.clone()) {
                    inputs.push(signal(
                        NODE_LOST,
                        labels(NODE_LOST, &[("node", n)]),
                        Report::Firing,
                        format!("node {n}'s bots stopped their heartbeat"),
                        Severity::Critical,
                        at,
                    ));
                }
            }
        }
        // A lost node an operator retired is gone for good, not lost.
        let gone: Vec<String> = self.lost.intersection(retired).cloned().collect();
        for n in gone {
            self.lost.remove(&n);
            inputs.push(signal(
                NODE_LOST,
                labels(NODE_LOST, &[("node", &n)]),
                Report::Resolved,
                format!("node {n} was retired: its bots are no longer expected"),
                Severity::Critical,
                at,
            ));
        }
        let back: Vec<String> = self.lost.intersection(&present).cloned().collect();
        for n in back {
            self.lost.remove(&n);
            inputs.push(signal(
                NODE_LOST,
                labels(NODE_LOST, &[("node", &n)]),
                Report::Resolved,
                format!("node {n}'s bots are back"),
                Severity::Critical,
                at,
            ));
        }
        // A reset resolves once every lane reads again, a while after it.
        if let Some(t) = self.reset_at
            && at - t >= RESET_HOLD_MS
            && !now.keys().any(|(name, _)| name == LANE_UNKNOWN)
        {
            self.reset_at = None;
            inputs.push(signal(
                LANES_RESET,
                labels(LANES_RESET, &[]),
                Report::Resolved,
                "every lane reads again".into(),
                Severity::Warning,
                at,
            ));
        }
        self.firing = now;
        self.nodes = Some(present);
        inputs
    }

    /// The inputs tickets' transitions lead to: their requeues as change
    /// events and, for a lanes reset, `OshalLanesReset` firing.
    fn transitions(&mut self, transitions: &[Transition], at: i64) -> Vec<Input> {
        let mut inputs = requeues(transitions, at);
        let reset: u32 = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Change(c) if c.kind == ChangeKind::LanesReset => Some(c.count),
                _ => None,
            })
            .sum();
        if reset > 0 {
            self.reset_at = Some(at);
            inputs.push(signal(
                LANES_RESET,
                labels(LANES_RESET, &[]),
                Report::Firing,
                format!("the lanes' Redis lost its data: {reset} tickets were published again from the store"),
                Severity::Warning,
                at,
            ));
        }
        inputs
    }
}

/// The change events of tickets going back to the queue: one per reason
/// (a bot lost, the lanes reset), with how many.
fn requeues(transitions: &[Transition], at: i64) -> Vec<Input> {
    let mut by_reason: BTreeMap<&str, u32> = BTreeMap::new();
    for t in transitions {
        if t.to == TicketState::Queued
            && matches!(t.from, Some(TicketState::Routed | TicketState::Running))
        {
            *by_reason.entry(t.reason.as_str()).or_default() += 1;
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, count)| {
            let kind = if reason == REDRIVE_REASON {
                ChangeKind::LanesReset
            } else {
                ChangeKind::TicketsRequeued
            };
            Input::Change(ChangeEvent {
                kind,
                subject: "tickets".into(),
                detail: crate::text::clip(reason, 1024).to_owned(),
                count,
                at_ms: at,
            })
        })
        .collect()
}

/// Watches the controller's events until `stop`.
pub(super) fn watch(ops: Operations, stop: CancellationToken) {
    let mut events = ops.inner.controller.subscribe();
    tokio::spawn(async move {
        let tenant = TenantId::default_tenant();
        let mut watch = Watch::resume(ops.firing(&tenant).await);
        loop {
            let bots = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                e = events.recv() => match e {
                    Ok(CoreEvent::BotsUpdated { bots }) => bots,
                    Ok(CoreEvent::TicketsTransitioned { transitions }) => {
                        let at = ops.inner.controller.clock().now_ms();
                        let before = watch.clone();
                        let inputs = watch.transitions(&transitions, at);
                        if !inputs.is_empty() && !ops.observe(&tenant, inputs).await {
                            watch = before;
                            tracing::warn!("a requeue could not be recorded as a change event");
                        }
                        continue;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            // A shutdown under way reads every bot as gone: say nothing.
            if stop.is_cancelled() {
                return;
            }
            let at = ops.inner.controller.clock().now_ms();
            let before = watch.clone();
            let retired = ops.inner.controller.retired_nodes();
            let inputs = watch.step(&bots, &retired, at);
            if !ops.observe(&tenant, inputs).await {
                // Not recorded (the store down, as when nodes are lost): the
                // next update says it all again.
                watch = before;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::LaneStats;
    use oshal_kernel::name::Named;

    fn bot(id: &str, node: &str, lag_ms: Option<u64>) -> BotView {
        let mut b: BotView = serde_json::from_value(serde_json::json!({
            "id": id, "skills": ["chat"], "model": "builtin", "node": node, "live": true,
            "in_flight": 0, "succeeded": 0, "failed": 0, "lane": null
        }))
        .unwrap();
        b.lane = lag_ms.map(|lag_ms| LaneStats {
            lag_ms,
            depth: 3,
            ..LaneStats::default()
        });
        b
    }

    /// `(name or change kind, report or subject)` of each input.
    fn said(inputs: &[Input]) -> Vec<(String, String)> {
        inputs
            .iter()
            .map(|i| match i {
                Input::Signal(s) => (s.name.clone(), s.report.as_str().to_owned()),
                Input::Change(c) => (c.kind.as_str().to_owned(), c.subject.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn only_a_change_of_what_holds_is_said() {
        let mut w = Watch::default();
        let healthy = [bot("b1", "n1", Some(0)), bot("b2", "n2", Some(0))];
        assert!(
            w.step(&healthy, &BTreeSet::new(), 1).is_empty(),
            "the first update learns the nodes"
        );
        assert!(
            w.step(&healthy, &BTreeSet::new(), 2).is_empty(),
            "a steady fleet says nothing"
        );
        let lagging = [bot("b1", "n1", Some(LAG_MS)), bot("b2", "n2", None)];
        assert_eq!(
            said(&w.step(&lagging, &BTreeSet::new(), 3)),
            pairs(&[("OshalLaneLag", "firing"), ("OshalLaneUnknown", "firing")])
        );
        let mut later = lagging.clone();
        later[0].lane.as_mut().unwrap().lag_ms = LAG_MS * 3;
        assert!(
            w.step(&later, &BTreeSet::new(), 4).is_empty(),
            "a lag growing is the same alert"
        );
        later[0].lane.as_mut().unwrap().lag_ms = LAG_MS - 1;
        assert!(
            w.step(&later, &BTreeSet::new(), 4).is_empty(),
            "nor does it flap just under the line"
        );
        assert_eq!(
            said(&w.step(&healthy, &BTreeSet::new(), 5)),
            pairs(&[
                ("OshalLaneLag", "resolved"),
                ("OshalLaneUnknown", "resolved")
            ])
        );
    }

    #[test]
    fn a_node_that_leaves_is_lost_until_it_is_back() {
        let mut w = Watch::default();
        let both = [bot("b1", "n1", Some(0)), bot("b2", "n2", Some(0))];
        w.step(&both, &BTreeSet::new(), 1);
        assert_eq!(
            said(&w.step(&both[..1], &BTreeSet::new(), 2)),
            pairs(&[("node_left", "n2"), ("OshalNodeLost", "firing")])
        );
        assert!(w.step(&both[..1], &BTreeSet::new(), 3).is_empty());
        assert_eq!(
            said(&w.step(&both, &BTreeSet::new(), 4)),
            pairs(&[("node_joined", "n2"), ("OshalNodeLost", "resolved")])
        );
        // Lost again, then retired by an operator: resolved once, and lost
        // anew should it come back and go again.
        w.step(&both[..1], &BTreeSet::new(), 5);
        let retired: BTreeSet<String> = ["n2".to_owned()].into();
        assert_eq!(
            said(&w.step(&both[..1], &retired, 6)),
            pairs(&[("OshalNodeLost", "resolved")])
        );
        assert!(w.step(&both[..1], &retired, 7).is_empty());
        w.step(&both, &BTreeSet::new(), 8);
        assert_eq!(
            said(&w.step(&both[..1], &BTreeSet::new(), 9)),
            pairs(&[("node_left", "n2"), ("OshalNodeLost", "firing")])
        );
    }

    #[test]
    fn a_restart_resolves_what_no_longer_holds() {
        let lost = oshal_ops::alert::Alert {
            fingerprint: oshal_ops::alert::Fingerprint("f".into()),
            name: NODE_LOST.into(),
            source: Source::Platform,
            state: oshal_ops::alert::AlertState::Firing,
            severity: Severity::Critical,
            labels: labels(NODE_LOST, &[("node", "n2")]),
            annotations: Labels::new(),
            summary: String::new(),
            link: None,
            first_ms: 0,
            last_ms: 0,
            resolved_ms: None,
            count: 1,
            acknowledged_by: None,
            incident: None,
        };
        let lag = oshal_ops::alert::Alert {
            name: "OshalLaneLag".into(),
            labels: labels("OshalLaneLag", &[("bot", "b1"), ("node", "n1")]),
            severity: Severity::Warning,
            ..lost.clone()
        };
        // Another watcher's alert is left to it.
        let dead = oshal_ops::alert::Alert {
            name: super::super::failures::TICKETS_DEAD.into(),
            labels: labels(super::super::failures::TICKETS_DEAD, &[("tenant", "acme")]),
            ..lost.clone()
        };
        let mut w = Watch::resume(vec![lost, lag, dead]);
        let both = [bot("b1", "n1", Some(0)), bot("b2", "n2", Some(0))];
        assert_eq!(
            said(&w.step(&both, &BTreeSet::new(), 1)),
            pairs(&[("OshalLaneLag", "resolved"), ("OshalNodeLost", "resolved")])
        );
    }

    #[test]
    fn a_lanes_reset_fires_and_resolves_a_while_after_the_lanes_read_again() {
        let redriven = Transition {
            ticket: crate::ticket::TicketId::new(),
            tenant: TenantId::default_tenant(),
            seq: 3,
            from: Some(TicketState::Running),
            to: TicketState::Queued,
            attempt: 2,
            bot: None,
            reason: REDRIVE_REASON.into(),
            at_ms: 10,
            correlation_id: crate::ticket::TicketId::new(),
            causation_id: None,
        };
        let mut w = Watch::default();
        let healthy = [bot("b1", "n1", Some(0))];
        w.step(&healthy, &BTreeSet::new(), 5);
        assert_eq!(
            said(&w.transitions(&[redriven], 10)),
            pairs(&[("lanes_reset", "tickets"), (LANES_RESET, "firing")])
        );
        let unread = [bot("b1", "n1", None)];
        assert!(
            !said(&w.step(&unread, &BTreeSet::new(), 10 + RESET_HOLD_MS))
                .contains(&(LANES_RESET.to_owned(), "resolved".to_owned())),
            "not while a lane cannot be read"
        );
        w.step(&healthy, &BTreeSet::new(), 20);
        assert!(
            said(&w.step(&healthy, &BTreeSet::new(), 30)).is_empty(),
            "held a while"
        );
        assert_eq!(
            said(&w.step(&healthy, &BTreeSet::new(), 10 + RESET_HOLD_MS + 1)),
            pairs(&[(LANES_RESET, "resolved")])
        );
        assert!(
            w.step(&healthy, &BTreeSet::new(), 20 + 2 * RESET_HOLD_MS)
                .is_empty(),
            "once"
        );
    }

    #[test]
    fn tickets_back_in_the_queue_are_one_change_per_reason() {
        let t = |from: Option<TicketState>, to: TicketState, reason: &str| {
            let id = crate::ticket::TicketId::new();
            Transition {
                ticket: id,
                tenant: TenantId::default_tenant(),
                seq: 3,
                from,
                to,
                attempt: 1,
                bot: None,
                reason: reason.into(),
                at_ms: 5,
                correlation_id: id,
                causation_id: None,
            }
        };
        let lost = "bot n2-bot-01 lost (heartbeat expired); requeued";
        let moved = [
            t(Some(TicketState::Running), TicketState::Queued, lost),
            t(Some(TicketState::Routed), TicketState::Queued, lost),
            t(
                Some(TicketState::Running),
                TicketState::Queued,
                REDRIVE_REASON,
            ),
            // Not a requeue: a submission, a retry after a failure.
            t(None, TicketState::Queued, "submitted"),
            t(Some(TicketState::Failed), TicketState::Queued, "retry"),
        ];
        let changes: Vec<(ChangeKind, u32)> = requeues(&moved, 9)
            .into_iter()
            .map(|i| match i {
                Input::Change(c) => (c.kind, c.count),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            changes,
            [
                (ChangeKind::TicketsRequeued, 2),
                (ChangeKind::LanesReset, 1)
            ]
        );
    }
}
