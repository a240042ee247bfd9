//! `heal`'s tests.

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

/// The first candidate: the one proposed when its plan holds.
fn select<'a>(
    rules: &'a [HealRule],
    diagnosis: &Diagnosis,
    labels: &Labels,
    heals: &[Heal],
    capped: &BTreeSet<String>,
) -> Option<&'a HealRule> {
    candidates(rules, diagnosis, labels, heals, capped)
        .into_iter()
        .next()
}

#[test]
fn a_slow_model_is_healed_by_draining_its_node_else_its_bot_in_that_order() {
    let rules = HealRule::shipped();
    let lag: Labels = [
        ("alertname".to_owned(), "OshalLaneLag".to_owned()),
        ("bot".to_owned(), "n3-b1".to_owned()),
    ]
    .into();
    let slow = diagnosis(CauseKind::SlowModel, "n3-b1", 3);
    let names = |heals: &[Heal]| {
        candidates(&rules, &slow, &lag, heals, &BTreeSet::new())
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&[]), ["drain-slow-node", "drain-slow-bot"]);
    assert_eq!(names(&[heal_of("drain-slow-node")]), ["drain-slow-bot"]);
    let n = Action::DrainNode { node: "n3".into() };
    assert!(n.follows(&ActionTemplate::DrainNode) && !n.follows(&ActionTemplate::DrainBot));
    assert_eq!(n.operation(), Action::operations()[7].0);
    assert_eq!(Action::from_call(n.operation(), &n.params()), Ok(n.clone()));
    let e = Action::from_call("drain_node", &json!({"node": "n3", "bot": "b"})).unwrap_err();
    assert!(e.contains("bot"), "{e}");
    // A restart is an operator's choice for the same cause; no shipped
    // rule takes it.
    let r = Action::RestartNode {
        node: "n3".into(),
        run: "01a24981-bd1c-72f7-ac62-9d8b72743fcd".into(),
    };
    assert!(r.follows(&ActionTemplate::RestartNode) && !r.follows(&ActionTemplate::DrainNode));
    assert!(!n.follows(&ActionTemplate::RestartNode));
    assert_eq!(ActionTemplate::RestartNode.heals(), [CauseKind::SlowModel]);
    assert_eq!(r.operation(), Action::operations()[9].0);
    assert_eq!(Action::from_call(r.operation(), &r.params()), Ok(r.clone()));
    let e = Action::from_call("restart_node", &json!({"node": "n3", "run": ""})).unwrap_err();
    assert_eq!(e, "params.run: 0 characters; must be 1 to 64");
    assert!(Action::from_call("restart_node", &json!({"node": "n3"})).is_err());
    assert!(
        rules
            .iter()
            .all(|h| h.action != ActionTemplate::RestartNode)
    );
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
    let chosen = |l: &Labels| select(&rules, &d, l, &[], &BTreeSet::new()).map(|r| r.name.clone());
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
    let e = Action::from_call("replay_dead", &json!({"tenant": "a", "tickets": many})).unwrap_err();
    assert!(e.starts_with("params.tickets: names 21"), "{e}");
    let e = Action::from_call("replay_dead", &json!({"tenant": "a", "tickets": []})).unwrap_err();
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
    let c = Action::RotateCredential {
        connector: "shop-oauth".into(),
        finding: "0123456789abcdef".into(),
    };
    assert!(c.follows(&ActionTemplate::RotateCredential));
    assert!(!c.follows(&ActionTemplate::RevokeGrants));
    assert_eq!(c.operation(), Action::operations()[8].0);
    assert_eq!(Action::from_call(c.operation(), &c.params()), Ok(c.clone()));
    let e = Action::from_call(
        "rotate_credential",
        &json!({"connector": "shop-oauth", "finding": "0123456789abcdef0"}),
    )
    .unwrap_err();
    assert_eq!(e, "params.finding: 17 characters; must be 1 to 16");
    let e =
        Action::from_call("rotate_credential", &json!({"connector": "shop-oauth"})).unwrap_err();
    assert!(e.contains("finding"), "{e}");
}
