//! The lanes of fleet mode: one Redis stream per bot, read through a
//! consumer group, with the same semantics as the in-process lane.
//!
//! - `publish` appends with one pipelined `XADD … MAXLEN ~` per batch (never
//!   one round trip per ticket). Lanes do not refuse: the controller never
//!   routes more than its per-bot in-flight limit to one bot, far below the
//!   trim length, so trimming never reaches an entry still pending.
//! - `read` is `XREADGROUP … BLOCK` on a connection of its own (a blocking
//!   read would stall every other command sharing a multiplexed one).
//! - `ack` is `XACK`, sent by the controller once the result is durable.
//! - `claim` is `XAUTOCLAIM` past an idle time, then `XPENDING` for the
//!   delivery counts that decide dead-lettering.
//! - `dead_letter` copies an entry, with the reason, to the dead-letter stream.
//! - `withdraw` is one Lua script: the entries no consumer has read,
//!   read for a consumer of their own and acknowledged in the same step,
//!   so none is both withdrawn and delivered to a bot; kept a day in a
//!   stream beside the lane, so an answer lost is given again.
//!
//! A missing group (Redis restarted and kept nothing) is recreated on the
//! spot; what the lost entries carried is re-driven by the controller, whose
//! store is the source of truth. A node's lanes share an [`EpochWatch`]:
//! each read learns, in the same round trip, the epoch of the server it read
//! from, and once the node has seen a newer epoch the entries still in hand
//! are [`Lane::superseded`] and skipped, not paid for twice.
//!
//! Each start of a node is a new *run* (a UUIDv7 its registration carries;
//! they sort by time). The controller stamps every entry with the run it
//! addressed, and a node's lane never delivers an entry stamped for an
//! earlier run: when that run was lost, the controller requeued the entry
//! as a new attempt, so a node restarted under the same name must not run
//! (and pay for) it again. Such an entry is acknowledged and dropped. An
//! entry for this run or a later one is delivered (two runs of one name at
//! once share the lane as two consumers of one group: each entry reaches
//! one of them).
//!
//! [`Keys`] names every key under one prefix, so tests and fleets can share
//! a server.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimReply, StreamInfoGroupsReply, StreamRangeReply, StreamReadReply,
};
use redis::{AsyncConnectionConfig, Client, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Delivery, EntryId, Lane, LaneEntry, LaneError, LaneStats};
use crate::ticket::BotId;

/// Reads, for consumer `ARGV[2]` of group `ARGV[1]`, and acknowledges in
/// the same step every entry of the stream `KEYS[1]` no consumer has read
/// yet: they are delivered to no bot, ever. Read, not deleted, so the
/// group's own count of what waits stays true. Each is also kept in the
/// stream `KEYS[2]` for a day, and the answer is all that stream holds:
/// a withdrawal whose answer was lost is answered again by the next one
/// (the controller requeues an attempt once, whatever it is answered).
/// A lane with no group yet has nothing to withdraw; any other error is
/// the caller's.
const WITHDRAW: &str = r#"
local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'STREAMS', KEYS[1], '>')
if not ok then
  local err = type(reply) == 'table' and reply.err or tostring(reply)
  if string.find(err, 'NOGROUP', 1, true) then return {} end
  return redis.error_reply(err)
end
local entries = (reply and reply[1] and reply[1][2]) or {}
if #entries > 0 then
  local ids = {}
  for i, e in ipairs(entries) do
    ids[i] = e[1]
    redis.call('XADD', KEYS[2], '*', unpack(e[2]))
  end
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('EXPIRE', KEYS[2], 86400)
end
return redis.call('XRANGE', KEYS[2], '-', '+')
"#;

/// The consumer that takes a lane's withdrawn entries (it holds none).
const WITHDRAWN: &str = "withdrawn";

/// The consumer group every bot lane is read through.
pub const GROUP: &str = "bots";
/// Approximate length a lane stream is trimmed to on append.
const TRIM: usize = 10_000;

/// A bot as its node registers it, at [`Keys::bot`]: the fleet's wire
/// format between nodes and the controller.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    pub bot: BotId,
    pub node: String,
    pub skills: Vec<crate::ticket::Skill>,
    pub model: crate::ticket::ModelId,
    /// Which run of the node this is, new at each start (empty from a node
    /// that predates runs: its entries are never fenced).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run: String,
}

