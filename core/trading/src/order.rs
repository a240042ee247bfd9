//! Orders and their lifecycle, in NautilusTrader's vocabulary: an order's
//! [`OrderStatus`] moves only by an [`OrderEvent`], and only along the
//! edges of [`OrderStatus::on`]. A modify or cancel the venue rejects puts
//! the order back in the status it had before it was asked; a fill may
//! race a cancel and still land (the venue's word wins); a fill is applied
//! once per trade id, and never past the order's quantity.

use serde::{Deserialize, Serialize};

use crate::fixed::{Price, Quantity};

/// Where an order is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Created by a strategy; not yet past risk.
    Initialized,
    /// Refused by the risk engine before it left (terminal).
    Denied,
    /// Sent to the venue, no answer yet.
    Submitted,
    /// Working at the venue.
    Accepted,
    /// Refused by the venue (terminal).
    Rejected,
    /// Canceled (terminal, but a fill that raced the cancel still lands).
    Canceled,
    /// Its time in force ran out (terminal).
    Expired,
    /// A stop's trigger price was reached.
    Triggered,
    /// A modify was asked of the venue.
    PendingUpdate,
    /// A cancel was asked of the venue.
    PendingCancel,
    PartiallyFilled,
    /// Terminal.
    Filled,
}

impl OrderStatus {
    /// Nothing more happens to it (bar a fill racing a cancel).
    pub const fn is_closed(self) -> bool {
        matches!(
            self,
            Self::Denied | Self::Rejected | Self::Canceled | Self::Expired | Self::Filled
        )
    }

    /// Working at the venue: it can still fill.
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            Self::Accepted
                | Self::Triggered
                | Self::PendingUpdate
                | Self::PendingCancel
                | Self::PartiallyFilled
        )
    }

    /// Asked of the venue, answer awaited.
    pub const fn is_inflight(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::PendingUpdate | Self::PendingCancel
        )
    }

    /// The status an event leads to from this one, or `None` when the event
    /// cannot happen here. `before` is the status the order had before its
    /// pending modify or cancel (what a rejection of it restores); `filled`
    /// says whether a fill completes the order.
    pub fn on(self, event: EventKind, before: OrderStatus, completes: bool) -> Option<OrderStatus> {
        use EventKind as E;
        use OrderStatus as S;
        let fill = if completes {
            S::Filled
        } else {
            S::PartiallyFilled
        };
        Some(match (self, event) {
            (S::Initialized, E::Denied) => S::Denied,
            (S::Initialized, E::Submitted) => S::Submitted,
            // A local cancel, before it ever left.
            (S::Initialized, E::Canceled) => S::Canceled,

            (S::Submitted, E::Accepted) => S::Accepted,
            (S::Submitted, E::Rejected) => S::Rejected,
            // IOC and FOK orders the venue cancels at once.
            (S::Submitted, E::Canceled) => S::Canceled,
            (S::Submitted, E::Triggered) => S::Triggered,
            (S::Submitted, E::PendingUpdate) => S::PendingUpdate,
            (S::Submitted, E::PendingCancel) => S::PendingCancel,
            (S::Submitted, E::Filled) => fill,

            // A stop-limit the venue refuses once triggered.
            (S::Accepted, E::Rejected) => S::Rejected,
            (S::Accepted, E::Canceled) => S::Canceled,
            (S::Accepted, E::Expired) => S::Expired,
            (S::Accepted, E::Triggered) => S::Triggered,
            (S::Accepted, E::PendingUpdate) => S::PendingUpdate,
            (S::Accepted, E::PendingCancel) => S::PendingCancel,
            // The venue changed it on its own.
            (S::Accepted, E::Updated) => S::Accepted,
            (S::Accepted, E::Filled) => fill,

            (S::Triggered, E::Rejected) => S::Rejected,
            (S::Triggered, E::Canceled) => S::Canceled,
            (S::Triggered, E::Expired) => S::Expired,
            (S::Triggered, E::PendingUpdate) => S::PendingUpdate,
            (S::Triggered, E::PendingCancel) => S::PendingCancel,
            (S::Triggered, E::Updated) => S::Triggered,
            (S::Triggered, E::Filled) => fill,

            // What the modify was asked from comes back, changed or not.
            (S::PendingUpdate, E::Updated | E::ModifyRejected) => before,
            (S::PendingUpdate, E::Accepted) => S::Accepted,
            (S::PendingUpdate, E::Rejected) => S::Rejected,
            (S::PendingUpdate, E::Canceled) => S::Canceled,
            (S::PendingUpdate, E::Expired) => S::Expired,
            (S::PendingUpdate, E::Triggered) => S::Triggered,
            // Several requests may be outstanding.
            (S::PendingUpdate, E::PendingUpdate) => S::PendingUpdate,
            (S::PendingUpdate, E::PendingCancel) => S::PendingCancel,
            (S::PendingUpdate, E::Filled) => fill,

            // A cancel the venue refused: the order works on as before.
            (S::PendingCancel, E::CancelRejected) => before,
            (S::PendingCancel, E::Accepted) => S::Accepted,
            (S::PendingCancel, E::Rejected) => S::Rejected,
            (S::PendingCancel, E::Canceled) => S::Canceled,
            (S::PendingCancel, E::Expired) => S::Expired,
            (S::PendingCancel, E::PendingCancel) => S::PendingCancel,
            (S::PendingCancel, E::Filled) => fill,

            (S::PartiallyFilled, E::Canceled) => S::Canceled,
            (S::PartiallyFilled, E::Expired) => S::Expired,
            (S::PartiallyFilled, E::PendingUpdate) => S::PendingUpdate,
            (S::PartiallyFilled, E::PendingCancel) => S::PendingCancel,
            (S::PartiallyFilled, E::Updated) => S::PartiallyFilled,
            (S::PartiallyFilled, E::Filled) => fill,

            // A fill that raced the cancel: the venue traded, so it counts.
            (S::Canceled, E::Filled) => fill,

            _ => return None,
        })
    }
}

