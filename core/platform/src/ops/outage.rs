//! The store's signal: `OshalStoreDown`, of the `default` tenant (the
//! operator's). The store is where the loop writes, so an outage cannot
//! be recorded while it lasts: the watcher keeps when it began and why,
//! and once the store answers again records it whole, in one write: the
//! alert firing (at the time it began), the change event `store_outage`
//! (its seconds) and the alert resolved. A record that fails is tried
//! again at the next look. Read from the controller's health every
//! [`POLL`]; an outage shorter than one look goes unseen.

use std::time::Duration;

use oshal_ops::alert::{Report, Severity};
use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::monitor::Input;
use tokio_util::sync::CancellationToken;

use super::Operations;
use super::signals::{labels, signal};
use crate::ticket::TenantId;

/// The alert of a store that did not answer.
pub const STORE_DOWN: &str = "OshalStoreDown";
/// How often the store's health is read.
pub const POLL: Duration = Duration::from_secs(1);

/// An outage seen and not yet recorded: since when, and why.
#[derive(Debug, Clone, PartialEq)]
struct Outage {
    since_ms: i64,
    detail: String,
}

/// What one look at the store leads to: the outage still running (or
/// begun), and, once it answers again, the inputs that record it.
fn look(
    was: Option<Outage>,
    ok: bool,
    detail: Option<String>,
    at: i64,
) -> (Option<Outage>, Vec<Input>) {
    match (was, ok) {
        (None, true) => (None, Vec::new()),
        (None, false) => (
            Some(Outage {
                since_ms: at,
                detail: detail.unwrap_or_else(|| "no answer".into()),
            }),
            Vec::new(),
        ),
        (Some(o), false) => (Some(o), Vec::new()),
        (Some(o), true) => {
            let secs = ((at - o.since_ms) / 1000).max(1);
            let detail = crate::text::clip(&o.detail, 512).to_owned();
            let say = |report, summary: String, when| {
                signal(
                    STORE_DOWN,
                    labels(STORE_DOWN, &[]),
                    report,
                    summary,
                    Severity::Critical,
                    when,
                )
            };
            let inputs = vec![
                say(
                    Report::Firing,
                    format!("the store did not answer: {detail}"),
                    o.since_ms,
                ),
                Input::Change(ChangeEvent {
                    kind: ChangeKind::StoreOutage,
                    subject: "store".into(),
                    detail: detail.clone(),
                    count: u32::try_from(secs).unwrap_or(u32::MAX),
                    at_ms: o.since_ms,
                }),
                say(
                    Report::Resolved,
                    format!("the store answers again after {secs} s"),
                    at,
                ),
            ];
            (Some(o), inputs)
        }
    }
}

/// Watches the store until `stop`.
pub(super) fn watch(ops: Operations, stop: CancellationToken) {
    tokio::spawn(async move {
        let default = TenantId::default_tenant();
        let mut outage: Option<Outage> = None;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let health = ops.inner.controller.health().await;
            if health.store == "shutting_down" {
                return;
            }
            let at = ops.inner.controller.clock().now_ms();
            let (next, inputs) = look(outage.take(), health.store == "ok", health.detail, at);
            outage = if inputs.is_empty() {
                next
            } else if ops.observe(&default, inputs).await {
                None
            } else {
                // Not recorded: the next look says it again.
                next
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_recorded_whole_once_the_store_answers_again() {
        let (o, said) = look(None, true, None, 1_000);
        assert!(o.is_none() && said.is_empty());
        let (o, said) = look(None, false, Some("connection refused".into()), 2_000);
        assert!(said.is_empty(), "nothing can be written while it is down");
        let (o, said) = look(o, false, None, 3_000);
        assert!(said.is_empty());
        assert_eq!(o.as_ref().map(|o| o.since_ms), Some(2_000));
        let (_, said) = look(o, true, None, 6_500);
        let kinds: Vec<String> = said
            .iter()
            .map(|i| match i {
                Input::Signal(s) => format!("{} {:?} {}", s.name, s.report, s.at_ms),
                Input::Change(c) => format!("{:?} {} {}", c.kind, c.count, c.at_ms),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "OshalStoreDown Firing 2000",
                "StoreOutage 4 2000",
                "OshalStoreDown Resolved 6500"
            ]
        );
    }
}
