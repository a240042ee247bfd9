//! An incident's investigations: the plan a Gather ticket ran, the
//! evidence it brought back, and the diagnosis read from that evidence.
//!
//! The ticket runs in a bot, boxed in by the connector broker. What it
//! brings back ([`Findings`]) is checked before it is kept: its evidence
//! numbered in turn, intact (each result still hashes to what was
//! recorded), of the plan's tools, within the bounds and the sizes one
//! journal entry holds; the diagnosis is computed here from that evidence,
//! and the bot's model may only write the narrative and reorder the
//! causes found. The hash proves a result unchanged since it was
//! recorded by the bot, not that the connector served it: a bot that
//! lies about an answer is caught only once the connector keeps the hash
//! of what it served (not yet). Pure logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::diagnose::{Diagnosis, diagnose};
use crate::evidence::{Bounds, Evidence};
use crate::gather::observe;
use crate::runbook::Plan;

/// The most of one tool's answer kept as evidence.
pub const MAX_EVIDENCE_BYTES: usize = 16 * 1024;
/// The most of a narrative kept.
pub const MAX_NARRATIVE_BYTES: usize = 4 * 1024;
/// The most findings may hold in all (they are one journal entry, whose
/// limit is 64 KiB with the rest of the event).
pub const MAX_FINDINGS_BYTES: usize = 48 * 1024;
/// The most causes a model's order may name, and the longest each.
pub const MAX_ORDER: usize = 32;
pub const MAX_ORDER_ITEM_BYTES: usize = 256;
/// The longest reason a ticket gives for stopping early.
pub const MAX_STOPPED_BYTES: usize = 1024;

/// Where an investigation is, in Argo's node phases.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "PascalCase")]
pub enum Phase {
    Running,
    Succeeded,
    Failed,
}

/// What a Gather ticket brings back: its evidence and its model's word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    pub evidence: Vec<Evidence>,
    /// The model's account, in prose; it adds no cause.
    #[serde(default)]
    pub narrative: Option<String>,
    /// The model's order of the causes (`node_down:n1`), within those found.
    #[serde(default)]
    pub order: Vec<String>,
    /// Why it stopped before the plan's end (a bound reached), if it did.
    #[serde(default)]
    pub stopped: Option<String>,
}

/// One investigation of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Investigation {
    /// The Gather ticket that runs it.
    pub ticket: String,
    /// The alert it looks into (its `alertname`).
    pub alert: String,
    pub plan: Plan,
    pub bounds: Bounds,
    pub phase: Phase,
    pub evidence: Vec<Evidence>,
    pub diagnosis: Option<Diagnosis>,
    pub narrative: Option<String>,
    pub stopped: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What its ticket's model calls cost, in nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nanos: i64,
    #[specta(type = specta_typescript::Number)]
    pub started_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    pub finished_ms: Option<UnixMs>,
}

/// Why findings were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("evidence[{index}].id is {id:?}; expected E-{expected}")]
    Numbering {
        index: usize,
        id: String,
        expected: usize,
    },
    #[error("evidence {id}: its result does not hash to the recorded {hash}")]
    Tampered { id: String, hash: String },
    #[error("evidence {id}: {bytes} bytes of result; the limit is {MAX_EVIDENCE_BYTES}")]
    TooLarge { id: String, bytes: usize },
    #[error("evidence holds {count} calls; the investigation's bound is {limit} steps")]
    TooMany { count: usize, limit: u32 },
    #[error("evidence {id} calls {tool:?}, which the plan does not hold")]
    OffPlan { id: String, tool: String },
    #[error("narrative: {bytes} bytes; the limit is {MAX_NARRATIVE_BYTES}")]
    Narrative { bytes: usize },
    #[error(
        "order: {count} causes, or one over {MAX_ORDER_ITEM_BYTES} bytes; the limit is {MAX_ORDER}"
    )]
    Order { count: usize },
    #[error("stopped: {bytes} bytes; the limit is {MAX_STOPPED_BYTES}")]
    Stopped { bytes: usize },
    #[error("findings: {bytes} bytes in all; the limit is {MAX_FINDINGS_BYTES}")]
    TooLargeInAll { bytes: usize },
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// An answer too large to keep whole: what is kept instead (its size and
/// its head), before it is hashed.
pub fn keepable(result: Value) -> Value {
    let bytes = json_len(&result);
    if bytes <= MAX_EVIDENCE_BYTES {
        return result;
    }
    let text = result.to_string();
    // Escaping can grow the head: halve it until the whole fits.
    let mut keep = MAX_EVIDENCE_BYTES / 2;
    loop {
        let head = oshal_kernel::text::clip(&text, keep);
        let kept = serde_json::json!({"truncated": true, "bytes": bytes, "head": head});
        if json_len(&kept) <= MAX_EVIDENCE_BYTES || keep == 0 {
            return kept;
        }
        keep /= 2;
    }
}

