//! Fleet mode in one process, on the real servers: a controller over
//! PostgreSQL and nodes on Redis, each under its own schema and prefix.
//! (Across processes, with kill -9, see `tests/e2e/fleet.rs`.)

use super::*;
use crate::bot::node::{NodeConfig, run_node};
use crate::clock::SystemClock;
use crate::controller::{Controller, ControllerConfig};
use crate::lane::redis::testing::{TestRedis, redis_url};
use crate::model::builtin::BuiltinModel;
use crate::model::{ChatReply, ChatRequest, Model, ModelError};
use crate::store::postgres::testing::TestDb;
use crate::ticket::{NewTicket, Skill, TicketState};
use async_trait::async_trait;

mod faults;

const WAIT: Duration = Duration::from_secs(60);

fn node(r: &TestRedis, name: &str, bots: usize, model: Arc<dyn Model>) -> NodeConfig {
    NodeConfig {
        redis_url: redis_url(),
        prefix: r.keys.prefix().to_owned(),
        name: name.into(),
        bots,
        skills: vec![Skill::parse("chat").unwrap()],
        model,
        artifacts: None,
    }
}

async fn controller(db: &TestDb, r: &TestRedis) -> Controller {
    Controller::start_fleet(
        ControllerConfig {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..Default::default()
        },
        Arc::new(db.store.clone()),
        FleetConfig {
            redis_url: redis_url(),
            prefix: r.keys.prefix().to_owned(),
        },
        Arc::new(SystemClock),
        None,
    )
    .await
    .unwrap()
}

