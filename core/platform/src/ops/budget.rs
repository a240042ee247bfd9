//! The platform's budget signal: `OshalBudgetExhausted`, of the `default`
//! tenant (the operator's), fires for a tenant whose spend has reached its
//! budget (its new tickets are refused) and resolves once the budget is
//! raised or lifted. Read every few seconds from the scheduler's own books
//! (what its admissions refuse by; no ledger is summed); only a change is
//! recorded, and a record that fails is tried again at the next read.
//! After a restart it starts from the alerts the journal says fire.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use oshal_ops::alert::Severity;
use oshal_ops::monitor::Input;
use tokio_util::sync::CancellationToken;

use super::Operations;
use super::signals::Keyed;
use crate::controller::Spend;
use crate::cost::usd;
use crate::ticket::TenantId;

/// The alert of a tenant at its budget.
pub const BUDGET_EXHAUSTED: &str = "OshalBudgetExhausted";
/// How often spend is read against the budgets.
const POLL: Duration = Duration::from_secs(5);

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

/// What changed between `was` and `now`, as the monitor's inputs.
fn inputs(was: &BTreeSet<String>, now: &BTreeMap<String, String>, at: i64) -> Vec<Input> {
    const ALERT: Keyed = Keyed {
        name: BUDGET_EXHAUSTED,
        label: "tenant",
        severity: Severity::Warning,
    };
    ALERT.changes(
        was,
        now,
        |t| now.contains_key(t),
        |t| format!("tenant {t} is within its budget again"),
        at,
    )
}

/// Watches the budgets until `stop`.
pub(super) fn watch(ops: Operations, stop: CancellationToken) {
    tokio::spawn(async move {
        let default = TenantId::default_tenant();
        let mut was = ops.firing_keys(BUDGET_EXHAUSTED, "tenant").await;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let c = &ops.inner.controller;
            let Ok(spend) = c.spend().await else {
                return; // shutting down
            };
            let now = exhausted(&spend);
            let at = c.clock().now_ms();
            if ops.observe(&default, inputs(&was, &now, at)).await {
                was = now.into_keys().collect();
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
            said(inputs(&BTreeSet::new(), &now, 1)),
            [("acme".to_owned(), Report::Firing)]
        );
        let was: BTreeSet<String> = ["acme".to_owned()].into();
        assert!(
            inputs(&was, &now, 2).is_empty(),
            "a steady state says nothing"
        );
        let raised = exhausted(&[spend("acme", Some(5_000), 1_000)]);
        assert_eq!(
            said(inputs(&was, &raised, 3)),
            [("acme".to_owned(), Report::Resolved)]
        );
    }
}