/// What can happen to an order, without its data (the table's other axis).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    Denied,
    Submitted,
    Accepted,
    Rejected,
    Canceled,
    Expired,
    Triggered,
    PendingUpdate,
    PendingCancel,
    ModifyRejected,
    CancelRejected,
    Updated,
    Filled,
}

/// Which way an order trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderSide {
    Buy,
    Sell,
}

/// Whether a fill added liquidity to the book or took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LiquiditySide {
    Maker,
    Taker,
}

/// One trade against an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Unique per order: the venue's id for this trade.
    pub trade_id: String,
    pub last_qty: Quantity,
    pub last_px: Price,
    pub liquidity_side: LiquiditySide,
}

/// An event with its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderEvent {
    Denied {
        reason_code: String,
    },
    Submitted,
    Accepted {
        venue_order_id: String,
    },
    Rejected {
        reason_code: String,
    },
    Canceled,
    Expired,
    Triggered,
    PendingUpdate,
    PendingCancel,
    ModifyRejected {
        reason_code: String,
    },
    CancelRejected {
        reason_code: String,
    },
    Updated {
        quantity: Quantity,
        price: Option<Price>,
    },
    Filled(Fill),
}

impl OrderEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Denied { .. } => EventKind::Denied,
            Self::Submitted => EventKind::Submitted,
            Self::Accepted { .. } => EventKind::Accepted,
            Self::Rejected { .. } => EventKind::Rejected,
            Self::Canceled => EventKind::Canceled,
            Self::Expired => EventKind::Expired,
            Self::Triggered => EventKind::Triggered,
            Self::PendingUpdate => EventKind::PendingUpdate,
            Self::PendingCancel => EventKind::PendingCancel,
            Self::ModifyRejected { .. } => EventKind::ModifyRejected,
            Self::CancelRejected { .. } => EventKind::CancelRejected,
            Self::Updated { .. } => EventKind::Updated,
            Self::Filled(_) => EventKind::Filled,
        }
    }
}

/// Why an event was not applied. The order is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order {order}: {event} cannot happen while it is {status}")]
    InvalidTransition {
        order: String,
        status: &'static str,
        event: &'static str,
    },
    #[error("order {order}: trade {trade_id} was already applied")]
    DuplicateTradeId { order: String, trade_id: String },
    #[error(
        "order {order}: a fill of {last_qty} would take it past its quantity {quantity} (filled {filled})"
    )]
    Overfill {
        order: String,
        quantity: Quantity,
        filled: Quantity,
        last_qty: Quantity,
    },
    #[error(
        "order {order}: an update to {quantity} leaves nothing past what has filled ({filled})"
    )]
    QuantityBelowFilled {
        order: String,
        quantity: Quantity,
        filled: Quantity,
    },
    #[error("order {order}: {field} is zero")]
    Zero { order: String, field: &'static str },
}

