//! `oshal bench`: local mode end to end, measured, with its baseline.
//!
//! Starts a real controller with a pool of built-in-model bots on a fresh
//! SQLite store (durable: WAL, fsync per group commit), submits tickets in
//! chunks the way a busy surface would, and follows the event stream until
//! every ticket is finished. Counts come from the store, not from the events:
//! `lost` is accepted tickets that did not reach a terminal state, and the
//! ledger must hold one row per finished attempt. Two baselines, measured in
//! the same run on the same disk: how fast SQLite takes durable ticket
//! inserts alone, and the store's limit (`oshal_store::limit`): the rows a
//! ticket's whole life writes, through the same writer and batching, with
//! no controller, lanes or bots. `store_ratio` is how close the platform
//! comes to it.

pub mod fleet;
pub mod workflow;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::controller::{Controller, ControllerConfig, CoreEvent};
use crate::store::limit::{self, Limit, LimitConfig};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, WriteBatch};
use crate::ticket::{NewTicket, Ticket, TicketId, TicketState};
use oshal_core::mode::{LocalOptions, Platform};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub tickets: usize,
    pub bots: usize,
    /// Tickets per `submit_many` call.
    pub chunk: usize,
    /// Most tickets submitted and not yet finished at once.
    pub window: usize,
    /// Where the scratch stores go (a fresh folder inside is removed after).
    pub dir: PathBuf,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            tickets: 50_000,
            bots: 26,
            chunk: 500,
            window: 20_000,
            dir: std::env::temp_dir(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub tickets: usize,
    pub ok: usize,
    pub lost: usize,
    pub ledger_rows: i64,
    pub tickets_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub baseline_inserts_per_s: f64,
    pub commits: u64,
    pub rows_per_commit: f64,
    /// The store's limit, measured in the same run.
    pub store_limit: Limit,
}

impl BenchReport {
    /// The summary line `oshal bench` prints last.
    pub fn line(&self) -> String {
        format!(
            "tickets={} ok={} lost={} tickets_per_s={:.0} p50_ms={:.2} p99_ms={:.2} store_limit_per_s={:.0} store_ratio={:.2}",
            self.tickets,
            self.ok,
            self.lost,
            self.tickets_per_s,
            self.p50_ms,
            self.p99_ms,
            self.store_limit.per_s,
            self.tickets_per_s / self.store_limit.per_s
        )
    }
}

/// The store's limit for a bench of `cfg`'s shape, on `store`.
async fn store_limit<S: oshal_core::store::writer::Apply + ?Sized + 'static>(
    store: Arc<S>,
    cfg: &BenchConfig,
) -> Result<Limit, BenchError> {
    let shape = LimitConfig {
        tickets: cfg.tickets,
        chunk: cfg.chunk,
        window: cfg.window,
        bots: cfg.bots,
    };
    limit::measure(store, &shape, || {
        use oshal_core::clock::Clock;
        oshal_core::clock::SystemClock.now_ms()
    })
    .await
    .map_err(setup)
}

/// The store limit on a fresh SQLite store of its own.
async fn sqlite_limit(cfg: &BenchConfig) -> Result<Limit, BenchError> {
    let scratch = Scratch::new(&cfg.dir, "limit")?;
    let store = Arc::new(SqliteStore::open(&scratch.0).await.map_err(setup)?);
    let limit = store_limit(store.clone(), cfg).await;
    store.close().await;
    limit
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench: {0}")]
    Setup(String),
    #[error("bench: {0} tickets did not finish within {1:?}")]
    Stalled(usize, Duration),
}

