//! The desk: one strategy trading one instrument against the simulated
//! venue, Signal → Risk → Execute → Ledger, every fill tied to its signal.
//! The same code runs a backtest, a replay and (through an adapter that
//! feeds it quotes and carries its orders) a live session, as
//! NautilusTrader runs one strategy in backtest and live.
//!
//! Quotes are the market events. They roll into bars of `bar_ms`; when a
//! bar closes the strategy reads the last bars and gives an insight
//! ([`signal`]), which sets a target position (up: long the trade
//! quantity, down: short it, flat: hold). The difference from the position
//! and what is in flight becomes a market order, checked by the risk
//! engine ([`risk`]; a denial keeps its code), reserved in the ledger, and
//! sent: it reaches the venue `latency` later and takes from the book the
//! venue shows at that moment (the quote's size at the quote and at
//! `depth_levels` ticks beyond, so a large order walks the book and
//! slips). Each fill is applied to the order, the position and the ledger
//! (trade, commission, realized P&L), tied to its order and signal, and
//! folded into a SHA-256 of the fill stream, so a replay can show it is
//! bit for bit the same.
//!
//! Every signal ends in a disposition (no trade needed, denied with its
//! check, rejected, filled, partly filled, killed), so the desk can say why
//! any signal did or did not trade. The latency model's jitter is seeded:
//! the same data, configuration and seed give the same fills.
//!
//! One file per role: this one holds the desk's state and what turns a
//! quote into a signal and an order; `desk/execution.rs` how orders reach the
//! venue (in process, or a venue elsewhere through [`Desk::due`] and
//! [`Desk::on_report`]) and how its reports are posted; `desk/kill.rs` the kill
//! switch.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};

use crate::fixed::{Price, Quantity};
use crate::instrument::Instrument;
use crate::ledger::{Ledger, LedgerError};
use crate::market::{self, Bar, Quote};
use crate::order::{LiquiditySide, Order, OrderError, OrderEvent, OrderSide};
use crate::position::Position;
use crate::risk::{self, AccountView, Check, OrderIntent, RiskLimits, TradingState};
use crate::signal::{self, Direction, Insight, SignalError, Strategy};
use crate::venue::{Venue, VenueError};

/// Commission as basis points of a fill's value, by liquidity side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fees {
    pub maker_bps: u32,
    pub taker_bps: u32,
}

impl Fees {
    /// The commission on `value` (raw) for `side`, rounded up.
    pub fn commission(&self, value: i128, side: LiquiditySide) -> i128 {
        let bps = i128::from(match side {
            LiquiditySide::Maker => self.maker_bps,
            LiquiditySide::Taker => self.taker_bps,
        });
        (value.abs() * bps + 9_999) / 10_000
    }
}

/// When the venue sees an order: `base_ms` after it is sent, plus up to
/// `jitter_ms` more, drawn from the desk's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub base_ms: i64,
    pub jitter_ms: i64,
}

/// Everything a desk runs with; the same configuration and data give the
/// same fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskConfig {
    pub instrument: Instrument,
    pub strategy: Strategy,
    /// The bars the strategy reads, in milliseconds.
    pub bar_ms: i64,
    /// The position an up (long) or down (short) view holds.
    pub trade_quantity: Quantity,
    pub limits: RiskLimits,
    /// The account's starting cash, raw.
    pub deposit: i128,
    pub fees: Fees,
    pub latency: Latency,
    /// Levels the venue shows beyond the quote on each side.
    pub depth_levels: u32,
    pub seed: u64,
    /// How the desk opens a position.
    #[serde(default)]
    pub entries: Entries,
}

/// How the desk opens a position (an order that reduces one is always a
/// market order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entries {
    /// A market order, immediate or cancel: it takes what the book has.
    #[default]
    Market,
    /// A limit order at the signal's reference price, good till the
    /// insight's period ends (GTD): it rests at the venue, fills as a
    /// maker when the market comes to it, or expires. A new view cancels
    /// it. In process only: a venue elsewhere takes IOC and FOK orders.
    Limit,
}

