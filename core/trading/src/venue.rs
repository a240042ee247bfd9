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
    /// What was canceled unfilled (a market or IOC order's rest).
    pub canceled: Quantity,
    /// Refused before anything traded, with the code.
    pub rejected: Option<String>,
}

/// Why the venue refused a submission outright.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    #[error("client_order_id {0:?} is already used by another order (DUPLICATE_CLIENT_ORDER_ID)")]
    DuplicateClientOrderId(String),
}

/// The venue of one instrument: every order it took and what it answered.
#[derive(Debug, Clone)]
pub struct Venue {
    instrument: Instrument,
    depth_levels: u32,
    next_id: u64,
    orders: HashMap<String, (VenueOrder, Report)>,
}

impl Venue {
    pub fn new(instrument: Instrument, depth_levels: u32) -> Venue {
        Venue {
            instrument,
            depth_levels,
            next_id: 1,
            orders: HashMap::new(),
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
        self.orders
            .insert(order.client_order_id.clone(), (order, report.clone()));
        Ok(report)
    }

    /// What the venue answered for `client_order_id`, if it has seen it.
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
