//! Controller tests: a real controller on a real SQLite file, driven the way
//! a surface drives it. Models here are scripts of behaviour (fail, hang,
//! succeed) so each path is reached on purpose; the real providers are tested
//! in `model/` and end to end against llama-server.

use super::*;
use crate::clock::SystemClock;
use crate::cost::Usage;
use crate::model::builtin::BuiltinModel;
use crate::model::{ChatReply, ChatRequest, Model, ModelError};
use crate::store::sqlite::SqliteStore;
use crate::ticket::WaitReason;
use async_trait::async_trait;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    dir: tempfile::TempDir,
    controller: Controller,
    store: Arc<SqliteStore>,
}

struct HarnessBuilder {
    bots: usize,
    skills: Vec<&'static str>,
    model: Arc<dyn Model>,
    config: ControllerConfig,
    dir: Option<tempfile::TempDir>,
    clock: crate::clock::SharedClock,
}

impl Harness {
    fn builder() -> HarnessBuilder {
        HarnessBuilder {
            bots: 3,
            skills: vec!["chat"],
            model: Arc::new(BuiltinModel::new()),
            config: ControllerConfig {
                backoff_base: Duration::from_millis(5),
                backoff_max: Duration::from_millis(20),
                ..Default::default()
            },
            dir: None,
            clock: Arc::new(SystemClock),
        }
    }

    async fn submit(&self, t: NewTicket) -> Submitted {
        self.controller
            .submit(t)
            .await
            .expect("submission accepted")
    }

    /// Waits, on the event stream, until the ticket is in `state`.
    async fn wait_for(&self, id: TicketId, state: TicketState) -> TicketView {
        let mut events = self.controller.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let view = self.controller.ticket(id).await.unwrap();
            if view.state == state {
                return view;
            }
            assert!(
                !view.state.is_terminal(),
                "ticket ended {} while waiting for {state}: {view:#?}",
                view.state
            );
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => panic!(
                    "ticket {id} still {} after {WAIT:?}, waiting for {state}",
                    view.state
                ),
                Ok(_) => continue,
            }
        }
    }

    /// The newest tickets in the store (up to 10).
    async fn stored(&self) -> Vec<crate::store::TicketSummary> {
        self.controller
            .tickets(&crate::store::TicketQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .tickets
    }

    async fn wait_terminal(&self, id: TicketId) -> TicketView {
        let mut events = self.controller.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let view = self.controller.ticket(id).await.unwrap();
            if view.state.is_terminal() {
                return view;
            }
            if tokio::time::timeout_at(deadline, events.recv())
                .await
                .is_err()
            {
                panic!("ticket {id} still {} after {WAIT:?}", view.state);
            }
        }
    }

    /// Waits until `check` holds, re-checking on every event.
    async fn eventually(&self, what: &str, mut check: impl AsyncFnMut() -> bool) {
        let mut events = self.controller.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check().await {
            let step = tokio::time::Instant::now() + Duration::from_millis(50);
            if tokio::time::timeout_at(step.min(deadline), events.recv())
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                panic!("{what}: not true after {WAIT:?}");
            }
        }
    }

    /// Stops this controller and starts a new one on the same data.
    async fn restart(self, model: Arc<dyn Model>) -> Harness {
        self.controller.shutdown().await;
        self.store.close().await;
        let mut b = Harness::builder();
        b.model = model;
        b.dir = Some(self.dir);
        b.build().await
    }
}

impl HarnessBuilder {
    fn bots(mut self, n: usize) -> Self {
        self.bots = n;
        self
    }
    fn skills(mut self, skills: Vec<&'static str>) -> Self {
        self.skills = skills;
        self
    }
    fn model(mut self, m: impl Model + 'static) -> Self {
        self.model = Arc::new(m);
        self
    }
    fn clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }
    fn config(mut self, f: impl FnOnce(&mut ControllerConfig)) -> Self {
        f(&mut self.config);
        self
    }
    async fn build(self) -> Harness {
        let dir = self.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let pool = LocalPool {
            bots: self.bots,
            skills: self
                .skills
                .iter()
                .map(|s| Skill::parse(s).unwrap())
                .collect(),
            model: self.model,
            tools: None,
            artifacts: None,
        };
        let controller = Controller::start(self.config, store.clone(), pool, self.clock)
            .await
            .unwrap();
        Harness {
            dir,
            controller,
            store,
        }
    }
}

/// What a scripted model does on one call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Succeed,
    FailRetryable,
    FailFatal,
    Hang,
    /// Succeeds after [`SLOW_STEP`].
    Slow,
}

const SLOW_STEP: Duration = Duration::from_millis(150);

/// A model that follows a script per prompt: the n-th call with a prompt
/// does `script[n]` (the last step repeats). The script is read from the
/// prompt: `"<name>:s,f,F,h,w"` (succeed, fail retryable, fail fatal, hang,
/// succeed slowly).
#[derive(Debug, Default)]
struct Scripted {
    calls: Mutex<HashMap<String, usize>>,
    aborted: Arc<AtomicUsize>,
    id: std::sync::OnceLock<ModelId>,
}

fn script_of(prompt: &str) -> Vec<Step> {
    let steps = prompt.split_once(':').map_or("s", |(_, s)| s);
    steps
        .split(',')
        .map(|s| match s {
            "f" => Step::FailRetryable,
            "F" => Step::FailFatal,
            "h" => Step::Hang,
            "w" => Step::Slow,
            _ => Step::Succeed,
        })
        .collect()
}

