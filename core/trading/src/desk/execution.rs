//! How the desk's orders reach the venue and what comes back: in process
//! (the desk's own [`Venue`]), or at a venue elsewhere, whose orders
//! [`Desk::due`] hands out and whose reports [`Desk::on_report`] checks
//! whole before [`Desk::apply_report`] posts any of them to the order, the
//! position, the ledger and the fill stream.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Desk, DeskError, Disposition, FillRecord, Source};
use crate::book::TimeInForce;
use crate::fixed::Quantity;
use crate::market::Quote;
use crate::order::{Fill, OrderEvent, OrderSide, OrderStatus};
use crate::risk::{self, TradingState};
use crate::venue::{Report, VenueOrder};

/// An order at the venue's side of the wire: what a venue elsewhere is
/// asked, at the quote it meets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub order: VenueOrder,
    /// The quote the order meets (the first at or after its arrival).
    pub ts_ms: i64,
}

/// A report's breach of the protocol, at `field`.
pub(super) fn protocol(field: impl Into<String>, reason: String) -> DeskError {
    DeskError::Protocol {
        field: field.into(),
        reason,
    }
}

impl Desk {
    /// An order reaches the venue at quote `q` and takes what its book has.
    pub(super) fn execute(&mut self, idx: usize, q: &Quote) -> Result<(), DeskError> {
        let report = self.venue.submit(self.venue_order(idx), q)?;
        self.apply_report(idx, report)
    }

    /// Order `idx` as the venue takes it: a market order, immediate or
    /// cancel, or an entry's limit order, good till its expiry.
    fn venue_order(&self, idx: usize) -> VenueOrder {
        let o = &self.orders[idx];
        let expire_ms = self.order_expiry[idx];
        VenueOrder {
            client_order_id: o.client_order_id.clone(),
            side: o.side,
            quantity: o.quantity,
            price: o.price,
            time_in_force: if expire_ms.is_some() {
                TimeInForce::Gtd
            } else {
                TimeInForce::Ioc
            },
            post_only: false,
            expire_ms,
        }
    }

    /// Cancels resting order `idx` at the venue at `now_ms`: what it left
    /// is released and its signal's disposition is `why`.
    pub(super) fn cancel_resting(
        &mut self,
        idx: usize,
        now_ms: i64,
        why: Disposition,
    ) -> Result<(), DeskError> {
        self.resting.retain(|i| *i != idx);
        let client_id = self.orders[idx].client_order_id.clone();
        if self.venue.cancel(&client_id, now_ms).is_none() {
            return Ok(());
        }
        self.orders[idx].apply(OrderEvent::Canceled)?;
        self.ledger.release(&client_id)?;
        if let Source::Signal(i) = self.order_source[idx] {
            self.signals[i].disposition = why;
        }
        Ok(())
    }

    /// The orders that reach the venue at quote `q`, for a desk whose venue
    /// is elsewhere (its own process): each is to be sent there and its
    /// report given to [`Desk::on_report`] before [`Desk::advance`] takes
    /// `q`, which is the order the desk keeps in process, so both give the
    /// same fills.
    pub fn due(&mut self, q: &Quote) -> Vec<Due> {
        let mut out = Vec::new();
        while self.sent.front().is_some_and(|s| s.arrives_ms <= q.ts_ms) {
            let sent = self.sent.pop_front().expect("checked above");
            self.at_venue.push((sent.order, q.ts_ms));
            out.push(Due {
                order: self.venue_order(sent.order),
                ts_ms: q.ts_ms,
            });
        }
        out
    }

    /// Orders sent to a venue elsewhere whose report has not come back:
    /// their outcome is unknown until it does (reconciling), never assumed.
    pub fn awaiting_reports(&self) -> Vec<&str> {
        self.at_venue
            .iter()
            .map(|(i, _)| self.orders[*i].client_order_id.as_str())
            .collect()
    }

