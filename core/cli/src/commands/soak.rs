//! `oshal soak --minutes N`: a fleet under steady load and repeated faults,
//! as real processes, and what it lost.
//!
//! Starts a controller (`oshal serve` on PostgreSQL, a scratch schema) and
//! two nodes (`oshal node`) on a Redis of its own, submits chat tickets at a
//! steady rate (each with an idempotency key, retried with the same key
//! while the fleet refuses), kills a node with SIGKILL and restarts it every
//! minute (a third of the run, if shorter), and restarts Redis, empty, once
//! halfway. At the end it waits for every accepted ticket to finish and
//! prints what was submitted, accepted, succeeded and lost, the ledger
//! checked against double counting, and each process's resident memory at
//! the start (after a warm-up) and the end. It fails when a ticket was lost,
//! a cost was counted twice, or a submission was refused for good.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use oshal_core::api::client::{Client, ClientError};
use oshal_core::api::{ApiError, ErrorKind};
use oshal_core::name::Named;
use oshal_core::store::postgres as pg;
use oshal_core::ticket::{NewTicket, TicketState};

#[derive(clap::Args)]
pub struct Args {
    /// How long to keep the load and the faults going (0 < N ≤ 1440;
    /// fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// A PostgreSQL administrator's URL (creates and drops a scratch schema).
    #[arg(
        long,
        env = "OSHAL_POSTGRES_ADMIN",
        default_value = "postgres://postgres@127.0.0.1/postgres"
    )]
    postgres_admin: String,
    /// Tickets submitted per second (1..=1000).
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Bots per node (1..=64).
    #[arg(long, default_value_t = 4)]
    bots: u32,
}

/// The nodes the soak runs.
const NODES: [&str; 2] = ["soak-a", "soak-b"];
/// How long a process has to say it is up.
const START_WAIT: Duration = Duration::from_secs(60);
/// How long the accepted tickets have to finish once the load stops.
const DRAIN_WAIT: Duration = Duration::from_secs(180);