/// An order from the controller to one run of one node, published on
/// [`Keys::control`] of its node. Naming the run makes it said once: a node started
/// since (the restart itself, or one started by hand) is not the run the
/// order was for, and lets it be.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeControl {
    /// Stop as on SIGTERM (the bots abandon their calls, the registrations
    /// go, so the controller requeues what they held at once), then start
    /// again under the same name as a new run.
    Restart { node: String, run: String },
}

impl NodeControl {
    /// Whether the order is for this run of node `node`.
    pub fn is_for(&self, node: &str, run: &str) -> bool {
        match self {
            NodeControl::Restart { node: n, run: r } => n == node && r == run,
        }
    }
}

/// Every key of one fleet, under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// A bot's own stream.
    pub fn lane(&self, bot: &BotId) -> String {
        format!("{}:lane:{bot}", self.prefix)
    }
    /// Where bots report back to the controller.
    pub fn results(&self) -> String {
        format!("{}:results", self.prefix)
    }
    /// Entries given up on after too many deliveries.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }
    /// A bot's registration, kept alive by its node's heartbeat.
    pub fn bot(&self, bot: &str) -> String {
        format!("{}:bot:{bot}", self.prefix)
    }
    /// The set of bots ever registered (their keys say which are live).
    pub fn bots(&self) -> String {
        format!("{}:bots", self.prefix)
    }
    /// Cancel signals from the controller to the nodes (pub/sub).
    pub fn cancels(&self) -> String {
        format!("{}:cancel", self.prefix)
    }
    /// The controller's orders to one node (pub/sub): [`NodeControl`].
    /// A channel per node, so a publish's count of listeners says whether
    /// that node heard it.
    pub fn control(&self, node: &str) -> String {
        format!("{}:control:{node}", self.prefix)
    }
    /// Set by the controller; its absence means Redis lost its data.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
    /// Tool calls from the nodes' bots to the controller's connector runtime.
    pub fn tool_calls(&self) -> String {
        format!("{}:tools", self.prefix)
    }
    /// The controller's answers to one node's tool calls.
    pub fn tool_replies(&self, node: &str) -> String {
        format!("{}:tools:{node}", self.prefix)
    }
}

pub fn backend(e: redis::RedisError) -> LaneError {
    LaneError::Backend(e.to_string())
}

/// A shared, reconnecting connection for non-blocking commands.
pub async fn manager(client: &Client) -> Result<ConnectionManager, LaneError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(backend)
}

/// Waits until the server at `url` answers PING, for at most `within`
/// (a server just started, or restarted).
pub async fn wait_until_answering(url: &str, within: Duration) -> Result<(), LaneError> {
    let client = Client::open(url).map_err(backend)?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(LaneError::Backend(format!(
                "{url} did not answer PING within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection of its own for blocking reads (no response timeout: the
/// server answers when BLOCK elapses).
pub async fn blocking_connection(client: &Client) -> Result<MultiplexedConnection, LaneError> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(backend)
}

pub fn parse_entry_id(s: &str) -> Result<EntryId, LaneError> {
    let bad = || LaneError::Backend(format!("malformed stream id {s:?}"));
    let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
    Ok(EntryId {
        ms: ms.parse().map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
    })
}

/// The one field of a stream entry (`e`), as bytes.
pub fn field<'a>(
    map: &'a std::collections::HashMap<String, Value>,
    name: &str,
) -> Option<&'a [u8]> {
    match map.get(name)? {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// The group is gone, from a lone command or from one in a pipeline (where
/// the server's code is wrapped with the command's index).
pub fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
        || e.clone()
            .into_server_errors()
            .is_some_and(|errs| errs.iter().any(|(_, s)| s.code() == "NOGROUP"))
}

/// Creates `group` on `key` (and the stream) unless it exists.
pub async fn ensure_group(
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
) -> Result<(), LaneError> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(backend(e)),
        _ => Ok(()),
    }
}

/// The latest fleet epoch a node has seen (`P:epoch`, set by the
/// controller; a new value means Redis restarted without its data). Cheap to
/// clone; every lane of a node shares one.
#[derive(Debug, Clone, Default)]
pub struct EpochWatch(Arc<std::sync::Mutex<Epochs>>);

