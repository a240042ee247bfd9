//! Fills from bars, for backtests and replays on OHLCV data: each bar is
//! walked open → high → low → close, and the working orders are checked at
//! each point in that order.
//!
//! A stop triggers when the walk reaches its trigger price and then fills
//! as a market order; a limit fills when the walk reaches its price. At the
//! open, a price already beyond the order's (a gap) fills at the open; past
//! the open, the walk passes through every price between two points, so the
//! order fills at its own price. A stop-limit triggers like a stop and then
//! works as a limit. Orders fill their whole quantity (partial fills come
//! with the fill model).

use serde::{Deserialize, Serialize};

use crate::fixed::{Price, Quantity};
use crate::market::Bar;
use crate::order::OrderSide;

/// What kind of order works, with its prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderType {
    Limit { price: Price },
    Stop { trigger: Price },
    StopLimit { trigger: Price, price: Price },
}

/// An order working against bars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Working {
    pub id: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    pub order_type: OrderType,
    pub triggered: bool,
}

/// What a bar did to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BarEvent {
    Triggered {
        order: String,
        at: Price,
    },
    Filled {
        order: String,
        price: Price,
        quantity: Quantity,
    },
}

/// Whether `p` is at or beyond `level` for `side` moving "against" it:
/// a buy stop or a sell limit is reached from below, the others from above.
fn reached(p: Price, level: Price, from_below: bool) -> bool {
    if from_below { p >= level } else { p <= level }
}

/// Walks `bar` over `working`, removing the orders that fill; returns what
/// happened, in the order it happened.
pub fn process_bar(working: &mut Vec<Working>, bar: &Bar) -> Vec<BarEvent> {
    let mut events = Vec::new();
    let points = [bar.open, bar.high, bar.low, bar.close];
    for (i, p) in points.into_iter().enumerate() {
        let at_open = i == 0;
        let mut k = 0;
        while k < working.len() {
            let w = &mut working[k];
            let buy = w.side == OrderSide::Buy;
            // The price an order reaching `level` trades at: the open on a
            // gap, else the level itself.
            let at = |level: Price| if at_open { p } else { level };
            let mut fill = None;
            match w.order_type {
                OrderType::Limit { price } => {
                    if reached(p, price, !buy) {
                        fill = Some(if at_open { p } else { price });
                    }
                }
                OrderType::Stop { trigger } => {
                    if reached(p, trigger, buy) {
                        events.push(BarEvent::Triggered {
                            order: w.id.clone(),
                            at: at(trigger),
                        });
                        fill = Some(at(trigger));
                    }
                }
                OrderType::StopLimit { trigger, price } => {
                    if !w.triggered && reached(p, trigger, buy) {
                        w.triggered = true;
                        let stood = at(trigger);
                        events.push(BarEvent::Triggered {
                            order: w.id.clone(),
                            at: stood,
                        });
                        // Where the price stood when it triggered may already
                        // be within the limit: it fills there.
                        if reached(stood, price, !buy) {
                            fill = Some(stood);
                        }
                    } else if w.triggered && reached(p, price, !buy) {
                        fill = Some(if at_open { p } else { price });
                    }
                }
            }
            match fill {
                Some(price) => {
                    let w = working.remove(k);
                    events.push(BarEvent::Filled {
                        order: w.id,
                        price,
                        quantity: w.quantity,
                    });
                }
                None => k += 1,
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(n: i64) -> Price {
        Price::from_raw(n * 1_000_000_000, 2)
    }

    fn bar(o: i64, h: i64, l: i64, c: i64) -> Bar {
        Bar {
            ts_ms: 0,
            instrument: "ETHUSD.SIM".into(),
            open: px(o),
            high: px(h),
            low: px(l),
            close: px(c),
            volume: Quantity::from_raw(0, 2),
        }
    }

    fn order(id: &str, side: OrderSide, order_type: OrderType) -> Working {
        Working {
            id: id.into(),
            side,
            quantity: Quantity::from_raw(1_000_000_000, 0),
            order_type,
            triggered: false,
        }
    }

    fn fills(events: &[BarEvent]) -> Vec<(&str, i64)> {
        events
            .iter()
            .filter_map(|e| match e {
                BarEvent::Filled { order, price, .. } => {
                    Some((order.as_str(), price.raw / 1_000_000_000))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_stop_gapped_through_fills_at_the_open_and_one_touched_at_its_trigger() {
        let mut w = vec![
            order("gap", OrderSide::Buy, OrderType::Stop { trigger: px(105) }),
            order(
                "touch",
                OrderSide::Sell,
                OrderType::Stop { trigger: px(98) },
            ),
        ];
        let events = process_bar(&mut w, &bar(108, 110, 95, 100));
        assert_eq!(fills(&events), vec![("gap", 108), ("touch", 98)]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_limit_fills_at_its_price_or_better_at_a_gapping_open() {
        let mut w = vec![
            order("touch", OrderSide::Buy, OrderType::Limit { price: px(97) }),
            order("gap", OrderSide::Sell, OrderType::Limit { price: px(99) }),
            order("never", OrderSide::Buy, OrderType::Limit { price: px(90) }),
        ];
        let events = process_bar(&mut w, &bar(100, 103, 95, 101));
        assert_eq!(fills(&events), vec![("gap", 100), ("touch", 97)]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].id, "never");
    }

    #[test]
    fn the_walk_is_open_high_low_close() {
        // Both stops trigger in one bar: the high comes before the low.
        let mut w = vec![
            order("down", OrderSide::Sell, OrderType::Stop { trigger: px(96) }),
            order("up", OrderSide::Buy, OrderType::Stop { trigger: px(104) }),
        ];
        let events = process_bar(&mut w, &bar(100, 105, 95, 100));
        assert_eq!(fills(&events), vec![("up", 104), ("down", 96)]);
    }

    #[test]
    fn a_stop_limit_triggers_then_waits_for_its_limit() {
        let sl = OrderType::StopLimit {
            trigger: px(104),
            price: px(103),
        };
        let mut w = vec![order("sl", OrderSide::Buy, sl)];
        // Triggered at 104 on the way up; the limit 103 is not reached
        // until the walk comes down.
        let events = process_bar(&mut w, &bar(100, 106, 102, 105));
        assert!(matches!(events[0], BarEvent::Triggered { ref at, .. } if *at == px(104)));
        assert_eq!(fills(&events), vec![("sl", 103)]);
        // Triggered but never back down to its limit: still working.
        let mut w = vec![order("sl", OrderSide::Buy, sl)];
        let events = process_bar(&mut w, &bar(100, 108, 104, 107));
        assert_eq!(fills(&events), vec![]);
        assert!(w[0].triggered);
        let events = process_bar(&mut w, &bar(106, 106, 101, 102));
        assert_eq!(fills(&events), vec![("sl", 103)]);
        // A limit above the trigger: it fills where it triggered.
        let within = OrderType::StopLimit {
            trigger: px(104),
            price: px(105),
        };
        let mut w = vec![order("in", OrderSide::Buy, within)];
        assert_eq!(
            fills(&process_bar(&mut w, &bar(100, 106, 99, 100))),
            vec![("in", 104)]
        );
    }
}