async fn wait_until_finished(c: &Controller, ids: &[TicketId]) -> Vec<TicketState> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            states.push(c.ticket(*id).await.unwrap().state);
        }
        if states.iter().all(|s| s.is_terminal()) {
            return states;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "unfinished after {WAIT:?}: {:?}",
            states.iter().filter(|s| !s.is_terminal()).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node of `bots` built-in-model bots, running until its token is
/// cancelled.
type Running = (
    CancellationToken,
    tokio::task::JoinHandle<Result<crate::bot::node::NodeExit, crate::bot::node::NodeError>>,
);

fn start_node(r: &TestRedis, name: &str, bots: usize) -> Running {
    let stop = CancellationToken::new();
    let run = tokio::spawn(run_node(
        node(r, name, bots, Arc::new(BuiltinModel::new())),
        Arc::new(SystemClock),
        stop.clone(),
    ));
    (stop, run)
}

async fn wait_for_bots(c: &Controller, n: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.health().await.bots_live != n {
        assert!(tokio::time::Instant::now() < deadline, "bots never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_flow_through_redis_streams_to_node_bots_and_back() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let stop = CancellationToken::new();
    let nodes: Vec<_> = ["n1", "n2"]
        .into_iter()
        .map(|name| {
            tokio::spawn(run_node(
                node(&r, name, 3, Arc::new(BuiltinModel::new())),
                Arc::new(SystemClock),
                stop.clone(),
            ))
        })
        .collect();
    wait_for_bots(&c, 6).await;

    let tickets: Vec<NewTicket> = (0..300)
        .map(|i| NewTicket {
            tenant: Some(if i % 2 == 0 { "acme" } else { "globex" }.into()),
            ..NewTicket::chat(format!("hello {i}"))
        })
        .collect();
    let ids: Vec<TicketId> = c
        .submit_many(tickets)
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    let states = wait_until_finished(&c, &ids).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));

    let cost = c.cost_summary().await.unwrap();
    assert_eq!(cost.total.attempts, 300, "one ledger row per attempt");
    assert_eq!(cost.by_tenant.len(), 2);
    let bots = c.bots().await;
    assert_eq!(bots.len(), 6);
    assert!(
        bots.iter().all(|b| b.succeeded > 0),
        "every bot took work: {bots:#?}"
    );
    assert!(bots.iter().all(|b| b.node.is_some()));
    let view = c.ticket(ids[0]).await.unwrap();
    assert!(view.bot.unwrap().as_str().contains("-bot-"));
    // Every timeline shows its attempt running, at the time it started,
    // whether the start report travelled or was folded into the finish.
    for id in &ids {
        let view = c.ticket(*id).await.unwrap();
        let to: Vec<_> = view.events.iter().map(|e| e.to).collect();
        use TicketState::*;
        assert_eq!(to, [Queued, Routed, Running, Succeeded], "{view:#?}");
        assert!(view.events[1].at_ms <= view.events[2].at_ms);
        assert!(view.events[2].at_ms <= view.events[3].at_ms);
    }

    // Everything is acknowledged: no lane or results entry left pending.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pending: u32 = c
            .bots()
            .await
            .iter()
            .map(|b| b.lane.map_or(1, |l| l.pending))
            .sum();
        if pending == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending} pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.cancel();
    for n in nodes {
        n.await.unwrap().unwrap();
    }
    // Deregistered at once on shutdown.
    wait_for_bots(&c, 0).await;
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A model that never answers: work stays in flight until the bot goes.
#[derive(Debug)]
struct Hang(crate::ticket::ModelId);

#[async_trait]
impl Model for Hang {
    fn id(&self) -> &crate::ticket::ModelId {
        &self.0
    }
    async fn chat(&self, _: &ChatRequest) -> Result<ChatReply, ModelError> {
        std::future::pending().await
    }
}

/// A node `name` of two bots whose model never answers, and `n` tickets
/// submitted until every one is held by its bots (none left queued).
async fn held_by_a_hanging_node(
    c: &Controller,
    r: &TestRedis,
    name: &str,
    n: usize,
) -> (
    tokio::task::JoinHandle<Result<crate::bot::node::NodeExit, crate::bot::node::NodeError>>,
    CancellationToken,
    Vec<TicketId>,
) {
    let stop = CancellationToken::new();
    let hang: Arc<dyn Model> = Arc::new(Hang(crate::ticket::ModelId::parse("builtin").unwrap()));
    let running = tokio::spawn(run_node(
        node(r, name, 2, hang),
        Arc::new(SystemClock),
        stop.clone(),
    ));
    wait_for_bots(c, 2).await;
    let ids: Vec<TicketId> = c
        .submit_many((0..n).map(|i| NewTicket::chat(format!("t{i}"))).collect())
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c
        .state_counts()
        .await
        .unwrap()
        .iter()
        .any(|(s, _)| *s == TicketState::Queued)
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (running, stop, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_hands_its_tickets_to_the_bots_that_remain() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (stuck, stop_stuck, ids) = held_by_a_hanging_node(&c, &r, "stuck", 20).await;
    let stop_good = CancellationToken::new();
    let good = tokio::spawn(run_node(
        node(&r, "good", 2, Arc::new(BuiltinModel::new())),
        Arc::new(SystemClock),
        stop_good.clone(),
    ));
    // SIGTERM-like stop of the stuck node: its work is handed back.
    stop_stuck.cancel();
    stuck.await.unwrap().unwrap();
    let states = wait_until_finished(&c, &ids).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));
    for id in &ids {
        let v = c.ticket(*id).await.unwrap();
        assert!(v.bot.unwrap().as_str().starts_with("good-"));
        assert!(
            v.events.iter().any(|e| e.reason.contains("lost")),
            "the requeue says why: {:#?}",
            v.events
        );
        assert_eq!(v.ledger.len(), 1, "only the finished attempt is charged");
    }
    stop_good.cancel();
    good.await.unwrap().unwrap();
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A node stopped while its bots held work, then started again under the
/// same name (`oshal node --name`): its bots find in their lanes what the
/// last run held and what it had not read yet. All of it was requeued as
/// new attempts when the last run left, so the new run runs only those:
/// each ticket is charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_under_its_own_name_runs_each_ticket_once() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (first, stop_first, ids) = held_by_a_hanging_node(&c, &r, "same", 40).await;
    stop_first.cancel();
    first.await.unwrap().unwrap();
    wait_for_bots(&c, 0).await;

    let stop = CancellationToken::new();
    let again = tokio::spawn(run_node(
        node(&r, "same", 2, Arc::new(BuiltinModel::new())),
        Arc::new(SystemClock),
        stop.clone(),
    ));
    let states = wait_until_finished(&c, &ids).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));
    // Anything the old entries would have run reports within this time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        let v = c.ticket(*id).await.unwrap();
        assert!(v.attempts >= 2, "requeued when the first run left");
        assert_eq!(v.ledger.len(), 1, "charged once: {:#?}", v.ledger);
    }
    stop.cancel();
    again.await.unwrap().unwrap();
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A node ordered to restart (`Controller::restart_node`) stops as on
/// SIGTERM: its bots abandon their calls and what they held is requeued
/// at once. `run_node` says it was ordered; started again under its name
/// (as `oshal node` does), it is a new run, and each ticket is charged
/// once. A node not registered, or none known, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ordered_to_restart_hands_back_its_work_and_comes_back_as_a_new_run() {
    use crate::bot::node::NodeExit;
    use crate::controller::NodeRestart;
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (first, stop_first, ids) = held_by_a_hanging_node(&c, &r, "n1", 6).await;
    let old = c.node_run("n1").await.unwrap().expect("registered");

    let ordered = c.restart_node("n1", None).await.unwrap();
    let NodeRestart::Ordered { run, bots, held } = ordered else {
        panic!("not ordered: {ordered:?}");
    };
    assert_eq!((run, bots.len(), held), (old.clone(), 2, 6));
    assert_eq!(first.await.unwrap().unwrap(), NodeExit::Restart);

    assert!(
        !stop_first.is_cancelled(),
        "the order stops the run, not its parent"
    );

    let (stop, again) = start_node(&r, "n1", 2);
    let states = wait_until_finished(&c, &ids).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));
    let new = c.node_run("n1").await.unwrap().expect("registered again");
    assert!(new > old, "a new run: {new} after {old}");
    // An order naming the run that stopped (a retried heal's) orders
    // nothing: the node is past it.
    assert_eq!(
        c.restart_node("n1", Some(&old)).await.unwrap(),
        NodeRestart::Moved { run: new.clone() }
    );
    for id in &ids {
        let v = c.ticket(*id).await.unwrap();
        assert!(v.attempts >= 2, "requeued when the run stopped");
        assert_eq!(v.ledger.len(), 1, "charged once: {:#?}", v.ledger);
    }
    assert_eq!(
        c.restart_node("n9", None).await.unwrap(),
        NodeRestart::Unknown
    );
    stop.cancel();
    assert_eq!(again.await.unwrap().unwrap(), NodeExit::Stopped);
    wait_for_bots(&c, 0).await;
    assert_eq!(
        c.restart_node("n1", None).await.unwrap(),
        NodeRestart::NotLive
    );
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A model that crashes its bot on one prompt (and answers the others).
#[derive(Debug)]
struct Poison(crate::ticket::ModelId);

