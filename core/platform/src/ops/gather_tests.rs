//! Gather end to end in local mode: an incident investigated by a ticket
//! boxed in by the connector broker, its evidence kept and its diagnosis
//! read from it.

use std::sync::Arc;
use std::time::Duration;

use oshal_ops::alert::Source;
use oshal_ops::evidence::ToolStatus;
use oshal_ops::investigation::Phase;
use serde_json::{Value, json};

use super::{IncidentView, Operations};
use crate::clock::{SharedClock, SystemClock};
use crate::connector::Connectors;
use crate::connector::broker::keyring::KeyringBackend;
use crate::connector::signing::TrustedKeys;
use crate::controller::{Controller, ControllerConfig, LocalPool};
use crate::model::builtin::BuiltinModel;
use crate::name::Named;
use crate::store::sqlite::SqliteStore;
use crate::ticket::{NewTicket, TicketId, TicketState, Work};

/// A local controller with a connector runtime (as `Platform::local`
/// opens one, without what these tests do not use) and its operations loop.
struct Platform {
    controller: Controller,
    ops: Operations,
}

impl Platform {
    async fn shutdown(self) {
        self.ops.shutdown();
        self.controller.shutdown().await;
    }
}

async fn platform(dir: &std::path::Path) -> Platform {
    platform_tuned(dir, super::Tuning::default()).await
}

/// [`platform`] whose loop samples spend and judges its burn as `tuning`
/// says.
async fn platform_tuned(dir: &std::path::Path, tuning: super::Tuning) -> Platform {
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let config = ControllerConfig::default();
    let tools = Connectors::open(
        crate::connector::store::sqlite(store.pool().clone()),
        Arc::new(KeyringBackend::default()),
        TrustedKeys::shipped(),
        config.secret_rules.clone(),
        clock.clone(),
    )
    .await
    .unwrap();
    let pool = LocalPool {
        bots: 2,
        skills: Work::default_skills(),
        model: Arc::new(BuiltinModel::new()),
        tools: Some(tools),
        artifacts: None,
    };
    let controller = Controller::start(config, store, pool, clock).await.unwrap();
    let ops = Operations::start_tuned(controller.clone(), tuning)
        .await
        .unwrap();
    Platform { controller, ops }
}

fn firing(name: &str) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "oshal", "alerts": [{
        "status": "firing",
        "labels": {"alertname": name, "service": "checkout", "severity": "warning"},
        "annotations": {"summary": format!("{name} fired")},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }]})
}

/// A ticket once it has ended (or after 30 s, as it is then).
async fn ended(p: &Platform, id: TicketId) -> crate::store::TicketView {
    let mut view = p.controller.ticket(id).await.unwrap();
    for _ in 0..300 {
        if view.state.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = p.controller.ticket(id).await.unwrap();
    }
    view
}

