//! The platform's failure signal: `OshalTicketsDead`, of the `default`
//! tenant (the operator's), fires for a tenant of which [`THRESHOLD`]
//! tickets failed for good within [`WINDOW_MS`] (a poison input failing
//! every attempt, an outside system failing every call) and resolves once
//! none has for a whole window. Heard from the controller's transitions
//! (and read back from the store at start); the operations loop's own
//! tickets (its investigations and heals) do not count, so a failing
//! investigation never raises what would investigate it.
//! Only a change is recorded, and a record that fails is tried again at
//! the next look. After a restart it starts from the alerts the journal
//! says fire.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use oshal_ops::alert::Severity;
use oshal_ops::monitor::Input;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Operations;
use super::signals::Keyed;
use crate::controller::CoreEvent;
use crate::ticket::{TenantId, TicketId, TicketState};

/// The alert of a tenant whose tickets fail for good.
pub const TICKETS_DEAD: &str = "OshalTicketsDead";
/// Tickets dead within the window that make it fire.
pub const THRESHOLD: usize = 3;
/// How far back the deaths count.
pub const WINDOW_MS: i64 = 600_000;
/// How often the window is looked at.
const POLL: Duration = Duration::from_secs(5);
/// The idempotency keys of the loop's own tickets (its Gather and heal
/// tickets) start so; they never count.
const OWN_KEYS: [&str; 2] = ["ops-gather:", "ops-heal:"];

/// Whether a ticket is the operations loop's own.
fn own(v: &crate::store::TicketView) -> bool {
    v.kind == "investigate"
        || v.idempotency_key
            .as_deref()
            .is_some_and(|k| OWN_KEYS.iter().any(|p| k.starts_with(p)))
}

/// Each tenant's recent deaths (time, error), oldest first.
#[derive(Debug, Default)]
struct Deaths {
    by_tenant: BTreeMap<String, VecDeque<(i64, String)>>,
}

impl Deaths {
    fn push(&mut self, tenant: &str, at_ms: i64, error: String) {
        self.by_tenant
            .entry(tenant.to_owned())
            .or_default()
            .push_back((at_ms, error));
    }

    /// Forgets what fell out of the window; the tenants at the threshold,
    /// each with what to say of it, and those with any death at all.
    fn assess(&mut self, now_ms: i64) -> (BTreeMap<String, String>, BTreeSet<String>) {
        let mut firing = BTreeMap::new();
        let mut any = BTreeSet::new();
        self.by_tenant.retain(|tenant, q| {
            while q.front().is_some_and(|(at, _)| *at < now_ms - WINDOW_MS) {
                q.pop_front();
            }
            if let Some((_, newest)) = q.back() {
                any.insert(tenant.clone());
                if q.len() >= THRESHOLD {
                    firing.insert(
                        tenant.clone(),
                        format!(
                            "{} tickets of tenant {tenant} failed for good in the last {} minutes; the newest: {}",
                            q.len(),
                            WINDOW_MS / 60_000,
                            crate::text::clip(newest, 300)
                        ),
                    );
                }
            }
            !q.is_empty()
        });
        (firing, any)
    }
}

/// What changed, as the monitor's inputs: a tenant fires once at the
/// threshold, and resolves once its window is empty.
fn inputs(
    was: &BTreeSet<String>,
    firing: &BTreeMap<String, String>,
    any: &BTreeSet<String>,
    at: i64,
) -> Vec<Input> {
    const ALERT: Keyed = Keyed {
        name: TICKETS_DEAD,
        label: "tenant",
        severity: Severity::Warning,
    };
    ALERT.changes(
        was,
        firing,
        |t| any.contains(t),
        |t| {
            format!(
                "no ticket of tenant {t} failed for good in the last {} minutes",
                WINDOW_MS / 60_000
            )
        },
        at,
    )
}

/// The most dead tickets read back at start.
const MAX_READ_BACK: u32 = 1000;

