//! The recap: what each signal, strategy and day earned, net of fees and of
//! the model and connector spend behind its signals (which no anchor nets),
//! with the figures a practitioner reads first: win rate, profit factor,
//! max drawdown and Sharpe.
//!
//! A signal's P&L is what its fills realized less their commissions and
//! the cost of making the signal; its slippage is what its fills paid
//! beyond the signal's reference price. The equity curve is the running
//! sum of realized P&L net of fees, fill by fill; drawdown is its largest
//! fall from a peak. Sharpe is over daily net P&L, annualised over 365
//! days (the simulated venue trades every day), and absent with fewer than
//! two days or no variation.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::desk::{FillRecord, SignalRecord};
use crate::fixed::FIXED_SCALAR;

/// The strategy the kill switch's closing fills are recapped under, each
/// kill as a row of its own (`K-<n>`); it makes no signals.
pub const KILL_SWITCH: &str = "kill_switch";

/// The milliseconds of a day.
const DAY_MS: i64 = 86_400_000;

/// One group's figures. Amounts are raw billionths of the quote currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub signals: u32,
    /// Signals whose fills realized something (closed a position).
    pub closed: u32,
    pub wins: u32,
    pub losses: u32,
    pub realized: i128,
    pub fees: i128,
    /// The model and connector spend behind the signals.
    pub signal_cost: i128,
    /// Realized − fees − signal cost.
    pub net: i128,
    /// What fills paid beyond their signals' reference prices.
    pub slippage: i128,
    /// wins / closed; `None` before anything closed.
    pub win_rate: Option<f64>,
    /// Gross gains / gross losses; `None` without a loss.
    pub profit_factor: Option<f64>,
    pub max_drawdown: i128,
    pub sharpe: Option<f64>,
}

/// One signal's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalPnl {
    pub signal: String,
    pub strategy: String,
    /// Days since the epoch of its bar.
    pub day: i64,
    pub realized: i128,
    pub fees: i128,
    pub signal_cost: i128,
    pub net: i128,
    pub slippage: i128,
}

/// The recap of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recap {
    pub total: Stats,
    pub by_strategy: BTreeMap<String, Stats>,
    pub by_day: BTreeMap<i64, Stats>,
    /// By whatever the caller labels signals with (the bot that made each,
    /// live); empty for [`recap`].
    pub by_label: BTreeMap<String, Stats>,
    pub by_signal: Vec<SignalPnl>,
}

fn money(raw: i128) -> f64 {
    raw as f64 / FIXED_SCALAR as f64
}

/// Folds signal results (in time order) into one group's figures.
fn stats<'a>(rows: impl Iterator<Item = &'a SignalPnl>, curve: &[(i64, i128)]) -> Stats {
    let mut s = Stats::default();
    let (mut gains, mut losses) = (0i128, 0i128);
    for r in rows {
        if r.strategy != KILL_SWITCH {
            s.signals += 1;
        }
        s.realized += r.realized;
        s.fees += r.fees;
        s.signal_cost += r.signal_cost;
        s.net += r.net;
        s.slippage += r.slippage;
        if r.realized != 0 {
            s.closed += 1;
            if r.net > 0 {
                s.wins += 1;
                gains += r.net;
            } else {
                s.losses += 1;
                losses -= r.net;
            }
        }
    }
    s.win_rate = (s.closed > 0).then(|| f64::from(s.wins) / f64::from(s.closed));
    s.profit_factor = (losses > 0).then(|| money(gains) / money(losses));
    let (mut equity, mut peak) = (0i128, 0i128);
    let mut days: BTreeMap<i64, i128> = BTreeMap::new();
    for (ts_ms, step) in curve {
        equity += step;
        peak = peak.max(equity);
        s.max_drawdown = s.max_drawdown.max(peak - equity);
        *days.entry(ts_ms.div_euclid(DAY_MS)).or_default() += step;
    }
    if days.len() >= 2 {
        let daily: Vec<f64> = days.values().map(|v| money(*v)).collect();
        let n = daily.len() as f64;
        let mean = daily.iter().sum::<f64>() / n;
        let var = daily.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        s.sharpe = (sd > 0.0).then(|| mean / sd * 365f64.sqrt());
    }
    s
}

