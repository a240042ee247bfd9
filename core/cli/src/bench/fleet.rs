//! `oshal bench --fleet`: fleet mode end to end, measured against raw Redis.
//!
//! Runs a fleet controller on PostgreSQL (a scratch schema, as `oshal_app`)
//! and `nodes` bot nodes of `bots` bots each, all on Redis under a scratch
//! prefix. The nodes run in this process but meet the controller only
//! through Redis, exactly as `oshal node` processes do. Three figures:
//! - throughput: tickets submitted in chunks, durable and priced, until all
//!   finish;
//! - the sequential round trip: one ticket at a time, submit to `succeeded`
//!   (two durable commits and four stream hops), p50 and p99;
//! - the baselines, in the same run: a raw produce → consume → ack → result
//!   loop over the same number of streams, in batches of 100, with nothing
//!   durable and no ticket logic; and the store's limit
//!   (`oshal_store::limit`) on a scratch schema of its own, as `oshal_app`
//!   under row-level security, through the same writer (two commits in
//!   flight) and the same durability (the server's `synchronous_commit`,
//!   printed).
//!
//! And one figure of the surfaces: `bots_view_ms`, how long the fleet's
//! bot list (every bot with its lane's depth and lag: what
//! `GET /api/v1/bots` answers, and what the controller reads each second
//! for its watchers and the viewers' feeds) takes to read, the median of
//! 11 reads once every bot has joined, before the load.

use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::{BenchConfig, BenchError, Verdict, commit_stats, drive, percentile, setup};
use crate::bot::node::{NodeConfig, run_node};
use crate::clock::SystemClock;
use crate::controller::{Controller, ControllerConfig, CoreEvent};
use crate::lane::redis::{self as rl, Keys};
use crate::model::builtin::BuiltinModel;
use crate::store::postgres as pg;
use crate::store::{Applied, ApplyHook, Store, StoreError, WriteBatch};
use crate::ticket::{NewTicket, TicketState, Work};
use oshal_core::mode::{FleetOptions, Platform};

#[derive(Debug, Clone)]
pub struct FleetBenchConfig {
    pub tickets: usize,
    pub nodes: usize,
    pub bots: usize,
    /// A PostgreSQL administrator's URL (to create the scratch schema).
    pub postgres_admin: String,
    pub redis: String,
    /// One-at-a-time tickets for the round-trip figure.
    pub sequential: usize,
}

#[derive(Debug, Clone)]
pub struct FleetBenchReport {
    pub tickets: usize,
    pub ok: usize,
    pub lost: usize,
    pub ledger_rows: i64,
    pub tickets_per_s: f64,
    /// Sequential round trip.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Of the sequential round trip, until the submission is answered.
    pub admit_p50_ms: f64,
    /// Per sequential ticket: commits, and ms spent inside them.
    pub sequential_commits: f64,
    pub sequential_store_ms: f64,
    /// Under load (open loop, queueing included).
    pub loaded_p50_ms: f64,
    pub raw_streams_per_s: f64,
    /// The store's limit, measured in the same run.
    pub store_limit: super::Limit,
    /// The server's `synchronous_commit` and `fsync` during the run.
    pub durability: String,
    pub commits: u64,
    pub rows_per_commit: f64,
    /// Seconds the writer's transactions spent in the store per second of
    /// the run (summed, so above 1 while two overlap).
    pub store_busy: f64,
    /// One read of every bot with its lane figures, the median.
    pub bots_view_ms: f64,
}

impl FleetBenchReport {
    pub fn line(&self) -> String {
        format!(
            "tickets={} ok={} lost={} tickets_per_s={:.0} p50_ms={:.3} p99_ms={:.3} raw_streams_per_s={:.0} ratio={:.2} store_limit_per_s={:.0} store_ratio={:.2}",
            self.tickets,
            self.ok,
            self.lost,
            self.tickets_per_s,
            self.p50_ms,
            self.p99_ms,
            self.raw_streams_per_s,
            self.tickets_per_s / self.raw_streams_per_s,
            self.store_limit.per_s,
            self.tickets_per_s / self.store_limit.per_s
        )
    }
}

pub async fn run_fleet(cfg: FleetBenchConfig) -> Result<FleetBenchReport, BenchError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("bench_{id}");
    let keys = Keys::new(&format!("bench-{id}"));
    pg::setup(&cfg.postgres_admin, &schema)
        .await
        .map_err(setup)?;
    let client = redis::Client::open(cfg.redis.as_str()).map_err(setup)?;
    let conn = rl::manager(&client).await.map_err(setup)?;
    let limit_schema = format!("bench_{id}_limit");
    let result = measure(&cfg, &schema, &limit_schema, &keys, &client, &conn).await;
    // Clean up whatever happened.
    let _ = pg::drop_schema(&cfg.postgres_admin, &schema).await;
    let _ = pg::drop_schema(&cfg.postgres_admin, &limit_schema).await;
    let _ = delete_keys(&conn, &keys).await;
    result
}

