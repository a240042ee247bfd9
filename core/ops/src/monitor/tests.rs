use super::*;
use crate::alert::{Severity, Source};
use crate::incident::Moment;
use crate::rule::CorrelationRule;
use proptest::prelude::*;

fn signal(name: &str, bot: &str, report: Report, at_ms: UnixMs) -> Signal {
    let labels: Labels = [("alertname", name), ("bot", bot), ("severity", "critical")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Signal {
        source: Source::Alertmanager,
        name: name.into(),
        report,
        severity: Severity::Critical,
        labels,
        annotations: Labels::new(),
        summary: format!("{name} on {bot}"),
        at_ms,
        dedup_key: None,
        link: None,
    }
}

/// Decides and applies, as the adapter does (after recording).
fn drive(m: &mut Monitor, input: Input, at: UnixMs) -> Vec<Event> {
    let events = m.decide(input, at).expect("taken");
    for e in &events {
        m.apply(e, at);
    }
    events
}

fn fire(m: &mut Monitor, name: &str, bot: &str, at: UnixMs) -> Vec<Event> {
    drive(m, Input::Signal(signal(name, bot, Report::Firing, at)), at)
}

fn resolve(m: &mut Monitor, name: &str, bot: &str, at: UnixMs) -> Vec<Event> {
    drive(
        m,
        Input::Signal(signal(name, bot, Report::Resolved, at)),
        at,
    )
}

fn with_rule(rule: CorrelationRule) -> Monitor {
    let mut m = Monitor::default();
    drive(
        &mut m,
        Input::Settings {
            settings: Settings {
                investigate: true,
                heal: Vec::new(),
                offered: Settings::default().offered,
                fingerprint_by: Vec::new(),
                rules: vec![rule],
            },
            by: "op".into(),
        },
        0,
    );
    m
}

fn rule(threshold: u32, resolve_on: ResolveOn) -> CorrelationRule {
    CorrelationRule {
        name: "lanes".into(),
        matchers: vec!["alertname=~\"Lane.*\"".into()],
        group_by: vec!["alertname".into()],
        window_secs: 60,
        threshold,
        firing_only: true,
        resolve_on,
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).collect()
}

#[test]
fn a_flood_of_duplicates_is_one_alert_and_one_incident() {
    let mut m = Monitor::default();
    for i in 0..1000 {
        fire(&mut m, "LaneLag", "b1", 1_000 + i);
    }
    let alerts = m.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1000);
    assert_eq!(alerts[0].first_ms, 1_000);
    assert_eq!(alerts[0].last_ms, 1_999);
    assert_eq!(m.incidents().count(), 1);
    // The duplicates wrote nothing on the timeline.
    let inc = m.incident("INC-1").unwrap();
    assert_eq!(
        inc.timeline.iter().map(|t| t.moment).collect::<Vec<_>>(),
        [Moment::Opened, Moment::AlertJoined]
    );
}

#[test]
fn the_fingerprint_is_made_of_the_labels_the_operator_chose() {
    let mut m = Monitor::default();
    let settings = Settings {
        investigate: true,
        fingerprint_by: vec!["alertname".into()],
        ..Settings::default()
    };
    drive(
        &mut m,
        Input::Settings {
            settings,
            by: "op".into(),
        },
        0,
    );
    fire(&mut m, "LaneLag", "b1", 1);
    fire(&mut m, "LaneLag", "b2", 2);
    assert_eq!(m.alerts().len(), 1, "bot is not part of the fingerprint");
    let mut m = Monitor::default();
    fire(&mut m, "LaneLag", "b1", 1);
    fire(&mut m, "LaneLag", "b2", 2);
    assert_eq!(m.alerts().len(), 2, "every label by default");
    assert_eq!(m.incidents().count(), 1, "one group: alertname");
    assert_eq!(m.incident("INC-1").unwrap().alerts.len(), 2);
}

