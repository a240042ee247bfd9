use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::history::Task;
use crate::spec::WorkflowSpec;
use crate::validate::{Kinds, Workflow};

/// A run and its history, driven the way the adapter drives it.
struct Driver {
    run: Run,
    history: Vec<Event>,
    memo: HashMap<String, (Value, String)>,
}

fn workflow(yaml: &str) -> Arc<Workflow> {
    let spec = WorkflowSpec::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Workflow::new(spec, &Kinds(&["chat", "tool"])).unwrap_or_else(|e| panic!("{e:?}")))
}

impl Driver {
    fn new(yaml: &str, inputs: Value) -> Driver {
        let w = workflow(yaml);
        let inputs = w.inputs(inputs.as_object().unwrap()).unwrap();
        let (run, first) = Run::start(w, "wf-1", inputs, "operator", 0);
        Driver {
            run,
            history: vec![first],
            memo: HashMap::new(),
        }
    }

    /// Decides and records until nothing is proposed: how many units each
    /// call handed out.
    fn batches(&mut self) -> Vec<usize> {
        let mut batches = Vec::new();
        loop {
            let next = self.run.decide(0, &());
            if next.is_empty() {
                return batches;
            }
            batches.push(Driver::scheduled(&next).len());
            for e in next {
                self.record(e);
            }
        }
    }

    fn record(&mut self, e: Event) {
        self.run.apply(&e).unwrap_or_else(|s| panic!("{s}"));
        self.history.push(e);
    }

    /// Decides and records until nothing is proposed; what was proposed.
    fn settle(&mut self, now: i64) -> Vec<Event> {
        let mut all = Vec::new();
        loop {
            let next = self.run.decide(now, &self.memo);
            if next.is_empty() {
                return all;
            }
            for e in next {
                self.record(e.clone());
                all.push(e);
            }
        }
    }

    fn scheduled(events: &[Event]) -> Vec<(String, u32, Task)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::NodeScheduled {
                    unit,
                    attempt,
                    task,
                    ..
                } => Some((unit.clone(), *attempt, task.clone())),
                _ => None,
            })
            .collect()
    }

    fn start(&mut self, unit: &str, at: i64) {
        let attempt = self.run.unit(unit).unwrap().attempt;
        self.record(Event::NodeStarted {
            unit: unit.into(),
            attempt,
            ticket: format!("t-{unit}-{attempt}"),
            at,
        });
    }

    fn succeed(&mut self, unit: &str, output: Value, at: i64) {
        let attempt = self.run.unit(unit).unwrap().attempt;
        let output_hash = crate::hash::of(&output);
        self.record(Event::NodeSucceeded {
            unit: unit.into(),
            attempt,
            output,
            output_hash,
            cost_nusd: 0,
            at,
        });
    }

    fn fail(&mut self, unit: &str, error_type: &str, at: i64) {
        let attempt = self.run.unit(unit).unwrap().attempt;
        self.record(Event::NodeFailed {
            unit: unit.into(),
            attempt,
            failure: Failure::new(error_type, "it broke"),
            cost_nusd: 0,
            at,
        });
    }

    fn phase(&self, node: &str) -> NodePhase {
        self.run.nodes[self.run.workflow.index(node).unwrap()].phase
    }

    /// The history replayed gives the same state.
    fn check_replay(&self) {
        let again = Run::replay(self.run.workflow.clone(), &self.history).unwrap();
        assert_eq!(again.nodes, self.run.nodes);
        assert_eq!(again.state, self.run.state);
        assert_eq!(again.decide(1 << 40, &()), self.run.decide(1 << 40, &()));
    }
}

const HEAD: &str =
    "api_version: oshal.dev/workflow/v1\nname: t\ndefaults:\n  timeouts: { start_to_close: 1m }\n";

