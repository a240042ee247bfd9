//! The platform's budget signals, of the `default` tenant (the
//! operator's): `OshalBudgetExhausted` fires for a tenant whose spend has
//! reached its budget (its new tickets are refused) and resolves once the
//! budget is raised or lifted; `OshalSpendBurning` fires for a tenant
//! whose spend burns its budget past a burn-rate pair
//! (`oshal_ops::burn`: both windows many times faster than the pace that
//! makes it last) and resolves once the pair's short window no longer
//! does. Read every few seconds from the scheduler's own books (what its
//! admissions refuse by; no ledger is summed), each tenant with a budget
//! sampled into the loop's spend history (`get_spend` reads the burn from
//! it too); only a change is recorded, and a record that fails is tried
//! again at the next read. After a restart it starts from the alerts the
//! journal says fire, and the history anew.

use std::collections::{BTreeMap, BTreeSet};

use oshal_ops::alert::Severity;
use oshal_ops::burn::{Burning, window};
use oshal_ops::monitor::Input;
use tokio_util::sync::CancellationToken;

use super::signals::Keyed;
use super::{Inner, Operations};
use crate::controller::Spend;
use crate::cost::usd;
use crate::ticket::TenantId;

/// The alert of a tenant at its budget.
pub const BUDGET_EXHAUSTED: &str = "OshalBudgetExhausted";
/// The alert of a tenant burning its budget past a burn-rate pair.
pub const SPEND_BURNING: &str = "OshalSpendBurning";

/// The tenants at or over their budget, each with what to say of it.
fn exhausted(spend: &[Spend]) -> BTreeMap<String, String> {
    spend
        .iter()
        .filter(|s| s.exhausted())
        .map(|s| {
            (
                s.tenant.to_string(),
                format!(
                    "tenant {} has spent ${:.6} of its ${:.6} budget; its new tickets are refused",
                    s.tenant,
                    usd(s.spent_nusd),
                    usd(s.budget_nusd.unwrap_or(0))
                ),
            )
        })
        .collect()
}

/// A tenant at its budget, and what its alert says once it is not.
const EXHAUSTED: (Keyed, &str) = (
    Keyed {
        name: BUDGET_EXHAUSTED,
        label: "tenant",
        severity: Severity::Warning,
    },
    "is within its budget again",
);
/// A tenant burning its budget, and what its alert says once it is not.
const BURNING: (Keyed, &str) = (
    Keyed {
        name: SPEND_BURNING,
        label: "tenant",
        severity: Severity::Critical,
    },
    "spends within its budget's pace again, or is at its budget",
);

/// What changed of `alert` between `was` and `now` (the tenants it
/// fires for, each with its summary), as the monitor's inputs.
fn inputs(
    (alert, back): &(Keyed, &str),
    was: &BTreeSet<String>,
    now: &BTreeMap<String, String>,
    at: i64,
) -> Vec<Input> {
    alert.changes(
        was,
        now,
        |t| now.contains_key(t),
        |t| format!("tenant {t} {back}"),
        at,
    )
}

/// Records what each tenant with a budget has spent at `at` (and forgets
/// those without one), then says which burn their budget, and how. One
/// that `was` burning and is not measured long enough yet (the history
/// restarts with the controller) still burns: that is unknown, not calm.
fn burning(
    inner: &Inner,
    spend: &[Spend],
    was: &BTreeSet<String>,
    at: i64,
) -> BTreeMap<String, String> {
    let unmeasured: BTreeSet<&str> = {
        let mut history = inner.spending.lock().unwrap_or_else(|p| p.into_inner());
        for s in spend.iter().filter(|s| s.budget_nusd.is_some()) {
            history.record(&inner.tuning.burn, s.tenant.as_str(), at, s.spent_nusd);
        }
        history.retain(|t| {
            spend
                .iter()
                .any(|s| s.tenant.as_str() == t && s.budget_nusd.is_some())
        });
        // A tenant with no budget, or at it, burns nothing: that is known.
        let within = |t: &str| {
            spend
                .iter()
                .any(|s| s.tenant.as_str() == t && s.budget_nusd.is_some_and(|b| s.spent_nusd < b))
        };
        was.iter()
            .map(String::as_str)
            .filter(|t| within(t) && !history.measured(&inner.tuning.burn, t))
            .collect()
    };
    let mut now: BTreeMap<String, String> = spend
        .iter()
        .filter_map(|s| {
            let b = inner.burning(s.tenant.as_str(), s.budget_nusd, s.spent_nusd)?;
            let budget = s.budget_nusd?;
            Some((s.tenant.to_string(), burn_summary(s, budget, &b)))
        })
        .collect();
    for t in unmeasured {
        now.insert(
            t.to_owned(),
            format!("tenant {t}'s burn is not measured again yet"),
        );
    }
    now
}