#[test]
fn a_threshold_opens_an_incident_only_when_enough_fire_within_the_window() {
    let mut m = with_rule(rule(3, ResolveOn::All));
    fire(&mut m, "LaneLag", "b1", 0);
    // Out of the window by the time the others come.
    fire(&mut m, "LaneLag", "b2", 100_000);
    assert_eq!(m.incidents().count(), 0);
    let ev = fire(&mut m, "LaneLag", "b3", 120_000);
    assert_eq!(kinds(&ev), ["alert_received"], "b1 fired 120 s ago");
    // b1 firing again is fresh: with b2 and b3, three in the window.
    let ev = fire(&mut m, "LaneLag", "b1", 130_000);
    assert_eq!(kinds(&ev), ["alert_received", "incident_opened"]);
    let inc = m.incident("INC-1").unwrap();
    assert_eq!(inc.alerts.len(), 3);
    assert_eq!(inc.severity, Severity::Critical);
    // An alert no rule matches opens nothing.
    let ev = fire(&mut m, "DiskFull", "b1", 150_001);
    assert_eq!(kinds(&ev), ["alert_received"]);
    // Another alert of the open group joins it.
    let ev = fire(&mut m, "LaneLag", "b4", 150_002);
    assert_eq!(kinds(&ev), ["alert_received", "alert_joined"]);
}

#[test]
fn firing_only_decides_whether_a_resolved_alert_counts() {
    for firing_only in [true, false] {
        let mut m = with_rule(CorrelationRule {
            firing_only,
            ..rule(2, ResolveOn::All)
        });
        fire(&mut m, "LaneLag", "b1", 0);
        resolve(&mut m, "LaneLag", "b1", 1_000);
        fire(&mut m, "LaneLag", "b2", 2_000);
        assert_eq!(
            m.incidents().count(),
            usize::from(!firing_only),
            "firing_only {firing_only}"
        );
    }
}

#[test]
fn each_resolve_on_resolves_when_it_says() {
    // (rule, alerts resolved in order, which resolution resolves it)
    let cases = [
        (ResolveOn::First, ["b1", "b2", "b3"], Some(0)),
        (ResolveOn::First, ["b2", "b3", "b1"], Some(2)),
        (ResolveOn::Last, ["b1", "b3", "b2"], Some(1)),
        (ResolveOn::All, ["b3", "b1", "b2"], Some(2)),
        (ResolveOn::Never, ["b1", "b2", "b3"], None),
    ];
    for (on, order, at) in cases {
        let mut m = with_rule(rule(1, on));
        for (i, b) in ["b1", "b2", "b3"].iter().enumerate() {
            fire(&mut m, "LaneLag", b, i as i64);
        }
        assert_eq!(m.incident("INC-1").unwrap().alerts.len(), 3);
        let mut resolved_at = None;
        for (i, b) in order.iter().enumerate() {
            resolve(&mut m, "LaneLag", b, 10 + i as i64);
            if resolved_at.is_none()
                && m.incident("INC-1").unwrap().status == IncidentStatus::Resolved
            {
                resolved_at = Some(i);
            }
        }
        assert_eq!(resolved_at, at, "{on:?} resolving {order:?}");
    }
}

#[test]
fn silenced_and_maintained_alerts_are_kept_and_open_nothing() {
    let mut m = Monitor::default();
    drive(
        &mut m,
        Input::Silence {
            silence: Silence {
                matchers: vec!["bot=\"b1\"".into()],
                starts_ms: 0,
                ends_ms: 1_000,
                comment: "deploying b1".into(),
            },
            by: "op".into(),
        },
        0,
    );
    drive(
        &mut m,
        Input::Maintenance {
            window: MaintenanceWindow {
                matchers: vec!["bot=\"b2\"".into()],
                starts_ms: 0,
                ends_ms: 1_000,
                reason: "node upgrade".into(),
            },
            by: "op".into(),
        },
        0,
    );
    fire(&mut m, "LaneLag", "b1", 10);
    fire(&mut m, "LaneLag", "b2", 10);
    let states: Vec<AlertState> = m.alerts().iter().map(|a| a.state).collect();
    assert!(states.contains(&AlertState::Suppressed) && states.contains(&AlertState::Maintenance));
    assert_eq!(m.incidents().count(), 0);
    // After the silence ends the same alert fires for real.
    fire(&mut m, "LaneLag", "b1", 2_000);
    assert_eq!(m.incidents().count(), 1);
    assert_eq!(m.silences().next().unwrap().0, "S-1");
}