#[async_trait]
impl Model for Poison {
    fn id(&self) -> &crate::ticket::ModelId {
        &self.0
    }
    async fn chat(&self, req: &ChatRequest) -> Result<ChatReply, ModelError> {
        if format!("{req:?}").contains("poison") {
            panic!("this prompt crashes the bot");
        }
        BuiltinModel::new().chat(req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_after_the_delivery_limit_with_the_reason() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let stop = CancellationToken::new();
    let model: Arc<dyn Model> = Arc::new(Poison(crate::ticket::ModelId::parse("builtin").unwrap()));
    let n = tokio::spawn(run_node(
        node(&r, "p", 1, model),
        Arc::new(SystemClock),
        stop.clone(),
    ));
    wait_for_bots(&c, 1).await;
    let poison = c.submit(NewTicket::chat("poison")).await.unwrap().id;
    let fine = c.submit(NewTicket::chat("fine")).await.unwrap().id;
    let states = wait_until_finished(&c, &[poison, fine]).await;
    assert_eq!(states, [TicketState::Dead, TicketState::Succeeded]);
    let v = c.ticket(poison).await.unwrap();
    let why = v.error.clone().unwrap_or_default();
    assert!(why.contains("dead-lettered"), "{v:#?}");
    assert!(why.contains("limit 5"), "{why}");
    assert!(v.ledger.is_empty(), "a crashed call reported no usage");
    // The entry, with the reason, is on the dead-letter stream.
    let dead = r.dead_letters().await;
    assert_eq!(dead.ids.len(), 1);
    assert_eq!(
        rl::field(&dead.ids[0].map, "ticket"),
        Some(poison.to_string().as_bytes())
    );
    assert_eq!(rl::field(&dead.ids[0].map, "deliveries"), Some(&b"6"[..]));
    stop.cancel();
    n.await.unwrap().unwrap();
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A node killed and restarted under its own name within the TTL: its
/// registration never lapses, but it names a new run. The registry
/// declares the old run lost (its work is requeued) and lets the new run
/// join at the next poll, with a lane that addresses it.
#[tokio::test]
async fn a_node_restarted_within_the_ttl_is_lost_and_joins_again() {
    let r = TestRedis::new().await;
    let redis = Redis::connect(&FleetConfig {
        redis_url: redis_url(),
        prefix: r.keys.prefix().to_owned(),
    })
    .await
    .unwrap();
    let reg = |run: &str| Registration {
        bot: BotId::parse("n1-bot-01").unwrap(),
        node: "n1".into(),
        skills: vec![Skill::parse("chat").unwrap()],
        model: ModelId::parse(BuiltinModel::NAME).unwrap(),
        run: run.into(),
    };
    let beat = |reg: Registration| {
        let keys = r.keys.clone();
        let mut conn = r.conn.clone();
        async move {
            let pipe = crate::bot::node::heartbeat_pipeline(&keys, &[reg]).unwrap();
            pipe.query_async::<()>(&mut conn).await.unwrap();
        }
    };
    beat(reg("run-1")).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let registry = spawn_registry(redis, PriceTable::builtin(), 64, tx, shutdown.clone());
    let next = async |rx: &mut mpsc::UnboundedReceiver<Command>| match tokio::time::timeout(
        Duration::from_secs(5),
        rx.recv(),
    )
    .await
    {
        Ok(Some(Command::BotsChanged { up, down })) => (up, down),
        _ => panic!("the registry said nothing"),
    };
    let (up, _) = next(&mut rx).await;
    assert_eq!(up.len(), 1);

    beat(reg("run-2")).await;
    let (up, down) = next(&mut rx).await;
    assert!(up.is_empty());
    assert_eq!(down.len(), 1);
    assert!(down[0].1.contains("restarted"), "{down:?}");
    let (up, down) = next(&mut rx).await;
    assert_eq!((up.len(), down.len()), (1, 0), "the new run joins");

    // An earlier run still beating beside the later one changes nothing:
    // no loss, no flapping, and it never joins in the later one's place.
    for _ in 0..3 {
        beat(reg("run-1")).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(600), rx.recv())
                .await
                .is_err(),
            "an earlier run's beat is no restart"
        );
        beat(reg("run-2")).await;
    }
    // What the controller now publishes is for the new run; a lane of the
    // run after it drops it (an earlier run's work), the run's own reads it.
    let id = TicketId::new();
    let publish = async |attempt| {
        let entry = crate::lane::LaneEntry {
            ticket: id,
            attempt,
            tenant: crate::ticket::TenantId::default_tenant(),
            work: NewTicket::chat("x").validate().unwrap().work,
            correlation_id: id,
        };
        up[0].lane.publish(vec![entry]).await.unwrap();
    };
    publish(1).await;
    let later = r.lane("n1-bot-01").await.for_run("run-3");
    let read = later.read("later", 10, Duration::ZERO).await.unwrap();
    assert!(read.is_empty());
    publish(2).await;
    let own = r.lane("n1-bot-01").await.for_run("run-2");
    assert_eq!(own.read("own", 10, Duration::ZERO).await.unwrap().len(), 1);
    shutdown.cancel();
    registry.await.unwrap();
    r.cleanup().await;
}

/// Draining a node whose bots hang (its model server, say): its bots are
/// cordoned together, what waits in their lanes goes to the other node's
/// bots (each ticket run once, charged once), what they hold stays; a
/// drain that would leave a skill no bot is refused whole; uncordoned,
/// the node's bots take work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_gives_its_lanes_to_the_other_nodes_and_keeps_what_it_holds() {
    use crate::controller::{Drained, NodeDrained};
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (stuck, stop_stuck, ids) = held_by_a_hanging_node(&c, &r, "stuck", 20).await;
    let stop_good = CancellationToken::new();
    let good = tokio::spawn(run_node(
        node(&r, "good", 2, Arc::new(BuiltinModel::new())),
        Arc::new(SystemClock),
        stop_good.clone(),
    ));
    wait_for_bots(&c, 4).await;
    let NodeDrained::Drained { bots, fresh } = c.drain_node("stuck").await.unwrap() else {
        panic!("not drained");
    };
    assert!(fresh);
    let mut requeued = Vec::new();
    let mut held = 0;
    for (bot, d) in &bots {
        assert!(bot.as_str().starts_with("stuck-"), "{bot}");
        match d {
            Drained::Drained {
                requeued: r,
                held: h,
            } => {
                requeued.extend(r.iter().copied());
                held += h;
            }
            Drained::Already { held: h } => held += h,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(bots.len(), 2);
    assert_eq!(
        requeued.len() as u32 + held,
        20,
        "each ticket moved or held"
    );
    assert!(
        !requeued.is_empty(),
        "the lanes held tickets behind the hanging calls"
    );
    let states = wait_until_finished(&c, &requeued).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));
    for id in &requeued {
        let v = c.ticket(*id).await.unwrap();
        assert!(v.bot.unwrap().as_str().starts_with("good-"));
        assert_eq!(v.ledger.len(), 1, "run once, charged once");
    }
    let views = c.bots().await;
    for b in views.iter().filter(|b| b.node.as_deref() == Some("stuck")) {
        assert!(b.live && b.cordoned, "{b:?}");
    }
    // A repeat changes nothing; the good node is now the last with chat.
    let again = c.drain_node("stuck").await.unwrap();
    assert!(
        matches!(again, NodeDrained::Drained { fresh: false, .. }),
        "{again:?}"
    );
    let last = c.drain_node("good").await.unwrap();
    assert_eq!(
        last,
        NodeDrained::LastOfSkills(vec![Skill::parse("chat").unwrap()])
    );
    assert!(
        last.refusal("good")
            .unwrap()
            .1
            .contains("last live bots with chat")
    );
    assert_eq!(c.drain_node("nobody").await.unwrap(), NodeDrained::Unknown);
    assert_eq!(c.uncordon_node("nobody").await.unwrap(), None);
    // Uncordoned, its two bots take work again; a repeat changes nothing.
    assert_eq!(
        c.uncordon_node("stuck").await.unwrap(),
        Some((2, held, Vec::new()))
    );
    assert_eq!(
        c.uncordon_node("stuck")
            .await
            .unwrap()
            .map(|(was, _, _)| was),
        Some(0)
    );
    assert!(c.bots().await.iter().all(|b| !b.cordoned));

