//! Diagnose: from what an investigation observed, each observation tied
//! to the evidence it was read from, the possible root causes ranked over
//! the platform's own topology (a dead node explains its bots' pending
//! lanes and requeued tickets; a Redis that lost its data explains a new
//! epoch and re-driven tickets; …), each cause with the claims it stands
//! on and every claim with its evidence ids.
//!
//! The rule: never a claim without evidence. An [`Observed`] cannot be
//! made without at least one evidence id, a cause is only as strong as
//! its observations, and when no cause has a primary observation the
//! diagnosis says "inconclusive" and keeps that. A model may write the
//! narrative and reorder the causes, but only among these, with these
//! claims ([`Diagnosis::reorder`]). Pure logic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use specta::Type;

/// What an investigation can observe of the platform, each read from a
/// read-only tool's answer by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// The registry holds no live bot of this node (its heartbeat lapsed).
    NodeAbsent { node: String },
    /// The registry holds live bots of this node.
    NodePresent { node: String },
    /// A bot's lane holds work not consumed.
    LaneBacklog {
        bot: String,
        node: String,
        depth: u32,
        pending: u32,
        #[specta(type = specta_typescript::Number)]
        lag_ms: u64,
    },
    /// Tickets went back to the queue because their bot was lost.
    TicketsRequeued { count: u32 },
    /// The lanes' Redis lost its data: a new epoch was written.
    RedisEpochReset,
    /// Tickets published again from the store after the epoch changed.
    TicketsRedriven { count: u32 },
    /// The store does not answer.
    StoreUnavailable { detail: String },
    /// The store answers.
    StoreHealthy,
    /// The store did not answer for a while, and answers again.
    StoreOutage {
        #[specta(type = specta_typescript::Number)]
        secs: u64,
        detail: String,
    },
    /// A bot's recent attempts took this long at the median.
    SlowAttempts {
        bot: String,
        #[specta(type = specta_typescript::Number)]
        median_ms: u64,
    },
    /// A tenant's spend reached its budget.
    BudgetExhausted { tenant: String },
    /// Submissions of a tenant refused for its budget.
    BudgetRefusals { tenant: String, count: u32 },
    /// A tenant spends its budget `burn_tenths`/10 times faster than the
    /// pace that makes it last, over both windows of a burn-rate pair;
    /// what is left lasts `left_mins` at the short window's rate.
    SpendBurning {
        tenant: String,
        burn_tenths: u32,
        long_secs: u32,
        short_secs: u32,
        #[specta(type = specta_typescript::Number)]
        rate_nusd_per_h: i64,
        left_mins: Option<u32>,
    },
    /// An outside system answered a connector's calls with this status.
    ConnectorFailures {
        connector: String,
        status: u16,
        count: u32,
    },
    /// Tickets dead-lettered after their deliveries, with the reason.
    DeadLetters {
        kind: String,
        reason: String,
        count: u32,
    },
    /// The Security Center found a secret.
    SecretFound { rule: String, object: String },
}

/// An observation and the evidence it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Observed {
    pub fact: Fact,
    /// At least one.
    pub evidence: Vec<String>,
}

/// A fact offered without evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an observation needs at least one evidence id")]
pub struct Unsupported;

impl Observed {
    pub fn new(fact: Fact, evidence: Vec<String>) -> Result<Self, Unsupported> {
        if evidence.is_empty() {
            return Err(Unsupported);
        }
        Ok(Self { fact, evidence })
    }
}

/// The root causes the platform knows how to recognise.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
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
pub enum CauseKind {
    NodeDown,
    RedisDataLoss,
    StoreDown,
    SlowModel,
    BudgetExhausted,
    /// A tenant spends far faster than its budget is paced for, with
    /// more than [`BOUNDED_MINS`] of it left at that rate.
    RunawaySpend,
    OutsideSystemFailing,
    PoisonInput,
    SecretExposed,
}

