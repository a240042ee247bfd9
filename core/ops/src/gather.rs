//! Gather: the investigation's read-only tools (what each asks, what each
//! answers) and the observations read from their answers.
//!
//! The tools are the operations of the platform's built-in `oshal-ops`
//! connector; an investigation reaches them only through the connector
//! broker's gate, with grants bound to its ticket. This module says what
//! they are and how an answer becomes an [`Observed`] tied to the evidence
//! it came from; the adapter serves them from the controller's own state.
//! An answer that does not read as its tool's reading yields no fact (it
//! stays evidence, and the diagnosis says what it could not conclude).
//! Pure logic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use specta::Type;

use crate::change::{ChangeEvent, ChangeKind};
use crate::diagnose::{Fact, Observed};
use crate::evidence::{Evidence, ToolStatus};

/// The investigation connector's id.
pub const CONNECTOR: &str = "oshal-ops";

/// A read-only tool of an investigation.
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
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Tool {
    /// Every bot: its node, whether its heartbeat is live, its lane's
    /// waiting, unacknowledged and lag.
    GetBots,
    /// Whether the store answers, and why not.
    GetHealth,
    /// The change events of the tenant since a time: nodes joining and
    /// leaving, tickets requeued from lost bots, budgets, deploys.
    ListChanges,
    /// Each tenant's budget and what it has spent (a tenant's own
    /// investigation reads only its own).
    GetSpend,
}

impl Tool {
    /// What it is for, as the connector's manifest says.
    pub fn summary(self) -> &'static str {
        match self {
            Tool::GetBots => "Every bot with its node, heartbeat and lane figures",
            Tool::GetHealth => "Whether the store answers, and why not",
            Tool::ListChanges => "Change events since a time (nodes, requeues, budgets, deploys)",
            Tool::GetSpend => "Each tenant's budget and spend",
        }
    }

    /// Its parameters' JSON Schema.
    pub fn params_schema(self) -> Value {
        match self {
            Tool::GetBots | Tool::GetHealth | Tool::GetSpend => {
                json!({"type": "object", "additionalProperties": false})
            }
            Tool::ListChanges => json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"since_ms": {"type": "integer", "minimum": 0}}
            }),
        }
    }

    /// The same lookup on the HTTP API, for a person to run again.
    pub fn replay(self, tenant: &str, params: &Value) -> String {
        match self {
            Tool::GetBots => "GET /api/v1/bots".into(),
            Tool::GetHealth => "GET /api/v1/health".into(),
            Tool::GetSpend => "GET /api/v1/tenants; GET /api/v1/cost/summary".into(),
            Tool::ListChanges => {
                let since = params.get("since_ms").and_then(Value::as_i64).unwrap_or(0);
                format!("GET /api/v1/ops/changes?tenant={tenant}&since_ms={since}")
            }
        }
    }
}

/// A lane's figures as `get_bots` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct LaneReading {
    pub depth: u32,
    pub pending: u32,
    #[specta(type = specta_typescript::Number)]
    pub lag_ms: u64,
}

/// One bot as `get_bots` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BotReading {
    pub id: String,
    /// `local` for the desktop's own pool.
    pub node: String,
    pub live: bool,
    pub in_flight: u32,
    /// `None`: its lane could not be read.
    pub lane: Option<LaneReading>,
}

/// `get_bots`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BotsReading {
    pub bots: Vec<BotReading>,
}

/// `get_health`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct HealthReading {
    /// `ok`, `unavailable` or `shutting_down`.
    pub store: String,
    pub detail: Option<String>,
}

/// One tenant's budget and spend, in nano-dollars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TenantSpend {
    pub tenant: String,
    /// `None`: no limit.
    #[specta(type = Option<specta_typescript::Number>)]
    pub budget_nusd: Option<i64>,
    #[specta(type = specta_typescript::Number)]
    pub spend_nusd: i64,
}

/// `get_spend`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SpendReading {
    pub tenants: Vec<TenantSpend>,
}

/// `list_changes`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ChangesReading {
    pub changes: Vec<ChangeEvent>,
}

/// Whether an answer holds anything to look at: an empty list is
/// `no_data`, not a success that says nothing.
pub fn status_of(result: &Value) -> ToolStatus {
    let empty = match result {
        Value::Null => true,
        Value::Object(m) => m
            .values()
            .all(|v| matches!(v, Value::Array(a) if a.is_empty())),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        ToolStatus::NoData
    } else {
        ToolStatus::Success
    }
}

