//! What every surface reads of a session, projected from its live state:
//! the session view (the flow's counts, the position and P&L, the kill
//! switch's record, the trading states, what is reconciling), the spend
//! behind each signal and kill, and the recap's rows.

use std::collections::BTreeMap;

use oshal_kernel::name::Named;
use oshal_trading::desk::{Disposition, KillLevel as DeskKill};
use oshal_trading::fixed::{FIXED_SCALAR, Price, Quantity};
use oshal_trading::market;
use oshal_trading::order::OrderStatus;
use oshal_trading::recap::Stats;
use oshal_trading::risk::TradingState;

use super::session::{Live, Session};
use super::view::{
    BotStateView, Flow, KillLevel, KillView, OrderView, PositionView, PostingView,
    ReconcilingOrder, SessionView, StatsView, TradingStateName,
};

pub(super) fn usd(raw: i128) -> f64 {
    raw as f64 / FIXED_SCALAR as f64
}

/// A unit enum's serde name (`BUY`, `MAKER`, `UP`).
pub(super) fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// A disposition's state and its code (the denial's or rejection's, or
/// the kill's id).
pub(super) fn disposition(d: &Disposition) -> (String, Option<String>) {
    let state = serde_json::to_value(d)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let code = match d {
        Disposition::Denied { code } | Disposition::Rejected { code } => Some(code.clone()),
        Disposition::Killed { kill } => Some(kill.clone()),
        Disposition::Canceled { by } => Some(by.clone()),
        _ => None,
    };
    (state, code)
}

pub(super) fn stats(key: String, s: &Stats) -> StatsView {
    StatsView {
        key,
        signals: s.signals,
        closed: s.closed,
        wins: s.wins,
        losses: s.losses,
        realized_usd: usd(s.realized),
        fees_usd: usd(s.fees),
        signal_cost_usd: usd(s.signal_cost),
        net_usd: usd(s.net),
        slippage_usd: usd(s.slippage),
        win_rate: s.win_rate,
        profit_factor: s.profit_factor,
        max_drawdown_usd: usd(s.max_drawdown),
        sharpe: s.sharpe,
    }
}

pub(super) fn view_of(s: &Session) -> SessionView {
    let live = s.live();
    let desk = &live.desk;
    let instrument = &s.model.instrument;
    let mut flow = Flow {
        signals: desk.signals().len() as u32,
        missed: live.missed.len() as u32,
        orders: desk.orders().len() as u32,
        fills: desk.fills().len() as u32,
        ..Flow::default()
    };
    for r in desk.signals() {
        if r.order.is_some() {
            flow.checked += 1;
        }
        match r.disposition {
            Disposition::NoTrade => flow.no_trade += 1,
            Disposition::InFlight => flow.in_flight += 1,
            Disposition::Denied { .. } => flow.denied += 1,
            Disposition::Rejected { .. } => flow.rejected += 1,
            Disposition::Filled => flow.filled += 1,
            Disposition::PartlyFilled => flow.partly_filled += 1,
            Disposition::Killed { .. } => flow.killed += 1,
            Disposition::Expired => flow.expired += 1,
            Disposition::Canceled { .. } => flow.canceled += 1,
        }
    }
    let p = desk.position();
    let mark = live
        .last
        .as_ref()
        .map_or(Price::from_raw(0, instrument.price_precision), |q| {
            market::mid(q, instrument)
        });
    let unrealized = if mark.raw > 0 {
        p.unrealized_pnl(mark)
    } else {
        0
    };
    let signal_cost: i128 = spend(&live).values().sum();
    let kills = desk
        .kills()
        .iter()
        .map(|k| {
            // None of its orders still working at the venue.
            let done = !desk.orders().iter().any(|x| {
                x.status == OrderStatus::Submitted && k.flatten_orders.contains(&x.client_order_id)
            });
            KillView {
                id: k.id.clone(),
                level: match k.level {
                    DeskKill::HaltEntries => KillLevel::HaltEntries,
                    DeskKill::CancelOrders => KillLevel::CancelOrders,
                    DeskKill::Flatten => KillLevel::Flatten,
                },
                by: k.by.clone(),
                reason: k.reason.clone(),
                at_ms: k.at_ms,
                canceled: k.canceled.clone(),
                flatten_orders: k.flatten_orders.clone(),
                flat: k.level == DeskKill::Flatten && done && p.quantity == 0,
            }
        })
        .collect();
    let quantity = Quantity::from_raw(
        u64::try_from(p.quantity.unsigned_abs()).unwrap_or(u64::MAX),
        instrument.size_precision,
    );
    SessionView {
        id: s.id.clone(),
        tenant: s.tenant.clone(),
        opened_by: s.opened_by.clone(),
        opened_at_ms: s.opened_at_ms,
        spec: s.spec.clone(),
        status: live.status,
        error: live.error.clone(),
        closed: live.closed.clone(),
        trading_state: desk.state().as_str().to_owned(),
        bot_states: desk
            .bot_states()
            .iter()
            .map(|(bot, state)| BotStateView {
                bot: bot.clone(),
                state: match state {
                    TradingState::Active => TradingStateName::Active,
                    TradingState::Reducing => TradingStateName::Reducing,
                    TradingState::Halted => TradingStateName::Halted,
                },
            })
            .collect(),
        state_changes: live.state_changes.clone(),
        sim_ms: live.sim_ms,
        quotes: desk.events(),
        quotes_total: s.quotes_total,
        waiting_on: live.waiting_on,
        flow,
        position: PositionView {
            quantity: format!("{}{quantity}", if p.quantity < 0 { "-" } else { "" }),
            mark: mark.to_string(),
            realized_pnl_usd: usd(p.realized_pnl),
            unrealized_pnl_usd: usd(unrealized),
            fees_usd: usd(p.commissions),
            signal_cost_usd: usd(signal_cost),
            net_usd: usd(p.realized_pnl + unrealized - signal_cost),
            cash_usd: usd(desk.ledger().balance(oshal_trading::ledger::Account::Cash)),
            ledger_imbalance: i64::try_from(desk.ledger().imbalance()).unwrap_or(i64::MAX),
        },
        fill_hash: desk.fill_hash(),
        kills,
        reconciling: live
            .reconciling
            .iter()
            .map(|(order, last_error)| ReconcilingOrder {
                order: order.clone(),
                tickets: live
                    .orders
                    .get(order)
                    .map(|m| m.tickets.clone())
                    .unwrap_or_default(),
                last_error: last_error.clone(),
            })
            .collect(),
        reconciliations: live.reconciliations.clone(),
    }
}

