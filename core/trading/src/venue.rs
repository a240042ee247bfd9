//! The simulated venue as a party of its own: an order reaches it with its
//! client order id, it matches the order against the book it shows at that
//! moment ([`venue_book`]: the quote's size at the quote and at
//! `depth_levels` ticks beyond, so a large order walks the book and slips)
//! and keeps what it answered. The desk reaches it in process; a venue
//! process serving the same state over HTTP gives the same orders the same
//! fills.
//!
//! The client order id is the key. A second submission with the same id
//! and the same order is answered with the first report, so a retry after
//! a lost answer never fills twice; with another order under that id it is
//! refused. A report can be read again by id: what a reconciliation asks.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub mod wire;

use crate::book::{Book, Incoming, TimeInForce};
use crate::fixed::{Price, Quantity};
use crate::instrument::Instrument;
use crate::market::Quote;
use crate::order::{LiquiditySide, OrderSide};

/// An order as the venue takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueOrder {
    pub client_order_id: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    /// A limit price; none for a market order.
    pub price: Option<Price>,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    /// A GTD order's expiry: from the first quote at or after it, the
    /// venue expires what rests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_ms: Option<i64>,
}

/// One trade of an order, as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueFill {
    /// Unique per order: `<venue order id>-<the book's trade id>`.
    pub trade_id: String,
    pub quantity: Quantity,
    pub price: Price,
    pub liquidity_side: LiquiditySide,
}

/// What the venue did with an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub client_order_id: String,
    /// `V-<n>`, in the order the venue accepted orders.
    pub venue_order_id: String,
    /// The quote it met.
    pub ts_ms: i64,
    pub fills: Vec<VenueFill>,
    /// What was canceled unfilled (a market or IOC order's rest, or a
    /// resting order's leaves when it is canceled).
    pub canceled: Quantity,
    /// Refused before anything traded, with the code.
    pub rejected: Option<String>,
    /// What still rests at the venue (a GTC or GTD limit order's leaves);
    /// none once the order is done. Later reports of it come with later
    /// quotes ([`Venue::on_quote`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resting: Option<Quantity>,
    /// The venue expired what rested (GTD).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// Why the venue refused a submission outright.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    #[error("client_order_id {0:?} is already used by another order (DUPLICATE_CLIENT_ORDER_ID)")]
    DuplicateClientOrderId(String),
}

/// A limit order resting at the venue.
#[derive(Debug, Clone)]
struct Resting {
    order: VenueOrder,
    venue_order_id: String,
    leaves: Quantity,
    /// Its trades so far: the next trade id's number.
    trades: u32,
}

/// The venue of one instrument: every order it took and what it answered,
/// and the limit orders resting on it.
#[derive(Debug, Clone)]
pub struct Venue {
    instrument: Instrument,
    depth_levels: u32,
    next_id: u64,
    orders: HashMap<String, (VenueOrder, Report)>,
    resting: Vec<Resting>,
}

impl Venue {
    pub fn new(instrument: Instrument, depth_levels: u32) -> Venue {
        Venue {
            instrument,
            depth_levels,
            next_id: 1,
            orders: HashMap::new(),
            resting: Vec::new(),
        }
    }

    /// Takes `order` at quote `q` (the one in force when it arrives), or
    /// answers again what it answered the first time.
    pub fn submit(&mut self, order: VenueOrder, q: &Quote) -> Result<Report, VenueError> {
        if let Some((first, report)) = self.orders.get(&order.client_order_id) {
            return if *first == order {
                Ok(report.clone())
            } else {
                Err(VenueError::DuplicateClientOrderId(order.client_order_id))
            };
        }
        let venue_order_id = format!("V-{}", self.next_id);
        self.next_id += 1;
        let report = answer(
            &self.instrument,
            self.depth_levels,
            venue_order_id,
            &order,
            q,
        );
        if let Some(leaves) = report.resting {
            self.resting.push(Resting {
                order: order.clone(),
                venue_order_id: report.venue_order_id.clone(),
                leaves,
                trades: u32::try_from(report.fills.len()).unwrap_or(u32::MAX),
            });
        }
        self.orders
            .insert(order.client_order_id.clone(), (order, report.clone()));
        Ok(report)
    }