impl DeskConfig {
    /// The house's paper desk for `instrument`: ten lots a trade, limits
    /// and cash in proportion to a trade's value at the first quote (four
    /// trades per order and per instrument, ten in cash), 30 orders an
    /// hour, 1 bp maker and 5 bp taker, one to three seconds to the venue
    /// and three levels of depth beyond the quote.
    pub fn paper(
        instrument: Instrument,
        strategy: Strategy,
        bar_ms: i64,
        first: &Quote,
        seed: u64,
    ) -> DeskConfig {
        let trade_quantity =
            Quantity::from_raw(instrument.lot_size.raw * 10, instrument.size_precision);
        let value = risk::notional(first.ask, trade_quantity);
        DeskConfig {
            instrument,
            strategy,
            bar_ms,
            trade_quantity,
            limits: RiskLimits {
                max_notional_per_order: value * 4,
                max_notional_per_instrument: value * 4,
                max_orders: 30,
                rate_window_ms: 60 * 60 * 1_000,
            },
            deposit: value * 10,
            fees: Fees {
                maker_bps: 1,
                taker_bps: 5,
            },
            latency: Latency {
                base_ms: 1_000,
                jitter_ms: 2_000,
            },
            depth_levels: 3,
            seed,
            entries: Entries::Market,
        }
    }
}

/// Why a desk could not be set up or go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeskError {
    #[error("{field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Venue(#[from] VenueError),
    /// A venue's report that breaks the protocol; nothing of it was applied.
    #[error("the venue's report, {field}: {reason}")]
    Protocol { field: String, reason: String },
    #[error("quote at {ts_ms}: it is older than the last one ({last_ms})")]
    OutOfOrder { ts_ms: i64, last_ms: i64 },
}

/// What became of a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Disposition {
    /// The position already matched the view (or the view was flat).
    NoTrade,
    /// Its order is on its way to the venue.
    InFlight,
    /// The risk engine refused its order; the check that failed.
    Denied {
        code: String,
    },
    /// The venue refused its order.
    Rejected {
        code: String,
    },
    Filled,
    /// The venue filled part and canceled the rest (the book ran out).
    PartlyFilled,
    /// The kill switch canceled its order (before it reached the venue,
    /// or as it rested there).
    Killed {
        kill: String,
    },
    /// Its limit order rested until its expiry (GTD) and the venue
    /// expired what was left.
    Expired,
    /// Its resting limit order was canceled by a later signal's view.
    Canceled {
        by: String,
    },
}

/// A signal and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalRecord {
    /// `S-<n>`, in the order signals were made.
    pub id: String,
    pub insight: Insight,
    /// The order it led to, if any.
    pub order: Option<String>,
    /// The risk engine's record of every check, if an order was checked.
    pub checks: Vec<Check>,
    pub disposition: Disposition,
}

/// One fill, tied to its order and signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRecord {
    pub ts_ms: i64,
    pub order: String,
    pub signal: String,
    pub trade_id: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    pub price: Price,
    pub commission: i128,
    pub liquidity_side: LiquiditySide,
    /// What the fill paid beyond the signal's reference price, raw (per
    /// unit; positive is worse).
    pub slippage: i64,
    /// What it realized by closing a position, raw quote, before its
    /// commission.
    pub realized: i128,
}

/// A bar [`Desk::advance`] closed, with the window full enough to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BarClose {
    /// Bars closed so far: the insight for this bar is the strategy's over
    /// the first `bars` bars of the session.
    pub bars: u64,
    /// The quote that closed it: when the desk acts.
    pub at_ms: i64,
}

/// Where an order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Signal(usize),
    Kill(usize),
}

/// An order sent and not yet seen by the venue.
#[derive(Debug, Clone)]
struct Sent {
    arrives_ms: i64,
    order: usize,
}

/// One strategy on one instrument, with its account.
#[derive(Debug)]
pub struct Desk {
    cfg: DeskConfig,
    rng: ChaCha8Rng,
    window: VecDeque<Bar>,
    building: Option<Bar>,
    last_ms: i64,
    orders: Vec<Order>,
    /// For each order, what it came from.
    order_source: Vec<Source>,
    kills: Vec<KillRecord>,
    sent: VecDeque<Sent>,
    sent_ms: Vec<i64>,
    position: Position,
    ledger: Ledger,
    signals: Vec<SignalRecord>,
    fills: Vec<FillRecord>,
    state: TradingState,
    /// Bots whose signals trade under a stricter state than the desk's.
    bot_states: BTreeMap<String, TradingState>,
    hasher: Sha256,
    events: u64,
    closed_bars: u64,
    /// The simulated venue the desk's orders reach in process.
    venue: Venue,
    /// Orders handed to a venue elsewhere ([`Desk::due`]) awaiting its
    /// report, with the quote time they met.
    at_venue: Vec<(usize, i64)>,
    /// For each order, a limit order's expiry (GTD); none for a market one.
    order_expiry: Vec<Option<i64>>,
    /// Limit orders resting at the in-process venue.
    resting: Vec<usize>,
}

