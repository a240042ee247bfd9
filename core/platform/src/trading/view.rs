//! What the desk's routes take and give: a paper session to open, its
//! state as every surface shows it (the flow's counts, the position and
//! P&L, the kill switch's record), its signals with their tickets and risk
//! checks, its fills and its recap. Amounts a person reads are dollars
//! (`*_usd`); prices and quantities are decimal strings at the instrument's
//! precision, exactly as the desk holds them.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::ticket::{BotId, TenantId, TicketId};

/// A paper session to open: `strategy` trades `instrument` on the seeded
/// market of `seed` for `bars` bars of `bar_seconds`, its signals made by
/// the bots as `signal` tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// `{"name": "ema_cross", "fast": 5, "slow": 20}`,
    /// `{"name": "z_score", "window": 30, "entry_z": 2.0}` or
    /// `{"name": "breakout", "window": 20}`.
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub strategy: serde_json::Value,
    /// A listed instrument: `ETHUSD.SIM`, `BTCUSD.SIM`, `EURUSD.SIM`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Z0-9.]+$")]
    pub instrument: String,
    /// The market's seed: the same seed, the same quotes and fills.
    #[serde(default)]
    #[specta(type = specta_typescript::Number)]
    pub seed: u64,
    /// 1..=3600.
    #[schema(minimum = 1, maximum = 3600)]
    pub bar_seconds: u32,
    /// 2..=2000, and `bars × bar_seconds` at most 86,400 (one day).
    #[schema(minimum = 2, maximum = 2000)]
    pub bars: u32,
    /// Simulated seconds per second of wall time, 1..=86400; 0 (the
    /// default) runs as fast as the bots answer.
    #[serde(default)]
    #[schema(maximum = 86400)]
    pub speed: u32,
    /// A known tenant; the token's tenant, or `default`, if absent.
    #[serde(default)]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
    /// Where the orders go: absent, the desk's own venue in process; or
    /// the id of an enabled connector to a venue in a process of its own
    /// (`venue-paper`, from `oshal venue init`), reached by `tool` tickets
    /// through the auth gate and the broker, which holds its API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    pub venue: Option<String>,
    /// How the desk opens a position: `market` (the default), or `limit`,
    /// a limit order at the signal's reference price good till the view's
    /// period ends, resting at the venue in process (not with `venue`).
    #[serde(default, skip_serializing_if = "EntryStyle::is_market")]
    pub entries: EntryStyle,
}

/// How a desk opens a position.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryStyle {
    /// Immediate or cancel at market.
    #[default]
    Market,
    /// A limit at the reference price, good till the view's period ends.
    Limit,
}

impl EntryStyle {
    pub fn is_market(&self) -> bool {
        *self == EntryStyle::Market
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Running,
    /// Every quote of its market has been taken.
    Finished,
    /// It stopped on an error (`error` says which).
    Failed,
    /// The operator closed it before its market ended (`closed` says who
    /// and why); what it held, and any order still reconciling, stay as
    /// they were.
    Closed,
}

/// Closes a running session: its runner stops where it is, for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Why, for the record: 1..=500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// The kill switch's levels, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KillLevel {
    /// No new entries (the desk goes REDUCING).
    HaltEntries,
    /// Also cancel every order not yet at the venue.
    CancelOrders,
    /// Also close the position; flat once the venue has filled it.
    Flatten,
}

/// A trading state as the risk engine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradingStateName {
    Active,
    /// Only orders that reduce the position.
    Reducing,
    /// No new orders.
    Halted,
}

/// Sets the trading state of a running session's desk, or of one bot's
/// signals (which then trade under the stricter of it and the desk's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    pub state: TradingStateName,
    /// A bot's name (`bot-01`); absent, the desk's own state.
    #[serde(default)]
    #[schema(value_type = Option<BotId>)]
    pub bot: Option<String>,
    /// Why, for the record: 1..=500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// One setting of a trading state: whose, to what, by whom and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct StateChangeView {
    /// `T-<n>`.
    pub id: String,
    /// The bot it is for; none for the desk's own state.
    pub bot: Option<String>,
    pub state: TradingStateName,
    pub by: String,
    pub reason: String,
    /// On the session's clock.
    #[specta(type = specta_typescript::Number)]
    pub at_ms: i64,
}

/// A bot whose signals trade under a state of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BotStateView {
    pub bot: String,
    pub state: TradingStateName,
}