/// A claim and the evidence it stands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Claim {
    pub text: String,
    pub evidence: Vec<String>,
}

/// A possible root cause, with what supports it and what speaks against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Cause {
    pub kind: CauseKind,
    /// What it is about: a node, a bot, a tenant, a connector, a kind.
    pub subject: String,
    pub score: i32,
    pub supports: Vec<Claim>,
    pub against: Vec<Claim>,
}

/// A structured diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Diagnosis {
    /// What the alert means, in a sentence.
    pub meaning: String,
    /// Every observation, as a claim with its evidence.
    pub findings: Vec<Claim>,
    /// Ranked, most likely first.
    pub causes: Vec<Cause>,
    pub next_steps: Vec<String>,
    /// No cause has an observation of its own: kept as the answer.
    pub inconclusive: bool,
}

/// What an alert of the platform's own means.
pub fn meaning(alert: &str) -> String {
    match alert {
        "OshalNodeLost" => "a node's bots stopped their heartbeat: their lanes are no longer consumed and their tickets in hand must go to other bots".into(),
        "OshalLaneLag" => "a bot's lane holds work waiting longer than 30 s: the bot is slow, stuck or gone, or more work arrives than it can take".into(),
        "OshalLaneUnknown" => "a lane's figures cannot be read: the lanes' Redis is unreachable or lost its data".into(),
        "OshalBudgetExhausted" => "a tenant has spent its budget: its new tickets are refused until the budget is raised or lifted".into(),
        "OshalSpendBurning" => "a tenant spends its budget many times faster than the pace that makes it last (a loop that runs away, prompts that grew, a dearer model): at this rate it is gone long before its time".into(),
        "OshalLanesReset" => "the lanes' Redis lost its data: the tickets it held were published again from the store, under a new epoch".into(),
        "OshalStoreDown" => "the store did not answer for a while: tickets were refused (503) and nothing was written meanwhile; it answers again".into(),
        "OshalSecretFound" => "the Security Center found a secret in the clear: whoever reads that place can use it until it is rotated".into(),
        "OshalTicketsDead" => "a tenant's tickets fail for good: an input fails every attempt (a poison), or an outside system they call keeps failing".into(),
        other => format!("{other} fired: its source's own rule held"),
    }
}

/// Whether a cause of `kind` can be why the platform's own alert `alert`
/// fired (any cause can explain an alert from elsewhere).
pub fn explains(alert: &str, kind: CauseKind) -> bool {
    use CauseKind as K;
    match alert {
        "OshalNodeLost" => kind == K::NodeDown,
        // A lane lags when its oldest entry waits undelivered: its bot is
        // gone or slow. A Redis that lost its data empties lanes (the work
        // is published again, new), and the store does not hold the lanes.
        "OshalLaneLag" => matches!(kind, K::NodeDown | K::SlowModel),
        // Figures that cannot be read: the lanes' Redis is away.
        "OshalLaneUnknown" => kind == K::RedisDataLoss,
        "OshalLanesReset" => kind == K::RedisDataLoss,
        "OshalBudgetExhausted" => kind == K::BudgetExhausted,
        "OshalSpendBurning" => kind == K::RunawaySpend,
        "OshalTicketsDead" => matches!(kind, K::PoisonInput | K::OutsideSystemFailing),
        "OshalSecretFound" => kind == K::SecretExposed,
        "OshalStoreDown" => kind == K::StoreDown,
        _ => true,
    }
}

/// A score this high means the cause has a primary observation.
pub const CONCLUSIVE: i32 = 3;

/// A burn whose budget is gone within this many minutes at its rate is
/// bounded by the budget itself: a runaway, but not one to cap.
pub const BOUNDED_MINS: u32 = 60;

fn claim(text: String, o: &Observed) -> Claim {
    Claim {
        text,
        evidence: o.evidence.clone(),
    }
}

