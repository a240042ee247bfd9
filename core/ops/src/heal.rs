//! Heal: a diagnosed cause healed by one write, only once a person has
//! approved it.
//!
//! A heal rule ([`HealRule`]: trigger, criteria, action) is matched against
//! an investigation's diagnosis by [`select`]: a conclusive top cause of the
//! rule's kind, an incident whose first alert its matchers match, and no
//! heal of that rule on the incident yet (once until it resolves). The
//! adapter fills the rule's template in from the platform's figures into a
//! concrete [`Action`] and works out its [`DryRun`]: what it would change,
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
    /// Pause a tenant: its tickets are admitted and kept, not routed,
    /// until a person resumes it.
    PauseTenant { tenant: String },
}

/// The most grants one revocation names.
pub const MAX_BLAST_GRANTS: usize = 50;

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
            Action::PauseTenant { .. } => "pause_tenant",
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
            Action::PauseTenant { tenant } => json!({"tenant": tenant}),
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
            | Action::PauseTenant { .. } => {
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
    pub fn operations() -> [(&'static str, Value, &'static str); 7] {
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
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node"],
                    "properties": {
                        "node": {"type": "string", "minLength": 1, "maxLength": 64}
                    }
                }),
                "Retire a lost node: its bots leave the view and its alert resolves (a heal's write: needs an approval)",
            ),
            (
                "drain_bot",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["bot"],
                    "properties": {
                        "bot": {"type": "string", "minLength": 1, "maxLength": 64}
                    }
                }),
                "Drain a live bot: it finishes what it holds and is routed nothing more; the tickets waiting in its lane go to other bots (a heal's write: needs an approval)",
            ),
            (
                "pause_tenant",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tenant"],
                    "properties": {
                        "tenant": {"type": "string", "minLength": 1, "maxLength": 64}
                    }
                }),
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
                | (Action::PauseTenant { .. }, ActionTemplate::PauseTenant)
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

