//! The Security Center's signal: `OshalSecretFound`, of the `default`
//! tenant (the operator's), fires for each open finding of a secret in
//! the clear (rule `secrets.exposed`) and resolves once the finding is
//! resolved or suppressed. Read from the Security Center's findings every
//! [`POLL`]; only a change is recorded, and a record that fails is tried
//! again at the next look. After a restart it starts from the alerts the
//! journal says fire. The alert names the finding and its place, never
//! the secret (the Security Center never keeps it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use oshal_ops::alert::Severity;
use oshal_ops::gather::SECRET_RULE;
use oshal_ops::monitor::Input;
use tokio_util::sync::CancellationToken;

use super::Operations;
use super::signals::Keyed;
use crate::security::{Finding, FindingQuery, FindingState, SecurityCenter};
use crate::ticket::TenantId;

/// The alert of a secret found in the clear.
pub const SECRET_FOUND: &str = "OshalSecretFound";
/// How often the findings are read.
pub const POLL: Duration = Duration::from_secs(3);
/// The most open findings one look reads.
const MAX_READ: u32 = 1000;

/// The open secret findings, by id, with what to say of each.
fn secrets(findings: &[Finding]) -> BTreeMap<String, String> {
    findings
        .iter()
        // Oshal's own scan only: an imported SARIF run may name the same
        // rule, and its message may quote what it found.
        .filter(|f| f.source == "oshal" && f.rule == SECRET_RULE && f.state == FindingState::Open)
        .map(|f| {
            let summary = format!("{}: {}", f.object, f.message);
            (f.id.clone(), crate::text::clip(&summary, 1000).to_owned())
        })
        .collect()
}

/// What changed between `was` and `now`, as the monitor's inputs.
fn inputs(was: &BTreeSet<String>, now: &BTreeMap<String, String>, at: i64) -> Vec<Input> {
    const ALERT: Keyed = Keyed {
        name: SECRET_FOUND,
        label: "finding",
        severity: Severity::Critical,
    };
    ALERT.changes(
        was,
        now,
        |id| now.contains_key(id),
        |id| format!("finding {id} is no longer open"),
        at,
    )
}

/// Watches the Security Center's findings until `stop`.
pub(super) fn watch(ops: Operations, center: SecurityCenter, stop: CancellationToken) {
    tokio::spawn(async move {
        let default = TenantId::default_tenant();
        let mut was = ops.firing_keys(SECRET_FOUND, "finding").await;
        let query = FindingQuery {
            state: Some(FindingState::Open),
            source: None,
            limit: Some(MAX_READ),
        };
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let findings = match center.findings(&query).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "the Security Center's findings could not be read");
                    continue;
                }
            };
            let mut now = secrets(&findings);
            if findings.len() >= MAX_READ as usize {
                // A full page may have left some out: none is taken for
                // resolved on its word.
                // (A key fired already says nothing new: no summary needed.)
                now.extend(was.iter().map(|k| (k.clone(), String::new())));
            }
            let at = ops.inner.controller.clock().now_ms();
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

    #[test]
    fn a_secret_found_fires_until_its_finding_is_no_longer_open() {
        let one: BTreeMap<String, String> = [("a1".to_owned(), "app.env".to_owned())].into();
        let fired: BTreeSet<String> = one.keys().cloned().collect();
        let said = |inputs: Vec<Input>| -> Vec<(String, Report)> {
            inputs
                .into_iter()
                .map(|i| match i {
                    Input::Signal(s) => (s.labels["finding"].clone(), s.report),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            said(inputs(&BTreeSet::new(), &one, 1)),
            [("a1".to_owned(), Report::Firing)]
        );
        assert!(
            inputs(&fired, &one, 2).is_empty(),
            "a steady state says nothing"
        );
        assert_eq!(
            said(inputs(&fired, &BTreeMap::new(), 3)),
            [("a1".to_owned(), Report::Resolved)]
        );
    }
}
