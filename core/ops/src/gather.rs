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
    /// The tickets that failed for good since a time, grouped by kind and
    /// error (an outside system's 5xx told apart from the rest).
    ListFailures,
    /// The Security Center's open findings (rule, object, severity; never
    /// a secret's value).
    ListFindings,
}

impl Tool {
    /// What it is for, as the connector's manifest says.
    pub fn summary(self) -> &'static str {
        match self {
            Tool::GetBots => "Every bot with its node, heartbeat and lane figures",
            Tool::GetHealth => "Whether the store answers, and why not",
            Tool::ListChanges => "Change events since a time (nodes, requeues, budgets, deploys)",
            Tool::GetSpend => "Each tenant's budget and spend",
            Tool::ListFailures => "Tickets dead since a time, grouped by kind and error",
            Tool::ListFindings => "The Security Center's open findings",
        }
    }

    /// Its parameters' JSON Schema.
    pub fn params_schema(self) -> Value {
        match self {
            Tool::GetBots | Tool::GetHealth | Tool::ListFindings => {
                json!({"type": "object", "additionalProperties": false})
            }
            Tool::GetSpend => json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 64}}
            }),
            Tool::ListChanges => json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"since_ms": {"type": "integer", "minimum": 0}}
            }),
            Tool::ListFailures => json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "since_ms": {"type": "integer", "minimum": 0},
                    "tenant": {"type": "string", "minLength": 1, "maxLength": 64}
                }
            }),
        }
    }

    /// The same lookup on the HTTP API, for a person to run again.
    pub fn replay(self, tenant: &str, params: &Value) -> String {
        match self {
            Tool::GetBots => "GET /api/v1/bots".into(),
            Tool::GetHealth => "GET /api/v1/health".into(),
            Tool::GetSpend => match params.get("tenant").and_then(Value::as_str) {
                Some(of) => format!("GET /api/v1/tenants; GET /api/v1/cost/summary?tenant={of}"),
                None => "GET /api/v1/tenants; GET /api/v1/cost/summary".into(),
            },
            Tool::ListFindings => "GET /api/v1/security/findings?state=open".into(),
            Tool::ListChanges => {
                let since = params.get("since_ms").and_then(Value::as_i64).unwrap_or(0);
                format!("GET /api/v1/ops/changes?tenant={tenant}&since_ms={since}")
            }
            Tool::ListFailures => {
                let of = params
                    .get("tenant")
                    .and_then(Value::as_str)
                    .unwrap_or(tenant);
                format!("GET /api/v1/tickets?state=dead&tenant={of}")
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
    /// Drained: live, routed nothing more (its slowness delays no one).
    #[serde(default)]
    pub cordoned: bool,
    pub in_flight: u32,
    /// The median time of its recent attempts, start to result (`None`:
    /// none ended lately).
    #[specta(type = Option<specta_typescript::Number>)]
    pub attempt_ms: Option<u64>,
    /// `None`: its lane could not be read.
    pub lane: Option<LaneReading>,
}

/// A bot whose recent attempts take this long at the median, with work
/// waiting in its lane, is slow: one model call takes longer than a person
/// waits for a chat reply, and the lane grows behind it.
pub const SLOW_ATTEMPT_MS: u64 = 2_000;

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
    /// The burn-rate pair its spend fires, if any (`crate::burn`).
    #[serde(default)]
    pub burning: Option<crate::burn::Burning>,
}

/// `get_spend`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SpendReading {
    pub tenants: Vec<TenantSpend>,
}

/// Tickets of one kind that failed for good with one error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FailureGroup {
    pub tenant: String,
    pub kind: String,
    /// The error, as the newest of them ended with it (at most 512 bytes).
    pub error: String,
    pub count: u32,
    #[specta(type = specta_typescript::Number)]
    pub newest_ms: i64,
    /// At most 5 of them, newest first.
    pub tickets: Vec<String>,
}

/// `list_failures`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FailuresReading {
    pub failures: Vec<FailureGroup>,
}

/// The Security Center's rule of a secret found in the clear.
pub const SECRET_RULE: &str = "secrets.exposed";

/// One open finding as `list_findings` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FindingReading {
    pub id: String,
    pub rule: String,
    pub object: String,
    pub severity: String,
}

/// `list_findings`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FindingsReading {
    pub findings: Vec<FindingReading>,
}

/// One dead ticket, as the adapter reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadTicket {
    pub id: String,
    pub tenant: String,
    pub kind: String,
    pub error: String,
    pub at_ms: i64,
}

/// Bytes of a failure's error kept.
const MAX_FAILURE_ERROR: usize = 512;