#[test]
fn a_chain_passes_outputs_down_and_succeeds() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}inputs:\n  topic: {{}}\nnodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: 'about ${{{{ inputs.topic }}}}' }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: '${{{{ nodes.a.output.text }}}}', n: '${{{{ nodes.a.output.n }}}}' }} }} }}\n"
        ),
        json!({"topic": "owls"}),
    );
    let first = Driver::scheduled(&d.settle(0));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "a");
    assert_eq!(first[0].2.payload, json!({"prompt": "about owls"}));
    assert!(matches!(&d.history[1], Event::NodeScheduled { key, .. } if key == "wf/wf-1/a/1"));
    assert!(d.settle(10).is_empty(), "a runs: nothing to do");
    d.start("a", 10);
    d.succeed("a", json!({"text": "hoot", "n": 2}), 20);
    let second = Driver::scheduled(&d.settle(20));
    assert_eq!(second[0].2.payload, json!({"prompt": "hoot", "n": 2}));
    d.start("b", 21);
    d.succeed("b", json!({"text": "done"}), 30);
    let last = d.settle(30);
    assert_eq!(
        last,
        [Event::RunFinished {
            state: RunState::Succeeded,
            at: 30
        }]
    );
    assert_eq!(d.run.progress(), (2, 2));
    d.check_replay();
}

#[test]
fn a_failure_retries_after_its_backoff_until_the_policy_says_no() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, retry: {{ maximum_attempts: 3, initial_interval: 1s, backoff_coefficient: 2 }}, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.fail("a", "failed", 100);
    assert_eq!(d.phase("a"), NodePhase::Pending);
    assert_eq!(d.run.next_deadline(), Some(1_100));
    assert!(d.settle(1_099).is_empty());
    let again = Driver::scheduled(&d.settle(1_100));
    assert_eq!((again[0].0.as_str(), again[0].1), ("a", 2));
    d.fail("a", "failed", 1_200);
    assert_eq!(
        d.run.next_deadline(),
        Some(3_200),
        "the second wait doubles"
    );
    d.settle(3_200);
    d.fail("a", "failed", 3_300);
    assert_eq!(d.phase("a"), NodePhase::Failed, "three attempts in all");
    assert_eq!(
        d.settle(3_300),
        [Event::RunFinished {
            state: RunState::Failed,
            at: 3_300
        }]
    );
    d.check_replay();

    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, retry: {{ maximum_attempts: 5, non_retryable_error_types: [dead] }}, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.fail("a", "dead", 10);
    assert_eq!(
        d.phase("a"),
        NodePhase::Error,
        "a dead letter is not retried, and is an Error"
    );
}

#[test]
fn timeouts_cancel_the_ticket_and_count_as_a_failed_attempt() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, timeouts: {{ schedule_to_start: 5s, heartbeat: 2s }}, retry: {{ maximum_attempts: 2, initial_interval: 1s }}, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    assert_eq!(d.run.next_deadline(), Some(5_000));
    let out = d.settle(5_000);
    assert!(matches!(&out[0], Event::NodeCancelRequested { unit, attempt: 1, .. } if unit == "a"));
    assert!(
        matches!(&out[1], Event::NodeFailed { failure, .. } if failure.error_type == "timeout.schedule_to_start")
    );
    // The cancelled ticket's own end arrives late: it no longer fits.
    let late = Event::NodeFailed {
        unit: "a".into(),
        attempt: 1,
        failure: Failure::new("cancelled", "x"),
        cost_nusd: 0,
        at: 5_100,
    };
    assert!(d.run.apply(&late).is_err());
    d.settle(6_000);
    d.start("a", 6_500);
    d.record(Event::NodeHeartbeat {
        unit: "a".into(),
        attempt: 2,
        progress: Some(40),
        at: 7_000,
    });
    assert_eq!(
        d.run.next_deadline(),
        Some(9_000),
        "the heartbeat moved the deadline"
    );
    let out = d.settle(9_000);
    assert!(
        matches!(&out[1], Event::NodeFailed { failure, .. } if failure.error_type == "timeout.heartbeat")
    );
    assert_eq!(d.phase("a"), NodePhase::Error);
    d.check_replay();
}