#[test]
fn an_incident_moves_by_its_table_and_keeps_its_times() {
    let mut m = Monitor::default();
    fire(&mut m, "LaneLag", "b1", 1_000);
    let act = |action, by: &str| Input::Incident {
        id: "INC-1".into(),
        action,
        by: by.into(),
        note: String::new(),
    };
    drive(&mut m, act(IncidentAction::Acknowledge, "ada"), 31_000);
    let err = m
        .decide(act(IncidentAction::Acknowledge, "ada"), 32_000)
        .unwrap_err();
    assert!(matches!(err, OpsError::Conflict { .. }), "{err}");
    let err = m
        .decide(act(IncidentAction::Retrigger, "ada"), 32_000)
        .unwrap_err();
    assert!(
        matches!(err, OpsError::Conflict { .. }),
        "retrigger is the monitor's"
    );
    drive(&mut m, act(IncidentAction::Mitigate, "ada"), 61_000);
    // The alert resolves and fires again: the mitigation did not hold.
    let mut m2 = m.clone();
    let inc = m.incident("INC-1").unwrap();
    assert_eq!(inc.mtta_ms(), Some(30_000));
    resolve(&mut m, "LaneLag", "b1", 70_000);
    assert_eq!(
        m.incident("INC-1").unwrap().status,
        IncidentStatus::Resolved
    );
    assert_eq!(m.incident("INC-1").unwrap().mttr_ms(), Some(69_000));
    // Once resolved, the same alert firing again opens a new incident.
    let ev = fire(&mut m, "LaneLag", "b1", 80_000);
    assert_eq!(kinds(&ev), ["alert_received", "incident_opened"]);
    assert!(m.incident("INC-2").is_some());
    // Under `never` it would stay open, and a refire retriggers it.
    drive(
        &mut m2,
        Input::Settings {
            settings: Settings {
                investigate: true,
                rules: vec![CorrelationRule {
                    resolve_on: ResolveOn::Never,
                    ..Settings::default().rules[0].clone()
                }],
                fingerprint_by: Vec::new(),
                heal: Vec::new(),
                offered: Settings::default().offered,
            },
            by: "op".into(),
        },
        62_000,
    );
    resolve(&mut m2, "LaneLag", "b1", 70_000);
    assert_eq!(
        m2.incident("INC-1").unwrap().status,
        IncidentStatus::Mitigated
    );
    let ev = fire(&mut m2, "LaneLag", "b1", 80_000);
    assert_eq!(kinds(&ev), ["alert_received", "incident_moved"]);
    let inc = m2.incident("INC-1").unwrap();
    assert_eq!(inc.status, IncidentStatus::Triggered);
    assert!(
        inc.timeline
            .iter()
            .any(|t| t.detail.contains("fired again"))
    );
    let missing = m2.decide(
        Input::Incident {
            id: "INC-9".into(),
            action: IncidentAction::Resolve,
            by: "ada".into(),
            note: String::new(),
        },
        0,
    );
    assert!(matches!(missing, Err(OpsError::NotFound { .. })));
}

/// A change event of `kind` about `subject`, as an input.
fn change(kind: ChangeKind, subject: &str) -> Input {
    Input::Change(ChangeEvent {
        kind,
        subject: subject.into(),
        detail: String::new(),
        count: 0,
        at_ms: 0,
    })
}

