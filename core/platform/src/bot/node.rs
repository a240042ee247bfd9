//! A bot node: the process (`oshal node`) that hosts bots in fleet mode.
//!
//! Each bot consumes only its own Redis stream, exactly as a local bot
//! consumes its in-process lane ([`super::run_bot`] is the same code). The
//! node adds what crossing processes needs:
//! - a heartbeat: every bot's registration key is refreshed with a short TTL,
//!   so the controller sees a killed node's bots disappear within seconds;
//! - a forwarder that appends the bots' reports to the results stream in
//!   pipelined batches, holding a lone start report up to 5 ms so that a
//!   quick attempt's start travels inside its finish;
//! - a subscriber for the controller's cancels, which aborts a running call;
//! - for bots with the `tool` skill, the way to the controller's connector
//!   runtime (`connector::remote`): a node holds no credential;
//! - the fleet's epoch, learned with each heartbeat and each lane read: once
//!   Redis has restarted empty, entries read before are skipped (the
//!   controller re-drives them), not run and paid for twice.
//!
//! - a run id (a UUIDv7), new at each start and carried by every
//!   registration: the lanes drop what the controller addressed to an
//!   earlier run, so a node restarted under the same name never runs what
//!   was requeued when its last run was lost (that would be paid for twice);
//!   on shutdown it removes only its own registrations, never a later run's.
//!
//! On shutdown (SIGTERM) the bots abandon their calls and the node removes
//! its registrations at once: the controller takes that as the bots leaving
//! and requeues what they held, so nothing waits for a TTL to expire.
//!
//! The controller may order one run of a node to restart
//! ([`NodeControl::Restart`], on the same subscription as the cancels): it
//! stops exactly as on SIGTERM and [`run_node`] answers
//! [`NodeExit::Restart`]; `oshal node` then starts again in the same
//! process (on Unix it replaces its own image: the same pid, a fresh
//! process) under the same name, as a new run.

use futures::StreamExt;
use redis::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BotContext, BotReport, BotSpec, CancelRegistry, spawn_supervised};
use crate::clock::SharedClock;
use crate::lane::redis::{self as rl, Keys, NodeControl, RedisLane, Registration};
use crate::lane::{Lane, LaneError};
use crate::model::Model;
use crate::ticket::{BotId, Skill, TicketId};

/// How long a registration lives without a heartbeat.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);
const HEARTBEAT_EVERY: Duration = Duration::from_millis(1000);
/// Lane entries a node's bots may hold (read ahead) at once, per bot.
const LANE_CAPACITY: usize = 256;
/// How long a start report waits for its attempt's finish before it goes
/// alone. A quick attempt's start then travels inside its finish: one results
/// entry, one scheduler turn and one commit per attempt instead of two. A
/// slow attempt shows `running` this much later, which no one can see.
const START_LINGER: Duration = Duration::from_millis(5);
/// Reports taken from the bots per results round trip.
const REPORTS_PER_TRIP: usize = 512;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub redis_url: String,
    pub prefix: String,
    /// Names the node; bot ids are `<name>-bot-NN`.
    pub name: String,
    pub bots: usize,
    pub skills: Vec<Skill>,
    pub model: Arc<dyn Model>,
    /// Where `media` and `build` tickets' files are; a fleet's nodes share one
    /// (a shared volume) so a step finds what another node made.
    pub artifacts: Option<Arc<super::artifacts::ArtifactStore>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid node configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Lane(#[from] LaneError),
}

/// Why [`run_node`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeExit {
    /// Its shutdown was asked (a signal).
    Stopped,
    /// The controller ordered this run to restart: start again, under the
    /// same name.
    Restart,
}

