//! Facts read from the tools' answers, and their diagnoses.

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
        cordoned: false,
        in_flight: 0,
        attempt_ms: None,
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
    let kept = |id: &str| evidence.iter().any(|e| e.id == id && e.intact());
    let (claims, backed) = d.backing(kept);
    assert!(claims > 0 && backed == claims, "{backed} of {claims}");
}

#[test]
fn a_lagging_lane_behind_slow_attempts_is_a_slow_model_and_a_quick_one_is_not() {
    let mut slow = bot("n3-bot-01", "n3", true, 40);
    slow.attempt_ms = Some(3_100);
    let mut quick = bot("n1-bot-01", "n1", true, 40);
    quick.attempt_ms = Some(SLOW_ATTEMPT_MS - 1);
    let mut idle = bot("n2-bot-01", "n2", true, 0);
    idle.attempt_ms = Some(9_000);
    // Drained: it finishes what it holds, and delays no one else.
    let mut drained = bot("n4-bot-01", "n4", true, 0);
    drained.attempt_ms = Some(9_000);
    drained.cordoned = true;
    drained.lane.as_mut().unwrap().pending = 16;
    let bots = BotsReading {
        bots: vec![slow, quick, idle, drained],
    };
    let e = ev("E-1", Tool::GetBots, serde_json::to_value(&bots).unwrap());
    let observed = observe(&[e]);
    let slow: Vec<&Fact> = observed
        .iter()
        .map(|o| &o.fact)
        .filter(|f| matches!(f, Fact::SlowAttempts { .. }))
        .collect();
    assert_eq!(
        slow,
        [&Fact::SlowAttempts {
            bot: "n3-bot-01".into(),
            median_ms: 3_100
        }],
        "a quick bot, a slow one with nothing waiting, and a drained one are not slow lanes"
    );
    let d = diagnose("OshalLaneLag", &observed);
    assert_eq!(
        (
            d.causes[0].kind,
            d.causes[0].subject.as_str(),
            d.inconclusive
        ),
        (CauseKind::SlowModel, "n3-bot-01", false)
    );
    assert!(
        d.causes[1..]
            .iter()
            .all(|c| c.score < crate::diagnose::CONCLUSIVE),
        "the quick bot's backlog alone says nothing conclusive: {d:?}"
    );
}