    /// Quote `q` meets the resting orders, oldest first: a GTD order whose
    /// expiry has come expires; a buy whose limit the ask has reached (a
    /// sell, the bid) fills at its limit, as a maker, up to the quote's
    /// size, which the orders before it have drawn down. One report per
    /// order that traded or ended.
    pub fn on_quote(&mut self, q: &Quote) -> Vec<Report> {
        let mut ask_size = q.ask_size.raw;
        let mut bid_size = q.bid_size.raw;
        let mut out = Vec::new();
        let precision = self.instrument.size_precision;
        self.resting.retain_mut(|r| {
            let mut report = Report {
                client_order_id: r.order.client_order_id.clone(),
                venue_order_id: r.venue_order_id.clone(),
                ts_ms: q.ts_ms,
                fills: Vec::new(),
                canceled: Quantity::zero(precision),
                rejected: None,
                resting: None,
                expired: false,
            };
            if r.order.expire_ms.is_some_and(|e| q.ts_ms >= e) {
                report.expired = true;
                out.push(report);
                return false;
            }
            let limit = r.order.price.expect("only limit orders rest");
            let size = match r.order.side {
                OrderSide::Buy if q.ask <= limit => &mut ask_size,
                OrderSide::Sell if q.bid >= limit => &mut bid_size,
                _ => return true,
            };
            let take = r.leaves.raw.min(*size);
            if take == 0 {
                return true;
            }
            *size -= take;
            r.trades += 1;
            r.leaves = Quantity::from_raw(r.leaves.raw - take, precision);
            report.fills.push(VenueFill {
                trade_id: format!("{}-{}", r.venue_order_id, r.trades),
                quantity: Quantity::from_raw(take, precision),
                price: limit,
                liquidity_side: LiquiditySide::Maker,
            });
            let done = r.leaves.raw == 0;
            report.resting = (!done).then_some(r.leaves);
            out.push(report);
            !done
        });
        out
    }

    /// Cancels what rests of `client_order_id` at quote time `ts_ms`: the
    /// report of its leaves canceled, or none if nothing of it rests.
    pub fn cancel(&mut self, client_order_id: &str, ts_ms: i64) -> Option<Report> {
        let at = self
            .resting
            .iter()
            .position(|r| r.order.client_order_id == client_order_id)?;
        let r = self.resting.remove(at);
        Some(Report {
            client_order_id: r.order.client_order_id,
            venue_order_id: r.venue_order_id,
            ts_ms,
            fills: Vec::new(),
            canceled: r.leaves,
            rejected: None,
            resting: None,
            expired: false,
        })
    }

    /// What the venue answered when it took `client_order_id` (the first
    /// report; a resting order's later ones come from [`Venue::on_quote`]
    /// and [`Venue::cancel`]), if it has seen it.
    pub fn report(&self, client_order_id: &str) -> Option<&Report> {
        self.orders.get(client_order_id).map(|(_, r)| r)
    }

    /// Orders the venue has taken.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
}

/// What the venue answers `order` at quote `q`, as its `venue_order_id`:
/// the order matched against [`venue_book`]. The same order, quote and id
/// give the same report wherever the venue runs.
pub fn answer(
    instrument: &Instrument,
    depth_levels: u32,
    venue_order_id: String,
    order: &VenueOrder,
    q: &Quote,
) -> Report {
    let mut book = venue_book(instrument, q, depth_levels);
    let matched = book.submit(Incoming {
        id: order.client_order_id.clone(),
        side: order.side,
        quantity: order.quantity,
        price: order.price,
        time_in_force: order.time_in_force,
        post_only: order.post_only,
    });
    Report {
        client_order_id: order.client_order_id.clone(),
        ts_ms: q.ts_ms,
        fills: matched
            .fills
            .iter()
            .map(|f| VenueFill {
                trade_id: format!("{venue_order_id}-{}", f.trade_id),
                quantity: f.quantity,
                price: f.price,
                liquidity_side: f.liquidity_side(&order.client_order_id),
            })
            .collect(),
        canceled: matched.canceled,
        rejected: matched.rejected.map(str::to_owned),
        resting: (matched.rested.raw > 0).then_some(matched.rested),
        expired: false,
        venue_order_id,
    }
}

