use super::*;

fn instrument(id: &str, tick: &str, price_precision: u8) -> Instrument {
    Instrument {
        id: id.into(),
        price_precision,
        size_precision: 2,
        tick_size: Price::parse("tick_size", tick, price_precision).unwrap(),
        lot_size: Quantity::parse("lot_size", "0.01", 2).unwrap(),
        min_quantity: Quantity::parse("min_quantity", "0.01", 2).unwrap(),
        max_quantity: Quantity::parse("max_quantity", "1000.00", 2).unwrap(),
    }
}

fn models() -> Vec<PriceModel> {
    let model = |instrument, start_mid| PriceModel {
        instrument,
        start_mid,
        drift: 0.0,
        calm_vol: 0.0005,
        stressed_vol: 0.003,
        switch_chance: 0.01,
        jump_chance: 0.002,
        jump_vol: 0.02,
        half_spread_ticks: 1,
        max_lots: 50,
    };
    vec![
        model(instrument("ETHUSD.SIM", "0.05", 2), 2500.0),
        model(instrument("BTCUSD.SIM", "0.5", 1), 60_000.0),
        model(instrument("EURUSD.SIM", "0.00001", 5), 1.08),
    ]
}

#[test]
fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
    let a = Generator::new(7, models()).quotes(0, 1_000, 2_000);
    let b = Generator::new(7, models()).quotes(0, 1_000, 2_000);
    let c = Generator::new(8, models()).quotes(0, 1_000, 2_000);
    assert_eq!(a.len(), 6_000);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_ne!(fingerprint(&a), fingerprint(&c));
}

#[test]
fn quotes_sit_on_the_tick_and_the_lot_with_the_bid_below_the_ask() {
    let models = models();
    let quotes = Generator::new(1, models.clone()).quotes(0, 1_000, 3_000);
    for q in &quotes {
        let m = models
            .iter()
            .find(|m| m.instrument.id == q.instrument)
            .unwrap();
        m.instrument.check_price("bid", q.bid).unwrap();
        m.instrument.check_price("ask", q.ask).unwrap();
        m.instrument.check_quantity(q.bid_size).unwrap();
        assert!(q.bid < q.ask && q.bid.raw > 0, "{q:?}");
    }
}

#[test]
fn bars_hold_their_quotes() {
    let models = models();
    let eth = &models[0].instrument;
    let quotes = Generator::new(3, models.clone()).quotes(0, 1_000, 600);
    let bars = bars(&quotes, eth, 60_000);
    assert_eq!(bars.len(), 10);
    for bar in &bars {
        assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close));
        assert_eq!(bar.ts_ms % 60_000, 0);
        eth.check_price("close", bar.close).unwrap();
    }
}

#[test]
fn a_bars_csv_is_read_and_each_fault_named_by_line_and_column() {
    let eth = instrument("ETHUSD.SIM", "0.05", 2);
    let good = "ts_ms,open,high,low,close,volume\n0,100.00,101.00,99.50,100.50,12.00\n60000,100.50,100.50,100.00,100.10,3.25\n";
    let bars = parse_bars_csv(&eth, good).unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[1].close.to_string(), "100.10");
    let cases = [
        ("ts,open,high,low,close,volume\n", 1, 1, "header"),
        (
            "ts_ms,open,high,low,close,volume\n0,100.00,101.00,99.50\n",
            2,
            5,
            "4 columns",
        ),
        (
            "ts_ms,open,high,low,close,volume\nx,100.00,101.00,99.50,100.50,1.00\n",
            2,
            1,
            "whole number",
        ),
        (
            "ts_ms,open,high,low,close,volume\n0,100.00,101.00,99.50,100.50,1.00\n0,100.00,101.00,99.50,100.50,1.00\n",
            3,
            1,
            "not after",
        ),
        (
            "ts_ms,open,high,low,close,volume\n0,100.001,101.00,99.50,100.50,1.00\n",
            2,
            2,
            "the limit is 2",
        ),
        (
            "ts_ms,open,high,low,close,volume\n0,100.02,101.00,99.50,100.50,1.00\n",
            2,
            2,
            "tick",
        ),
        (
            "ts_ms,open,high,low,close,volume\n0,100.00,100.20,99.50,100.50,1.00\n",
            2,
            3,
            "do not hold",
        ),
        (
            "ts_ms,open,high,low,close,volume\n0,100.00,101.00,99.50,100.50,-1.00\n",
            2,
            6,
            "negative",
        ),
        ("", 1, 1, "empty"),
    ];
    for (text, line, column, says) in cases {
        let e = parse_bars_csv(&eth, text).unwrap_err();
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}