/// The rule that heals `diagnosis` for an incident whose first alert has
/// `labels` and which already has `heals`: the first whose trigger is the
/// top cause (conclusive), whose matchers hold, and which has not healed
/// this incident yet. A raise is not proposed for a tenant whose budget
/// a heal capped (`capped`) until a person sets it again: it would undo
/// what a person approved to stop a runaway.
pub fn select<'a>(
    rules: &'a [HealRule],
    diagnosis: &Diagnosis,
    labels: &Labels,
    heals: &[Heal],
    capped: &BTreeSet<String>,
) -> Option<&'a HealRule> {
    if diagnosis.inconclusive {
        return None;
    }
    let top = diagnosis.causes.first()?;
    if top.score < CONCLUSIVE {
        return None;
    }
    // A tenant's alert is healed for that tenant alone.
    if matches!(
        top.kind,
        CauseKind::BudgetExhausted | CauseKind::RunawaySpend
    ) && labels.get("tenant").is_some_and(|t| *t != top.subject)
    {
        return None;
    }
    rules.iter().find(|r| {
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
mod tests {
    use super::*;
    use crate::diagnose::{Cause, Claim};

    fn diagnosis(kind: CauseKind, subject: &str, score: i32) -> Diagnosis {
        Diagnosis {
            meaning: String::new(),
            findings: Vec::new(),
            causes: vec![Cause {
                kind,
                subject: subject.into(),
                score,
                supports: vec![Claim {
                    text: "spent".into(),
                    evidence: vec!["E-1".into()],
                }],
                against: Vec::new(),
            }],
            next_steps: Vec::new(),
            inconclusive: score < CONCLUSIVE,
        }
    }

    fn budget_alert() -> Labels {
        [
            ("alertname".to_owned(), "OshalBudgetExhausted".to_owned()),
            ("tenant".to_owned(), "acme".to_owned()),
        ]
        .into()
    }

    fn heal_of(rule: &str) -> Heal {
        Heal {
            id: "H-1".into(),
            rule: rule.into(),
            alert: "f".into(),
            investigation: "t".into(),
            cause: CauseKind::BudgetExhausted,
            subject: "acme".into(),
            evidence: vec!["E-1".into()],
            action: Action::SetBudget {
                tenant: "acme".into(),
                budget_nusd: USD,
            },
            dry_run: DryRun {
                summary: String::new(),
                before: Value::Null,
                after: Value::Null,
                blast: BlastRadius::default(),
            },
            max_attempts: 2,
            phase: HealPhase::Pending,
            proposed_ms: 0,
            decided_by: None,
            decided_ms: None,
            note: String::new(),
            ticket: None,
            outcome: None,
            finished_ms: None,
            recheck: None,
        }
    }

    #[test]
    fn a_rule_heals_a_conclusive_top_cause_of_its_kind_once_per_incident() {
        let rules = HealRule::shipped();
        let d = diagnosis(CauseKind::BudgetExhausted, "acme", 3);
        let labels = budget_alert();
        assert_eq!(
            select(&rules, &d, &labels, &[], &BTreeSet::new()).map(|r| r.name.as_str()),
            Some("raise-exhausted-budget")
        );
        // Throttled: the incident has a heal of that rule.
        assert!(
            select(
                &rules,
                &d,
                &labels,
                &[heal_of("raise-exhausted-budget")],
                &BTreeSet::new()
            )
            .is_none()
        );
        // Another rule's heal does not throttle it.
        assert!(select(&rules, &d, &labels, &[heal_of("other")], &BTreeSet::new()).is_some());
        // Inconclusive, or another cause on top, or another alert: none.
        let weak = diagnosis(CauseKind::BudgetExhausted, "acme", 1);
        assert!(select(&rules, &weak, &labels, &[], &BTreeSet::new()).is_none());
        let node = diagnosis(CauseKind::NodeDown, "n2", 3);
        assert!(select(&rules, &node, &labels, &[], &BTreeSet::new()).is_none());
        let other: Labels = [("alertname".to_owned(), "Custom".to_owned())].into();
        assert!(select(&rules, &d, &other, &[], &BTreeSet::new()).is_none());
        // globex's alert is never healed by raising acme's budget.
        let mut globex = budget_alert();
        globex.insert("tenant".into(), "globex".into());
        assert!(select(&rules, &d, &globex, &[], &BTreeSet::new()).is_none());
    }

    #[test]
    fn a_runaway_is_capped_and_a_capped_budget_is_not_raised_until_a_person_sets_it() {
        let rules = HealRule::shipped();
        let burning: Labels = [
            ("alertname".to_owned(), "OshalSpendBurning".to_owned()),
            ("tenant".to_owned(), "acme".to_owned()),
        ]
        .into();
        let runaway = diagnosis(CauseKind::RunawaySpend, "acme", 3);
        assert_eq!(
            select(&rules, &runaway, &burning, &[], &BTreeSet::new()).map(|r| &r.action),
            Some(&ActionTemplate::CapBudget { minutes: 10 })
        );
        let mut own = burning.clone();
        own.insert("tenant".into(), "default".into());
        let own_runaway = diagnosis(CauseKind::RunawaySpend, "default", 3);
        assert!(
            select(&rules, &own_runaway, &own, &[], &BTreeSet::new()).is_none(),
            "the loop's own tenant is never capped"
        );
        // $60 an hour for ten minutes past $10 spent, under a $30 budget.
        assert_eq!(
            capped_budget(30_000_000_000, 10_000_000_000, 60_000_000_000, 10),
            20_000_000_000
        );
        assert_eq!(
            capped_budget(12_000_000_000, 10_000_000_000, 60_000_000_000, 10),
            12_000_000_000,
            "a cap never raises"
        );
        let exhausted = diagnosis(CauseKind::BudgetExhausted, "acme", 3);
        let capped: BTreeSet<String> = ["acme".to_owned()].into();
        assert!(select(&rules, &exhausted, &budget_alert(), &[], &capped).is_none());
        let others: BTreeSet<String> = ["globex".to_owned()].into();
        assert!(select(&rules, &exhausted, &budget_alert(), &[], &others).is_some());
    }

    #[test]
    fn a_recheck_clears_only_when_the_cause_is_gone_for_its_subject() {
        let h = heal_of("r");
        let gone = diagnosis(CauseKind::StoreDown, "store", 3);
        assert!(cleared(&h, &gone).0);
        let weak = diagnosis(CauseKind::BudgetExhausted, "acme", 1);
        assert!(cleared(&h, &weak).0);
        let other = diagnosis(CauseKind::BudgetExhausted, "globex", 3);
        assert!(
            cleared(&h, &other).0,
            "another tenant's budget is not this heal's"
        );
        let still = diagnosis(CauseKind::BudgetExhausted, "acme", 3);
        let (passed, why) = cleared(&h, &still);
        assert!(!passed);
        assert!(why.contains("did not hold"), "{why}");
    }

    #[test]
    fn a_replay_heals_an_outside_failure_of_the_tenant_its_alert_names() {
        let rules = HealRule::shipped();
        let d = diagnosis(CauseKind::OutsideSystemFailing, "shop", 3);
        let mut labels: Labels = [
            ("alertname".to_owned(), "OshalTicketsDead".to_owned()),
            ("tenant".to_owned(), "shopco".to_owned()),
        ]
        .into();
        assert_eq!(
            select(&rules, &d, &labels, &[], &BTreeSet::new()).map(|r| r.name.as_str()),
            Some("replay-after-outside-failure")
        );
        // Without a tenant named there is nothing to say whose to replay.
        labels.remove("tenant");
        assert!(select(&rules, &d, &labels, &[], &BTreeSet::new()).is_none());
    }

    #[test]
    fn a_pause_takes_the_tenant_its_alert_names_never_the_default_one() {
        let mut rules = HealRule::shipped();
        rules.insert(
            0,
            HealRule {
                name: "pause-poisoned".into(),
                trigger: CauseKind::PoisonInput,
                matchers: Vec::new(),
                action: ActionTemplate::PauseTenant,
                max_attempts: 2,
                concurrency: 1,
            },
        );
        let d = diagnosis(CauseKind::PoisonInput, "tool", 3);
        let of = |tenant: Option<&str>| -> Labels {
            let mut l: Labels = [("alertname".to_owned(), "OshalTicketsDead".to_owned())].into();
            if let Some(t) = tenant {
                l.insert("tenant".into(), t.into());
            }
            l
        };
        let chosen =
            |l: &Labels| select(&rules, &d, l, &[], &BTreeSet::new()).map(|r| r.name.clone());
        assert_eq!(
            chosen(&of(Some("shopco"))).as_deref(),
            Some("pause-poisoned")
        );
        assert_eq!(chosen(&of(Some("default"))), None);
        assert_eq!(chosen(&of(None)), None);
    }

    #[test]
    fn a_replay_takes_the_outside_systems_5xx_or_the_poisoned_kind_alone() {
        let dead = |kind: &str, error: &str| DeadTicket {
            id: "t".into(),
            tenant: "a".into(),
            kind: kind.into(),
            error: error.into(),
            at_ms: 0,
        };
        let shop_503 = dead("tool", "shop.get_order: 2 tries failed, the last with 503");
        let shop_404 = dead("tool", "shop.get_order answered 404");
        let crm_503 = dead("tool", "crm.find answered 503");
        let poison = dead("tool", "no connector no-such-crm");
        let out = CauseKind::OutsideSystemFailing;
        assert!(replays(&shop_503, out, "shop"));
        assert!(!replays(&shop_404, out, "shop"), "a 4xx fails again");
        assert!(!replays(&crm_503, out, "shop"), "another system's");
        assert!(!replays(&poison, out, "shop"));
        assert!(replays(&poison, CauseKind::PoisonInput, "tool"));
        assert!(!replays(&shop_503, CauseKind::PoisonInput, "tool"));
        assert!(!replays(&poison, CauseKind::PoisonInput, "chat"));
        assert!(!replays(&poison, CauseKind::NodeDown, "tool"));
    }

    #[test]
    fn a_write_call_is_read_into_its_action_or_refused_at_its_field() {
        let id = "0190a5a0-0000-7000-8000-000000000001";
        assert_eq!(
            Action::from_call("replay_dead", &json!({"tenant": "a", "tickets": [id]})),
            Ok(Action::ReplayDead {
                tenant: "a".into(),
                tickets: vec![id.into()]
            })
        );
        let many: Vec<&str> = vec![id; MAX_BLAST_TICKETS + 1];
        let e =
            Action::from_call("replay_dead", &json!({"tenant": "a", "tickets": many})).unwrap_err();
        assert!(e.starts_with("params.tickets: names 21"), "{e}");
        let e =
            Action::from_call("replay_dead", &json!({"tenant": "a", "tickets": []})).unwrap_err();
        assert!(e.starts_with("params.tickets"), "{e}");
        let e = Action::from_call("set_budget", &json!({"tenant": "a"})).unwrap_err();
        assert!(e.contains("budget_nusd"), "{e}");
        let e = Action::from_call(
            "set_budget",
            &json!({"tenant": "a", "budget_nusd": 1, "x": 1}),
        )
        .unwrap_err();
        assert!(e.contains("x"), "{e}");
        assert!(Action::from_call("drop_tables", &json!({})).is_err());
        assert!(Action::from_call("set_budget", &json!([1])).is_err());
    }

    #[test]
    fn a_raise_starts_from_the_larger_of_budget_spend_and_a_dollar() {
        assert_eq!(raised_budget(Some(0), 0, 50), USD + USD / 2);
        assert_eq!(raised_budget(Some(4 * USD), 2 * USD, 50), 6 * USD);
        assert_eq!(raised_budget(Some(2 * USD), 4 * USD, 100), 8 * USD);
        assert_eq!(raised_budget(None, 0, 10), USD + USD / 10);
        assert_eq!(raised_budget(Some(i64::MAX), 0, 1000), i64::MAX);
    }

    #[test]
    fn an_action_follows_its_template_and_names_its_operation() {
        let a = Action::SetBudget {
            tenant: "acme".into(),
            budget_nusd: 3,
        };
        assert!(a.follows(&ActionTemplate::RaiseBudget { percent: 5 }));
        assert!(!a.follows(&ActionTemplate::ReplayDead));
        assert_eq!(a.operation(), Action::operations()[0].0);
        assert_eq!(a.params(), json!({"tenant": "acme", "budget_nusd": 3}));
        let r = Action::ReplayDead {
            tenant: "acme".into(),
            tickets: vec!["t".into()],
        };
        assert!(r.follows(&ActionTemplate::ReplayDead));
        assert_eq!(r.operation(), Action::operations()[1].0);
        let g = Action::RevokeGrants {
            connector: "shop".into(),
            grants: vec!["g-1".into()],
        };
        assert!(g.follows(&ActionTemplate::RevokeGrants));
        assert_eq!(g.operation(), Action::operations()[2].0);
        assert_eq!(Action::from_call(g.operation(), &g.params()), Ok(g.clone()));
        let e = Action::from_call("revoke_grants", &json!({"connector": "shop", "grants": []}))
            .unwrap_err();
        assert_eq!(e, "params.grants: names 0; must name 1 to 50");
        let n = Action::RetireNode { node: "n2".into() };
        assert!(n.follows(&ActionTemplate::RetireNode));
        assert_eq!(n.operation(), Action::operations()[3].0);
        assert_eq!(Action::from_call(n.operation(), &n.params()), Ok(n.clone()));
        assert_eq!(Action::from_call(r.operation(), &r.params()), Ok(r.clone()));
        let d = Action::DrainBot {
            bot: "n1-b1".into(),
        };
        assert!(d.follows(&ActionTemplate::DrainBot));
        assert!(!d.follows(&ActionTemplate::RetireNode));
        assert_eq!(d.operation(), Action::operations()[4].0);
        assert_eq!(Action::from_call(d.operation(), &d.params()), Ok(d.clone()));
        let e = Action::from_call("drain_bot", &json!({"bot": "b", "node": "n"})).unwrap_err();
        assert!(e.contains("node"), "{e}");
        let p = Action::PauseTenant {
            tenant: "acme".into(),
        };
        assert!(p.follows(&ActionTemplate::PauseTenant));
        assert_eq!(p.operation(), Action::operations()[5].0);
        assert_eq!(Action::from_call(p.operation(), &p.params()), Ok(p.clone()));
    }
}