/// The simulated venue's book at quote `q`: the quote's size at the quote
/// and at each of `depth_levels` ticks beyond, on both sides, so an order
/// larger than the quote walks the book and slips.
pub fn venue_book(instrument: &Instrument, q: &Quote, depth_levels: u32) -> Book {
    let mut book = Book::new(instrument.price_precision, instrument.size_precision);
    let tick = instrument.tick_size.raw.max(1);
    for k in 0..=i64::from(depth_levels) {
        for (side, price, size) in [
            (OrderSide::Sell, q.ask.raw + k * tick, q.ask_size),
            (OrderSide::Buy, q.bid.raw - k * tick, q.bid_size),
        ] {
            if price <= 0 || size.is_zero() {
                continue;
            }
            book.submit(Incoming {
                id: format!("MM-{k}"),
                side,
                quantity: size,
                price: Some(Price::from_raw(price, instrument.price_precision)),
                time_in_force: TimeInForce::Gtc,
                post_only: false,
            });
        }
    }
    book
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Generator, sim_models};

    fn setup() -> (Venue, Quote) {
        let model = sim_models().remove(0);
        let instrument = model.instrument.clone();
        let q = Generator::new(1, vec![model]).quotes(0, 1_000, 1).remove(0);
        (Venue::new(instrument, 2), q)
    }

    fn buy(venue: &Venue, id: &str, lots: u64) -> VenueOrder {
        let lot = venue.instrument.lot_size;
        VenueOrder {
            client_order_id: id.into(),
            side: OrderSide::Buy,
            quantity: Quantity::from_raw(lot.raw * lots, lot.precision),
            price: None,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
            expire_ms: None,
        }
    }

    #[test]
    fn a_market_order_walks_the_book_and_each_fill_has_its_own_trade_id() {
        let (mut venue, q) = setup();
        let big = q.ask_size.raw / venue.instrument.lot_size.raw + 1;
        let r = venue.submit(buy(&venue, "O-1", big), &q).unwrap();
        assert_eq!(r.venue_order_id, "V-1");
        assert!(r.fills.len() >= 2, "past the quote's size it slips: {r:?}");
        assert!(r.fills[1].price > r.fills[0].price);
        let ids: std::collections::HashSet<_> = r.fills.iter().map(|f| &f.trade_id).collect();
        assert_eq!(ids.len(), r.fills.len());
        assert!(
            r.fills
                .iter()
                .all(|f| f.liquidity_side == LiquiditySide::Taker)
        );
    }

    /// A retry after a lost answer gets the first answer; nothing fills
    /// twice. Another order under a used id is refused.
    #[test]
    fn a_client_order_id_is_filled_once_and_never_reused() {
        let (mut venue, q) = setup();
        let first = venue.submit(buy(&venue, "O-1", 1), &q).unwrap();
        let again = venue.submit(buy(&venue, "O-1", 1), &q).unwrap();
        assert_eq!(first, again);
        assert_eq!(venue.len(), 1);
        assert_eq!(
            venue.submit(buy(&venue, "O-1", 2), &q),
            Err(VenueError::DuplicateClientOrderId("O-1".into()))
        );
        assert_eq!(venue.report("O-1"), Some(&first));
        assert_eq!(venue.report("O-2"), None);
        let second = venue.submit(buy(&venue, "O-2", 1), &q).unwrap();
        assert_eq!(second.venue_order_id, "V-2");
    }
}
