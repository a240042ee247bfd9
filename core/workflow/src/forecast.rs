//! When a run will end: each node's expected end from what its units took
//! in earlier runs, the critical path through them, and the run's end.
//!
//! A node's units are expected to take the median of what that node's
//! units took before (its `Estimates`); a fan-out runs its units
//! `parallelism` at a time. What has ended counts at its real time; what
//! runs counts from its start. Where nothing is known (a node never run
//! before) the forecast says so (`None`) rather than guess.

use std::collections::BTreeMap;

use crate::history::NodePhase;
use crate::run::Run;

/// What each node's units took, by node name: the medians of past runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimates {
    per_unit_ms: BTreeMap<String, i64>,
}

impl Estimates {
    /// The medians of what each node's units took in `runs`, from start
    /// (or scheduling) to end, counting only units that succeeded.
    pub fn from_runs<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Estimates {
        let mut took: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for run in runs {
            for n in &run.nodes {
                for u in &n.units {
                    if u.phase != NodePhase::Succeeded || u.memoized {
                        continue;
                    }
                    if let (Some(from), Some(to)) = (u.started_at.or(u.scheduled_at), u.finished_at)
                    {
                        took.entry(n.name.clone())
                            .or_default()
                            .push((to - from).max(0));
                    }
                }
            }
        }
        let per_unit_ms = took
            .into_iter()
            .map(|(name, mut v)| {
                v.sort_unstable();
                (name, v[v.len() / 2])
            })
            .collect();
        Estimates { per_unit_ms }
    }

    pub fn of(&self, node: &str) -> Option<i64> {
        self.per_unit_ms.get(node).copied()
    }
}

/// A run's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Per node (the spec's order): when it is expected to end, unix ms.
    pub node_end: Vec<Option<i64>>,
    /// When the run is expected to end; its real end once it has.
    pub ends_at: Option<i64>,
    /// The nodes on the longest chain to the end, first to last.
    pub critical_path: Vec<String>,
}

impl Run {
    /// The run's forecast at `now`.
    pub fn forecast(&self, now: i64, estimates: &Estimates) -> Forecast {
        let w = &self.workflow;
        let mut end: Vec<Option<i64>> = vec![None; self.nodes.len()];
        for &i in &w.order {
            let n = &self.nodes[i];
            let ready = w.upstream[i]
                .iter()
                .try_fold(self.started_at, |at, &j| end[j].map(|e| e.max(at)));
            end[i] = if n.phase.fulfilled() {
                n.units.iter().filter_map(|u| u.finished_at).max().or(ready)
            } else {
                let per = estimates.of(&n.name);
                let spec = &w.spec.nodes[i];
                if spec.approval.is_some() {
                    // A person decides: at the latest, the deadline.
                    n.approval.as_ref().map(|a| a.deadline)
                } else {
                    let waiting = n
                        .units
                        .iter()
                        .filter(|u| !u.phase.fulfilled())
                        .count()
                        .max(1);
                    let lanes = spec
                        .parallelism
                        .map_or(waiting, |p| (p as usize).min(waiting))
                        .max(1);
                    let rounds = i64::try_from(waiting.div_ceil(lanes)).unwrap_or(i64::MAX);
                    let begun = n
                        .units
                        .iter()
                        .filter(|u| u.in_flight())
                        .filter_map(|u| u.started_at.or(u.scheduled_at))
                        .min();
                    match (ready, per) {
                        (Some(r), Some(d)) => {
                            let from = begun.unwrap_or(r.max(now));
                            Some((from + d.saturating_mul(rounds)).max(now))
                        }
                        _ => None,
                    }
                }
            };
        }
        let ends_at = match self.finished_at {
            Some(f) => Some(f),
            None => end
                .iter()
                .try_fold(self.started_at, |at, e| e.map(|e| e.max(at))),
        };
        Forecast {
            critical_path: self.critical_path(&end),
            node_end: end,
            ends_at,
        }
    }

