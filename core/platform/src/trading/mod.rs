//! The trading desk's adapter: paper sessions whose signals the bots make.
//!
//! `oshal-trading` is the desk's logic, pure; this module wires it to the
//! platform. A session ([`NewSession`]) names a strategy, an instrument, a
//! seed and a length; its runner ([`session`]) feeds the desk the seeded
//! market and asks the fleet for every signal as a `signal` ticket, so the
//! flow Signal → Risk → Execute → Ledger → Recap runs across the ticket
//! spine: each fill is tied to its order, its signal, the signal's ticket,
//! the bot and model call that made it and what that call cost. With every
//! signal answered, a session's fill hash is the one an in-process backtest
//! of the same seed and strategy prints (`oshal trading backtest`), as
//! NautilusTrader runs one strategy in backtest and live.
//!
//! Sessions are the tenant's: a tenant's token opens, reads, kills and
//! sets the trading state of its own and sees no other. They survive a
//! restart (see [`session`]): the journal in the store holds each one's
//! specification and controls (kill switch pulls, trading states set, a
//! close), and the signal and order tickets are found again by their keys.

mod project;
mod session;
pub mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use oshal_trading::fixed::Price;
use oshal_trading::market;
use oshal_trading::recap::recap_labelled;
use oshal_trading::signal::Strategy;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::controller::{Controller, ControllerError};
use crate::store::{JournalEntry, StoreError};
use crate::ticket::{SignalPayload, TenantId, TicketError, Work};
use project::{disposition, serde_plain, spend, stats, usd, view_of};
use session::{Live, Opened, Runner, Session};
pub use view::{
    Blotter, BotStateView, CloseRequest, EntryStyle, FillView, Flow, KillLevel, KillRequest,
    KillView, MissedSignal, NewSession, OrderView, OrdersQuery, PositionView, PostingView,
    RecapView, ReconciliationView, ReconcilingOrder, RiskCheck, SessionStatus, SessionView,
    SignalView, StateChangeView, StateRequest, StatsView, TradingStateName,
};

