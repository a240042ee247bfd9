use proptest::prelude::*;

use super::*;

fn q(n: u64) -> Quantity {
    Quantity::from_raw(n * 1_000_000_000, 0)
}

fn px(n: i64) -> Price {
    Price::from_raw(n * 1_000_000_000, 2)
}

fn order(id: &str, side: OrderSide, n: u64, price: Option<i64>, tif: TimeInForce) -> Incoming {
    Incoming {
        id: id.into(),
        side,
        quantity: q(n),
        price: price.map(px),
        time_in_force: tif,
        post_only: false,
    }
}

use OrderSide::{Buy, Sell};
use TimeInForce::{Fok, Gtc, Ioc};

/// Asks: 3 @ 101 (A1, then A2 behind it), 5 @ 102 (A3).
fn book() -> Book {
    let mut b = Book::new(2, 0);
    for o in [
        order("A1", Sell, 2, Some(101), Gtc),
        order("A2", Sell, 1, Some(101), Gtc),
        order("A3", Sell, 5, Some(102), Gtc),
    ] {
        assert!(b.submit(o).fills.is_empty());
    }
    b
}

#[test]
fn an_order_takes_best_price_first_and_oldest_first_at_a_price() {
    let mut b = book();
    let m = b.submit(order("B1", Buy, 4, Some(102), Gtc));
    let trades: Vec<(&str, i64, u64)> = m
        .fills
        .iter()
        .map(|f| {
            (
                f.maker.as_str(),
                f.price.raw / 1_000_000_000,
                f.quantity.raw / 1_000_000_000,
            )
        })
        .collect();
    assert_eq!(trades, vec![("A1", 101, 2), ("A2", 101, 1), ("A3", 102, 1)]);
    assert_eq!(m.fills[0].trade_id, "T-1");
    assert_eq!(m.fills[0].liquidity_side("B1"), LiquiditySide::Taker);
    assert_eq!(m.fills[0].liquidity_side("A1"), LiquiditySide::Maker);
    assert_eq!((m.rested, m.canceled), (q(0), q(0)));
    assert_eq!(b.best_ask(), Some(px(102)));
    assert_eq!(b.depth(Sell), q(4).raw);
}

#[test]
fn a_limit_takes_only_up_to_its_price_and_rests_the_rest() {
    let mut b = book();
    let m = b.submit(order("B1", Buy, 5, Some(101), Gtc));
    assert_eq!(m.fills.len(), 2);
    assert_eq!(m.rested, q(2));
    assert_eq!(b.best_bid(), Some(px(101)));
    assert_eq!(b.best_ask(), Some(px(102)));
}

#[test]
fn ioc_cancels_its_rest_and_a_market_order_never_rests() {
    let mut b = book();
    let m = b.submit(order("B1", Buy, 5, Some(101), Ioc));
    assert_eq!((m.fills.len(), m.rested, m.canceled), (2, q(0), q(2)));
    let m = b.submit(order("B2", Buy, 9, None, Gtc));
    assert_eq!((m.rested, m.canceled), (q(0), q(4)));
    assert_eq!(b.depth(Sell), 0);
    assert_eq!(b.best_bid(), None);
}

#[test]
fn fok_short_of_its_quantity_trades_nothing() {
    let mut b = book();
    let m = b.submit(order("B1", Buy, 4, Some(101), Fok));
    assert!(m.fills.is_empty());
    assert_eq!(m.canceled, q(4));
    assert_eq!(b, book(), "the book is untouched");
    let m = b.submit(order("B2", Buy, 8, Some(102), Fok));
    assert_eq!(
        m.fills.iter().map(|f| f.quantity.raw).sum::<u64>(),
        q(8).raw
    );
}

#[test]
fn post_only_that_would_take_is_rejected_and_one_that_would_not_rests() {
    let mut b = book();
    let take = Incoming {
        post_only: true,
        ..order("B1", Buy, 1, Some(101), Gtc)
    };
    let m = b.submit(take);
    assert_eq!(m.rejected, Some("POST_ONLY_WOULD_TAKE"));
    assert_eq!(b, book());
    let make = Incoming {
        post_only: true,
        ..order("B2", Buy, 1, Some(100), Gtc)
    };
    assert_eq!(b.submit(make).rested, q(1));
    let market = Incoming {
        post_only: true,
        ..order("B3", Buy, 1, None, Ioc)
    };
    assert_eq!(b.submit(market).rejected, Some("POST_ONLY_MARKET_ORDER"));
}

#[test]
fn a_canceled_order_leaves_the_queue_and_its_place() {
    let mut b = book();
    assert_eq!(b.cancel("A1"), Some(q(2)));
    assert_eq!(b.cancel("A1"), None);
    let m = b.submit(order("B1", Buy, 1, Some(101), Ioc));
    assert_eq!(m.fills[0].maker, "A2");
}

proptest! {
    /// Any orders, any order: the book is never left crossed, every
    /// incoming quantity is accounted for (filled, rested or canceled), and
    /// trade ids never repeat.
    #[test]
    fn the_book_stays_uncrossed_and_quantities_add_up(
        orders in prop::collection::vec((any::<bool>(), 1u64..20, prop::option::of(95i64..106), 0u8..3), 1..80)
    ) {
        let mut b = Book::new(2, 0);
        let mut ids = std::collections::HashSet::new();
        for (i, (buy, n, price, tif)) in orders.into_iter().enumerate() {
            let tif = [Gtc, Ioc, Fok][usize::from(tif)];
            let side = if buy { Buy } else { Sell };
            let m = b.submit(order(&format!("O-{i}"), side, n, price, tif));
            let filled: u64 = m.fills.iter().map(|f| f.quantity.raw).sum();
            prop_assert_eq!(filled + m.rested.raw + m.canceled.raw, q(n).raw);
            for f in &m.fills {
                prop_assert!(ids.insert(f.trade_id.clone()));
            }
            if let (Some(bid), Some(ask)) = (b.best_bid(), b.best_ask()) {
                prop_assert!(bid < ask, "crossed: {} / {}", bid, ask);
            }
        }
    }
}