/// The incident once its first investigation has ended.
async fn investigated(p: &Platform, tenant: Option<&str>, id: &str) -> IncidentView {
    for _ in 0..300 {
        let v = p.ops.incident(tenant, id).await.unwrap();
        if v.investigations
            .first()
            .is_some_and(|i| i.phase != Phase::Running)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} was not investigated in 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_is_investigated_inside_the_box_and_its_grants_end_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let got = p
        .ops
        .ingest(None, Source::Alertmanager, firing("CheckoutErrors"))
        .await
        .unwrap();
    let id = got.opened[0].clone();
    let v = investigated(&p, None, &id).await;
    let inv = &v.investigations[0];
    assert_eq!(inv.phase, Phase::Succeeded, "{:?}", inv.error);
    // The shipped catch-all runbook: what changed, and the store's health.
    let tools: Vec<&str> = inv.evidence.iter().map(|e| e.tool.as_str()).collect();
    assert_eq!(tools, ["list_changes", "get_health"]);
    assert!(inv.evidence.iter().all(|e| e.intact()));
    assert_eq!(inv.evidence[1].status, ToolStatus::Success);
    assert_eq!(inv.evidence[1].result["store"], "ok");
    assert_eq!(inv.evidence[1].replay, "GET /api/v1/health");
    // A healthy store and nothing else: no cause of its own, kept so.
    let d = inv.diagnosis.as_ref().unwrap();
    assert!(d.inconclusive, "{d:?}");
    assert!(d.findings.iter().all(|f| !f.evidence.is_empty()));
    assert!(inv.plan.tasks.iter().all(|t| t.evidence.is_some()));
    let moments: Vec<_> = v
        .incident
        .timeline
        .iter()
        .map(|t| t.moment.as_str())
        .collect();
    assert!(
        moments.contains(&"investigating") && moments.contains(&"diagnosed"),
        "{moments:?}"
    );

    // The ticket held grants bound to it alone, for exactly the planned
    // reads, and none once it ended.
    let ticket = TicketId::parse(&inv.ticket).unwrap();
    let c = p.controller.connectors().unwrap();
    let trail = c.audit(Some(ticket), None, 100).await.unwrap();
    let allowed = trail.iter().filter(|a| a.allowed == Some(true)).count();
    assert_eq!(allowed, 2, "{trail:#?}");
    let live = c.grants(None).await.unwrap();
    assert!(
        live.iter().all(|g| g.ticket != Some(ticket)),
        "the ticket's grants were revoked: {live:#?}"
    );
    let view = p.controller.ticket(ticket).await.unwrap();
    assert_eq!(view.kind, "investigate");
    assert_eq!(view.state, TicketState::Succeeded);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gather_ticket_without_the_loops_grants_is_denied_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    // Submitted by hand: the same work, but no grant is bound to it.
    let submitted = p
        .controller
        .submit(NewTicket {
            kind: "investigate".into(),
            payload: json!({
                "incident": "INC-404", "alert": "Anything", "connector": "oshal-ops",
                "calls": [{"operation": "get_bots"}, {"operation": "drop_everything"}],
                "max_steps": 2, "max_wall_ms": 30000, "max_tokens": 0
            }),
            ..NewTicket::default()
        })
        .await
        .unwrap();
    let view = ended(&p, submitted.id).await;
    assert_eq!(view.state, TicketState::Succeeded);
    let text = view.result.as_ref().unwrap()["text"].as_str().unwrap();
    let findings: oshal_ops::investigation::Findings = serde_json::from_str(text).unwrap();
    assert_eq!(findings.evidence.len(), 2);
    for e in &findings.evidence {
        assert_eq!(e.status, ToolStatus::Error, "{e:?}");
        assert!(
            e.result["error"].as_str().unwrap().contains("denied"),
            "{e:?}"
        );
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_incident_reads_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    p.controller
        .set_budget(crate::ticket::TenantId::parse("acme").unwrap(), None)
        .await
        .unwrap();
    let got = p
        .ops
        .ingest(Some("acme"), Source::Alertmanager, firing("CheckoutErrors"))
        .await
        .unwrap();
    let v = investigated(&p, Some("acme"), &got.opened[0]).await;
    let inv = &v.investigations[0];
    assert_eq!(inv.phase, Phase::Succeeded, "{:?}", inv.error);
    let tools: Vec<&str> = inv.plan.tasks.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(tools, ["list_changes"]);
    assert!(
        inv.plan
            .skipped
            .iter()
            .any(|s| s.tool == "get_health" && s.why.contains("operator")),
        "{:?}",
        inv.plan.skipped
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_out_of_budget_is_an_incident_diagnosed_from_its_spend() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let id = budget_incident(&p).await;
    let v = investigated(&p, None, &id).await;
    let inv = &v.investigations[0];
    assert_eq!(inv.phase, Phase::Succeeded, "{:?}", inv.error);
    assert_eq!(inv.evidence[0].tool, "get_spend");
    let d = inv.diagnosis.as_ref().unwrap();
    assert!(!d.inconclusive, "{d:?}");
    assert_eq!(
        (d.causes[0].kind.as_str(), d.causes[0].subject.as_str()),
        ("budget_exhausted", "acme")
    );
    assert_eq!(d.causes[0].supports[0].evidence, ["E-1"]);
    p.shutdown().await;
}

/// An operator asks for an open incident to be investigated again: a
/// second Gather ticket beside the first, never two at once, no second
/// heal of a rule already proposed, and none once it is resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_incident_is_investigated_again_on_request_and_never_twice_at_once() {
    use super::{MoveAction, MoveIncident, OpsError};
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let id = budget_incident(&p).await;
    investigated(&p, None, &id).await;
    let v = once(&p, &id, "proposed a heal", |v| !v.heals.is_empty()).await;
    assert_eq!(v.investigations.len(), 1);

    let again = p.ops.investigate_again(None, &id).await.unwrap();
    assert_eq!(again.investigations.len(), 2);
    assert_eq!(again.investigations[1].phase, Phase::Running);
    match p.ops.investigate_again(None, &id).await {
        Err(OpsError::Conflict(m)) => assert!(m.contains("being investigated already"), "{m}"),
        other => panic!("{other:?}"),
    }
    let v = once(&p, &id, "investigated twice", |v| {
        v.investigations[1].phase == Phase::Succeeded
    })
    .await;
    let d = v.investigations[1].diagnosis.as_ref().unwrap();
    assert_eq!(d.causes[0].subject, "acme");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = p.ops.incident(None, &id).await.unwrap();
    assert_eq!(
        v.heals.len(),
        1,
        "the raise was proposed once: {:#?}",
        v.heals
    );

    let resolve = MoveIncident {
        action: MoveAction::Resolve,
        note: "raised by hand".into(),
        tenant: None,
    };
    p.ops.move_incident(&id, resolve, "alice").await.unwrap();
    match p.ops.investigate_again(None, &id).await {
        Err(OpsError::Conflict(m)) => assert!(m.contains("only an open incident"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.ops.investigate_again(None, "INC-999").await,
        Err(OpsError::NotFound(_))
    ));
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_ticket_granted_the_platforms_tools_still_reads_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let acme = crate::ticket::TenantId::parse("acme").unwrap();
    p.controller.set_budget(acme.clone(), None).await.unwrap();
    // The operator records a change of its own: acme's ticket must not see it.
    p.ops
        .add(
            None,
            oshal_ops::monitor::Input::Change(oshal_ops::change::ChangeEvent {
                kind: oshal_ops::change::ChangeKind::Deploy,
                subject: "controller".into(),
                detail: "v9".into(),
                count: 0,
                at_ms: 0,
            }),
        )
        .await
        .unwrap();
    let submitted = p
        .controller
        .submit(NewTicket {
            kind: "investigate".into(),
            tenant: Some("acme".into()),
            requires_approval: true,
            payload: json!({
                "incident": "INC-1", "alert": "Anything", "connector": "oshal-ops",
                "calls": [{"operation": "get_bots"}, {"operation": "list_changes"}],
                "max_steps": 2, "max_wall_ms": 30000, "max_tokens": 0
            }),
            ..NewTicket::default()
        })
        .await
        .unwrap();
    // Even a grant for the platform's tools, bound to acme's ticket.
    let ops = ["get_bots".to_owned(), "list_changes".to_owned()];
    let c = p.controller.connectors().unwrap();
    c.grant_ticket(submitted.id, "oshal-ops", &ops, i64::MAX / 2, 4, "test")
        .await
        .unwrap();
    p.controller.approve(submitted.id).await.unwrap();
    let view = ended(&p, submitted.id).await;
    let text = view.result.as_ref().unwrap()["text"].as_str().unwrap();
    let findings: oshal_ops::investigation::Findings = serde_json::from_str(text).unwrap();
    let bots = &findings.evidence[0];
    assert_eq!(bots.status, ToolStatus::Error, "{bots:?}");
    assert!(
        bots.result["error"].as_str().unwrap().contains("403"),
        "{bots:?}"
    );
    let changes = &findings.evidence[1];
    assert_eq!(
        changes.status,
        ToolStatus::NoData,
        "acme has no change of its own: {changes:?}"
    );
    p.shutdown().await;
}

/// The incident the alert `name` (with `label` if given) opened, once it
/// has (30 s at most).
async fn incident_of(p: &Platform, name: &str, label: Option<(&str, &str)>) -> String {
    for _ in 0..300 {
        let alerts = p
            .ops
            .alerts(None, &super::AlertsQuery::default())
            .await
            .unwrap();
        if let Some(id) = alerts
            .iter()
            .filter(|a| a.alert.name == name)
            .find(|a| label.is_none_or(|(k, v)| a.alert.labels.get(k).is_some_and(|x| x == v)))
            .and_then(|a| a.alert.incident.clone())
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {name} incident ({label:?}) within 30 s");
}

/// acme with a budget of nothing (spent from the start), and the incident
/// its `OshalBudgetExhausted` opened.
async fn budget_incident(p: &Platform) -> String {
    let acme = crate::ticket::TenantId::parse("acme").unwrap();
    p.controller.set_budget(acme, Some(0)).await.unwrap();
    incident_of(p, "OshalBudgetExhausted", Some(("tenant", "acme"))).await
}

/// The incident once `until` holds of it (30 s at most).
async fn once(
    p: &Platform,
    id: &str,
    what: &str,
    until: impl Fn(&IncidentView) -> bool,
) -> IncidentView {
    for _ in 0..300 {
        let v = p.ops.incident(None, id).await.unwrap();
        if until(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = p.ops.incident(None, id).await.unwrap();
    panic!("{id}: not {what} within 30 s: {:#?}", v.heals);
}

/// Alice approves the incident's first heal; the incident once its
/// re-check has a verdict.
async fn approved(p: &Platform, id: &str, note: &str) -> IncidentView {
    let approve = super::HealDecision {
        heal: "H-1".into(),
        approve: true,
        note: note.into(),
    };
    p.ops.decide_heal(None, id, approve, "alice").await.unwrap();
    once(p, id, "healed and re-checked", |v| {
        v.heals[0]
            .recheck
            .as_ref()
            .is_some_and(|r| r.passed.is_some())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_writes_only_after_approval_under_one_grant_and_is_rechecked() {
    use oshal_ops::heal::HealPhase;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let acme = crate::ticket::TenantId::parse("acme").unwrap();
    let id = budget_incident(&p).await;
    let v = once(&p, &id, "proposed a heal", |v| !v.heals.is_empty()).await;
    let h = &v.heals[0];
    assert_eq!((h.id.as_str(), h.phase), ("H-1", HealPhase::Pending));
    assert_eq!(h.rule, "raise-exhausted-budget");
    assert_eq!(h.subject, "acme");
    assert_eq!(h.dry_run.blast.tenants, ["acme"]);
    assert!(
        h.dry_run.summary.contains("from $0.000000 to $1.500000"),
        "{}",
        h.dry_run.summary
    );
    assert_eq!(h.investigation, v.investigations[0].ticket);
    assert!(!h.evidence.is_empty());

    // The same write, asked for by hand before any approval: the broker
    // answers approval_required, and nothing changes.
    let by_hand = p
        .controller
        .submit(NewTicket {
            kind: "tool".into(),
            payload: json!({"connector": "oshal-ops", "operation": "set_budget",
                "params": {"tenant": "acme", "budget_nusd": 9_000_000_000i64}}),
            ..NewTicket::default()
        })
        .await
        .unwrap();
    let view = ended(&p, by_hand.id).await;
    assert_eq!(view.state, TicketState::Dead);
    assert!(
        view.error
            .as_deref()
            .unwrap_or("")
            .contains("approval required"),
        "{:?}",
        view.error
    );
    let budget = |spend: Vec<crate::controller::Spend>| {
        spend
            .into_iter()
            .find(|s| s.tenant == acme)
            .and_then(|s| s.budget_nusd)
    };
    assert_eq!(budget(p.controller.spend().await.unwrap()), Some(0));

    // Approved: one ticket, one grant for that one write, then the re-check.
    let v = approved(&p, &id, "raise it").await;
    let h = &v.heals[0];
    assert_eq!(h.phase, HealPhase::Succeeded, "{:?}", h.outcome);
    assert_eq!(h.decided_by.as_deref(), Some("alice"));
    assert_eq!(h.recheck.as_ref().unwrap().passed, Some(true), "{h:#?}");
    assert_eq!(
        budget(p.controller.spend().await.unwrap()),
        Some(1_500_000_000)
    );
    let ticket = TicketId::parse(h.ticket.as_deref().unwrap()).unwrap();
    let c = p.controller.connectors().unwrap();
    let trail = c.audit(Some(ticket), None, 100).await.unwrap();
    let allowed = trail.iter().filter(|a| a.allowed == Some(true)).count();
    assert_eq!(allowed, 1, "one write under the heal's grant: {trail:#?}");
    let live = c.grants(None).await.unwrap();
    assert!(
        live.iter().all(|g| g.ticket != Some(ticket)),
        "the heal's grant was revoked: {live:#?}"
    );
    // The write is a change event: evidence for what comes after.
    let changes = p.ops.changes(None, 0).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.kind == oshal_ops::change::ChangeKind::BudgetChanged && c.subject == "acme")
    );
    // Past the gate, the heal's ticket writes only what was approved (a
    // node relays its calls): other figures are refused, the same ones
    // answer as before and change nothing.
    let call = |budget: i64| {
        (
            crate::connector::call::CallRef {
                bot: crate::ticket::BotId::parse("bot-01").unwrap(),
                tenant: Some(crate::ticket::TenantId::default_tenant()),
                ticket,
                attempt: 1,
                connector: "oshal-ops".into(),
                operation: "set_budget".into(),
            },
            json!({"tenant": "acme", "budget_nusd": budget}),
        )
    };
    let (c, params) = call(9_000_000_000);
    let (status, body) = super::writes::apply(p.ops.inner.clone(), &c, &params, "k-1")
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    let (c, params) = call(1_500_000_000);
    let (status, _) = super::writes::apply(p.ops.inner.clone(), &c, &params, "k-2")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        budget(p.controller.spend().await.unwrap()),
        Some(1_500_000_000)
    );
    let after = p.ops.changes(None, 0).await.unwrap();
    assert_eq!(
        after.len(),
        changes.len(),
        "applied already: nothing recorded twice"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_heal_writes_nothing_and_an_expired_heal_grant_is_refused() {
    use oshal_ops::heal::HealPhase;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let id = budget_incident(&p).await;
    once(&p, &id, "proposed a heal", |v| !v.heals.is_empty()).await;
    let deny = super::HealDecision {
        heal: "H-1".into(),
        approve: false,
        note: "not now".into(),
    };
    let v = p
        .ops
        .decide_heal(None, &id, deny.clone(), "bob")
        .await
        .unwrap();
    assert_eq!(v.heals[0].phase, HealPhase::Denied);
    assert!(v.heals[0].ticket.is_none());
    let again = p.ops.decide_heal(None, &id, deny, "bob").await;
    assert!(
        matches!(again, Err(super::OpsError::Conflict(_))),
        "{again:?}"
    );

    // A heal's grant that has expired lets nothing through.
    let submitted = p
        .controller
        .submit(NewTicket {
            kind: "tool".into(),
            requires_approval: true,
            payload: json!({"connector": "oshal-ops", "operation": "set_budget",
                "params": {"tenant": "acme", "budget_nusd": 9_000_000_000i64}}),
            ..NewTicket::default()
        })
        .await
        .unwrap();
    let c = p.controller.connectors().unwrap();
    let soon = p.controller.clock().now_ms() + 200;
    c.grant_ticket(
        submitted.id,
        "oshal-ops",
        &["set_budget".to_owned()],
        soon,
        2,
        "test",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    p.controller.approve(submitted.id).await.unwrap();
    let view = ended(&p, submitted.id).await;
    assert_eq!(view.state, TicketState::Dead);
    assert!(
        view.error.as_deref().unwrap_or("").contains("expired"),
        "{:?}",
        view.error
    );
    let acme = crate::ticket::TenantId::parse("acme").unwrap();
    let spend = p.controller.spend().await.unwrap();
    assert_eq!(
        spend.iter().find(|s| s.tenant == acme).unwrap().budget_nusd,
        Some(0)
    );
    p.shutdown().await;
}

/// Work that fails every attempt (a tool no connector serves), as many
/// tickets as make the failures alert fire, each dead; their ids.
async fn poisoned(p: &Platform) -> Vec<String> {
    let mut dead = Vec::new();
    for n in 0..super::failures::THRESHOLD {
        let submitted = p
            .controller
            .submit(NewTicket {
                kind: "tool".into(),
                payload: json!({"connector": "no-such-crm", "operation": "find",
                    "params": {"n": n}}),
                ..NewTicket::default()
            })
            .await
            .unwrap();
        assert_eq!(ended(p, submitted.id).await.state, TicketState::Dead);
        dead.push(submitted.id.to_string());
    }
    dead
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_failing_for_good_are_an_incident_diagnosed_from_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    poisoned(&p).await;
    let id = incident_of(&p, super::failures::TICKETS_DEAD, None).await;
    let v = investigated(&p, None, &id).await;
    let inv = &v.investigations[0];
    assert_eq!(inv.phase, Phase::Succeeded, "{:?}", inv.error);
    assert_eq!(inv.evidence[0].tool, "list_failures");
    assert_eq!(inv.evidence[0].params["tenant"], "default");
    let failures = &inv.evidence[0].result["failures"];
    assert_eq!(
        failures[0]["count"],
        super::failures::THRESHOLD,
        "{failures:#}"
    );
    let d = inv.diagnosis.as_ref().unwrap();
    assert_eq!(
        (
            d.causes[0].kind.as_str(),
            d.causes[0].subject.as_str(),
            d.inconclusive
        ),
        ("poison_input", "tool", false),
        "{d:#?}"
    );
    // No heal rule heals a poison: none is proposed.
    assert!(v.heals.is_empty());
    p.shutdown().await;
}

/// A replay runs each dead ticket again once, after an approval; its heal
/// waits for the replays, and a re-check that sees them die again (the
/// poison is still there) says the heal did not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_the_dead_once_and_its_recheck_sees_them_die_again() {
    use oshal_ops::diagnose::CauseKind;
    use oshal_ops::heal::{Action, HealPhase};
    use oshal_ops::rule::{ActionTemplate, HealRule, Settings};
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let mut settings = Settings::default();
    settings.heal.push(HealRule {
        name: "replay-poison".into(),
        trigger: CauseKind::PoisonInput,
        matchers: vec!["alertname=\"OshalTicketsDead\"".into()],
        action: ActionTemplate::ReplayDead,
        max_attempts: 2,
        concurrency: 1,
    });
    p.ops.set_settings(None, settings, "test").await.unwrap();
    let dead = poisoned(&p).await;
    let id = incident_of(&p, super::failures::TICKETS_DEAD, None).await;
    let v = once(&p, &id, "proposed a replay", |v| !v.heals.is_empty()).await;
    let h = &v.heals[0];
    assert_eq!(
        (h.rule.as_str(), h.phase),
        ("replay-poison", HealPhase::Pending)
    );
    let Action::ReplayDead { tenant, tickets } = &h.action else {
        panic!("{:?}", h.action);
    };
    let (mut named, mut want) = (tickets.clone(), dead.clone());
    named.sort();
    want.sort();
    assert_eq!((tenant.as_str(), named), ("default", want));
    assert_eq!(
        h.dry_run.blast.tickets_total as usize,
        super::failures::THRESHOLD
    );
    let v = approved(&p, &id, "try again").await;
    let h = &v.heals[0];
    assert_eq!(h.phase, HealPhase::Succeeded, "{:?}", h.outcome);
    let outcome = h.outcome.as_deref().unwrap_or_default();
    assert!(
        outcome.contains(&format!("its {} replays: {} dead", dead.len(), dead.len())),
        "the heal waited for its replays: {outcome}"
    );
    let recheck = h.recheck.as_ref().unwrap();
    assert_eq!(recheck.passed, Some(false), "{recheck:#?}");
    // Each dead ticket ran again exactly once, caused by it.
    let query = crate::store::TicketQuery {
        tag: None,
        state: Some(TicketState::Dead),
        tenant: None,
        bot: None,
        kind: Some("tool".into()),
        cursor: None,
        limit: 100,
    };
    let ids: Vec<TicketId> = p
        .controller
        .tickets(&query)
        .await
        .unwrap()
        .tickets
        .iter()
        .map(|t| t.id)
        .collect();
    let all = p.controller.tickets_by_id(&ids, None).await.unwrap();
    for d in &dead {
        let replays = all
            .iter()
            .filter(|t| t.causation_id.is_some_and(|c| c.to_string() == *d))
            .count();
        assert_eq!(replays, 1, "{d} replayed once");
    }
    let changes = p.ops.changes(None, 0).await.unwrap();
    assert!(changes.iter().any(|c| {
        c.kind == oshal_ops::change::ChangeKind::TicketsReplayed
            && c.count as usize == super::failures::THRESHOLD
    }));
    p.shutdown().await;
}

/// An operator's rule pauses the tenant whose tickets die of a poison:
/// proposed with its unfinished tickets, applied only after an approval,
/// re-checked (nothing died since); its next ticket is kept, not routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_tenant_is_paused_after_an_approval_and_its_work_waits() {
    use oshal_ops::diagnose::CauseKind;
    use oshal_ops::heal::{Action, HealPhase};
    use oshal_ops::rule::{ActionTemplate, HealRule, Settings};
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let shopco = crate::ticket::TenantId::parse("shopco").unwrap();
    p.controller.set_budget(shopco.clone(), None).await.unwrap();
    let mut settings = Settings::default();
    settings.heal.insert(
        0,
        HealRule {
            name: "pause-poisoned".into(),
            trigger: CauseKind::PoisonInput,
            matchers: vec!["alertname=\"OshalTicketsDead\"".into()],
            action: ActionTemplate::PauseTenant,
            max_attempts: 2,
            concurrency: 1,
        },
    );
    p.ops.set_settings(None, settings, "test").await.unwrap();
    let poison = |n: usize| NewTicket {
        kind: "tool".into(),
        tenant: Some("shopco".into()),
        payload: json!({"connector": "no-such-crm", "operation": "find", "params": {"n": n}}),
        ..NewTicket::default()
    };
    for n in 0..super::failures::THRESHOLD {
        let id = p.controller.submit(poison(n)).await.unwrap().id;
        assert_eq!(ended(&p, id).await.state, TicketState::Dead);
    }
    let id = incident_of(
        &p,
        super::failures::TICKETS_DEAD,
        Some(("tenant", "shopco")),
    )
    .await;
    let v = once(&p, &id, "proposed a pause", |v| !v.heals.is_empty()).await;
    let h = &v.heals[0];
    assert_eq!(
        (h.rule.as_str(), h.phase),
        ("pause-poisoned", HealPhase::Pending)
    );
    assert_eq!(
        h.action,
        Action::PauseTenant {
            tenant: "shopco".into()
        }
    );
    assert_eq!(h.dry_run.blast.tenants, ["shopco"]);
    assert!(
        h.dry_run.summary.contains("pause tenant shopco"),
        "{}",
        h.dry_run.summary
    );
    let paused = async || {
        p.controller
            .spend()
            .await
            .unwrap()
            .iter()
            .any(|s| s.tenant == shopco && s.paused)
    };
    assert!(!paused().await, "nothing written before the approval");

    let v = approved(&p, &id, "stop it until the input is fixed").await;
    let h = &v.heals[0];
    assert_eq!(h.phase, HealPhase::Succeeded, "{:?}", h.outcome);
    assert_eq!(h.recheck.as_ref().unwrap().passed, Some(true), "{h:#?}");
    assert!(paused().await);
    let next = p.controller.submit(poison(99)).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = p.controller.ticket(next).await.unwrap();
    assert_eq!(
        (view.state, view.attempts),
        (TicketState::Queued, 0),
        "kept, not routed"
    );
    assert_eq!(
        view.waiting.map(|w| w.reason),
        Some(crate::ticket::WaitReason::TenantPaused {
            tenant: shopco.clone()
        })
    );
    let changes = p.ops.changes(None, 0).await.unwrap();
    let paused_change = changes
        .iter()
        .find(|c| c.kind == oshal_ops::change::ChangeKind::TenantPaused && c.subject == "shopco")
        .expect("the pause is on the record");

    // A person resumes shopco; then the heal's write comes again, as a
    // retry whose first answer was lost would: it answers as before and
    // leaves shopco resumed.
    p.controller
        .pause_tenant(&shopco, false, "alice")
        .await
        .unwrap();
    let again = write_again(&p, h, &write_key(paused_change)).await;
    assert_eq!(again, (200, json!({"tenant": "shopco", "paused": true})));
    assert!(!paused().await, "what the person did stands");
    p.shutdown().await;
}

/// The idempotency key a heal's write was made under, as its change
/// event records it.
fn write_key(change: &oshal_ops::change::ChangeEvent) -> String {
    change
        .detail
        .split("(write ")
        .nth(1)
        .and_then(|k| k.split(')').next())
        .expect("the write's key is in its change")
        .to_owned()
}

/// Heal `h`'s write made again from its ticket under `key`, as a retry
/// of it would be; its status and answer.
async fn write_again(p: &Platform, h: &oshal_ops::heal::Heal, key: &str) -> (u16, Value) {
    let call = crate::connector::call::CallRef {
        bot: crate::ticket::BotId::parse("local-bot-01").unwrap(),
        tenant: Some(crate::ticket::TenantId::default_tenant()),
        ticket: TicketId::parse(h.ticket.as_deref().unwrap()).unwrap(),
        attempt: 2,
        connector: "oshal-ops".into(),
        operation: h.action.operation().into(),
    };
    super::writes::apply(p.ops.inner.clone(), &call, &h.action.params(), key)
        .await
        .unwrap()
}

#[path = "spend_tests.rs"]
mod spend;