async fn measure(
    cfg: &FleetBenchConfig,
    schema: &str,
    limit_schema: &str,
    keys: &Keys,
    client: &redis::Client,
    conn: &ConnectionManager,
) -> Result<FleetBenchReport, BenchError> {
    let streams = cfg.nodes * cfg.bots;
    let raw_streams_per_s = raw_streams(client, conn, keys, streams, cfg.tickets.min(50_000))
        .await
        .map_err(setup)?;

    let app = pg::as_role(&cfg.postgres_admin, pg::APP_ROLE).map_err(setup)?;
    let load = BenchConfig {
        tickets: cfg.tickets,
        bots: streams,
        ..BenchConfig::default()
    };
    let (store_limit, durability) = {
        pg::setup(&cfg.postgres_admin, limit_schema)
            .await
            .map_err(setup)?;
        let store = Arc::new(
            pg::PgStore::connect(&app, limit_schema)
                .await
                .map_err(setup)?,
        );
        let durability = store.durability().await.map_err(setup)?;
        let limit = super::store_limit(store.clone(), &load).await;
        store.close().await;
        (limit?, durability)
    };

    let timed = Arc::new(Timed::default());
    let platform = Platform::fleet(FleetOptions {
        postgres: app,
        schema: schema.to_owned(),
        postgres_admin: None,
        redis: cfg.redis.clone(),
        prefix: keys.prefix().to_owned(),
        controller: ControllerConfig {
            max_live_tickets: 40_000,
            ..ControllerConfig::default()
        },
        connectors: None,
        security: None,
        data_dir: std::env::temp_dir(),
        store_hook: Some(timed.clone()),
    })
    .await
    .map_err(setup)?;
    let controller = platform.controller.clone();
    let stop = CancellationToken::new();
    let mut nodes = Vec::with_capacity(cfg.nodes);
    for n in 1..=cfg.nodes {
        nodes.push(tokio::spawn(run_node(
            NodeConfig {
                redis_url: cfg.redis.clone(),
                prefix: keys.prefix().to_owned(),
                name: format!("node{n}"),
                bots: cfg.bots,
                skills: Work::default_skills(),
                model: Arc::new(BuiltinModel::new()),
                artifacts: None,
            },
            Arc::new(SystemClock),
            stop.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while controller.health().await.bots_live < streams as u32 {
        if Instant::now() > deadline {
            return Err(BenchError::Setup(
                "bots did not register within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut views = Vec::with_capacity(11);
    for _ in 0..11 {
        let t = Instant::now();
        let bots = controller.bots().await;
        views.push(t.elapsed().as_secs_f64() * 1e3);
        if bots.iter().filter(|b| b.lane.is_some()).count() != streams {
            return Err(BenchError::Setup(
                "a bot's lane figures could not be read".into(),
            ));
        }
    }
    views.sort_by(f64::total_cmp);

    let t0 = Instant::now();
    let busy = || timed.busy_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e3;
    let (commits0, busy0) = (commit_stats(&controller).0, busy());
    let (sequential, admitted) = round_trips(&controller, cfg.sequential).await?;
    let sequential_s = t0.elapsed().as_secs_f64();
    let (commits1, _) = commit_stats(&controller);
    let per_ticket = |x: f64| x / cfg.sequential.max(1) as f64;
    let sequential_commits = per_ticket((commits1 - commits0) as f64);
    let sequential_store_ms = per_ticket(busy() - busy0);
    let (elapsed, accepted, mut loaded) = drive(&controller, &load).await?;
    loaded.sort_by(f64::total_cmp);

    let (commits, rows_per_commit) = commit_stats(&controller);
    let store_busy = busy() / 1e3 / (elapsed.as_secs_f64() + sequential_s);
    stop.cancel();
    for n in nodes {
        let _ = n.await;
    }
    controller.shutdown().await;
    let verdict = Verdict::of(platform.store.as_ref()).await?;
    platform.shutdown().await;
    Ok(FleetBenchReport {
        tickets: cfg.tickets,
        ok: verdict.succeeded - cfg.sequential,
        lost: (accepted + cfg.sequential).saturating_sub(verdict.terminal),
        ledger_rows: verdict.ledger_rows - cfg.sequential as i64,
        tickets_per_s: cfg.tickets as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&sequential, 0.50),
        p99_ms: percentile(&sequential, 0.99),
        admit_p50_ms: percentile(&admitted, 0.50),
        sequential_commits,
        sequential_store_ms,
        loaded_p50_ms: percentile(&loaded, 0.50),
        raw_streams_per_s,
        store_limit,
        durability,
        commits,
        rows_per_commit,
        store_busy,
        bots_view_ms: percentile(&views, 0.50),
    })
}

/// One ticket at a time: submit, then wait for its `succeeded` event.
/// Sequential round trips, sorted, in ms: whole, and until the submission is
/// answered (the ticket durable and published to its bot).
async fn round_trips(
    controller: &Controller,
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>), BenchError> {
    let mut events = controller.subscribe();
    let mut out = Vec::with_capacity(n);
    let mut admitted = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let id = controller
            .submit(NewTicket::chat(format!("round trip {i}")))
            .await
            .map_err(setup)?
            .id;
        admitted.push(started.elapsed().as_secs_f64() * 1e3);
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .map_err(|_| BenchError::Stalled(1, Duration::from_secs(10)))?;
            let Ok(CoreEvent::TicketsTransitioned { transitions }) = e else {
                continue;
            };
            if transitions
                .iter()
                .any(|t| t.ticket == id && t.to == TicketState::Succeeded)
            {
                break;
            }
        }
        out.push(started.elapsed().as_secs_f64() * 1e3);
    }
    out.sort_by(f64::total_cmp);
    admitted.sort_by(f64::total_cmp);
    Ok((out, admitted))
}

/// The raw loop: a producer appends `n` entries round-robin over `streams`
/// streams (pipelined, 100 per round trip); one consumer per stream reads
/// them through a group, acks them and appends a result (pipelined); a
/// collector reads the results until all `n` are back.
async fn raw_streams(
    client: &redis::Client,
    conn: &ConnectionManager,
    keys: &Keys,
    streams: usize,
    n: usize,
) -> Result<f64, redis::RedisError> {
    const BATCH: usize = 100;
    let names: Vec<String> = (0..streams)
        .map(|i| format!("{}:raw:{i}", keys.prefix()))
        .collect();
    let results = format!("{}:raw:results", keys.prefix());
    let mut c = conn.clone();
    for s in &names {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await?;
    }
    let stop = CancellationToken::new();
    let mut consumers = Vec::new();
    for s in names.clone() {
        let mut reader = rl::blocking_connection(client)
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        let mut writer = conn.clone();
        let (results, stop) = (results.clone(), stop.clone());
        consumers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let r: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg("c")
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(&s)
                    .arg(">")
                    .query_async(&mut reader)
                    .await;
                let Ok(Some(reply)) = r else { continue };
                let ids: Vec<String> = reply
                    .keys
                    .into_iter()
                    .flat_map(|k| k.ids)
                    .map(|e| e.id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let mut pipe = redis::pipe();
                pipe.cmd("XACK").arg(&s).arg("g").arg(&ids).ignore();
                for id in &ids {
                    pipe.cmd("XADD")
                        .arg(&results)
                        .arg("*")
                        .arg("r")
                        .arg(id)
                        .ignore();
                }
                let _: redis::RedisResult<()> = pipe.query_async(&mut writer).await;
            }
        }));
    }
    let started = Instant::now();
    let producer = {
        let mut c = conn.clone();
        let names = names.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < n {
                let mut pipe = redis::pipe();
                for i in sent..(sent + BATCH).min(n) {
                    pipe.cmd("XADD")
                        .arg(&names[i % names.len()])
                        .arg("*")
                        .arg("e")
                        .arg("benchmark prompt: summarise the state of the fleet")
                        .ignore();
                }
                sent = (sent + BATCH).min(n);
                let _: redis::RedisResult<()> = pipe.query_async(&mut c).await;
            }
        })
    };
    let mut collector = rl::blocking_connection(client)
        .await
        .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
    let mut got = 0;
    let mut last = "0".to_owned();
    while got < n {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&results)
            .arg(&last)
            .query_async(&mut collector)
            .await?;
        let Some(reply) = reply else { break };
        for k in reply.keys {
            for e in k.ids {
                got += 1;
                last = e.id;
            }
        }
    }
    let rate = got as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = producer.await;
    for c in consumers {
        let _ = c.await;
    }
    Ok(rate)
}

async fn delete_keys(conn: &ConnectionManager, keys: &Keys) -> Result<(), redis::RedisError> {
    let mut c = conn.clone();
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", keys.prefix()))
        .query_async(&mut c)
        .await?;
    if !found.is_empty() {
        let _: () = redis::cmd("DEL").arg(found).query_async(&mut c).await?;
    }
    Ok(())
}

/// Times how long the store's writes take (how busy durability keeps the
/// writer).
#[derive(Debug, Default)]
struct Timed {
    busy_us: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl ApplyHook for Timed {
    async fn apply(&self, inner: &dyn Store, batch: &WriteBatch) -> Result<Applied, StoreError> {
        let t = Instant::now();
        let r = inner.apply(batch).await;
        self.busy_us.fetch_add(
            t.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        r
    }
}
