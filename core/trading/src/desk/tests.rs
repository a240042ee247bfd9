use super::*;
use crate::ledger::Account;
use crate::market::{Generator, sim_models};
use crate::order::OrderStatus;
use crate::signal::Strategy;
use proptest::prelude::*;

fn eth_quotes(seed: u64, steps: usize) -> Vec<Quote> {
    let models = sim_models().into_iter().take(1).collect();
    Generator::new(seed, models).quotes(0, 1_000, steps)
}

fn config(seed: u64) -> DeskConfig {
    let eth = sim_models().remove(0).instrument;
    DeskConfig {
        trade_quantity: Quantity::parse("q", "2.000", 3).unwrap(),
        instrument: eth,
        strategy: Strategy::EmaCross { fast: 5, slow: 20 },
        bar_ms: 60_000,
        limits: RiskLimits {
            max_notional_per_order: 1_000_000 * crate::fixed::FIXED_SCALAR as i128,
            max_notional_per_instrument: 2_000_000 * crate::fixed::FIXED_SCALAR as i128,
            max_orders: 100,
            rate_window_ms: 60_000,
        },
        deposit: 1_000_000 * crate::fixed::FIXED_SCALAR as i128,
        fees: Fees {
            maker_bps: 1,
            taker_bps: 5,
        },
        latency: Latency {
            base_ms: 1_500,
            jitter_ms: 2_000,
        },
        depth_levels: 3,
        seed,
        entries: Entries::Market,
    }
}

fn run(cfg: DeskConfig, quotes: &[Quote]) -> Desk {
    let mut desk = Desk::new(cfg).unwrap();
    desk.run(quotes).unwrap();
    desk
}

/// What must hold after any run: the ledger balances, the positions
/// account holds the open position's cost, realized P&L is in the ledger,
/// every fill belongs to an order of a signal, and every signal whose
/// order reached the venue has a final disposition.
fn assert_books_agree(desk: &Desk) {
    let l = desk.ledger();
    let p = desk.position();
    assert_eq!(l.imbalance(), 0, "debits equal credits");
    assert_eq!(l.balance(Account::Positions), p.cost, "positions at cost");
    assert_eq!(
        -l.balance(Account::RealizedPnl) - l.balance(Account::Fees),
        p.realized_pnl,
        "realized P&L net of fees, in the ledger and the position"
    );
    assert_eq!(l.balance(Account::Fees), p.commissions);
    assert_eq!(l.balance(Account::Reserved), {
        let held: i128 = desk
            .orders()
            .iter()
            .filter(|o| o.status == OrderStatus::Submitted)
            .map(|o| l.reserved_for(&o.client_order_id))
            .sum();
        held
    });
    for f in desk.fills() {
        let order = desk
            .orders()
            .iter()
            .find(|o| o.client_order_id == f.order)
            .unwrap();
        assert!(order.trade_ids.contains(&f.trade_id));
        // Each fill's source: the signal whose order it was, or the kill
        // whose flattening order it was.
        match desk.signals().iter().find(|s| s.id == f.signal) {
            Some(signal) => assert_eq!(signal.order.as_deref(), Some(f.order.as_str())),
            None => assert!(
                desk.kills()
                    .iter()
                    .find(|k| k.id == f.signal)
                    .expect("a fill's source is a signal or a kill")
                    .flatten_orders
                    .contains(&f.order)
            ),
        }
    }
    let net: i128 = desk
        .fills()
        .iter()
        .map(|f| signed(f.side, f.quantity))
        .sum();
    assert_eq!(net, p.quantity, "the position is the sum of its fills");
    // Rebuilt from the event log, each order and the position are what
    // the desk holds live.
    for o in desk.orders() {
        let mut rebuilt =
            Order::new(o.client_order_id.clone(), o.side, o.quantity, o.price).unwrap();
        for e in &o.events {
            rebuilt.apply(e.clone()).unwrap();
        }
        assert_eq!(&rebuilt, o);
    }
    let mut folded = Position::default();
    for f in desk.fills() {
        folded.apply(f.side, f.quantity, f.price, f.commission);
    }
    assert_eq!(&folded, p, "folding the fills gives the live position");
}

