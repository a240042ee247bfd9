//! Heal: a diagnosed cause healed by one write, only once a person has
//! approved it.
//!
//! Heal rules ([`HealRule`]: trigger, criteria, action) are matched
//! against an investigation's diagnosis by [`candidates`]: a conclusive
//! top cause of the rule's kind, an incident whose first alert its
//! matchers match, and no heal of that rule on the incident yet (once
//! until it resolves), in the settings' order. The adapter fills each
//! rule's template in from the platform's figures, in that order, until
//! one holds, into a concrete [`Action`] and works out its [`DryRun`]: what it would change,
//! from what to what, and its blast radius (the tenants, bots and tickets
//! it touches). That is what the person approving sees.
//!
//! A heal's life, in StackStorm's execution statuses: `pending` (an
//! inquiry, waiting for a person), `denied`, `scheduled` (approved, its
//! ticket not yet submitted), `running`, `succeeded`, `failed`. After it
//! succeeds the incident is investigated again ([`Recheck`]), and the heal
//! holds only if that re-check no longer finds the cause ([`cleared`]).
//! Each heal links its alert, incident, the evidence of the cause, the
//! approval, the action's ticket and the re-check. Pure logic.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::alert::Labels;

use crate::diagnose::{CONCLUSIVE, CauseKind, Diagnosis};
use crate::gather::{DeadTicket, outside_status};
use crate::rule::{ActionTemplate, HealRule, all_match, matchers};

/// One dollar, in nano-dollars.
const USD: i64 = 1_000_000_000;
/// The most bytes a dry run's figures may hold.
pub const MAX_DRY_RUN_BYTES: usize = 16 * 1024;
/// The most tickets a blast radius names (the total counts them all).
pub const MAX_BLAST_TICKETS: usize = 20;

/// One concrete write, as the built-in `oshal-ops` connector's operation
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Set a tenant's budget to this many nano-dollars.
    SetBudget {
        tenant: String,
        #[specta(type = specta_typescript::Number)]
        budget_nusd: i64,
    },
    /// Lower a tenant's budget from `from_nusd` (what it was when the cap
    /// was worked out: a budget changed since is let be) to
    /// `budget_nusd`, never raising it.
    CapBudget {
        tenant: String,
        #[specta(type = specta_typescript::Number)]
        from_nusd: i64,
        #[specta(type = specta_typescript::Number)]
        budget_nusd: i64,
    },
    /// Run these dead tickets of a tenant again, each once as a new ticket
    /// (at most [`MAX_BLAST_TICKETS`]).
    ReplayDead {
        tenant: String,
        tickets: Vec<String>,
    },
    /// Revoke these grants on a connector (at most [`MAX_BLAST_GRANTS`]);
    /// one already gone is let be.
    RevokeGrants {
        connector: String,
        grants: Vec<String>,
    },
    /// Retire a lost node: its bots leave the view.
    RetireNode { node: String },
    /// Drain a live bot: it is routed nothing more, and what waits in its
    /// lane goes back to the queue for other bots.
    DrainBot { bot: String },
    /// Drain every live bot of a node at once (refused whole if that
    /// would leave a skill no bot to go to): each finishes what it holds
    /// and is routed nothing more; what waits in their lanes goes back
    /// to the queue for other nodes' bots.
    DrainNode { node: String },
    /// Pause a tenant: its tickets are admitted and kept, not routed,
    /// until a person resumes it.
    PauseTenant { tenant: String },
    /// Rotate a connector's OAuth2 refresh token that a Security Center
    /// finding holds: a new one is stored, the old and exposed ones ended
    /// (revoked where the provider names a revocation endpoint) and proved
    /// refused, and the finding suppressed with what was done (the text
    /// stays where it was found, now dead).
    RotateCredential { connector: String, finding: String },
    /// Restart run `run` of a live node: it stops as on SIGTERM (its bots
    /// abandon their calls, what they held goes back to the queue) and
    /// starts again under its name as a new run. Naming the run makes a
    /// retry harmless: the run that came back is not the one named.
    RestartNode { node: String, run: String },
}