/// An order: what was asked, and what its events made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub client_order_id: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    pub price: Option<Price>,
    pub status: OrderStatus,
    /// The status before the pending modify or cancel, which a rejection
    /// of it restores.
    pub previous_status: OrderStatus,
    pub filled_qty: Quantity,
    pub venue_order_id: Option<String>,
    /// Every trade applied, in order.
    pub trade_ids: Vec<String>,
    /// Every event applied, in order.
    pub events: Vec<OrderEvent>,
}

impl Order {
    pub fn new(
        client_order_id: impl Into<String>,
        side: OrderSide,
        quantity: Quantity,
        price: Option<Price>,
    ) -> Result<Order, OrderError> {
        let client_order_id = client_order_id.into();
        if quantity.is_zero() {
            return Err(OrderError::Zero {
                order: client_order_id,
                field: "quantity",
            });
        }
        Ok(Order {
            client_order_id,
            side,
            quantity,
            price,
            status: OrderStatus::Initialized,
            previous_status: OrderStatus::Initialized,
            filled_qty: Quantity::zero(quantity.precision),
            venue_order_id: None,
            trade_ids: Vec::new(),
            events: Vec::new(),
        })
    }

    /// What is left to fill.
    pub fn leaves_qty(&self) -> Quantity {
        Quantity::from_raw(
            self.quantity.raw - self.filled_qty.raw,
            self.quantity.precision,
        )
    }

    /// Applies `event`, or leaves the order as it was and says why not.
    pub fn apply(&mut self, event: OrderEvent) -> Result<OrderStatus, OrderError> {
        let kind = event.kind();
        let completes = match &event {
            Event::Filled(fill) => {
                if self.trade_ids.contains(&fill.trade_id) {
                    return Err(OrderError::DuplicateTradeId {
                        order: self.client_order_id.clone(),
                        trade_id: fill.trade_id.clone(),
                    });
                }
                if fill.last_qty.is_zero() {
                    return Err(OrderError::Zero {
                        order: self.client_order_id.clone(),
                        field: "last_qty",
                    });
                }
                if fill.last_qty.raw > self.leaves_qty().raw {
                    return Err(OrderError::Overfill {
                        order: self.client_order_id.clone(),
                        quantity: self.quantity,
                        filled: self.filled_qty,
                        last_qty: fill.last_qty,
                    });
                }
                fill.last_qty.raw == self.leaves_qty().raw
            }
            _ => false,
        };
        let next = self
            .status
            .on(kind, self.previous_status, completes)
            .ok_or_else(|| OrderError::InvalidTransition {
                order: self.client_order_id.clone(),
                status: self.status.into(),
                event: kind.into(),
            })?;
        if let Event::Updated { quantity, .. } = &event
            && quantity.raw <= self.filled_qty.raw
        {
            return Err(OrderError::QuantityBelowFilled {
                order: self.client_order_id.clone(),
                quantity: *quantity,
                filled: self.filled_qty,
            });
        }
        if matches!(kind, EventKind::PendingUpdate | EventKind::PendingCancel)
            && !matches!(
                self.status,
                OrderStatus::PendingUpdate | OrderStatus::PendingCancel
            )
        {
            self.previous_status = self.status;
        }
        match &event {
            Event::Accepted { venue_order_id } => {
                self.venue_order_id = Some(venue_order_id.clone())
            }
            Event::Updated { quantity, price } => {
                self.quantity = *quantity;
                if price.is_some() {
                    self.price = *price;
                }
            }
            Event::Filled(fill) => {
                self.filled_qty.raw += fill.last_qty.raw;
                self.trade_ids.push(fill.trade_id.clone());
            }
            _ => {}
        }
        self.status = next;
        self.events.push(event);
        Ok(next)
    }
}

use OrderEvent as Event;

#[cfg(test)]
mod tests;