#[test]
fn changes_are_evidence_on_the_incidents_near_them() {
    let mut m = Monitor::default();
    drive(&mut m, change(ChangeKind::Deploy, "old"), 0);
    drive(&mut m, change(ChangeKind::NodeLeft, "node-2"), 4_000_000);
    fire(&mut m, "LaneLag", "b1", 5_000_000);
    drive(&mut m, change(ChangeKind::BudgetChanged, "acme"), 5_000_100);
    let inc = m.incident("INC-1").unwrap();
    let changes: Vec<&str> = inc
        .timeline
        .iter()
        .filter(|t| t.moment == Moment::Change)
        .map(|t| t.subject.as_str())
        .collect();
    assert_eq!(
        changes,
        ["node-2", "acme"],
        "the deploy is over an hour before"
    );
    let bad = m.decide(change(ChangeKind::Deploy, ""), 0).unwrap_err();
    assert!(matches!(bad, OpsError::Invalid(ref i) if i.path == "subject"));
}

#[test]
fn a_pagerduty_acknowledge_and_resolve_reach_the_alert_by_its_key() {
    let mut m = Monitor::default();
    let mut s = signal("disk", "b1", Report::Firing, 0);
    s.source = Source::Pagerduty;
    s.dedup_key = Some("disk/host-1".into());
    drive(&mut m, Input::Signal(s.clone()), 0);
    let by_key = |report| Signal {
        name: String::new(),
        labels: Labels::new(),
        report,
        ..s.clone()
    };
    drive(&mut m, Input::Signal(by_key(Report::Acknowledged)), 5);
    let a = m.alerts()[0].clone();
    assert_eq!(a.state, AlertState::Acknowledged);
    assert_eq!(a.name, "disk", "a report by key keeps what it knew");
    assert_eq!(a.acknowledged_by.as_deref(), Some("pagerduty"));
    drive(&mut m, Input::Signal(by_key(Report::Resolved)), 9);
    assert_eq!(m.alerts()[0].state, AlertState::Resolved);
    assert_eq!(
        m.incident("INC-1").unwrap().status,
        IncidentStatus::Resolved
    );
    // A resolve of a key never seen changes nothing.
    let mut other = by_key(Report::Resolved);
    other.dedup_key = Some("never".into());
    assert!(m.decide(Input::Signal(other), 10).unwrap().is_empty());
}

fn any_input() -> impl Strategy<Value = (Input, UnixMs)> {
    let names = prop::sample::select(vec!["LaneLag", "LaneDead", "DiskFull"]);
    let bots = prop::sample::select(vec!["b1", "b2", "b3"]);
    let report = prop::sample::select(vec![Report::Firing, Report::Firing, Report::Resolved]);
    let at = 0i64..600_000;
    prop_oneof![
        6 => (names, bots, report, at.clone())
            .prop_map(|(n, b, r, at)| (Input::Signal(signal(n, b, r, at)), at)),
        1 => (0usize..4, prop::sample::select(IncidentAction::VARIANTS.to_vec()), at.clone())
            .prop_map(|(i, action, at)| (Input::Incident {
                id: format!("INC-{i}"), action, by: "op".into(), note: String::new(),
            }, at)),
        1 => (prop::sample::select(vec![ResolveOn::First, ResolveOn::Last, ResolveOn::All, ResolveOn::Never]), 1u32..4, any::<bool>(), at.clone())
            .prop_map(|(on, threshold, firing_only, at)| (Input::Settings {
                settings: Settings {
                    investigate: true,
                    heal: Vec::new(),
                    offered: Settings::default().offered,
                    fingerprint_by: Vec::new(),
                    rules: vec![CorrelationRule { firing_only, ..rule(threshold, on) }],
                },
                by: "op".into(),
            }, at)),
        // The investigation's and the postmortem's moves, on any incident.
        1 => (0usize..4, 0u32..3, at.clone())
            .prop_map(|(i, t, at)| (Input::StartInvestigation {
                incident: format!("INC-{i}"), ticket: format!("t-{t}"), alert: "LaneLag".into(),
                plan: gather_plan(), bounds: Bounds::default(), recheck_of: None,
            }, at)),
        1 => (0u32..3, any::<bool>(), at.clone())
            .prop_map(|(t, ok, at)| (Input::FinishInvestigation {
                ticket: format!("t-{t}"), findings: findings(if ok { "ok" } else { "unavailable" }), cost_nanos: 7,
            }, at)),
        1 => (0u32..3, at.clone())
            .prop_map(|(t, at)| (Input::FailInvestigation { ticket: format!("t-{t}"), error: "lost".into() }, at)),
        1 => (0usize..4, at.clone())
            .prop_map(|(i, at)| (Input::EditPostmortem {
                incident: format!("INC-{i}"),
                edit: crate::report::PostmortemEdit { summary: Some(format!("edited at {at}")), ..Default::default() },
                by: "op".into(),
            }, at)),
        1 => (0usize..4, at)
            .prop_map(|(i, at)| (Input::PublishPostmortem { incident: format!("INC-{i}"), by: "op".into() }, at)),
    ]
}