/// The most grants one revocation names.
pub const MAX_BLAST_GRANTS: usize = 50;

/// The parameters' schema of an operation that takes one name (a node,
/// a bot, a tenant) in `field`.
fn named(field: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": [field],
        "properties": {
            field: {"type": "string", "minLength": 1, "maxLength": 64}
        }
    })
}

impl Action {
    /// The connector operation that applies it.
    pub fn operation(&self) -> &'static str {
        match self {
            Action::SetBudget { .. } => "set_budget",
            Action::CapBudget { .. } => "cap_budget",
            Action::ReplayDead { .. } => "replay_dead",
            Action::RevokeGrants { .. } => "revoke_grants",
            Action::RetireNode { .. } => "retire_node",
            Action::DrainBot { .. } => "drain_bot",
            Action::DrainNode { .. } => "drain_node",
            Action::PauseTenant { .. } => "pause_tenant",
            Action::RotateCredential { .. } => "rotate_credential",
            Action::RestartNode { .. } => "restart_node",
        }
    }

    /// Its parameters for that operation.
    pub fn params(&self) -> Value {
        match self {
            Action::SetBudget {
                tenant,
                budget_nusd,
            } => json!({"tenant": tenant, "budget_nusd": budget_nusd}),
            Action::CapBudget {
                tenant,
                from_nusd,
                budget_nusd,
            } => json!({"tenant": tenant, "from_nusd": from_nusd, "budget_nusd": budget_nusd}),
            Action::ReplayDead { tenant, tickets } => {
                json!({"tenant": tenant, "tickets": tickets})
            }
            Action::RevokeGrants { connector, grants } => {
                json!({"connector": connector, "grants": grants})
            }
            Action::RetireNode { node } => json!({"node": node}),
            Action::DrainBot { bot } => json!({"bot": bot}),
            Action::DrainNode { node } => json!({"node": node}),
            Action::RestartNode { node, run } => json!({"node": node, "run": run}),
            Action::PauseTenant { tenant } => json!({"tenant": tenant}),
            Action::RotateCredential { connector, finding } => {
                json!({"connector": connector, "finding": finding})
            }
        }
    }

    /// The action a write operation's call asks for: its operation and
    /// parameters, checked against the operation's schema's bounds.
    pub fn from_call(operation: &str, params: &Value) -> Result<Action, String> {
        let mut v = match params {
            Value::Object(m) => m.clone(),
            _ => return Err("params: must be an object".into()),
        };
        v.insert("action".into(), Value::String(operation.to_owned()));
        let action: Action =
            serde_json::from_value(Value::Object(v)).map_err(|e| format!("params: {e}"))?;
        let (field, n, max) = match &action {
            Action::SetBudget { .. }
            | Action::CapBudget { .. }
            | Action::RetireNode { .. }
            | Action::DrainBot { .. }
            | Action::DrainNode { .. }
            | Action::PauseTenant { .. } => {
                return Ok(action);
            }
            Action::RestartNode { run, .. } => {
                let n = run.chars().count();
                if n == 0 || n > 64 {
                    return Err(format!("params.run: {n} characters; must be 1 to 64"));
                }
                return Ok(action);
            }
            Action::RotateCredential { connector, finding } => {
                for (field, v, max) in [("connector", connector, 64), ("finding", finding, 16)] {
                    if v.is_empty() || v.chars().count() > max {
                        return Err(format!(
                            "params.{field}: {} characters; must be 1 to {max}",
                            v.chars().count()
                        ));
                    }
                }
                return Ok(action);
            }
            Action::ReplayDead { tickets, .. } => ("tickets", tickets.len(), MAX_BLAST_TICKETS),
            Action::RevokeGrants { grants, .. } => ("grants", grants.len(), MAX_BLAST_GRANTS),
        };
        if n == 0 || n > max {
            return Err(format!("params.{field}: names {n}; must name 1 to {max}"));
        }
        Ok(action)
    }

    /// Every write operation a heal may take, with its parameters' JSON
    /// Schema and what it does.
    pub fn operations() -> [(&'static str, Value, &'static str); 10] {
        [
            (
                "set_budget",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tenant", "budget_nusd"],
                    "properties": {
                        "tenant": {"type": "string", "minLength": 1, "maxLength": 64},
                        "budget_nusd": {"type": "integer", "minimum": 0}
                    }
                }),
                "Raise a tenant's budget (a heal's write: needs an approval)",
            ),
            (
                "replay_dead",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tenant", "tickets"],
                    "properties": {
                        "tenant": {"type": "string", "minLength": 1, "maxLength": 64},
                        "tickets": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BLAST_TICKETS,
                            "items": {"type": "string", "minLength": 36, "maxLength": 36}
                        }
                    }
                }),
                "Run a tenant's dead tickets again, each once as a new ticket (a heal's write: needs an approval)",
            ),
            (
                "revoke_grants",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["connector", "grants"],
                    "properties": {
                        "connector": {"type": "string", "minLength": 1, "maxLength": 64},
                        "grants": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BLAST_GRANTS,
                            "items": {"type": "string", "minLength": 1, "maxLength": 64}
                        }
                    }
                }),
                "Revoke grants on a connector: its calls are denied until granted again (a heal's write: needs an approval)",
            ),
            (
                "retire_node",
                named("node"),
                "Retire a lost node: its bots leave the view and its alert resolves (a heal's write: needs an approval)",
            ),
            (
                "drain_bot",
                named("bot"),
                "Drain a live bot: it finishes what it holds and is routed nothing more; the tickets waiting in its lane go to other bots (a heal's write: needs an approval)",
            ),
            (
                "pause_tenant",
                named("tenant"),
                "Pause a tenant: its tickets are admitted and kept, not routed, until a person resumes it (a heal's write: needs an approval)",
            ),
            (
                "cap_budget",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tenant", "from_nusd", "budget_nusd"],
                    "properties": {
                        "tenant": {"type": "string", "minLength": 1, "maxLength": 64},
                        "from_nusd": {"type": "integer", "minimum": 0},
                        "budget_nusd": {"type": "integer", "minimum": 0}
                    }
                }),
                "Lower a tenant's budget, as it was when the cap was worked out, to stop a runaway spend (a heal's write: needs an approval)",
            ),
            (
                "drain_node",
                named("node"),
                "Drain every live bot of a node at once: each finishes what it holds and is routed nothing more; the tickets waiting in their lanes go to other nodes' bots (a heal's write: needs an approval)",
            ),
            (
                "rotate_credential",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["connector", "finding"],
                    "properties": {
                        "connector": {"type": "string", "minLength": 1, "maxLength": 64},
                        "finding": {"type": "string", "minLength": 1, "maxLength": 16}
                    }
                }),
                "Rotate a connector's exposed OAuth2 refresh token: store a new one, end the old and exposed ones (revoked where the provider can) and prove them refused, then suppress the finding that held it (a heal's write: needs an approval)",
            ),
            (
                "restart_node",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "run"],
                    "properties": {
                        "node": {"type": "string", "minLength": 1, "maxLength": 64},
                        "run": {"type": "string", "minLength": 1, "maxLength": 64}
                    }
                }),
                "Restart a run of a live node: it stops as on SIGTERM, what its bots held goes back to the queue, and it starts again under its name as a new run (a heal's write: needs an approval)",
            ),
        ]
    }

    /// Whether `template` makes this kind of action.
    pub fn follows(&self, template: &ActionTemplate) -> bool {
        matches!(
            (self, template),
            (Action::SetBudget { .. }, ActionTemplate::RaiseBudget { .. })
                | (Action::CapBudget { .. }, ActionTemplate::CapBudget { .. })
                | (Action::ReplayDead { .. }, ActionTemplate::ReplayDead)
                | (Action::RevokeGrants { .. }, ActionTemplate::RevokeGrants)
                | (Action::RetireNode { .. }, ActionTemplate::RetireNode)
                | (Action::DrainBot { .. }, ActionTemplate::DrainBot)
                | (Action::DrainNode { .. }, ActionTemplate::DrainNode)
                | (Action::RestartNode { .. }, ActionTemplate::RestartNode)
                | (Action::PauseTenant { .. }, ActionTemplate::PauseTenant)
                | (
                    Action::RotateCredential { .. },
                    ActionTemplate::RotateCredential
                )
        )
    }
}