/// The recap of `signals` and their `fills`; `signal_cost` gives the model
/// and connector spend behind a signal (raw quote; 0 for a backtest, which
/// calls no model).
pub fn recap(
    signals: &[SignalRecord],
    fills: &[FillRecord],
    signal_cost: impl Fn(&str) -> i128,
) -> Recap {
    recap_labelled(signals, fills, signal_cost, |_| None)
}

/// [`recap`], and by `label` as well: a signal's group in `by_label` (none
/// leaves it out of that grouping alone).
pub fn recap_labelled(
    signals: &[SignalRecord],
    fills: &[FillRecord],
    signal_cost: impl Fn(&str) -> i128,
    label: impl Fn(&str) -> Option<String>,
) -> Recap {
    let mut by_id: BTreeMap<&str, SignalPnl> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for s in signals {
        let cost = signal_cost(&s.id);
        order.push(&s.id);
        by_id.insert(
            &s.id,
            SignalPnl {
                signal: s.id.clone(),
                strategy: s.insight.source.clone(),
                day: s.insight.generated_ms.div_euclid(DAY_MS),
                realized: 0,
                fees: 0,
                signal_cost: cost,
                net: -cost,
                slippage: 0,
            },
        );
    }
    // The equity curve: each fill's realized net of its fee, and each
    // signal's cost when it was made; by strategy and day as well.
    let mut curve: Vec<(i64, i128, &str)> = Vec::new();
    for s in signals {
        let cost = by_id[s.id.as_str()].signal_cost;
        if cost != 0 {
            curve.push((s.insight.generated_ms, -cost, &s.id));
        }
    }
    for f in fills {
        // A fill of the kill switch's closing order is its kill's: a row of
        // its own, so what flattening realized and paid is in the totals.
        if !by_id.contains_key(f.signal.as_str()) {
            order.push(&f.signal);
            by_id.insert(
                &f.signal,
                SignalPnl {
                    signal: f.signal.clone(),
                    strategy: KILL_SWITCH.to_owned(),
                    day: f.ts_ms.div_euclid(DAY_MS),
                    realized: 0,
                    fees: 0,
                    signal_cost: 0,
                    net: 0,
                    slippage: 0,
                },
            );
        }
        let p = by_id.get_mut(f.signal.as_str()).expect("inserted above");
        p.realized += f.realized;
        p.fees += f.commission;
        p.net += f.realized - f.commission;
        p.slippage +=
            i128::from(f.slippage) * i128::from(f.quantity.raw) / i128::from(FIXED_SCALAR);
        curve.push((f.ts_ms, f.realized - f.commission, &f.signal));
    }
    curve.sort_by_key(|(ts, _, _)| *ts);
    let rows: Vec<SignalPnl> = order.iter().map(|id| by_id[id].clone()).collect();
    let points = |keep: &dyn Fn(&SignalPnl) -> bool| -> Vec<(i64, i128)> {
        curve
            .iter()
            .filter(|(_, _, id)| keep(&by_id[id]))
            .map(|(ts, v, _)| (*ts, *v))
            .collect()
    };
    let strategies: BTreeSet<String> = rows.iter().map(|r| r.strategy.clone()).collect();
    let days: BTreeSet<i64> = rows.iter().map(|r| r.day).collect();
    let by_strategy = strategies
        .into_iter()
        .map(|k| {
            let s = stats(
                rows.iter().filter(|r| r.strategy == k),
                &points(&|r| r.strategy == k),
            );
            (k, s)
        })
        .collect();
    let by_day = days
        .into_iter()
        .map(|d| {
            let s = stats(rows.iter().filter(|r| r.day == d), &points(&|r| r.day == d));
            (d, s)
        })
        .collect();
    let labels: BTreeMap<&str, String> = rows
        .iter()
        .filter_map(|r| Some((r.signal.as_str(), label(&r.signal)?)))
        .collect();
    let by_label = labels
        .values()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            let mine = |r: &SignalPnl| labels.get(r.signal.as_str()) == Some(k);
            let s = stats(rows.iter().filter(|r| mine(r)), &points(&mine));
            (k.clone(), s)
        })
        .collect();
    Recap {
        total: stats(rows.iter(), &points(&|_| true)),
        by_strategy,
        by_day,
        by_label,
        by_signal: rows,
    }
}

#[cfg(test)]
mod tests;
