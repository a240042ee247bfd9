//! One paper session running: the desk (`oshal_trading::desk`) fed the
//! session's seeded quotes, its signals made by the bots.
//!
//! At each bar the desk closes with a full window, the runner submits a
//! `signal` ticket for the session's first `bars` bars (idempotency key
//! `desk/<session>/<bars>`), waits for the bot's answer and hands the
//! insight to the desk, which checks, reserves, sends and fills as it does
//! in a backtest. Without pacing the runner submits a few bars ahead, so
//! the fleet computes signals in parallel while the desk takes them in
//! order. With pacing (`speed`), quote `t` is taken `t / speed` after the
//! session opened.
//!
//! Nothing the runner holds is the only copy. The session's specification
//! and every control (a pull of the kill switch, a trading state set) are
//! in the store's journal, each with the point of the quote stream it was
//! applied at ([`control`]); the signals are tickets, found again by their
//! keys. After a restart the runner starts over: the same quotes, the same
//! tickets' answers and the same controls at the same points give the same
//! desk, order for order and fill for fill, without a ticket submitted
//! twice or a model asked again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oshal_trading::desk::Desk;
use oshal_trading::market::{self, PriceModel, Quote};
use oshal_trading::signal::Insight;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod control;
mod venue;

use control::Phase;
pub(super) use control::{Action, Command, ControlEntry, controls_in_order};
pub(super) use venue::{LIST_ORDERS, SUBMIT_ORDER};

use super::TradingError;
use super::view::{MissedSignal, NewSession, ReconciliationView, SessionStatus, StateChangeView};
use crate::clock::UnixMs;
use crate::controller::{Controller, ControllerError, CoreEvent};
use crate::store::{JournalEntry, TicketView};
use crate::ticket::{BotId, NewTicket, TenantId, TicketId, TicketState};

/// Bars the runner asks for ahead of the desk when it is not paced.
const AHEAD: u64 = 16;
/// How often a wait for a ticket reads it again without being told.
const POLL: Duration = Duration::from_millis(500);

/// What the journal's `opened` entry holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Opened {
    pub spec: NewSession,
    pub by: String,
}

/// A signal's ticket and what its answer carried besides the insight.
#[derive(Debug, Clone)]
pub(super) struct SignalMeta {
    pub bars: u64,
    pub ticket: TicketId,
    pub bot: Option<BotId>,
    pub cost_nusd: i64,
    pub explanation: Option<String>,
}

/// What the runner changes and the views read.
#[derive(Debug)]
pub(super) struct Live {
    pub desk: Desk,
    pub status: SessionStatus,
    pub error: Option<String>,
    pub sim_ms: i64,
    /// The last quote taken.
    pub last: Option<Quote>,
    pub waiting_on: Option<TicketId>,
    /// One per signal the desk holds, in the same order.
    pub signals: Vec<SignalMeta>,
    pub missed: Vec<MissedSignal>,
    /// The journal's next number.
    pub next_seq: u32,
    /// Orders sent to a venue elsewhere: their `tool` tickets and what
    /// those cost, by client order id.
    pub orders: BTreeMap<String, OrderMeta>,
    /// Orders at a venue elsewhere whose report is not back, with why the
    /// last ticket brought none (their tickets are in `orders`).
    pub reconciling: BTreeMap<String, Option<String>>,
    pub reconciliations: Vec<ReconciliationView>,
    /// Every setting of the trading state, the desk's or a bot's.
    pub state_changes: Vec<StateChangeView>,
    /// Who closed the session and why, once it is closed.
    pub closed: Option<String>,
}

/// The tickets that took an order to a venue elsewhere.
#[derive(Debug, Clone, Default)]
pub(super) struct OrderMeta {
    pub tickets: Vec<TicketId>,
    pub cost_nusd: i64,
}

/// A session: what it was opened with and its running state.
#[derive(Debug)]
pub(super) struct Session {
    pub id: String,
    pub tenant: TenantId,
    pub spec: NewSession,
    pub model: PriceModel,
    pub opened_by: String,
    pub opened_at_ms: UnixMs,
    pub quotes_total: u64,
    pub live: Mutex<Live>,
    pub commands: mpsc::Sender<Command>,
}

impl Session {
    pub fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ticket idempotency key of the signal for the first `bars` bars.
    pub fn key(&self, bars: u64) -> String {
        format!("desk/{}/{bars}", self.id)
    }
}

/// Why the runner stopped early.
pub(super) enum Stop {
    /// The platform is shutting down: the session resumes at the next start.
    Cancelled,
    /// The operator closed it.
    Closed,
    Failed(String),
}

impl From<String> for Stop {
    fn from(e: String) -> Self {
        Stop::Failed(e)
    }
}