fn describe(f: &Fact) -> String {
    match f {
        Fact::NodeAbsent { node } => format!("node {node} has no live bot in the registry"),
        Fact::NodePresent { node } => format!("node {node} has live bots in the registry"),
        Fact::LaneBacklog {
            bot,
            node,
            depth,
            pending,
            lag_ms,
        } => format!(
            "bot {bot}'s lane (node {node}) holds {depth} waiting and {pending} unacknowledged, the oldest {} s old",
            lag_ms / 1000
        ),
        Fact::TicketsRequeued { count } => format!("{count} tickets were requeued from a lost bot"),
        Fact::RedisEpochReset => "the lanes' Redis epoch was reset: it lost its data".into(),
        Fact::TicketsRedriven { count } => {
            format!("{count} tickets were published again from the store")
        }
        Fact::StoreUnavailable { detail } => format!("the store does not answer: {detail}"),
        Fact::StoreHealthy => "the store answers".into(),
        Fact::StoreOutage { secs, detail } => {
            format!("the store did not answer for {secs} s: {detail}")
        }
        Fact::SlowAttempts { bot, median_ms } => {
            format!("bot {bot}'s recent attempts took {median_ms} ms at the median")
        }
        Fact::BudgetExhausted { tenant } => format!("tenant {tenant}'s spend reached its budget"),
        Fact::BudgetRefusals { tenant, count } => {
            format!("{count} submissions of tenant {tenant} were refused for its budget")
        }
        Fact::SpendBurning {
            tenant,
            burn_tenths,
            long_secs,
            short_secs,
            rate_nusd_per_h,
            left_mins,
        } => format!(
            "tenant {tenant} spends ${:.6} an hour over the last {} (and {}), {}.{}x the pace that makes its budget last; {}",
            *rate_nusd_per_h as f64 / 1e9,
            crate::burn::window(*short_secs),
            crate::burn::window(*long_secs),
            burn_tenths / 10,
            burn_tenths % 10,
            match left_mins {
                Some(m) => format!("what is left of it lasts {m} minutes at this rate"),
                None => "nothing is spent now".to_owned(),
            }
        ),
        Fact::ConnectorFailures {
            connector,
            status,
            count,
        } => format!("{connector} answered {count} calls with {status}"),
        Fact::DeadLetters {
            kind,
            reason,
            count,
        } => format!("{count} {kind} tickets were dead-lettered: {reason}"),
        Fact::SecretFound { rule, object } => format!("a secret ({rule}) was found in {object}"),
    }
}

/// The node a bot runs on, from the lanes observed.
fn node_of<'a>(observed: &'a [Observed], bot: &str) -> Option<&'a str> {
    observed.iter().find_map(|o| match &o.fact {
        Fact::LaneBacklog { bot: b, node, .. } if b == bot => Some(node.as_str()),
        _ => None,
    })
}

