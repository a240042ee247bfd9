use super::*;
use crate::desk::Disposition;
use crate::fixed::{Price, Quantity};
use crate::order::{LiquiditySide, OrderSide};
use crate::signal::{Direction, Insight};

fn signal(id: &str, strategy: &str, at_ms: i64) -> SignalRecord {
    SignalRecord {
        id: id.into(),
        insight: Insight {
            instrument: "ETHUSD.SIM".into(),
            direction: Direction::Up,
            period_ms: 60_000,
            magnitude: 0.0,
            confidence: 1.0,
            weight: 1.0,
            source: strategy.into(),
            source_version: "1".into(),
            generated_ms: at_ms,
            reference_price: Price::from_raw(100 * FIXED_SCALAR, 2),
            inputs_hash: String::new(),
        },
        order: Some(format!("O-{id}")),
        checks: Vec::new(),
        disposition: Disposition::Filled,
    }
}

fn fill(signal: &str, at_ms: i64, realized: i128, commission: i128) -> FillRecord {
    FillRecord {
        ts_ms: at_ms,
        order: format!("O-{signal}"),
        signal: signal.into(),
        trade_id: format!("T-{signal}-{at_ms}"),
        side: OrderSide::Sell,
        quantity: Quantity::from_raw(2 * FIXED_SCALAR as u64, 3),
        price: Price::from_raw(100 * FIXED_SCALAR, 2),
        commission,
        liquidity_side: LiquiditySide::Taker,
        slippage: 5,
        realized,
    }
}

/// Two days, two strategies: a win of 100, a loss of 50 and a signal that
/// only opened; fees 2 each; the loser's signal cost 10 to make.
#[test]
fn figures_add_up_by_signal_strategy_and_day() {
    let day = 86_400_000;
    let signals = [
        signal("S-1", "ema_cross", 1_000),
        signal("S-2", "breakout", 2_000),
        signal("S-3", "ema_cross", day + 1_000),
    ];
    let fills = [
        fill("S-1", 1_500, 100, 2),
        fill("S-2", 2_500, 0, 2),
        fill("S-3", day + 1_500, -50, 2),
    ];
    let r = recap(&signals, &fills, |id| if id == "S-3" { 10 } else { 0 });
    let t = &r.total;
    assert_eq!((t.signals, t.closed, t.wins, t.losses), (3, 2, 1, 1));
    assert_eq!((t.realized, t.fees, t.signal_cost), (50, 6, 10));
    assert_eq!(t.net, 50 - 6 - 10);
    assert_eq!(t.win_rate, Some(0.5));
    // Gains 98 over losses 62 (the loser's 50, its fee and its cost).
    assert!((t.profit_factor.unwrap() - 98.0 / 62.0).abs() < 1e-12);
    // Equity: +98, −2 (96), then −10 (86) and −52 (34): down 64 from 98.
    assert_eq!(t.max_drawdown, 64);
    assert!(t.sharpe.is_some(), "two days of P&L");
    // Slippage: 5 raw per unit on 2 units, per fill.
    assert_eq!(t.slippage, 30);
    assert_eq!(r.by_strategy["ema_cross"].net, 98 - 62);
    assert_eq!(r.by_strategy["breakout"].net, -2);
    assert_eq!(r.by_day[&0].net + r.by_day[&1].net, t.net);
    assert_eq!(r.by_day[&1].sharpe, None, "one day has no Sharpe");
    assert_eq!(r.by_signal.iter().map(|s| s.net).sum::<i128>(), t.net);
    assert!(r.by_label.is_empty());

    // Labelled by the bot that made each signal; S-2 unlabelled.
    let bot = |id: &str| match id {
        "S-1" | "S-3" => Some("bot-01".to_owned()),
        _ => None,
    };
    let cost = |id: &str| if id == "S-3" { 10 } else { 0 };
    let l = recap_labelled(&signals, &fills, cost, bot);
    assert_eq!(l.total, r.total);
    assert_eq!(l.by_label.len(), 1);
    assert_eq!(l.by_label["bot-01"], r.by_strategy["ema_cross"]);
}

#[test]
fn a_backtest_recap_agrees_with_the_position_and_the_ledger() {
    use crate::desk::{Desk, DeskConfig, Fees, Latency};
    use crate::market::{Generator, sim_models};
    use crate::risk::RiskLimits;
    use crate::signal::Strategy;
    let model = sim_models().remove(0);
    let instrument = model.instrument.clone();
    let quotes = Generator::new(5, vec![model]).quotes(0, 1_000, 2 * 86_400);
    let big = 1_000_000_000 * FIXED_SCALAR as i128;
    let mut desk = Desk::new(DeskConfig {
        trade_quantity: Quantity::from_raw(instrument.lot_size.raw * 10, instrument.size_precision),
        instrument,
        strategy: Strategy::Breakout { window: 20 },
        bar_ms: 60_000,
        limits: RiskLimits {
            max_notional_per_order: big,
            max_notional_per_instrument: big,
            max_orders: 1_000,
            rate_window_ms: 60_000,
        },
        deposit: big,
        fees: Fees {
            maker_bps: 1,
            taker_bps: 5,
        },
        latency: Latency {
            base_ms: 1_000,
            jitter_ms: 1_000,
        },
        depth_levels: 2,
        seed: 5,
        entries: crate::desk::Entries::Market,
    })
    .unwrap();
    desk.run(&quotes).unwrap();
    let r = recap(desk.signals(), desk.fills(), |_| 0);
    let p = desk.position();
    assert!(r.total.closed > 0, "{:?}", r.total);
    assert_eq!(r.total.fees, p.commissions);
    assert_eq!(r.total.net, p.realized_pnl);
    assert_eq!(r.by_day.len(), 2);
    assert_eq!(r.by_day.values().map(|d| d.net).sum::<i128>(), r.total.net);
    assert!(r.total.sharpe.is_some());
}
