//! A runaway spend end to end in local mode: the burn-rate alert, its
//! diagnosis from the spend, the cap proposed with its dry run, written
//! only after an approval, re-checked, and kept from a raise heal until a
//! person sets the budget again.

use std::time::Duration;

use oshal_ops::burn::{BurnPair, BurnPolicy};
use oshal_ops::change::ChangeKind;
use oshal_ops::heal::{Action, HealPhase};
use tokio_util::sync::CancellationToken;

use super::{approved, incident_of, once, platform_tuned, write_again, write_key};
use crate::ticket::{NewTicket, TenantId};

/// $5, in nano-dollars.
const BUDGET: i64 = 5_000_000_000;

/// The SRE workbook's 14.4x over a 30-day horizon, with windows of
/// seconds instead of an hour and five minutes.
fn quick() -> super::super::Tuning {
    super::super::Tuning {
        spend_poll: Duration::from_millis(200),
        burn: BurnPolicy {
            horizon_ms: 30 * 86_400_000,
            pairs: vec![BurnPair {
                long_ms: 4_000,
                short_ms: 2_000,
                factor: 14.4,
            }],
        },
    }
}

/// `t`'s budget and spend.
fn budget_of(spend: &[crate::controller::Spend], t: &TenantId) -> (Option<i64>, i64) {
    spend
        .iter()
        .find(|s| s.tenant == *t)
        .map_or((None, 0), |s| (s.budget_nusd, s.spent_nusd))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_spend_is_capped_after_an_approval_and_a_raise_leaves_the_cap_be() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform_tuned(dir.path(), quick()).await;
    let acme = TenantId::parse("acme").unwrap();
    p.controller
        .set_budget(acme.clone(), Some(BUDGET))
        .await
        .unwrap();
    // A loop that runs away: a ticket of acme's every 20 ms until stopped
    // (its budget's pace is $0.0069 an hour; this spends far more).
    let stop = CancellationToken::new();
    let looping = {
        let (c, stop) = (p.controller.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.is_cancelled() {
                let t = NewTicket {
                    tenant: Some("acme".into()),
                    ..NewTicket::chat(format!("summarize order {n} again"))
                };
                let _ = c.submit(t).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    let id = incident_of(
        &p,
        super::super::budget::SPEND_BURNING,
        Some(("tenant", "acme")),
    )
    .await;
    let v = once(&p, &id, "proposed a cap", |v| !v.heals.is_empty()).await;
    let inv = &v.investigations[0];
    assert_eq!(inv.evidence[0].tool, "get_spend");
    let d = inv.diagnosis.as_ref().unwrap();
    assert_eq!(
        (d.causes[0].kind, d.causes[0].subject.as_str()),
        (oshal_ops::diagnose::CauseKind::RunawaySpend, "acme"),
        "{d:#?}"
    );
    let h = &v.heals[0];
    assert_eq!(
        (h.rule.as_str(), h.phase),
        ("cap-runaway-spend", HealPhase::Pending)
    );
    let Action::CapBudget {
        tenant,
        from_nusd,
        budget_nusd: cap,
    } = h.action.clone()
    else {
        panic!("{:?}", h.action)
    };
    assert_eq!((tenant.as_str(), from_nusd), ("acme", BUDGET));
    assert!(0 < cap && cap < BUDGET, "{cap}");
    assert_eq!(h.dry_run.blast.tenants, ["acme"]);
    assert!(
        h.dry_run
            .summary
            .starts_with("lower tenant acme's budget from $5.000000 to $"),
        "{}",
        h.dry_run.summary
    );
    let spend = p.controller.spend().await.unwrap();
    assert_eq!(
        budget_of(&spend, &acme).0,
        Some(BUDGET),
        "nothing written before the approval"
    );

    let v = approved(&p, &id, "stop the loop, then find it").await;
    let h = &v.heals[0];
    assert_eq!(h.phase, HealPhase::Succeeded, "{:?}", h.outcome);
    assert_eq!(h.recheck.as_ref().unwrap().passed, Some(true), "{h:#?}");
    let spend = p.controller.spend().await.unwrap();
    assert_eq!(budget_of(&spend, &acme).0, Some(cap));
    stop.cancel();
    assert!(looping.await.unwrap() > 0);
    let changes = p.ops.changes(None, 0).await.unwrap();
    let capped = changes
        .iter()
        .find(|c| c.kind == ChangeKind::BudgetCapped && c.subject == "acme")
        .expect("the cap is on the record");
    let capped_now = async || {
        let book = p.ops.book(&TenantId::default_tenant());
        let book = book.lock().await;
        book.monitor.capped().contains("acme")
    };
    assert!(capped_now().await, "a raise heal leaves it be");
    // A change of a budget is the platform's record, never written by hand.
    let by_hand = p
        .ops
        .add(None, oshal_ops::monitor::Input::Change(capped.clone()))
        .await;
    assert!(
        matches!(by_hand, Err(super::super::OpsError::Invalid(ref i)) if i.path == "kind"),
        "{by_hand:?}"
    );

    // A person sets it again: raises may be proposed again; the cap's
    // write, come again under its key (a retry whose answer was lost),
    // answers as before and leaves what the person set; under another
    // key it is refused, the budget no longer the one it was worked out
    // against.
    p.controller
        .set_budget(acme.clone(), Some(BUDGET + 1))
        .await
        .unwrap();
    p.ops.budget_set(&acme, Some(BUDGET + 1), "alice").await;
    assert!(!capped_now().await);
    assert_eq!(write_again(&p, h, &write_key(capped)).await.0, 200);
    let (status, answer) = write_again(&p, h, "another-key").await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not the $5.000000 the cap was worked out against"),
        "{answer}"
    );
    let spend = p.controller.spend().await.unwrap();
    assert_eq!(
        budget_of(&spend, &acme).0,
        Some(BUDGET + 1),
        "what alice set stands"
    );
    p.shutdown().await;
}