impl Investigation {
    pub fn start(ticket: String, alert: String, plan: Plan, bounds: Bounds, at_ms: UnixMs) -> Self {
        Self {
            ticket,
            alert,
            plan,
            bounds,
            phase: Phase::Running,
            evidence: Vec::new(),
            diagnosis: None,
            narrative: None,
            stopped: None,
            error: None,
            cost_nanos: 0,
            started_ms: at_ms,
            finished_ms: None,
        }
    }

    /// Checks findings against this investigation: numbered in turn,
    /// intact, within the bounds and the plan's tools.
    pub fn check(&self, f: &Findings) -> Result<(), Untrusted> {
        if f.evidence.len() > self.bounds.max_steps as usize {
            return Err(Untrusted::TooMany {
                count: f.evidence.len(),
                limit: self.bounds.max_steps,
            });
        }
        for (i, e) in f.evidence.iter().enumerate() {
            if e.id != format!("E-{}", i + 1) {
                return Err(Untrusted::Numbering {
                    index: i,
                    id: e.id.clone(),
                    expected: i + 1,
                });
            }
            let bytes = json_len(&e.result);
            if bytes > MAX_EVIDENCE_BYTES {
                return Err(Untrusted::TooLarge {
                    id: e.id.clone(),
                    bytes,
                });
            }
            if !e.intact() {
                return Err(Untrusted::Tampered {
                    id: e.id.clone(),
                    hash: e.hash.clone(),
                });
            }
            if !self.plan.tasks.iter().any(|t| t.tool == e.tool) {
                return Err(Untrusted::OffPlan {
                    id: e.id.clone(),
                    tool: e.tool.clone(),
                });
            }
        }
        if let Some(n) = &f.narrative
            && n.len() > MAX_NARRATIVE_BYTES
        {
            return Err(Untrusted::Narrative { bytes: n.len() });
        }
        if f.order.len() > MAX_ORDER || f.order.iter().any(|o| o.len() > MAX_ORDER_ITEM_BYTES) {
            return Err(Untrusted::Order {
                count: f.order.len(),
            });
        }
        if let Some(s) = &f.stopped
            && s.len() > MAX_STOPPED_BYTES
        {
            return Err(Untrusted::Stopped { bytes: s.len() });
        }
        let bytes = serde_json::to_vec(f).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_FINDINGS_BYTES {
            return Err(Untrusted::TooLargeInAll { bytes });
        }
        Ok(())
    }

    /// The diagnosis these findings support: computed from the evidence,
    /// ordered as the model asked only among the causes found.
    pub fn diagnosis_of(&self, f: &Findings) -> Diagnosis {
        let mut d = diagnose(&self.alert, &observe(&f.evidence));
        d.reorder(&f.order);
        d
    }

