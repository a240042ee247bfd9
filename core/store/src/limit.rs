//! The store's own limit: how many tickets a second this store makes
//! durable when nothing else runs. A ticket's life as the controller writes
//! it (admitted and routed in one proposal; started and finished, with its
//! result and its ledger row, in one record), through the same group-commit
//! writer with the same batching and commits in flight, into the same
//! schema, under the same durability and row-level security, with no
//! controller, lanes or bots. The benches run it beside the real thing, in
//! the same run, so `tickets_per_s / store_limit_per_s` says how close the
//! platform comes to what its store allows. It is an upper bound: a
//! ticket's start and finish go in one record here, as a quick attempt's
//! do on a fleet node (which holds a start back for its finish), while the
//! scheduler sometimes writes them in two turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::writer::{Apply, Done, Writer};
use crate::{StoreError, Tenant, TicketUpdate, WriteBatch};
use oshal_kernel::cost::LedgerEntry;
use oshal_kernel::ticket::{BotId, ModelId, NewTicket, TenantId, Ticket, TicketId, TransitionKind};

/// How a limit run is shaped: like the bench it stands beside.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    pub tickets: usize,
    /// Tickets per admitting proposal (one `submit_many` call).
    pub chunk: usize,
    /// Most tickets admitted and not yet finished at once.
    pub window: usize,
    /// Bots the tickets are routed over (round robin).
    pub bots: usize,
}

/// What the run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub tickets: usize,
    pub per_s: f64,
    pub commits: u64,
    pub rows_per_commit: f64,
}

/// Why a limit run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("store limit: {0}")]
    Store(#[from] StoreError),
    #[error("store limit: {0}")]
    Setup(String),
    #[error("store limit: {0} tickets not durable within {1:?}")]
    Stalled(usize, Duration),
}

/// How far a run is: tickets finished, and the first failure.
#[derive(Debug, Default)]
struct Progress {
    finished: usize,
    failed: Option<StoreError>,
}

impl Progress {
    fn fail(&mut self, e: StoreError) {
        self.failed.get_or_insert(e);
    }
}

/// The reasons the controller writes, so the rows are the same size.
const ROUTED: &str = "least-loaded live bot with the skill";
const STARTED: &str = "bot started";
const REPLIED: &str = "model replied";

/// One chunk of tickets admitted and routed, as admission writes them.
fn admit(
    first: usize,
    n: usize,
    bots: &[BotId],
    now: i64,
) -> Result<(Vec<Ticket>, WriteBatch), LimitError> {
    let mut batch = WriteBatch::default();
    let mut tickets = Vec::with_capacity(n);
    for i in first..first + n {
        let valid = NewTicket::chat(format!(
            "benchmark prompt {i}: summarise the state of the fleet"
        ))
        .validate()
        .map_err(|e| LimitError::Setup(e.to_string()))?;
        let (mut t, created) = Ticket::create(TicketId::new(), valid, now);
        batch.transitions.push(created);
        let bot = &bots[i % bots.len()];
        let routed = t
            .apply(TransitionKind::Route, Some(bot), ROUTED, now)
            .map_err(|e| LimitError::Setup(e.to_string()))?;
        batch.transitions.push(routed);
        tickets.push(t);
    }
    batch.new_tickets = tickets.clone();
    Ok((tickets, batch))
}

/// The same tickets started and finished, with their result and their
/// charge, as a scheduler turn records a quick attempt.
fn finish(tickets: Vec<Ticket>, model: &ModelId, now: i64) -> Result<WriteBatch, LimitError> {
    let mut batch = WriteBatch::default();
    for mut t in tickets {
        let bot = t
            .bot
            .clone()
            .ok_or_else(|| LimitError::Setup("a routed ticket has no bot".into()))?;
        let step = |t: &mut Ticket, kind, reason| {
            t.apply(kind, None, reason, now)
                .map_err(|e| LimitError::Setup(e.to_string()))
        };
        batch
            .transitions
            .push(step(&mut t, TransitionKind::Start, STARTED)?);
        batch.updates.push(TicketUpdate::of(&t));
        t.result = Some(Arc::new(serde_json::json!({
            "text": "The fleet is healthy: every lane is draining and no ticket is waiting.",
            "model": model,
            "reported_model": null,
            "usage": {"input_tokens": 12, "output_tokens": 18},
        })));
        batch
            .transitions
            .push(step(&mut t, TransitionKind::Succeed, REPLIED)?);
        batch.updates.push(TicketUpdate::of(&t));
        batch.ledger.push(LedgerEntry {
            ticket: t.id,
            attempt: t.attempts,
            tenant: t.tenant.clone(),
            bot,
            model: model.clone(),
            input_tokens: 12,
            output_tokens: 18,
            cost_nusd: 0,
            unpriced: false,
            price_version: "builtin".into(),
            at_ms: now,
        });
    }
    batch.coalesce();
    Ok(batch)
}