/// A pull of the kill switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    pub level: KillLevel,
    /// Why, for the record: 1..=500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// One use of the kill switch, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct KillView {
    /// `K-<n>`.
    pub id: String,
    pub level: KillLevel,
    pub by: String,
    pub reason: String,
    /// On the session's clock.
    #[specta(type = specta_typescript::Number)]
    pub at_ms: i64,
    /// Orders it canceled: before they reached the venue, or resting there.
    pub canceled: Vec<String>,
    /// The orders that close the position, in the order sent: the first
    /// at the pull, then one for each remainder the venue's book left.
    pub flatten_orders: Vec<String>,
    /// A flattening kill whose orders are done and the position zero:
    /// only then is the desk flat.
    pub flat: bool,
}

/// How many signals and orders reached each step of Signal → Risk →
/// Execute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Flow {
    /// Signal tickets answered and acted on.
    pub signals: u32,
    /// Signal tickets that ended without an answer (dead or cancelled).
    pub missed: u32,
    /// Signals that needed no order (the view was flat or already held).
    pub no_trade: u32,
    /// Orders the risk engine checked.
    pub checked: u32,
    pub denied: u32,
    /// Sent, not yet at the venue.
    pub in_flight: u32,
    pub filled: u32,
    pub partly_filled: u32,
    pub rejected: u32,
    pub killed: u32,
    /// Resting limit entries the venue expired (GTD).
    pub expired: u32,
    /// Resting limit entries a later view canceled.
    pub canceled: u32,
    pub orders: u32,
    pub fills: u32,
}

/// The position and the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct PositionView {
    /// Long positive, at the instrument's size precision.
    pub quantity: String,
    /// The last quote's mid (what the open position is marked at).
    pub mark: String,
    /// Closed trades' P&L, net of their commissions.
    pub realized_pnl_usd: f64,
    pub unrealized_pnl_usd: f64,
    /// Commissions paid.
    pub fees_usd: f64,
    /// What the tickets behind the signals cost: their models, and the
    /// `tool` tickets that took their orders to a venue elsewhere.
    pub signal_cost_usd: f64,
    /// Realized + unrealized − signal cost.
    pub net_usd: f64,
    pub cash_usd: f64,
    /// Debits less credits in the desk's ledger: always 0.
    #[specta(type = specta_typescript::Number)]
    pub ledger_imbalance: i64,
}

/// A session as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SessionView {
    /// `ds-` and 12 hex digits.
    pub id: String,
    pub tenant: TenantId,
    pub opened_by: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub opened_at_ms: UnixMs,
    pub spec: NewSession,
    pub status: SessionStatus,
    pub error: Option<String>,
    /// Who closed it and why, if it was closed.
    pub closed: Option<String>,
    /// `ACTIVE`, `REDUCING` or `HALTED`.
    pub trading_state: String,
    /// Bots whose signals trade under a stricter state than the desk's.
    pub bot_states: Vec<BotStateView>,
    /// Every setting of a trading state, in order.
    pub state_changes: Vec<StateChangeView>,
    /// The session's clock: the last quote taken, from 0.
    #[specta(type = specta_typescript::Number)]
    pub sim_ms: i64,
    #[specta(type = specta_typescript::Number)]
    pub quotes: u64,
    #[specta(type = specta_typescript::Number)]
    pub quotes_total: u64,
    /// The ticket the desk is waiting for, if any: a signal's, or an
    /// order's at a venue elsewhere.
    pub waiting_on: Option<TicketId>,
    pub flow: Flow,
    pub position: PositionView,
    /// SHA-256 of the fill stream: the same as an in-process backtest of
    /// the same seed and strategy when every signal was answered.
    pub fill_hash: String,
    pub kills: Vec<KillView>,
    /// Orders at a venue elsewhere whose report has not come back: their
    /// outcome is unknown until the venue answers, and never assumed.
    pub reconciling: Vec<ReconcilingOrder>,
    /// Each comparison of the desk's orders and fills with the venue's.
    pub reconciliations: Vec<ReconciliationView>,
}

/// An order sent to a venue elsewhere, its report not back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ReconcilingOrder {
    /// The client order id (`O-<n>`).
    pub order: String,
    /// Its `tool` tickets so far, the last one working.
    pub tickets: Vec<TicketId>,
    /// Why the last one brought no report, if it ended.
    pub last_error: Option<String>,
}

/// The desk's orders and fills compared with the venue's (a `list_orders`
/// `tool` ticket): after a restart, once the session has caught up, and
/// after an order whose report took more than one ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ReconciliationView {
    pub ticket: TicketId,
    /// `restart` or `retried_order`.
    pub reason: String,
    /// On the session's clock.
    #[specta(type = specta_typescript::Number)]
    pub at_ms: i64,
    /// Orders both sides were compared on.
    pub orders: u32,
    /// Every difference, named by order; none when the books agree.
    pub differences: Vec<String>,
}