/// Runs a node until `shutdown` or the controller's order to restart, then
/// hands its work back and says which it was.
pub async fn run_node(
    config: NodeConfig,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<NodeExit, NodeError> {
    if config.bots == 0 || config.bots > super::MAX_BOTS {
        return Err(NodeError::Invalid(format!(
            "bots is {}; a node hosts 1..={}",
            config.bots,
            super::MAX_BOTS
        )));
    }
    let client = Client::open(config.redis_url.as_str())
        .map_err(|e| NodeError::Invalid(format!("redis URL: {e}")))?;
    // Everything the run started stops with it: on shutdown, or when the
    // controller orders a restart (which cancels `stop` alone).
    let outer = shutdown;
    let stop = outer.child_token();
    let conn = rl::manager(&client).await?;
    let keys = Keys::new(&config.prefix);
    let cancels = Arc::new(CancelRegistry::default());
    let (reports_tx, reports_rx) = mpsc::channel::<BotReport>(8192);
    let epoch = rl::EpochWatch::default();
    // Bots that take `tool` tickets make their calls at the controller.
    let offers_tools = config.skills.iter().any(|s| s.as_str() == "tool");
    let tools = offers_tools.then(|| {
        crate::connector::Tools::Remote(crate::connector::RemoteTools::start(
            &client,
            conn.clone(),
            &keys,
            &config.name,
            stop.clone(),
        ))
    });

    let run = uuid::Uuid::now_v7().to_string();
    let mut registrations = Vec::with_capacity(config.bots);
    let mut bots = Vec::with_capacity(config.bots);
    for i in 1..=config.bots {
        let id = BotId::parse(&format!("{}-bot-{i:02}", config.name))
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        let lane: Arc<dyn Lane> = Arc::new(
            RedisLane::open(
                client.clone(),
                conn.clone(),
                &keys,
                id.clone(),
                LANE_CAPACITY,
            )
            .await?
            .watching(&keys, epoch.clone())
            .for_run(&run),
        );
        registrations.push(Registration {
            bot: id.clone(),
            node: config.name.clone(),
            skills: config.skills.clone(),
            model: config.model.id().clone(),
            run: run.clone(),
        });
        bots.push(spawn_supervised(BotContext {
            spec: BotSpec {
                id,
                skills: config.skills.clone(),
                model: config.model.clone(),
                tools: tools.clone(),
                artifacts: config.artifacts.clone(),
            },
            lane,
            reports: reports_tx.clone(),
            cancels: cancels.clone(),
            clock: clock.clone(),
            shutdown: stop.clone(),
        }));
    }
    drop(reports_tx);

    // The registrations never change: the heartbeat is one pipeline, built once.
    let beat_pipe = heartbeat_pipeline(&keys, &registrations)?;
    let mut beat_conn = conn.clone();
    let (seen,) = beat_pipe
        .query_async::<(Option<String>,)>(&mut beat_conn)
        .await
        .map_err(rl::backend)?;
    epoch.observe(seen);
    let beat = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match beat_pipe
                    .query_async::<(Option<String>,)>(&mut beat_conn)
                    .await
                {
                    Ok((seen,)) => epoch.observe(seen),
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    };
    let forward = tokio::spawn(forward_reports(conn.clone(), keys.clone(), reports_rx));
    let hear = tokio::spawn(listen(
        client.clone(),
        keys.clone(),
        cancels.clone(),
        (config.name.clone(), run.clone()),
        stop.clone(),
    ));
    tracing::info!(node = %config.name, bots = config.bots, %run, "node up");

    stop.cancelled().await;
    let exit = if outer.is_cancelled() {
        NodeExit::Stopped
    } else {
        NodeExit::Restart
    };
    for mut b in bots {
        // One that outlives its 5 s is aborted and awaited, so what it held
        // (a sandboxed build's process group) is gone before the node
        // hands back, or replaces its own image.
        if tokio::time::timeout(Duration::from_secs(5), &mut b)
            .await
            .is_err()
        {
            b.abort();
            let _ = b.await;
        }
    }
    // Every report the bots made is out before the node says goodbye.
    let _ = tokio::time::timeout(Duration::from_secs(5), forward).await;
    beat.abort();
    hear.abort();
    deregister(&conn, &keys, &registrations).await?;
    tracing::info!(node = %config.name, ?exit, "node down; its bots' work is handed back");
    Ok(exit)
}

/// Refreshes every registration with its TTL and keeps the bots in the set;
/// answers the fleet's epoch, so the node learns within a beat that Redis
/// lost its data (and its lanes skip what they read before).
pub(crate) fn heartbeat_pipeline(
    keys: &Keys,
    regs: &[Registration],
) -> Result<redis::Pipeline, LaneError> {
    let mut pipe = redis::pipe();
    for r in regs {
        let json = serde_json::to_string(r).map_err(|e| LaneError::Backend(e.to_string()))?;
        pipe.cmd("SET")
            .arg(keys.bot(r.bot.as_str()))
            .arg(json)
            .arg("PX")
            .arg(HEARTBEAT_TTL.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD")
            .arg(keys.bots())
            .arg(r.bot.as_str())
            .ignore();
    }
    pipe.cmd("GET").arg(keys.epoch());
    Ok(pipe)
}

async fn deregister(
    conn: &redis::aio::ConnectionManager,
    keys: &Keys,
    regs: &[Registration],
) -> Result<(), LaneError> {
    // Only a key that still holds this run's registration: a later run of
    // the same name keeps its own.
    const DEL_IF_OURS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
    let mut pipe = redis::pipe();
    for r in regs {
        let json = serde_json::to_string(r).map_err(|e| LaneError::Backend(e.to_string()))?;
        pipe.cmd("EVAL")
            .arg(DEL_IF_OURS)
            .arg(1)
            .arg(keys.bot(r.bot.as_str()))
            .arg(json)
            .ignore();
    }
    let mut conn = conn.clone();
    pipe.query_async::<()>(&mut conn).await.map_err(rl::backend)
}

/// Appends reports to the results stream, as many per round trip as are ready.
async fn forward_reports(
    conn: redis::aio::ConnectionManager,
    keys: Keys,
    mut rx: mpsc::Receiver<BotReport>,
) {
    let key = keys.results();
    let mut conn = conn;
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, REPORTS_PER_TRIP).await > 0 {
        linger_for_finishes(&mut rx, &mut batch).await;
        drop_shown_starts(&mut batch);
        let mut pipe = redis::pipe();
        for r in &batch {
            match serde_json::to_vec(r) {
                Ok(json) => {
                    pipe.cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("r")
                        .arg(json)
                        .ignore();
                }
                Err(e) => tracing::error!(error = %e, "report not encodable"),
            }
        }
        // A report that cannot be sent is retried: its lane entry stays
        // pending until the controller has the result, so none is lost.
        let mut delay = Duration::from_millis(50);
        while let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "reports not delivered; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        batch.clear();
    }
}

/// While `batch` holds only start reports, takes more reports for up to
/// [`START_LINGER`], until a finish is among them. Returns at once if the
/// bots are gone (their channel closed), so nothing is held back at shutdown.
async fn linger_for_finishes(rx: &mut mpsc::Receiver<BotReport>, batch: &mut Vec<BotReport>) {
    let deadline = tokio::time::Instant::now() + START_LINGER;
    while batch
        .iter()
        .all(|r| !matches!(r, BotReport::Finished { .. }))
    {
        match tokio::time::timeout_at(deadline, rx.recv_many(batch, REPORTS_PER_TRIP)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Drops each start (and progress) report whose attempt's finish report
/// travels in the same batch: the finish carries the start time, and the
/// controller records `running` from it, so one results entry per attempt
/// goes instead of two.
fn drop_shown_starts(batch: &mut Vec<BotReport>) {
    let finished: std::collections::HashSet<(TicketId, u32)> = batch
        .iter()
        .filter_map(|r| match r {
            BotReport::Finished {
                ticket, attempt, ..
            } => Some((*ticket, *attempt)),
            BotReport::Started { .. } | BotReport::Progress { .. } => None,
        })
        .collect();
    if finished.is_empty() {
        return;
    }
    batch.retain(|r| match r {
        BotReport::Started {
            ticket, attempt, ..
        }
        | BotReport::Progress {
            ticket, attempt, ..
        } => !finished.contains(&(*ticket, *attempt)),
        BotReport::Finished { .. } => true,
    });
}

/// Hears the controller: its cancels (a ticket id), and its orders to this
/// run of the node (`(name, run)`); a restart ordered cancels `stop`.
async fn listen(
    client: Client,
    keys: Keys,
    cancels: Arc<CancelRegistry>,
    (node, run): (String, String),
    stop: CancellationToken,
) {
    let (cancel_channel, control_channel) = (keys.cancels(), keys.control(&node));
    while !stop.is_cancelled() {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the controller; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pubsub
            .subscribe(&[&cancel_channel, &control_channel])
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if msg.get_channel_name() == control_channel {
                match serde_json::from_str::<NodeControl>(&payload) {
                    Ok(order) if order.is_for(&node, &run) => {
                        tracing::warn!(%node, %run, "restart ordered by the controller");
                        stop.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable order ignored"),
                }
            } else if let Ok(id) = TicketId::parse(&payload) {
                cancels.cancel_running(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::Outcome;
    use crate::lane::EntryId;

    fn started(ticket: TicketId, attempt: u32) -> BotReport {
        BotReport::Started {
            bot: BotId::parse("n1-bot-01").unwrap(),
            ticket,
            attempt,
            at_ms: 10,
        }
    }

    fn finished(ticket: TicketId, attempt: u32) -> BotReport {
        BotReport::Finished {
            bot: BotId::parse("n1-bot-01").unwrap(),
            entry: EntryId { ms: 1, seq: 0 },
            ticket,
            attempt,
            outcome: Outcome::Cancelled,
            started_at_ms: 10,
            at_ms: 11,
            receipt: None,
        }
    }

    #[test]
    fn a_start_travels_only_without_its_finish() {
        let (a, b) = (TicketId::new(), TicketId::new());
        let mut batch = vec![
            started(a, 1),
            started(b, 1),
            finished(a, 1),
            // A finish of another attempt does not stand for this start.
            finished(b, 2),
        ];
        drop_shown_starts(&mut batch);
        assert_eq!(batch, vec![started(b, 1), finished(a, 1), finished(b, 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_waits_briefly_for_its_finish() {
        let (tx, mut rx) = mpsc::channel(8);
        let a = TicketId::new();
        let mut batch = vec![started(a, 1)];
        let t0 = tokio::time::Instant::now();
        let bot = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(started(TicketId::new(), 1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(finished(a, 1)).await.unwrap();
            tx
        });
        linger_for_finishes(&mut rx, &mut batch).await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(2),
            "left when the finish came"
        );
        assert_eq!(batch.len(), 3);
        drop_shown_starts(&mut batch);
        assert_eq!(batch.len(), 2, "the start travels inside its finish");

        // A slow attempt's start goes alone once the linger is over.
        let tx = bot.await.unwrap();
        let mut batch = vec![started(TicketId::new(), 1)];
        let t0 = tokio::time::Instant::now();
        linger_for_finishes(&mut rx, &mut batch).await;
        assert_eq!(t0.elapsed(), START_LINGER);
        assert_eq!(batch.len(), 1);

        // Bots gone: nothing is held back.
        drop(tx);
        let t0 = tokio::time::Instant::now();
        linger_for_finishes(&mut rx, &mut batch).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