fn setup<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, name: &str) -> Result<Self, BenchError> {
        let dir = parent.join(format!("oshal-bench-{name}-{}", TicketId::new()));
        std::fs::create_dir_all(&dir).map_err(setup)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Durable inserts of ticket rows alone, in batches of `chunk`: what SQLite
/// on this disk does with no controller around it.
async fn baseline(cfg: &BenchConfig) -> Result<f64, BenchError> {
    let scratch = Scratch::new(&cfg.dir, "baseline")?;
    let store = SqliteStore::open(&scratch.0).await.map_err(setup)?;
    let valid = NewTicket::chat("benchmark prompt: summarise the state of the fleet")
        .validate()
        .map_err(setup)?;
    let n = cfg.tickets.min(50_000);
    let started = Instant::now();
    let mut written = 0;
    while written < n {
        let take = cfg.chunk.min(n - written);
        let batch = WriteBatch {
            new_tickets: (0..take)
                .map(|_| Ticket::create(TicketId::new(), valid.clone(), 0).0)
                .collect(),
            ..WriteBatch::default()
        };
        store.apply(&batch).await.map_err(setup)?;
        written += take;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    Ok(rate)
}

/// Submits `cfg.tickets` in chunks (at most `cfg.window` unfinished) and
/// follows the event stream until all are finished. Returns the elapsed
/// time, how many were accepted, and each ticket's submit-to-finish latency.
async fn drive(
    controller: &Controller,
    cfg: &BenchConfig,
) -> Result<(Duration, usize, Vec<f64>), BenchError> {
    let mut events = controller.subscribe();

    let started = Instant::now();
    let submit_times: Arc<std::sync::Mutex<HashMap<TicketId, Instant>>> = Arc::default();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0usize);
    let submitter = {
        let controller = controller.clone();
        let times = submit_times.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            let mut accepted = 0usize;
            while sent < cfg.tickets {
                // Keep at most `window` tickets in flight.
                while sent - *done_rx.borrow() >= cfg.window {
                    if done_rx.changed().await.is_err() {
                        return accepted;
                    }
                }
                let take = cfg.chunk.min(cfg.tickets - sent);
                let chunk: Vec<NewTicket> = (0..take)
                    .map(|i| {
                        NewTicket::chat(format!(
                            "benchmark prompt {}: summarise the state of the fleet",
                            sent + i
                        ))
                    })
                    .collect();
                let at = Instant::now();
                let results = controller.submit_many(chunk).await;
                let mut times = times.lock().unwrap_or_else(|e| e.into_inner());
                for r in results {
                    match r {
                        Ok(s) => {
                            times.insert(s.id, at);
                            accepted += 1;
                        }
                        Err(e) => tracing::warn!(error = %e, "bench submission refused"),
                    }
                }
                sent += take;
            }
            accepted
        })
    };

    let mut latencies_ms: Vec<f64> = Vec::with_capacity(cfg.tickets);
    let mut finished = 0usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut early: Vec<(TicketId, Instant)> = Vec::new();
    while finished < cfg.tickets {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, events.recv()).await {
            Err(_) => {
                return Err(BenchError::Stalled(
                    cfg.tickets - finished,
                    Duration::from_secs(300),
                ));
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                tracing::warn!(
                    missed = n,
                    "bench fell behind the event stream; latencies will miss some tickets"
                );
                continue;
            }
            Ok(Err(_)) => break,
            Ok(Ok(e)) => e,
        };
        let CoreEvent::TicketsTransitioned { transitions } = event else {
            continue;
        };
        let now = Instant::now();
        let times = submit_times.lock().unwrap_or_else(|e| e.into_inner());
        for t in transitions.iter().filter(|t| t.to.is_terminal()) {
            finished += 1;
            match times.get(&t.ticket) {
                Some(at) => latencies_ms.push(now.duration_since(*at).as_secs_f64() * 1e3),
                // Finished before the submitter recorded its time.
                None => early.push((t.ticket, now)),
            }
        }
        drop(times);
        let _ = done_tx.send(finished);
    }
    let elapsed = started.elapsed();
    let accepted = submitter.await.map_err(setup)?;
    {
        let times = submit_times.lock().unwrap_or_else(|e| e.into_inner());
        for (id, at) in early {
            if let Some(sent) = times.get(&id) {
                latencies_ms.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
            }
        }
    }
    Ok((elapsed, accepted, latencies_ms))
}

/// The `p` quantile of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

pub async fn run_local(cfg: BenchConfig) -> Result<BenchReport, BenchError> {
    let baseline_inserts_per_s = baseline(&cfg).await?;
    let store_limit = sqlite_limit(&cfg).await?;

    let scratch = Scratch::new(&cfg.dir, "run")?;
    let platform = Platform::local(LocalOptions {
        data_dir: scratch.0.clone(),
        bots: cfg.bots,
        controller: ControllerConfig {
            max_live_tickets: cfg.window * 2,
            ..ControllerConfig::default()
        },
        connectors: None,
        security: None,
        ..LocalOptions::embedded(scratch.0.clone())
    })
    .await
    .map_err(setup)?;
    let (elapsed, accepted, mut latencies_ms) = drive(&platform.controller, &cfg).await?;
    platform.controller.shutdown().await;

    let verdict = Verdict::of(platform.store.as_ref()).await?;
    let (commits, rows_per_commit) = commit_stats(&platform.controller);
    platform.shutdown().await;

    latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&latencies_ms, p);
    Ok(BenchReport {
        tickets: cfg.tickets,
        ok: verdict.succeeded,
        lost: accepted.saturating_sub(verdict.terminal),
        ledger_rows: verdict.ledger_rows,
        tickets_per_s: cfg.tickets as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        baseline_inserts_per_s,
        commits,
        rows_per_commit,
        store_limit,
    })
}

/// What the store says happened: the bench's judge (not the events).
struct Verdict {
    succeeded: usize,
    terminal: usize,
    ledger_rows: i64,
}

impl Verdict {
    async fn of(store: &dyn Store) -> Result<Self, BenchError> {
        let counts = store.state_counts(None).await.map_err(setup)?;
        let count = |s: TicketState| {
            counts
                .iter()
                .find(|(st, _)| *st == s)
                .map_or(0, |(_, n)| *n as usize)
        };
        Ok(Self {
            succeeded: count(TicketState::Succeeded),
            terminal: count(TicketState::Succeeded)
                + count(TicketState::Dead)
                + count(TicketState::Cancelled),
            ledger_rows: store
                .cost_summary(None)
                .await
                .map_err(setup)?
                .total
                .attempts,
        })
    }
}

/// Group commits so far, and the rows each carried on average.
fn commit_stats(controller: &Controller) -> (u64, f64) {
    let stats = controller.stats();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let rows = stats
        .committed_rows
        .load(std::sync::atomic::Ordering::Relaxed);
    (commits, rows as f64 / commits.max(1) as f64)
}
