//! What can be traded and in which steps: an instrument's tick size, lot
//! size, precisions and quantity bounds, and the checks an order's price and
//! quantity pass before anything else looks at them. A refusal is typed and
//! names the field, the value and the limit.

use serde::{Deserialize, Serialize};

use crate::fixed::{Price, Quantity};

/// A tradable instrument, as a venue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// `SYMBOL.VENUE`, as NautilusTrader writes it (`ETHUSD.SIM`).
    pub id: String,
    pub price_precision: u8,
    pub size_precision: u8,
    /// Every price is a whole number of ticks.
    pub tick_size: Price,
    /// Every quantity is a whole number of lots.
    pub lot_size: Quantity,
    pub min_quantity: Quantity,
    pub max_quantity: Quantity,
}

/// Why an order's price or quantity does not fit its instrument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstrumentError {
    #[error("{field}: {value} has {value_precision} decimals; {instrument} takes {precision}")]
    PrecisionMismatch {
        instrument: String,
        field: &'static str,
        value: String,
        value_precision: u8,
        precision: u8,
    },
    #[error("price: {price} is not a multiple of {instrument}'s tick {tick}")]
    PriceOffTick {
        instrument: String,
        price: String,
        tick: String,
    },
    #[error("quantity: {quantity} is not a multiple of {instrument}'s lot {lot}")]
    QuantityOffLot {
        instrument: String,
        quantity: String,
        lot: String,
    },
    #[error("quantity: {quantity} is outside {instrument}'s {min}..={max}")]
    QuantityOutOfRange {
        instrument: String,
        quantity: String,
        min: String,
        max: String,
    },
}

impl Instrument {
    /// Checks an order's limit or trigger price.
    pub fn check_price(&self, field: &'static str, price: Price) -> Result<(), InstrumentError> {
        if price.precision != self.price_precision {
            return Err(InstrumentError::PrecisionMismatch {
                instrument: self.id.clone(),
                field,
                value: price.to_string(),
                value_precision: price.precision,
                precision: self.price_precision,
            });
        }
        if self.tick_size.raw > 0 && price.raw % self.tick_size.raw != 0 {
            return Err(InstrumentError::PriceOffTick {
                instrument: self.id.clone(),
                price: price.to_string(),
                tick: self.tick_size.to_string(),
            });
        }
        Ok(())
    }

    /// Checks an order's quantity.
    pub fn check_quantity(&self, quantity: Quantity) -> Result<(), InstrumentError> {
        if quantity.precision != self.size_precision {
            return Err(InstrumentError::PrecisionMismatch {
                instrument: self.id.clone(),
                field: "quantity",
                value: quantity.to_string(),
                value_precision: quantity.precision,
                precision: self.size_precision,
            });
        }
        if self.lot_size.raw > 0 && !quantity.raw.is_multiple_of(self.lot_size.raw) {
            return Err(InstrumentError::QuantityOffLot {
                instrument: self.id.clone(),
                quantity: quantity.to_string(),
                lot: self.lot_size.to_string(),
            });
        }
        if quantity < self.min_quantity || quantity > self.max_quantity {
            return Err(InstrumentError::QuantityOutOfRange {
                instrument: self.id.clone(),
                quantity: quantity.to_string(),
                min: self.min_quantity.to_string(),
                max: self.max_quantity.to_string(),
            });
        }
        Ok(())
    }
}

/// ETHUSD.SIM: prices to 0.05, sizes in lots of 0.010 from 0.010 to 100.
#[cfg(test)]
pub(crate) fn eth() -> Instrument {
    Instrument {
        id: "ETHUSD.SIM".into(),
        price_precision: 2,
        size_precision: 3,
        tick_size: Price::parse("tick_size", "0.05", 2).expect("a tick"),
        lot_size: Quantity::parse("lot_size", "0.010", 3).expect("a lot"),
        min_quantity: Quantity::parse("min_quantity", "0.010", 3).expect("a minimum"),
        max_quantity: Quantity::parse("max_quantity", "100.000", 3).expect("a maximum"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_on_the_tick_and_quantities_on_the_lot_pass() {
        let eth = eth();
        eth.check_price("price", Price::parse("price", "2501.35", 2).unwrap())
            .unwrap();
        eth.check_quantity(Quantity::parse("quantity", "1.230", 3).unwrap())
            .unwrap();
    }

    #[test]
    fn each_misfit_is_refused_with_its_code_and_limit() {
        let eth = eth();
        let off_tick = eth
            .check_price("price", Price::parse("price", "2501.37", 2).unwrap())
            .unwrap_err();
        assert!(
            matches!(off_tick, InstrumentError::PriceOffTick { ref tick, .. } if tick == "0.05")
        );
        let json = serde_json::to_value(&off_tick).unwrap();
        assert_eq!(json["code"], "PRICE_OFF_TICK");

        let precision = eth
            .check_price("trigger_price", Price::parse("p", "2501.350", 3).unwrap())
            .unwrap_err();
        assert!(matches!(
            precision,
            InstrumentError::PrecisionMismatch {
                field: "trigger_price",
                precision: 2,
                ..
            }
        ));
        let off_lot = eth
            .check_quantity(Quantity::parse("quantity", "1.235", 3).unwrap())
            .unwrap_err();
        assert!(
            matches!(off_lot, InstrumentError::QuantityOffLot { .. }),
            "{off_lot}"
        );
        let too_big = eth
            .check_quantity(Quantity::parse("quantity", "100.010", 3).unwrap())
            .unwrap_err();
        assert!(
            matches!(too_big, InstrumentError::QuantityOutOfRange { ref max, .. } if max == "100.000"),
            "{too_big}"
        );
        assert!(eth.check_quantity(Quantity::zero(3)).is_err());
    }
}
