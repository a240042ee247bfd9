//! Redis failing under a running fleet: restarted empty, or refusing a
//! lane's writes. Nothing the controller routed is lost either way.

use super::*;

/// Redis restarting empty wipes the registrations with everything else,
/// while the nodes are fine and re-register within a heartbeat. The registry
/// re-drives at once but does not declare the bots lost during one TTL (that
/// would requeue the re-driven work a second time); a bot that stays away
/// past it is still declared lost.
#[tokio::test]
async fn a_redis_restart_is_not_taken_for_every_bot_lost() {
    let r = TestRedis::new().await;
    let redis = Redis::connect(&FleetConfig {
        redis_url: redis_url(),
        prefix: r.keys.prefix().to_owned(),
    })
    .await
    .unwrap();
    let reg = Registration {
        bot: BotId::parse("n1-bot-01").unwrap(),
        node: "n1".into(),
        skills: vec![Skill::parse("chat").unwrap()],
        model: ModelId::parse(BuiltinModel::NAME).unwrap(),
        run: "run-1".into(),
    };
    let beat = || async {
        let pipe =
            crate::bot::node::heartbeat_pipeline(&r.keys, std::slice::from_ref(&reg)).unwrap();
        pipe.query_async::<()>(&mut r.conn.clone()).await.unwrap();
    };
    beat().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let registry = spawn_registry(redis, PriceTable::builtin(), 64, tx, shutdown.clone());
    let next = async |rx: &mut mpsc::UnboundedReceiver<Command>, within: Duration| {
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    };
    match next(&mut rx, Duration::from_secs(5)).await {
        Some(Command::BotsChanged { up, down }) => {
            assert_eq!(up.len(), 1);
            assert!(down.is_empty());
        }
        _ => panic!("the bot did not come up"),
    }

    r.flush().await;
    assert!(
        matches!(
            next(&mut rx, Duration::from_secs(2)).await,
            Some(Command::Redrive { .. })
        ),
        "no re-drive after the restart"
    );
    // The node heartbeats again within its period; meanwhile, and after,
    // nothing says the bot was lost.
    tokio::time::sleep(crate::bot::node::HEARTBEAT_TTL / 3).await;
    beat().await;
    let quiet_until = tokio::time::Instant::now() + crate::bot::node::HEARTBEAT_TTL;
    while tokio::time::Instant::now() < quiet_until {
        beat().await;
        if let Some(Command::BotsChanged { down, .. }) =
            next(&mut rx, Duration::from_millis(500)).await
        {
            panic!("declared lost after a restart: {down:?}");
        }
    }
    // A bot that really stops beating is still declared lost.
    match next(&mut rx, crate::bot::node::HEARTBEAT_TTL * 2).await {
        Some(Command::BotsChanged { down, .. }) => assert_eq!(down.len(), 1),
        _ => panic!("a silent bot was never declared lost"),
    }
    shutdown.cancel();
    registry.await.unwrap();
    r.cleanup().await;
}

/// A lane that refuses a publish (here its key holds a string, so Redis
/// answers WRONGTYPE; in life, Redis restarting or a link cut) does not
/// lose what was routed to it: the tickets stay routed, holding their
/// slots, and are published again, as the same attempt, once the lane
/// takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_fails_is_sent_again_not_taken_as_sent() {
    let (db, r) = (TestDb::new().await, TestRedis::new().await);
    let c = controller(&db, &r).await;
    let (stop, run) = start_node(&r, "n1", 1);
    wait_for_bots(&c, 1).await;
    let bot = c.bots().await[0].id.clone();
    let lane = r.keys.lane(&bot);
    let mut conn = r.conn.clone();
    let _: () = redis::cmd("DEL")
        .arg(&lane)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&lane)
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();

    let ids: Vec<TicketId> = c
        .submit_many(
            (0..3)
                .map(|i| NewTicket::chat(format!("hello {i}")))
                .collect(),
        )
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    // Several publishes fail meanwhile (the backoff starts at 50 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in &ids {
        let t = c.ticket(*id).await.unwrap();
        assert_eq!((t.state, t.attempts), (TicketState::Routed, 1), "{t:?}");
    }

    let _: () = redis::cmd("DEL")
        .arg(&lane)
        .query_async(&mut conn)
        .await
        .unwrap();
    let states = wait_until_finished(&c, &ids).await;
    assert!(
        states.iter().all(|s| *s == TicketState::Succeeded),
        "{states:?}"
    );
    for id in &ids {
        let t = c.ticket(*id).await.unwrap();
        assert_eq!(t.attempts, 1, "published again as the same attempt: {t:?}");
    }
    assert_eq!(c.cost_summary().await.unwrap().total.attempts, 3);
    stop.cancel();
    run.await.unwrap().unwrap();
    c.shutdown().await;
    db.drop().await;
    r.cleanup().await;
}
