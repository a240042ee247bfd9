//! Heals in the monitor: proposed once per rule and incident, approved or
//! denied by a person, run, finished and re-checked, and rebuilt the same
//! by a replay.

use super::*;
use crate::evidence::Evidence;
use crate::gather::status_of;
use crate::heal::{Action, BlastRadius, DryRun, HealPhase};
use crate::runbook::{Task, TaskStatus};

const B: i64 = 1_000_000_000;

fn budget_signal(report: Report, at_ms: UnixMs) -> Signal {
    let labels: Labels = [
        ("alertname", "OshalBudgetExhausted"),
        ("tenant", "acme"),
        ("severity", "warning"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    Signal {
        source: Source::Platform,
        name: "OshalBudgetExhausted".into(),
        report,
        severity: Severity::Warning,
        labels,
        annotations: Labels::new(),
        summary: "acme spent its budget".into(),
        at_ms,
        dedup_key: None,
        link: None,
    }
}

fn spend_plan() -> Plan {
    Plan {
        runbooks: vec!["budget-exhausted".into()],
        tasks: vec![Task {
            id: "T-1".into(),
            tool: "get_spend".into(),
            params: serde_json::json!({}),
            why: "spend".into(),
            runbook: "budget-exhausted".into(),
            status: TaskStatus::Pending,
            evidence: None,
        }],
        skipped: vec![],
    }
}

fn spend(budget: i64, spent: i64) -> Findings {
    spend_of("acme", budget, spent)
}

fn spend_of(tenant: &str, budget: i64, spent: i64) -> Findings {
    let reading = serde_json::json!({"tenants": [
        {"tenant": tenant, "budget_nusd": budget, "spend_nusd": spent}
    ]});
    Findings {
        evidence: vec![Evidence::record(
            "E-1".into(),
            "get_spend",
            serde_json::json!({}),
            status_of(&reading),
            reading,
            "GET /api/v1/tenants".into(),
            30,
        )],
        narrative: None,
        order: vec![],
        stopped: None,
    }
}

fn investigate(
    m: &mut Monitor,
    log: &mut Vec<(Event, UnixMs)>,
    ticket: &str,
    recheck: Option<&str>,
    found: Findings,
    at: UnixMs,
) {
    let incident = m.incidents().next().unwrap().id.clone();
    for input in [
        Input::StartInvestigation {
            incident,
            ticket: ticket.into(),
            alert: "OshalBudgetExhausted".into(),
            plan: spend_plan(),
            bounds: Bounds::default(),
            recheck_of: recheck.map(str::to_owned),
        },
        Input::FinishInvestigation {
            ticket: ticket.into(),
            findings: found,
            cost_nanos: 0,
        },
    ] {
        for e in drive(m, input, at) {
            log.push((e, at));
        }
    }
}

fn raise(budget_nusd: i64) -> (Action, DryRun) {
    (
        Action::SetBudget {
            tenant: "acme".into(),
            budget_nusd,
        },
        DryRun {
            summary: "raise acme's budget".into(),
            before: serde_json::json!({"budget_nusd": 0}),
            after: serde_json::json!({"budget_nusd": budget_nusd}),
            blast: BlastRadius {
                tenants: vec!["acme".into()],
                ..BlastRadius::default()
            },
        },
    )
}

fn propose(m: &Monitor, id: &str, ticket: &str) -> Result<Vec<Event>, OpsError> {
    let (action, dry_run) = raise(3 * B / 2);
    m.decide(
        Input::ProposeHeal {
            incident: id.into(),
            investigation: ticket.into(),
            rule: "raise-exhausted-budget".into(),
            action,
            dry_run,
        },
        50,
    )
}

/// An open budget incident diagnosed `budget_exhausted: acme`, with the
/// events that led there.
fn diagnosed() -> (Monitor, String, Vec<(Event, UnixMs)>) {
    let mut m = Monitor::default();
    let mut log = Vec::new();
    for e in drive(&mut m, Input::Signal(budget_signal(Report::Firing, 10)), 10) {
        log.push((e, 10));
    }
    let id = m.incidents().next().expect("opened").id.clone();
    investigate(&mut m, &mut log, "g-1", None, spend(0, 0), 40);
    (m, id, log)
}

/// A person's approval of the incident's first heal.
fn approval(id: &str) -> Input {
    Input::DecideHeal {
        incident: id.to_owned(),
        heal: "H-1".into(),
        approve: true,
        by: "alice".into(),
        note: String::new(),
    }
}

fn step(
    m: &mut Monitor,
    log: &mut Vec<(Event, UnixMs)>,
    input: Input,
    at: UnixMs,
) -> Vec<&'static str> {
    let events = drive(m, input, at);
    let out = kinds(&events);
    log.extend(events.into_iter().map(|e| (e, at)));
    out
}

#[test]
fn a_heal_runs_only_after_approval_and_holds_once_its_recheck_passes() {
    let (mut m, id, mut log) = diagnosed();
    let proposed = propose(&m, &id, "g-1").unwrap();
    assert_eq!(kinds(&proposed), ["heal_proposed"]);
    for e in proposed {
        m.apply(&e, 50);
        log.push((e, 50));
    }
    assert!(
        propose(&m, &id, "g-1").unwrap().is_empty(),
        "once per rule and incident"
    );
    let h = &m.heals(&id)[0];
    assert_eq!((h.id.as_str(), h.phase), ("H-1", HealPhase::Pending));
    assert_eq!(h.cause, crate::diagnose::CauseKind::BudgetExhausted);
    assert_eq!(
        (h.subject.as_str(), h.evidence.as_slice()),
        ("acme", &["E-1".to_owned()][..])
    );
    assert_eq!(h.investigation, "g-1");

    // Nothing starts before a person approves.
    let start = Input::StartHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        ticket: "w-1".into(),
    };
    assert!(matches!(
        m.decide(start.clone(), 55),
        Err(OpsError::Heal { .. })
    ));

    let approve = Input::DecideHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        approve: true,
        by: "alice".into(),
        note: "go".into(),
    };
    assert_eq!(
        step(&mut m, &mut log, approve.clone(), 60),
        ["heal_decided"]
    );
    assert!(
        matches!(m.decide(approve, 61), Err(OpsError::Heal { .. })),
        "decided once"
    );
    assert_eq!(m.heals(&id)[0].phase, HealPhase::Scheduled);
    assert_eq!(step(&mut m, &mut log, start.clone(), 70), ["heal_started"]);
    assert!(m.decide(start, 71).unwrap().is_empty(), "started once");
    let finish = Input::FinishHeal {
        ticket: "w-1".into(),
        outcome: Ok("set_budget answered 200".into()),
    };
    assert_eq!(
        step(&mut m, &mut log, finish.clone(), 80),
        ["heal_finished"]
    );
    assert!(m.decide(finish, 81).unwrap().is_empty(), "finished once");
    assert_eq!(m.heals(&id)[0].phase, HealPhase::Succeeded);

    // The re-check: the budget now covers the spend, the cause is gone,
    // the incident is mitigated by the monitor.
    investigate(
        &mut m,
        &mut log,
        "g-2",
        Some("H-1"),
        spend(3 * B / 2, 0),
        90,
    );
    let h = &m.heals(&id)[0];
    let r = h.recheck.as_ref().expect("re-checked");
    assert_eq!((r.ticket.as_str(), r.passed), ("g-2", Some(true)));
    let inc = m.incident(&id).unwrap();
    assert_eq!(inc.status, IncidentStatus::Mitigated);
    let moments: Vec<Moment> = inc.timeline.iter().map(|t| t.moment).collect();
    for want in [
        Moment::HealProposed,
        Moment::HealApproved,
        Moment::Healing,
        Moment::Healed,
        Moment::Rechecked,
    ] {
        assert!(moments.contains(&want), "{want:?} in {moments:?}");
    }
    // The postmortem keeps the diagnosed cause (not the re-check's) and
    // tells the heal.
    let pm = m.postmortem(&id).unwrap();
    assert_eq!(
        pm.root_causes[0].kind,
        crate::diagnose::CauseKind::BudgetExhausted
    );
    assert!(pm.resolution.contains("heal H-1"), "{}", pm.resolution);
    assert!(
        pm.lessons
            .went_well
            .iter()
            .any(|l| l.contains("re-check found the cause gone")),
        "{:?}",
        pm.lessons
    );
    // A second re-check of the same heal is refused.
    let again = Input::StartInvestigation {
        incident: id.clone(),
        ticket: "g-3".into(),
        alert: "OshalBudgetExhausted".into(),
        plan: spend_plan(),
        bounds: Bounds::default(),
        recheck_of: Some("H-1".into()),
    };
    assert!(matches!(m.decide(again, 95), Err(OpsError::Heal { .. })));

    // The journal replayed gives the same heals and incident.
    let mut replayed = Monitor::default();
    for (e, at) in &log {
        replayed.apply(e, *at);
    }
    assert_eq!(replayed.heals(&id), m.heals(&id));
    assert_eq!(replayed.incident(&id), m.incident(&id));
}

