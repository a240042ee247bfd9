//! The kill switch in three levels, each including the ones before it,
//! every pull recorded with who pulled it and why.

use serde::{Deserialize, Serialize};

use super::{Desk, DeskError, Disposition, Sent, Source};
use crate::fixed::{Price, Quantity};
use crate::order::{Order, OrderEvent, OrderSide};
use crate::risk::{self, TradingState};

/// The kill switch's levels, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillLevel {
    /// No new entries: the desk goes REDUCING (orders that only reduce
    /// the position still pass risk).
    HaltEntries,
    /// Also cancel every order not yet at the venue, and what rests there.
    CancelOrders,
    /// Also send a market order that closes the position, and another for
    /// whatever the venue's book could not take, until the desk is flat.
    Flatten,
}

/// One use of the kill switch: who, why, when, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillRecord {
    /// `K-<n>`: the flattening order's fills name it as their source.
    pub id: String,
    pub level: KillLevel,
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
    /// Orders it canceled (before they reached the venue, or resting).
    pub canceled: Vec<String>,
    /// The orders that close the position, in the order sent: none when
    /// flat, before any quote, or with no free cash to back one. A market
    /// order takes only what the venue's book holds at the quote it meets;
    /// whatever it leaves goes out again at the next quote, until flat.
    pub flatten_orders: Vec<String>,
    /// What the flattening order is valued at (the last mid).
    pub reference_price: Price,
}

impl Desk {
    /// Pulls the kill switch at `level`, recorded with who and why. A
    /// higher level includes the lower ones; the desk stays REDUCING
    /// afterwards until its state is set again. The closing order is the
    /// operator's: it goes to the venue without the pre-trade checks (a
    /// rate or notional limit must not keep a desk from getting flat).
    pub fn kill(
        &mut self,
        level: KillLevel,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<&KillRecord, DeskError> {
        if by.trim().is_empty() || reason.trim().is_empty() {
            return Err(DeskError::Config {
                field: if by.trim().is_empty() { "by" } else { "reason" },
                reason: "a kill names who pulled it and why".into(),
            });
        }
        self.state = TradingState::Reducing;
        let k = self.kills.len();
        let mut record = KillRecord {
            id: format!("K-{}", k + 1),
            level,
            by: by.to_owned(),
            reason: reason.to_owned(),
            at_ms: now_ms,
            canceled: Vec::new(),
            flatten_orders: Vec::new(),
            // The last quote's mid: the close of the bar being built.
            reference_price: self.building.as_ref().map_or(
                Price::from_raw(0, self.cfg.instrument.price_precision),
                |bar| bar.close,
            ),
        };
        if level >= KillLevel::CancelOrders {
            for sent in std::mem::take(&mut self.sent) {
                let order = &mut self.orders[sent.order];
                order.apply(OrderEvent::Canceled)?;
                self.ledger.release(&order.client_order_id)?;
                record.canceled.push(order.client_order_id.clone());
                if let Source::Signal(i) = self.order_source[sent.order] {
                    self.signals[i].disposition = Disposition::Killed {
                        kill: record.id.clone(),
                    };
                }
            }
            for idx in std::mem::take(&mut self.resting) {
                let kill = Disposition::Killed {
                    kill: record.id.clone(),
                };
                self.cancel_resting(idx, now_ms, kill)?;
                record
                    .canceled
                    .push(self.orders[idx].client_order_id.clone());
            }
        }
        self.kills.push(record);
        if level == KillLevel::Flatten {
            self.flatten(k, now_ms + self.cfg.latency.base_ms)?;
        }
        Ok(&self.kills[k])
    }

    /// Sends kill `k`'s market order for what is open, counting what is on
    /// its way, to reach the venue at `arrives_ms`. Nothing when the desk
    /// is flat, has no price to value the order at, or no free cash.
    pub(super) fn flatten(&mut self, k: usize, arrives_ms: i64) -> Result<(), DeskError> {
        let open = self.exposure();
        let reference = self.kills[k].reference_price;
        let free = self.ledger.balance(crate::ledger::Account::Cash);
        if open == 0 || reference.raw <= 0 || free <= 0 {
            return Ok(());
        }
        let side = if open > 0 {
            OrderSide::Sell
        } else {
            OrderSide::Buy
        };
        let quantity = Quantity::from_raw(
            u64::try_from(open.unsigned_abs()).unwrap_or(u64::MAX),
            self.cfg.instrument.size_precision,
        );
        let client_id = format!("O-{}", self.orders.len() + 1);
        let mut order = Order::new(client_id.clone(), side, quantity, None)?;
        let hold = risk::notional(reference, quantity).min(free).max(1);
        self.ledger.reserve(&client_id, hold)?;
        order.apply(OrderEvent::Submitted)?;
        self.sent.push_back(Sent {
            arrives_ms,
            order: self.orders.len(),
        });
        self.orders.push(order);
        self.order_source.push(Source::Kill(k));
        self.order_expiry.push(None);
        self.kills[k].flatten_orders.push(client_id);
        Ok(())
    }
}