/// Ranks the causes `observed` supports for an alert named `alert`.
pub fn diagnose(alert: &str, observed: &[Observed]) -> Diagnosis {
    let mut causes: BTreeMap<(CauseKind, String), Cause> = BTreeMap::new();
    let mut add = |kind: CauseKind, subject: &str, weight: i32, c: Claim| {
        let cause = causes
            .entry((kind, subject.to_owned()))
            .or_insert_with(|| Cause {
                kind,
                subject: subject.to_owned(),
                score: 0,
                supports: Vec::new(),
                against: Vec::new(),
            });
        cause.score += weight;
        if weight >= 0 {
            cause.supports.push(c);
        } else {
            cause.against.push(c);
        }
    };
    let absent = |node: &str| {
        observed
            .iter()
            .any(|o| matches!(&o.fact, Fact::NodeAbsent { node: n } if n == node))
    };
    let recovered = observed
        .iter()
        .any(|o| matches!(o.fact, Fact::StoreOutage { .. }));
    for o in observed {
        let c = claim(describe(&o.fact), o);
        match &o.fact {
            Fact::NodeAbsent { node } => add(CauseKind::NodeDown, node, 3, c),
            Fact::NodePresent { node } => add(CauseKind::NodeDown, node, -3, c),
            Fact::LaneBacklog { bot, node, .. } => {
                if absent(node) {
                    add(CauseKind::NodeDown, node, 1, c);
                } else {
                    add(CauseKind::SlowModel, bot, 1, c);
                }
            }
            Fact::TicketsRequeued { .. } => {
                for other in observed {
                    if let Fact::NodeAbsent { node } = &other.fact {
                        add(CauseKind::NodeDown, node, 1, c.clone());
                    }
                }
            }
            Fact::RedisEpochReset => add(CauseKind::RedisDataLoss, "redis", 3, c),
            Fact::TicketsRedriven { .. } => add(CauseKind::RedisDataLoss, "redis", 1, c),
            Fact::StoreUnavailable { .. } => add(CauseKind::StoreDown, "store", 3, c),
            // Up now contradicts a store down now, not an outage that ended.
            Fact::StoreHealthy if !recovered => add(CauseKind::StoreDown, "store", -3, c),
            Fact::StoreHealthy => {}
            Fact::StoreOutage { .. } => add(CauseKind::StoreDown, "store", 3, c),
            Fact::SlowAttempts { bot, .. } => {
                let gone = node_of(observed, bot).is_some_and(absent);
                add(CauseKind::SlowModel, bot, if gone { 0 } else { 3 }, c);
            }
            Fact::BudgetExhausted { tenant } => add(CauseKind::BudgetExhausted, tenant, 3, c),
            Fact::BudgetRefusals { tenant, .. } => add(CauseKind::BudgetExhausted, tenant, 1, c),
            // A budget gone within the hour bounds the runaway already.
            Fact::SpendBurning {
                tenant, left_mins, ..
            } => {
                let open = left_mins.is_some_and(|m| m > BOUNDED_MINS);
                add(CauseKind::RunawaySpend, tenant, if open { 3 } else { 1 }, c)
            }
            Fact::ConnectorFailures {
                connector, status, ..
            } => add(
                CauseKind::OutsideSystemFailing,
                connector,
                if *status >= 500 { 3 } else { 1 },
                c,
            ),
            Fact::DeadLetters { kind, .. } => add(CauseKind::PoisonInput, kind, 3, c),
            Fact::SecretFound { object, .. } => add(CauseKind::SecretExposed, object, 3, c),
        }
    }
    let mut causes: Vec<Cause> = causes
        .into_values()
        .filter(|c| !c.supports.is_empty())
        .collect();
    // Conclusive causes first; among them, those that can explain the
    // alert at all (a Redis reset near a secret found is real, but it is
    // not why the secret alert fired); then by score.
    causes.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.score >= CONCLUSIVE),
            std::cmp::Reverse(explains(alert, c.kind)),
            std::cmp::Reverse(c.score),
            c.kind,
        )
    });
    let inconclusive = causes.first().is_none_or(|c| c.score < CONCLUSIVE);
    let next_steps = if inconclusive {
        vec!["gather more: no cause has an observation of its own".into()]
    } else {
        causes
            .iter()
            .take(1)
            .map(|c| next_step(c.kind, &c.subject))
            .collect()
    };
    Diagnosis {
        meaning: meaning(alert),
        findings: observed
            .iter()
            .map(|o| claim(describe(&o.fact), o))
            .collect(),
        causes,
        next_steps,
        inconclusive,
    }
}