/// A Gather plan of `get_bots` and `get_health`.
fn gather_plan() -> Plan {
    use crate::gather::Tool;
    use crate::runbook::{Task, TaskStatus};
    use oshal_kernel::name::Named;
    Plan {
        runbooks: vec!["lanes".into()],
        tasks: [Tool::GetBots, Tool::GetHealth]
            .iter()
            .enumerate()
            .map(|(i, t)| Task {
                id: format!("T-{}", i + 1),
                tool: t.as_str().into(),
                params: serde_json::json!({}),
                why: "look".into(),
                runbook: "lanes".into(),
                status: TaskStatus::Pending,
                evidence: None,
            })
            .collect(),
        skipped: vec![],
    }
}

use strum::VariantArray;

proptest! {
    /// Whatever comes in: the recorded events, applied again to a fresh
    /// monitor, rebuild the same state (alerts, incidents, their
    /// investigations and postmortems); one rule and group never has two
    /// open incidents; an alert in an open incident is listed in it.
    #[test]
    fn a_replay_rebuilds_the_same_monitor(inputs in prop::collection::vec(any_input(), 1..80)) {
        let mut live = Monitor::default();
        let mut log = Vec::new();
        for (input, at) in inputs {
            if let Ok(events) = live.decide(input, at) {
                for e in events {
                    live.apply(&e, at);
                    log.push((serde_json::to_string(&e).unwrap(), at));
                }
            }
        }
        let mut again = Monitor::default();
        for (json, at) in &log {
            let e: Event = serde_json::from_str(json).unwrap();
            again.apply(&e, *at);
        }
        prop_assert_eq!(
            serde_json::to_value(live.alerts()).unwrap(),
            serde_json::to_value(again.alerts()).unwrap()
        );
        let a: Vec<&Incident> = live.incidents().collect();
        let b: Vec<&Incident> = again.incidents().collect();
        prop_assert_eq!(a, b);
        for inc in live.incidents() {
            prop_assert_eq!(live.investigations(&inc.id), again.investigations(&inc.id));
            prop_assert_eq!(live.postmortem(&inc.id), again.postmortem(&inc.id));
        }
        let mut open = std::collections::HashSet::new();
        for inc in live.incidents().filter(|i| i.status.is_open()) {
            prop_assert!(open.insert((inc.rule.clone(), inc.group.clone())), "two open for {:?}", inc.group);
            for fp in &inc.alerts {
                let alert = live.alert(fp).unwrap();
                prop_assert_eq!(alert.incident.as_deref(), Some(inc.id.as_str()));
            }
        }
    }
}

