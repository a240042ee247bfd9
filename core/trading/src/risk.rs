//! The risk engine's pre-trade checks, as NautilusTrader's `RiskEngine`
//! runs them, each recorded: `{code, limit, observed, pass}`. Every check
//! runs, so a denial shows all that was wrong, and the first failure gives
//! the denial its stable code (`NOTIONAL_EXCEEDS_MAX_PER_ORDER`, …). There
//! is no free-text denial.
//!
//! The engine is a pure function of the order, the limits and what the
//! caller knows of the account (free balance, position, exposure, recent
//! orders) at `now_ms`; it keeps nothing itself.

use serde::{Deserialize, Serialize};

use crate::fixed::{FIXED_SCALAR, Price, Quantity};
use crate::instrument::{Instrument, InstrumentError};
use crate::order::OrderSide;

/// Whether new orders may trade, globally or for one bot.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TradingState {
    Active,
    /// Only orders that reduce a position.
    Reducing,
    /// No new orders.
    Halted,
}

/// The limits the checks hold an order to. Amounts are raw billionths of
/// the quote currency, as [`Price`] keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskLimits {
    pub max_notional_per_order: i128,
    pub max_notional_per_instrument: i128,
    /// At most this many orders …
    pub max_orders: u32,
    /// … within this many milliseconds.
    pub rate_window_ms: i64,
}

/// An order as risk sees it, before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIntent<'a> {
    pub instrument: &'a Instrument,
    pub side: OrderSide,
    pub quantity: Quantity,
    /// A limit order's price; `None` for a market order.
    pub price: Option<Price>,
    /// What a market order is valued at (the last quote on its side).
    pub reference_price: Price,
    pub reduce_only: bool,
    /// A GTD order's expiry.
    pub expire_time_ms: Option<i64>,
}

/// What the caller knows of the account when the order is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView<'a> {
    pub state: TradingState,
    /// Raw billionths of the quote currency, not reserved by open orders.
    pub free_balance: i128,
    /// The net position in this instrument, raw (buy positive).
    pub position: i128,
    /// The notional already held or resting in this instrument, raw.
    pub instrument_exposure: i128,
    /// When this bot's recent orders were sent.
    pub recent_orders_ms: &'a [i64],
    pub now_ms: i64,
}

/// One check's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The denial it gives when it fails.
    pub code: &'static str,
    pub limit: String,
    pub observed: String,
    pub pass: bool,
}

/// The engine's answer: every check, and the denial if any failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskDecision {
    pub checks: Vec<Check>,
    /// The first failed check's code.
    pub denial: Option<&'static str>,
}

impl RiskDecision {
    pub fn approved(&self) -> bool {
        self.denial.is_none()
    }
}

/// Notional value of `quantity` at `price`, raw.
pub fn notional(price: Price, quantity: Quantity) -> i128 {
    i128::from(price.raw) * i128::from(quantity.raw) / i128::from(FIXED_SCALAR)
}

/// A raw amount as a decimal, for a check's record.
fn amount(raw: i128) -> String {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let scalar = FIXED_SCALAR as u128;
    format!("{sign}{}.{:09}", abs / scalar, abs % scalar)
}

/// Runs every pre-trade check on `order`.
pub fn check(
    order: &OrderIntent<'_>,
    limits: &RiskLimits,
    account: &AccountView<'_>,
) -> RiskDecision {
    let mut checks = Vec::new();
    let mut record = |code: &'static str, limit: String, observed: String, pass: bool| {
        checks.push(Check {
            code,
            limit,
            observed,
            pass,
        });
    };
    let signed_qty = match order.side {
        OrderSide::Buy => i128::from(order.quantity.raw),
        OrderSide::Sell => -i128::from(order.quantity.raw),
    };
    let after = account.position + signed_qty;
    // Reduces: moves the position toward zero without crossing it.
    let reduces = account.position != 0
        && after.signum() != -account.position.signum()
        && after.abs() < account.position.abs();

    record(
        "TRADING_HALTED",
        "ACTIVE or REDUCING".into(),
        <&str>::from(account.state).into(),
        account.state != TradingState::Halted,
    );
    record(
        "TRADING_STATE_REDUCING",
        "reduces the position while REDUCING".into(),
        format!("position {} → {}", amount(account.position), amount(after)),
        account.state != TradingState::Reducing || reduces,
    );
    let instrument_check = |r: Result<(), InstrumentError>, code: &'static str| match r {
        Ok(()) => (code, true, String::new()),
        Err(e) => (
            match e {
                InstrumentError::PrecisionMismatch { .. } => code,
                InstrumentError::PriceOffTick { .. } => "PRICE_OFF_TICK",
                InstrumentError::QuantityOffLot { .. } => "QUANTITY_OFF_LOT",
                InstrumentError::QuantityOutOfRange { .. } => "QUANTITY_OUT_OF_RANGE",
            },
            false,
            e.to_string(),
        ),
    };
    if let Some(price) = order.price {
        let (code, pass, why) = instrument_check(
            order.instrument.check_price("price", price),
            "PRICE_PRECISION",
        );
        record(
            code,
            format!(
                "{} decimals, multiple of {}",
                order.instrument.price_precision, order.instrument.tick_size
            ),
            if pass { price.to_string() } else { why },
            pass,
        );
    }
    let (code, pass, why) = instrument_check(
        order.instrument.check_quantity(order.quantity),
        "QUANTITY_PRECISION",
    );
    record(
        code,
        format!(
            "{} decimals, multiple of {}, {}..={}",
            order.instrument.size_precision,
            order.instrument.lot_size,
            order.instrument.min_quantity,
            order.instrument.max_quantity
        ),
        if pass {
            order.quantity.to_string()
        } else {
            why
        },
        pass,
    );

    let value = notional(order.price.unwrap_or(order.reference_price), order.quantity);
    record(
        "NOTIONAL_EXCEEDS_MAX_PER_ORDER",
        amount(limits.max_notional_per_order),
        amount(value),
        value <= limits.max_notional_per_order,
    );
    let exposure = account.instrument_exposure + if reduces { 0 } else { value };
    record(
        "NOTIONAL_EXCEEDS_MAX_PER_INSTRUMENT",
        amount(limits.max_notional_per_instrument),
        amount(exposure),
        exposure <= limits.max_notional_per_instrument,
    );
    // Only what opens or adds to a position draws on the balance.
    let draws = if reduces { 0 } else { value };
    record(
        "CUM_NOTIONAL_EXCEEDS_FREE_BALANCE",
        amount(account.free_balance),
        amount(draws),
        draws <= account.free_balance,
    );
    record(
        "REDUCE_ONLY_WOULD_INCREASE_POSITION",
        "reduces the position".into(),
        format!("position {} → {}", amount(account.position), amount(after)),
        !order.reduce_only || reduces,
    );
    let since = account.now_ms - limits.rate_window_ms;
    let recent = account
        .recent_orders_ms
        .iter()
        .filter(|t| **t > since)
        .count();
    record(
        "RATE_LIMIT_EXCEEDED",
        format!(
            "{} orders per {} ms",
            limits.max_orders, limits.rate_window_ms
        ),
        format!("{} in the window, this one included", recent + 1),
        recent < limits.max_orders as usize,
    );
    if let Some(expire) = order.expire_time_ms {
        record(
            "EXPIRE_TIME_IN_THE_PAST",
            format!("after {}", account.now_ms),
            expire.to_string(),
            expire > account.now_ms,
        );
    }
    let denial = checks.iter().find(|c| !c.pass).map(|c| c.code);
    RiskDecision { checks, denial }
}

#[cfg(test)]
mod tests;