#[test]
fn depends_handles_a_failure_and_omits_what_needed_success() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: build, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: notify, depends: build.Failed, task: {{ kind: chat, payload: {{ prompt: y }} }} }}\n  - {{ name: deploy, depends: build, task: {{ kind: chat, payload: {{ prompt: z }} }} }}\n  - {{ name: after, depends: 'deploy.Succeeded || deploy.Omitted', task: {{ kind: chat, payload: {{ prompt: w }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.fail("build", "failed", 5);
    let out = d.settle(5);
    assert!(
        out.iter()
            .any(|e| matches!(e, Event::NodeOmitted { node, .. } if node == "deploy"))
    );
    let names: Vec<String> = Driver::scheduled(&out).into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["notify", "after"]);
    d.succeed("notify", json!({}), 6);
    d.succeed("after", json!({}), 7);
    assert_eq!(
        d.settle(7),
        [Event::RunFinished {
            state: RunState::Succeeded,
            at: 7
        }],
        "build's failure is handled by notify's depends"
    );
    d.check_replay();
}

#[test]
fn a_failure_that_only_omits_its_downstream_fails_the_run() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: b, task: {{ kind: chat, payload: {{ prompt: y }} }} }}\n  - {{ name: c, depends: 'a.Succeeded && !b.Failed', task: {{ kind: chat, payload: {{ prompt: z }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.succeed("a", json!(1), 1);
    d.fail("b", "failed", 2);
    let out = d.settle(2);
    assert!(matches!(&out[0], Event::NodeOmitted { node, .. } if node == "c"));
    d.settle(2);
    assert_eq!(d.run.state, RunState::Failed, "nothing ran on b's failure");
}

#[test]
fn an_approval_is_asked_once_whatever_the_default_retry() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}  retry: {{ maximum_attempts: 3 }}\nnodes:\n  - {{ name: gate, approval: {{ approvers: [ops], timeout: 1s }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    let out = d.settle(1_000);
    assert!(matches!(&out[0], Event::NodeFailed { .. }));
    assert!(
        matches!(
            out.last(),
            Some(Event::RunFinished {
                state: RunState::Failed,
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn a_fan_out_expands_from_an_output_keeps_to_its_parallelism_and_gathers() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: probe, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: seg, dependencies: [probe], parallelism: 2, with_items: '${{{{ nodes.probe.output.parts }}}}', task: {{ kind: chat, payload: {{ prompt: 'part ${{{{ item }}}}' }} }} }}\n  - {{ name: stitch, depends: seg.AnySucceeded, task: {{ kind: chat, payload: {{ parts: '${{{{ nodes.seg.output }}}}' }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.succeed("probe", json!({"parts": [10, 20, 30]}), 1);
    let out = d.settle(1);
    assert!(
        matches!(&out[0], Event::NodeExpanded { items, .. } if items == &vec![json!(10), json!(20), json!(30)])
    );
    let first: Vec<(String, Value)> = Driver::scheduled(&out)
        .into_iter()
        .map(|s| (s.0, s.2.payload))
        .collect();
    assert_eq!(
        first,
        [
            ("seg[0]".into(), json!({"prompt": "part 10"})),
            ("seg[1]".into(), json!({"prompt": "part 20"}))
        ]
    );
    assert_eq!(d.phase("seg"), NodePhase::Pending);
    d.start("seg[0]", 2);
    assert_eq!(d.phase("seg"), NodePhase::Running);
    d.succeed("seg[0]", json!("a"), 3);
    assert_eq!(Driver::scheduled(&d.settle(3))[0].0, "seg[2]");
    d.succeed("seg[1]", json!("b"), 4);
    d.succeed("seg[2]", json!("c"), 5);
    let out = d.settle(5);
    assert_eq!(
        Driver::scheduled(&out)[0].2.payload,
        json!({"parts": ["a", "b", "c"]})
    );
    assert_eq!(d.run.progress(), (4, 5));
    d.check_replay();
}

#[test]
fn a_large_fan_out_is_handed_out_in_batches_that_grow() {
    let items: Vec<String> = (0..1_500).map(|i| i.to_string()).collect();
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: fan, with_items: [{}], task: {{ kind: chat, payload: {{ prompt: '${{{{ item }}}}' }} }} }}\n",
            items.join(", ")
        ),
        json!({}),
    );
    let batches = d.batches();
    // The expansion alone, then the units in batches, each in order: the
    // first small, so the first units start at once, then each as large
    // as all before it.
    assert_eq!(batches, [0, 256, 256, 512, 476]);
    assert_eq!(batch_after(0), SCHEDULE_BATCH);
    assert_eq!(batch_after(100_000), MAX_SCHEDULE_BATCH);
    assert_eq!(d.run.unit("fan[1499]").unwrap().attempt, 1);
    d.check_replay();
}

#[test]
fn a_batch_of_large_payloads_stops_at_its_byte_bound() {
    // 300 items of 100 KB: a batch holds what fits in MAX_BATCH_BYTES,
    // the unit that reaches it included.
    let item = "x".repeat(100_000);
    let items: Vec<Value> = (0..300).map(|_| json!(item)).collect();
    let mut d = Driver::new(
        &format!(
            "{HEAD}inputs: {{ items: {{}} }}\nnodes:\n  - {{ name: fan, with_items: '${{{{ inputs.items }}}}', task: {{ kind: chat, payload: {{ prompt: '${{{{ item }}}}' }} }} }}\n"
        ),
        json!({ "items": items }),
    );
    let batches = d.batches();
    let per_batch = MAX_BATCH_BYTES.div_ceil(json!({ "prompt": item }).to_string().len());
    assert_eq!(batches, [0, per_batch, 300 - per_batch]);
}

#[test]
fn a_matrix_crosses_its_keys_in_order() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: build, matrix: {{ os: [linux, mac], arch: [x86, arm] }}, task: {{ kind: chat, payload: {{ prompt: '${{{{ matrix.os }}}}-${{{{ matrix.arch }}}}' }} }} }}\n"
        ),
        json!({}),
    );
    let prompts: Vec<Value> = Driver::scheduled(&d.settle(0))
        .into_iter()
        .map(|s| s.2.payload["prompt"].clone())
        .collect();
    assert_eq!(
        prompts,
        ["linux-x86", "mac-x86", "linux-arm", "mac-arm"],
        "arch before os: keys in order"
    );
}

#[test]
fn an_approval_escalates_then_carries_its_input_or_fails_at_its_deadline() {
    let spec = format!(
        "{HEAD}nodes:\n  - {{ name: gate, approval: {{ approvers: [ops], timeout: 1h, escalation: {{ after: 10m, to: [lead] }} }} }}\n  - {{ name: ship, dependencies: [gate], task: {{ kind: chat, payload: {{ env: '${{{{ nodes.gate.output.input.env }}}}' }} }} }}\n"
    );
    let mut d = Driver::new(&spec, json!({}));
    assert!(matches!(
        &d.settle(0)[0],
        Event::ApprovalRequested {
            deadline: 3_600_000,
            ..
        }
    ));
    assert_eq!(d.run.next_deadline(), Some(600_000));
    assert!(
        matches!(&d.settle(600_000)[0], Event::ApprovalEscalated { to, .. } if to == &vec!["lead".to_owned()])
    );
    d.record(Event::ApprovalDecided {
        node: "gate".into(),
        approved: true,
        by: "lead".into(),
        input: json!({"env": "prod"}),
        comment: String::new(),
        at: 700_000,
    });
    assert_eq!(
        Driver::scheduled(&d.settle(700_000))[0].2.payload,
        json!({"env": "prod"})
    );
    d.check_replay();

    let mut d = Driver::new(&spec, json!({}));
    d.settle(0);
    let out = d.settle(3_600_000);
    assert!(
        matches!(&out[0], Event::NodeFailed { failure, .. } if failure.error_type == "timeout.approval")
    );
    d.settle(3_600_000);
    assert_eq!(d.run.state, RunState::Failed);
    assert_eq!(d.phase("ship"), NodePhase::Omitted);
}

#[test]
fn retry_from_a_node_keeps_what_came_before_and_uses_new_keys() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: '${{{{ nodes.a.output }}}}' }} }} }}\n  - {{ name: c, dependencies: [b], task: {{ kind: chat, payload: {{ prompt: z }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.succeed("a", json!("A"), 1);
    d.settle(1);
    d.fail("b", "failed", 2);
    d.settle(2);
    assert_eq!(d.run.state, RunState::Failed);
    assert!(
        d.run
            .apply(&Event::RetryRequested {
                node: "a".into(),
                by: "op".into(),
                at: 3
            })
            .is_err(),
        "a succeeded"
    );
    d.record(Event::RetryRequested {
        node: "b".into(),
        by: "op".into(),
        at: 3,
    });
    assert_eq!(d.run.state, RunState::Running);
    assert_eq!(d.phase("a"), NodePhase::Succeeded, "upstream kept");
    let out = d.settle(3);
    assert!(
        matches!(&out[0], Event::NodeScheduled { unit, attempt: 2, key, task, .. }
        if unit == "b" && key == "wf/wf-1/b/2" && task.payload == json!({"prompt": "A"}))
    );
    d.succeed("b", json!("B"), 4);
    d.settle(4);
    d.succeed("c", json!("C"), 5);
    assert_eq!(
        d.settle(5),
        [Event::RunFinished {
            state: RunState::Succeeded,
            at: 5
        }]
    );
    let a_scheduled = d
        .history
        .iter()
        .filter(|e| matches!(e, Event::NodeScheduled { unit, .. } if unit == "a"))
        .count();
    assert_eq!(a_scheduled, 1, "a ran once");
    d.check_replay();
}

#[test]
fn cancel_waits_for_what_runs_and_terminate_does_not() {
    let spec = format!(
        "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: y }} }} }}\n"
    );
    let mut d = Driver::new(&spec, json!({}));
    d.settle(0);
    d.start("a", 1);
    d.record(Event::StopRequested {
        how: Stop::Cancel,
        by: "op".into(),
        reason: String::new(),
        at: 2,
    });
    let out = d.settle(2);
    assert!(
        matches!(&out[..], [Event::NodeCancelRequested { unit, .. }, Event::NodeOmitted { node, .. }] if unit == "a" && node == "b")
    );
    assert_eq!(d.run.state, RunState::Running, "a is still being cancelled");
    d.fail("a", "cancelled", 3);
    assert_eq!(
        d.settle(3),
        [Event::RunFinished {
            state: RunState::Cancelled,
            at: 3
        }]
    );
    d.check_replay();

    let mut d = Driver::new(&spec, json!({}));
    d.settle(0);
    d.record(Event::StopRequested {
        how: Stop::Terminate,
        by: "op".into(),
        reason: String::new(),
        at: 2,
    });
    let out = d.settle(2);
    assert!(matches!(
        out.last(),
        Some(Event::RunFinished {
            state: RunState::Terminated,
            ..
        })
    ));
    assert_eq!(d.run.unit("a").unwrap().phase, NodePhase::Error);
    assert!(d.run.decide(5, &()).is_empty());
}

#[test]
fn a_grouped_unit_waits_for_its_place_and_a_superseded_one_ends() {
    let spec = format!(
        "{HEAD}inputs:\n  branch: {{ default: main }}\nnodes:\n  - {{ name: deploy, concurrency: {{ group: 'deploy-${{{{ inputs.branch }}}}' }}, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
    );
    let mut d = Driver::new(&spec, json!({}));
    let out = d.settle(0);
    assert_eq!(
        out,
        [Event::UnitQueued {
            unit: "deploy".into(),
            group: "deploy-main".into(),
            at: 0
        }]
    );
    assert!(d.settle(5).is_empty(), "it waits for its place");
    assert_eq!(
        d.run.group_places(),
        [("deploy-main".to_owned(), "deploy".to_owned(), false)]
    );
    d.record(Event::GroupAdmitted {
        unit: "deploy".into(),
        at: 6,
    });
    assert_eq!(Driver::scheduled(&d.settle(6))[0].0, "deploy");
    d.record(Event::GroupSuperseded {
        unit: "deploy".into(),
        by: "wf-2".into(),
        at: 7,
    });
    let u = d.run.unit("deploy").unwrap();
    assert_eq!(
        (u.phase, u.failure.as_ref().unwrap().error_type.as_str()),
        (NodePhase::Error, "superseded")
    );
    assert_eq!(
        d.settle(7),
        [Event::RunFinished {
            state: RunState::Failed,
            at: 7
        }]
    );
    assert!(d.run.group_places().is_empty());
    d.check_replay();
}

#[test]
fn a_memoized_node_reuses_the_output_of_the_same_input() {
    let spec = format!(
        "{HEAD}nodes:\n  - {{ name: a, memoize: true, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
    );
    let mut d = Driver::new(&spec, json!({}));
    let out = d.settle(0);
    let Event::NodeScheduled { input_hash, .. } = &out[0] else {
        panic!("{out:?}")
    };
    let mut d2 = Driver::new(&spec, json!({}));
    d2.memo.insert(
        input_hash.clone(),
        (json!("kept"), crate::hash::of(&json!("kept"))),
    );
    let out = d2.settle(0);
    assert!(matches!(&out[0], Event::NodeMemoized { output, .. } if output == &json!("kept")));
    assert!(matches!(
        &out[1],
        Event::RunFinished {
            state: RunState::Succeeded,
            ..
        }
    ));
}

#[test]
fn the_run_times_out_whole() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}timeout: 10s\nnodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    assert_eq!(d.run.next_deadline(), Some(10_000));
    let out = d.settle(10_000);
    assert!(matches!(
        out.last(),
        Some(Event::RunFinished {
            state: RunState::TimedOut,
            ..
        })
    ));
    d.check_replay();
}

#[test]
fn a_placeholder_that_does_not_resolve_errors_the_unit() {
    let mut d = Driver::new(
        &format!(
            "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: x }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: '${{{{ nodes.a.output.missing }}}}' }} }} }}\n"
        ),
        json!({}),
    );
    d.settle(0);
    d.succeed("a", json!({"text": "t"}), 1);
    let out = d.settle(1);
    assert!(
        matches!(&out[0], Event::NodeErrored { unit, message, .. } if unit == "b" && message.contains("nodes.a.output.missing"))
    );
    assert_eq!(d.run.state, RunState::Failed);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// A random DAG: node k depends on a subset of the nodes before it.
    fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<u8>)> {
        (2usize..8).prop_flat_map(|n| {
            let deps = (0..n)
                .map(|k| proptest::sample::subsequence((0..k).collect::<Vec<_>>(), 0..=k.min(3)))
                .collect::<Vec<_>>();
            (deps, proptest::collection::vec(0u8..4, n * 4))
        })
    }

    proptest! {
        /// Whatever the outcomes, the run ends, every node fulfilled, no
        /// key used twice, and any prefix of the history replays to the
        /// state it had.
        #[test]
        fn any_dag_ends_and_replays((deps, outcomes) in dag()) {
            let mut yaml = format!("{HEAD}nodes:\n");
            for (k, d) in deps.iter().enumerate() {
                let list: Vec<String> = d.iter().map(|j| format!("n{j}")).collect();
                yaml.push_str(&format!(
                    "  - {{ name: n{k}, dependencies: [{}], retry: {{ maximum_attempts: 2, initial_interval: 10ms }}, task: {{ kind: chat, payload: {{ prompt: p{k} }} }} }}\n",
                    list.join(", ")
                ));
            }
            let mut d = Driver::new(&yaml, json!({}));
            let mut now = 0;
            let mut draws = outcomes.into_iter().cycle();
            let mut states = vec![d.run.nodes.clone()];
            for _ in 0..200 {
                now += 20;
                d.settle(now);
                states.push(d.run.nodes.clone());
                if d.run.state != RunState::Running {
                    break;
                }
                let flying: Vec<String> = d.run.nodes.iter().flat_map(|n| &n.units).filter(|u| u.in_flight()).map(|u| u.name.clone()).collect();
                for unit in flying {
                    match draws.next().unwrap() {
                        0 => d.fail(&unit, "failed", now),
                        1 => d.start(&unit, now),
                        _ => d.succeed(&unit, json!(unit), now),
                    }
                }
            }
            prop_assert_ne!(d.run.state, RunState::Running);
            prop_assert!(d.run.nodes.iter().all(|n| n.phase.fulfilled()));
            let mut keys = std::collections::HashSet::new();
            for e in &d.history {
                if let Event::NodeScheduled { key, .. } = e {
                    prop_assert!(keys.insert(key.clone()), "key {} used twice", key);
                }
            }
            let again = Run::replay(d.run.workflow.clone(), &d.history).unwrap();
            prop_assert_eq!(&again.nodes, &d.run.nodes);
            prop_assert_eq!(again.state, d.run.state);
            prop_assert!(states.len() > 1);
        }
    }
}

#[test]
fn an_upgrade_keeps_what_has_begun_and_gives_the_rest_the_new_definition() {
    let v1 = format!(
        "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: a1 }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: b1 }} }} }}\n"
    );
    let v2 = format!(
        "{HEAD}inputs: {{ tone: {{ default: dry }} }}\nnodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: a2 }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: \"b2 ${{{{ inputs.tone }}}}\" }} }} }}\n  - {{ name: c, dependencies: [b], task: {{ kind: chat, payload: {{ prompt: c2 }} }} }}\n"
    );
    let mut d = Driver::new(&v1, json!({}));
    let first = d.settle(0);
    assert_eq!(Driver::scheduled(&first)[0].2.payload["prompt"], "a1");
    d.start("a", 1);
    let w2 = workflow(&v2);
    let up = Event::RunUpgraded {
        spec_hash: w2.hash.clone(),
        version: Some(2),
        by: "operator".into(),
        at: 2,
    };
    d.run.upgrade(w2.clone(), &up).unwrap();
    assert_eq!(d.run.workflow.hash, w2.hash);
    assert_eq!(d.run.inputs["tone"], "dry", "a new input takes its default");
    // `a` had begun: it keeps its attempt; `b` and `c` take version 2.
    d.succeed("a", json!({"text": "done"}), 3);
    let next = Driver::scheduled(&d.settle(4));
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].0.as_str(), &next[0].2.payload["prompt"]),
        ("b", &json!("b2 dry"))
    );
    assert_eq!(d.run.nodes.len(), 3);

    // A version that drops a node under way is refused, and changes nothing.
    let v3 = format!(
        "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: a3 }} }} }}\n"
    );
    let w3 = workflow(&v3);
    let up3 = Event::RunUpgraded {
        spec_hash: w3.hash.clone(),
        version: Some(3),
        by: "operator".into(),
        at: 5,
    };
    let before = d.run.workflow.hash.clone();
    let e = d.run.upgrade(w3, &up3).unwrap_err();
    assert!(e.why.contains("node b is under way"), "{e}");
    assert_eq!(d.run.workflow.hash, before);
    // Nor can a run be moved to the version it is on.
    assert!(d.run.upgrade(w2, &up).is_err());
}