pub async fn run(args: Args) -> Result<()> {
    if !(args.minutes > 0.0 && args.minutes <= 1440.0) {
        bail!("--minutes {} is outside 0 < N ≤ 1440", args.minutes);
    }
    if !(1..=1000).contains(&args.rate) {
        bail!("--rate {} is outside 1..=1000", args.rate);
    }
    if !(1..=64).contains(&args.bots) {
        bail!("--bots {} is outside 1..=64", args.bots);
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("soak_{id}");
    let logs = std::env::temp_dir().join(format!("oshal-soak-{id}"));
    std::fs::create_dir_all(&logs)?;
    pg::setup(&args.postgres_admin, &schema)
        .await
        .context("creating the scratch schema")?;
    let mut fleet = Fleet::start(&args, &schema, &format!("soak-{id}"), &logs).await;
    let outcome = match &mut fleet {
        Ok(fleet) => soak(&args, fleet, &schema).await,
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    if let Ok(fleet) = fleet {
        fleet.stop().await;
    }
    pg::drop_schema(&args.postgres_admin, &schema).await?;
    let report =
        outcome.with_context(|| format!("the processes' logs are in {}", logs.display()))?;
    println!("{}", report.summary());
    for line in &report.memory {
        println!("{line}");
    }
    if !report.passed() {
        bail!(
            "the soak lost or doubled something; the processes' logs are in {}",
            logs.display()
        );
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

/// What a soak found.
#[derive(Debug, Default)]
struct Report {
    seconds: f64,
    submitted: usize,
    accepted: usize,
    refused: Vec<String>,
    succeeded: usize,
    failed: usize,
    lost: usize,
    ledger_rows: i64,
    /// Ledger rows for an attempt already charged, plus any difference
    /// between the cost summary's attempts and the ledger's rows.
    doubled: i64,
    /// Tickets charged for more than one attempt (a call under way when
    /// its node was killed or Redis restarted, run again): not doubled, but
    /// shown.
    charged_again: i64,
    node_kills: usize,
    redis_restarts: usize,
    memory: Vec<String>,
}

impl Report {
    fn passed(&self) -> bool {
        self.lost == 0 && self.doubled == 0 && self.refused.is_empty()
    }

    fn summary(&self) -> String {
        format!(
            "seconds={:.0} submitted={} accepted={} succeeded={} failed={} lost={} refused={} ledger_rows={} doubled={} charged_again={} node_kills={} redis_restarts={}",
            self.seconds,
            self.submitted,
            self.accepted,
            self.succeeded,
            self.failed,
            self.lost,
            self.refused.len(),
            self.ledger_rows,
            self.doubled,
            self.charged_again,
            self.node_kills,
            self.redis_restarts
        )
    }
}

/// The soak's processes.
struct Fleet {
    exe: PathBuf,
    logs: PathBuf,
    redis: Redis,
    prefix: String,
    bots: u32,
    controller: Child,
    nodes: Vec<(String, Child)>,
    client: Client,
}

impl Fleet {
    async fn start(args: &Args, schema: &str, prefix: &str, logs: &Path) -> Result<Fleet> {
        let exe = std::env::current_exe()?;
        let redis = Redis::start(logs).await?;
        let data = logs.join("controller-data");
        std::fs::create_dir_all(&data)?;
        let app = pg::as_role(&args.postgres_admin, "oshal_app")?;
        let redis_url = redis.url();
        let serve = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--postgres",
            &app,
            "--postgres-schema",
            schema,
            "--redis",
            &redis_url,
            "--redis-prefix",
            prefix,
            "--security-scan-every-min",
            "0",
        ];
        let mut cmd = Command::new(&exe);
        cmd.args(serve).arg("--data-dir").arg(&data);
        cmd.env_remove("OSHAL_API_TOKEN");
        let (controller, line) = spawn(cmd, "listening on ", &logs.join("controller.log")).await?;
        let url = line.trim_start_matches("listening on ").trim().to_owned();
        let token = std::fs::read_to_string(data.join("api-token"))?;
        let client = Client::new(&url, token.trim())?;
        let mut fleet = Fleet {
            exe,
            logs: logs.to_owned(),
            redis,
            prefix: prefix.to_owned(),
            bots: args.bots,
            controller,
            nodes: Vec::new(),
            client,
        };
        for name in NODES {
            let child = fleet.node(name).await?;
            fleet.nodes.push((name.to_owned(), child));
        }
        Ok(fleet)
    }

    async fn node(&self, name: &str) -> Result<Child> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["node", "--name", name, "--redis", &self.redis.url()])
            .args(["--redis-prefix", &self.prefix])
            .args(["--bots", &self.bots.to_string()]);
        let log = self.logs.join(format!("node-{name}.log"));
        Ok(spawn(cmd, "up with", &log).await?.0)
    }

    /// SIGKILL node `i`, then start it again under the same name.
    async fn kill_and_restart_node(&mut self, i: usize) -> Result<()> {
        let (name, child) = &mut self.nodes[i];
        child.start_kill()?;
        child.wait().await?;
        let name = name.clone();
        self.nodes[i].1 = self.node(&name).await?;
        Ok(())
    }

    fn pids(&self) -> Vec<(String, Option<u32>)> {
        let mut out = vec![("controller".to_owned(), self.controller.id())];
        out.extend(
            self.nodes
                .iter()
                .map(|(n, c)| (format!("node {n}"), c.id())),
        );
        out
    }

    async fn stop(mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let _ = self.controller.start_kill();
        let _ = self.controller.wait().await;
        self.redis.stop().await;
    }
}

async fn soak(args: &Args, fleet: &mut Fleet, schema: &str) -> Result<Report> {
    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let kill_every = Duration::from_secs(60).min(run / 3);
    let redis_at = run / 2;
    let warm_up = Duration::from_secs(10).max(run / 10);
    eprintln!(
        "oshal soak: {:.0} s; a controller and {} nodes of {} bots on PostgreSQL (schema {schema}) and Redis on {}; {} tickets/s; a node killed every {:.0} s, Redis restarted at {:.0} s",
        run.as_secs_f64(),
        NODES.len(),
        args.bots,
        fleet.redis.url(),
        args.rate,
        kill_every.as_secs_f64(),
        redis_at.as_secs_f64(),
    );
    let accepted: Arc<Mutex<HashMap<u64, Result<uuid::Uuid, String>>>> = Arc::default();
    let stop_load = CancellationToken::new();
    let load = tokio::spawn(load(
        fleet.client.clone(),
        args.rate,
        accepted.clone(),
        stop_load.clone(),
    ));

    let start = Instant::now();
    let mut report = Report::default();
    let mut rss_start = Vec::new();
    let mut next_kill = kill_every;
    let mut redis_done = false;
    while start.elapsed() < run {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = start.elapsed();
        if rss_start.is_empty() && t >= warm_up {
            rss_start = sample_rss(fleet);
        }
        if !redis_done && t >= redis_at {
            fleet.redis.restart().await?;
            redis_done = true;
            report.redis_restarts += 1;
            eprintln!(
                "  t={:>4.0}s  Redis killed and restarted empty",
                t.as_secs_f64()
            );
        }
        if t >= next_kill && t < run {
            let i = report.node_kills % NODES.len();
            fleet.kill_and_restart_node(i).await?;
            report.node_kills += 1;
            next_kill += kill_every;
            eprintln!(
                "  t={:>4.0}s  node {} killed (SIGKILL) and restarted",
                t.as_secs_f64(),
                NODES[i]
            );
        }
    }
    let rss_end = sample_rss(fleet);
    report.seconds = start.elapsed().as_secs_f64();
    stop_load.cancel();
    report.submitted = load.await?;
    let ids: Vec<uuid::Uuid> = {
        let accepted = accepted.lock().expect("the load's map");
        for r in accepted.values() {
            if let Err(e) = r {
                report.refused.push(e.clone());
            }
        }
        accepted.values().filter_map(|r| r.clone().ok()).collect()
    };
    report.accepted = ids.len();
    for (who, pid, start_kib) in &rss_start {
        let end = rss_end.iter().find(|(w, _, _)| w == who);
        let restarted = match end {
            Some((_, end_pid, _)) if end_pid != pid => {
                " (killed and restarted: the end is a later process)"
            }
            _ => "",
        };
        report
            .memory
            .push(match (start_kib, end.and_then(|(_, _, k)| *k)) {
                (Some(a), Some(b)) => format!(
                    "rss_kib {who}: start={a} end={b} change={:+.1}%{restarted}",
                    (b as f64 - *a as f64) * 100.0 / *a as f64
                ),
                _ => format!("rss_kib {who}: not readable here (/proc)"),
            });
    }
    settle(&args.postgres_admin, schema, &ids, fleet, &mut report).await?;
    Ok(report)
}

/// Waits for every accepted ticket to finish, then counts and checks the
/// ledger.
async fn settle(
    admin: &str,
    schema: &str,
    ids: &[uuid::Uuid],
    fleet: &Fleet,
    report: &mut Report,
) -> Result<()> {
    // The scratch schema first on the search path: the queries name no schema.
    let options: sqlx::postgres::PgConnectOptions = admin.parse()?;
    let db = sqlx::PgPool::connect_with(options.options([("search_path", schema)])).await?;
    let deadline = Instant::now() + DRAIN_WAIT;
    let states: Vec<(uuid::Uuid, String)> = loop {
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, state FROM tickets WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&db)
                .await?;
        let open = rows
            .iter()
            .filter(|(_, s)| !TicketState::parse(s).is_some_and(|s| s.is_terminal()))
            .count();
        if (open == 0 && rows.len() == ids.len()) || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for (_, s) in &states {
        match TicketState::parse(s) {
            Some(TicketState::Succeeded) => report.succeeded += 1,
            Some(s) if s.is_terminal() => report.failed += 1,
            _ => {}
        }
    }
    report.lost = ids.len() - report.succeeded - report.failed;
    let (rows, distinct, again): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (ticket_id, attempt)), \
                (SELECT count(*) FROM (SELECT ticket_id FROM ledger \
                 GROUP BY ticket_id HAVING count(*) > 1) t) \
         FROM ledger",
    )
    .fetch_one(&db)
    .await?;
    let summary = fleet
        .client
        .cost_summary()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    report.ledger_rows = rows;
    report.doubled = (rows - distinct) + (summary.total.attempts - rows).abs();
    report.charged_again = again;
    db.close().await;
    Ok(())
}