#[test]
fn a_day_of_quotes_trades_and_every_book_agrees() {
    let quotes = eth_quotes(7, 86_400);
    let desk = run(config(1), &quotes);
    assert_eq!(desk.events(), 86_400);
    let signals = desk.signals();
    assert!(signals.len() > 1_000, "{} signals", signals.len());
    let traded = signals.iter().filter(|s| s.order.is_some()).count();
    assert!(traded > 5, "{traded} signals traded");
    assert!(!desk.fills().is_empty());
    assert_books_agree(&desk);
    for s in signals {
        if let Some(o) = &s.order {
            assert!(!s.checks.is_empty(), "{}: its checks are recorded", s.id);
            let order = desk
                .orders()
                .iter()
                .find(|x| &x.client_order_id == o)
                .unwrap();
            let want = match order.status {
                OrderStatus::Filled => Disposition::Filled,
                OrderStatus::Submitted => Disposition::InFlight,
                _ => continue,
            };
            assert_eq!(s.disposition, want, "{}", s.id);
        }
    }
}

#[test]
fn the_same_data_config_and_seed_give_the_same_fills_bit_for_bit() {
    let quotes = eth_quotes(11, 20_000);
    let a = run(config(3), &quotes);
    let b = run(config(3), &quotes);
    assert!(!a.fills().is_empty());
    assert_eq!(a.fill_hash(), b.fill_hash());
    assert_eq!(a.fills(), b.fills());
    let other = run(config(3), &eth_quotes(12, 20_000));
    assert_ne!(a.fill_hash(), other.fill_hash());
}

#[test]
fn an_order_past_the_notional_limit_is_denied_with_its_code_and_posts_nothing() {
    let quotes = eth_quotes(7, 20_000);
    let mut cfg = config(1);
    cfg.limits.max_notional_per_order = 100 * crate::fixed::FIXED_SCALAR as i128;
    let desk = run(cfg, &quotes);
    let denied: Vec<_> = desk
        .signals()
        .iter()
        .filter(|s| s.order.is_some())
        .collect();
    assert!(!denied.is_empty());
    for s in &denied {
        assert_eq!(
            s.disposition,
            Disposition::Denied {
                code: "NOTIONAL_EXCEEDS_MAX_PER_ORDER".into()
            }
        );
        let failed: Vec<_> = s.checks.iter().filter(|c| !c.pass).collect();
        assert_eq!(failed[0].code, "NOTIONAL_EXCEEDS_MAX_PER_ORDER");
        assert_eq!(failed[0].limit, "100.000000000");
    }
    assert!(desk.fills().is_empty());
    assert_eq!(desk.ledger().postings.len(), 1, "the deposit alone");
    assert!(
        desk.orders()
            .iter()
            .all(|o| o.status == OrderStatus::Denied)
    );
}

/// A bot's own state: its signals trade under the stricter of it and the
/// desk's; the other bots' signals under the desk's alone.
#[test]
fn a_halted_bot_has_its_signals_denied_and_the_others_trade() {
    let quotes = eth_quotes(7, 40_000);
    let cfg = config(1);
    let mut desk = Desk::new(cfg.clone()).unwrap();
    desk.set_bot_state("bot-02", TradingState::Halted);
    desk.set_bot_state("bot-03", TradingState::Reducing);
    desk.set_bot_state("bot-03", TradingState::Active);
    assert_eq!(
        desk.bot_states().len(),
        1,
        "ACTIVE leaves a bot to the desk"
    );
    let mut by_bot: Vec<(&str, String)> = Vec::new();
    let mut n = 0;
    for q in &quotes {
        if let Some(close) = desk.advance(q).unwrap() {
            let insight =
                signal::generate(&cfg.strategy, desk.window.make_contiguous(), cfg.bar_ms).unwrap();
            let bot = if n % 2 == 0 { "bot-01" } else { "bot-02" };
            n += 1;
            let r = desk.act_by(insight, Some(bot), close.at_ms).unwrap();
            if r.order.is_some() {
                by_bot.push((bot, format!("{:?}", r.disposition)));
            }
        }
    }
    let halted: Vec<_> = by_bot.iter().filter(|(b, _)| *b == "bot-02").collect();
    assert!(!halted.is_empty());
    assert!(
        halted.iter().all(|(_, d)| d.contains("TRADING_HALTED")),
        "{halted:?}"
    );
    assert!(
        by_bot
            .iter()
            .any(|(b, d)| *b == "bot-01" && !d.contains("Denied")),
        "the other bot trades: {by_bot:?}"
    );
    assert_books_agree(&desk);
}