#[test]
fn a_silence_made_now_mutes_an_alert_already_firing_and_ends_in_time() {
    let mut m = Monitor::default();
    // Alertmanager repeats a firing alert with the time it began (0).
    drive(
        &mut m,
        Input::Signal(signal("LaneLag", "b1", Report::Firing, 0)),
        10,
    );
    drive(
        &mut m,
        Input::Silence {
            silence: Silence {
                matchers: vec!["bot=\"b1\"".into()],
                starts_ms: 20,
                ends_ms: 1_000,
                comment: "redeploying b1".into(),
            },
            by: "op".into(),
        },
        20,
    );
    drive(
        &mut m,
        Input::Signal(signal("LaneLag", "b2", Report::Firing, 0)),
        30,
    );
    drive(
        &mut m,
        Input::Signal(signal("LaneLag", "b1", Report::Firing, 0)),
        30,
    );
    let b1 = m
        .alerts()
        .into_iter()
        .find(|a| a.labels["bot"] == "b1")
        .unwrap()
        .clone();
    assert_eq!(
        b1.state,
        AlertState::Suppressed,
        "muted by the time of receipt"
    );
    drive(
        &mut m,
        Input::Signal(signal("LaneLag", "b1", Report::Firing, 0)),
        2_000,
    );
    let b1 = m
        .alerts()
        .into_iter()
        .find(|a| a.labels["bot"] == "b1")
        .unwrap()
        .clone();
    assert_eq!(b1.state, AlertState::Firing, "and fires again once it ends");
}

#[test]
fn an_acknowledgement_after_a_resolution_brings_nothing_back() {
    let mut m = Monitor::default();
    let mut s = signal("disk", "b1", Report::Firing, 0);
    s.dedup_key = Some("k".into());
    drive(&mut m, Input::Signal(s.clone()), 0);
    drive(
        &mut m,
        Input::Signal(Signal {
            report: Report::Resolved,
            ..s.clone()
        }),
        1,
    );
    let ev = m
        .decide(
            Input::Signal(Signal {
                report: Report::Acknowledged,
                ..s
            }),
            2,
        )
        .unwrap();
    assert!(ev.is_empty());
    assert_eq!(m.alerts()[0].state, AlertState::Resolved);
}

#[test]
fn a_new_alert_joining_a_mitigated_incident_retriggers_it() {
    let mut m = Monitor::default();
    fire(&mut m, "LaneLag", "b1", 0);
    drive(
        &mut m,
        Input::Incident {
            id: "INC-1".into(),
            action: IncidentAction::Mitigate,
            by: "op".into(),
            note: String::new(),
        },
        1,
    );
    let ev = fire(&mut m, "LaneLag", "b2", 2);
    assert_eq!(
        kinds(&ev),
        ["alert_received", "alert_joined", "incident_moved"]
    );
    assert_eq!(
        m.incident("INC-1").unwrap().status,
        IncidentStatus::Triggered
    );
}

#[test]
fn resolve_on_first_counts_only_alerts_still_firing() {
    // Not firing only: a resolved alert of the window opens the incident
    // with the new one, and cannot hold it open once the new one resolves.
    let mut m = with_rule(CorrelationRule {
        firing_only: false,
        ..rule(2, ResolveOn::First)
    });
    fire(&mut m, "LaneLag", "b1", 0);
    resolve(&mut m, "LaneLag", "b1", 1_000);
    fire(&mut m, "LaneLag", "b2", 2_000);
    assert_eq!(m.incident("INC-1").unwrap().alerts.len(), 2);
    resolve(&mut m, "LaneLag", "b2", 3_000);
    assert_eq!(
        m.incident("INC-1").unwrap().status,
        IncidentStatus::Resolved
    );
}

#[test]
fn an_incident_opens_with_at_most_its_cap_of_alerts() {
    let mut m = with_rule(CorrelationRule {
        window_secs: 3_600,
        ..rule(2, ResolveOn::Never)
    });
    for i in 0..600 {
        fire(&mut m, "LaneLag", &format!("b{i}"), i);
    }
    assert_eq!(
        m.incident("INC-1").unwrap().alerts.len(),
        600,
        "joined one by one"
    );
    drive(
        &mut m,
        Input::Incident {
            id: "INC-1".into(),
            action: IncidentAction::Resolve,
            by: "op".into(),
            note: "handled".into(),
        },
        700,
    );
    let ev = fire(&mut m, "LaneLag", "late", 800);
    let Some(Event::IncidentOpened { alerts, .. }) = ev.last() else {
        panic!("{ev:?}");
    };
    assert_eq!(alerts.len(), MAX_OPENING);
    assert!(serde_json::to_string(&ev).unwrap().len() < 32 * 1024);
}