/// What the runner works with.
pub(super) struct Runner {
    pub session: Arc<Session>,
    pub controller: Controller,
    pub cancel: CancellationToken,
    /// Controls from the journal not yet applied, in the order they fall.
    pub replay: VecDeque<ControlEntry>,
    pub commands: mpsc::Receiver<Command>,
    /// A comparison with a venue elsewhere is due, and why: after a
    /// restart (once caught up) or an order that took more than one ticket.
    pub reconcile: Option<&'static str>,
    /// The runner is past where it was before a restart: it has made a
    /// ticket the session had not made before, or (paced) it waits on the
    /// wall clock.
    pub caught_up: bool,
}

impl Runner {
    /// Runs the session to its end (or until the platform stops) and
    /// records how it ended.
    pub async fn run(mut self) {
        let outcome = self.drive().await;
        let mut live = self.session.live();
        live.waiting_on = None;
        match outcome {
            Ok(()) => live.status = SessionStatus::Finished,
            Err(Stop::Cancelled) => {}
            Err(Stop::Closed) => live.status = SessionStatus::Closed,
            Err(Stop::Failed(e)) => {
                tracing::warn!(session = %self.session.id, error = %e, "a desk session stopped");
                live.status = SessionStatus::Failed;
                live.error = Some(e);
            }
        }
        drop(live);
        // Whoever pulls the switch on an ended session hears so.
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            let _ = cmd
                .reply
                .send(Err(TradingError::Ended(self.session.id.clone())));
        }
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        let s = self.session.clone();
        let (seed, model, steps) = (s.spec.seed, s.model.clone(), s.quotes_total as usize);
        let quotes = tokio::task::spawn_blocking(move || market::seconds(seed, model, steps))
            .await
            .map_err(|e| format!("the session's quotes could not be drawn: {e}"))?;
        let last_bar = u64::from(s.spec.bars) - 1;
        let ahead = if s.spec.speed == 0 { AHEAD } else { 0 };
        // The signal tickets asked for and not yet acted on, and the first
        // bar not yet asked for.
        let mut tickets: BTreeMap<u64, (TicketId, bool)> = BTreeMap::new();
        let mut asked = 0u64;
        let mut events = self.controller.subscribe();
        for q in &quotes {
            let n = s.live().desk.events();
            self.apply_replayed((n, Phase::Between.rank()))?;
            self.take_commands(Phase::Between).await?;
            self.pace(q.ts_ms).await?;
            if let Some(venue) = s.spec.venue.as_deref() {
                if self.caught_up
                    && let Some(reason) = self.reconcile.take()
                {
                    self.reconcile(venue, reason, &mut events).await?;
                }
                let due = s.live().desk.due(q);
                for (k, order) in (0u32..).zip(due) {
                    self.apply_replayed((n, Phase::AtVenue(k).rank()))?;
                    self.execute_elsewhere(venue, order, k, &mut events).await?;
                }
            }
            let close = {
                let mut live = s.live();
                let close = live.desk.advance(q).map_err(|e| e.to_string())?;
                live.sim_ms = q.ts_ms;
                live.last = Some(q.clone());
                close
            };
            let Some(close) = close else { continue };
            let m = s.live().desk.events();
            self.apply_replayed((m, Phase::Pending.rank()))?;
            let upto = (close.bars + ahead).min(last_bar);
            for bars in close.bars.max(asked)..=upto {
                tickets.insert(bars, self.submit(bars).await?);
            }
            asked = asked.max(upto + 1);
            let (ticket, new) = tickets.remove(&close.bars).expect("submitted above");
            self.caught_up |= new;
            s.live().waiting_on = Some(ticket);
            let view = self.wait(ticket, Phase::Pending, &mut events).await?;
            let mut live = s.live();
            live.waiting_on = None;
            match read_answer(&view) {
                Ok((insight, explanation)) => {
                    let bot = view.bot.as_ref().map(|b| b.as_str());
                    live.desk
                        .act_by(insight, bot, close.at_ms)
                        .map_err(|e| format!("signal ticket {ticket}: {e}"))?;
                    live.signals.push(SignalMeta {
                        bars: close.bars,
                        ticket,
                        bot: view.bot.clone(),
                        cost_nusd: view.cost.cost_nusd,
                        explanation,
                    });
                }
                Err(error) => live.missed.push(MissedSignal {
                    bars: close.bars,
                    ticket,
                    error,
                }),
            }
        }
        // Controls journalled after the last quote (during the last wait).
        self.apply_replayed((u64::MAX, u64::MAX))?;
        if let (Some(venue), Some(reason)) = (s.spec.venue.as_deref(), self.reconcile.take()) {
            self.reconcile(venue, reason, &mut events).await?;
            self.apply_replayed((u64::MAX, u64::MAX))?;
        }
        Ok(())
    }

    /// Waits until quote time `ts_ms` is due on the wall clock (paced
    /// sessions only), taking kill switch pulls meanwhile.
    async fn pace(&mut self, ts_ms: i64) -> Result<(), Stop> {
        let speed = i64::from(self.session.spec.speed);
        if speed == 0 {
            return Ok(());
        }
        loop {
            let due = self.session.opened_at_ms + ts_ms / speed;
            let wait = due - self.controller.clock().now_ms();
            if wait <= 0 {
                return Ok(());
            }
            // Waiting on the wall clock: a rebuilt session is where it was.
            self.caught_up = true;
            let takes = self.takes_controls();
            let sleep = tokio::time::sleep(Duration::from_millis(wait as u64));
            let woke = tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                Some(cmd) = self.commands.recv(), if takes => Some(cmd),
                () = sleep => None,
            };
            match woke {
                Some(cmd) => self.apply(cmd, Phase::Between).await?,
                None => return Ok(()),
            }
        }
    }

    /// Submits the signal ticket for the first `bars` bars (or finds the
    /// one submitted before a restart, by its key); true if it is new.
    async fn submit(&mut self, bars: u64) -> Result<(TicketId, bool), Stop> {
        let s = &self.session;
        let payload = serde_json::json!({
            "strategy": s.spec.strategy,
            "instrument": s.spec.instrument,
            "seed": s.spec.seed,
            "bar_seconds": s.spec.bar_seconds,
            "bars": bars,
        });
        let key = s.key(bars);
        self.submit_ticket(
            "signal",
            payload,
            key,
            &format!("signal ticket for bar {bars}"),
        )
        .await
    }

    /// Submits a ticket of the session's tenant under idempotency key
    /// `key` (or finds the one submitted before, by it), waiting while the
    /// controller is overloaded; true if it is new.
    pub(super) async fn submit_ticket(
        &mut self,
        kind: &str,
        payload: serde_json::Value,
        key: String,
        what: &str,
    ) -> Result<(TicketId, bool), Stop> {
        let s = &self.session;
        let mut backoff = Duration::from_millis(100);
        loop {
            let ticket = NewTicket {
                kind: kind.into(),
                payload: payload.clone(),
                tenant: Some(s.tenant.to_string()),
                idempotency_key: Some(key.clone()),
                ..NewTicket::default()
            };
            match self.controller.submit(ticket).await {
                Ok(done) => return Ok((done.id, !done.duplicate)),
                Err(ControllerError::ShuttingDown) => return Err(Stop::Cancelled),
                Err(e @ (ControllerError::Overloaded { .. } | ControllerError::Store(_))) => {
                    tracing::debug!(session = %s.id, error = %e, "{what} waits to be admitted");
                }
                Err(e) => return Err(Stop::Failed(format!("{what}: {e}"))),
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Waits for `ticket` to end, taking kill switch pulls meanwhile (they
    /// fall at `phase`).
    pub(super) async fn wait(
        &mut self,
        ticket: TicketId,
        phase: Phase,
        events: &mut tokio::sync::broadcast::Receiver<CoreEvent>,
    ) -> Result<TicketView, Stop> {
        loop {
            match self.controller.ticket(ticket).await {
                Ok(view) if view.state.is_terminal() => return Ok(view),
                Ok(_) => {}
                Err(ControllerError::ShuttingDown) => return Err(Stop::Cancelled),
                Err(e @ ControllerError::Store(_)) => {
                    tracing::debug!(%ticket, error = %e, "a signal ticket could not be read; retrying");
                }
                Err(e) => return Err(Stop::Failed(format!("signal ticket {ticket}: {e}"))),
            }
            let deadline = tokio::time::sleep(POLL);
            tokio::pin!(deadline);
            loop {
                let takes = self.takes_controls();
                let woke = tokio::select! {
                    () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                    Some(cmd) = self.commands.recv(), if takes => Some(cmd),
                    () = &mut deadline => break,
                    event = events.recv() => match event {
                        Ok(CoreEvent::TicketsTransitioned { transitions })
                            if transitions.iter().any(|t| t.ticket == ticket && t.to.is_terminal()) => break,
                        Ok(_) => None,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return Err(Stop::Cancelled),
                    },
                };
                if let Some(cmd) = woke {
                    self.apply(cmd, phase).await?;
                }
            }
        }
    }
}

/// The insight and explanation a signal ticket answered, or why there is
/// none (it died or was cancelled, or its answer does not parse).
fn read_answer(view: &TicketView) -> Result<(Insight, Option<String>), String> {
    if view.state != TicketState::Succeeded {
        return Err(view
            .error
            .clone()
            .unwrap_or_else(|| format!("the ticket ended {:?}", view.state)));
    }
    // A bot's answer is its text: here, the JSON of the insight and the
    // model's explanation.
    let text = view
        .result
        .as_ref()
        .and_then(|r| r["text"].as_str())
        .ok_or("the ticket succeeded without an answer")?;
    let answer: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the answer does not parse: {e}"))?;
    let insight = serde_json::from_value(answer["insight"].clone())
        .map_err(|e| format!("the answer's insight does not parse: {e}"))?;
    let explanation = answer["explanation"].as_str().map(str::to_owned);
    Ok((insight, explanation))
}

/// Sessions' journal entries, by session.
pub(super) fn by_session(entries: Vec<JournalEntry>) -> HashMap<String, Vec<JournalEntry>> {
    let mut out: HashMap<String, Vec<JournalEntry>> = HashMap::new();
    for e in entries {
        out.entry(e.session.clone()).or_default().push(e);
    }
    out
}