    // Stopped, the stuck node hands back what it held: each runs once.
    stop_stuck.cancel();
    stuck.await.unwrap().unwrap();
    let states = wait_until_finished(&c, &ids).await;
    assert!(states.iter().all(|s| *s == TicketState::Succeeded));
    for id in &ids {
        assert_eq!(c.ticket(*id).await.unwrap().ledger.len(), 1);
    }
    stop_good.cancel();
    good.await.unwrap().unwrap();
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A node's drain outlives a controller restart: its bots, registering
/// with the new controller, join drained and are routed nothing until the
/// node is uncordoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_stays_drained_across_a_controller_restart() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        nodes.push(start_node(&r, name, 2));
    }
    wait_for_bots(&c, 4).await;
    assert!(matches!(
        c.drain_node("a").await.unwrap(),
        crate::controller::NodeDrained::Drained { fresh: true, .. }
    ));
    c.shutdown().await;
    let c = controller(&db, &r).await;
    wait_for_bots(&c, 4).await;
    let on_a = |b: &crate::controller::BotView| b.node.as_deref() == Some("a");
    for b in c.bots().await {
        assert_eq!(b.cordoned, on_a(&b), "{b:?}");
    }
    let ids: Vec<TicketId> = c
        .submit_many((0..20).map(|i| NewTicket::chat(format!("r{i}"))).collect())
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    wait_until_finished(&c, &ids).await;
    for id in &ids {
        let v = c.ticket(*id).await.unwrap();
        assert_eq!(v.state, TicketState::Succeeded);
        assert!(
            v.bot.unwrap().as_str().starts_with("b-"),
            "routed to node a"
        );
    }
    assert_eq!(
        c.uncordon_node("a").await.unwrap().map(|(was, _, _)| was),
        Some(2)
    );
    assert!(c.bots().await.iter().all(|b| !b.cordoned));
    for (stop, run) in nodes {
        stop.cancel();
        run.await.unwrap().unwrap();
    }
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A bot drained before a controller restart can be uncordoned before it
/// registers again (its drain is all the controller knows of it): it then
/// joins taking work, and the journal says so across another restart.
#[tokio::test]
async fn a_drained_bot_is_uncordoned_before_it_registers_again() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let start = |name: &str| start_node(&r, name, 1);
    let (stop_a, run_a) = start("a");
    let b = start("b");
    wait_for_bots(&c, 2).await;
    let bot = c
        .bots()
        .await
        .into_iter()
        .find(|v| v.node.as_deref() == Some("a"))
        .unwrap()
        .id;
    assert!(matches!(
        c.drain_bot(&bot).await.unwrap(),
        crate::controller::Drained::Drained { .. }
    ));
    stop_a.cancel();
    run_a.await.unwrap().unwrap();
    c.shutdown().await;

    let c = controller(&db, &r).await;
    wait_for_bots(&c, 1).await;
    assert!(
        c.bots().await.iter().all(|v| v.id != bot || !v.live),
        "node a is down"
    );
    assert_eq!(c.uncordon_bot(&bot).await.unwrap(), Some((true, 0)));
    assert_eq!(
        c.uncordon_bot(&bot).await.unwrap(),
        None,
        "nothing left to lift"
    );
    c.shutdown().await;

    let c = controller(&db, &r).await;
    let a = start("a");
    wait_for_bots(&c, 2).await;
    for v in c.bots().await {
        assert!(!v.cordoned, "{v:?}");
    }
    for (stop, run) in [a, b] {
        stop.cancel();
        run.await.unwrap().unwrap();
    }
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}