/// Whether a replay of `cause` in `subject` runs this dead ticket again:
/// for an outside system failing, the tickets it refused with a 5xx (a
/// 4xx is the ticket's own fault, and fails again); for a poison input,
/// the tickets of that kind that no outside system refused.
pub fn replays(dead: &DeadTicket, cause: CauseKind, subject: &str) -> bool {
    let outside = outside_status(&dead.error);
    match cause {
        CauseKind::OutsideSystemFailing => {
            outside.is_some_and(|(connector, status)| connector == subject && status >= 500)
        }
        CauseKind::PoisonInput => outside.is_none() && dead.kind == subject,
        _ => false,
    }
}

/// A raised budget: `percent` more than the larger of the budget, the
/// spend and one dollar.
pub fn raised_budget(budget_nusd: Option<i64>, spent_nusd: i64, percent: u32) -> i64 {
    let base = budget_nusd.unwrap_or(0).max(spent_nusd).max(USD);
    base.saturating_add((base / 100).saturating_mul(i64::from(percent)))
}

/// A capped budget: what has been spent plus what `rate_nusd_per_h`
/// spends in `minutes` more, never above the budget there is.
pub fn capped_budget(budget_nusd: i64, spent_nusd: i64, rate_nusd_per_h: i64, minutes: u32) -> i64 {
    let more = i128::from(rate_nusd_per_h.max(0)) * i128::from(minutes) / 60;
    let cap = i128::from(spent_nusd.max(0)) + more;
    i64::try_from(cap).unwrap_or(i64::MAX).min(budget_nusd)
}