/// A burning tenant's alert, in a sentence.
fn burn_summary(s: &Spend, budget: i64, b: &Burning) -> String {
    let x = b.burn_tenths();
    let left = b
        .minutes_for(budget - s.spent_nusd)
        .map_or_else(String::new, |m| {
            format!("; at this rate what is left of it lasts {m} minutes")
        });
    format!(
        "tenant {} spends ${:.6} an hour over the last {} ({}.{}x the pace of ${:.6} an hour that makes its ${:.6} budget last; the last {} burned past {}.{}x too){left}",
        s.tenant,
        usd(b.short_rate_nusd_per_h),
        window(b.short_secs),
        x / 10,
        x % 10,
        usd(b.sustainable_nusd_per_h),
        usd(budget),
        window(b.long_secs.min(b.covered_secs)),
        b.factor_tenths / 10,
        b.factor_tenths % 10,
    )
}

/// Watches the budgets until `stop`.
pub(super) fn watch(ops: Operations, stop: CancellationToken) {
    tokio::spawn(async move {
        let default = TenantId::default_tenant();
        let mut was = ops.firing_keys(BUDGET_EXHAUSTED, "tenant").await;
        let mut was_burning = ops.firing_keys(SPEND_BURNING, "tenant").await;
        let poll = ops.inner.tuning.spend_poll;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
            }
            let c = &ops.inner.controller;
            let Ok(spend) = c.spend().await else {
                return; // shutting down
            };
            let at = c.clock().now_ms();
            let now = exhausted(&spend);
            let now_burning = burning(&ops.inner, &spend, &was_burning, at);
            let mut changes = inputs(&EXHAUSTED, &was, &now, at);
            changes.extend(inputs(&BURNING, &was_burning, &now_burning, at));
            if ops.observe(&default, changes).await {
                was = now.into_keys().collect();
                was_burning = now_burning.into_keys().collect();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_ops::alert::Report;

    fn spend(id: &str, budget: Option<i64>, spent: i64) -> Spend {
        Spend {
            tenant: TenantId::parse(id).unwrap(),
            budget_nusd: budget,
            spent_nusd: spent,
            paused: false,
        }
    }

    #[test]
    fn a_tenant_at_its_budget_fires_until_it_is_raised() {
        let books = [
            spend("acme", Some(1_000), 1_000),
            spend("globex", Some(50), 10),
            spend("initech", None, 9_999),
        ];
        let now = exhausted(&books);
        assert_eq!(now.keys().collect::<Vec<_>>(), ["acme"]);
        let said = |inputs: Vec<Input>| -> Vec<(String, Report)> {
            inputs
                .into_iter()
                .map(|i| match i {
                    Input::Signal(s) => (s.labels["tenant"].clone(), s.report),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            said(inputs(&EXHAUSTED, &BTreeSet::new(), &now, 1)),
            [("acme".to_owned(), Report::Firing)]
        );
        let was: BTreeSet<String> = ["acme".to_owned()].into();
        assert!(
            inputs(&EXHAUSTED, &was, &now, 2).is_empty(),
            "a steady state says nothing"
        );
        let raised = exhausted(&[spend("acme", Some(5_000), 1_000)]);
        assert_eq!(
            said(inputs(&EXHAUSTED, &was, &raised, 3)),
            [("acme".to_owned(), Report::Resolved)]
        );
    }
}
