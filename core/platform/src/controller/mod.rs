//! The controller: admission, routing, results, retries, cost capture, events.
//!
//! [`Controller`] is the facade every surface holds (cheap to clone). The
//! mutable state of the fleet — which tickets are live, which bot holds what,
//! each tenant's spend — is owned by one task, the scheduler
//! ([`scheduler`]), and changed only by messages to it. Writes go through the
//! group-commit writer (`store::writer`); events go out on one broadcast
//! channel of [`CoreEvent`]s after they are durable.
//!
//! The flow of one ticket: `submit` validates at the edge → the scheduler
//! admits (tenant, budget, capacity) → the ticket is durable as `queued`
//! before the caller hears back → routed to the least-loaded live bot with the
//! skill, on that bot's own lane → the bot runs it and reports → the scheduler
//! prices usage once (one ledger row per attempt) and records the result →
//! the lane entry is acknowledged only after that is durable.
//!
//! Start with [`Controller::start`].

mod bots;
mod config;
pub mod feed;
pub mod fleet;
mod holds;
pub mod pace;
mod restart;
mod scheduler;
pub mod series;
mod view;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bot::{self, BotContext, BotSpec, CancelRegistry};
use crate::clock::SharedClock;
use crate::cost::{CostError, CostSummary};
use crate::lane::{Lane, local::LocalLane};
use crate::secrets::SecretRules;
use crate::store::writer::Writer;
use crate::store::{
    Store, StoreError, Tenant, TicketEnd, TicketPage, TicketQuery, TicketView, WriteBatch,
};
use crate::ticket::{
    BotId, ModelId, NewTicket, Skill, TenantId, TicketError, TicketId, TicketState, Transition,
    TransitionKind,
};