/// Why the desk refused or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("desk session {0} not found")]
    NotFound(String),
    #[error("desk session {0} has ended: its market has no more quotes")]
    Ended(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The journal's book of the desk's sessions.
pub(crate) const BOOK: &str = "desk";

/// The most sessions one controller runs at once.
pub const MAX_SESSIONS: usize = 64;

/// The desk's sessions, running and ended.
#[derive(Debug, Clone)]
pub struct Trading {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    controller: Controller,
    sessions: RwLock<BTreeMap<String, Arc<Session>>>,
    cancel: CancellationToken,
}

impl Trading {
    /// Starts the desk: every session in the journal is rebuilt and the
    /// unfinished ones go on. A session whose journal does not parse is
    /// logged and left out; it does not keep the others from starting.
    pub async fn start(controller: Controller) -> Result<Trading, TradingError> {
        let trading = Trading {
            inner: Arc::new(Inner {
                controller: controller.clone(),
                sessions: RwLock::new(BTreeMap::new()),
                cancel: CancellationToken::new(),
            }),
        };
        let journal = controller.store().journal(BOOK, None).await?;
        for (id, entries) in session::by_session(journal) {
            if let Err(e) = trading.resume(&id, &entries) {
                tracing::error!(session = %id, error = %e, "a desk session could not be resumed");
            }
        }
        Ok(trading)
    }

    /// Stops every runner; their sessions resume at the next start.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }

    fn resume(&self, id: &str, entries: &[JournalEntry]) -> Result<(), String> {
        let first = entries
            .first()
            .filter(|e| e.kind == "opened" && e.seq == 0)
            .ok_or("its journal does not begin with `opened`")?;
        let opened: Opened = serde_json::from_str(&first.body).map_err(|e| e.to_string())?;
        let controls = session::controls_in_order(entries)?;
        let next_seq = entries.last().map_or(0, |e| e.seq + 1);
        let (strategy, model) = check(&opened.spec).map_err(|e| e.to_string())?;
        self.launch(
            id.to_owned(),
            first.tenant.clone(),
            opened,
            first.at_ms,
            (strategy, model),
            controls,
            next_seq,
            true,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        id: String,
        tenant: TenantId,
        opened: Opened,
        opened_at_ms: i64,
        (strategy, model): (Strategy, market::PriceModel),
        replay: std::collections::VecDeque<session::ControlEntry>,
        next_seq: u32,
        resumed: bool,
    ) -> Result<Arc<Session>, TradingError> {
        let spec = opened.spec;
        let quotes_total = u64::from(spec.bars) * u64::from(spec.bar_seconds);
        let bar_ms = i64::from(spec.bar_seconds) * 1_000;
        // The desk's configuration is priced off the first quote.
        let first = market::seconds(spec.seed, model.clone(), 1);
        let config = oshal_trading::desk::DeskConfig::paper(
            model.instrument.clone(),
            strategy.clone(),
            bar_ms,
            &first[0],
            spec.seed,
        );
        let config = oshal_trading::desk::DeskConfig {
            entries: match spec.entries {
                EntryStyle::Market => oshal_trading::desk::Entries::Market,
                EntryStyle::Limit => oshal_trading::desk::Entries::Limit,
            },
            ..config
        };
        let desk = oshal_trading::desk::Desk::new(config).map_err(|e| TradingError::Invalid {
            field: "instrument",
            reason: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel(16);
        let session = Arc::new(Session {
            id: id.clone(),
            tenant,
            spec,
            model,
            opened_by: opened.by,
            opened_at_ms,
            quotes_total,
            live: std::sync::Mutex::new(Live {
                desk,
                status: SessionStatus::Running,
                error: None,
                sim_ms: 0,
                last: None,
                waiting_on: None,
                signals: Vec::new(),
                missed: Vec::new(),
                next_seq,
                orders: BTreeMap::new(),
                reconciling: BTreeMap::new(),
                reconciliations: Vec::new(),
                state_changes: Vec::new(),
                closed: None,
            }),
            commands: tx,
        });
        self.inner
            .sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, session.clone());
        let runner = Runner {
            session: session.clone(),
            controller: self.inner.controller.clone(),
            cancel: self.inner.cancel.child_token(),
            replay,
            commands: rx,
            reconcile: resumed.then_some("restart"),
            caught_up: !resumed,
        };
        tokio::spawn(runner.run());
        Ok(session)
    }

    /// Opens a session for `tenant` (already fenced by the caller), by
    /// `by`, and starts it.
    pub async fn open(&self, mut spec: NewSession, by: &str) -> Result<SessionView, TradingError> {
        let (strategy, model) = check(&spec)?;
        let tenant = self
            .inner
            .controller
            .known_tenant(spec.tenant.as_deref())
            .await?;
        spec.tenant = Some(tenant.to_string());
        if let Some(venue) = &spec.venue {
            self.check_venue(venue)?;
            if spec.entries == EntryStyle::Limit {
                return Err(TradingError::Invalid {
                    field: "entries",
                    reason: "a venue elsewhere takes IOC and FOK orders; limit entries rest at the venue in process".into(),
                });
            }
        }
        // The strategy as the desk read it: fields it does not know are
        // dropped, not carried into the journal and every signal ticket.
        spec.strategy = serde_json::to_value(&strategy).expect("a strategy serializes");
        let running = self
            .sessions()
            .iter()
            .filter(|s| s.live().status == SessionStatus::Running)
            .count();
        if running >= MAX_SESSIONS {
            return Err(TradingError::Invalid {
                field: "session",
                reason: format!("{running} sessions are running; the limit is {MAX_SESSIONS}"),
            });
        }
        let id = format!("ds-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let now = self.inner.controller.clock().now_ms();
        let opened = session::Opened {
            spec,
            by: by.to_owned(),
        };
        let entry = JournalEntry {
            book: BOOK.into(),
            session: id.clone(),
            seq: 0,
            tenant: tenant.clone(),
            kind: "opened".into(),
            body: serde_json::to_string(&opened).expect("a session serializes"),
            at_ms: now,
        };
        if self
            .inner
            .controller
            .store()
            .append_journal(&[entry])
            .await?
            == 0
        {
            return Err(TradingError::Conflict(format!("session id {id} is taken")));
        }
        tracing::info!(session = %id, %tenant, by, "desk session opened");
        let session = self.launch(
            id,
            tenant,
            opened,
            now,
            (strategy, model),
            Default::default(),
            1,
            false,
        )?;
        Ok(view_of(&session))
    }

    /// A venue connector a session may send its orders through: enabled,
    /// with the operations the desk uses.
    fn check_venue(&self, id: &str) -> Result<(), TradingError> {
        let invalid = |reason: String| TradingError::Invalid {
            field: "venue",
            reason,
        };
        let connectors = self.inner.controller.connectors().ok_or_else(|| {
            invalid("this controller has no connector runtime to reach a venue through".into())
        })?;
        let manifest = connectors
            .registry()
            .enabled(id)
            .ok_or_else(|| invalid(format!("{id:?} is not an enabled connector")))?;
        for op in [session::SUBMIT_ORDER, session::LIST_ORDERS] {
            if manifest.operation(op).is_none() {
                return Err(invalid(format!(
                    "connector {id:?} has no operation {op:?}: it is not a venue"
                )));
            }
        }
        Ok(())
    }

    fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The session `id`, if `only` (a tenant's token) may see it.
    fn session(&self, id: &str, only: Option<&TenantId>) -> Result<Arc<Session>, TradingError> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|s| only.is_none_or(|t| *t == s.tenant))
            .cloned()
            .ok_or_else(|| TradingError::NotFound(id.to_owned()))
    }

    /// Every session `only` may see, newest first.
    pub fn list(&self, only: Option<&TenantId>) -> Vec<SessionView> {
        let mut out: Vec<SessionView> = self
            .sessions()
            .iter()
            .filter(|s| only.is_none_or(|t| *t == s.tenant))
            .map(|s| view_of(s))
            .collect();
        out.sort_by(|a, b| (b.opened_at_ms, &b.id).cmp(&(a.opened_at_ms, &a.id)));
        out
    }

    pub fn view(&self, id: &str, only: Option<&TenantId>) -> Result<SessionView, TradingError> {
        Ok(view_of(self.session(id, only)?.as_ref()))
    }

    /// The session's signals (with their tickets, checks and
    /// dispositions), the tickets that went unanswered, and its fills.
    pub fn blotter(&self, id: &str, only: Option<&TenantId>) -> Result<Blotter, TradingError> {
        let s = self.session(id, only)?;
        let live = s.live();
        let signals = live
            .desk
            .signals()
            .iter()
            .zip(&live.signals)
            .map(|(r, meta)| {
                let (disposition, code) = disposition(&r.disposition);
                SignalView {
                    id: r.id.clone(),
                    bars: meta.bars,
                    ticket: meta.ticket,
                    bot: meta.bot.clone(),
                    order_tickets: r
                        .order
                        .as_ref()
                        .and_then(|o| live.orders.get(o))
                        .map(|o| o.tickets.clone())
                        .unwrap_or_default(),
                    cost_nusd: meta.cost_nusd,
                    explanation: meta.explanation.clone(),
                    direction: serde_plain(&r.insight.direction),
                    magnitude: r.insight.magnitude,
                    confidence: r.insight.confidence,
                    source: r.insight.source.clone(),
                    reference_price: r.insight.reference_price.to_string(),
                    inputs_hash: r.insight.inputs_hash.clone(),
                    generated_ms: r.insight.generated_ms,
                    order: r.order.clone(),
                    checks: r
                        .checks
                        .iter()
                        .map(|c| RiskCheck {
                            code: c.code.to_owned(),
                            limit: c.limit.clone(),
                            observed: c.observed.clone(),
                            pass: c.pass,
                        })
                        .collect(),
                    disposition,
                    code,
                }
            })
            .collect();
        let precision = s.model.instrument.price_precision;
        let fills = live
            .desk
            .fills()
            .iter()
            .map(|f| FillView {
                ts_ms: f.ts_ms,
                order: f.order.clone(),
                signal: f.signal.clone(),
                trade_id: f.trade_id.clone(),
                side: serde_plain(&f.side),
                quantity: f.quantity.to_string(),
                price: f.price.to_string(),
                commission_usd: usd(f.commission),
                liquidity_side: serde_plain(&f.liquidity_side),
                slippage: Price::from_raw(f.slippage, precision).to_string(),
                realized_usd: usd(f.realized),
            })
            .collect();
        Ok(Blotter {
            signals,
            missed: live.missed.clone(),
            fills,
        })
    }

    /// The session's orders (or the one `order` names) with what the
    /// ledger posted for each.
    pub fn orders(
        &self,
        id: &str,
        only: Option<&TenantId>,
        order: Option<&str>,
    ) -> Result<Vec<OrderView>, TradingError> {
        if let Some(o) = order
            && !(o.len() <= 11
                && o.strip_prefix("O-")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(TradingError::Invalid {
                field: "order",
                reason: format!("{o:?} is not a client order id (O-<n>)"),
            });
        }
        let s = self.session(id, only)?;
        let live = s.live();
        Ok(project::orders(&live, order))
    }

    /// What the session earned, net of fees and of its signals' model
    /// spend, in total and by strategy, day and bot.
    pub fn recap(&self, id: &str, only: Option<&TenantId>) -> Result<RecapView, TradingError> {
        let s = self.session(id, only)?;
        let live = s.live();
        let meta: BTreeMap<&str, &session::SignalMeta> = live
            .desk
            .signals()
            .iter()
            .zip(&live.signals)
            .map(|(r, m)| (r.id.as_str(), m))
            .collect();
        let cost = spend(&live);
        let r = recap_labelled(
            live.desk.signals(),
            live.desk.fills(),
            |id| cost.get(id).copied().unwrap_or(0),
            |id| {
                meta.get(id)
                    .and_then(|m| m.bot.as_ref())
                    .map(|b| b.to_string())
            },
        );
        let day = |d: i64| {
            let days = i32::try_from(d).unwrap_or(0);
            format!("day {}", days + 1)
        };
        Ok(RecapView {
            total: stats("total".into(), &r.total),
            by_strategy: r
                .by_strategy
                .iter()
                .map(|(k, v)| stats(k.clone(), v))
                .collect(),
            by_day: r.by_day.iter().map(|(k, v)| stats(day(*k), v)).collect(),
            by_bot: r
                .by_label
                .iter()
                .map(|(k, v)| stats(k.clone(), v))
                .collect(),
        })
    }

    /// Pulls the kill switch of session `id`, recorded with `by` and the
    /// request's reason; answers once it is journalled and applied.
    pub async fn kill(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: KillRequest,
        by: &str,
    ) -> Result<KillView, TradingError> {
        let reason = checked_reason(&request.reason)?;
        let kill = self
            .control(id, only, session::Action::Kill(request.level), by, reason)
            .await?;
        tracing::warn!(session = %id, %kill, level = ?request.level, by, reason, "kill switch pulled");
        let view = view_of(self.session(id, only)?.as_ref());
        view.kills
            .into_iter()
            .find(|k| k.id == kill)
            .ok_or(TradingError::NotFound(kill))
    }

    /// Sets the trading state of session `id`'s desk, or of one bot's
    /// signals in it, recorded with `by` and the request's reason;
    /// answers once it is journalled and applied.
    pub async fn set_state(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: StateRequest,
        by: &str,
    ) -> Result<StateChangeView, TradingError> {
        let reason = checked_reason(&request.reason)?;
        if let Some(bot) = &request.bot {
            crate::ticket::BotId::parse(bot).map_err(|e| TradingError::Invalid {
                field: "bot",
                reason: e.to_string(),
            })?;
        }
        let action = session::Action::State {
            state: request.state,
            bot: request.bot.clone(),
        };
        let change = self.control(id, only, action, by, reason).await?;
        tracing::warn!(session = %id, %change, state = ?request.state, bot = ?request.bot, by, reason, "trading state set");
        let view = view_of(self.session(id, only)?.as_ref());
        view.state_changes
            .into_iter()
            .find(|c| c.id == change)
            .ok_or(TradingError::NotFound(change))
    }

    /// Closes session `id`: its runner stops where it is, for good (a
    /// restart rebuilds it to that point and no further), recorded with
    /// `by` and the request's reason.
    pub async fn close(
        &self,
        id: &str,
        only: Option<&TenantId>,
        request: CloseRequest,
        by: &str,
    ) -> Result<SessionView, TradingError> {
        let reason = checked_reason(&request.reason)?;
        self.control(id, only, session::Action::Close, by, reason)
            .await?;
        tracing::warn!(session = %id, by, reason, "desk session closed");
        let s = self.session(id, only)?;
        // The runner records the end as it leaves; wait for it.
        for _ in 0..100 {
            if s.live().status != SessionStatus::Running {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(view_of(s.as_ref()))
    }

    /// Hands a control to session `id`'s runner and waits for its id.
    async fn control(
        &self,
        id: &str,
        only: Option<&TenantId>,
        action: session::Action,
        by: &str,
        reason: &str,
    ) -> Result<String, TradingError> {
        let s = self.session(id, only)?;
        let (reply, answer) = oneshot::channel();
        s.commands
            .send(session::Command {
                action,
                by: by.to_owned(),
                reason: reason.to_owned(),
                reply,
            })
            .await
            .map_err(|_| TradingError::Ended(id.to_owned()))?;
        answer
            .await
            .map_err(|_| TradingError::Ended(id.to_owned()))?
    }
}

/// A control's reason: 1 to 500 characters, trimmed, without NUL.
fn checked_reason(reason: &str) -> Result<&str, TradingError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.contains('\0') {
        return Err(TradingError::Invalid {
            field: "reason",
            reason: "must be 1 to 500 characters, without NUL".into(),
        });
    }
    Ok(reason)
}

/// A session's strategy and instrument, checked as a signal ticket's are
/// (the same bounds, the same trading crate's word on the strategy), each
/// refusal naming the session's own field.
fn check(spec: &NewSession) -> Result<(Strategy, market::PriceModel), TradingError> {
    let invalid = |e: TicketError| match e {
        TicketError::Invalid { field, reason } => TradingError::Invalid {
            field: field.strip_prefix("payload.").unwrap_or(field),
            reason,
        },
        other => TradingError::Invalid {
            field: "spec",
            reason: other.to_string(),
        },
    };
    if spec.speed > 86_400 {
        return Err(TradingError::Invalid {
            field: "speed",
            reason: format!("{} is outside 0..=86400", spec.speed),
        });
    }
    let payload = SignalPayload {
        strategy: spec.strategy.clone(),
        instrument: spec.instrument.clone(),
        seed: spec.seed,
        bar_seconds: spec.bar_seconds,
        bars: spec.bars,
    };
    payload.check().map_err(invalid)?;
    crate::bot::signal::check(&Work::Signal(payload)).map_err(invalid)?;
    let strategy: Strategy =
        serde_json::from_value(spec.strategy.clone()).map_err(|e| TradingError::Invalid {
            field: "strategy",
            reason: e.to_string(),
        })?;
    if spec.bars as usize <= strategy.needs() {
        return Err(TradingError::Invalid {
            field: "bars",
            reason: format!(
                "{} reads {} bars; a session of {} closes no bar after them",
                strategy.name(),
                strategy.needs(),
                spec.bars
            ),
        });
    }
    let model = market::listed(&spec.instrument).ok_or_else(|| TradingError::Invalid {
        field: "instrument",
        reason: format!("{:?} is not listed", spec.instrument),
    })?;
    Ok((strategy, model))
}

#[cfg(test)]
mod tests;