#[test]
fn a_recheck_that_still_finds_the_cause_fails_the_heal_and_leaves_the_incident() {
    let (mut m, id, mut log) = diagnosed();
    for e in propose(&m, &id, "g-1").unwrap() {
        m.apply(&e, 50);
    }
    for input in [
        approval(&id),
        Input::StartHeal {
            incident: id.clone(),
            heal: "H-1".into(),
            ticket: "w-1".into(),
        },
        Input::FinishHeal {
            ticket: "w-1".into(),
            outcome: Ok("done".into()),
        },
    ] {
        step(&mut m, &mut log, input, 60);
    }
    investigate(&mut m, &mut log, "g-2", Some("H-1"), spend(B, 2 * B), 90);
    let r = m.heals(&id)[0].recheck.clone().unwrap();
    assert_eq!(r.passed, Some(false));
    assert!(r.detail.contains("did not hold"), "{}", r.detail);
    assert_eq!(m.incident(&id).unwrap().status, IncidentStatus::Triggered);
}

#[test]
fn a_denied_heal_never_runs_and_a_bad_proposal_is_refused_at_its_field() {
    let (mut m, id, mut log) = diagnosed();
    for e in propose(&m, &id, "g-1").unwrap() {
        m.apply(&e, 50);
    }
    let long = Input::DecideHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        approve: false,
        by: "bob".into(),
        note: "x".repeat(MAX_HEAL_NOTE + 1),
    };
    assert!(matches!(m.decide(long, 55), Err(OpsError::Invalid(i)) if i.path == "note"));
    let deny = Input::DecideHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        approve: false,
        by: "bob".into(),
        note: "not now".into(),
    };
    assert_eq!(step(&mut m, &mut log, deny, 60), ["heal_decided"]);
    assert_eq!(m.heals(&id)[0].phase, HealPhase::Denied);
    let start = Input::StartHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        ticket: "w-1".into(),
    };
    assert!(matches!(m.decide(start, 61), Err(OpsError::Heal { .. })));
    assert!(matches!(
        m.decide(
            Input::DecideHeal {
                incident: id.clone(),
                heal: "H-9".into(),
                approve: true,
                by: "b".into(),
                note: String::new()
            },
            62
        ),
        Err(OpsError::NotFound { .. })
    ));

    // On a fresh incident: an action its rule does not make, a dry run
    // over its bound, an investigation that does not diagnose the cause.
    let (m, id, _) = diagnosed();
    let (_, dry_run) = raise(1);
    let mut big = dry_run.clone();
    big.blast.tickets = (0..21).map(|i| format!("t{i}")).collect();
    let bad = Input::ProposeHeal {
        incident: id.clone(),
        investigation: "g-1".into(),
        rule: "raise-exhausted-budget".into(),
        action: raise(1).0,
        dry_run: big,
    };
    assert!(matches!(m.decide(bad, 50), Err(OpsError::Invalid(i)) if i.path == "dry_run"));
    let unknown = Input::ProposeHeal {
        incident: id.clone(),
        investigation: "g-1".into(),
        rule: "no-such-rule".into(),
        action: raise(1).0,
        dry_run: dry_run.clone(),
    };
    assert!(matches!(
        m.decide(unknown, 50),
        Err(OpsError::NotFound { .. })
    ));
    let mut healthy = Monitor::default();
    let mut log = Vec::new();
    drive(
        &mut healthy,
        Input::Signal(budget_signal(Report::Firing, 10)),
        10,
    );
    investigate(&mut healthy, &mut log, "g-1", None, spend(5 * B, B), 40);
    let id = healthy.incidents().next().unwrap().id.clone();
    assert!(matches!(
        propose(&healthy, &id, "g-1"),
        Err(OpsError::Heal { .. })
    ));
}

