//! The controller's side of fleet mode: how it meets bots that live in
//! `oshal node` processes, through Redis.
//!
//! - The registry: each node keeps `P:bot:<id>` alive with a short TTL (its
//!   heartbeat) and adds the id to `P:bots`. [`spawn_registry`] polls both;
//!   a bot whose key appears joins routing (with its own [`RedisLane`]), one
//!   whose key expired or was removed leaves it, and its unfinished work is
//!   requeued. A bot whose registration names a new run (its node
//!   restarted within the TTL) is lost and joins again: what the last run
//!   held is requeued, and its lane addresses the new run only. A bot whose
//!   model has no price is refused (fail closed).
//! - The epoch: `P:epoch` is set by the controller. Redis on these machines
//!   keeps nothing on disk, so a missing epoch means Redis restarted empty:
//!   every routed or running ticket is re-driven from the store.
//! - Results: bots append [`BotReport`]s to `P:results`; the reader hands
//!   them to the scheduler, and each results entry is acknowledged only once
//!   what it reported is durable ([`spawn_receipt_acker`]). After a restart
//!   the reader first re-reads what it had been given and not acknowledged.
//! - Cancels go out on the `P:cancel` channel to every node; an order to
//!   restart goes to one node on its own `P:control:<node>` channel
//!   (`restart.rs`).
//! - Tool calls: the nodes' bots send them to the controller, which runs
//!   them on its connector runtime once the scheduler confirms the bot holds
//!   that attempt ([`verify_calls`], `connector::remote`).

use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use redis::{AsyncCommands, Client};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::scheduler::Command;
use super::{BotCounters, BotHandle};
use crate::bot::BotReport;
use crate::cost::PriceTable;
use crate::lane::redis::{self as rl, Keys, RedisLane, Registration};
use crate::lane::{EntryId, Lane, LaneError};
use crate::ticket::{BotId, ModelId, TicketId};

/// How often the registry is read.
const POLL: Duration = Duration::from_millis(500);
/// The consumer group (and consumer) the controller reads results through.
const RESULTS_GROUP: &str = "controller";
const RESULTS_CONSUMER: &str = "controller";

#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub redis_url: String,
    /// Every key of this fleet starts with it.
    pub prefix: String,
}

/// The controller's Redis handles.
#[derive(Debug, Clone)]
pub struct Redis {
    pub client: Client,
    pub conn: ConnectionManager,
    pub keys: Keys,
}

impl Redis {
    pub async fn connect(config: &FleetConfig) -> Result<Self, LaneError> {
        let client = Client::open(config.redis_url.as_str())
            .map_err(|e| LaneError::Backend(format!("redis URL: {e}")))?;
        let conn = rl::manager(&client).await?;
        Ok(Self {
            client,
            conn,
            keys: Keys::new(&config.prefix),
        })
    }
}

impl super::Controller {
    /// Retires a lost node: its bots leave the bots' view (a node that
    /// answers is refused: [`super::Retired::Live`]).
    pub async fn retire_node(&self, node: &str) -> Result<super::Retired, super::ControllerError> {
        let name = node.to_owned();
        // One of its bots that registers again joins as new, not drained:
        // the journal says so too.
        self.held_change(
            &format!("node {node} retired"),
            |b| b.node.as_deref() == Some(node),
            async || {
                self.ask(|reply| Command::RetireNode { node: name, reply })
                    .await
            },
        )
        .await
    }

    /// The nodes whose bots are all retired.
    pub fn retired_nodes(&self) -> std::collections::BTreeSet<String> {
        let handles = self.bot_handles();
        let mut nodes: HashMap<&str, bool> = HashMap::new();
        for b in &handles {
            if let Some(n) = b.node.as_deref() {
                *nodes.entry(n).or_insert(true) &= b
                    .counters
                    .retired
                    .load(std::sync::atomic::Ordering::Relaxed);
            }
        }
        nodes
            .into_iter()
            .filter(|(_, all)| *all)
            .map(|(n, _)| n.to_owned())
            .collect()
    }
}

/// How the tool server asks the scheduler whether a node's bot holds the
/// attempt it makes a call for (see `connector::remote`).
pub(crate) fn verify_calls(
    inbox: mpsc::UnboundedSender<Command>,
) -> crate::connector::remote::Verify {
    Arc::new(move |call| {
        let inbox = inbox.clone();
        Box::pin(async move {
            let stopping = || "the controller is stopping".to_owned();
            let (reply, answer) = tokio::sync::oneshot::channel();
            inbox
                .send(Command::CheckCall {
                    ticket: call.ticket,
                    attempt: call.attempt,
                    bot: call.bot,
                    reply,
                })
                .map_err(|_| stopping())?;
            answer.await.map_err(|_| stopping())?
        })
    })
}