/// The newest epoch seen, and the last few it replaced.
#[derive(Debug, Default)]
struct Epochs {
    latest: Option<Arc<str>>,
    replaced: std::collections::VecDeque<Arc<str>>,
}

/// How many replaced epochs a node remembers (one per Redis restart).
const REPLACED_KEPT: usize = 8;

impl EpochWatch {
    /// Records what the server said; an absent epoch changes nothing (the
    /// controller sets a fresh one within its poll), nor does one already
    /// replaced: that is a late answer from the server since lost (a lane's
    /// read answered before the restart and looked at after another lane
    /// had seen the new epoch), and taking it back would make current
    /// entries look superseded and be skipped. Told apart by what was
    /// replaced, not by order, so no clock decides it.
    pub fn observe(&self, epoch: Option<String>) {
        let Some(e) = epoch else {
            return;
        };
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.latest.as_deref() == Some(e.as_str()) || seen.replaced.iter().any(|r| **r == *e) {
            return;
        }
        if let Some(old) = seen.latest.replace(e.into()) {
            seen.replaced.push_back(old);
            if seen.replaced.len() > REPLACED_KEPT {
                seen.replaced.pop_front();
            }
        }
    }

    pub fn latest(&self) -> Option<Arc<str>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latest
            .clone()
    }
}

#[derive(Debug)]
pub struct RedisLane {
    bot: BotId,
    key: String,
    dead: String,
    client: Client,
    conn: ConnectionManager,
    reader: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Set on a node's lanes: the node's epoch, and the epoch of the server
    /// the last read came from (`None`: unknown, never superseded).
    epoch: Option<(String, EpochWatch)>,
    read_epoch: std::sync::Mutex<Option<Arc<str>>>,
    /// The node run this lane's entries are for: stamped on what the
    /// controller publishes, checked on what a node reads.
    run: Option<Arc<str>>,
    capacity: usize,
    published_total: AtomicU64,
    acked_total: AtomicU64,
    dead_lettered_total: AtomicU64,
}

impl RedisLane {
    /// The lane of `bot`, creating its stream and group if needed.
    /// `capacity` is what the controller will hold in it at most.
    pub async fn open(
        client: Client,
        conn: ConnectionManager,
        keys: &Keys,
        bot: BotId,
        capacity: usize,
    ) -> Result<Self, LaneError> {
        let mut lane = Self {
            key: keys.lane(&bot),
            dead: keys.dead(),
            bot,
            client,
            conn,
            reader: tokio::sync::Mutex::new(None),
            epoch: None,
            read_epoch: std::sync::Mutex::new(None),
            run: None,
            capacity,
            published_total: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            dead_lettered_total: AtomicU64::new(0),
        };
        ensure_group(&mut lane.conn, &lane.key, GROUP).await?;
        Ok(lane)
    }

    /// Makes reads learn the epoch of the server they read from, so that
    /// entries read before Redis lost its data are skipped (a node's lanes).
    pub fn watching(mut self, keys: &Keys, watch: EpochWatch) -> Self {
        self.epoch = Some((keys.epoch(), watch));
        self
    }

    /// Ties the lane to one run of its node (the registration's
    /// run): the controller's side stamps it on every entry, a node's side
    /// drops entries stamped for an earlier run.
    pub fn for_run(mut self, run: &str) -> Self {
        self.run = (!run.is_empty()).then(|| Arc::from(run));
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entries this lane may deliver, and acknowledges (drops) those
    /// stamped for an earlier run of its node: the controller requeued them
    /// when that run was lost. An acknowledgement that fails is logged; the
    /// entries it was for stay pending, never delivered.
    async fn deliverable(
        &self,
        entries: Vec<redis::streams::StreamId>,
        counts: impl Fn(&str) -> u32,
    ) -> Result<Vec<Delivery>, LaneError> {
        let (entries, fenced): (Vec<_>, Vec<_>) =
            entries
                .into_iter()
                .partition(|e| match (&self.run, field(&e.map, "run")) {
                    // Runs are UUIDv7s: an earlier one sorts first.
                    (Some(own), Some(to)) => to >= own.as_bytes(),
                    _ => true,
                });
        if !fenced.is_empty() {
            tracing::info!(
                lane = %self.key,
                entries = fenced.len(),
                "dropped entries addressed to an earlier run of this node (requeued when it was lost)"
            );
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&self.key).arg(GROUP);
            for e in &fenced {
                cmd.arg(&e.id);
            }
            let mut conn = self.conn.clone();
            if let Err(e) = cmd.query_async::<u64>(&mut conn).await {
                tracing::warn!(lane = %self.key, error = %e, "dropped entries not acknowledged; they stay pending");
            }
        }
        Ok(self.deliveries(entries, counts))
    }

