use oshal_kernel::name::Named;
use proptest::prelude::*;

use super::*;

use EventKind as E;
use OrderStatus as S;

/// Every edge of the lifecycle, written out once more, independently of
/// `OrderStatus::on`: `(from, event, to)`, where `to` is `None` for "back
/// to the status before the pending request" and a fill's target is
/// `PartiallyFilled` (a fill that completes the order goes to `Filled`).
const EDGES: &[(S, E, Option<S>)] = &[
    (S::Initialized, E::Denied, Some(S::Denied)),
    (S::Initialized, E::Submitted, Some(S::Submitted)),
    (S::Initialized, E::Canceled, Some(S::Canceled)),
    (S::Submitted, E::Accepted, Some(S::Accepted)),
    (S::Submitted, E::Rejected, Some(S::Rejected)),
    (S::Submitted, E::Canceled, Some(S::Canceled)),
    (S::Submitted, E::Triggered, Some(S::Triggered)),
    (S::Submitted, E::PendingUpdate, Some(S::PendingUpdate)),
    (S::Submitted, E::PendingCancel, Some(S::PendingCancel)),
    (S::Submitted, E::Filled, Some(S::PartiallyFilled)),
    (S::Accepted, E::Rejected, Some(S::Rejected)),
    (S::Accepted, E::Canceled, Some(S::Canceled)),
    (S::Accepted, E::Expired, Some(S::Expired)),
    (S::Accepted, E::Triggered, Some(S::Triggered)),
    (S::Accepted, E::PendingUpdate, Some(S::PendingUpdate)),
    (S::Accepted, E::PendingCancel, Some(S::PendingCancel)),
    (S::Accepted, E::Updated, Some(S::Accepted)),
    (S::Accepted, E::Filled, Some(S::PartiallyFilled)),
    (S::Triggered, E::Rejected, Some(S::Rejected)),
    (S::Triggered, E::Canceled, Some(S::Canceled)),
    (S::Triggered, E::Expired, Some(S::Expired)),
    (S::Triggered, E::PendingUpdate, Some(S::PendingUpdate)),
    (S::Triggered, E::PendingCancel, Some(S::PendingCancel)),
    (S::Triggered, E::Updated, Some(S::Triggered)),
    (S::Triggered, E::Filled, Some(S::PartiallyFilled)),
    (S::PendingUpdate, E::Updated, None),
    (S::PendingUpdate, E::ModifyRejected, None),
    (S::PendingUpdate, E::Accepted, Some(S::Accepted)),
    (S::PendingUpdate, E::Rejected, Some(S::Rejected)),
    (S::PendingUpdate, E::Canceled, Some(S::Canceled)),
    (S::PendingUpdate, E::Expired, Some(S::Expired)),
    (S::PendingUpdate, E::Triggered, Some(S::Triggered)),
    (S::PendingUpdate, E::PendingUpdate, Some(S::PendingUpdate)),
    (S::PendingUpdate, E::PendingCancel, Some(S::PendingCancel)),
    (S::PendingUpdate, E::Filled, Some(S::PartiallyFilled)),
    (S::PendingCancel, E::CancelRejected, None),
    (S::PendingCancel, E::Accepted, Some(S::Accepted)),
    (S::PendingCancel, E::Rejected, Some(S::Rejected)),
    (S::PendingCancel, E::Canceled, Some(S::Canceled)),
    (S::PendingCancel, E::Expired, Some(S::Expired)),
    (S::PendingCancel, E::PendingCancel, Some(S::PendingCancel)),
    (S::PendingCancel, E::Filled, Some(S::PartiallyFilled)),
    (S::PartiallyFilled, E::Canceled, Some(S::Canceled)),
    (S::PartiallyFilled, E::Expired, Some(S::Expired)),
    (S::PartiallyFilled, E::PendingUpdate, Some(S::PendingUpdate)),
    (S::PartiallyFilled, E::PendingCancel, Some(S::PendingCancel)),
    (S::PartiallyFilled, E::Updated, Some(S::PartiallyFilled)),
    (S::PartiallyFilled, E::Filled, Some(S::PartiallyFilled)),
    (S::Canceled, E::Filled, Some(S::PartiallyFilled)),
];

/// The table test: every (status, event) pair, 12 × 13 of them, either
/// follows its edge above or is refused.
#[test]
fn every_status_and_event_pair_follows_the_table() {
    let before = S::Accepted;
    let mut allowed = 0;
    for &status in S::all() {
        for &event in E::all() {
            let edge = EDGES.iter().find(|(f, e, _)| *f == status && *e == event);
            for completes in [false, true] {
                let want = edge.map(|(_, _, to)| match (to, event) {
                    (None, _) => before,
                    (Some(_), E::Filled) if completes => S::Filled,
                    (Some(to), _) => *to,
                });
                assert_eq!(
                    status.on(event, before, completes),
                    want,
                    "{} + {} (completes: {completes})",
                    status.as_str(),
                    event.as_str()
                );
            }
            allowed += usize::from(edge.is_some());
        }
    }
    assert_eq!(S::all().len() * E::all().len(), 156);
    assert_eq!(allowed, EDGES.len());
    // Closed orders take nothing more, but for a fill racing a cancel.
    for status in [S::Denied, S::Rejected, S::Expired, S::Filled] {
        assert!(
            E::all()
                .iter()
                .all(|e| status.on(*e, before, false).is_none())
        );
    }
}