/// What a person (or a heal, after approval) would do next.
pub fn next_step(kind: CauseKind, subject: &str) -> String {
    match kind {
        CauseKind::NodeDown => format!("requeue node {subject}'s tickets and restart or drain it"),
        CauseKind::RedisDataLoss => {
            "check the re-driven tickets finished once; find why Redis restarted empty".into()
        }
        CauseKind::StoreDown => {
            "bring the store back; submissions are refused meanwhile and nothing is lost".into()
        }
        CauseKind::SlowModel => {
            format!("look at bot {subject}'s model server; move its lane's work to other bots")
        }
        CauseKind::BudgetExhausted => format!("raise tenant {subject}'s budget or pause its work"),
        CauseKind::RunawaySpend => format!(
            "cap tenant {subject}'s budget near what it has spent, then find what runs away"
        ),
        CauseKind::OutsideSystemFailing => {
            format!("{subject} is failing: pause its calls or rotate its credential")
        }
        CauseKind::PoisonInput => {
            format!("replay the dead-lettered {subject} tickets once the input is fixed")
        }
        CauseKind::SecretExposed => format!("rotate the secret found in {subject} and remove it"),
    }
}

impl Diagnosis {
    /// Its claims (findings, and what supports and speaks against each
    /// cause), and how many of them name evidence, all of which `kept`
    /// says is there.
    pub fn backing(&self, kept: impl Fn(&str) -> bool) -> (u32, u32) {
        let claims = self.findings.iter().chain(
            self.causes
                .iter()
                .flat_map(|c| c.supports.iter().chain(&c.against)),
        );
        let (mut all, mut backed) = (0, 0);
        for c in claims {
            all += 1;
            if !c.evidence.is_empty() && c.evidence.iter().all(|id| kept(id)) {
                backed += 1;
            }
        }
        (all, backed)
    }