    fn deliveries(
        &self,
        entries: Vec<redis::streams::StreamId>,
        counts: impl Fn(&str) -> u32,
    ) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let parsed = parse_entry_id(&e.id).and_then(|id| {
                let raw = field(&e.map, "e")
                    .ok_or_else(|| LaneError::Backend(format!("entry {} has no field e", e.id)))?;
                let entry: LaneEntry = serde_json::from_slice(raw)
                    .map_err(|err| LaneError::Backend(format!("entry {}: {err}", e.id)))?;
                Ok((id, entry))
            });
            match parsed {
                Ok((id, entry)) => out.push(Delivery {
                    id,
                    entry,
                    deliveries: counts(&e.id),
                }),
                // Nothing but the controller writes here; a malformed entry
                // is logged and left pending, never run.
                Err(err) => {
                    tracing::error!(lane = %self.key, error = %err, "unreadable lane entry")
                }
            }
        }
        out
    }
}

#[async_trait]
impl Lane for RedisLane {
    fn bot(&self) -> &BotId {
        &self.bot
    }

    async fn publish(&self, entries: Vec<LaneEntry>) -> Result<Vec<LaneEntry>, LaneError> {
        if entries.is_empty() {
            return Ok(entries);
        }
        let mut pipe = redis::pipe();
        for e in &entries {
            let json = serde_json::to_vec(e).map_err(|err| LaneError::Backend(err.to_string()))?;
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(TRIM)
                .arg("*")
                .arg("e")
                .arg(json);
            if let Some(to) = &self.run {
                pipe.arg("run").arg(&**to);
            }
            pipe.ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(backend)?;
        self.published_total
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(Vec::new())
    }

    async fn read(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, LaneError> {
        let mut guard = self.reader.lock().await;
        if guard.is_none() {
            *guard = Some(blocking_connection(&self.client).await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max.max(1));
        // BLOCK 0 would wait forever; no BLOCK means "what is there now".
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(">");
        // The epoch comes from the same server as the entries: a GET
        // pipelined ahead of the read on the same connection.
        let r: redis::RedisResult<Option<StreamReadReply>> = match &self.epoch {
            Some((key, watch)) => {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(key).add_command(cmd);
                match pipe
                    .query_async::<(Option<String>, Option<StreamReadReply>)>(conn)
                    .await
                {
                    Ok((epoch, reply)) => {
                        watch.observe(epoch.clone());
                        *self.read_epoch.lock().unwrap_or_else(|p| p.into_inner()) =
                            epoch.map(Arc::from);
                        Ok(reply)
                    }
                    Err(e) => Err(e),
                }
            }
            None => cmd.query_async(conn).await,
        };
        match r {
            Ok(reply) => {
                let entries = reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                    .unwrap_or_default();
                self.deliverable(entries, |_| 1).await
            }
            Err(e) if is_nogroup(&e) => {
                drop(guard);
                let mut conn = self.conn.clone();
                ensure_group(&mut conn, &self.key, GROUP).await?;
                Ok(Vec::new())
            }
            Err(e) => {
                // Drop the connection; the next read opens a new one.
                *guard = None;
                Err(backend(e))
            }
        }
    }

    async fn ack(&self, ids: &[EntryId]) -> Result<u64, LaneError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(GROUP);
        for id in ids {
            cmd.arg(id.to_string());
        }
        let mut conn = self.conn.clone();
        let n: u64 = cmd.query_async(&mut conn).await.map_err(backend)?;
        self.acked_total.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    async fn claim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, LaneError> {
        // Claimed entries come from the server as it is now.
        *self.read_epoch.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut conn = self.conn.clone();
        let mut claimed = Vec::new();
        let mut start = "0-0".to_owned();
        let count = max.clamp(1, 1000);
        loop {
            let r: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(GROUP)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await;
            let reply = match r {
                Ok(r) => r,
                Err(e) if is_nogroup(&e) => {
                    ensure_group(&mut conn, &self.key, GROUP).await?;
                    return Ok(Vec::new());
                }
                Err(e) => return Err(backend(e)),
            };
            claimed.extend(reply.claimed);
            if reply.next_stream_id == "0-0" || claimed.len() >= max {
                break;
            }
            start = reply.next_stream_id;
        }
        claimed.truncate(max);
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // Delivery counts (XAUTOCLAIM has just incremented them).
        let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&claimed[0].id)
            .arg(&claimed[claimed.len() - 1].id)
            .arg(claimed.len())
            .arg(consumer)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        let counts: std::collections::HashMap<String, u32> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u32))
            .collect();
        self.deliverable(claimed, |id| counts.get(id).copied().unwrap_or(1))
            .await
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), LaneError> {
        let json = serde_json::to_vec(&d.entry).map_err(|e| LaneError::Backend(e.to_string()))?;
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.dead)
            .arg("MAXLEN")
            .arg("~")
            .arg(TRIM)
            .arg("*")
            .arg("bot")
            .arg(self.bot.as_str())
            .arg("entry")
            .arg(d.id.to_string())
            .arg("ticket")
            .arg(d.entry.ticket.to_string())
            .arg("attempt")
            .arg(d.entry.attempt)
            .arg("deliveries")
            .arg(d.deliveries)
            .arg("reason")
            .arg(reason)
            .arg("e")
            .arg(json)
            .query_async::<()>(&mut conn)
            .await
            .map_err(backend)?;
        self.dead_lettered_total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn superseded(&self) -> bool {
        let Some((_, watch)) = &self.epoch else {
            return false;
        };
        let read = self.read_epoch.lock().unwrap_or_else(|p| p.into_inner());
        matches!((read.as_deref(), watch.latest()), (Some(r), Some(l)) if r != &*l)
    }