pub use config::ControllerConfig;
pub use holds::Paused;
pub use restart::{NodeRestart, live_on};
pub use scheduler::{Spend, Submitted};
pub use view::{
    BotView, CoreEvent, Drained, FlowCounts, FlowSurface, GateCounts, Health, NodeDrained, Retired,
    Stats, ToolCounts,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    #[error(transparent)]
    Invalid(#[from] TicketError),
    #[error("ticket {0} not found")]
    NotFound(TicketId),
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    #[error("tenant {tenant} budget exhausted: spent ${spent_usd:.6} of ${budget_usd:.6}")]
    BudgetExhausted {
        tenant: TenantId,
        spent_usd: f64,
        budget_usd: f64,
    },
    #[error("the controller holds {live} unfinished tickets (limit {limit}); retry later")]
    Overloaded { live: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lane(#[from] crate::lane::LaneError),
    #[error(transparent)]
    Cost(#[from] CostError),
    #[error("the controller is shutting down")]
    ShuttingDown,
}

/// Per-bot counters shared between the scheduler (writer) and the facade.
#[derive(Debug, Default)]
pub(crate) struct BotCounters {
    live: std::sync::atomic::AtomicBool,
    in_flight: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    pace: pace::Pace,
    /// A lost bot an operator retired (its node is gone for good): out of
    /// the view until it registers again, as a new bot.
    retired: std::sync::atomic::AtomicBool,
    /// Drained by an operator or a heal: live, given no new work.
    cordoned: std::sync::atomic::AtomicBool,
}

impl BotCounters {
    fn live() -> Arc<Self> {
        let c = Self::default();
        c.live.store(true, Ordering::Relaxed);
        Arc::new(c)
    }
}

/// Every bot the controller has known, live or not; the scheduler updates it.
pub(crate) type SharedBots = Arc<std::sync::RwLock<Vec<BotHandle>>>;

/// What the facade knows of a bot without asking the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct BotHandle {
    id: BotId,
    skills: Vec<Skill>,
    model: ModelId,
    /// The node process hosting the bot (fleet mode).
    node: Option<String>,
    lane: Arc<dyn Lane>,
    counters: Arc<BotCounters>,
}

/// How a controller's bots are wired to it: built by `start` (local pool)
/// or `start_fleet` (Redis).
struct Wiring {
    bots: Vec<BotHandle>,
    cancels: Arc<CancelRegistry>,
    reports: mpsc::Receiver<bot::BotReport>,
    receipt_sink: Option<mpsc::UnboundedSender<Vec<crate::lane::EntryId>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
    connectors: Option<crate::connector::Connectors>,
    /// A fleet's Redis, for orders to its nodes (`restart`).
    fleet: Option<fleet::Redis>,
}

pub use crate::bot::MAX_BOTS;

/// The local bot pool: `bots` bots with the same skills and model.
#[derive(Debug, Clone)]
pub struct LocalPool {
    pub bots: usize,
    pub skills: Vec<Skill>,
    pub model: Arc<dyn crate::model::Model>,
    /// The connector runtime for `tool` tickets; a cancel also revokes the
    /// ticket's tool tokens.
    pub tools: Option<crate::connector::Connectors>,
    /// Where `media` and `build` tickets' files are; `None`: such
    /// tickets fail.
    pub artifacts: Option<Arc<crate::bot::artifacts::ArtifactStore>>,
}

impl LocalPool {
    /// The embedded default: `bots` bots on the built-in offline model,
    /// offering the skill of every kind of work there is.
    pub fn builtin(bots: usize) -> Self {
        Self {
            bots,
            skills: crate::ticket::Work::default_skills(),
            model: Arc::new(crate::model::builtin::BuiltinModel::new()),
            tools: None,
            artifacts: None,
        }
    }
}

/// The controller facade. Cheap to clone; every method is safe to call from
/// any task.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    inbox: mpsc::UnboundedSender<scheduler::Command>,
    store: Arc<dyn Store>,
    writer: Writer,
    events: broadcast::Sender<CoreEvent>,
    bots: SharedBots,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    price_version: String,
    secret_rules: Arc<SecretRules>,
    connectors: Option<crate::connector::Connectors>,
    fleet: Option<fleet::Redis>,
    clock: SharedClock,
    /// One pause or resume at a time, journal write to scheduler.
    holds: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("bots", &self.bot_handles().len())
            .finish()
    }
}

impl Controller {
    /// Starts the controller over `store` with a local bot pool: recovers
    /// every unfinished ticket, then starts routing.
    pub async fn start(
        config: ControllerConfig,
        store: Arc<dyn Store>,
        pool: LocalPool,
        clock: SharedClock,
    ) -> Result<Self, ControllerError> {
        // Fail closed before anything runs: a model with no price is refused.
        config.prices.check(pool.model.id())?;
        let shutdown = CancellationToken::new();
        let cancels = Arc::new(match &pool.tools {
            Some(tools) => {
                let broker = tools.broker().clone();
                CancelRegistry::with_hook(Arc::new(move |ticket| {
                    broker.revoke_ticket(ticket);
                }))
            }
            None => CancelRegistry::default(),
        });
        let (reports_tx, reports_rx) = mpsc::channel(8192);
        let mut bots = Vec::with_capacity(pool.bots);
        let mut tasks = Vec::with_capacity(pool.bots + 2);
        for i in 1..=pool.bots {
            let id = BotId::parse(&format!("bot-{i:02}")).map_err(ControllerError::Invalid)?;
            let lane: Arc<dyn Lane> = Arc::new(LocalLane::new(id.clone(), config.lane_capacity));
            let spec = BotSpec {
                id: id.clone(),
                skills: pool.skills.clone(),
                model: pool.model.clone(),
                tools: pool.tools.clone().map(crate::connector::Tools::Local),
                artifacts: pool.artifacts.clone(),
            };
            bots.push(BotHandle {
                id,
                skills: pool.skills.clone(),
                model: pool.model.id().clone(),
                node: None,
                lane: lane.clone(),
                counters: BotCounters::live(),
            });
            tasks.push(bot::spawn_supervised(BotContext {
                spec,
                lane,
                reports: reports_tx.clone(),
                cancels: cancels.clone(),
                clock: clock.clone(),
                shutdown: shutdown.clone(),
            }));
        }
        drop(reports_tx);
        let wiring = Wiring {
            bots,
            cancels,
            reports: reports_rx,
            receipt_sink: None,
            tasks,
            shutdown,
            connectors: pool.tools,
            fleet: None,
        };
        Self::start_with(config, store, clock, wiring, |_, _| Vec::new()).await
    }

    /// Starts the controller of a fleet: bots live in `oshal node`
    /// processes and register through Redis, each with its own stream;
    /// results come back on the results stream. The store (PostgreSQL in
    /// fleet mode) stays the source of truth.
    pub async fn start_fleet(
        config: ControllerConfig,
        store: Arc<dyn Store>,
        fleet: fleet::FleetConfig,
        clock: SharedClock,
        tools: Option<crate::connector::Connectors>,
    ) -> Result<Self, ControllerError> {
        let shutdown = CancellationToken::new();
        let redis = fleet::Redis::connect(&fleet).await?;
        let (cancel_tx, cancel_rx) = mpsc::unbounded_channel();
        // The tool calls the controller runs for its nodes' bots; a cancel
        // stops the ticket's call here and revokes its tokens at once.
        let inflight = Arc::new(CancelRegistry::default());
        let mut cancels = CancelRegistry::forwarding(cancel_tx);
        if let Some(tools) = &tools {
            let (broker, inflight) = (tools.broker().clone(), inflight.clone());
            cancels = cancels.hooked(Arc::new(move |ticket| {
                broker.revoke_ticket(ticket);
                inflight.cancel_running(ticket);
            }));
        }
        let (reports_tx, reports_rx) = mpsc::channel(8192);
        let (receipt_tx, receipt_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            fleet::spawn_results_reader(redis.clone(), reports_tx, shutdown.clone()).await?,
            fleet::spawn_receipt_acker(redis.clone(), receipt_rx),
            fleet::spawn_cancel_publisher(redis.clone(), cancel_rx),
        ];
        let wiring = Wiring {
            bots: Vec::new(),
            cancels: Arc::new(cancels),
            reports: reports_rx,
            receipt_sink: Some(receipt_tx),
            tasks,
            shutdown: shutdown.clone(),
            connectors: tools.clone(),
            fleet: Some(redis.clone()),
        };
        let prices = config.prices.clone();
        let lane_capacity = config.lane_capacity;
        Self::start_with(
            config,
            store,
            clock,
            wiring,
            move |inbox, tasks_shutdown| {
                let mut tasks = Vec::new();
                if let Some(connectors) = tools {
                    tasks.push(crate::connector::remote::spawn_server(
                        &redis.client,
                        redis.conn.clone(),
                        &redis.keys,
                        connectors,
                        fleet::verify_calls(inbox.clone()),
                        inflight,
                        tasks_shutdown.clone(),
                    ));
                }
                tasks.push(fleet::spawn_registry(
                    redis,
                    prices,
                    lane_capacity,
                    inbox,
                    tasks_shutdown,
                ));
                tasks
            },
        )
        .await
    }

    async fn start_with(
        config: ControllerConfig,
        store: Arc<dyn Store>,
        clock: SharedClock,
        wiring: Wiring,
        more_tasks: impl FnOnce(
            mpsc::UnboundedSender<scheduler::Command>,
            CancellationToken,
        ) -> Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<Self, ControllerError> {
        let (events, _) = broadcast::channel(1024);
        let stats = Arc::new(Stats::started_at(clock.now_ms()));
        let Wiring {
            bots,
            cancels,
            reports,
            receipt_sink,
            mut tasks,
            shutdown,
            connectors,
            fleet,
        } = wiring;

        let on_commit = {
            let events = events.clone();
            let stats = stats.clone();
            let series_clock = clock.clone();
            Box::new(move |batch: &WriteBatch, applied: &crate::store::Applied| {
                // Creation events of refused duplicates were not written.
                let refused: std::collections::HashSet<_> =
                    applied.duplicates.iter().map(|d| d.0).collect();
                let written: Vec<&Transition> = batch
                    .transitions
                    .iter()
                    .filter(|t| !refused.contains(&t.ticket))
                    .collect();
                stats.count_commit(batch, &written, series_clock.now_ms());
                if events.receiver_count() == 0 {
                    return;
                }
                if !written.is_empty() {
                    let transitions = written.into_iter().cloned().collect();
                    let _ = events.send(CoreEvent::TicketsTransitioned { transitions });
                }
                if !batch.ledger.is_empty() {
                    let _ = events.send(CoreEvent::CostCaptured {
                        entries: batch.ledger.clone(),
                    });
                }
            }) as crate::store::writer::OnCommit
        };
        // The writer task ends by itself once every `Writer` handle is dropped.
        let (writer, writer_task) = Writer::spawn(store.clone(), on_commit);
        drop(writer_task);

        let shared_bots: SharedBots = Arc::new(std::sync::RwLock::new(bots));
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let price_version = config.prices.version().to_owned();
        let secret_rules = config.secret_rules.clone();
        let state = scheduler::Scheduler::recover(
            config,
            store.clone(),
            writer.clone(),
            shared_bots.clone(),
            cancels,
            clock.clone(),
            stats.clone(),
            inbox.clone(),
            receipt_sink,
            events.clone(),
        )
        .await?;
        tasks.push(tokio::spawn(state.run(inbox_rx, reports, shutdown.clone())));
        tasks.extend(more_tasks(inbox.clone(), shutdown.clone()));

        let controller = Self {
            inner: Arc::new(Inner {
                inbox,
                store,
                writer,
                events,
                bots: shared_bots,
                stats,
                shutdown,
                tasks: std::sync::Mutex::new(tasks),
                price_version,
                secret_rules,
                connectors,
                fleet,
                clock,
                holds: tokio::sync::Mutex::new(()),
            }),
        };
        controller.spawn_bot_feed();
        Ok(controller)
    }

    fn bot_handles(&self) -> Vec<BotHandle> {
        self.inner
            .bots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes `BotsUpdated` about once a second while anyone listens.
    fn spawn_bot_feed(&self) {
        let this = self.clone();
        let shutdown = self.inner.shutdown.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if this.inner.events.receiver_count() > 0 {
                    let bots = this.bots().await;
                    let _ = this.inner.events.send(CoreEvent::BotsUpdated { bots });
                }
            }
        });
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> scheduler::Command,
    ) -> Result<T, ControllerError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .inbox
            .send(make(tx))
            .map_err(|_| ControllerError::ShuttingDown)?;
        rx.await.map_err(|_| ControllerError::ShuttingDown)
    }

    /// Submits one ticket; returns once it is durable (or refused, having
    /// changed nothing).
    pub async fn submit(&self, ticket: NewTicket) -> Result<Submitted, ControllerError> {
        self.submit_many(vec![ticket])
            .await
            .pop()
            .unwrap_or(Err(ControllerError::ShuttingDown))
    }

    /// Submits several tickets in one durable write. Each gets its own result.
    pub async fn submit_many(
        &self,
        tickets: Vec<NewTicket>,
    ) -> Vec<Result<Submitted, ControllerError>> {
        let mut results: Vec<Option<Result<Submitted, ControllerError>>> =
            Vec::with_capacity(tickets.len());
        let mut valid = Vec::with_capacity(tickets.len());
        for t in tickets {
            let checked = t.validate().and_then(|v| {
                self.inner.secret_rules.guard(&v.work)?;
                crate::bot::signal::check(&v.work)?;
                Ok(v)
            });
            match checked {
                Ok(v) => {
                    valid.push((results.len(), v));
                    results.push(None);
                }
                Err(e) => {
                    self.inner.stats.refused.fetch_add(1, Ordering::Relaxed);
                    results.push(Some(Err(e.into())));
                }
            }
        }
        if !valid.is_empty() {
            let (slots, valid): (Vec<usize>, Vec<_>) = valid.into_iter().unzip();
            let admitted = match self
                .ask(|reply| scheduler::Command::Submit {
                    tickets: valid,
                    reply,
                })
                .await
            {
                Ok(r) => r,
                Err(_) => slots
                    .iter()
                    .map(|_| Err(ControllerError::ShuttingDown))
                    .collect(),
            };
            for (slot, r) in slots.into_iter().zip(admitted) {
                match &r {
                    Ok(_) => self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed),
                    Err(_) => self.inner.stats.refused.fetch_add(1, Ordering::Relaxed),
                };
                results[slot] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(ControllerError::ShuttingDown)))
            .collect()
    }

    /// A ticket in full, with why it is waiting if it is not finished.
    pub async fn ticket(&self, id: TicketId) -> Result<TicketView, ControllerError> {
        self.ticket_of(id, None).await
    }

    /// [`Self::ticket`], of `only`'s tickets if given: another tenant's is
    /// not found (on PostgreSQL the read runs as `only`, under RLS).
    pub async fn ticket_of(
        &self,
        id: TicketId,
        only: Option<&TenantId>,
    ) -> Result<TicketView, ControllerError> {
        let mut view = self
            .inner
            .store
            .ticket(id, only)
            .await?
            .ok_or(ControllerError::NotFound(id))?;
        if !view.state.is_terminal() {
            view.waiting = self
                .ask(|reply| scheduler::Command::Waiting { id, reply })
                .await?
                .map(Into::into);
        }
        Ok(view)
    }

    /// Many tickets at once, read in a few statements (those not found,
    /// or not `only`'s, left out), in no set order. Unlike
    /// [`Self::ticket`], a ticket that has not ended has `waiting` empty.
    pub async fn tickets_by_id(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketView>, ControllerError> {
        Ok(self.inner.store.tickets_by_id(ids, only).await?)
    }

    /// What many tickets' ends tell, read narrowly (see [`TicketEnd`]).
    pub async fn ticket_ends(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketEnd>, ControllerError> {
        Ok(self.inner.store.ticket_ends(ids, only).await?)
    }

    pub async fn tickets(&self, query: &TicketQuery) -> Result<TicketPage, ControllerError> {
        Ok(self.inner.store.tickets(query).await?)
    }

    /// Cancels a ticket: at once if queued, and by aborting the bot's model
    /// call if it is running. Cancelling a finished ticket is refused.
    pub async fn cancel(&self, id: TicketId) -> Result<TicketView, ControllerError> {
        let live = self
            .ask(|reply| scheduler::Command::Cancel { id, reply })
            .await?;
        self.view_after(id, live, TransitionKind::Cancel).await
    }

    /// Releases a ticket held for approval.
    pub async fn approve(&self, id: TicketId) -> Result<TicketView, ControllerError> {
        let live = self
            .ask(|reply| scheduler::Command::Approve { id, reply })
            .await?;
        self.view_after(id, live, TransitionKind::Approve).await
    }

    /// Turns the scheduler's answer to a command on one ticket into the
    /// ticket's view, or the right error for a ticket it does not hold.
    async fn view_after(
        &self,
        id: TicketId,
        answer: scheduler::Answer,
        event: TransitionKind,
    ) -> Result<TicketView, ControllerError> {
        match answer {
            scheduler::Answer::Done => self.ticket(id).await,
            scheduler::Answer::Refused(e) => Err(e.into()),
            scheduler::Answer::NotLive => match self.inner.store.ticket(id, None).await? {
                None => Err(ControllerError::NotFound(id)),
                Some(t) => Err(TicketError::IllegalTransition {
                    id,
                    from: t.state,
                    event,
                }
                .into()),
            },
        }
    }

    pub async fn cost_summary(&self) -> Result<CostSummary, ControllerError> {
        self.cost_summary_of(None).await
    }

    /// Spend, of `only` alone if given.
    pub async fn cost_summary_of(
        &self,
        only: Option<&TenantId>,
    ) -> Result<CostSummary, ControllerError> {
        let mut s = self.inner.store.cost_summary(only).await?;
        s.price_version = self.inner.price_version.clone();
        Ok(s)
    }

    pub async fn state_counts(&self) -> Result<Vec<(TicketState, i64)>, ControllerError> {
        self.state_counts_of(None).await
    }

    /// Tickets per state, of `only` alone if given.
    pub async fn state_counts_of(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<(TicketState, i64)>, ControllerError> {
        Ok(self.inner.store.state_counts(only).await?)
    }

    /// The store, for the API's token directory (`api::tokens`) and the
    /// walk-through's clear (`api::clear`).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock every timestamp of this controller comes from.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, ControllerError> {
        Ok(self.inner.store.tenants().await?)
    }

    /// The tenant a request names (`default` if none), refused if it is
    /// not a tenant's name or not a known one (`default` always is).
    pub async fn known_tenant(&self, asked: Option<&str>) -> Result<TenantId, ControllerError> {
        let tenant = match asked {
            None => TenantId::default_tenant(),
            Some(t) => TenantId::parse(t).map_err(ControllerError::Invalid)?,
        };
        if tenant != TenantId::default_tenant()
            && !self.tenants().await?.iter().any(|t| t.id == tenant)
        {
            return Err(ControllerError::UnknownTenant(tenant));
        }
        Ok(tenant)
    }

    /// Stored ticket text for the secret scan (see [`Store::texts`]).
    pub async fn stored_texts(
        &self,
        after: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<crate::store::StoredText>, ControllerError> {
        Ok(self.inner.store.texts(after, limit).await?)
    }

    /// Every tenant's budget and what it has spent, as the scheduler holds
    /// them (what its admissions refuse by), without reading the ledger.
    pub async fn spend(&self) -> Result<Vec<Spend>, ControllerError> {
        self.ask(|reply| scheduler::Command::Spend { reply }).await
    }

    /// Sets a tenant's budget (creating the tenant if needed); `None` lifts it.
    pub async fn set_budget(
        &self,
        tenant: TenantId,
        budget_nusd: Option<i64>,
    ) -> Result<Tenant, ControllerError> {
        if let Some(b) = budget_nusd
            && b < 0
        {
            return Err(TicketError::Invalid {
                field: "budget_usd",
                reason: "must not be negative".into(),
            }
            .into());
        }
        self.ask(|reply| scheduler::Command::SetBudget {
            tenant,
            budget_nusd,
            reply,
        })
        .await?
    }

    /// The controller's health, with the store's error in `detail` (which
    /// a surface shows only to a caller holding the token).
    pub async fn health(&self) -> Health {
        let (store, detail) = match self.inner.store.ping().await {
            _ if self.inner.shutdown.is_cancelled() => ("shutting_down", None),
            Ok(()) => ("ok", None),
            Err(e) => ("unavailable", Some(e.to_string())),
        };
        Health {
            ok: store == "ok",
            store: store.to_owned(),
            detail,
            bots_live: if self.inner.shutdown.is_cancelled() {
                0
            } else {
                self.bot_handles()
                    .iter()
                    .filter(|b| b.counters.live.load(Ordering::Relaxed))
                    .count() as u32
            },
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CoreEvent> {
        self.inner.events.subscribe()
    }

    /// What counts as a secret here (see [`ControllerConfig::secret_rules`]).
    pub fn secret_rules(&self) -> Arc<SecretRules> {
        self.inner.secret_rules.clone()
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The connectors (gate, runtime, broker) of this controller's bots, if
    /// it has any (a local pool started with them).
    pub fn connectors(&self) -> Option<&crate::connector::Connectors> {
        self.inner.connectors.as_ref()
    }

    /// Stops bots and the scheduler, then drains the writer: everything
    /// already recorded is durable when this returns. Unfinished tickets stay
    /// in the store and are recovered on the next start.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let _ = self.inner.inbox.send(scheduler::Command::Shutdown);
        let tasks: Vec<_> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        // Wait for the writer to finish what is queued: a write-and-wait of an
        // empty batch lands after everything sent before it.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.inner.writer.write_and_wait(WriteBatch::default()),
        )
        .await;
    }
}

#[cfg(test)]
mod tests;