#[test]
fn a_rules_concurrency_holds_an_approval_back_until_its_heals_end() {
    let mut m = Monitor::default();
    let mut log = Vec::new();
    for (tenant_alert, at) in [("a", 10), ("b", 11)] {
        let mut s = budget_signal(Report::Firing, at);
        s.labels.insert("tenant".into(), tenant_alert.into());
        s.labels
            .insert("alertname".into(), "OshalBudgetExhausted".into());
        // One incident per alert: group by tenant.
        if at == 10 {
            let mut settings = Settings::default();
            settings.rules[0].group_by = vec!["alertname".into(), "tenant".into()];
            step(
                &mut m,
                &mut log,
                Input::Settings {
                    settings,
                    by: "op".into(),
                },
                1,
            );
        }
        step(&mut m, &mut log, Input::Signal(s), at);
    }
    let ids: Vec<String> = m.incidents().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), 2);
    for (n, id) in ids.iter().enumerate() {
        let ticket = format!("g-{n}");
        let of = m.incident(id).unwrap().group["tenant"].clone();
        for input in [
            Input::StartInvestigation {
                incident: id.clone(),
                ticket: ticket.clone(),
                alert: "OshalBudgetExhausted".into(),
                plan: spend_plan(),
                bounds: Bounds::default(),
                recheck_of: None,
            },
            Input::FinishInvestigation {
                ticket: ticket.clone(),
                findings: spend_of(&of, 0, 0),
                cost_nanos: 0,
            },
        ] {
            step(&mut m, &mut log, input, 20);
        }
        for e in propose(&m, id, &ticket).unwrap() {
            m.apply(&e, 30);
        }
    }
    step(&mut m, &mut log, approval(&ids[0]), 40);
    let held = m.decide(approval(&ids[1]), 41);
    assert!(
        matches!(&held, Err(OpsError::Heal { reason, .. }) if reason.contains("concurrency is 1")),
        "{held:?}"
    );
    // Its heal ends (failed): the other may go.
    step(
        &mut m,
        &mut log,
        Input::StartHeal {
            incident: ids[0].clone(),
            heal: "H-1".into(),
            ticket: "w-0".into(),
        },
        50,
    );
    step(
        &mut m,
        &mut log,
        Input::FinishHeal {
            ticket: "w-0".into(),
            outcome: Err("dead".into()),
        },
        60,
    );
    assert_eq!(m.heals(&ids[0])[0].phase, HealPhase::Failed);
    assert_eq!(
        step(&mut m, &mut log, approval(&ids[1]), 70),
        ["heal_decided"]
    );
}