/// Tickets dead since `since_ms` but the loop's own, oldest first, as
/// (tenant, time, error).
async fn recent_deaths(ops: &Operations, since_ms: i64) -> Vec<(String, i64, String)> {
    let query = crate::store::TicketQuery {
        tag: None,
        state: Some(TicketState::Dead),
        tenant: None,
        bot: None,
        kind: None,
        cursor: None,
        limit: MAX_READ_BACK,
    };
    let page = match ops.inner.controller.tickets(&query).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "dead tickets could not be read back at start");
            return Vec::new();
        }
    };
    let recent: Vec<TicketId> = page
        .tickets
        .iter()
        .filter(|t| t.updated_at_ms >= since_ms)
        .map(|t| t.id)
        .collect();
    let Ok(views) = ops.inner.controller.tickets_by_id(&recent, None).await else {
        return Vec::new();
    };
    let mut out: Vec<(String, i64, String)> = views
        .iter()
        .filter(|v| !own(v))
        .map(|v| {
            (
                v.tenant.to_string(),
                v.updated_at_ms,
                v.error.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort_by_key(|d| d.1);
    out
}

/// Watches the tickets' deaths until `stop`.
pub(super) fn watch(ops: Operations, stop: CancellationToken) {
    let mut events = ops.inner.controller.subscribe();
    tokio::spawn(async move {
        let default = TenantId::default_tenant();
        let mut was = ops.firing_keys(TICKETS_DEAD, "tenant").await;
        let mut deaths = Deaths::default();
        // After a restart the window is read back from the store, so what
        // fired before is not resolved for want of memory.
        let since = ops.inner.controller.clock().now_ms() - WINDOW_MS;
        for (tenant, at_ms, error) in recent_deaths(&ops, since).await {
            deaths.push(&tenant, at_ms, error);
        }
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = poll.tick() => {
                    let at = ops.inner.controller.clock().now_ms();
                    let (firing, any) = deaths.assess(at);
                    if ops.observe(&default, inputs(&was, &firing, &any, at)).await {
                        // Fired stays fired until its window empties.
                        was = was.intersection(&any).cloned().chain(firing.into_keys()).collect();
                    }
                }
                e = events.recv() => match e {
                    Ok(CoreEvent::TicketsTransitioned { transitions }) => {
                        let dead: Vec<_> = transitions
                            .iter()
                            .filter(|t| t.to == TicketState::Dead)
                            .collect();
                        if dead.is_empty() {
                            continue;
                        }
                        let ids: Vec<TicketId> = dead.iter().map(|t| t.ticket).collect();
                        // The loop's own tickets are left out; a batch that
                        // cannot be told apart is left out whole (never
                        // the loop raising an alert over itself).
                        let views = match ops.inner.controller.tickets_by_id(&ids, None).await {
                            Ok(views) => views,
                            Err(e) => {
                                tracing::warn!(error = %e, "dead tickets could not be read; not counted");
                                continue;
                            }
                        };
                        let mine: BTreeSet<TicketId> = views.iter().filter(|v| own(v)).map(|v| v.id).collect();
                        for t in dead.into_iter().filter(|t| !mine.contains(&t.ticket)) {
                            deaths.push(t.tenant.as_str(), t.at_ms, t.reason.clone());
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_ops::alert::Report;

    fn said(inputs: Vec<Input>) -> Vec<(String, Report)> {
        inputs
            .into_iter()
            .map(|i| match i {
                Input::Signal(s) => (s.labels["tenant"].clone(), s.report),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_tenant_fires_at_the_threshold_and_resolves_once_its_window_is_empty() {
        let mut d = Deaths::default();
        d.push("acme", 1_000, "crm.find answered 503".into());
        d.push("acme", 2_000, "crm.find answered 503".into());
        d.push("globex", 2_000, "bad".into());
        let (firing, any) = d.assess(3_000);
        assert!(firing.is_empty(), "two are not three");
        assert!(inputs(&BTreeSet::new(), &firing, &any, 3_000).is_empty());
        d.push("acme", 3_000, "crm.find answered 503".into());
        let (firing, any) = d.assess(3_500);
        assert_eq!(
            said(inputs(&BTreeSet::new(), &firing, &any, 3_500)),
            [("acme".to_owned(), Report::Firing)]
        );
        assert!(firing["acme"].contains("503"), "{}", firing["acme"]);
        let was: BTreeSet<String> = ["acme".to_owned()].into();
        // One death falls out of the window: below the threshold, but not
        // yet quiet, so it keeps firing.
        let (firing, any) = d.assess(1_500 + WINDOW_MS);
        assert!(!firing.contains_key("acme"));
        assert!(inputs(&was, &firing, &any, 1_500 + WINDOW_MS).is_empty());
        let (firing, any) = d.assess(3_001 + WINDOW_MS);
        assert_eq!(
            said(inputs(&was, &firing, &any, 3_001 + WINDOW_MS)),
            [("acme".to_owned(), Report::Resolved)]
        );
        assert!(d.by_tenant.is_empty(), "an empty window is forgotten");
    }
}