impl Desk {
    pub fn new(cfg: DeskConfig) -> Result<Desk, DeskError> {
        let config = |field, reason: &str| DeskError::Config {
            field,
            reason: reason.to_owned(),
        };
        if cfg.bar_ms <= 0 {
            return Err(config("bar_ms", "must be above zero"));
        }
        if cfg.deposit <= 0 {
            return Err(config("deposit", "must be above zero"));
        }
        if cfg.latency.base_ms < 0 || cfg.latency.jitter_ms < 0 {
            return Err(config("latency", "must not be negative"));
        }
        if cfg.depth_levels > 1_000 {
            return Err(config("depth_levels", "must be at most 1000"));
        }
        cfg.instrument
            .check_quantity(cfg.trade_quantity)
            .map_err(|e| config("trade_quantity", &e.to_string()))?;
        let mut ledger = Ledger::default();
        ledger.deposit(cfg.deposit)?;
        Ok(Desk {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            window: VecDeque::with_capacity(cfg.strategy.needs() + 1),
            building: None,
            last_ms: i64::MIN,
            orders: Vec::new(),
            order_source: Vec::new(),
            kills: Vec::new(),
            sent: VecDeque::new(),
            sent_ms: Vec::new(),
            position: Position::default(),
            ledger,
            signals: Vec::new(),
            fills: Vec::new(),
            state: TradingState::Active,
            bot_states: BTreeMap::new(),
            hasher: Sha256::new(),
            events: 0,
            closed_bars: 0,
            venue: Venue::new(cfg.instrument.clone(), cfg.depth_levels),
            at_venue: Vec::new(),
            order_expiry: Vec::new(),
            resting: Vec::new(),
            cfg,
        })
    }

