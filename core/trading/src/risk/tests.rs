use super::*;
use crate::instrument::eth;

const UNIT: i128 = FIXED_SCALAR as i128;

fn limits() -> RiskLimits {
    RiskLimits {
        max_notional_per_order: 50_000 * UNIT,
        max_notional_per_instrument: 80_000 * UNIT,
        max_orders: 3,
        rate_window_ms: 1_000,
    }
}

fn account(recent: &[i64]) -> AccountView<'_> {
    AccountView {
        state: TradingState::Active,
        free_balance: 100_000 * UNIT,
        position: 0,
        instrument_exposure: 0,
        recent_orders_ms: recent,
        now_ms: 10_000,
    }
}

fn buy<'a>(eth: &'a Instrument, qty: &str, px: &str) -> OrderIntent<'a> {
    OrderIntent {
        instrument: eth,
        side: OrderSide::Buy,
        quantity: Quantity::parse("quantity", qty, 3).unwrap(),
        price: Some(Price::parse("price", px, 2).unwrap()),
        reference_price: Price::parse("reference_price", px, 2).unwrap(),
        reduce_only: false,
        expire_time_ms: None,
    }
}

/// The denial and the failed checks' codes.
fn denied(d: &RiskDecision) -> (Option<&'static str>, Vec<&'static str>) {
    (
        d.denial,
        d.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.code)
            .collect(),
    )
}

#[test]
fn an_order_inside_every_limit_passes_and_every_check_is_recorded() {
    let eth = eth();
    let d = check(&buy(&eth, "2.000", "2500.00"), &limits(), &account(&[]));
    assert!(d.approved(), "{d:?}");
    assert!(d.checks.len() >= 9);
    let notional = d
        .checks
        .iter()
        .find(|c| c.code == "NOTIONAL_EXCEEDS_MAX_PER_ORDER")
        .unwrap();
    assert_eq!(notional.observed, "5000.000000000");
    assert_eq!(notional.limit, "50000.000000000");
}

#[test]
fn each_limit_denies_with_its_own_code() {
    let eth = eth();
    let l = limits();
    let cases: Vec<(&str, OrderIntent<'_>, AccountView<'_>)> = vec![
        (
            "PRICE_OFF_TICK",
            buy(&eth, "1.000", "2500.03"),
            account(&[]),
        ),
        (
            "QUANTITY_OFF_LOT",
            buy(&eth, "1.005", "2500.00"),
            account(&[]),
        ),
        (
            "QUANTITY_OUT_OF_RANGE",
            buy(&eth, "150.000", "10.00"),
            account(&[]),
        ),
        (
            "NOTIONAL_EXCEEDS_MAX_PER_ORDER",
            buy(&eth, "30.000", "2500.00"),
            account(&[]),
        ),
        (
            "NOTIONAL_EXCEEDS_MAX_PER_INSTRUMENT",
            buy(&eth, "10.000", "2500.00"),
            AccountView {
                instrument_exposure: 60_000 * UNIT,
                ..account(&[])
            },
        ),
        (
            "CUM_NOTIONAL_EXCEEDS_FREE_BALANCE",
            buy(&eth, "10.000", "2500.00"),
            AccountView {
                free_balance: 20_000 * UNIT,
                ..account(&[])
            },
        ),
        (
            "TRADING_HALTED",
            buy(&eth, "1.000", "2500.00"),
            AccountView {
                state: TradingState::Halted,
                ..account(&[])
            },
        ),
        (
            "TRADING_STATE_REDUCING",
            buy(&eth, "1.000", "2500.00"),
            AccountView {
                state: TradingState::Reducing,
                ..account(&[])
            },
        ),
        (
            "REDUCE_ONLY_WOULD_INCREASE_POSITION",
            OrderIntent {
                reduce_only: true,
                ..buy(&eth, "1.000", "2500.00")
            },
            AccountView {
                position: 2 * UNIT,
                ..account(&[])
            },
        ),
        (
            "RATE_LIMIT_EXCEEDED",
            buy(&eth, "1.000", "2500.00"),
            account(&[9_200, 9_500, 9_900]),
        ),
        (
            "EXPIRE_TIME_IN_THE_PAST",
            OrderIntent {
                expire_time_ms: Some(9_999),
                ..buy(&eth, "1.000", "2500.00")
            },
            account(&[]),
        ),
        (
            "PRICE_PRECISION",
            OrderIntent {
                price: Some(Price::parse("price", "2500.000", 3).unwrap()),
                ..buy(&eth, "1.000", "2500.00")
            },
            account(&[]),
        ),
        (
            "QUANTITY_PRECISION",
            OrderIntent {
                quantity: Quantity::parse("quantity", "1.00", 2).unwrap(),
                ..buy(&eth, "1.000", "2500.00")
            },
            account(&[]),
        ),
    ];
    for (code, order, account) in &cases {
        let d = check(order, &l, account);
        assert_eq!(denied(&d), (Some(*code), vec![*code]), "{code}: {d:#?}");
        let failed = d.checks.iter().find(|c| !c.pass).unwrap();
        assert!(
            !failed.limit.is_empty() && !failed.observed.is_empty(),
            "{failed:?}"
        );
    }
}

#[test]
fn what_reduces_a_position_passes_where_what_adds_is_denied() {
    let eth = eth();
    let long = AccountView {
        state: TradingState::Reducing,
        position: 3 * UNIT,
        free_balance: 0,
        ..account(&[])
    };
    let sell = |q: &str| OrderIntent {
        side: OrderSide::Sell,
        reduce_only: true,
        ..buy(&eth, q, "2500.00")
    };
    // Selling part or all of a long reduces it, needs no balance, and
    // passes while REDUCING and as reduce-only.
    assert!(check(&sell("1.000"), &limits(), &long).approved());
    assert!(check(&sell("3.000"), &limits(), &long).approved());
    // Selling past it flips the position: that opens a short.
    let d = check(&sell("4.000"), &limits(), &long);
    assert_eq!(
        denied(&d).1,
        vec![
            "TRADING_STATE_REDUCING",
            "CUM_NOTIONAL_EXCEEDS_FREE_BALANCE",
            "REDUCE_ONLY_WOULD_INCREASE_POSITION"
        ]
    );
    assert_eq!(d.denial, Some("TRADING_STATE_REDUCING"));
}

#[test]
fn a_market_order_is_valued_at_its_reference_price() {
    let eth = eth();
    let order = OrderIntent {
        price: None,
        reference_price: Price::parse("reference_price", "3000.00", 2).unwrap(),
        ..buy(&eth, "20.000", "1.00")
    };
    let d = check(&order, &limits(), &account(&[]));
    assert_eq!(d.denial, Some("NOTIONAL_EXCEEDS_MAX_PER_ORDER"), "{d:#?}");
}