/// Which of a session's orders: `order` for one (`O-3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// A client order id (`O-<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>, pattern = "^O-[0-9]{1,9}$")]
    pub order: Option<String>,
}

/// One posting of the desk's double-entry ledger: a debit and a credit of
/// the same amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct PostingView {
    /// `cash`, `reserved`, `positions`, `fees`, `realized_pnl`, `capital`.
    pub debit: String,
    pub credit: String,
    pub amount_usd: f64,
    /// `reserve`, `trade`, `commission`, `realize`, `release`.
    pub reason: String,
}

/// An order as the desk holds it, with what the ledger posted for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct OrderView {
    /// `O-<n>`.
    pub id: String,
    /// The signal (`S-<n>`) or kill (`K-<n>`) it came from.
    pub source: String,
    /// `BUY` or `SELL`.
    pub side: String,
    pub quantity: String,
    pub filled: String,
    /// A limit order's price.
    pub price: Option<String>,
    /// NautilusTrader's order status (`FILLED`, `EXPIRED`, …).
    pub status: String,
    pub venue_order_id: Option<String>,
    /// The `tool` tickets that took it to a venue elsewhere.
    pub tickets: Vec<TicketId>,
    /// Reserve, trades, commissions, realized P&L and release, in order.
    pub postings: Vec<PostingView>,
}

/// One risk check, with its limit and what it observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct RiskCheck {
    pub code: String,
    pub limit: String,
    pub observed: String,
    pub pass: bool,
}

/// A signal: its ticket and model call, the insight, the order it led to,
/// the risk checks, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SignalView {
    /// `S-<n>`.
    pub id: String,
    /// The bar it was made at: the strategy read the session's first `bars`.
    #[specta(type = specta_typescript::Number)]
    pub bars: u64,
    pub ticket: TicketId,
    pub bot: Option<BotId>,
    /// The `tool` tickets that took its order to a venue elsewhere.
    pub order_tickets: Vec<TicketId>,
    /// The model's spend on it.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    pub explanation: Option<String>,
    /// `UP`, `DOWN` or `FLAT`.
    pub direction: String,
    pub magnitude: f64,
    pub confidence: f64,
    pub source: String,
    pub reference_price: String,
    pub inputs_hash: String,
    #[specta(type = specta_typescript::Number)]
    pub generated_ms: i64,
    pub order: Option<String>,
    pub checks: Vec<RiskCheck>,
    /// `no_trade`, `in_flight`, `denied`, `rejected`, `filled`,
    /// `partly_filled` or `killed`.
    pub disposition: String,
    /// The denial's or rejection's code, or the kill's id.
    pub code: Option<String>,
}

/// A signal ticket that ended without an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct MissedSignal {
    #[specta(type = specta_typescript::Number)]
    pub bars: u64,
    pub ticket: TicketId,
    pub error: String,
}

/// One fill, tied to its order and signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FillView {
    #[specta(type = specta_typescript::Number)]
    pub ts_ms: i64,
    pub order: String,
    /// `S-<n>`, or `K-<n>` for the kill switch's closing order.
    pub signal: String,
    pub trade_id: String,
    /// `BUY` or `SELL`.
    pub side: String,
    pub quantity: String,
    pub price: String,
    pub commission_usd: f64,
    /// `MAKER` or `TAKER`.
    pub liquidity_side: String,
    /// Per unit beyond the signal's reference price (positive is worse).
    pub slippage: String,
    pub realized_usd: f64,
}

/// A session's signals, the tickets that went unanswered, and its fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Blotter {
    pub signals: Vec<SignalView>,
    pub missed: Vec<MissedSignal>,
    pub fills: Vec<FillView>,
}

/// One group's figures in the recap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct StatsView {
    /// The strategy, the day (`YYYY-MM-DD` of the session's clock), the
    /// bot, or `total`.
    pub key: String,
    pub signals: u32,
    pub closed: u32,
    pub wins: u32,
    pub losses: u32,
    pub realized_usd: f64,
    pub fees_usd: f64,
    pub signal_cost_usd: f64,
    /// Realized − fees − signal cost.
    pub net_usd: f64,
    pub slippage_usd: f64,
    pub win_rate: Option<f64>,
    pub profit_factor: Option<f64>,
    pub max_drawdown_usd: f64,
    pub sharpe: Option<f64>,
}

/// What the session earned, net of fees and of its signals' model spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct RecapView {
    pub total: StatsView,
    pub by_strategy: Vec<StatsView>,
    pub by_day: Vec<StatsView>,
    pub by_bot: Vec<StatsView>,
}