#[test]
fn an_upgrade_after_a_retry_goes_on_from_the_last_attempt_and_keeps_a_begun_node_s_shape() {
    let v1 = format!(
        "{HEAD}nodes:\n  - {{ name: a, task: {{ kind: chat, payload: {{ prompt: a }} }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: b1 }} }} }}\n"
    );
    let mut d = Driver::new(&v1, json!({}));
    d.settle(0);
    d.start("a", 1);
    d.succeed("a", json!({"text": "a"}), 2);
    d.settle(3);
    d.start("b", 4);
    d.fail("b", "boom", 5);
    d.settle(6);
    assert_eq!(d.run.state, RunState::Failed);
    // A retry from b makes it not begun again; its attempt 1 is spent.
    d.record(Event::RetryRequested {
        node: "b".into(),
        by: "op".into(),
        at: 7,
    });
    let w2 = workflow(&v1.replace("prompt: b1", "prompt: b2"));
    let up = Event::RunUpgraded {
        spec_hash: w2.hash.clone(),
        version: None,
        by: "op".into(),
        at: 8,
    };
    d.run.upgrade(w2, &up).unwrap();
    let next = Driver::scheduled(&d.settle(9));
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].0.as_str(), next[0].1),
        ("b", 2),
        "attempt 2: key 1 is never used again"
    );
    assert_eq!(next[0].2.payload["prompt"], "b2");

    // `a` has begun as a task: a version that makes it an approval is refused.
    let w3 = workflow(&format!(
        "{HEAD}nodes:\n  - {{ name: a, approval: {{ approvers: [operator], timeout: 1h }} }}\n  - {{ name: b, dependencies: [a], task: {{ kind: chat, payload: {{ prompt: b2 }} }} }}\n"
    ));
    let up3 = Event::RunUpgraded {
        spec_hash: w3.hash.clone(),
        version: None,
        by: "op".into(),
        at: 10,
    };
    let e = d.run.upgrade(w3, &up3).unwrap_err();
    assert!(e.why.contains("node a has begun as a task"), "{e}");
}