/// Reads the registry and the epoch until shutdown, telling the scheduler
/// which bots came and went.
pub(crate) fn spawn_registry(
    redis: Redis,
    prices: PriceTable,
    lane_capacity: usize,
    inbox: mpsc::UnboundedSender<Command>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut live: HashMap<BotId, Registration> = HashMap::new();
        let mut refused: HashMap<BotId, ModelId> = HashMap::new();
        // The latest run seen of each bot: an earlier run's registration
        // (still beating beside a later one) never joins again.
        let mut latest: HashMap<BotId, String> = HashMap::new();
        let mut epoch: Option<String> = None;
        // After Redis lost its data every registration is gone too, though
        // the nodes are fine: they re-register within a heartbeat. Until one
        // TTL has passed, a missing bot is not declared lost (that would
        // requeue, as a second new attempt, the work just re-driven to it).
        let mut grace_until: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut conn = redis.conn.clone();
            match check_epoch(&mut conn, &redis.keys, &mut epoch).await {
                Ok(Some(reason)) => {
                    tracing::warn!(%reason, "re-driving in-flight tickets");
                    grace_until =
                        Some(tokio::time::Instant::now() + crate::bot::node::HEARTBEAT_TTL);
                    let _ = inbox.send(Command::Redrive { reason });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "redis unreachable; registry not read");
                    continue;
                }
            }
            let regs = match registrations(&mut conn, &redis.keys).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "registry read failed");
                    continue;
                }
            };
            let mut up = Vec::new();
            let mut joining: Vec<&Registration> = regs.values().collect();
            joining.sort_by(|a, b| a.bot.cmp(&b.bot));
            for reg in joining {
                let newest = latest.entry(reg.bot.clone()).or_default();
                if reg.run < *newest {
                    continue;
                }
                newest.clone_from(&reg.run);
                if live.contains_key(&reg.bot) {
                    continue;
                }
                if let Err(e) = prices.check(&reg.model) {
                    if refused.insert(reg.bot.clone(), reg.model.clone()).is_none() {
                        tracing::error!(bot = %reg.bot, error = %e, "bot refused: its model has no price");
                    }
                    continue;
                }
                match RedisLane::open(
                    redis.client.clone(),
                    redis.conn.clone(),
                    &redis.keys,
                    reg.bot.clone(),
                    lane_capacity,
                )
                .await
                .map(|lane| lane.for_run(&reg.run))
                {
                    Ok(lane) => {
                        up.push(BotHandle {
                            id: reg.bot.clone(),
                            skills: reg.skills.clone(),
                            model: reg.model.clone(),
                            node: Some(reg.node.clone()),
                            lane: Arc::new(lane) as Arc<dyn Lane>,
                            counters: BotCounters::live(),
                        });
                        live.insert(reg.bot.clone(), reg.clone());
                    }
                    Err(e) => tracing::warn!(bot = %reg.bot, error = %e, "cannot open lane"),
                }
            }
            let in_grace = grace_until.is_some_and(|t| tokio::time::Instant::now() < t);
            let down: Vec<(BotId, String)> = live
                .iter()
                .filter_map(|(b, was)| match regs.get(b) {
                    None if !in_grace => Some((b.clone(), "its heartbeat stopped".to_owned())),
                    // It joins again at the next poll, as the new run. An
                    // earlier run still beating beside it changes nothing
                    // (runs are UUIDv7s: a later one sorts after).
                    Some(now) if now.run > was.run => {
                        Some((b.clone(), "its node restarted".to_owned()))
                    }
                    _ => None,
                })
                .collect();
            for (b, _) in &down {
                live.remove(b);
            }
            if (!up.is_empty() || !down.is_empty())
                && inbox.send(Command::BotsChanged { up, down }).is_err()
            {
                return;
            }
        }
    })
}

/// Why tickets are requeued when Redis lost its data: the transition's
/// reason, by which the operations loop tells a re-drive from a requeue.
pub const REDRIVE_REASON: &str =
    "redis lost its data (restarted without persistence); lane entries re-driven";

/// Sets the epoch on first sight; reports if it vanished since (Redis
/// restarted without its data).
async fn check_epoch(
    conn: &mut ConnectionManager,
    keys: &Keys,
    epoch: &mut Option<String>,
) -> Result<Option<String>, redis::RedisError> {
    let current: Option<String> = conn.get(keys.epoch()).await?;
    match (current, epoch.as_ref()) {
        (Some(c), Some(e)) if &c == e => Ok(None),
        (Some(c), None) => {
            *epoch = Some(c);
            Ok(None)
        }
        (current, seen) => {
            let fresh = uuid::Uuid::now_v7().to_string();
            let set: bool = conn.set_nx(keys.epoch(), &fresh).await?;
            let now: Option<String> = if set {
                Some(fresh)
            } else {
                conn.get(keys.epoch()).await?
            };
            let was_lost = seen.is_some() && current.is_none();
            *epoch = now;
            Ok(was_lost.then(|| REDRIVE_REASON.into()))
        }
    }
}

