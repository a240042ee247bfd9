use super::*;
use crate::fixed::Quantity;

fn bars(closes: &[f64]) -> Vec<Bar> {
    closes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let px = Price::from_raw((c * 100.0).round() as i64 * 10_000_000, 2);
            Bar {
                ts_ms: i as i64 * 60_000,
                instrument: "ETHUSD.SIM".into(),
                open: px,
                high: px,
                low: px,
                close: px,
                volume: Quantity::from_raw(1_000_000_000, 2),
            }
        })
        .collect()
}

#[test]
fn an_ema_cross_up_on_the_last_bar_says_up() {
    let mut closes = vec![100.0; 30];
    closes.extend([99.0, 98.0, 97.0, 96.0, 95.0, 94.0]);
    closes.push(110.0);
    let s = Strategy::EmaCross { fast: 3, slow: 10 };
    let i = generate(&s, &bars(&closes), 300_000).unwrap();
    assert_eq!(i.direction, Direction::Up);
    assert!(i.confidence > 0.0 && i.weight > 0.0 && i.magnitude > 0.0);
    assert_eq!(i.reference_price.to_string(), "110.00");
    assert_eq!(
        (i.source.as_str(), i.source_version.as_str()),
        ("ema_cross", "1")
    );
    // No cross on the last bar: flat, asking for nothing.
    let flat = generate(&s, &bars(&[100.0; 20]), 300_000).unwrap();
    assert_eq!((flat.direction, flat.weight), (Direction::Flat, 0.0));
}

#[test]
fn a_stretched_close_reverts_and_a_broken_channel_breaks_out() {
    let mut closes = vec![100.0, 101.0, 99.0, 100.0, 101.0, 99.0, 100.0, 101.0, 99.0];
    closes.push(108.0);
    let z = Strategy::ZScore {
        window: 10,
        entry_z: 2.0,
    };
    assert_eq!(
        generate(&z, &bars(&closes), 1).unwrap().direction,
        Direction::Down
    );
    let b = Strategy::Breakout { window: 9 };
    assert_eq!(
        generate(&b, &bars(&closes), 1).unwrap().direction,
        Direction::Up
    );
    *closes.last_mut().unwrap() = 90.0;
    assert_eq!(
        generate(&z, &bars(&closes), 1).unwrap().direction,
        Direction::Up
    );
    assert_eq!(
        generate(&b, &bars(&closes), 1).unwrap().direction,
        Direction::Down
    );
}

#[test]
fn the_same_window_gives_the_same_signal_and_hash() {
    let closes: Vec<f64> = (0..50)
        .map(|i| 100.0 + (i as f64 * 0.7).sin() * 3.0)
        .collect();
    let s = Strategy::ZScore {
        window: 20,
        entry_z: 1.0,
    };
    let a = generate(&s, &bars(&closes), 1).unwrap();
    assert_eq!(a, generate(&s, &bars(&closes), 1).unwrap());
    let mut other = closes.clone();
    other[45] += 0.01;
    assert_ne!(
        a.inputs_hash,
        generate(&s, &bars(&other), 1).unwrap().inputs_hash
    );
    // Bars outside the window do not count.
    other = closes.clone();
    other[0] += 5.0;
    assert_eq!(
        a.inputs_hash,
        generate(&s, &bars(&other), 1).unwrap().inputs_hash
    );
}

#[test]
fn bad_parameters_and_short_or_mixed_windows_are_refused_by_type() {
    let b = bars(&[100.0; 5]);
    assert!(matches!(
        generate(&Strategy::EmaCross { fast: 5, slow: 5 }, &b, 1),
        Err(SignalError::BadParameter { field: "fast", .. })
    ));
    assert!(matches!(
        generate(
            &Strategy::ZScore {
                window: 3,
                entry_z: f64::NAN
            },
            &b,
            1
        ),
        Err(SignalError::BadParameter {
            field: "entry_z",
            ..
        })
    ));
    assert!(matches!(
        generate(&Strategy::Breakout { window: 10 }, &b, 1),
        Err(SignalError::TooFewBars {
            got: 5,
            needs: 11,
            ..
        })
    ));
    let mut mixed = bars(&[100.0; 5]);
    mixed[3].instrument = "BTCUSD.SIM".into();
    assert_eq!(
        generate(&Strategy::Breakout { window: 4 }, &mixed, 1),
        Err(SignalError::MixedBars)
    );
}