    /// The desk's orders and fills compared with what the venue reports
    /// it did (`reports`, one per order it took): every order the venue
    /// answered is on the desk with the same venue order id and the same
    /// fills, trade for trade, and the other way round, and the venue's
    /// fills add up to the desk's position. Orders whose
    /// report is still awaited are not compared. Returns how many orders
    /// both sides hold and every difference, named by order.
    pub fn differences(&self, reports: &[Report]) -> (u32, Vec<String>) {
        let awaited: std::collections::HashSet<&str> =
            self.awaiting_reports().into_iter().collect();
        let at_venue: std::collections::BTreeMap<&str, &Report> = reports
            .iter()
            .map(|r| (r.client_order_id.as_str(), r))
            .collect();
        let mut out = Vec::new();
        let mut compared = 0;
        for o in &self.orders {
            let id = o.client_order_id.as_str();
            if awaited.contains(id) {
                continue;
            }
            match (at_venue.get(id), &o.venue_order_id) {
                (None, None) => {}
                (None, Some(v)) => out.push(format!("{id}: on the desk as {v}, not at the venue")),
                (Some(r), None) => out.push(format!(
                    "{id}: at the venue as {}, never reported to the desk",
                    r.venue_order_id
                )),
                (Some(r), Some(v)) => {
                    compared += 1;
                    if *v != r.venue_order_id {
                        out.push(format!(
                            "{id}: the desk has venue order {v}, the venue {}",
                            r.venue_order_id
                        ));
                    }
                    let desk: Vec<(&str, Quantity, crate::fixed::Price)> = self
                        .fills
                        .iter()
                        .filter(|f| f.order == id)
                        .map(|f| (f.trade_id.as_str(), f.quantity, f.price))
                        .collect();
                    let venue: Vec<(&str, Quantity, crate::fixed::Price)> = r
                        .fills
                        .iter()
                        .map(|f| (f.trade_id.as_str(), f.quantity, f.price))
                        .collect();
                    if desk != venue {
                        let show = |fills: &[(&str, Quantity, crate::fixed::Price)]| {
                            fills
                                .iter()
                                .map(|(t, q, p)| format!("{t} {q}@{p}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        out.push(format!(
                            "{id}: the desk's fills [{}], the venue's [{}]",
                            show(&desk),
                            show(&venue)
                        ));
                    }
                }
            }
        }
        for r in reports {
            if !self
                .orders
                .iter()
                .any(|o| o.client_order_id == r.client_order_id)
            {
                out.push(format!(
                    "{}: at the venue as {}, not on the desk",
                    r.client_order_id, r.venue_order_id
                ));
            }
        }
        // The position: what the venue's fills add up to, against the
        // desk's (orders still awaited aside).
        let side_of = |id: &str| {
            self.orders
                .iter()
                .find(|o| o.client_order_id == id)
                .map(|o| o.side)
        };
        let venue_net: i128 = reports
            .iter()
            .filter(|r| !awaited.contains(r.client_order_id.as_str()))
            .filter_map(|r| side_of(&r.client_order_id).map(|side| (side, r)))
            .flat_map(|(side, r)| r.fills.iter().map(move |f| super::signed(side, f.quantity)))
            .sum();
        if venue_net != self.position.quantity {
            let show = |raw: i128| {
                let q = Quantity::from_raw(
                    u64::try_from(raw.unsigned_abs()).unwrap_or(u64::MAX),
                    self.cfg.instrument.size_precision,
                );
                format!("{}{q}", if raw < 0 { "-" } else { "" })
            };
            out.push(format!(
                "position: the desk holds {}, the venue's fills add up to {}",
                show(self.position.quantity),
                show(venue_net)
            ));
        }
        (compared, out)
    }

    /// A venue's report of an order [`Desk::due`] handed out. The whole
    /// report is checked before any of it is applied: a report that breaks
    /// the protocol (an order not awaiting one, another quote's time, a
    /// fill off the tick or the lot, more than the order, a trade id twice)
    /// is refused naming the field, and nothing of it is posted.
    pub fn on_report(&mut self, report: Report) -> Result<(), DeskError> {
        let Some(at) = self
            .at_venue
            .iter()
            .position(|(i, _)| self.orders[*i].client_order_id == report.client_order_id)
        else {
            return Err(protocol(
                "client_order_id",
                format!(
                    "{:?} is not an order awaiting a report",
                    report.client_order_id
                ),
            ));
        };
        let (idx, ts_ms) = self.at_venue[at];
        if report.ts_ms != ts_ms {
            return Err(protocol(
                "ts_ms",
                format!("{} is not the quote the order met ({ts_ms})", report.ts_ms),
            ));
        }
        let order = &self.orders[idx];
        let mut total: u64 = 0;
        let mut seen = std::collections::HashSet::new();
        for (n, f) in report.fills.iter().enumerate() {
            let field = |name: &str| format!("fills[{n}].{name}");
            self.cfg
                .instrument
                .check_quantity(f.quantity)
                .map_err(|e| protocol(field("quantity"), e.to_string()))?;
            self.cfg
                .instrument
                .check_price("price", f.price)
                .map_err(|e| protocol(field("price"), e.to_string()))?;
            if !seen.insert(f.trade_id.as_str()) || f.trade_id.is_empty() {
                return Err(protocol(
                    field("trade_id"),
                    format!("{:?} is empty or repeated", f.trade_id),
                ));
            }
            total = total.saturating_add(f.quantity.raw);
        }
        if total > order.quantity.raw {
            return Err(protocol(
                "fills",
                format!(
                    "they fill {} of an order of {}",
                    Quantity::from_raw(total, order.quantity.precision),
                    order.quantity
                ),
            ));
        }
        if report.rejected.is_some() && !report.fills.is_empty() {
            return Err(protocol("rejected", "a rejected order has no fills".into()));
        }
        self.at_venue.remove(at);
        self.apply_report(idx, report)
    }

    /// Applies a venue's report of order `idx`: accepted, each fill to the
    /// order, the position and the ledger, then its end.
    pub(super) fn apply_report(&mut self, idx: usize, report: Report) -> Result<(), DeskError> {
        let source = self.order_source[idx];
        let (client_id, side) = {
            let o = &self.orders[idx];
            (o.client_order_id.clone(), o.side)
        };
        if self.orders[idx].status == OrderStatus::Submitted {
            self.orders[idx].apply(OrderEvent::Accepted {
                venue_order_id: report.venue_order_id.clone(),
            })?;
        }
        let (reference, source_id) = match source {
            Source::Signal(i) => (
                self.signals[i].insight.reference_price,
                self.signals[i].id.clone(),
            ),
            Source::Kill(k) => (self.kills[k].reference_price, self.kills[k].id.clone()),
        };
        for f in &report.fills {
            let liquidity = f.liquidity_side;
            let value = risk::notional(f.price, f.quantity);
            let commission = self.cfg.fees.commission(value, liquidity);
            let trade_id = f.trade_id.clone();
            self.orders[idx].apply(OrderEvent::Filled(Fill {
                trade_id: trade_id.clone(),
                last_qty: f.quantity,
                last_px: f.price,
                liquidity_side: liquidity,
            }))?;
            let before = self.position.realized_pnl + self.position.commissions;
            self.position.apply(side, f.quantity, f.price, commission);
            let realized = self.position.realized_pnl + self.position.commissions - before;
            self.ledger.fill(&client_id, side, value, commission)?;
            self.ledger.realize(&client_id, realized);
            let slippage = match side {
                OrderSide::Buy => f.price.raw - reference.raw,
                OrderSide::Sell => reference.raw - f.price.raw,
            };
            let fill = FillRecord {
                ts_ms: report.ts_ms,
                order: client_id.clone(),
                signal: source_id.clone(),
                trade_id,
                side,
                quantity: f.quantity,
                price: f.price,
                commission,
                liquidity_side: liquidity,
                slippage,
                realized,
            };
            self.hasher.update(
                format!(
                    "{},{},{},{:?},{},{},{},{:?}\n",
                    fill.ts_ms,
                    fill.order,
                    fill.trade_id,
                    fill.side,
                    fill.quantity,
                    fill.price,
                    fill.commission,
                    fill.liquidity_side
                )
                .as_bytes(),
            );
            self.fills.push(fill);
        }
        // Still resting: the order works on; its reservation stays.
        if report.resting.is_some() {
            if !self.resting.contains(&idx) {
                self.resting.push(idx);
            }
            return Ok(());
        }
        self.resting.retain(|i| *i != idx);
        let order = &mut self.orders[idx];
        let refused = report.rejected.is_some();
        let disposition = if let Some(code) = report.rejected {
            order.apply(OrderEvent::Rejected {
                reason_code: code.clone(),
            })?;
            Disposition::Rejected { code }
        } else if order.status == OrderStatus::Filled {
            Disposition::Filled
        } else if report.expired {
            order.apply(OrderEvent::Expired)?;
            Disposition::Expired
        } else {
            order.apply(OrderEvent::Canceled)?;
            if report.fills.is_empty() {
                Disposition::Rejected {
                    code: "NO_LIQUIDITY".to_owned(),
                }
            } else {
                Disposition::PartlyFilled
            }
        };
        self.ledger.release(&client_id)?;
        match source {
            Source::Signal(i) => self.signals[i].disposition = disposition,
            // What is still open (the book left some of it, or an order
            // at the venue when the switch was pulled filled otherwise than
            // counted) goes out again, to meet the next quote (never this
            // one: its book is what left it), until the operator sets the
            // desk ACTIVE again. A venue's rejection is not retried: the
            // kill's view stays not flat.
            Source::Kill(k) if !refused && self.state != TradingState::Active => {
                self.flatten(k, report.ts_ms + self.cfg.latency.base_ms.max(1))?;
            }
            Source::Kill(_) => {}
        }
        Ok(())
    }
}