/// Runs `cfg.tickets` lives through a writer over `store`; returns the
/// rate from the first admission to the last finish durable.
pub async fn measure<S: Apply + ?Sized + 'static>(
    store: Arc<S>,
    cfg: &LimitConfig,
    now: impl Fn() -> i64 + Send + Sync + 'static,
) -> Result<Limit, LimitError> {
    if cfg.tickets == 0 || cfg.chunk == 0 || cfg.bots == 0 || cfg.window < cfg.chunk {
        return Err(LimitError::Setup(
            "tickets, chunk and bots at least 1, window at least chunk".into(),
        ));
    }
    let commits = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let (writer, task) = {
        let (commits, rows) = (commits.clone(), rows.clone());
        Writer::spawn(
            store,
            Box::new(move |b: &WriteBatch, _| {
                commits.fetch_add(1, Ordering::Relaxed);
                rows.fetch_add(b.len() as u64, Ordering::Relaxed);
            }),
        )
    };
    // The tenant exists before its first ticket, as after a first admission.
    writer
        .write_and_wait(WriteBatch {
            tenants: vec![Tenant {
                id: TenantId::default_tenant(),
                budget_nusd: None,
                created_at_ms: now(),
            }],
            ..WriteBatch::default()
        })
        .await?;
    let (commits0, rows0) = (
        commits.load(Ordering::Relaxed),
        rows.load(Ordering::Relaxed),
    );
    let bots: Vec<BotId> = (1..=cfg.bots)
        .map(|i| BotId::parse(&format!("limit-bot-{i:03}")))
        .collect::<Result<_, _>>()
        .map_err(|e| LimitError::Setup(e.to_string()))?;
    let model = ModelId::parse("builtin").map_err(|e| LimitError::Setup(e.to_string()))?;
    let now = Arc::new(now);

    // Tickets finished (durable) so far, and the first failure: every
    // callback reports here, and every wait wakes on either.
    let (progress, mut watch) = tokio::sync::watch::channel(Progress::default());
    let progress = Arc::new(progress);
    let within = Duration::from_secs(300);
    let started = Instant::now();
    let mut sent = 0;
    while sent < cfg.tickets {
        let room = |p: &Progress| p.failed.is_some() || sent - p.finished < cfg.window;
        let waited = tokio::time::timeout(within, watch.wait_for(room))
            .await
            .is_ok_and(|r| r.is_ok());
        if let Some(e) = watch.borrow().failed.clone() {
            return Err(e.into());
        }
        if !waited {
            return Err(LimitError::Stalled(sent - watch.borrow().finished, within));
        }
        let n = cfg.chunk.min(cfg.tickets - sent);
        let (tickets, batch) = admit(sent, n, &bots, now())?;
        sent += n;
        // Once admitted (durable), the chunk's lives end in one record. It
        // is sent from a task of its own: this callback runs on the writer.
        let (writer2, model, now, progress) =
            (writer.clone(), model.clone(), now.clone(), progress.clone());
        let done: Done = Box::new(move |r| {
            if let Err(e) = r {
                progress.send_modify(|p| p.fail(e.clone()));
                return;
            }
            tokio::spawn(async move {
                let batch = match finish(tickets, &model, now()) {
                    Ok(b) => b,
                    Err(e) => {
                        progress.send_modify(|p| p.fail(StoreError::Unavailable(e.to_string())));
                        return;
                    }
                };
                let reported = progress.clone();
                let on_durable: Done = Box::new(move |r| match r {
                    Ok(_) => reported.send_modify(|p| p.finished += n),
                    Err(e) => reported.send_modify(|p| p.fail(e.clone())),
                });
                if let Err(e) = writer2.record(batch, Some(on_durable)).await {
                    progress.send_modify(|p| p.fail(e));
                }
            });
        });
        writer.propose(batch, done).await?;
    }
    let all = |p: &Progress| p.failed.is_some() || p.finished >= cfg.tickets;
    let waited = tokio::time::timeout(within, watch.wait_for(all))
        .await
        .is_ok_and(|r| r.is_ok());
    let elapsed = started.elapsed();
    if let Some(e) = watch.borrow().failed.clone() {
        return Err(e.into());
    }
    if !waited {
        return Err(LimitError::Stalled(
            cfg.tickets - watch.borrow().finished,
            within,
        ));
    }
    drop(writer);
    let _ = task.await;
    let commits = commits.load(Ordering::Relaxed) - commits0;
    let rows = rows.load(Ordering::Relaxed) - rows0;
    Ok(Limit {
        tickets: cfg.tickets,
        per_s: cfg.tickets as f64 / elapsed.as_secs_f64(),
        commits,
        rows_per_commit: rows as f64 / commits.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::sqlite::SqliteStore;
    use oshal_kernel::ticket::TicketState;

    /// A limit run writes every life whole: each ticket succeeded with its
    /// four events and its one ledger row, as the controller leaves it.
    #[tokio::test]
    async fn each_life_lands_whole_as_the_controller_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let cfg = LimitConfig {
            tickets: 1_200,
            chunk: 500,
            window: 1_000,
            bots: 3,
        };
        let limit = measure(store.clone(), &cfg, || 1_000).await.unwrap();
        assert_eq!(limit.tickets, 1_200);
        assert!(limit.per_s > 0.0 && limit.commits >= 3, "{limit:?}");
        let counts = store.state_counts(None).await.unwrap();
        assert_eq!(counts, vec![(TicketState::Succeeded, 1_200)]);
        assert_eq!(
            store.cost_summary(None).await.unwrap().total.attempts,
            1_200
        );
        let page = store
            .tickets(&crate::TicketQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let one = store
            .ticket(page.tickets[0].id, None)
            .await
            .unwrap()
            .unwrap();
        let states: Vec<_> = one.events.iter().map(|e| e.to).collect();
        assert_eq!(
            states,
            [
                TicketState::Queued,
                TicketState::Routed,
                TicketState::Running,
                TicketState::Succeeded
            ]
        );
        assert_eq!(one.ledger.len(), 1);
        assert!(one.bot.is_some() && one.result.is_some());
    }

    /// A store that takes the tenant, then refuses every batch for its
    /// data.
    struct Refusing(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Apply for Refusing {
        async fn apply(&self, _: &WriteBatch) -> Result<crate::Applied, StoreError> {
            if self.0.fetch_add(1, Ordering::Relaxed) == 0 {
                return Ok(crate::Applied::default());
            }
            Err(StoreError::Rejected {
                code: "42501".into(),
                message: "permission denied".into(),
            })
        }
    }

    /// A store that refuses the lives ends the run with its refusal, at
    /// once, not a wait for a window that never drains.
    #[tokio::test]
    async fn a_refusing_store_ends_the_run_with_its_refusal() {
        let cfg = LimitConfig {
            tickets: 5_000,
            chunk: 500,
            window: 1_000,
            bots: 2,
        };
        let store = Arc::new(Refusing(Default::default()));
        let ended = tokio::time::timeout(Duration::from_secs(30), measure(store, &cfg, || 0))
            .await
            .expect("the run ends");
        match ended {
            Err(LimitError::Store(StoreError::Rejected { code, .. })) => assert_eq!(code, "42501"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_shape_that_cannot_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let cfg = LimitConfig {
            tickets: 10,
            chunk: 500,
            window: 100,
            bots: 1,
        };
        assert!(matches!(
            measure(store, &cfg, || 0).await,
            Err(LimitError::Setup(_))
        ));
    }
}