/// A node drained before a controller restart can be uncordoned before
/// its bots register again (their drains, kept with the node, are all the
/// controller knows of them): they then join taking work, and the journal
/// says so across another restart.
#[tokio::test]
async fn a_drained_node_is_uncordoned_before_its_bots_register_again() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (stop_a, run_a) = start_node(&r, "a", 2);
    let b = start_node(&r, "b", 1);
    wait_for_bots(&c, 3).await;
    assert!(matches!(
        c.drain_node("a").await.unwrap(),
        crate::controller::NodeDrained::Drained { .. }
    ));
    stop_a.cancel();
    run_a.await.unwrap().unwrap();
    c.shutdown().await;

    let c = controller(&db, &r).await;
    wait_for_bots(&c, 1).await;
    assert!(
        c.bots()
            .await
            .iter()
            .all(|v| v.node.as_deref() != Some("a")),
        "node a is down"
    );
    let (was, held, mut lifted) = c.uncordon_node("a").await.unwrap().unwrap();
    lifted.sort();
    assert_eq!((was, held), (2, 0));
    assert_eq!(
        lifted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["a-bot-01", "a-bot-02"]
    );
    assert_eq!(
        c.uncordon_node("a").await.unwrap(),
        Some((0, 0, Vec::new())),
        "a repeat changes nothing"
    );
    c.shutdown().await;

    let c = controller(&db, &r).await;
    let a = start_node(&r, "a", 2);
    wait_for_bots(&c, 3).await;
    for v in c.bots().await {
        assert!(!v.cordoned, "{v:?}");
    }
    for (stop, run) in [a, b] {
        stop.cancel();
        run.await.unwrap().unwrap();
    }
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}
