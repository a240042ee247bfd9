//! The venue's wire format: what a desk sends a venue in another process
//! and what comes back, prices and quantities as decimal strings at the
//! instrument's precision (`"4026.75"`, `"0.060"`), as a practitioner
//! reads them, never as floats.
//!
//! Both directions are checked whole and refused naming the field: an
//! order the venue is sent ([`WireOrder::check`]: its id, its quantity on
//! the lot, its price on the tick, its quote time) and a report the desk
//! receives ([`WireReport::parse`]: each fill's quantity and price at the
//! instrument's precision). What a report says about the order (which
//! order, which quote, how much) is the desk's to check
//! ([`crate::desk::Desk::on_report`]).
//!
//! The venue is a replay venue: the market an order meets is the seeded
//! one of `seed` ([`crate::market::seconds`]), at the quote of `ts_ms`, the
//! quote the desk's order arrives at. A desk and its venue that agree on
//! the seed agree on every quote.

use serde::{Deserialize, Serialize};

use super::{Report, VenueFill, VenueOrder};
use crate::book::TimeInForce;
use crate::fixed::{Price, Quantity};
use crate::instrument::Instrument;
use crate::order::{LiquiditySide, OrderSide};

/// The most characters of a client order id or an account.
pub const MAX_ID: usize = 64;
/// The last quote time a replay venue serves: one day of one-second quotes.
pub const MAX_TS_MS: i64 = 86_400_000 - 1_000;

/// An order as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireOrder {
    /// Unique in the account: a second submission under it with the same
    /// order gets the first answer; with another order it is refused.
    pub client_order_id: String,
    /// A listed instrument (`ETHUSD.SIM`).
    pub instrument: String,
    /// The market's seed.
    pub seed: u64,
    /// The quote the order meets: a whole second, 0..=[`MAX_TS_MS`].
    pub ts_ms: i64,
    pub side: OrderSide,
    pub quantity: String,
    /// A limit price; none for a market order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    pub time_in_force: TimeInForce,
    #[serde(default)]
    pub post_only: bool,
}

/// One trade of an order, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireFill {
    pub trade_id: String,
    pub quantity: String,
    pub price: String,
    pub liquidity_side: LiquiditySide,
}

/// What the venue did with an order, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireReport {
    pub client_order_id: String,
    pub venue_order_id: String,
    pub ts_ms: i64,
    pub fills: Vec<WireFill>,
    pub canceled: String,
    #[serde(default)]
    pub rejected: Option<String>,
}

/// A field of a wire message that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct WireError {
    pub field: String,
    pub reason: String,
}

fn wrong(field: impl Into<String>, reason: impl Into<String>) -> WireError {
    WireError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A client order id or an account: 1 to [`MAX_ID`] of `A-Z a-z 0-9 . _ -`.
pub fn check_id(field: &str, id: &str) -> Result<(), WireError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(wrong(
            field,
            format!("{id:?} is not 1 to {MAX_ID} of A-Z, a-z, 0-9, '.', '_', '-'"),
        ))
    }
}

impl WireOrder {
    /// `order` for the market of `seed` on `instrument`, meeting the quote
    /// of `ts_ms`.
    pub fn new(order: &VenueOrder, instrument: &str, seed: u64, ts_ms: i64) -> WireOrder {
        WireOrder {
            client_order_id: order.client_order_id.clone(),
            instrument: instrument.to_owned(),
            seed,
            ts_ms,
            side: order.side,
            quantity: order.quantity.to_string(),
            price: order.price.map(|p| p.to_string()),
            time_in_force: order.time_in_force,
            post_only: order.post_only,
        }
    }

    /// The order as the venue takes it, checked against `instrument` (the
    /// one [`WireOrder::instrument`] names): its id, a quantity on the lot
    /// within the instrument's bounds, a price on the tick, a quote time
    /// the venue serves.
    pub fn check(&self, instrument: &Instrument) -> Result<VenueOrder, WireError> {
        check_id("client_order_id", &self.client_order_id)?;
        if self.ts_ms < 0 || self.ts_ms > MAX_TS_MS || self.ts_ms % 1_000 != 0 {
            return Err(wrong(
                "ts_ms",
                format!(
                    "{} is not a quote's time: a whole second, 0..={MAX_TS_MS}",
                    self.ts_ms
                ),
            ));
        }
        let quantity = Quantity::parse("quantity", &self.quantity, instrument.size_precision)
            .map_err(|e| wrong("quantity", e.to_string()))?;
        instrument
            .check_quantity(quantity)
            .map_err(|e| wrong("quantity", e.to_string()))?;
        let price = match &self.price {
            None => None,
            Some(text) => {
                let p = Price::parse("price", text, instrument.price_precision)
                    .map_err(|e| wrong("price", e.to_string()))?;
                instrument
                    .check_price("price", p)
                    .map_err(|e| wrong("price", e.to_string()))?;
                Some(p)
            }
        };
        if price.is_none() && self.post_only {
            return Err(wrong("post_only", "a market order cannot be post-only"));
        }
        if !matches!(self.time_in_force, TimeInForce::Ioc | TimeInForce::Fok) {
            return Err(wrong(
                "time_in_force",
                format!(
                    "{:?}: a venue elsewhere takes IOC and FOK orders; resting orders are the in-process venue's",
                    self.time_in_force
                ),
            ));
        }
        Ok(VenueOrder {
            client_order_id: self.client_order_id.clone(),
            side: self.side,
            quantity,
            price,
            time_in_force: self.time_in_force,
            post_only: self.post_only,
            expire_ms: None,
        })
    }
}

