//! What kind `signal` carries: a named strategy to run over a seeded window
//! of the simulated venue's quotes (`oshal-trading` runs it in the bot).
//! The shape and the bounds are checked here, at the edge; the strategy's
//! own parameters and the instrument are the trading crate's to check,
//! which the controller asks before it admits the ticket.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::TicketError;

/// The most one-second quotes a signal reads (one day).
pub const MAX_SIGNAL_QUOTES: u64 = 86_400;

/// A signal to compute: `strategy` over `bars` bars of `bar_seconds` of
/// `instrument`, from the quotes `seed` gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalPayload {
    /// `{"name": "ema_cross", "fast": 5, "slow": 20}`,
    /// `{"name": "z_score", "window": 30, "entry_z": 2.0}` or
    /// `{"name": "breakout", "window": 20}`.
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub strategy: serde_json::Value,
    /// A listed instrument: `ETHUSD.SIM`, `BTCUSD.SIM`, `EURUSD.SIM`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Z0-9.]+$")]
    pub instrument: String,
    /// The market data's seed: the same seed, the same quotes.
    #[serde(default)]
    #[specta(type = specta_typescript::Number)]
    pub seed: u64,
    /// 1..=3600.
    #[schema(minimum = 1, maximum = 3600)]
    pub bar_seconds: u32,
    /// 2..=2000, and `bars × bar_seconds` at most 86,400 (one day of quotes).
    #[schema(minimum = 2, maximum = 2000)]
    pub bars: u32,
}

impl SignalPayload {
    /// The checks of the shape and the bounds, each naming its field.
    pub fn check(&self) -> Result<(), TicketError> {
        let invalid = |field, reason: String| TicketError::Invalid { field, reason };
        let named = self
            .strategy
            .get("name")
            .and_then(serde_json::Value::as_str)
            .is_some();
        if !self.strategy.is_object() || !named {
            return Err(invalid(
                "payload.strategy",
                "must be an object with a \"name\" (ema_cross, z_score or breakout)".into(),
            ));
        }
        let ok = !self.instrument.is_empty()
            && self.instrument.len() <= 64
            && self
                .instrument
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.');
        if !ok {
            return Err(invalid(
                "payload.instrument",
                format!("{:?} must be 1 to 64 of A-Z, 0-9, '.'", self.instrument),
            ));
        }
        if !(1..=3600).contains(&self.bar_seconds) {
            return Err(invalid(
                "payload.bar_seconds",
                format!("{} is outside 1..=3600", self.bar_seconds),
            ));
        }
        if !(2..=2000).contains(&self.bars) {
            return Err(invalid(
                "payload.bars",
                format!("{} is outside 2..=2000", self.bars),
            ));
        }
        let quotes = u64::from(self.bars) * u64::from(self.bar_seconds);
        if quotes > MAX_SIGNAL_QUOTES {
            return Err(invalid(
                "payload.bars",
                format!(
                    "{} bars of {} s read {quotes} quotes; the limit is {MAX_SIGNAL_QUOTES}",
                    self.bars, self.bar_seconds
                ),
            ));
        }
        Ok(())
    }
}