/// What the tickets behind each signal cost (its `signal` ticket and the
/// `tool` tickets that took its order to a venue elsewhere), and behind
/// each kill (its closing orders' tickets), by signal or kill id.
pub(super) fn spend(live: &Live) -> BTreeMap<String, i128> {
    let order_cost = |o: &str| live.orders.get(o).map_or(0, |m| i128::from(m.cost_nusd));
    let mut out = BTreeMap::new();
    for (r, m) in live.desk.signals().iter().zip(&live.signals) {
        let orders = r.order.as_deref().map_or(0, order_cost);
        out.insert(r.id.clone(), i128::from(m.cost_nusd) + orders);
    }
    for k in live.desk.kills() {
        let orders: i128 = k.flatten_orders.iter().map(|o| order_cost(o)).sum();
        out.insert(k.id.clone(), orders);
    }
    out
}

/// The desk's orders (or the one `only` names), each with its source, its
/// venue tickets and its ledger postings.
pub(super) fn orders(live: &Live, only: Option<&str>) -> Vec<OrderView> {
    let desk = &live.desk;
    let mut source: BTreeMap<&str, &str> = BTreeMap::new();
    for s in desk.signals() {
        if let Some(o) = &s.order {
            source.insert(o.as_str(), s.id.as_str());
        }
    }
    for k in desk.kills() {
        for o in &k.flatten_orders {
            source.insert(o.as_str(), k.id.as_str());
        }
    }
    desk.orders()
        .iter()
        .filter(|o| only.is_none_or(|id| o.client_order_id == id))
        .map(|o| OrderView {
            id: o.client_order_id.clone(),
            source: source
                .get(o.client_order_id.as_str())
                .map_or_else(String::new, |s| (*s).to_owned()),
            side: serde_plain(&o.side),
            quantity: o.quantity.to_string(),
            filled: o.filled_qty.to_string(),
            price: o.price.map(|p| p.to_string()),
            status: serde_plain(&o.status),
            venue_order_id: o.venue_order_id.clone(),
            tickets: live
                .orders
                .get(&o.client_order_id)
                .map(|m| m.tickets.clone())
                .unwrap_or_default(),
            postings: desk
                .ledger()
                .postings
                .iter()
                .filter(|p| p.order == o.client_order_id)
                .map(|p| PostingView {
                    debit: serde_plain(&p.debit),
                    credit: serde_plain(&p.credit),
                    amount_usd: usd(p.amount),
                    reason: serde_plain(&p.reason),
                })
                .collect(),
        })
        .collect()
}