impl From<&Report> for WireReport {
    fn from(r: &Report) -> WireReport {
        WireReport {
            client_order_id: r.client_order_id.clone(),
            venue_order_id: r.venue_order_id.clone(),
            ts_ms: r.ts_ms,
            fills: r
                .fills
                .iter()
                .map(|f| WireFill {
                    trade_id: f.trade_id.clone(),
                    quantity: f.quantity.to_string(),
                    price: f.price.to_string(),
                    liquidity_side: f.liquidity_side,
                })
                .collect(),
            canceled: r.canceled.to_string(),
            rejected: r.rejected.clone(),
        }
    }
}

impl WireReport {
    /// The report at `instrument`'s precision; a number that does not
    /// parse at it is refused naming the field (`fills[1].price`).
    pub fn parse(&self, instrument: &Instrument) -> Result<Report, WireError> {
        let size = instrument.size_precision;
        let mut fills = Vec::with_capacity(self.fills.len());
        for (n, f) in self.fills.iter().enumerate() {
            let quantity = Quantity::parse("quantity", &f.quantity, size)
                .map_err(|e| wrong(format!("fills[{n}].quantity"), e.to_string()))?;
            let price = Price::parse("price", &f.price, instrument.price_precision)
                .map_err(|e| wrong(format!("fills[{n}].price"), e.to_string()))?;
            fills.push(VenueFill {
                trade_id: f.trade_id.clone(),
                quantity,
                price,
                liquidity_side: f.liquidity_side,
            });
        }
        let canceled = Quantity::parse("canceled", &self.canceled, size)
            .map_err(|e| wrong("canceled", e.to_string()))?;
        Ok(Report {
            client_order_id: self.client_order_id.clone(),
            venue_order_id: self.venue_order_id.clone(),
            ts_ms: self.ts_ms,
            fills,
            canceled,
            rejected: self.rejected.clone(),
            resting: None,
            expired: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{self, sim_models};

    fn eth() -> Instrument {
        sim_models().remove(0).instrument
    }

    fn order() -> WireOrder {
        WireOrder {
            client_order_id: "O-1".into(),
            instrument: "ETHUSD.SIM".into(),
            seed: 7,
            ts_ms: 60_000,
            side: OrderSide::Buy,
            quantity: "0.100".into(),
            price: None,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
        }
    }

    /// An order and a report cross the wire and come back the same.
    #[test]
    fn an_order_and_its_report_round_trip_at_the_instruments_precision() {
        let instrument = eth();
        let venue_order = order().check(&instrument).unwrap();
        assert_eq!(
            WireOrder::new(&venue_order, "ETHUSD.SIM", 7, 60_000),
            order()
        );
        let q = market::seconds(7, sim_models().remove(0), 61).remove(60);
        let report = super::super::answer(&instrument, 3, "V-1".into(), &venue_order, &q);
        assert!(!report.fills.is_empty());
        let wire = WireReport::from(&report);
        let text = serde_json::to_string(&wire).unwrap();
        let back: WireReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back.parse(&instrument).unwrap(), report);
    }

    /// Each wrong field is refused by its name.
    #[test]
    fn a_wrong_order_or_report_is_refused_naming_the_field() {
        let instrument = eth();
        type Change = fn(&mut WireOrder);
        let cases: Vec<(Change, &str)> = vec![
            (|o| o.client_order_id = String::new(), "client_order_id"),
            (|o| o.client_order_id = "a/b".into(), "client_order_id"),
            (|o| o.client_order_id = "x".repeat(65), "client_order_id"),
            (|o| o.ts_ms = -1_000, "ts_ms"),
            (|o| o.ts_ms = 1_500, "ts_ms"),
            (|o| o.ts_ms = MAX_TS_MS + 1_000, "ts_ms"),
            (|o| o.quantity = "0.1005".into(), "quantity"),
            (|o| o.quantity = "-1".into(), "quantity"),
            (|o| o.quantity = "1e3".into(), "quantity"),
            (|o| o.quantity = "0.000".into(), "quantity"),
            (|o| o.price = Some("4000.001".into()), "price"),
            (|o| o.post_only = true, "post_only"),
            (|o| o.time_in_force = TimeInForce::Gtc, "time_in_force"),
        ];
        for (change, field) in cases {
            let mut o = order();
            change(&mut o);
            let e = o.check(&instrument).unwrap_err();
            assert_eq!(e.field, field, "{o:?}: {e}");
        }
        let unknown = serde_json::json!({
            "client_order_id": "O-1", "instrument": "ETHUSD.SIM", "seed": 1,
            "ts_ms": 0, "side": "BUY", "quantity": "1", "time_in_force": "IOC",
            "leverage": 100
        });
        assert!(serde_json::from_value::<WireOrder>(unknown).is_err());

        let report = WireReport {
            client_order_id: "O-1".into(),
            venue_order_id: "V-1".into(),
            ts_ms: 0,
            fills: vec![
                WireFill {
                    trade_id: "V-1-1".into(),
                    quantity: "0.010".into(),
                    price: "4000.25".into(),
                    liquidity_side: LiquiditySide::Taker,
                },
                WireFill {
                    trade_id: "V-1-2".into(),
                    quantity: "0.010".into(),
                    price: "4000.2x".into(),
                    liquidity_side: LiquiditySide::Taker,
                },
            ],
            canceled: "0".into(),
            rejected: None,
        };
        assert_eq!(
            report.parse(&instrument).unwrap_err().field,
            "fills[1].price"
        );
        let mut r = report.clone();
        r.fills.truncate(1);
        r.canceled = "lots".into();
        assert_eq!(r.parse(&instrument).unwrap_err().field, "canceled");
    }
}