    async fn withdraw(&self) -> Result<Vec<LaneEntry>, LaneError> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = redis::cmd("EVAL")
            .arg(WITHDRAW)
            .arg(2)
            .arg(&self.key)
            .arg(format!("{}:withdrawn", self.key))
            .arg(GROUP)
            .arg(WITHDRAWN)
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        // Withdrawn whatever their run: the controller routes them anew.
        Ok(self
            .deliveries(reply.ids, |_| 0)
            .into_iter()
            .map(|d| d.entry)
            .collect())
    }

    async fn stats(&self) -> Result<LaneStats, LaneError> {
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.key)
            .query_async(&mut conn)
            .await;
        let group = match r {
            Ok(reply) => reply.groups.into_iter().find(|g| g.name == GROUP),
            // No stream yet (or Redis restarted): an empty lane.
            Err(e) if e.code() == Some("ERR") => None,
            Err(e) => return Err(backend(e)),
        };
        let (pending, lag) = group.as_ref().map_or((0, Some(0)), |g| (g.pending, g.lag));
        // Redis cannot always say the lag (entries deleted past the
        // group's last delivered one): count them, at most the lane's
        // capacity (the controller never holds more in it).
        let depth = match (&group, lag) {
            (_, Some(n)) => n,
            (None, None) => 0,
            (Some(g), None) => {
                let waiting: StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(format!("({}", g.last_delivered_id))
                    .arg("+")
                    .arg("COUNT")
                    .arg(self.capacity.max(1))
                    .query_async(&mut conn)
                    .await
                    .map_err(backend)?;
                waiting.ids.len()
            }
        };
        // The oldest entry still waiting is the first after the group's
        // last delivered one; its id says when it was appended.
        let lag_ms = match (&group, depth) {
            (Some(g), 1..) => {
                let first: StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(format!("({}", g.last_delivered_id))
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                    .map_err(backend)?;
                let now = crate::now_ms();
                first
                    .ids
                    .first()
                    .and_then(|e| parse_entry_id(&e.id).ok())
                    .map_or(0, |id| now.saturating_sub(id.ms))
            }
            _ => 0,
        };
        Ok(LaneStats {
            depth: depth as u32,
            pending: pending as u32,
            lag_ms,
            capacity: self.capacity as u32,
            published_total: self.published_total.load(Ordering::Relaxed),
            acked_total: self.acked_total.load(Ordering::Relaxed),
            dead_lettered_total: self.dead_lettered_total.load(Ordering::Relaxed),
        })
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