/// An incident with a Gather ticket running, for the investigation tests.
fn investigating() -> (Monitor, String) {
    let mut m = with_rule(rule(1, ResolveOn::Never));
    fire(&mut m, "LaneLag", "bot-01", 10);
    let id = m.incidents().next().expect("opened").id.clone();
    let plan = gather_plan();
    let start = Input::StartInvestigation {
        incident: id.clone(),
        ticket: "t-1".into(),
        alert: "LaneLag".into(),
        plan,
        bounds: Bounds::default(),
        recheck_of: None,
    };
    assert_eq!(
        kinds(&drive(&mut m, start.clone(), 20)),
        ["investigation_started"]
    );
    assert!(m.decide(start, 21).unwrap().is_empty(), "started once");
    (m, id)
}

fn findings(store: &str) -> Findings {
    use crate::evidence::Evidence;
    use crate::gather::status_of;
    let bots = serde_json::json!({"bots": [{"id": "bot-01", "node": "n1", "live": true,
        "in_flight": 1, "lane": {"depth": 9, "pending": 1, "lag_ms": 45000}}]});
    let health = serde_json::json!({"store": store, "detail": null});
    Findings {
        evidence: vec![
            Evidence::record(
                "E-1".into(),
                "get_bots",
                serde_json::json!({}),
                status_of(&bots),
                bots,
                "GET /api/v1/bots".into(),
                30,
            ),
            Evidence::record(
                "E-2".into(),
                "get_health",
                serde_json::json!({}),
                status_of(&health),
                health,
                "GET /api/v1/health".into(),
                31,
            ),
        ],
        narrative: Some("bot-01 is slow".into()),
        order: vec![],
        stopped: None,
    }
}

#[test]
fn an_investigation_is_diagnosed_from_its_evidence_and_kept_on_the_timeline() {
    let (mut m, id) = investigating();
    let finish = Input::FinishInvestigation {
        ticket: "t-1".into(),
        findings: findings("ok"),
        cost_nanos: 1_500,
    };
    let events = drive(&mut m, finish.clone(), 40);
    assert_eq!(kinds(&events), ["investigation_succeeded"]);
    assert!(
        m.decide(finish, 41).unwrap().is_empty(),
        "a result delivered twice changes nothing"
    );
    let inv = &m.investigations(&id)[0];
    assert_eq!(inv.phase, crate::investigation::Phase::Succeeded);
    let d = inv.diagnosis.as_ref().expect("diagnosed");
    assert_eq!(d.causes[0].kind, crate::diagnose::CauseKind::SlowModel);
    assert_eq!(inv.cost_nanos, 1_500);
    let moments: Vec<Moment> = m
        .incident(&id)
        .unwrap()
        .timeline
        .iter()
        .map(|t| t.moment)
        .collect();
    assert!(moments.ends_with(&[
        Moment::Investigating,
        Moment::ToolCall,
        Moment::ToolCall,
        Moment::Diagnosed
    ]));

    // The journal replayed gives the same state.
    let (mut replayed, _) = investigating();
    for e in &events {
        replayed.apply(e, 40);
    }
    assert_eq!(replayed.investigations(&id), m.investigations(&id));
    assert_eq!(replayed.incident(&id), m.incident(&id));
}

#[test]
fn findings_that_cannot_be_trusted_fail_the_investigation_with_why() {
    let (mut m, id) = investigating();
    let mut f = findings("ok");
    f.evidence[1].result = serde_json::json!({"store": "unavailable"});
    let events = drive(
        &mut m,
        Input::FinishInvestigation {
            ticket: "t-1".into(),
            findings: f,
            cost_nanos: 0,
        },
        40,
    );
    assert_eq!(kinds(&events), ["investigation_failed"]);
    let inv = &m.investigations(&id)[0];
    assert!(inv.diagnosis.is_none());
    assert!(
        inv.error.as_deref().unwrap().contains("E-2"),
        "{:?}",
        inv.error
    );
    let unknown = m.decide(
        Input::FailInvestigation {
            ticket: "t-9".into(),
            error: "x".into(),
        },
        50,
    );
    assert!(matches!(unknown, Err(OpsError::NotFound { .. })));
}

