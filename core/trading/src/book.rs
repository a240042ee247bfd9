//! The simulated venue's matching engine for one instrument: a full-depth
//! book in price-time priority. An incoming order takes from the best
//! opposite price first and, at one price, from the oldest resting order
//! first; what is left rests (GTC, GTD), is canceled (IOC), or, for FOK,
//! nothing trades unless all of it can. A post-only order that would take
//! is rejected instead. Trade ids are the book's own sequence, so the same
//! orders in the same sequence give the same fills.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

use crate::fixed::{Price, Quantity};
use crate::order::{LiquiditySide, OrderSide};

/// How long an order works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeInForce {
    /// Good till canceled: the rest rests.
    Gtc,
    /// Good till a date: rests like GTC; the venue expires it.
    Gtd,
    /// Immediate or cancel: the rest is canceled.
    Ioc,
    /// Fill or kill: all of it at once, or nothing.
    Fok,
}

/// An order arriving at the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub id: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    /// `None`: a market order (takes at any price, never rests).
    pub price: Option<Price>,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
}

/// One trade between a resting order and an incoming one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookFill {
    pub trade_id: String,
    /// The resting order (the maker).
    pub maker: String,
    /// The incoming order (the taker).
    pub taker: String,
    pub price: Price,
    pub quantity: Quantity,
}

impl BookFill {
    /// The liquidity side of `order` in this trade.
    pub fn liquidity_side(&self, order: &str) -> LiquiditySide {
        if self.maker == order {
            LiquiditySide::Maker
        } else {
            LiquiditySide::Taker
        }
    }
}

/// What became of an incoming order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    pub fills: Vec<BookFill>,
    /// Left resting in the book.
    pub rested: Quantity,
    /// Canceled unfilled (IOC's rest, a market order's rest, a killed FOK).
    pub canceled: Quantity,
    /// Refused before anything traded.
    pub rejected: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Resting {
    id: String,
    raw: u64,
}

/// One instrument's book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    price_precision: u8,
    size_precision: u8,
    bids: BTreeMap<i64, VecDeque<Resting>>,
    asks: BTreeMap<i64, VecDeque<Resting>>,
    next_trade: u64,
}

impl Book {
    pub fn new(price_precision: u8, size_precision: u8) -> Book {
        Book {
            price_precision,
            size_precision,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            next_trade: 1,
        }
    }

    pub fn best_bid(&self) -> Option<Price> {
        self.bids
            .keys()
            .next_back()
            .map(|p| Price::from_raw(*p, self.price_precision))
    }

    pub fn best_ask(&self) -> Option<Price> {
        self.asks
            .keys()
            .next()
            .map(|p| Price::from_raw(*p, self.price_precision))
    }

    /// Total resting quantity on a side, raw.
    pub fn depth(&self, side: OrderSide) -> u64 {
        let levels = match side {
            OrderSide::Buy => &self.bids,
            OrderSide::Sell => &self.asks,
        };
        levels.values().flatten().map(|r| r.raw).sum()
    }

    /// Whether `price` crosses the opposite side's level `level` for `side`.
    fn crosses(side: OrderSide, price: Option<Price>, level: i64) -> bool {
        match (side, price) {
            (_, None) => true,
            (OrderSide::Buy, Some(p)) => level <= p.raw,
            (OrderSide::Sell, Some(p)) => level >= p.raw,
        }
    }

    /// How much of `side` at `price` could trade now, up to `want`.
    fn available(&self, side: OrderSide, price: Option<Price>, want: u64) -> u64 {
        fn sum<'a>(
            levels: impl Iterator<Item = (&'a i64, &'a VecDeque<Resting>)>,
            side: OrderSide,
            price: Option<Price>,
            want: u64,
        ) -> u64 {
            let mut got = 0u64;
            for (level, queue) in levels {
                if !Book::crosses(side, price, *level) || got >= want {
                    break;
                }
                got += queue.iter().map(|r| r.raw).sum::<u64>();
            }
            got.min(want)
        }
        match side {
            OrderSide::Buy => sum(self.asks.iter(), side, price, want),
            OrderSide::Sell => sum(self.bids.iter().rev(), side, price, want),
        }
    }

    /// Matches `order` against the book and rests what its time in force
    /// lets rest.
    pub fn submit(&mut self, order: Incoming) -> Matched {
        let want = order.quantity.raw;
        let qty = |raw| Quantity::from_raw(raw, self.size_precision);
        let nothing = |rejected, canceled| Matched {
            fills: Vec::new(),
            rested: Quantity::zero(self.size_precision),
            canceled,
            rejected,
        };
        if order.post_only {
            if order.price.is_none() {
                return nothing(Some("POST_ONLY_MARKET_ORDER"), qty(0));
            }
            if self.available(order.side, order.price, 1) > 0 {
                return nothing(Some("POST_ONLY_WOULD_TAKE"), qty(0));
            }
        }
        if order.time_in_force == TimeInForce::Fok
            && self.available(order.side, order.price, want) < want
        {
            return nothing(None, qty(want));
        }
        let mut left = want;
        let mut fills = Vec::new();
        while left > 0 {
            let book = match order.side {
                OrderSide::Buy => &mut self.asks,
                OrderSide::Sell => &mut self.bids,
            };
            let best = match order.side {
                OrderSide::Buy => book.keys().next().copied(),
                OrderSide::Sell => book.keys().next_back().copied(),
            };
            let Some(level) = best.filter(|l| Self::crosses(order.side, order.price, *l)) else {
                break;
            };
            let queue = book.get_mut(&level).expect("the best level exists");
            while left > 0 {
                let Some(maker) = queue.front_mut() else {
                    break;
                };
                let traded = maker.raw.min(left);
                maker.raw -= traded;
                left -= traded;
                fills.push(BookFill {
                    trade_id: format!("T-{}", self.next_trade),
                    maker: maker.id.clone(),
                    taker: order.id.clone(),
                    price: Price::from_raw(level, self.price_precision),
                    quantity: Quantity::from_raw(traded, self.size_precision),
                });
                self.next_trade += 1;
                if maker.raw == 0 {
                    queue.pop_front();
                }
            }
            if queue.is_empty() {
                book.remove(&level);
            }
        }
        let rests = left > 0
            && order.price.is_some()
            && matches!(order.time_in_force, TimeInForce::Gtc | TimeInForce::Gtd);
        if rests {
            let price = order.price.expect("a resting order has a price").raw;
            let own = match order.side {
                OrderSide::Buy => &mut self.bids,
                OrderSide::Sell => &mut self.asks,
            };
            own.entry(price).or_default().push_back(Resting {
                id: order.id.clone(),
                raw: left,
            });
        }
        Matched {
            fills,
            rested: qty(if rests { left } else { 0 }),
            canceled: qty(if rests { 0 } else { left }),
            rejected: None,
        }
    }

    /// Removes a resting order; what it still had, if it was there.
    pub fn cancel(&mut self, id: &str) -> Option<Quantity> {
        for book in [&mut self.bids, &mut self.asks] {
            let mut found = None;
            for (level, queue) in book.iter_mut() {
                if let Some(i) = queue.iter().position(|r| r.id == id) {
                    let r = queue.remove(i).expect("the position was just found");
                    found = Some((*level, r.raw));
                    break;
                }
            }
            if let Some((level, raw)) = found {
                if book.get(&level).is_some_and(VecDeque::is_empty) {
                    book.remove(&level);
                }
                return Some(Quantity::from_raw(raw, self.size_precision));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
