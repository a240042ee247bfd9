//! Netting positions: one signed quantity per instrument, its cost basis,
//! and the P&L its fills realized, in raw billionths of the quote currency
//! (exact while an instrument's price and size precisions add up to nine
//! decimals or fewer; past that, a fill's value is cut at the billionth).
//!
//! A fill in the position's direction adds to it at its price; one against
//! it closes what it can, realizing the difference against the average
//! cost, and flips the rest into a new position at the fill's price. The
//! cost of what is closed is taken pro rata, and all of what is left when
//! the position reaches zero, so a round trip realizes exactly its
//! proceeds minus its costs.

use serde::{Deserialize, Serialize};

use crate::fixed::{FIXED_SCALAR, Price, Quantity};
use crate::order::OrderSide;

/// Which way a position leans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PositionSide {
    Flat,
    Long,
    Short,
}

/// One instrument's net position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Raw quantity, long positive.
    pub quantity: i128,
    /// What the open quantity cost, raw quote (positive for a long, negative
    /// for a short: what selling it brought in).
    pub cost: i128,
    /// P&L realized by closing fills, net of commissions, raw quote.
    pub realized_pnl: i128,
    pub commissions: i128,
}

fn value(qty: i128, price: Price) -> i128 {
    qty * i128::from(price.raw) / i128::from(FIXED_SCALAR)
}

impl Position {
    pub fn side(&self) -> PositionSide {
        match self.quantity.signum() {
            0 => PositionSide::Flat,
            1 => PositionSide::Long,
            _ => PositionSide::Short,
        }
    }

    /// Applies one fill; `commission` (raw quote) is charged to realized P&L.
    pub fn apply(&mut self, side: OrderSide, quantity: Quantity, price: Price, commission: i128) {
        let signed = match side {
            OrderSide::Buy => i128::from(quantity.raw),
            OrderSide::Sell => -i128::from(quantity.raw),
        };
        self.commissions += commission;
        self.realized_pnl -= commission;
        if self.quantity == 0 || self.quantity.signum() == signed.signum() {
            self.quantity += signed;
            self.cost += value(signed, price);
            return;
        }
        let open = self.quantity.abs();
        let closing = open.min(signed.abs());
        // The cost of what closes: pro rata, or all that is left.
        let closed_cost = if closing == open {
            self.cost
        } else {
            self.cost * closing / open
        };
        let closing_signed = closing * self.quantity.signum();
        // Long: sold `closing` for its value; short: bought it back.
        self.realized_pnl += value(closing_signed, price) - closed_cost;
        self.cost -= closed_cost;
        self.quantity += signed;
        let flipped = signed.abs() - closing;
        if flipped > 0 {
            let rest = flipped * signed.signum();
            self.cost = value(rest, price);
        }
    }

    /// Average open price, raw, if the position is open.
    pub fn avg_px(&self) -> Option<i128> {
        (self.quantity != 0).then(|| self.cost * i128::from(FIXED_SCALAR) / self.quantity)
    }

    /// What closing the position at `mark` would realize (before fees).
    pub fn unrealized_pnl(&self, mark: Price) -> i128 {
        value(self.quantity, mark) - self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UNIT: i128 = FIXED_SCALAR as i128;

    fn q(n: u64) -> Quantity {
        Quantity::from_raw(n * 1_000_000_000, 0)
    }

    fn px(n: i64) -> Price {
        Price::from_raw(n * 1_000_000_000, 2)
    }

    #[test]
    fn adding_closing_and_flipping() {
        let mut p = Position::default();
        p.apply(OrderSide::Buy, q(2), px(100), 0);
        p.apply(OrderSide::Buy, q(2), px(110), 0);
        assert_eq!(p.avg_px(), Some(105 * UNIT));
        assert_eq!(p.unrealized_pnl(px(120)), 60 * UNIT);
        // Sell 6 of a long 4: closes 4 at +15 each, opens a short 2 at 120.
        p.apply(OrderSide::Sell, q(6), px(120), UNIT);
        assert_eq!(p.side(), PositionSide::Short);
        assert_eq!(p.quantity, -2 * UNIT);
        assert_eq!(p.realized_pnl, 60 * UNIT - UNIT);
        assert_eq!(p.avg_px(), Some(120 * UNIT));
        // The short gains as the price falls.
        assert_eq!(p.unrealized_pnl(px(100)), 40 * UNIT);
        p.apply(OrderSide::Buy, q(2), px(100), 0);
        assert_eq!((p.side(), p.cost), (PositionSide::Flat, 0));
        assert_eq!(p.realized_pnl, 99 * UNIT);
        assert_eq!(p.commissions, UNIT);
    }

    proptest! {
        /// Any fills that end flat realize exactly the cash they moved:
        /// what sells brought in, minus what buys paid, minus commissions.
        #[test]
        fn a_round_trip_realizes_exactly_its_cash(
            fills in prop::collection::vec((any::<bool>(), 1u64..50, 1i64..10_000, 0i128..1000), 1..30)
        ) {
            let mut p = Position::default();
            let mut cash: i128 = 0;
            for (buy, qty, price, fee) in &fills {
                let (side, sign) = if *buy { (OrderSide::Buy, -1) } else { (OrderSide::Sell, 1) };
                let price = Price::from_raw(price * 1_000_000, 2);
                p.apply(side, q(*qty), price, *fee);
                cash += sign * value(i128::from(*qty) * UNIT, price) - fee;
            }
            // Close whatever is left at the last price.
            let last = Price::from_raw(fills.last().unwrap().2 * 1_000_000, 2);
            let open = p.quantity;
            if open != 0 {
                let side = if open > 0 { OrderSide::Sell } else { OrderSide::Buy };
                let qty = Quantity::from_raw(open.unsigned_abs() as u64, 0);
                p.apply(side, qty, last, 0);
                cash += value(open, last);
            }
            prop_assert_eq!(p.side(), PositionSide::Flat);
            prop_assert_eq!(p.cost, 0);
            prop_assert_eq!(p.realized_pnl, cash);
        }
    }
}