/// Submits `rate` tickets a second until `stop`, each retried with its
/// idempotency key while the fleet refuses for now (store or Redis down,
/// overloaded), for at most a minute past the stop. Returns how many were
/// submitted; each one's id (or why it was refused for good) lands in
/// `accepted`.
async fn load(
    client: Client,
    rate: u32,
    accepted: Arc<Mutex<HashMap<u64, Result<uuid::Uuid, String>>>>,
    stop: CancellationToken,
) -> usize {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let give_up = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        n += 1;
        let (client, accepted, give_up) = (client.clone(), accepted.clone(), give_up.clone());
        tasks.spawn(async move {
            let ticket = NewTicket {
                idempotency_key: Some(format!("soak-{n}")),
                ..NewTicket::chat(format!("Soak ticket {n}: answer in one word."))
            };
            let outcome = loop {
                match client.submit(&ticket).await {
                    Ok(s) => break Ok(s.id.0),
                    Err(e) if transient(&e) && !give_up.is_cancelled() => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => break Err(format!("ticket {n}: {e}")),
                }
            };
            accepted.lock().expect("the load's map").insert(n, outcome);
        });
    }
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut deadline, if !give_up.is_cancelled() => give_up.cancel(),
        }
    }
    n as usize
}

/// A refusal that a retry with the same idempotency key may overcome.
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { .. } => true,
        ClientError::Api(ApiError { kind, .. }) => matches!(
            kind,
            ErrorKind::StoreUnavailable | ErrorKind::ShuttingDown | ErrorKind::Overloaded
        ),
        _ => false,
    }
}