fn qty(s: &str) -> Quantity {
    Quantity::parse("quantity", s, 0).unwrap()
}

fn fill(id: &str, q: &str) -> OrderEvent {
    OrderEvent::Filled(Fill {
        trade_id: id.into(),
        last_qty: qty(q),
        last_px: Price::parse("price", "100.5", 2).unwrap(),
        liquidity_side: LiquiditySide::Taker,
    })
}

fn working(q: &str) -> Order {
    let mut o = Order::new("O-1", OrderSide::Buy, qty(q), None).unwrap();
    o.apply(OrderEvent::Submitted).unwrap();
    o.apply(OrderEvent::Accepted {
        venue_order_id: "V-1".into(),
    })
    .unwrap();
    o
}

#[test]
fn a_rejected_modify_or_cancel_restores_the_status_before_it() {
    let mut o = working("10");
    o.apply(fill("T-1", "4")).unwrap();
    assert_eq!(o.status, S::PartiallyFilled);
    o.apply(OrderEvent::PendingUpdate).unwrap();
    o.apply(OrderEvent::ModifyRejected {
        reason_code: "PRICE_OFF_TICK".into(),
    })
    .unwrap();
    assert_eq!(o.status, S::PartiallyFilled);
    o.apply(OrderEvent::PendingCancel).unwrap();
    // A second request while the first is out keeps the first's origin.
    o.apply(OrderEvent::PendingCancel).unwrap();
    o.apply(OrderEvent::CancelRejected {
        reason_code: "TOO_LATE".into(),
    })
    .unwrap();
    assert_eq!(o.status, S::PartiallyFilled);
    assert_eq!(o.leaves_qty(), qty("6"));
}

#[test]
fn a_fill_lands_once_and_never_past_the_quantity() {
    let mut o = working("10");
    o.apply(fill("T-1", "4")).unwrap();
    let before = o.clone();
    assert!(matches!(
        o.apply(fill("T-1", "1")),
        Err(OrderError::DuplicateTradeId { .. })
    ));
    assert!(matches!(
        o.apply(fill("T-2", "7")),
        Err(OrderError::Overfill { .. })
    ));
    assert!(matches!(
        o.apply(fill("T-3", "0")),
        Err(OrderError::Zero { .. })
    ));
    assert_eq!(o, before, "a refused event changes nothing");
    assert_eq!(o.apply(fill("T-2", "6")).unwrap(), S::Filled);
    assert!(matches!(
        o.apply(OrderEvent::Canceled),
        Err(OrderError::InvalidTransition {
            status: "FILLED",
            event: "canceled",
            ..
        })
    ));
}

#[test]
fn a_fill_racing_a_cancel_still_counts() {
    let mut o = working("10");
    o.apply(OrderEvent::PendingCancel).unwrap();
    o.apply(OrderEvent::Canceled).unwrap();
    assert_eq!(o.apply(fill("T-9", "10")).unwrap(), S::Filled);
}

#[test]
fn an_update_below_what_has_filled_is_refused() {
    let mut o = working("10");
    o.apply(fill("T-1", "4")).unwrap();
    o.apply(OrderEvent::PendingUpdate).unwrap();
    let e = o
        .apply(OrderEvent::Updated {
            quantity: qty("3"),
            price: None,
        })
        .unwrap_err();
    assert!(matches!(e, OrderError::QuantityBelowFilled { .. }), "{e}");
    o.apply(OrderEvent::Updated {
        quantity: qty("8"),
        price: None,
    })
    .unwrap();
    assert_eq!((o.status, o.leaves_qty()), (S::PartiallyFilled, qty("4")));
}

fn any_event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        Just(OrderEvent::Submitted),
        Just(OrderEvent::Accepted {
            venue_order_id: "V".into()
        }),
        Just(OrderEvent::Rejected {
            reason_code: "X".into()
        }),
        Just(OrderEvent::Canceled),
        Just(OrderEvent::Expired),
        Just(OrderEvent::Triggered),
        Just(OrderEvent::PendingUpdate),
        Just(OrderEvent::PendingCancel),
        Just(OrderEvent::ModifyRejected {
            reason_code: "X".into()
        }),
        Just(OrderEvent::CancelRejected {
            reason_code: "X".into()
        }),
        (1u64..12).prop_map(|q| OrderEvent::Updated {
            quantity: Quantity::from_raw(q * 1_000_000_000, 0),
            price: None
        }),
        (0u32..6, 1u64..6).prop_map(|(t, q)| fill(&format!("T-{t}"), &q.to_string())),
    ]
}

proptest! {
    /// Whatever the venue sends, in whatever order: the filled quantity
    /// never passes the order's, each trade counts once, `Filled` means
    /// nothing is left, and a refused event leaves the order untouched.
    #[test]
    fn no_sequence_of_events_breaks_an_order(events in prop::collection::vec(any_event(), 0..40)) {
        let mut o = Order::new("O-P", OrderSide::Sell, qty("10"), None).unwrap();
        for event in events {
            let before = o.clone();
            match o.apply(event) {
                Ok(_) => {}
                Err(_) => prop_assert_eq!(&o, &before),
            }
            prop_assert!(o.filled_qty.raw <= o.quantity.raw);
            let mut ids = o.trade_ids.clone();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), o.trade_ids.len());
            prop_assert_eq!(o.status == S::Filled, o.leaves_qty().is_zero() && !o.filled_qty.is_zero());
        }
    }
}