#[test]
fn a_tenant_at_its_budget_is_read_from_the_spend_and_ranked_first() {
    let spend = SpendReading {
        tenants: vec![
            TenantSpend {
                tenant: "acme".into(),
                budget_nusd: Some(1_000),
                spend_nusd: 1_000,
                burning: None,
            },
            TenantSpend {
                tenant: "globex".into(),
                budget_nusd: Some(1_000),
                spend_nusd: 999,
                burning: None,
            },
            TenantSpend {
                tenant: "initech".into(),
                budget_nusd: None,
                spend_nusd: 9_999,
                burning: None,
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
fn a_tenant_burning_its_budget_is_read_from_the_spend_with_what_is_left() {
    let burning = crate::burn::Burning {
        long_secs: 3600,
        short_secs: 300,
        factor_tenths: 144,
        long_rate_nusd_per_h: 10_000_000_000,
        short_rate_nusd_per_h: 60_000_000_000,
        sustainable_nusd_per_h: 41_666_666,
        covered_secs: 3600,
    };
    let spend = SpendReading {
        tenants: vec![
            TenantSpend {
                tenant: "acme".into(),
                budget_nusd: Some(30_000_000_000),
                spend_nusd: 10_000_000_000,
                burning: Some(burning.clone()),
            },
            // No budget: nothing to burn, whatever the reading says.
            TenantSpend {
                tenant: "initech".into(),
                budget_nusd: None,
                spend_nusd: 9_999,
                burning: Some(burning),
            },
        ],
    };
    let e = ev("E-1", Tool::GetSpend, serde_json::to_value(&spend).unwrap());
    let observed = observe(&[e]);
    assert_eq!(
        observed,
        [Observed {
            fact: Fact::SpendBurning {
                tenant: "acme".into(),
                burn_tenths: 14_400,
                long_secs: 3600,
                short_secs: 300,
                rate_nusd_per_h: 60_000_000_000,
                // $20 left at $60 an hour.
                left_mins: Some(20),
            },
            evidence: vec!["E-1".into()],
        }]
    );
    let d = diagnose("OshalSpendBurning", &observed);
    assert!(
        d.inconclusive,
        "20 minutes left: the budget bounds it: {d:?}"
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
fn dead_tickets_group_by_cause_and_an_outside_5xx_is_told_apart() {
    let dead = |id: &str, kind: &str, error: &str, at_ms: i64| DeadTicket {
        id: id.into(),
        tenant: "acme".into(),
        kind: kind.into(),
        error: error.into(),
        at_ms,
    };
    let reading = group_failures(&[
        dead(
            "t1",
            "tool",
            "crm.find: crm.find: 3 tries failed, the last with 503",
            10,
        ),
        dead(
            "t2",
            "tool",
            "crm.find: crm.find: 3 tries failed, the last with 503",
            20,
        ),
        dead(
            "t3",
            "chat",
            "the model refused the prompt after 3 attempts (ticket 41)",
            30,
        ),
        dead(
            "t4",
            "chat",
            "the model refused the prompt after 3 attempts (ticket 97)",
            40,
        ),
        dead(
            "t5",
            "chat",
            "the model refused the prompt after 3 attempts (ticket 98)",
            50,
        ),
    ]);
    assert_eq!(reading.failures.len(), 2, "{reading:#?}");
    assert_eq!(
        (reading.failures[0].kind.as_str(), reading.failures[0].count),
        ("chat", 3)
    );
    assert_eq!(reading.failures[0].tickets, ["t5", "t4", "t3"]);
    let e = ev(
        "E-1",
        Tool::ListFailures,
        serde_json::to_value(&reading).unwrap(),
    );
    let facts = facts(&e);
    assert!(facts.contains(&Fact::ConnectorFailures {
        connector: "crm".into(),
        status: 503,
        count: 2
    }));
    assert!(
        facts
            .iter()
            .any(|f| matches!(f, Fact::DeadLetters { kind, count: 3, .. } if kind == "chat"))
    );
    let d = diagnose("OshalTicketsDead", &observe(&[e]));
    let kinds: Vec<CauseKind> = d.causes.iter().map(|c| c.kind).collect();
    assert!(
        kinds.contains(&CauseKind::OutsideSystemFailing) && kinds.contains(&CauseKind::PoisonInput)
    );
    assert_eq!(
        outside_status("crm.create answered 409"),
        Some(("crm".into(), 409))
    );
    assert_eq!(outside_status("the model answered 12 tokens"), None);
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

#[test]
fn a_burn_with_hours_of_budget_left_is_a_runaway_and_one_nearly_done_is_not() {
    let burn = |left_mins| {
        Observed::new(
            Fact::SpendBurning {
                tenant: "acme".into(),
                burn_tenths: 14_400,
                long_secs: 3600,
                short_secs: 300,
                rate_nusd_per_h: 60_000_000_000,
                left_mins,
            },
            vec!["E-1".into()],
        )
        .unwrap()
    };
    let d = diagnose("OshalSpendBurning", &[burn(Some(600))]);
    assert!(!d.inconclusive, "{d:?}");
    assert_eq!(
        (d.causes[0].kind, d.causes[0].subject.as_str()),
        (CauseKind::RunawaySpend, "acme")
    );
    assert!(
        d.findings[0].text.contains("1440.0x") && d.findings[0].text.contains("600 minutes"),
        "{:?}",
        d.findings[0]
    );
    assert!(d.next_steps[0].contains("cap tenant acme"), "{d:?}");
    // Capped to ten minutes of it: the budget bounds it now.
    let capped = diagnose("OshalSpendBurning", &[burn(Some(10))]);
    assert!(capped.inconclusive, "{capped:?}");
    assert_eq!(capped.causes[0].score, 1);
}