/// Each process's pid and resident memory in KiB, where `/proc` tells it.
fn sample_rss(fleet: &Fleet) -> Vec<(String, Option<u32>, Option<u64>)> {
    fleet
        .pids()
        .into_iter()
        .map(|(who, pid)| (who, pid, pid.and_then(rss_kib)))
        .collect()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `cmd` with its stderr in `log` and waits until a stdout line
/// holds `ready`; the rest of its stdout is read and dropped.
async fn spawn(mut cmd: Command, ready: &str, log: &Path) -> Result<(Child, String)> {
    let err = std::fs::File::create(log)?;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting a soak process")?;
    let stdout = child.stdout.take().context("its stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_WAIT, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains(ready) {
                return Ok(line);
            }
        }
        bail!("it exited before saying {ready:?}; see {}", log.display())
    })
    .await
    .with_context(|| format!("no {ready:?} within {START_WAIT:?}; see {}", log.display()))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, line))
}

/// A `redis-server` of the soak's own (nothing on disk), so it can be
/// restarted without touching anyone else's.
struct Redis {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Redis {
    async fn start(logs: &Path) -> Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut redis = Redis {
            port,
            child: None,
            log: logs.join("redis.log"),
        };
        redis.launch().await?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn launch(&mut self) -> Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (Debian: apt-get install redis-server)")?;
        self.child = Some(child);
        oshal_core::lane::redis::wait_until_answering(&self.url(), START_WAIT).await?;
        Ok(())
    }

    /// SIGKILL, then a fresh, empty server on the same port.
    async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.launch().await
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}