    /// Back from the node that ends last, through the upstream that ends
    /// last, to a node that waits on nothing.
    fn critical_path(&self, end: &[Option<i64>]) -> Vec<String> {
        let w = &self.workflow;
        let last = (0..self.nodes.len()).max_by_key(|&i| (end[i], std::cmp::Reverse(i)));
        let mut path = Vec::new();
        let mut at = last;
        while let Some(i) = at {
            if end[i].is_none() {
                return Vec::new();
            }
            path.push(self.nodes[i].name.clone());
            at = w.upstream[i]
                .iter()
                .copied()
                .max_by_key(|&j| (end[j], std::cmp::Reverse(j)));
        }
        path.reverse();
        path
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::history::Event;
    use crate::spec::WorkflowSpec;
    use crate::validate::{Kinds, Workflow};

    const SPEC: &str = "api_version: oshal.dev/workflow/v1\nname: f\ndefaults:\n  timeouts: { start_to_close: 1m }\nnodes:\n  - { name: a, task: { kind: chat, payload: { prompt: x } } }\n  - { name: slow, dependencies: [a], task: { kind: chat, payload: { prompt: y } } }\n  - { name: fast, dependencies: [a], task: { kind: chat, payload: { prompt: z } } }\n  - { name: end, dependencies: [slow, fast], task: { kind: chat, payload: { prompt: w } } }\n";

    fn finished_run(took: &[(&str, i64)]) -> Run {
        let w = Arc::new(
            Workflow::new(WorkflowSpec::from_yaml(SPEC).unwrap(), &Kinds(&["chat"])).unwrap(),
        );
        let (mut run, _) = Run::start(w, "r", Default::default(), "op", 0);
        let mut now = 0;
        loop {
            let next = run.decide(now, &());
            if next.is_empty() {
                let flying: Vec<(String, u32)> = run
                    .nodes
                    .iter()
                    .flat_map(|n| &n.units)
                    .filter(|u| u.in_flight())
                    .map(|u| (u.name.clone(), u.attempt))
                    .collect();
                if flying.is_empty() {
                    return run;
                }
                for (unit, attempt) in flying {
                    let d = took.iter().find(|(n, _)| *n == unit).map_or(1, |(_, d)| *d);
                    run.apply(&Event::NodeStarted {
                        unit: unit.clone(),
                        attempt,
                        ticket: "t".into(),
                        at: now,
                    })
                    .unwrap();
                    run.apply(&Event::NodeSucceeded {
                        unit,
                        attempt,
                        output: json!(1),
                        output_hash: "h".into(),
                        cost_nusd: 0,
                        at: now + d,
                    })
                    .unwrap();
                }
                now += took.iter().map(|(_, d)| *d).max().unwrap_or(1);
                continue;
            }
            for e in next {
                run.apply(&e).unwrap();
            }
        }
    }

    #[test]
    fn the_slow_branch_is_the_critical_path_and_the_end_adds_up() {
        let past = finished_run(&[("a", 100), ("slow", 1_000), ("fast", 10), ("end", 50)]);
        let est = Estimates::from_runs([&past]);
        assert_eq!((est.of("slow"), est.of("fast")), (Some(1_000), Some(10)));
        let w = past.workflow.clone();
        let (fresh, _) = Run::start(w, "r2", Default::default(), "op", 5_000);
        let f = fresh.forecast(5_000, &est);
        assert_eq!(f.critical_path, ["a", "slow", "end"]);
        assert_eq!(f.ends_at, Some(5_000 + 100 + 1_000 + 50));
        // A node never run before: the end is unknown, not guessed.
        let f = fresh.forecast(5_000, &Estimates::default());
        assert_eq!(f.ends_at, None);
        assert!(f.critical_path.is_empty());
        // An ended run's end is its own.
        assert_eq!(past.forecast(99_999, &est).ends_at, past.finished_at);
    }
}