/// What an action touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BlastRadius {
    pub tenants: Vec<String>,
    pub bots: Vec<String>,
    /// Some of them (at most [`MAX_BLAST_TICKETS`]; for a budget, those
    /// waiting in the queue).
    pub tickets: Vec<String>,
    /// How many tickets in all.
    pub tickets_total: u32,
}

impl BlastRadius {
    /// Only these bots: an action that touches no tenant and no ticket.
    pub fn bots(bots: Vec<String>) -> Self {
        Self {
            tenants: Vec::new(),
            bots,
            tickets: Vec::new(),
            tickets_total: 0,
        }
    }
}

/// What an action would do, worked out without doing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct DryRun {
    /// In a sentence.
    pub summary: String,
    /// The figures it changes, as they are.
    #[specta(type = specta_typescript::Unknown)]
    pub before: Value,
    /// The same figures, as they would be.
    #[specta(type = specta_typescript::Unknown)]
    pub after: Value,
    pub blast: BlastRadius,
}

impl DryRun {
    /// Within its bounds.
    pub fn check(&self) -> Result<(), String> {
        if self.blast.tickets.len() > MAX_BLAST_TICKETS {
            return Err(format!(
                "names {} tickets; the limit is {MAX_BLAST_TICKETS} (the total counts the rest)",
                self.blast.tickets.len()
            ));
        }
        let bytes = serde_json::to_string(self).map_or(usize::MAX, |s| s.len());
        if bytes > MAX_DRY_RUN_BYTES {
            return Err(format!(
                "holds {bytes} bytes; the limit is {MAX_DRY_RUN_BYTES}"
            ));
        }
        Ok(())
    }
}

/// Where a heal is (StackStorm's execution statuses).
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
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HealPhase {
    /// Waiting for a person to approve or deny it.
    Pending,
    Denied,
    /// Approved; its ticket is not submitted yet.
    Scheduled,
    Running,
    Succeeded,
    Failed,
}

impl HealPhase {
    /// Taking (or about to take) a write.
    pub fn is_active(self) -> bool {
        matches!(self, HealPhase::Scheduled | HealPhase::Running)
    }
}