    /// A model's ranking applied: `order` lists causes as `kind:subject`;
    /// any it names that is not among these is ignored, and those it omits
    /// keep their place after it. Nothing is added, no claim changed.
    pub fn reorder(&mut self, order: &[String]) {
        let key = |c: &Cause| format!("{}:{}", <&str>::from(c.kind), c.subject);
        let mut ranked = Vec::with_capacity(self.causes.len());
        for want in order {
            if let Some(i) = self.causes.iter().position(|c| &key(c) == want) {
                ranked.push(self.causes.remove(i));
            }
        }
        ranked.append(&mut self.causes);
        self.causes = ranked;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_that_ended_is_the_store_down_though_it_answers_now() {
        let o = |fact: Fact, id: &str| Observed::new(fact, vec![id.into()]).unwrap();
        let outage = o(
            Fact::StoreOutage {
                secs: 4,
                detail: "connection refused".into(),
            },
            "E-1",
        );
        let d = diagnose("OshalStoreDown", &[outage, o(Fact::StoreHealthy, "E-2")]);
        assert_eq!(
            (d.causes[0].kind, d.causes[0].score, d.inconclusive),
            (CauseKind::StoreDown, 3, false)
        );
        // Healthy now and no outage seen: nothing to say for the store.
        let d = diagnose("OshalStoreDown", &[o(Fact::StoreHealthy, "E-2")]);
        assert!(d.inconclusive && d.causes.is_empty(), "{d:?}");
    }

    /// The catalogue's slow model, run after its Redis reset: the reset is
    /// still in the change window and as strong, but it cannot make a lane
    /// hold old undelivered work; the slow bot can.
    #[test]
    fn a_lane_lag_behind_slow_attempts_ranks_the_slow_model_above_an_earlier_redis_reset() {
        let o = |fact: Fact, id: &str| Observed::new(fact, vec![id.into()]).unwrap();
        let observed = [
            o(
                Fact::LaneBacklog {
                    bot: "n3-bot-01".into(),
                    node: "n3".into(),
                    depth: 7,
                    pending: 8,
                    lag_ms: 30_000,
                },
                "E-1",
            ),
            o(
                Fact::SlowAttempts {
                    bot: "n3-bot-01".into(),
                    median_ms: 3_070,
                },
                "E-1",
            ),
            o(Fact::NodePresent { node: "n3".into() }, "E-1"),
            o(Fact::RedisEpochReset, "E-2"),
            o(Fact::TicketsRedriven { count: 2 }, "E-2"),
        ];
        let d = diagnose("OshalLaneLag", &observed);
        assert_eq!(
            (
                d.causes[0].kind,
                d.causes[0].subject.as_str(),
                d.causes[0].score
            ),
            (CauseKind::SlowModel, "n3-bot-01", 4)
        );
        assert_eq!(
            (d.causes[1].kind, d.causes[1].score),
            (CauseKind::RedisDataLoss, 4)
        );
        // Lane figures that cannot be read are the reset's.
        let d = diagnose("OshalLaneUnknown", &observed);
        assert_eq!(d.causes[0].kind, CauseKind::RedisDataLoss);
    }

    #[test]
    fn a_conclusive_cause_that_explains_the_alert_ranks_above_a_stronger_one_that_does_not() {
        let o = |fact: Fact, id: &str| Observed::new(fact, vec![id.into()]).unwrap();
        let observed = [
            o(Fact::RedisEpochReset, "E-2"),
            o(Fact::TicketsRedriven { count: 3 }, "E-2"),
            o(
                Fact::SecretFound {
                    rule: "secrets.exposed".into(),
                    object: "app.env".into(),
                },
                "E-1",
            ),
        ];
        let d = diagnose("OshalSecretFound", &observed);
        assert_eq!(
            (d.causes[0].kind, d.causes[1].kind),
            (CauseKind::SecretExposed, CauseKind::RedisDataLoss)
        );
        // An alert from elsewhere: by score alone.
        let d = diagnose("SomethingElse", &observed);
        assert_eq!(d.causes[0].kind, CauseKind::RedisDataLoss);
        // A weak cause that explains the alert does not hide a strong one.
        let weak = [
            o(Fact::RedisEpochReset, "E-2"),
            o(
                Fact::BudgetRefusals {
                    tenant: "acme".into(),
                    count: 1,
                },
                "E-1",
            ),
        ];
        let d = diagnose("OshalBudgetExhausted", &weak);
        assert_eq!(d.causes[0].kind, CauseKind::RedisDataLoss);
        assert!(!d.inconclusive);
    }

    fn o(fact: Fact, e: &str) -> Observed {
        Observed::new(fact, vec![e.into()]).unwrap()
    }

    fn top(d: &Diagnosis) -> (CauseKind, &str) {
        let c = &d.causes[0];
        (c.kind, c.subject.as_str())
    }

    #[test]
    fn a_dead_node_explains_its_lanes_and_requeued_tickets() {
        let seen = [
            o(Fact::NodeAbsent { node: "n2".into() }, "E-1"),
            o(Fact::NodePresent { node: "n1".into() }, "E-1"),
            o(
                Fact::LaneBacklog {
                    bot: "n2-b1".into(),
                    node: "n2".into(),
                    depth: 40,
                    pending: 2,
                    lag_ms: 45_000,
                },
                "E-2",
            ),
            o(Fact::TicketsRequeued { count: 2 }, "E-3"),
            o(Fact::StoreHealthy, "E-4"),
        ];
        let d = diagnose("OshalLaneLag", &seen);
        assert_eq!(top(&d), (CauseKind::NodeDown, "n2"));
        assert!(!d.inconclusive);
        assert_eq!(d.causes[0].score, 5);
        assert!(
            d.causes.iter().all(|c| c.kind != CauseKind::SlowModel),
            "a backlog on a dead node is not a slow model"
        );
        assert!(
            !d.causes.iter().any(|c| c.kind == CauseKind::StoreDown),
            "a healthy store is no cause"
        );
        // Every claim names the observations' evidence, and only it.
        let (claims, backed) = d.backing(|id| ["E-1", "E-2", "E-3", "E-4"].contains(&id));
        assert_eq!((backed, claims), (8, 8));
        // The requeue (E-3) is a finding and a support of node_down: both
        // go unbacked once it is gone.
        assert_eq!(d.backing(|id| id != "E-3"), (8, 6));
        assert!(d.next_steps[0].contains("n2"));
    }

    #[test]
    fn a_backlog_on_a_live_node_with_slow_attempts_is_a_slow_model() {
        let seen = [
            o(Fact::NodePresent { node: "n1".into() }, "E-1"),
            o(
                Fact::LaneBacklog {
                    bot: "n1-b1".into(),
                    node: "n1".into(),
                    depth: 12,
                    pending: 1,
                    lag_ms: 31_000,
                },
                "E-2",
            ),
            o(
                Fact::SlowAttempts {
                    bot: "n1-b1".into(),
                    median_ms: 9_000,
                },
                "E-3",
            ),
        ];
        let d = diagnose("OshalLaneLag", &seen);
        assert_eq!(top(&d), (CauseKind::SlowModel, "n1-b1"));
    }

    #[test]
    fn each_fault_of_the_catalogue_ranks_first_on_its_own_evidence() {
        let cases = [
            (
                vec![
                    o(Fact::RedisEpochReset, "E-1"),
                    o(Fact::TicketsRedriven { count: 9 }, "E-2"),
                ],
                CauseKind::RedisDataLoss,
            ),
            (
                vec![o(
                    Fact::StoreUnavailable {
                        detail: "connection refused".into(),
                    },
                    "E-1",
                )],
                CauseKind::StoreDown,
            ),
            (
                vec![
                    o(
                        Fact::BudgetRefusals {
                            tenant: "acme".into(),
                            count: 4,
                        },
                        "E-1",
                    ),
                    o(
                        Fact::BudgetExhausted {
                            tenant: "acme".into(),
                        },
                        "E-2",
                    ),
                ],
                CauseKind::BudgetExhausted,
            ),
            (
                vec![o(
                    Fact::ConnectorFailures {
                        connector: "shopfront".into(),
                        status: 503,
                        count: 7,
                    },
                    "E-1",
                )],
                CauseKind::OutsideSystemFailing,
            ),
            (
                vec![o(
                    Fact::DeadLetters {
                        kind: "chat".into(),
                        reason: "5 deliveries".into(),
                        count: 1,
                    },
                    "E-1",
                )],
                CauseKind::PoisonInput,
            ),
            (
                vec![o(
                    Fact::SecretFound {
                        rule: "aws-access-key".into(),
                        object: "ticket 0192…".into(),
                    },
                    "E-1",
                )],
                CauseKind::SecretExposed,
            ),
        ];
        for (seen, want) in cases {
            let d = diagnose("X", &seen);
            assert_eq!(d.causes[0].kind, want, "{seen:?}");
            assert!(!d.inconclusive);
        }
    }

    #[test]
    fn no_evidence_no_claim_and_weak_evidence_is_inconclusive() {
        assert_eq!(
            Observed::new(Fact::RedisEpochReset, Vec::new()),
            Err(Unsupported)
        );
        let d = diagnose("OshalLaneLag", &[]);
        assert!(d.inconclusive && d.causes.is_empty());
        let weak = [o(Fact::TicketsRedriven { count: 1 }, "E-1")];
        let d = diagnose("OshalLaneLag", &weak);
        assert!(d.inconclusive, "one supporting fact is not a primary one");
        assert_eq!(d.causes.len(), 1, "kept, ranked, but not concluded");
    }

    #[test]
    fn a_model_reorders_only_among_the_causes_found() {
        let seen = [
            o(Fact::NodeAbsent { node: "n2".into() }, "E-1"),
            o(Fact::RedisEpochReset, "E-2"),
        ];
        let mut d = diagnose("OshalNodeLost", &seen);
        let before = d.causes.clone();
        d.reorder(&[
            "secret_exposed:anything".into(),
            "redis_data_loss:redis".into(),
        ]);
        assert_eq!(d.causes.len(), 2, "nothing added");
        assert_eq!(d.causes[0].kind, CauseKind::RedisDataLoss);
        assert_eq!(d.causes[1], before[0], "the rest keep their claims");
    }
}