pub(super) async fn registrations(
    conn: &mut ConnectionManager,
    keys: &Keys,
) -> Result<HashMap<BotId, Registration>, redis::RedisError> {
    let ids: Vec<String> = conn.smembers(keys.bots()).await?;
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let bot_keys: Vec<String> = ids.iter().map(|b| keys.bot(b)).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&bot_keys).query_async(conn).await?;
    let mut out = HashMap::new();
    for v in values.into_iter().flatten() {
        match serde_json::from_str::<Registration>(&v) {
            Ok(r) => {
                out.insert(r.bot.clone(), r);
            }
            Err(e) => tracing::warn!(error = %e, "unreadable bot registration ignored"),
        }
    }
    Ok(out)
}

/// Reads bots' reports from the results stream and hands them to the
/// scheduler, each tagged with its entry id for the acknowledgement.
pub(crate) async fn spawn_results_reader(
    redis: Redis,
    reports: mpsc::Sender<BotReport>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, LaneError> {
    let mut conn = redis.conn.clone();
    rl::ensure_group(&mut conn, &redis.keys.results(), RESULTS_GROUP).await?;
    let mut reader = rl::blocking_connection(&redis.client).await?;
    Ok(tokio::spawn(async move {
        let key = redis.keys.results();
        // First what was delivered to us before a restart, then new entries.
        let mut from = "0".to_owned();
        loop {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(RESULTS_GROUP)
                .arg(RESULTS_CONSUMER)
                .arg("COUNT")
                .arg(1024);
            if from == ">" {
                cmd.arg("BLOCK").arg(200);
            }
            cmd.arg("STREAMS").arg(&key).arg(&from);
            let read = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                r = cmd.query_async::<Option<StreamReadReply>>(&mut reader) => r,
            };
            let entries: Vec<redis::streams::StreamId> = match read {
                Ok(r) => r
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                    .unwrap_or_default(),
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        let _ = rl::ensure_group(&mut conn, &key, RESULTS_GROUP).await;
                    } else {
                        tracing::warn!(error = %e, "results read failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if let Ok(c) = rl::blocking_connection(&redis.client).await {
                            reader = c;
                        }
                    }
                    continue;
                }
            };
            if entries.is_empty() && from != ">" {
                from = ">".to_owned();
                continue;
            }
            // Start reports and unreadable entries are acknowledged
            // together, in one round trip after the batch is handed on.
            let mut ack_now: Vec<String> = Vec::new();
            for e in entries {
                let Ok(id) = rl::parse_entry_id(&e.id) else {
                    continue;
                };
                let report = rl::field(&e.map, "r")
                    .and_then(|raw| serde_json::from_slice::<BotReport>(raw).ok());
                let Some(mut report) = report else {
                    tracing::error!(entry = %e.id, "unreadable report dropped");
                    ack_now.push(e.id);
                    continue;
                };
                // A start report needs no durability: it is acknowledged at
                // once. A finish report is acknowledged once its result is
                // durable (its receipt goes back through the scheduler).
                match &mut report {
                    BotReport::Finished { receipt, .. } => *receipt = Some(id),
                    BotReport::Started { .. } | BotReport::Progress { .. } => ack_now.push(e.id),
                }
                if reports.send(report).await.is_err() {
                    return;
                }
            }
            if !ack_now.is_empty() {
                let _: Result<(), _> = redis::pipe()
                    .cmd("XACK")
                    .arg(&key)
                    .arg(RESULTS_GROUP)
                    .arg(&ack_now)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&key)
                    .arg(&ack_now)
                    .ignore()
                    .query_async(&mut conn)
                    .await;
            }
        }
    }))
}

/// Acknowledges (and deletes) results entries once their results are durable.
pub(crate) fn spawn_receipt_acker(
    redis: Redis,
    mut rx: mpsc::UnboundedReceiver<Vec<EntryId>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let key = redis.keys.results();
        let mut conn = redis.conn.clone();
        while let Some(first) = rx.recv().await {
            let mut ids = first;
            while let Ok(more) = rx.try_recv() {
                ids.extend(more);
            }
            let ids: Vec<String> = ids.iter().map(EntryId::to_string).collect();
            let r: redis::RedisResult<()> = redis::pipe()
                .cmd("XACK")
                .arg(&key)
                .arg(RESULTS_GROUP)
                .arg(&ids)
                .ignore()
                .cmd("XDEL")
                .arg(&key)
                .arg(&ids)
                .ignore()
                .query_async(&mut conn)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "results ack failed; they will be read again");
            }
        }
    })
}

/// Broadcasts cancels to every node.
pub(crate) fn spawn_cancel_publisher(
    redis: Redis,
    mut rx: mpsc::UnboundedReceiver<TicketId>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let channel = redis.keys.cancels();
        let mut conn = redis.conn.clone();
        while let Some(id) = rx.recv().await {
            let r: redis::RedisResult<()> = conn.publish(&channel, id.to_string()).await;
            if let Err(e) = r {
                tracing::warn!(ticket = %id, error = %e, "cancel not delivered to nodes");
            }
        }
    })
}

#[cfg(test)]
mod tests;