#[test]
fn a_halted_desk_denies_every_order_as_halted() {
    let quotes = eth_quotes(7, 20_000);
    let mut desk = Desk::new(config(1)).unwrap();
    desk.set_state(TradingState::Halted);
    desk.run(&quotes).unwrap();
    let codes: Vec<_> = desk
        .signals()
        .iter()
        .filter_map(|s| match &s.disposition {
            Disposition::Denied { code } => Some(code.as_str()),
            Disposition::NoTrade => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(!codes.is_empty());
    assert!(codes.iter().all(|c| *c == "TRADING_HALTED"), "{codes:?}");
}

#[test]
fn an_order_larger_than_the_book_walks_it_and_the_rest_is_canceled() {
    let quotes = eth_quotes(7, 20_000);
    let mut cfg = config(1);
    // Far more than the quote's size at each of two levels.
    cfg.trade_quantity = Quantity::parse("q", "900.000", 3).unwrap();
    cfg.depth_levels = 1;
    cfg.limits.max_notional_per_order = i128::MAX / 4;
    cfg.limits.max_notional_per_instrument = i128::MAX / 4;
    cfg.deposit = 100_000_000 * crate::fixed::FIXED_SCALAR as i128;
    let desk = run(cfg, &quotes);
    let partly = desk
        .signals()
        .iter()
        .find(|s| s.disposition == Disposition::PartlyFilled)
        .expect("an order the book could not fill");
    let fills: Vec<_> = desk
        .fills()
        .iter()
        .filter(|f| Some(&f.order) == partly.order.as_ref())
        .collect();
    assert_eq!(fills.len(), 2, "one fill per level");
    assert_ne!(fills[0].price, fills[1].price, "the second level is worse");
    assert!(
        fills
            .iter()
            .all(|f| f.liquidity_side == LiquiditySide::Taker)
    );
    assert_books_agree(&desk);
}

#[test]
fn bad_configuration_and_out_of_order_quotes_are_refused_by_field() {
    let mut cfg = config(1);
    cfg.bar_ms = 0;
    assert!(matches!(
        Desk::new(cfg),
        Err(DeskError::Config {
            field: "bar_ms",
            ..
        })
    ));
    let mut cfg = config(1);
    cfg.trade_quantity = Quantity::parse("q", "0.015", 3).unwrap();
    assert!(matches!(
        Desk::new(cfg),
        Err(DeskError::Config {
            field: "trade_quantity",
            ..
        })
    ));
    let quotes = eth_quotes(7, 3);
    let mut desk = Desk::new(config(1)).unwrap();
    desk.on_quote(&quotes[2]).unwrap();
    assert!(matches!(
        desk.on_quote(&quotes[0]),
        Err(DeskError::OutOfOrder { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Whatever the data, strategy and frictions, the books agree and a
    /// replay gives the same fill hash.
    #[test]
    fn any_run_keeps_the_books_agreeing_and_replays_the_same(
        seed in 0u64..1_000,
        fast in 2usize..6,
        gap in 1usize..10,
        taker in 0u32..30,
        base in 0i64..5_000,
        levels in 0u32..4,
    ) {
        let quotes = eth_quotes(seed, 6_000);
        let mut cfg = config(seed);
        cfg.strategy = Strategy::EmaCross { fast, slow: fast + gap };
        cfg.bar_ms = 30_000;
        cfg.fees.taker_bps = taker;
        cfg.latency.base_ms = base;
        cfg.depth_levels = levels;
        let a = run(cfg.clone(), &quotes);
        assert_books_agree(&a);
        let b = run(cfg, &quotes);
        prop_assert_eq!(a.fill_hash(), b.fill_hash());
    }
}

/// The kill switch: level one lets only reducing orders through, level two
/// cancels what has not reached the venue, level three closes the
/// position, and the desk is flat only once the venue has filled that.
#[test]
fn the_kill_switch_halts_cancels_and_flattens_once_the_venue_fills() {
    let quotes = eth_quotes(7, 40_000);
    let mut cfg = config(1);
    cfg.latency = Latency {
        base_ms: 30_000,
        jitter_ms: 0,
    };
    let mut desk = Desk::new(cfg).unwrap();
    // Run until the desk holds a position and has an order in flight.
    let mut i = 0;
    while i < quotes.len() && (desk.position().quantity == 0 || desk.sent.is_empty()) {
        desk.on_quote(&quotes[i]).unwrap();
        i += 1;
    }
    assert!(
        i < quotes.len(),
        "the desk opened a position and sent another order"
    );
    let now = quotes[i - 1].ts_ms;
    let e = desk.kill(KillLevel::Flatten, "", "drill", now).unwrap_err();
    assert!(matches!(e, DeskError::Config { field: "by", .. }));
    let kill = desk
        .kill(KillLevel::Flatten, "ops@desk", "drill", now)
        .unwrap()
        .clone();
    assert_eq!(desk.state(), TradingState::Reducing);
    assert!(!kill.canceled.is_empty());
    for id in &kill.canceled {
        let o = desk
            .orders()
            .iter()
            .find(|o| &o.client_order_id == id)
            .unwrap();
        assert_eq!(o.status, OrderStatus::Canceled);
        assert_eq!(desk.ledger().reserved_for(id), 0);
    }
    assert!(desk.signals().iter().any(|s| s.disposition
        == Disposition::Killed {
            kill: kill.id.clone()
        }));
    assert_eq!(kill.flatten_orders.len(), 1, "a flattening order");
    let flatten = kill.flatten_orders[0].clone();
    assert_ne!(
        desk.position().quantity,
        0,
        "not flat before the venue fills"
    );
    // The venue answers; new entries stay refused meanwhile.
    for q in &quotes[i..i + 120] {
        desk.on_quote(q).unwrap();
    }
    assert_eq!(desk.position().quantity, 0, "flat once filled");
    let fills: Vec<_> = desk.fills().iter().filter(|f| f.order == flatten).collect();
    assert!(!fills.is_empty());
    assert!(
        fills.iter().all(|f| f.signal == kill.id),
        "its fills name the kill"
    );
    // REDUCING: from flat, every later order would open, so each is denied.
    for q in &quotes[i + 120..i + 6_000] {
        desk.on_quote(q).unwrap();
    }
    let after: Vec<_> = desk
        .signals()
        .iter()
        .filter(|s| s.insight.generated_ms > now + 120_000 && s.order.is_some())
        .collect();
    assert!(!after.is_empty(), "signals kept coming");
    for s in after {
        assert_eq!(
            s.disposition,
            Disposition::Denied {
                code: "TRADING_STATE_REDUCING".into()
            },
            "{}",
            s.id
        );
    }
    assert_eq!(desk.position().quantity, 0);
    assert_books_agree(&desk);
    // The recap counts what flattening realized and paid, under its kill.
    let r = crate::recap::recap(desk.signals(), desk.fills(), |_| 0);
    assert_eq!(r.total.net, desk.position().realized_pnl);
    assert_eq!(r.total.signals as usize, desk.signals().len());
    assert!(r.by_strategy.contains_key(crate::recap::KILL_SWITCH));
    assert!(r.by_signal.iter().any(|row| row.signal == kill.id));
}

/// A flattening order is a market order: it takes what the venue's book
/// holds at the quote it meets. What the book leaves goes out again at the
/// next quote, under the same kill, until the desk is flat.
#[test]
fn a_flatten_the_book_cannot_take_at_once_goes_out_again_until_flat() {
    let quotes = eth_quotes(7, 40_000);
    let mut cfg = config(1);
    // Only the quote's own size, and a position several trades deep.
    cfg.depth_levels = 0;
    cfg.trade_quantity = Quantity::parse("q", "60.000", 3).unwrap();
    let base_ms = cfg.latency.base_ms;
    let mut desk = Desk::new(cfg).unwrap();
    // A kill after quote `i - 1` whose order meets a quote that cannot
    // take the whole position.
    let shallow = |desk: &Desk, i: usize| {
        let open = desk.position().quantity;
        let arrives = quotes[i - 1].ts_ms + base_ms;
        let Some(met) = quotes[i..].iter().find(|q| q.ts_ms >= arrives) else {
            return false;
        };
        let size = if open > 0 { met.bid_size } else { met.ask_size };
        desk.sent.is_empty() && open != 0 && open.unsigned_abs() > 3 * u128::from(size.raw)
    };
    let mut i = 1;
    desk.on_quote(&quotes[0]).unwrap();
    while i + 600 < quotes.len() && !shallow(&desk, i) {
        desk.on_quote(&quotes[i]).unwrap();
        i += 1;
    }
    assert!(i + 600 < quotes.len(), "a position deeper than the book");
    // Set ACTIVE again once the first closing order is done: the kill's
    // work stops there, and what is left stays open.
    let mut resumed = Desk::new(desk.cfg.clone()).unwrap();
    resumed.run(&quotes[..i]).unwrap();
    resumed
        .kill(KillLevel::Flatten, "ops@desk", "drill", quotes[i - 1].ts_ms)
        .unwrap();
    let mut j = i;
    while resumed.kills()[0].flatten_orders.len() < 2 {
        resumed.advance(&quotes[j]).unwrap();
        j += 1;
    }
    resumed.set_state(TradingState::Active);
    for q in &quotes[j..j + 600] {
        resumed.advance(q).unwrap();
    }
    assert_eq!(
        resumed.kills()[0].flatten_orders.len(),
        2,
        "none after ACTIVE"
    );
    assert_ne!(resumed.position().quantity, 0, "left open, as set");

    let kill = desk
        .kill(KillLevel::Flatten, "ops@desk", "drill", quotes[i - 1].ts_ms)
        .unwrap()
        .clone();
    assert_eq!(kill.flatten_orders.len(), 1);
    for q in &quotes[i..i + 600] {
        desk.on_quote(q).unwrap();
    }
    assert_eq!(desk.position().quantity, 0, "flat in the end");
    let kill = &desk.kills()[0];
    assert!(
        kill.flatten_orders.len() > 2,
        "the book took it in more than two parts: {:?}",
        kill.flatten_orders
    );
    for id in &kill.flatten_orders {
        let o = desk
            .orders()
            .iter()
            .find(|o| &o.client_order_id == id)
            .unwrap();
        assert_ne!(o.status, OrderStatus::Submitted, "{id} is done");
        assert_eq!(desk.ledger().reserved_for(id), 0);
    }
    let closing: Vec<_> = desk
        .fills()
        .iter()
        .filter(|f| f.signal == kill.id)
        .collect();
    assert!(closing.len() > 1);
    // Each part met a later quote than the one before it.
    assert!(closing.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    assert_books_agree(&desk);
}

/// Signals made elsewhere (a bot reading the first `bars` bars of the same
/// seeded quotes) acted on bar by bar give the fills the desk gives when it
/// runs the strategy itself: backtest and live are the same code.
#[test]
fn insights_from_outside_give_the_same_fills_as_the_strategy_in_process() {
    let steps = 3 * 60 * 60;
    let model = sim_models().remove(0);
    let quotes = crate::market::seconds(11, model.clone(), steps);
    let cfg = config(11);
    let inside = run(cfg.clone(), &quotes);
    assert!(inside.fills().len() > 2, "the run trades");

    let mut outside = Desk::new(cfg.clone()).unwrap();
    let mut acted = 0;
    for q in &quotes {
        if let Some(close) = outside.advance(q).unwrap() {
            // What a `signal` ticket computes: the strategy over the
            // session's first `bars` bars, drawn again from the seed.
            let seen = crate::market::seconds(11, model.clone(), close.bars as usize * 60);
            let bars = crate::market::bars(&seen, &model.instrument, cfg.bar_ms);
            let insight = crate::signal::generate(&cfg.strategy, &bars, cfg.bar_ms).unwrap();
            outside.act(insight, close.at_ms).unwrap();
            acted += 1;
        }
    }
    assert_eq!(acted, inside.signals().len());
    assert_eq!(outside.signals(), inside.signals());
    assert_eq!(outside.fills(), inside.fills());
    assert_eq!(outside.fill_hash(), inside.fill_hash());
    assert_books_agree(&outside);

    let mut other = Desk::new(config(11)).unwrap();
    let btc = Insight {
        instrument: "BTCUSD.SIM".into(),
        ..inside.signals()[0].insight.clone()
    };
    match other.act(btc, 0) {
        Err(DeskError::Config { field, .. }) => assert_eq!(field, "insight.instrument"),
        other => panic!("{other:?}"),
    }
}

/// A desk whose venue is elsewhere (here a `Venue` the test holds, as a
/// venue process would) hands out its due orders and takes their reports:
/// the same fills as the venue in process. A report that breaks the
/// protocol is refused naming the field, and nothing of it is posted.
#[test]
fn a_venue_elsewhere_gives_the_same_fills_and_a_bad_report_posts_nothing() {
    let quotes = eth_quotes(5, 4 * 60 * 60);
    let cfg = config(5);
    let inside = run(cfg.clone(), &quotes);
    assert!(inside.fills().len() > 2);

    let mut desk = Desk::new(cfg.clone()).unwrap();
    let mut venue = crate::venue::Venue::new(cfg.instrument.clone(), cfg.depth_levels);
    let mut checked = false;
    for q in &quotes {
        for due in desk.due(q) {
            assert_eq!(
                desk.awaiting_reports(),
                [due.order.client_order_id.as_str()]
            );
            // Until its report comes back the desk cannot take the quote.
            assert!(matches!(desk.advance(q), Err(DeskError::Protocol { .. })));
            let report = venue.submit(due.order.clone(), q).unwrap();
            if !checked && !report.fills.is_empty() {
                checked = true;
                let before = (
                    desk.fills().len(),
                    desk.ledger().clone(),
                    desk.position().clone(),
                );
                let field = |r: crate::venue::Report, d: &mut Desk| match d.on_report(r) {
                    Err(DeskError::Protocol { field, .. }) => field,
                    other => panic!("{other:?}"),
                };
                let mut r = report.clone();
                r.client_order_id = "O-999".into();
                assert_eq!(field(r, &mut desk), "client_order_id");
                let mut r = report.clone();
                r.ts_ms += 1;
                assert_eq!(field(r, &mut desk), "ts_ms");
                let mut r = report.clone();
                r.fills[0].price =
                    Price::from_raw(r.fills[0].price.raw + 1, r.fills[0].price.precision);
                assert_eq!(field(r, &mut desk), "fills[0].price");
                let mut r = report.clone();
                r.fills.push(r.fills[0].clone());
                let last = format!("fills[{}].trade_id", r.fills.len() - 1);
                assert_eq!(field(r, &mut desk), last);
                let mut r = report.clone();
                let mut extra = r.fills[0].clone();
                extra.trade_id = "V-x".into();
                extra.quantity = due.order.quantity;
                r.fills.push(extra);
                assert_eq!(field(r, &mut desk), "fills");
                let after = (
                    desk.fills().len(),
                    desk.ledger().clone(),
                    desk.position().clone(),
                );
                assert_eq!(before, after, "nothing of a refused report is posted");
            }
            desk.on_report(report).unwrap();
        }
        if let Some(close) = desk.advance(q).unwrap() {
            let window = desk.window.make_contiguous();
            let insight = signal::generate(&cfg.strategy, window, cfg.bar_ms).unwrap();
            desk.act(insight, close.at_ms).unwrap();
        }
    }
    assert!(checked, "a report with fills was tried");
    assert_eq!(desk.fills(), inside.fills());
    assert_eq!(desk.fill_hash(), inside.fill_hash());
    assert_books_agree(&desk);

    // Reconciled with the venue's reports: the books agree, order for
    // order; a report the desk never had, a fill that differs and an order
    // the venue lacks are each named.
    let reports: Vec<_> = desk
        .orders()
        .iter()
        .filter_map(|o| venue.report(&o.client_order_id).cloned())
        .collect();
    let (compared, differences) = desk.differences(&reports);
    assert_eq!(compared as usize, reports.len());
    assert!(compared > 2);
    assert_eq!(differences, Vec::<String>::new());
    let mut changed = reports.clone();
    let filled = changed.iter().position(|r| !r.fills.is_empty()).unwrap();
    let id = changed[filled].client_order_id.clone();
    changed[filled].fills.pop();
    let lost = changed.pop().unwrap().client_order_id;
    assert_ne!(lost, id);
    let mut extra = changed[0].clone();
    extra.client_order_id = "O-999".into();
    changed.push(extra);
    let (_, differences) = desk.differences(&changed);
    assert!(differences.len() >= 3, "{differences:#?}");
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with(&format!("{id}: the desk's fills")))
    );
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with(&format!("{lost}: on the desk")))
    );
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("O-999: at the venue"))
    );
    // A fill the venue did not make: the position differs too.
    let mut short = reports.clone();
    short[filled].fills.pop();
    let (_, differences) = desk.differences(&short);
    assert_eq!(differences.len(), 2, "{differences:#?}");
    assert!(
        differences[1].starts_with("position: the desk holds"),
        "{differences:#?}"
    );
}

/// Limit entries: each rests at the venue at its signal's reference price,
/// good till the view's period ends. It fills as a maker when the market
/// comes to it or expires when it does not, and a new view cancels it;
/// exits stay at market. The kill switch's second level cancels what
/// rests. The books agree and the same run gives the same fills.
#[test]
fn limit_entries_rest_then_fill_as_makers_expire_or_are_canceled() {
    let quotes = eth_quotes(7, 6 * 60 * 60);
    let mut cfg = config(1);
    cfg.entries = Entries::Limit;
    let desk = run(cfg.clone(), &quotes);
    let ended: Vec<&Disposition> = desk
        .signals()
        .iter()
        .filter(|s| s.order.is_some())
        .map(|s| &s.disposition)
        .collect();
    assert!(ended.contains(&&Disposition::Filled), "{ended:?}");
    assert!(ended.contains(&&Disposition::Expired), "{ended:?}");
    for s in desk.signals() {
        let Some(id) = &s.order else { continue };
        let o = desk
            .orders()
            .iter()
            .find(|o| &o.client_order_id == id)
            .unwrap();
        match &s.disposition {
            Disposition::Expired => {
                assert_eq!(o.status, OrderStatus::Expired);
                assert_eq!(
                    o.price,
                    Some(s.insight.reference_price),
                    "a limit at the reference"
                );
                assert_eq!(desk.ledger().reserved_for(id), 0, "released");
            }
            Disposition::Canceled { by } => {
                assert_eq!(o.status, OrderStatus::Canceled);
                let later = desk.signals().iter().position(|x| &x.id == by).unwrap();
                let this = desk.signals().iter().position(|x| x.id == s.id).unwrap();
                assert!(later > this, "canceled by a later view");
            }
            _ => {}
        }
    }
    let makers: Vec<_> = desk
        .fills()
        .iter()
        .filter(|f| f.liquidity_side == LiquiditySide::Maker)
        .collect();
    assert!(!makers.is_empty(), "resting entries fill as makers");
    assert!(
        makers.iter().all(|f| f.slippage == 0),
        "at their limit, the reference"
    );
    assert_books_agree(&desk);
    assert_eq!(run(cfg.clone(), &quotes).fill_hash(), desk.fill_hash());

    // Level two of the kill switch cancels what rests.
    let mut desk = Desk::new(cfg).unwrap();
    let mut i = 0;
    while desk.resting.is_empty() {
        desk.on_quote(&quotes[i]).unwrap();
        i += 1;
    }
    let resting = desk.orders()[desk.resting[0]].client_order_id.clone();
    let kill = desk
        .kill(
            KillLevel::CancelOrders,
            "ops@desk",
            "drill",
            quotes[i - 1].ts_ms,
        )
        .unwrap()
        .clone();
    assert!(kill.canceled.contains(&resting), "{kill:?}");
    assert!(desk.resting.is_empty());
    assert_eq!(desk.ledger().reserved_for(&resting), 0);
    let signal = desk
        .signals()
        .iter()
        .find(|s| s.order.as_ref() == Some(&resting))
        .unwrap();
    assert_eq!(signal.disposition, Disposition::Killed { kill: kill.id });
    for q in &quotes[i..i + 600] {
        desk.on_quote(q).unwrap();
    }
    assert!(
        desk.fills().iter().all(|f| f.order != resting),
        "nothing of a canceled order fills"
    );
    assert_books_agree(&desk);
}