    /// The plan with each task done that has its evidence.
    pub fn plan_after(&self, f: &Findings) -> Plan {
        let mut plan = self.plan.clone();
        for (task, e) in plan.tasks.iter_mut().zip(&f.evidence) {
            if task.tool == e.tool {
                task.status = crate::runbook::TaskStatus::Done;
                task.evidence = Some(e.id.clone());
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ToolStatus;
    use crate::gather::{Tool, status_of};
    use crate::runbook::{Task, TaskStatus};
    use oshal_kernel::name::Named;
    use serde_json::json;

    fn plan(tools: &[Tool]) -> Plan {
        Plan {
            runbooks: vec!["node-lost".into()],
            tasks: tools
                .iter()
                .enumerate()
                .map(|(i, t)| Task {
                    id: format!("T-{}", i + 1),
                    tool: t.as_str().into(),
                    params: json!({}),
                    why: "look".into(),
                    runbook: "node-lost".into(),
                    status: TaskStatus::Pending,
                    evidence: None,
                })
                .collect(),
            skipped: vec![],
        }
    }

    fn ev(n: usize, tool: Tool, result: Value) -> Evidence {
        Evidence::record(
            format!("E-{n}"),
            tool.as_str(),
            json!({}),
            status_of(&result),
            result,
            tool.replay("default", &json!({})),
            1,
        )
    }

    fn inv() -> Investigation {
        Investigation::start(
            "t1".into(),
            "OshalNodeLost".into(),
            plan(&[Tool::GetBots, Tool::GetHealth]),
            Bounds {
                max_steps: 3,
                ..Bounds::default()
            },
            0,
        )
    }

    fn dead_node() -> Value {
        json!({"bots": [
            {"id": "n1-bot-01", "node": "n1", "live": false, "in_flight": 0,
             "lane": {"depth": 2, "pending": 1, "lag_ms": 40000}},
            {"id": "n2-bot-01", "node": "n2", "live": true, "in_flight": 1, "lane": null}
        ]})
    }

    #[test]
    fn the_diagnosis_is_computed_from_the_evidence_and_the_model_only_reorders() {
        let i = inv();
        let f = Findings {
            evidence: vec![
                ev(1, Tool::GetBots, dead_node()),
                ev(2, Tool::GetHealth, json!({"store": "ok", "detail": null})),
            ],
            narrative: Some("node n1 died".into()),
            // An invented cause is ignored; the order holds among those found.
            order: vec!["secret_exposed:everything".into()],
            stopped: None,
        };
        i.check(&f).unwrap();
        let d = i.diagnosis_of(&f);
        assert_eq!(d.causes[0].subject, "n1");
        assert!(d.causes.iter().all(|c| c.subject != "everything"));
        let evidence: Vec<&str> = d.causes[0].supports[0]
            .evidence
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(evidence, ["E-1"]);
        let plan = i.plan_after(&f);
        assert!(plan.tasks.iter().all(|t| t.status == TaskStatus::Done));
        assert_eq!(plan.tasks[1].evidence.as_deref(), Some("E-2"));
    }

    #[test]
    fn findings_out_of_turn_off_plan_over_bounds_or_altered_are_refused() {
        let i = inv();
        let mut tampered = ev(1, Tool::GetBots, dead_node());
        tampered.result = json!({"bots": []});
        let refused = |evidence: Vec<Evidence>| {
            i.check(&Findings {
                evidence,
                narrative: None,
                order: vec![],
                stopped: None,
            })
            .unwrap_err()
        };
        assert!(matches!(
            refused(vec![tampered]),
            Untrusted::Tampered { .. }
        ));
        assert!(matches!(
            refused(vec![ev(2, Tool::GetBots, dead_node())]),
            Untrusted::Numbering { expected: 1, .. }
        ));
        assert!(matches!(
            refused(vec![ev(1, Tool::ListChanges, json!({"changes": [1]}))]),
            Untrusted::OffPlan { .. }
        ));
        let four = (1..=4)
            .map(|n| ev(n, Tool::GetHealth, json!({"store": "ok"})))
            .collect();
        assert!(matches!(
            refused(four),
            Untrusted::TooMany { count: 4, limit: 3 }
        ));
        let big = json!({"blob": "x".repeat(MAX_EVIDENCE_BYTES)});
        assert!(matches!(
            refused(vec![ev(1, Tool::GetBots, big)]),
            Untrusted::TooLarge { .. }
        ));
    }

    #[test]
    fn an_answer_too_large_is_kept_as_its_size_and_head() {
        let big = json!({"blob": "x".repeat(3 * MAX_EVIDENCE_BYTES)});
        let kept = keepable(big);
        assert_eq!(kept["truncated"], true);
        assert!(json_len(&kept) <= MAX_EVIDENCE_BYTES);
        let small = json!({"store": "ok"});
        assert_eq!(keepable(small.clone()), small);
        assert_eq!(
            status_of(&kept),
            ToolStatus::Success,
            "a truncated answer still says something"
        );
    }
}