/// The investigation run again after a heal succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Recheck {
    /// Its Gather ticket.
    pub ticket: String,
    /// `None` while it runs; then whether the cause was gone.
    pub passed: Option<bool>,
    pub detail: String,
}

/// One heal of an incident, linked from its alert to its re-check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Heal {
    /// `H-<n>`, numbered within its incident.
    pub id: String,
    pub rule: String,
    /// The incident's first alert (its fingerprint).
    pub alert: String,
    /// The Gather ticket whose diagnosis it heals.
    pub investigation: String,
    pub cause: CauseKind,
    pub subject: String,
    /// The evidence ids the cause stands on.
    pub evidence: Vec<String>,
    pub action: Action,
    pub dry_run: DryRun,
    pub max_attempts: u32,
    pub phase: HealPhase,
    #[specta(type = specta_typescript::Number)]
    pub proposed_ms: UnixMs,
    /// Who approved or denied it, when, and what they said.
    pub decided_by: Option<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub decided_ms: Option<UnixMs>,
    pub note: String,
    /// The ticket that applies it.
    pub ticket: Option<String>,
    /// What the write answered, or why it failed.
    pub outcome: Option<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub finished_ms: Option<UnixMs>,
    pub recheck: Option<Recheck>,
}

/// The rules that may heal `diagnosis` for an incident whose first alert
/// has `labels` and which already has `heals`, in the settings' order:
/// each whose trigger is the top cause (conclusive), whose matchers hold,
/// and which has not healed this incident yet. The adapter proposes the
/// first whose plan holds on the live figures (a node drain where the
/// whole node is slow, else a bot drain). A raise is not proposed for a
/// tenant whose budget a heal capped (`capped`) until a person sets it
/// again: it would undo what a person approved to stop a runaway.
pub fn candidates<'a>(
    rules: &'a [HealRule],
    diagnosis: &Diagnosis,
    labels: &Labels,
    heals: &[Heal],
    capped: &BTreeSet<String>,
) -> Vec<&'a HealRule> {
    if diagnosis.inconclusive {
        return Vec::new();
    }
    let Some(top) = diagnosis.causes.first() else {
        return Vec::new();
    };
    if top.score < CONCLUSIVE {
        return Vec::new();
    }
    // A tenant's alert is healed for that tenant alone.
    if matches!(
        top.kind,
        CauseKind::BudgetExhausted | CauseKind::RunawaySpend
    ) && labels.get("tenant").is_some_and(|t| *t != top.subject)
    {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|r| {
            // A replay or a pause acts on one tenant: its alert names it (and
            // the default tenant, which runs the loop itself, is never paused,
            // nor capped: its investigations and heals would be refused).
            let whose = match r.action {
                ActionTemplate::ReplayDead => labels.contains_key("tenant"),
                ActionTemplate::PauseTenant => labels.get("tenant").is_some_and(|t| t != "default"),
                ActionTemplate::CapBudget { .. } => top.subject != "default",
                ActionTemplate::RaiseBudget { .. } => !capped.contains(&top.subject),
                _ => true,
            };
            whose
                && r.trigger == top.kind
                && matchers("", &r.matchers).is_ok_and(|ms| all_match(&ms, labels))
                && heals.iter().all(|h| h.rule != r.name)
        })
        .collect()
}

/// Whether a re-check's diagnosis clears what `heal` healed: the cause
/// is no longer conclusive for its subject. With why, in a sentence.
pub fn cleared(heal: &Heal, diagnosis: &Diagnosis) -> (bool, String) {
    let kind: &'static str = heal.cause.into();
    match diagnosis
        .causes
        .iter()
        .find(|c| c.kind == heal.cause && c.subject == heal.subject)
    {
        Some(c) if c.score >= CONCLUSIVE => (
            false,
            format!(
                "{kind} of {} is still observed (score {}): the heal did not hold",
                heal.subject, c.score
            ),
        ),
        _ => (
            true,
            format!("{kind} of {} is no longer observed", heal.subject),
        ),
    }
}

#[cfg(test)]
mod tests;