#[test]
fn a_postmortem_is_edited_then_published_once_resolved_and_frozen() {
    use crate::report::{Lessons, PostmortemEdit, PostmortemStatus};
    let (mut m, id) = investigating();
    let edit = |summary: &str| Input::EditPostmortem {
        incident: id.clone(),
        edit: PostmortemEdit {
            summary: Some(summary.into()),
            ..PostmortemEdit::default()
        },
        by: "ana".into(),
    };
    let publish = Input::PublishPostmortem {
        incident: id.clone(),
        by: "ana".into(),
    };
    let mut events = drive(&mut m, edit("bot-01 fell behind"), 50);
    let lessons = Input::EditPostmortem {
        incident: id.clone(),
        edit: PostmortemEdit {
            lessons: Some(Lessons {
                got_lucky: vec!["quiet hour".into()],
                ..Lessons::default()
            }),
            ..PostmortemEdit::default()
        },
        by: "bo".into(),
    };
    events.extend(drive(&mut m, lessons, 51));
    let draft = m.postmortem(&id).unwrap();
    assert_eq!(draft.summary, "bot-01 fell behind", "earlier edits stay");
    assert_eq!(draft.lessons.got_lucky, ["quiet hour"]);
    assert_eq!(draft.edited_by.as_deref(), Some("bo"));
    assert!(
        matches!(
            m.decide(publish.clone(), 52),
            Err(OpsError::Postmortem { .. })
        ),
        "not before the incident is resolved"
    );
    let resolve = Input::Incident {
        id: id.clone(),
        action: IncidentAction::Resolve,
        by: "ana".into(),
        note: "caught up".into(),
    };
    events.extend(drive(&mut m, resolve, 60));
    events.extend(drive(&mut m, publish.clone(), 70));
    let published = m.postmortem(&id).unwrap();
    assert_eq!(published.status, PostmortemStatus::Published);
    assert_eq!(published.published_ms, Some(70));
    assert!(
        published.resolution.contains("caught up"),
        "{}",
        published.resolution
    );
    assert!(matches!(
        m.decide(edit("rewritten"), 80),
        Err(OpsError::Postmortem { .. })
    ));
    assert!(matches!(
        m.decide(publish, 80),
        Err(OpsError::Postmortem { .. })
    ));
    // Replayed from the journal: the same postmortem, frozen.
    let (mut replayed, _) = investigating();
    for (e, at) in events.iter().zip([50, 51, 60, 70]) {
        replayed.apply(e, at);
    }
    assert_eq!(replayed.postmortem(&id), Some(published));
}

#[path = "heal_tests.rs"]
mod heal_tests;

/// A shipped rule a person took out stays out when settings that do not
/// name it as offered (a file edited by hand) are set later.
#[test]
fn a_shipped_rule_taken_out_stays_out_whatever_later_settings_say() {
    let mut m = Monitor::default();
    let mut mine = Settings::default();
    mine.heal.retain(|r| r.name != "drain-slow-bot");
    drive(
        &mut m,
        Input::Settings {
            settings: mine.clone(),
            by: "op".into(),
        },
        0,
    );
    assert!(m.settings().heal.iter().all(|r| r.name != "drain-slow-bot"));
    let mut hand_edited = mine;
    hand_edited.offered.retain(|n| n != "drain-slow-bot");
    drive(
        &mut m,
        Input::Settings {
            settings: hand_edited,
            by: "op".into(),
        },
        1,
    );
    assert!(
        m.settings().heal.iter().all(|r| r.name != "drain-slow-bot"),
        "{:?}",
        m.settings().heal
    );
    assert!(m.settings().offered.iter().any(|n| n == "drain-slow-bot"));
}