/// The facts one piece of evidence shows. Only successful answers of a
/// known tool that read as its reading show any.
fn facts(e: &Evidence) -> Vec<Fact> {
    if e.status != ToolStatus::Success {
        return Vec::new();
    }
    let Some(tool) = <Tool as oshal_kernel::name::Named>::parse(&e.tool) else {
        return Vec::new();
    };
    match tool {
        Tool::GetBots => serde_json::from_value::<BotsReading>(e.result.clone())
            .map(|r| bots_facts(&r))
            .unwrap_or_default(),
        Tool::GetHealth => serde_json::from_value::<HealthReading>(e.result.clone())
            .map(|r| match r.store.as_str() {
                "ok" => vec![Fact::StoreHealthy],
                _ => vec![Fact::StoreUnavailable {
                    detail: r.detail.unwrap_or(r.store),
                }],
            })
            .unwrap_or_default(),
        Tool::ListChanges => serde_json::from_value::<ChangesReading>(e.result.clone())
            .map(|r| changes_facts(&r))
            .unwrap_or_default(),
        Tool::GetSpend => serde_json::from_value::<SpendReading>(e.result.clone())
            .map(|r| {
                r.tenants
                    .into_iter()
                    .filter(|t| t.budget_nusd.is_some_and(|b| t.spend_nusd >= b))
                    .map(|t| Fact::BudgetExhausted { tenant: t.tenant })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn bots_facts(r: &BotsReading) -> Vec<Fact> {
    // A node is present if any of its bots is live.
    let mut nodes: BTreeMap<&str, bool> = BTreeMap::new();
    for b in &r.bots {
        *nodes.entry(b.node.as_str()).or_default() |= b.live;
    }
    let mut out: Vec<Fact> = nodes
        .iter()
        .map(|(node, live)| match live {
            true => Fact::NodePresent {
                node: (*node).to_owned(),
            },
            false => Fact::NodeAbsent {
                node: (*node).to_owned(),
            },
        })
        .collect();
    for b in &r.bots {
        if let Some(l) = &b.lane
            && l.depth + l.pending > 0
        {
            out.push(Fact::LaneBacklog {
                bot: b.id.clone(),
                node: b.node.clone(),
                depth: l.depth,
                pending: l.pending,
                lag_ms: l.lag_ms,
            });
        }
    }
    out
}

fn changes_facts(r: &ChangesReading) -> Vec<Fact> {
    let requeued: u32 = r
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::TicketsRequeued)
        .map(|c| c.count)
        .sum();
    let redriven: u32 = r
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::LanesReset)
        .map(|c| c.count)
        .sum();
    let mut out = Vec::new();
    if requeued > 0 {
        out.push(Fact::TicketsRequeued { count: requeued });
    }
    if r.changes.iter().any(|c| c.kind == ChangeKind::LanesReset) {
        out.push(Fact::RedisEpochReset);
        if redriven > 0 {
            out.push(Fact::TicketsRedriven { count: redriven });
        }
    }
    out
}

/// Every observation the evidence shows, each tied to the evidence ids it
/// was read from (one fact seen in two answers names both).
pub fn observe(evidence: &[Evidence]) -> Vec<Observed> {
    let mut seen: Vec<Observed> = Vec::new();
    for e in evidence {
        for fact in facts(e) {
            match seen.iter_mut().find(|o| o.fact == fact) {
                Some(o) => o.evidence.push(e.id.clone()),
                None => seen.push(Observed {
                    fact,
                    evidence: vec![e.id.clone()],
                }),
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{CauseKind, diagnose};
    use oshal_kernel::name::Named;

    fn ev(id: &str, tool: Tool, result: Value) -> Evidence {
        Evidence::record(
            id.into(),
            tool.as_str(),
            json!({}),
            status_of(&result),
            result,
            tool.replay("default", &json!({})),
            1,
        )
    }

    fn bot(id: &str, node: &str, live: bool, depth: u32) -> BotReading {
        BotReading {
            id: id.into(),
            node: node.into(),
            live,
            in_flight: 0,
            lane: Some(LaneReading {
                depth,
                pending: 0,
                lag_ms: u64::from(depth) * 1000,
            }),
        }
    }

    #[test]
    fn a_dead_node_is_read_from_the_bots_and_ranked_first() {
        let bots = BotsReading {
            bots: vec![
                bot("n1-bot-01", "n1", false, 4),
                bot("n2-bot-01", "n2", true, 0),
            ],
        };
        let changes = ChangesReading {
            changes: vec![ChangeEvent {
                kind: ChangeKind::TicketsRequeued,
                subject: "n1-bot-01".into(),
                detail: "bot n1-bot-01 lost (heartbeat expired); requeued".into(),
                count: 3,
                at_ms: 1,
            }],
        };
        let evidence = [
            ev("E-1", Tool::GetBots, serde_json::to_value(&bots).unwrap()),
            ev(
                "E-2",
                Tool::GetHealth,
                json!({"store": "ok", "detail": null}),
            ),
            ev(
                "E-3",
                Tool::ListChanges,
                serde_json::to_value(&changes).unwrap(),
            ),
        ];
        let observed = observe(&evidence);
        assert!(observed.contains(&Observed {
            fact: Fact::NodeAbsent { node: "n1".into() },
            evidence: vec!["E-1".into()],
        }));
        assert!(observed.contains(&Observed {
            fact: Fact::TicketsRequeued { count: 3 },
            evidence: vec!["E-3".into()],
        }));
        let d = diagnose("OshalNodeLost", &observed);
        assert!(!d.inconclusive);
        assert_eq!(
            (d.causes[0].kind, d.causes[0].subject.as_str()),
            (CauseKind::NodeDown, "n1")
        );
        assert_eq!(d.backed_share(), 1.0);
    }

    #[test]
    fn a_tenant_at_its_budget_is_read_from_the_spend_and_ranked_first() {
        let spend = SpendReading {
            tenants: vec![
                TenantSpend {
                    tenant: "acme".into(),
                    budget_nusd: Some(1_000),
                    spend_nusd: 1_000,
                },
                TenantSpend {
                    tenant: "globex".into(),
                    budget_nusd: Some(1_000),
                    spend_nusd: 999,
                },
                TenantSpend {
                    tenant: "initech".into(),
                    budget_nusd: None,
                    spend_nusd: 9_999,
                },
            ],
        };
        let e = ev("E-1", Tool::GetSpend, serde_json::to_value(&spend).unwrap());
        let observed = observe(&[e]);
        assert_eq!(
            observed,
            [Observed {
                fact: Fact::BudgetExhausted {
                    tenant: "acme".into()
                },
                evidence: vec!["E-1".into()],
            }]
        );
        let d = diagnose("OshalBudgetExhausted", &observed);
        assert_eq!(
            (d.causes[0].kind, d.causes[0].subject.as_str()),
            (CauseKind::BudgetExhausted, "acme")
        );
    }

    #[test]
    fn an_answer_that_is_not_its_tools_reading_shows_nothing() {
        let odd = ev("E-1", Tool::GetBots, json!({"bots": "many"}));
        assert!(observe(&[odd]).is_empty());
        let failed = Evidence::record(
            "E-2".into(),
            "get_bots",
            json!({}),
            ToolStatus::Error,
            json!({"error": "denied"}),
            String::new(),
            1,
        );
        assert!(observe(&[failed]).is_empty());
        let unknown = Evidence::record(
            "E-3".into(),
            "drop_tables",
            json!({}),
            ToolStatus::Success,
            json!({"store": "ok"}),
            String::new(),
            1,
        );
        assert!(observe(&[unknown]).is_empty());
    }

    #[test]
    fn an_empty_answer_is_no_data() {
        assert_eq!(status_of(&json!({"changes": []})), ToolStatus::NoData);
        assert_eq!(status_of(&json!({"bots": [1]})), ToolStatus::Success);
        assert_eq!(status_of(&json!({"store": "ok"})), ToolStatus::Success);
    }

    #[test]
    fn one_fact_seen_twice_names_both_pieces_of_evidence() {
        let health = json!({"store": "unavailable", "detail": "connection refused"});
        let o = observe(&[
            ev("E-1", Tool::GetHealth, health.clone()),
            ev("E-2", Tool::GetHealth, health),
        ]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].evidence, ["E-1", "E-2"]);
    }

    #[test]
    fn every_tool_has_a_schema_and_a_replay() {
        for &t in Tool::all() {
            assert_eq!(t.params_schema()["type"], "object");
            assert!(
                t.replay("acme", &json!({"since_ms": 5}))
                    .starts_with("GET /api/v1/")
            );
        }
        assert_eq!(
            Tool::ListChanges.replay("acme", &json!({"since_ms": 5})),
            "GET /api/v1/ops/changes?tenant=acme&since_ms=5"
        );
    }
}