    /// Runs every quote through the desk, in order.
    pub fn run<'a>(
        &mut self,
        quotes: impl IntoIterator<Item = &'a Quote>,
    ) -> Result<(), DeskError> {
        for q in quotes {
            self.on_quote(q)?;
        }
        Ok(())
    }

    /// One market event: orders due at the venue meet this quote, then the
    /// quote rolls into the bar (closing the last one, which the strategy
    /// then reads). Another instrument's quote is not this desk's.
    pub fn on_quote(&mut self, q: &Quote) -> Result<(), DeskError> {
        if let Some(close) = self.advance(q)? {
            let insight = signal::generate(
                &self.cfg.strategy,
                self.window.make_contiguous(),
                self.cfg.bar_ms,
            )?;
            self.decide(insight, self.state, close.at_ms)?;
        }
        Ok(())
    }

    /// One market event for a desk whose signals come from elsewhere (the
    /// bots' `signal` tickets): orders due at the venue meet the quote and
    /// a bar it closes joins the window, but the desk does not run the
    /// strategy. When the window holds what the strategy reads, the closed
    /// bar is returned: the caller gets the insight for it and gives it to
    /// [`Desk::act`] before the next quote, which is what
    /// [`Desk::on_quote`] does in process, so both give the same fills.
    pub fn advance(&mut self, q: &Quote) -> Result<Option<BarClose>, DeskError> {
        if q.instrument != self.cfg.instrument.id {
            return Ok(None);
        }
        if q.ts_ms < self.last_ms {
            return Err(DeskError::OutOfOrder {
                ts_ms: q.ts_ms,
                last_ms: self.last_ms,
            });
        }
        if let Some(&(i, _)) = self.at_venue.first() {
            return Err(execution::protocol(
                "report",
                format!(
                    "order {} awaits the venue's report; it comes before the next quote",
                    self.orders[i].client_order_id
                ),
            ));
        }
        self.last_ms = q.ts_ms;
        self.events += 1;
        // What rests meets the quote before what arrives at it: an order
        // arriving now has met this quote's book already.
        for report in self.venue.on_quote(q) {
            let idx = self
                .resting
                .iter()
                .copied()
                .find(|i| self.orders[*i].client_order_id == report.client_order_id)
                .expect("the venue reports the desk's resting orders");
            self.apply_report(idx, report)?;
        }
        while self.sent.front().is_some_and(|s| s.arrives_ms <= q.ts_ms) {
            let sent = self.sent.pop_front().expect("checked above");
            self.execute(sent.order, q)?;
        }
        let Some(closed) =
            market::roll(&mut self.building, q, &self.cfg.instrument, self.cfg.bar_ms)
        else {
            return Ok(None);
        };
        self.closed_bars += 1;
        let needs = self.cfg.strategy.needs();
        if self.window.len() == needs {
            self.window.pop_front();
        }
        self.window.push_back(closed);
        Ok((self.window.len() >= needs).then_some(BarClose {
            bars: self.closed_bars,
            at_ms: q.ts_ms,
        }))
    }

    /// Acts on an insight made elsewhere for the bar [`Desk::advance`]
    /// just closed: the same decision, risk checks and order as a signal
    /// made in process.
    pub fn act(&mut self, insight: Insight, now_ms: i64) -> Result<&SignalRecord, DeskError> {
        self.act_by(insight, None, now_ms)
    }

    /// As [`Desk::act`], for a signal `bot` made: its order is checked
    /// under the stricter of the desk's trading state and the bot's.
    pub fn act_by(
        &mut self,
        insight: Insight,
        bot: Option<&str>,
        now_ms: i64,
    ) -> Result<&SignalRecord, DeskError> {
        if insight.instrument != self.cfg.instrument.id {
            return Err(DeskError::Config {
                field: "insight.instrument",
                reason: format!(
                    "{:?} is not this desk's instrument ({})",
                    insight.instrument, self.cfg.instrument.id
                ),
            });
        }
        let state = bot
            .and_then(|b| self.bot_states.get(b))
            .map_or(self.state, |b| stricter(self.state, *b));
        self.decide(insight, state, now_ms)?;
        Ok(self.signals.last().expect("decide records the signal"))
    }

    /// The position and what is on its way (sent, resting, or at a venue
    /// elsewhere awaiting its report), raw (buy positive).
    fn exposure(&self) -> i128 {
        let in_flight: i128 = self
            .sent
            .iter()
            .map(|s| s.order)
            .chain(self.at_venue.iter().map(|(i, _)| *i))
            .chain(self.resting.iter().copied())
            .map(|i| {
                let o = &self.orders[i];
                signed(o.side, o.leaves_qty())
            })
            .sum();
        self.position.quantity + in_flight
    }

    /// Turns `insight` into a target, the target into an order checked
    /// under trading state `state`, and sends it.
    fn decide(
        &mut self,
        insight: Insight,
        state: TradingState,
        now_ms: i64,
    ) -> Result<(), DeskError> {
        let id = format!("S-{}", self.signals.len() + 1);
        let qty = i128::from(self.cfg.trade_quantity.raw);
        let mut current = self.exposure();
        let target = match insight.direction {
            Direction::Up => qty,
            Direction::Down => -qty,
            Direction::Flat => current,
        };
        // A resting entry stands while the view holds; a new view cancels
        // it before the desk works out what to send.
        if target != current && !self.resting.is_empty() {
            for idx in std::mem::take(&mut self.resting) {
                self.cancel_resting(idx, now_ms, Disposition::Canceled { by: id.clone() })?;
            }
            current = self.exposure();
        }
        let delta = target - current;
        let mut record = SignalRecord {
            id,
            insight,
            order: None,
            checks: Vec::new(),
            disposition: Disposition::NoTrade,
        };
        if delta == 0 {
            self.signals.push(record);
            return Ok(());
        }
        let side = if delta > 0 {
            OrderSide::Buy
        } else {
            OrderSide::Sell
        };
        let quantity = Quantity::from_raw(
            u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX),
            self.cfg.instrument.size_precision,
        );
        let reference = record.insight.reference_price;
        let window_start = now_ms - self.cfg.limits.rate_window_ms;
        self.sent_ms.retain(|t| *t > window_start);
        let reduce_only = target.abs() < current.abs() && target.signum() * current.signum() >= 0;
        // An entry as a limit at the reference price, good till the view's
        // period ends; an exit at market.
        let (price, expiry) = match self.cfg.entries {
            Entries::Limit if !reduce_only => (
                Some(reference),
                Some(now_ms.saturating_add(record.insight.period_ms.max(1))),
            ),
            _ => (None, None),
        };
        let intent = OrderIntent {
            instrument: &self.cfg.instrument,
            side,
            quantity,
            price,
            reference_price: reference,
            reduce_only,
            expire_time_ms: expiry,
        };
        let account = AccountView {
            state,
            free_balance: self.ledger.balance(crate::ledger::Account::Cash),
            position: self.position.quantity,
            instrument_exposure: risk::notional(
                reference,
                Quantity::from_raw(
                    u64::try_from(current.unsigned_abs()).unwrap_or(u64::MAX),
                    self.cfg.instrument.size_precision,
                ),
            ),
            recent_orders_ms: &self.sent_ms,
            now_ms,
        };
        let decision = risk::check(&intent, &self.cfg.limits, &account);
        let client_id = format!("O-{}", self.orders.len() + 1);
        let mut order = Order::new(client_id.clone(), side, quantity, price)?;
        record.order = Some(client_id.clone());
        record.checks = decision.checks.clone();
        // The reservation: the order's value, or what cash is free when an
        // order that only reduces is worth more (risk lets it draw nothing).
        let free = self.ledger.balance(crate::ledger::Account::Cash);
        let hold = risk::notional(reference, quantity).min(free);
        let denial = decision
            .denial
            .or((hold <= 0).then_some("CUM_NOTIONAL_EXCEEDS_FREE_BALANCE"));
        if let Some(code) = denial {
            order.apply(OrderEvent::Denied {
                reason_code: code.to_owned(),
            })?;
            record.disposition = Disposition::Denied {
                code: code.to_owned(),
            };
        } else {
            self.ledger.reserve(&client_id, hold)?;
            order.apply(OrderEvent::Submitted)?;
            record.disposition = Disposition::InFlight;
            let jitter = if self.cfg.latency.jitter_ms > 0 {
                (self.rng.next_u64() % (self.cfg.latency.jitter_ms as u64 + 1)) as i64
            } else {
                0
            };
            self.sent.push_back(Sent {
                arrives_ms: now_ms + self.cfg.latency.base_ms + jitter,
                order: self.orders.len(),
            });
            self.sent_ms.push(now_ms);
        }
        self.orders.push(order);
        self.order_source.push(Source::Signal(self.signals.len()));
        self.order_expiry.push(expiry);
        self.signals.push(record);
        Ok(())
    }

    /// Sets the desk's trading state.
    pub fn set_state(&mut self, state: TradingState) {
        self.state = state;
    }

    /// Sets `bot`'s trading state: its signals trade under the stricter
    /// of it and the desk's (ACTIVE leaves them to the desk's alone).
    pub fn set_bot_state(&mut self, bot: &str, state: TradingState) {
        if state == TradingState::Active {
            self.bot_states.remove(bot);
        } else {
            self.bot_states.insert(bot.to_owned(), state);
        }
    }

    /// The bots with a state of their own.
    pub fn bot_states(&self) -> &BTreeMap<String, TradingState> {
        &self.bot_states
    }

    /// Every use of the kill switch, in order.
    pub fn kills(&self) -> &[KillRecord] {
        &self.kills
    }

    /// The trading state now.
    pub fn state(&self) -> TradingState {
        self.state
    }

    pub fn signals(&self) -> &[SignalRecord] {
        &self.signals
    }

    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub fn fills(&self) -> &[FillRecord] {
        &self.fills
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Market events taken so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// SHA-256 of the fill stream so far, hex: equal for a faithful replay.
    pub fn fill_hash(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The stricter of two trading states: HALTED over REDUCING over ACTIVE.
fn stricter(a: TradingState, b: TradingState) -> TradingState {
    let rank = |s| match s {
        TradingState::Active => 0,
        TradingState::Reducing => 1,
        TradingState::Halted => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

pub(super) fn signed(side: OrderSide, q: Quantity) -> i128 {
    match side {
        OrderSide::Buy => i128::from(q.raw),
        OrderSide::Sell => -i128::from(q.raw),
    }
}

mod execution;
mod kill;
#[cfg(test)]
mod tests;

pub use execution::Due;
pub use kill::{KillLevel, KillRecord};