#[test]
fn a_pending_heal_is_denied_by_the_monitor_when_its_incident_resolves() {
    let (mut m, id, mut log) = diagnosed();
    for e in propose(&m, &id, "g-1").unwrap() {
        m.apply(&e, 50);
    }
    let resolved = step(
        &mut m,
        &mut log,
        Input::Signal(budget_signal(Report::Resolved, 60)),
        60,
    );
    assert_eq!(
        resolved,
        ["alert_received", "incident_moved", "heal_decided"]
    );
    let h = &m.heals(&id)[0];
    assert_eq!(
        (h.phase, h.decided_by.as_deref()),
        (HealPhase::Denied, Some(MONITOR))
    );
    assert!(matches!(
        m.decide(approval(&id), 70),
        Err(OpsError::Heal { .. })
    ));
}

/// A budget a heal capped is not raised by a heal until a person sets
/// it: no raise is proposed, and one proposed before the cap is not
/// approved; the capped set survives the change log letting its oldest
/// go, and a replay rebuilds it.
#[test]
fn a_capped_budget_is_not_raised_until_a_person_sets_it() {
    let (mut m, id, mut log) = diagnosed();
    for e in propose(&m, &id, "g-1").unwrap() {
        m.apply(&e, 50);
        log.push((e, 50));
    }
    step(
        &mut m,
        &mut log,
        change(ChangeKind::BudgetCapped, "acme"),
        55,
    );
    for n in 0..MAX_CHANGES {
        step(
            &mut m,
            &mut log,
            change(ChangeKind::Deploy, &format!("v{n}")),
            56,
        );
    }
    assert!(
        m.capped().contains("acme"),
        "kept apart from the change log"
    );
    let approve = approval(&id);
    match m.decide(approve.clone(), 60) {
        Err(OpsError::Heal { reason, .. }) => assert!(reason.contains("capped"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let mut replayed = Monitor::default();
    for (e, at) in &log {
        replayed.apply(e, *at);
    }
    assert!(replayed.capped().contains("acme"), "a replay rebuilds it");
    step(
        &mut m,
        &mut log,
        change(ChangeKind::BudgetChanged, "acme"),
        65,
    );
    assert!(!m.capped().contains("acme"));
    assert_eq!(kinds(&m.decide(approve, 70).unwrap()), ["heal_decided"]);
}

/// An approved heal whose ticket never went out is given up: failed with
/// why; one that started, or is still pending, is not touched by it.
#[test]
fn a_scheduled_heal_that_cannot_be_released_is_abandoned_and_nothing_else_is() {
    let (mut m, id, mut log) = diagnosed();
    for e in propose(&m, &id, "g-1").unwrap() {
        m.apply(&e, 50);
        log.push((e, 50));
    }
    let abandon = Input::AbandonHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        why: "not released within 10 minutes".into(),
    };
    assert!(
        m.decide(abandon.clone(), 55).unwrap().is_empty(),
        "a pending heal waits for its person"
    );
    let approve = Input::DecideHeal {
        incident: id.clone(),
        heal: "H-1".into(),
        approve: true,
        by: "alice".into(),
        note: "go".into(),
    };
    step(&mut m, &mut log, approve, 60);
    assert_eq!(
        step(&mut m, &mut log, abandon.clone(), 70),
        ["heal_finished"]
    );
    let h = &m.heals(&id)[0];
    assert_eq!(h.phase, HealPhase::Failed);
    assert_eq!(h.outcome.as_deref(), Some("not released within 10 minutes"));
    assert!(m.decide(abandon, 71).unwrap().is_empty(), "once");
    let unknown = Input::AbandonHeal {
        incident: id.clone(),
        heal: "H-9".into(),
        why: "x".into(),
    };
    assert!(m.decide(unknown, 72).is_err());
}