/// The error with what differs between tickets (digits: ids, counts,
/// times) taken out, so one cause is one group.
fn error_class(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut digits = false;
    for c in error.chars() {
        if c.is_ascii_digit() || (digits && c.is_ascii_hexdigit()) {
            if !digits {
                out.push('#');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out
}

/// Dead tickets grouped by tenant, kind and error class, the largest
/// groups first. An outside system's status survives the grouping: it is
/// part of the error kept.
pub fn group_failures(dead: &[DeadTicket]) -> FailuresReading {
    let mut groups: BTreeMap<(String, String, String), FailureGroup> = BTreeMap::new();
    let mut sorted: Vec<&DeadTicket> = dead.iter().collect();
    sorted.sort_by_key(|d| std::cmp::Reverse(d.at_ms));
    for d in sorted {
        let key = (d.tenant.clone(), d.kind.clone(), error_class(&d.error));
        let g = groups.entry(key).or_insert_with(|| FailureGroup {
            tenant: d.tenant.clone(),
            kind: d.kind.clone(),
            error: oshal_kernel::text::clip(&d.error, MAX_FAILURE_ERROR).to_owned(),
            count: 0,
            newest_ms: d.at_ms,
            tickets: Vec::new(),
        });
        g.count += 1;
        if g.tickets.len() < 5 {
            g.tickets.push(d.id.clone());
        }
    }
    let mut failures: Vec<FailureGroup> = groups.into_values().collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(b.newest_ms.cmp(&a.newest_ms)));
    FailuresReading { failures }
}

/// The connector and status of an outside system's refusal, from a tool
/// ticket's error as the connector runtime words it (`crm.find answered
/// 503`, or `crm.find: 3 tries failed, the last with 503`).
pub fn outside_status(error: &str) -> Option<(String, u16)> {
    let words: Vec<&str> = error.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let status = match *w {
            "answered" => words.get(i + 1),
            "with" if i >= 2 && words[i - 1] == "last" => words.get(i + 1),
            _ => None,
        };
        let Some(status) =
            status.and_then(|s| s.trim_end_matches([',', '.', ';']).parse::<u16>().ok())
        else {
            continue;
        };
        if !(100..600).contains(&status) {
            continue;
        }
        // The connector is the `id.operation` named before it.
        let named = words[..i].iter().rev().find_map(|w| {
            let w = w.trim_end_matches(':');
            let (connector, op) = w.split_once('.')?;
            (!connector.is_empty() && !op.is_empty()).then(|| connector.to_owned())
        });
        if let Some(named) = named {
            return Some((named, status));
        }
    }
    None
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
        Tool::ListFailures => serde_json::from_value::<FailuresReading>(e.result.clone())
            .map(|r| failures_facts(&r))
            .unwrap_or_default(),
        Tool::ListFindings => serde_json::from_value::<FindingsReading>(e.result.clone())
            .map(|r| {
                r.findings
                    .into_iter()
                    .filter(|f| f.rule == SECRET_RULE)
                    .map(|f| Fact::SecretFound {
                        rule: f.rule,
                        object: f.object,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Tool::GetSpend => serde_json::from_value::<SpendReading>(e.result.clone())
            .map(|r| {
                r.tenants
                    .into_iter()
                    .filter_map(|t| {
                        let budget = t.budget_nusd?;
                        if t.spend_nusd >= budget {
                            return Some(Fact::BudgetExhausted { tenant: t.tenant });
                        }
                        let b = t.burning?;
                        Some(Fact::SpendBurning {
                            burn_tenths: b.burn_tenths(),
                            long_secs: b.long_secs,
                            short_secs: b.short_secs,
                            rate_nusd_per_h: b.short_rate_nusd_per_h,
                            left_mins: b.minutes_for(budget - t.spend_nusd),
                            tenant: t.tenant,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// An outside system's refusals, by connector and status; every other
/// failure as dead letters of its kind.
fn failures_facts(r: &FailuresReading) -> Vec<Fact> {
    let mut outside: BTreeMap<(String, u16), u32> = BTreeMap::new();
    let mut out = Vec::new();
    for g in &r.failures {
        match outside_status(&g.error) {
            Some(key) => *outside.entry(key).or_default() += g.count,
            None => out.push(Fact::DeadLetters {
                kind: g.kind.clone(),
                reason: oshal_kernel::text::clip(&g.error, 200).to_owned(),
                count: g.count,
            }),
        }
    }
    out.extend(
        outside
            .into_iter()
            .map(|((connector, status), count)| Fact::ConnectorFailures {
                connector,
                status,
                count,
            }),
    );
    out
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
            let routed_to = b.live && !b.cordoned;
            if let Some(median_ms) = b
                .attempt_ms
                .filter(|ms| routed_to && *ms >= SLOW_ATTEMPT_MS)
            {
                out.push(Fact::SlowAttempts {
                    bot: b.id.clone(),
                    median_ms,
                });
            }
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
    if let Some(o) = r
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::StoreOutage)
        .max_by_key(|c| c.count)
    {
        out.push(Fact::StoreOutage {
            secs: u64::from(o.count),
            detail: o.detail.clone(),
        });
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
mod tests;