/// Counts calls abandoned mid-flight (the future dropped while hanging).
struct AbortGuard(Arc<AtomicUsize>);
impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Model for Scripted {
    fn id(&self) -> &ModelId {
        self.id.get_or_init(|| ModelId::parse("builtin").unwrap())
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let prompt = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(prompt.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let script = script_of(&prompt);
        let step = script[n.min(script.len() - 1)];
        if step == Step::Slow {
            tokio::time::sleep(SLOW_STEP).await;
        }
        match step {
            Step::Succeed | Step::Slow => Ok(ChatReply {
                text: format!("ok {n}"),
                usage: Usage {
                    input_tokens: 100,
                    output_tokens: 50,
                },
                reported_model: None,
                cut: false,
            }),
            Step::FailRetryable => Err(ModelError::Status {
                status: 503,
                body: "overloaded".into(),
            }),
            Step::FailFatal => Err(ModelError::Status {
                status: 400,
                body: "bad request".into(),
            }),
            Step::Hang => {
                let _guard = AbortGuard(self.aborted.clone());
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

fn chat(prompt: &str) -> NewTicket {
    NewTicket::chat(prompt)
}

#[tokio::test]
async fn tickets_flow_end_to_end_and_cost_is_captured_once_each() {
    let h = Harness::builder().bots(3).build().await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(h.submit(chat(&format!("hello {i}"))).await.id);
    }
    let mut total = 0;
    for id in &ids {
        let v = h.wait_terminal(*id).await;
        assert_eq!(v.state, TicketState::Succeeded, "{v:#?}");
        let path: Vec<_> = v.events.iter().map(|e| e.to).collect();
        assert_eq!(
            path,
            vec![
                TicketState::Queued,
                TicketState::Routed,
                TicketState::Running,
                TicketState::Succeeded
            ]
        );
        assert_eq!(v.ledger.len(), 1);
        assert!(v.cost.input_tokens > 0 && v.cost.cost_nusd > 0);
        assert_eq!(v.result.as_ref().unwrap()["model"], "builtin");
        assert!(v.waiting.is_none());
        total += v.cost.cost_nusd;
    }
    let summary = h.controller.cost_summary().await.unwrap();
    assert_eq!(summary.total.attempts, 60);
    assert_eq!(
        summary.total.cost_nusd, total,
        "summary equals the sum of ledger rows"
    );
    assert!(
        summary.by_bot.len() > 1,
        "work spread over bots: {:?}",
        summary.by_bot
    );
    assert_eq!(summary.price_version, "2026-11-01");
}

#[tokio::test]
async fn retryable_failures_back_off_and_retry() {
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .build()
        .await;
    let id = h.submit(chat("r:f,f,s")).await.id;
    let v = h.wait_terminal(id).await;
    assert_eq!(v.state, TicketState::Succeeded);
    assert_eq!(v.attempts, 3);
    assert_eq!(
        v.ledger.len(),
        1,
        "failed attempts report no usage, so only the third is charged"
    );
    assert_eq!(v.ledger[0].attempt, 3);
    let fails = v
        .events
        .iter()
        .filter(|e| e.to == TicketState::Failed)
        .count();
    assert_eq!(fails, 2);
    assert!(
        v.events.iter().any(|e| e.reason.contains("retrying in")),
        "{:#?}",
        v.events
    );
}

/// Time is the controller's clock, not the wall's: a one-hour backoff says
/// when it ends, and ends when the clock gets there.
#[tokio::test]
async fn a_backoff_waits_for_the_clock_and_says_until_when() {
    let clock = crate::clock::ManualClock::at(1_000_000);
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .clock(Arc::new(clock.clone()))
        .config(|c| {
            c.backoff_base = Duration::from_secs(3600);
            c.backoff_max = Duration::from_secs(7200);
        })
        .build()
        .await;
    let id = h.submit(chat("later:f,s")).await.id;
    let v = h.wait_for(id, TicketState::Failed).await;
    assert_eq!(v.not_before_ms, Some(1_000_000 + 3_600_000));
    assert_eq!(
        v.waiting.unwrap().reason,
        WaitReason::BackingOff {
            until_ms: 4_600_000
        }
    );
    clock.advance(3_599_999);
    h.eventually("still backing off a millisecond early", async || {
        h.controller.ticket(id).await.unwrap().state == TicketState::Failed
    })
    .await;
    clock.advance(1);
    let v = h.wait_terminal(id).await;
    assert_eq!((v.state, v.attempts), (TicketState::Succeeded, 2));
}

#[tokio::test]
async fn exhausted_attempts_end_dead_with_the_error() {
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .build()
        .await;
    let id = h
        .submit(NewTicket {
            max_attempts: Some(2),
            ..chat("d:f")
        })
        .await
        .id;
    let v = h.wait_terminal(id).await;
    assert_eq!(v.state, TicketState::Dead);
    assert_eq!(v.attempts, 2);
    assert!(v.error.as_deref().unwrap().contains("503"), "{:?}", v.error);
    assert_eq!(v.events.last().unwrap().reason, "no attempts left");

    let fatal = h.submit(chat("x:F")).await.id;
    let v = h.wait_terminal(fatal).await;
    assert_eq!(
        (v.state, v.attempts),
        (TicketState::Dead, 1),
        "a 4xx is not retried"
    );
    assert_eq!(v.events.last().unwrap().reason, "error is not retryable");
}

#[tokio::test]
async fn a_ticket_says_why_it_waits_and_cancel_refuses_finished_tickets() {
    let h = Harness::builder()
        .bots(2)
        .skills(vec!["chat"])
        .build()
        .await;
    let id = h
        .submit(NewTicket {
            skill: Some("translate".into()),
            ..chat("bonjour")
        })
        .await
        .id;
    let v = h.controller.ticket(id).await.unwrap();
    assert_eq!(v.state, TicketState::Queued);
    let w = v.waiting.unwrap();
    assert_eq!(
        w.reason,
        WaitReason::NoLiveBotWithSkill {
            skill: Skill::parse("translate").unwrap()
        }
    );
    assert!(w.message.contains("no live bot has skill translate"));

    let v = h.controller.cancel(id).await.unwrap();
    assert_eq!(v.state, TicketState::Cancelled);
    match h.controller.cancel(id).await {
        Err(ControllerError::Invalid(TicketError::IllegalTransition {
            from: TicketState::Cancelled,
            ..
        })) => {}
        other => panic!("expected an illegal transition, got {other:?}"),
    }
    match h.controller.cancel(TicketId::new()).await {
        Err(ControllerError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

#[tokio::test]
async fn cancelling_a_running_ticket_aborts_the_model_call() {
    let model = Scripted::default();
    let aborted = model.aborted.clone();
    let h = Harness::builder().bots(1).model(model).build().await;
    let id = h.submit(chat("c:h")).await.id;
    let running = h.wait_for(id, TicketState::Running).await;
    assert!(matches!(
        running.waiting.unwrap().reason,
        WaitReason::Running { .. }
    ));
    let v = h.controller.cancel(id).await.unwrap();
    assert_eq!(v.state, TicketState::Cancelled);
    h.eventually("the hanging call is abandoned", async || {
        aborted.load(Ordering::SeqCst) == 1
    })
    .await;
    h.eventually("the bot is free again", async || {
        let bots = h.controller.bots().await;
        bots[0].in_flight == 0 && bots[0].lane.is_some_and(|l| l.pending == 0)
    })
    .await;
    // The freed bot takes new work.
    let next = h.submit(chat("after")).await.id;
    assert_eq!(h.wait_terminal(next).await.state, TicketState::Succeeded);
}

/// A bot's pace is the median of its attempts that ended on their own: a
/// cancelled attempt, however long it hung, says nothing of the model.
#[tokio::test]
async fn a_bots_pace_is_its_recent_attempts_median_and_a_cancel_is_not_one() {
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .build()
        .await;
    assert_eq!(h.controller.bots().await[0].attempt_ms, None, "none yet");
    for i in 0..3 {
        let id = h.submit(chat(&format!("p{i}:w"))).await.id;
        assert_eq!(h.wait_terminal(id).await.state, TicketState::Succeeded);
    }
    let slow = h.controller.bots().await[0].attempt_ms.unwrap();
    assert!(
        (SLOW_STEP.as_millis() as u64..5_000).contains(&slow),
        "{slow} ms"
    );
    let hung = h.submit(chat("p:h")).await.id;
    h.wait_for(hung, TicketState::Running).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    h.controller.cancel(hung).await.unwrap();
    for i in 0..3 {
        let id = h.submit(chat(&format!("q{i}:s"))).await.id;
        assert_eq!(h.wait_terminal(id).await.state, TicketState::Succeeded);
    }
    // 3 slow and 3 quick: the median is the lower middle, a quick one; the
    // cancelled attempt, had it counted, would have made it a slow one.
    let now = h.controller.bots().await[0].attempt_ms.unwrap();
    assert!(
        now < SLOW_STEP.as_millis() as u64,
        "the cancelled attempt is not counted: {now} ms"
    );
}

#[tokio::test]
async fn budgets_refuse_at_admission_and_park_queued_work() {
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .build()
        .await;
    // 100 in × $0.05/M + 50 out × $0.20/M = 15,000 nano-dollars per ticket.
    let tenant = TenantId::parse("acme").unwrap();
    h.controller
        .set_budget(tenant.clone(), Some(15_000))
        .await
        .unwrap();
    let t = |p: &str| NewTicket {
        tenant: Some("acme".into()),
        ..chat(p)
    };
    let first = h.submit(t("b1:s")).await.id;
    assert_eq!(h.wait_terminal(first).await.cost.cost_nusd, 15_000);
    match h.controller.submit(t("b2:s")).await {
        Err(ControllerError::BudgetExhausted { tenant: tn, .. }) => assert_eq!(tn, tenant),
        other => panic!("expected budget exhausted, got {other:?}"),
    }
    // Raising the budget lets work in again.
    h.controller
        .set_budget(tenant.clone(), Some(1_000_000))
        .await
        .unwrap();
    let next = h.submit(t("b3:s")).await.id;
    assert_eq!(h.wait_terminal(next).await.state, TicketState::Succeeded);
    let tenants = h.controller.tenants().await.unwrap();
    assert_eq!(
        tenants.iter().find(|x| x.id == tenant).unwrap().budget_nusd,
        Some(1_000_000)
    );
}

#[tokio::test]
async fn queued_work_waits_on_an_exhausted_budget_until_it_is_raised() {
    let model = Scripted::default();
    let h = Harness::builder()
        .bots(1)
        .model(model)
        .config(|c| c.max_in_flight_per_bot = 1)
        .build()
        .await;
    let tenant = TenantId::parse("tight").unwrap();
    h.controller
        .set_budget(tenant.clone(), Some(10_000))
        .await
        .unwrap();
    let t = |p: &str| NewTicket {
        tenant: Some("tight".into()),
        ..chat(p)
    };
    // Both are admitted while the budget is untouched; the first runs alone
    // (one slot) and its cost exhausts the budget before the second routes.
    let both = h.controller.submit_many(vec![t("p1:s"), t("p2:s")]).await;
    let (first, second) = (both[0].as_ref().unwrap().id, both[1].as_ref().unwrap().id);
    assert_eq!(h.wait_terminal(first).await.state, TicketState::Succeeded);
    h.eventually("the second ticket waits on the budget", async || {
        let v = h.controller.ticket(second).await.unwrap();
        matches!(
            v.waiting.map(|w| w.reason),
            Some(WaitReason::TenantBudgetExhausted { .. })
        )
    })
    .await;
    assert_eq!(
        h.controller.ticket(second).await.unwrap().state,
        TicketState::Queued
    );
    h.controller.set_budget(tenant, None).await.unwrap();
    assert_eq!(h.wait_terminal(second).await.state, TicketState::Succeeded);
}

#[tokio::test]
async fn a_ticket_with_a_free_lane_is_routed_in_the_commit_that_admits_it() {
    let h = Harness::builder()
        .bots(1)
        .model(Scripted::default())
        .config(|c| c.max_in_flight_per_bot = 1)
        .build()
        .await;
    let with = |prompt: &str, priority: u8, key: &str| NewTicket {
        priority: Some(priority),
        idempotency_key: Some(key.into()),
        ..chat(prompt)
    };
    // One slot, two tickets in one submission: the higher priority takes it.
    let both = h
        .controller
        .submit_many(vec![with("low:h", 1, "low"), with("high:h", 9, "high")])
        .await;
    let (low, high) = (both[0].as_ref().unwrap().id, both[1].as_ref().unwrap().id);
    // Durable when the submission is answered: routed in the same commit
    // (the same instant as its creation), not in a later one.
    let stored = h.store.ticket(high, None).await.unwrap().unwrap();
    assert_eq!(stored.events[1].to, TicketState::Routed, "{stored:#?}");
    assert_eq!(stored.events[0].at_ms, stored.events[1].at_ms);
    assert_eq!(
        h.store.ticket(low, None).await.unwrap().unwrap().state,
        TicketState::Queued
    );
    h.wait_for(high, TicketState::Running).await;
    h.controller.cancel(high).await.unwrap();
    h.wait_for(low, TicketState::Running).await;
    h.controller.cancel(low).await.unwrap();

    // The slot is free and nothing waits: a duplicate is routed at
    // admission, then not admitted, and must give the slot back.
    let again = h.submit(with("high:h", 9, "high")).await;
    assert!(again.duplicate);
    assert_eq!(again.id, high);
    let next = h.submit(chat("next:h")).await;
    h.wait_for(next.id, TicketState::Running).await;
    h.controller.cancel(next.id).await.unwrap();
}

#[tokio::test]
async fn an_idempotency_key_gives_back_the_first_ticket() {
    let h = Harness::builder().build().await;
    let key = NewTicket {
        idempotency_key: Some("order-42".into()),
        ..chat("once")
    };
    let a = h.submit(key.clone()).await;
    let b = h.submit(key.clone()).await;
    assert!(!a.duplicate && b.duplicate);
    assert_eq!(a.id, b.id);
    // Duplicates within one submission are caught too.
    let many = h.controller.submit_many(vec![key.clone(), key]).await;
    assert!(many.iter().all(|r| r.as_ref().unwrap().id == a.id));
    h.wait_terminal(a.id).await;
    assert_eq!(h.controller.cost_summary().await.unwrap().total.attempts, 1);
}

#[tokio::test]
async fn approval_holds_a_ticket_until_released() {
    let h = Harness::builder().build().await;
    let id = h
        .submit(NewTicket {
            requires_approval: true,
            ..chat("deploy")
        })
        .await
        .id;
    let v = h.controller.ticket(id).await.unwrap();
    assert_eq!(v.state, TicketState::AwaitingApproval);
    assert_eq!(v.waiting.unwrap().reason, WaitReason::AwaitingApproval);
    h.controller.approve(id).await.unwrap();
    assert_eq!(h.wait_terminal(id).await.state, TicketState::Succeeded);
    assert!(matches!(
        h.controller.approve(id).await,
        Err(ControllerError::Invalid(
            TicketError::IllegalTransition { .. }
        ))
    ));
}

#[tokio::test]
async fn a_restart_redrives_in_flight_tickets_and_charges_each_attempt_once() {
    let model = Scripted::default();
    let h = Harness::builder().bots(2).model(model).build().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(h.submit(chat(&format!("hang {i}:h"))).await.id);
    }
    let queued_only = h
        .submit(NewTicket {
            skill: Some("nobody".into()),
            ..chat("q")
        })
        .await
        .id;
    // Two sequential bots: two tickets run (and hang), four wait in lanes.
    h.eventually("every ticket is in a lane or running", async || {
        let mut n = 0;
        for id in &ids {
            let s = h.controller.ticket(*id).await.unwrap().state;
            n += usize::from(matches!(s, TicketState::Routed | TicketState::Running));
        }
        n == ids.len()
    })
    .await;
    // The process "dies": a new controller starts on the same store with a
    // model that works.
    let h = h.restart(Arc::new(BuiltinModel::new())).await;
    for id in &ids {
        let v = h.wait_terminal(*id).await;
        assert_eq!(v.state, TicketState::Succeeded);
        assert_eq!(
            v.attempts, 2,
            "the lost attempt counts; the rerun is attempt 2"
        );
        assert!(
            v.events
                .iter()
                .any(|e| e.reason.starts_with("recovered after restart")),
            "{:#?}",
            v.events
        );
        assert_eq!(
            v.ledger.iter().map(|l| l.attempt).collect::<Vec<_>>(),
            vec![2]
        );
    }
    assert_eq!(
        h.controller.ticket(queued_only).await.unwrap().state,
        TicketState::Queued,
        "queued work survives as queued"
    );
    assert_eq!(h.controller.cost_summary().await.unwrap().total.attempts, 6);
}

#[tokio::test]
async fn refused_submissions_change_nothing() {
    let h = Harness::builder().build().await;
    let bad = vec![
        NewTicket {
            kind: "nope".into(),
            ..chat("x")
        },
        NewTicket {
            priority: Some(42),
            ..chat("x")
        },
        NewTicket::chat("a".repeat(crate::ticket::MAX_PAYLOAD_BYTES)),
    ];
    for r in h.controller.submit_many(bad).await {
        assert!(matches!(r, Err(ControllerError::Invalid(_))), "{r:?}");
    }
    assert!(h.stored().await.is_empty());
    assert!(
        h.controller.tenants().await.unwrap().is_empty(),
        "no tenant created by a refused ticket"
    );
}

#[tokio::test]
async fn a_secret_in_a_payload_is_refused_at_the_door_without_echoing_it() {
    let h = Harness::builder().build().await;
    let token = "ghp_T3stT0kenN0tR3alAbCdEfGhIjKlMnOpQrSt";
    let tool = |params: serde_json::Value| NewTicket {
        kind: "tool".into(),
        payload: serde_json::json!({"connector": "github", "operation": "list", "params": params}),
        ..chat("x")
    };
    let leaky = vec![
        chat(&format!("deploy with {token} please")),
        NewTicket {
            payload: serde_json::json!({"prompt": "hi", "system": format!("\n\nkey: {token}")}),
            ..chat("x")
        },
        tool(serde_json::json!({"repo": "a/b", "auth": {"password": "hunter2hunter2!"}})),
    ];
    let fields: Vec<String> = h
        .controller
        .submit_many(leaky)
        .await
        .into_iter()
        .map(|r| match r {
            Err(ControllerError::Invalid(TicketError::Invalid { field, reason })) => {
                assert!(
                    !reason.contains(token) && !reason.contains("hunter2"),
                    "{reason}"
                );
                format!("{field} {}", reason.split(',').next().unwrap())
            }
            other => panic!("admitted: {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "payload.prompt holds what looks like a secret (github-token",
            "payload.system holds what looks like a secret (github-token",
            "payload.params holds what looks like a secret (assigned-credential",
        ]
    );
    // Nothing was written; ordinary text and placeholders pass.
    assert!(h.stored().await.is_empty());
    h.submit(chat("how do I rotate my password = <redacted> safely?"))
        .await;
}

#[tokio::test]
async fn a_secret_in_a_reply_or_an_error_is_redacted_before_it_is_kept() {
    /// Repeats a credential, as a model reading a tool's answer might, or
    /// fails with an upstream error that quotes one.
    #[derive(Debug)]
    struct Leaky(ModelId);
    #[async_trait]
    impl Model for Leaky {
        fn id(&self) -> &ModelId {
            &self.0
        }
        async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
            let token = "ghp_T3stT0kenN0tR3alAbCdEfGhIjKlMnOpQrSt";
            if request.messages[0].content == "fail" {
                return Err(ModelError::Status {
                    status: 400,
                    body: format!("key {token} was revoked"),
                });
            }
            Ok(ChatReply {
                text: format!("the deploy token is {token}, keep it safe"),
                usage: Usage {
                    input_tokens: 1,
                    output_tokens: 1,
                },
                reported_model: None,
                cut: false,
            })
        }
    }
    let h = Harness::builder()
        .model(Leaky(ModelId::parse("builtin").unwrap()))
        .build()
        .await;
    let mut events = h.controller.subscribe();
    let replied = h.submit(chat("tell me")).await.id;
    let failed = h.submit(chat("fail")).await.id;
    let replied = h.wait_terminal(replied).await;
    let failed = h.wait_terminal(failed).await;
    assert_eq!(
        replied.result.as_ref().unwrap()["text"],
        "the deploy token is [redacted: github-token], keep it safe"
    );
    assert_eq!(failed.state, TicketState::Dead);
    let stored = format!(
        "{:?}{:?}",
        h.store.ticket(replied.id, None).await.unwrap(),
        h.store.ticket(failed.id, None).await.unwrap()
    );
    assert!(stored.contains("[redacted: github-token]"), "{stored}");
    assert!(!stored.contains("ghp_"), "{stored}");
    while let Ok(e) = events.try_recv() {
        assert!(!format!("{e:?}").contains("ghp_"), "{e:?}");
    }
}

#[tokio::test]
async fn an_unpriced_model_is_refused_at_start() {
    #[derive(Debug)]
    struct Mystery(ModelId);
    #[async_trait]
    impl Model for Mystery {
        fn id(&self) -> &ModelId {
            &self.0
        }
        async fn chat(&self, _: &ChatRequest) -> Result<ChatReply, ModelError> {
            unreachable!("never started")
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let pool = LocalPool {
        bots: 1,
        skills: vec![Skill::parse("chat").unwrap()],
        model: Arc::new(Mystery(ModelId::parse("mystery-9b").unwrap())),
        tools: None,
        artifacts: None,
    };
    let err = Controller::start(
        ControllerConfig::default(),
        store,
        pool,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ControllerError::Cost(CostError::Unpriced(..))),
        "{err}"
    );
}

/// One ticket's script in the property test.
fn step() -> impl Strategy<Value = char> {
    prop_oneof![4 => Just('s'), 3 => Just('f'), 1 => Just('F')]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever the models do and whatever is cancelled: no ticket is lost,
    /// each ends where its script says, and the ledger holds exactly one row
    /// per attempt that finished with usage.
    #[test]
    fn no_ticket_is_lost_and_the_ledger_matches_finished_attempts(
        scripts in prop::collection::vec((prop::collection::vec(step(), 1..4), any::<bool>()), 1..16),
        bots in 1usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let h = Harness::builder().bots(bots).model(Scripted::default()).build().await;
            let mut tickets = Vec::new();
            for (i, (script, cancel)) in scripts.iter().enumerate() {
                let prompt = format!("p{i}:{}", script.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","));
                let id = h.submit(chat(&prompt)).await.id;
                if *cancel {
                    let _ = h.controller.cancel(id).await;
                }
                tickets.push((id, script.clone()));
            }
            let mut charged = 0;
            for (id, script) in &tickets {
                let v = h.wait_terminal(*id).await;
                charged += v.ledger.len() as i64;
                if v.state == TicketState::Cancelled {
                    continue;
                }
                // Expected end: the first 's' or 'F' within 3 attempts decides.
                let mut expected = TicketState::Dead;
                for attempt in 0..3 {
                    match script[attempt.min(script.len() - 1)] {
                        's' => { expected = TicketState::Succeeded; break; }
                        'F' => break,
                        _ => {}
                    }
                }
                assert_eq!(v.state, expected, "script {script:?}: {v:#?}");
                assert_eq!(v.ledger.len(), usize::from(v.state == TicketState::Succeeded));
            }
            let summary = h.controller.cost_summary().await.unwrap();
            assert_eq!(summary.total.attempts, charged);
            let counts = h.controller.state_counts().await.unwrap();
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            assert_eq!(total as usize, tickets.len(), "every submitted ticket is stored");
            assert!(counts.iter().all(|(s, _)| s.is_terminal()), "{counts:?}");
        });
    }
}

/// Makes a real store's commits fail the way a network store's do:
/// [`Faulty::lose_next`] lets the next commit land and then reports it
/// failed (its answer lost with the connection) and fails every later one
/// without landing it, until [`Faulty::heal`]. Reads always work.
#[derive(Debug, Default)]
struct Faulty {
    /// 0 healthy, 1 the next commit lands and its answer is lost, 2 down.
    mode: std::sync::atomic::AtomicU8,
}

impl Faulty {
    fn lose_next(&self) {
        self.mode.store(1, Ordering::SeqCst);
    }
    fn heal(&self) {
        self.mode.store(0, Ordering::SeqCst);
    }
    fn down(&self) {
        self.mode.store(2, Ordering::SeqCst);
    }
}

#[async_trait]
impl crate::store::ApplyHook for Faulty {
    async fn apply(
        &self,
        inner: &dyn Store,
        batch: &WriteBatch,
    ) -> Result<crate::store::Applied, StoreError> {
        let lost = || StoreError::Unavailable("connection reset by peer".into());
        match self.mode.load(Ordering::SeqCst) {
            0 => inner.apply(batch).await,
            1 => {
                inner.apply(batch).await?;
                self.mode.store(2, Ordering::SeqCst);
                Err(lost())
            }
            _ => Err(lost()),
        }
    }
}

type FaultyStore = crate::store::Hooked<Faulty>;

/// A controller with `bots` built-in bots over a real SQLite store whose
/// commits [`Faulty`] can fail.
async fn faulty(bots: usize) -> (tempfile::TempDir, Arc<FaultyStore>, Controller) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::store::Hooked {
        inner: Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
        hook: Faulty::default(),
    });
    let controller = Controller::start(
        ControllerConfig::default(),
        store.clone(),
        LocalPool::builtin(bots),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    (dir, store, controller)
}

/// The store's one ticket not in `except`, once it is `state` (the
/// refused ticket under test).
async fn stored_in(store: &dyn Store, except: &[TicketId], state: TicketState) -> TicketView {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = store
            .tickets(&crate::store::TicketQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let mine: Vec<_> = page
            .tickets
            .iter()
            .filter(|t| !except.contains(&t.id))
            .collect();
        assert!(mine.len() <= 1, "one refused ticket at a time: {mine:#?}");
        if let Some(t) = mine.first()
            && t.state == state
        {
            return store.ticket(t.id, None).await.unwrap().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ticket {state} after {WAIT:?}: {mine:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_refused_submission_whose_commit_landed_is_cancelled_or_run_under_its_key() {
    let (_dir, store, controller) = faulty(2).await;

    // Without a key: the submitter hears "unavailable", so it must never run.
    store.hook.lose_next();
    let refused = controller.submit(NewTicket::chat("lost answer")).await;
    assert!(
        matches!(
            refused,
            Err(ControllerError::Store(StoreError::Unavailable(_)))
        ),
        "{refused:?}"
    );
    store.hook.heal();
    let orphan = stored_in(store.as_ref(), &[], TicketState::Cancelled).await;
    assert!(
        orphan.events.iter().all(|e| e.to != TicketState::Running),
        "a refused ticket ran: {:#?}",
        orphan.events
    );
    assert!(orphan.ledger.is_empty());
    let why = &orphan.events.last().unwrap().reason;
    assert!(why.contains("told the store was unavailable"), "{why}");

    // With a key: the submitter's retry with the same key gets this ticket,
    // and it runs once.
    let keyed = NewTicket {
        idempotency_key: Some("order-7".into()),
        ..NewTicket::chat("lost answer, keyed")
    };
    store.hook.lose_next();
    assert!(controller.submit(keyed.clone()).await.is_err());
    store.hook.heal();
    let retried = controller.submit(keyed).await.unwrap();
    assert!(retried.duplicate, "{retried:?}");
    let ran = stored_in(store.as_ref(), &[orphan.id], TicketState::Succeeded).await;
    assert_eq!(ran.id, retried.id);
    assert_eq!(ran.ledger.len(), 1, "charged once: {:#?}", ran.ledger);
    controller.shutdown().await;
}

#[tokio::test]
async fn a_refused_budget_changes_nothing_unless_the_store_took_it() {
    let (_dir, store, controller) = faulty(1).await;
    let acme = TenantId::parse("acme").unwrap();
    let submit = async || {
        controller
            .submit(NewTicket {
                tenant: Some("acme".into()),
                ..NewTicket::chat("spend")
            })
            .await
    };
    let exhausted = |r: &Result<Submitted, ControllerError>| {
        matches!(r, Err(ControllerError::BudgetExhausted { .. }))
    };
    controller.set_budget(acme.clone(), Some(0)).await.unwrap();
    assert!(exhausted(&submit().await));

    // Refused and never landed: the old budget holds.
    store.hook.down();
    let raise = controller.set_budget(acme.clone(), Some(1_000_000_000));
    assert!(matches!(
        raise.await,
        Err(ControllerError::Store(StoreError::Unavailable(_)))
    ));
    store.hook.heal();
    assert!(exhausted(&submit().await), "a refused raise let work in");
    assert_eq!(
        store.tenants().await.unwrap()[0].budget_nusd,
        Some(0),
        "{:?}",
        store.tenants().await
    );

    // Refused, but it had landed: the scheduler takes the stored budget.
    store.hook.lose_next();
    assert!(
        controller
            .set_budget(acme.clone(), Some(1_000_000_000))
            .await
            .is_err()
    );
    store.hook.heal();
    let deadline = tokio::time::Instant::now() + WAIT;
    let admitted = loop {
        match submit().await {
            Ok(s) => break s,
            Err(ControllerError::BudgetExhausted { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the stored budget was not taken on: {e}"),
        }
    };
    assert_eq!(admitted.tenant, acme);
    controller.shutdown().await;
}

/// Replies with the prompt (and fails, quoting it, when it starts "fail").
#[derive(Debug)]
struct Echo(ModelId);

#[async_trait]
impl Model for Echo {
    fn id(&self) -> &ModelId {
        &self.0
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let prompt = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let text = prompt.replace("NUL", "\u{0}");
        if let Some(rest) = text.strip_prefix("fail") {
            return Err(ModelError::Status {
                status: 400,
                body: format!("upstream said{rest}"),
            });
        }
        Ok(ChatReply {
            text,
            usage: Usage {
                input_tokens: 1,
                output_tokens: 1,
            },
            reported_model: Some("echo\u{0}-1".into()),
            cut: false,
        })
    }
}

fn echo() -> Echo {
    Echo(ModelId::parse("builtin").unwrap())
}

/// A model reply holding U+0000 stopped a fleet's writes (PostgreSQL
/// refuses it). It is replaced where it enters, and the history says so.
#[tokio::test]
async fn a_nul_in_a_reply_or_an_error_is_replaced_and_the_history_says_so() {
    let h = Harness::builder().model(echo()).build().await;
    let replied = h.submit(chat("aNULbNUL")).await.id;
    let failed = h.submit(chat("fail NUL")).await.id;
    let replied = h.wait_terminal(replied).await;
    let failed = h.wait_terminal(failed).await;
    assert_eq!(replied.state, TicketState::Succeeded);
    let result = replied.result.unwrap();
    assert_eq!(result["text"], "a\u{FFFD}b\u{FFFD}");
    assert_eq!(result["reported_model"], "echo\u{FFFD}-1");
    let said = &replied.events.last().unwrap().reason;
    assert!(
        said.starts_with("model replied; 3 NUL characters (U+0000)"),
        "{said}"
    );
    assert_eq!(failed.state, TicketState::Dead);
    let error = failed.error.unwrap();
    assert!(!error.contains('\0'), "{error:?}");
    assert!(error.contains("upstream said \u{FFFD}"), "{error}");
    assert!(error.contains("1 NUL character (U+0000)"), "{error}");
}

/// Refuses, for its data, any batch with "poison" in a result or a payload,
/// as PostgreSQL refuses a NUL.
#[derive(Debug, Default)]
struct Poisoned;

#[async_trait]
impl crate::store::ApplyHook for Poisoned {
    async fn apply(
        &self,
        inner: &dyn Store,
        batch: &WriteBatch,
    ) -> Result<crate::store::Applied, StoreError> {
        crate::store::fixtures::refuse_poison(batch)?;
        inner.apply(batch).await
    }
}

/// One record the store refuses for its data stops its own ticket, with a
/// reason, and nothing else: other tickets and later submissions flow on.
#[tokio::test]
async fn a_record_the_store_refuses_stops_its_ticket_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::store::Hooked {
        inner: Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
        hook: Poisoned,
    });
    let pool = LocalPool {
        bots: 2,
        skills: vec![Skill::parse("chat").unwrap()],
        model: Arc::new(echo()),
        tools: None,
        artifacts: None,
    };
    let controller = Controller::start(
        ControllerConfig::default(),
        store.clone(),
        pool,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let poisoned = controller
        .submit(chat("the poison reply"))
        .await
        .unwrap()
        .id;
    let mut others = Vec::new();
    for i in 0..20 {
        let t = NewTicket {
            tenant: Some(format!("tenant-{}", i % 3)),
            ..chat(&format!("fine {i}"))
        };
        others.push(controller.submit(t).await.unwrap().id);
    }
    // A submission the store refuses is refused, as invalid, not as an outage.
    let refused = controller.submit(chat("a poison pill")).await.unwrap_err();
    assert!(
        matches!(&refused, ControllerError::Store(e) if e.is_permanent()),
        "{refused:?}"
    );

    let deadline = tokio::time::Instant::now() + WAIT;
    let stopped = loop {
        let v = store.ticket(poisoned, None).await.unwrap().unwrap();
        if v.state.is_terminal() {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {}", v.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stopped.state, TicketState::Dead, "{stopped:#?}");
    let why = stopped.error.unwrap();
    assert!(
        why.contains("the store refused this ticket's record"),
        "{why}"
    );
    assert!(why.contains("22P05"), "{why}");
    assert!(stopped.result.is_none());
    assert_eq!(
        stopped.ledger.len(),
        1,
        "its model call is still charged, once"
    );
    for id in others {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = store.ticket(id, None).await.unwrap().unwrap();
            if v.state == TicketState::Succeeded {
                break;
            }
            assert!(
                !v.state.is_terminal() && tokio::time::Instant::now() < deadline,
                "{v:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = controller.submit(chat("after it")).await.unwrap();
    assert!(!after.duplicate);
    controller.shutdown().await;
}

/// Draining a bot stuck on one attempt: what waits behind it in its lane
/// goes to the other bot (each ticket run once, charged once), the stuck
/// attempt stays with it, and it is routed nothing more until uncordoned.
#[tokio::test]
async fn a_drained_bot_gives_back_what_waits_in_its_lane_and_keeps_what_it_holds() {
    let h = Harness::builder()
        .bots(2)
        .model(Scripted::default())
        .build()
        .await;
    let stuck = h.submit(chat("stuck:h")).await.id;
    let running = h.wait_for(stuck, TicketState::Running).await;
    let slow = running.bot.clone().unwrap();
    let bots = h.controller.bots().await;
    let other = bots.iter().find(|b| b.id != slow).unwrap().id.clone();
    let many: Vec<NewTicket> = (0..20).map(|i| chat(&format!("d{i}:s"))).collect();
    let ids: Vec<TicketId> = h
        .controller
        .submit_many(many)
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    let mut waiting = 0;
    h.eventually("tickets wait behind the stuck attempt", async || {
        let b = h.controller.bots().await;
        waiting = b.iter().find(|b| b.id == slow).unwrap().lane.unwrap().depth;
        waiting > 0
    })
    .await;

    let Drained::Drained { requeued, held } = h.controller.drain_bot(&slow).await.unwrap() else {
        panic!("not drained");
    };
    assert_eq!((requeued.len() as u32, held), (waiting, 1));
    for id in &ids {
        let v = h.wait_terminal(*id).await;
        assert_eq!(v.state, TicketState::Succeeded, "{v:#?}");
        assert_eq!(v.ledger.len(), 1, "run once, charged once: {v:#?}");
        if requeued.contains(id) {
            assert_eq!(v.bot.as_ref(), Some(&other));
            let path: Vec<_> = v.events.iter().map(|e| e.to).collect();
            assert_eq!(
                path,
                [
                    TicketState::Queued,
                    TicketState::Routed,
                    TicketState::Queued,
                    TicketState::Routed,
                    TicketState::Running,
                    TicketState::Succeeded
                ]
            );
        }
    }
    let b = h.controller.bots().await;
    let drained = b.iter().find(|b| b.id == slow).unwrap();
    assert!(drained.live && drained.cordoned, "{drained:?}");
    assert_eq!(drained.in_flight, 1, "the stuck attempt stays with it");
    assert_eq!(
        h.controller.ticket(stuck).await.unwrap().state,
        TicketState::Running
    );
    // Freed, it runs nothing it gave back: its lane holds none of it.
    h.controller.cancel(stuck).await.unwrap();
    h.eventually("the drained bot is free", async || {
        let b = h.controller.bots().await;
        let s = b.iter().find(|b| b.id == slow).unwrap();
        s.in_flight == 0 && s.lane.is_some_and(|l| l.pending == 0 && l.depth == 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = h.controller.bots().await;
    let s = b.iter().find(|b| b.id == slow).unwrap();
    assert_eq!((s.succeeded, s.failed), (0, 0), "{s:?}");
    for id in &requeued {
        assert_eq!(h.controller.ticket(*id).await.unwrap().ledger.len(), 1);
    }

    // Nothing more is routed to it; a repeat changes nothing; the other
    // bot, now the last with the skill, may not be drained.
    let later = h.submit(chat("later:s")).await.id;
    assert_eq!(h.wait_terminal(later).await.bot.as_ref(), Some(&other));
    assert_eq!(
        h.controller.drain_bot(&slow).await.unwrap(),
        Drained::Already { held: 0 }
    );
    let last = h.controller.drain_bot(&other).await.unwrap();
    assert_eq!(
        last,
        Drained::LastOfSkills(vec![Skill::parse("chat").unwrap()])
    );
    assert!(
        last.refusal(other.as_str())
            .unwrap()
            .1
            .contains("last live bot with chat")
    );
    let nobody = BotId::parse("nobody").unwrap();
    assert_eq!(
        h.controller.drain_bot(&nobody).await.unwrap(),
        Drained::Unknown
    );
    assert_eq!(h.controller.uncordon_bot(&nobody).await.unwrap(), None);

    // Uncordoned, it takes work again.
    assert_eq!(
        h.controller.uncordon_bot(&slow).await.unwrap(),
        Some((true, 0))
    );
    assert_eq!(
        h.controller.uncordon_bot(&slow).await.unwrap(),
        Some((false, 0))
    );
    let more: Vec<NewTicket> = (0..6).map(|i| chat(&format!("u{i}:s"))).collect();
    h.controller.submit_many(more).await;
    h.eventually("the uncordoned bot runs tickets again", async || {
        let b = h.controller.bots().await;
        let s = b.iter().find(|b| b.id == slow).unwrap();
        !s.cordoned && s.succeeded > 0
    })
    .await;
}

/// A drain outlives a controller restart: the drained bot is routed
/// nothing by the restarted controller until uncordoned, and an uncordon
/// outlives the next restart too.
#[tokio::test]
async fn a_drain_is_kept_across_a_restart_until_uncordoned() {
    let h = Harness::builder().build().await;
    let bots = h.controller.bots().await;
    let drained = bots[0].id.clone();
    assert!(matches!(
        h.controller.drain_bot(&drained).await.unwrap(),
        Drained::Drained { .. }
    ));
    let h = h.restart(Arc::new(BuiltinModel::new())).await;
    let cordoned = |bots: &[BotView]| {
        bots.iter()
            .filter(|b| b.cordoned)
            .map(|b| b.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cordoned(&h.controller.bots().await),
        std::slice::from_ref(&drained)
    );
    let many: Vec<NewTicket> = (0..12).map(|i| chat(&format!("r{i}"))).collect();
    for r in h.controller.submit_many(many).await {
        let v = h.wait_terminal(r.unwrap().id).await;
        assert_eq!(v.state, TicketState::Succeeded);
        assert_ne!(v.bot.as_ref(), Some(&drained), "routed to a drained bot");
    }
    assert_eq!(
        h.controller.uncordon_bot(&drained).await.unwrap(),
        Some((true, 0))
    );
    let h = h.restart(Arc::new(BuiltinModel::new())).await;
    assert!(cordoned(&h.controller.bots().await).is_empty());
    let many: Vec<NewTicket> = (0..30).map(|i| chat(&format!("u{i}"))).collect();
    h.controller.submit_many(many).await;
    h.eventually("the uncordoned bot runs tickets again", async || {
        let b = h.controller.bots().await;
        b.iter().any(|b| b.id == drained && b.succeeded > 0)
    })
    .await;
}

/// A paused tenant's tickets are admitted and kept (queued, saying why),
/// never routed, across a restart; others run; resumed, each runs once.
#[tokio::test]
async fn a_paused_tenants_tickets_wait_across_a_restart_and_run_once_resumed() {
    let h = Harness::builder().bots(2).build().await;
    let acme = TenantId::parse("acme").unwrap();
    h.controller.set_budget(acme.clone(), None).await.unwrap();
    let paused = h
        .controller
        .pause_tenant(&acme, true, "test")
        .await
        .unwrap();
    assert!(paused.paused && paused.changed);
    let again = h
        .controller
        .pause_tenant(&acme, true, "test")
        .await
        .unwrap();
    assert!(!again.changed, "a repeat changes nothing");
    let nobody = TenantId::parse("nobody").unwrap();
    assert!(matches!(
        h.controller.pause_tenant(&nobody, true, "test").await,
        Err(ControllerError::UnknownTenant(_))
    ));
    assert!(matches!(
        h.controller
            .pause_tenant(&TenantId::default_tenant(), true, "test")
            .await,
        Err(ControllerError::Invalid(_))
    ));
    let of_acme = |i: usize| NewTicket {
        tenant: Some("acme".into()),
        ..chat(&format!("acme {i}"))
    };
    let mut kept = Vec::new();
    for i in 0..5 {
        kept.push(h.submit(of_acme(i)).await.id);
    }
    let other = h.submit(chat("not acme")).await.id;
    assert_eq!(h.wait_terminal(other).await.state, TicketState::Succeeded);
    for id in &kept {
        let v = h.controller.ticket(*id).await.unwrap();
        assert_eq!(v.state, TicketState::Queued);
        assert_eq!(
            v.waiting.map(|w| w.reason),
            Some(WaitReason::TenantPaused {
                tenant: acme.clone()
            })
        );
    }
    assert!(
        h.controller
            .spend()
            .await
            .unwrap()
            .iter()
            .any(|s| s.tenant == acme && s.paused)
    );

    // Restarted, it is still paused: its tickets still wait.
    let h = h.restart(Arc::new(BuiltinModel::new())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &kept {
        assert_eq!(
            h.controller.ticket(*id).await.unwrap().state,
            TicketState::Queued
        );
    }
    let resumed = h
        .controller
        .pause_tenant(&acme, false, "test")
        .await
        .unwrap();
    assert!(!resumed.paused && resumed.changed);
    for id in &kept {
        let v = h.wait_terminal(*id).await;
        assert_eq!(v.state, TicketState::Succeeded, "{v:#?}");
        assert_eq!((v.attempts, v.ledger.len()), (1, 1), "{v:#?}");
        let routes = v
            .events
            .iter()
            .filter(|e| e.to == TicketState::Routed)
            .count();
        assert_eq!(routes, 1, "never routed while paused: {v:#?}");
    }
    // And a new one is routed at once.
    let after = h.submit(of_acme(9)).await.id;
    assert_eq!(h.wait_terminal(after).await.state, TicketState::Succeeded);
}
