//! Gather: each incident, once opened, is investigated by a ticket; again
//! after each heal (its re-check), and whenever a person asks
//! ([`Operations::investigate_again`]: an open incident not being
//! investigated, at most `MAX_INVESTIGATIONS` times). Investigations start
//! one at a time, each numbered (its ticket's idempotency key) after every
//! one started before.
//!
//! The plan comes from the runbooks that match the incident's first alert
//! (`assets/ops/runbooks.json`) and the toolsets enabled for its tenant.
//! The ticket (kind `investigate`) is submitted held for approval; it is
//! recorded on the incident, then given **grants bound to it alone** on
//! the built-in `oshal-ops` connector, for the planned read-only
//! operations, with a budget of the plan's calls per attempt and an
//! expiry, and only then approved by the loop. So the bot that runs it
//! can make the planned reads and nothing else: a write answers
//! `approval_required`, any other call is denied, by the broker.
//!
//! When the ticket ends, its findings are taken (the monitor checks the
//! evidence and computes the diagnosis itself) or the investigation fails
//! with why, and the ticket's grants are revoked. The ticket's end is
//! heard from the controller's events and, for what an event missed (a
//! lagging subscriber, a restart), from a poll of the running ones. A
//! ticket that could not be recorded is cancelled before it runs, one
//! still not done when its grants expire is cancelled, and one whose
//! idempotency key a tenant took for other work is not adopted.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use oshal_ops::evidence::Bounds;
use oshal_ops::gather::{CONNECTOR, Tool};
use oshal_ops::investigation::{Findings, Phase};
use oshal_ops::monitor::{CHANGE_LOOKBACK_MS, Event, Input, MAX_INVESTIGATIONS};
use oshal_ops::runbook::{self, Plan, Runbook, Toolset, ToolsetStatus};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{Operations, OpsError};
use crate::controller::CoreEvent;
use crate::name::Named;
use crate::ticket::{InvestigatePayload, NewTicket, PlannedCall, TenantId, TicketId, TicketState};

/// How often the running investigations' tickets are looked at, whatever
/// the events said.
const POLL: Duration = Duration::from_secs(5);
/// How long a Gather ticket's grants outlive its own wall bound (its wait
/// in the queue).
const GRANT_GRACE_MS: i64 = 600_000;
/// Who the loop's own approvals and grants are by.
const BY: &str = "ops-loop";
/// The attempts a Gather ticket may take.
const MAX_ATTEMPTS: u32 = 2;
/// The model tokens an investigation's narrative may use.
pub const NARRATIVE_TOKENS: u32 = 160;

/// The runbooks shipped with the platform, read once.
pub fn shipped_runbooks() -> &'static [Runbook] {
    static SHIPPED: LazyLock<Vec<Runbook>> = LazyLock::new(|| {
        serde_json::from_str(include_str!("../../../../assets/ops/runbooks.json"))
            .expect("the shipped runbooks parse (tested)")
    });
    &SHIPPED
}

/// The toolsets a tenant's investigations may use here, each with why
/// not when it may not.
pub fn toolsets(tenant: &TenantId, connectors: bool) -> Vec<Toolset> {
    let set = |name: &str, tools: &[Tool], status, why: Option<&str>| Toolset {
        name: name.into(),
        tools: tools.iter().map(|t| t.as_str().to_owned()).collect(),
        status,
        why: why.map(str::to_owned),
    };
    let platform = [Tool::GetBots, Tool::GetHealth, Tool::ListFindings];
    let own = [Tool::ListChanges, Tool::GetSpend, Tool::ListFailures];
    if !connectors {
        let why = Some(
            "this platform runs without a connector runtime, and tools are reached only through its gate",
        );
        return vec![
            set("platform", &platform, ToolsetStatus::Failed, why),
            set("tenant", &own, ToolsetStatus::Failed, why),
        ];
    }
    let operator = *tenant == TenantId::default_tenant();
    vec![
        if operator {
            set("platform", &platform, ToolsetStatus::Enabled, None)
        } else {
            set(
                "platform",
                &platform,
                ToolsetStatus::Disabled,
                Some(
                    "the platform's own state is the operator's; a tenant's incidents do not read it",
                ),
            )
        },
        set("tenant", &own, ToolsetStatus::Enabled, None),
    ]
}

impl Operations {
    /// A person asks for `incident` to be investigated again (capacity
    /// added, a prerequisite fixed, or to see how it stands now): a new
    /// Gather ticket, its evidence and diagnosis beside the earlier ones,
    /// and a heal proposed if a rule matches the new diagnosis and none
    /// of that rule was proposed before. Refused for an incident not
    /// open, one an investigation runs for, or a tenant whose settings
    /// turn investigations off.
    pub async fn investigate_again(
        &self,
        tenant: Option<&str>,
        incident: &str,
    ) -> Result<super::IncidentView, OpsError> {
        let t = self.tenant(tenant).await?;
        if self.inner.controller.connectors().is_none() {
            return Err(OpsError::Conflict(
                "this platform runs without a connector runtime; an investigation reads only through its gate"
                    .into(),
            ));
        }
        let _one = self.inner.investigating.lock().await;
        {
            let book = self.book(&t);
            let book = book.lock().await;
            let m = &book.monitor;
            let inc = m
                .incident(incident)
                .ok_or_else(|| OpsError::NotFound(format!("no incident {incident}")))?;
            if !inc.status.is_open() {
                let status: &'static str = inc.status.into();
                return Err(OpsError::Conflict(format!(
                    "{incident} is {status}: only an open incident is investigated"
                )));
            }
            if let Some(running) = m
                .investigations(incident)
                .iter()
                .find(|i| i.phase == Phase::Running)
            {
                return Err(OpsError::Conflict(format!(
                    "{incident} is being investigated already, by ticket {}",
                    running.ticket
                )));
            }
            if !m.settings().investigate {
                return Err(OpsError::Conflict(
                    "investigations are turned off in these settings (`investigate`)".into(),
                ));
            }
            let n = m.investigations_started(incident);
            if n as usize >= MAX_INVESTIGATIONS {
                return Err(OpsError::Conflict(format!(
                    "{incident} was investigated {n} times; an incident keeps at most {MAX_INVESTIGATIONS}"
                )));
            }
        }
        self.investigate_now(&t, incident, None).await?;
        self.incident(Some(t.as_str()), incident).await
    }

    /// Starts an investigation of `incident`, if a plan has tasks; a
    /// re-check of heal `recheck_of` if one is named.
    pub(super) async fn investigate(
        &self,
        tenant: &TenantId,
        incident: &str,
        recheck_of: Option<&str>,
    ) -> Result<(), OpsError> {
        let _one = self.inner.investigating.lock().await;
        self.investigate_now(tenant, incident, recheck_of).await
    }

    /// [`Operations::investigate`], holding `investigating`: one start at
    /// a time, so each investigation gets a number (and a ticket key) of
    /// its own.
    async fn investigate_now(
        &self,
        tenant: &TenantId,
        incident: &str,
        recheck_of: Option<&str>,
    ) -> Result<(), OpsError> {
        let Some(connectors) = self.inner.controller.connectors().cloned() else {
            return Ok(());
        };
        let (alert, plan, n) = {
            let book = self.book(tenant);
            let book = book.lock().await;
            let m = &book.monitor;
            if !m.settings().investigate {
                return Ok(());
            }
            let inc = m
                .incident(incident)
                .ok_or_else(|| OpsError::NotFound(format!("no incident {incident}")))?;
            let Some(first) = inc.alerts.first().and_then(|fp| m.alert(fp)) else {
                return Ok(());
            };
            let mut plan =
                runbook::plan(shipped_runbooks(), &toolsets(tenant, true), &first.labels);
            let since = (inc.opened_ms - CHANGE_LOOKBACK_MS).max(0);
            // A re-check asks whether tickets still die after the heal was
            // approved: those that died before are why it was proposed.
            let failed_since = recheck_of
                .and_then(|h| m.heals(incident).iter().find(|x| x.id == h))
                .and_then(|h| h.decided_ms)
                .map_or(since, |at| at.max(since));
            for t in &mut plan.tasks {
                if t.params.get("since_ms").is_some() {
                    continue;
                }
                if t.tool == Tool::ListChanges.as_str() {
                    t.params = json!({"since_ms": since});
                } else if t.tool == Tool::GetSpend.as_str() {
                    // The operator's look at the tenant its alert names.
                    if let Some(of) = first.labels.get("tenant")
                        && *tenant == TenantId::default_tenant()
                    {
                        t.params = json!({"tenant": of});
                    }
                } else if t.tool == Tool::ListFailures.as_str() {
                    // The operator's look at the tenant its alert names.
                    t.params = match first.labels.get("tenant") {
                        Some(of) if *tenant == TenantId::default_tenant() => {
                            json!({"since_ms": failed_since, "tenant": of})
                        }
                        _ => json!({"since_ms": failed_since}),
                    };
                }
            }
            (
                first.name.clone(),
                plan,
                m.investigations_started(incident) as usize + 1,
            )
        };
        if plan.tasks.is_empty() {
            tracing::info!(%tenant, incident, skipped = plan.skipped.len(), "no task to investigate with");
            return Ok(());
        }
        let bounds = Bounds {
            max_steps: plan.tasks.len() as u32,
            max_wall_ms: 120_000,
            max_tokens: NARRATIVE_TOKENS,
        };
        let ticket = self
            .submit_gather(tenant, incident, &alert, &plan, bounds, n)
            .await?;
        let recorded = self
            .take_one(
                tenant,
                Input::StartInvestigation {
                    incident: incident.to_owned(),
                    ticket: ticket.to_string(),
                    alert,
                    plan: plan.clone(),
                    bounds,
                    recheck_of: recheck_of.map(str::to_owned),
                },
            )
            .await;
        if let Err(e) = recorded {
            // Not on the record, so nothing would ever release or settle
            // it: it goes, holding no grant, never having run.
            if let Err(c) = self.inner.controller.cancel(ticket).await {
                tracing::warn!(%ticket, error = %c, "an unrecorded Gather ticket could not be cancelled");
            }
            return Err(e);
        }
        self.release(&connectors, tenant, ticket, &plan, bounds)
            .await
    }

    async fn submit_gather(
        &self,
        tenant: &TenantId,
        incident: &str,
        alert: &str,
        plan: &Plan,
        bounds: Bounds,
        n: usize,
    ) -> Result<TicketId, OpsError> {
        let payload = InvestigatePayload {
            incident: incident.to_owned(),
            alert: alert.to_owned(),
            connector: CONNECTOR.into(),
            calls: plan
                .tasks
                .iter()
                .map(|t| PlannedCall {
                    operation: t.tool.clone(),
                    params: t.params.clone(),
                })
                .collect(),
            max_steps: bounds.max_steps,
            max_wall_ms: bounds.max_wall_ms,
            max_tokens: bounds.max_tokens,
        };
        let submitted = self
            .inner
            .controller
            .submit(NewTicket {
                kind: "investigate".into(),
                payload: serde_json::to_value(&payload).expect("a payload serializes"),
                tenant: Some(tenant.to_string()),
                // A retry after a crash finds the ticket it submitted.
                idempotency_key: Some(format!("ops-gather:{incident}:{n}")),
                priority: Some(8),
                max_attempts: Some(MAX_ATTEMPTS),
                requires_approval: true,
                ..NewTicket::default()
            })
            .await?;
        if submitted.duplicate {
            // The key names a ticket submitted before: it must be this
            // very work (a retry), never one a tenant placed under it.
            let earlier = self.inner.controller.ticket(submitted.id).await?;
            let ours = serde_json::to_value(&payload).expect("a payload serializes");
            if earlier.kind != "investigate" || earlier.payload != ours {
                return Err(OpsError::Conflict(format!(
                    "ticket {} holds the key of {incident}'s Gather ticket but other work; not investigated",
                    submitted.id
                )));
            }
        }
        Ok(submitted.id)
    }

    /// Binds the ticket's read grants to it, then lets it run.
    async fn release(
        &self,
        connectors: &crate::connector::Connectors,
        tenant: &TenantId,
        ticket: TicketId,
        plan: &Plan,
        bounds: Bounds,
    ) -> Result<(), OpsError> {
        let mut operations: Vec<String> = plan.tasks.iter().map(|t| t.tool.clone()).collect();
        operations.sort();
        operations.dedup();
        let now = self.inner.controller.clock().now_ms();
        let expires = now + bounds.max_wall_ms as i64 + GRANT_GRACE_MS;
        // A grant left by an earlier try of this same step goes first.
        connectors
            .revoke_ticket_grants(ticket, BY)
            .await
            .map_err(conn)?;
        connectors
            .grant_ticket(
                ticket,
                CONNECTOR,
                &operations,
                expires,
                // As many calls as the plan makes, for each attempt the
                // ticket may take (a requeued attempt makes them again).
                plan.tasks.len() as u32 * MAX_ATTEMPTS,
                BY,
            )
            .await
            .map_err(conn)?;
        self.inner.controller.approve(ticket).await?;
        // Followed once released: the poll never finds it half-way.
        self.inner
            .running
            .lock()
            .await
            .insert(ticket, tenant.clone());
        Ok(())
    }

    /// Takes what an ended Gather ticket brought back; `false` if it has
    /// not ended.
    async fn settle(&self, tenant: &TenantId, ticket: TicketId) -> Result<bool, OpsError> {
        let heals = {
            let book = self.book(tenant);
            let book = book.lock().await;
            book.monitor.heal_of(&ticket.to_string()).is_some()
        };
        if heals {
            return self.settle_heal(tenant, ticket).await;
        }
        let view = self.inner.controller.ticket(ticket).await?;
        let input = match view.state {
            TicketState::Succeeded => {
                let text = view
                    .result
                    .as_ref()
                    .and_then(|r| r.get("text"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match serde_json::from_str::<Findings>(text) {
                    Ok(findings) => Input::FinishInvestigation {
                        ticket: ticket.to_string(),
                        findings,
                        cost_nanos: view.cost.cost_nusd,
                    },
                    Err(e) => Input::FailInvestigation {
                        ticket: ticket.to_string(),
                        error: format!("the ticket's result is not findings: {e}"),
                    },
                }
            }
            TicketState::Dead | TicketState::Cancelled => Input::FailInvestigation {
                ticket: ticket.to_string(),
                error: format!(
                    "the ticket ended {}: {}",
                    view.state.as_str(),
                    view.error.as_deref().unwrap_or("no reason given")
                ),
            },
            TicketState::AwaitingApproval => {
                // Submitted and recorded, not yet released (a restart came
                // between): release it now.
                self.rerelease(tenant, ticket).await?;
                return Ok(false);
            }
            _ => {
                // Waiting or running past its grants' expiry: it can no
                // longer gather anything, so it goes (and fails as cancelled
                // at the next look).
                if self.overdue(tenant, ticket).await {
                    self.inner.controller.cancel(ticket).await?;
                }
                return Ok(false);
            }
        };
        // The ticket has ended: its grants go first, so an investigation
        // shown ended never leaves one behind.
        if let Some(c) = self.inner.controller.connectors() {
            c.revoke_ticket_grants(ticket, BY).await.map_err(conn)?;
        }
        match self.take_one(tenant, input).await {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| matches!(e, Event::InvestigationSucceeded { .. }))
                    && let Err(e) = self.propose_heal(tenant, &ticket.to_string()).await
                {
                    // The findings are kept; only the proposal is lost.
                    tracing::warn!(%ticket, error = %e, "no heal could be proposed");
                }
            }
            // Findings the store refuses for their data (never for an
            // outage) would be refused at every look: the investigation
            // fails saying so instead.
            Err(OpsError::Store(e)) if e.is_permanent() => {
                let fail = Input::FailInvestigation {
                    ticket: ticket.to_string(),
                    error: format!("the store refused its findings: {e}"),
                };
                self.take_one(tenant, fail).await?;
            }
            Err(e) => return Err(e),
        }
        self.inner.running.lock().await.remove(&ticket);
        Ok(true)
    }

    /// Whether a Gather ticket still not ended has outlived its grants.
    async fn overdue(&self, tenant: &TenantId, ticket: TicketId) -> bool {
        let now = self.inner.controller.clock().now_ms();
        let book = self.book(tenant);
        let book = book.lock().await;
        book.monitor
            .investigation_of(&ticket.to_string())
            .is_some_and(|(_, i)| now > i.started_ms + i.bounds.max_wall_ms as i64 + GRANT_GRACE_MS)
    }

    async fn rerelease(&self, tenant: &TenantId, ticket: TicketId) -> Result<(), OpsError> {
        let Some(connectors) = self.inner.controller.connectors().cloned() else {
            return Ok(());
        };
        let found = {
            let book = self.book(tenant);
            let book = book.lock().await;
            book.monitor
                .investigation_of(&ticket.to_string())
                .map(|(_, i)| (i.plan.clone(), i.bounds))
        };
        match found {
            Some((plan, bounds)) => {
                self.release(&connectors, tenant, ticket, &plan, bounds)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Every running investigation's ticket, from the journal (at start).
    pub(super) async fn resume_running(&self) {
        let mut running = Vec::new();
        for (tenant, book) in self.books_of(None) {
            let book = book.lock().await;
            for inc in book.monitor.incidents() {
                for inv in book.monitor.investigations(&inc.id) {
                    if inv.phase == Phase::Running
                        && let Ok(id) = TicketId::parse(&inv.ticket)
                    {
                        running.push((id, tenant.clone()));
                    }
                }
            }
        }
        self.inner.running.lock().await.extend(running);
    }
}

pub(super) fn conn(e: crate::connector::ConnectorError) -> OpsError {
    OpsError::Conflict(format!("the connector broker: {e}"))
}

/// Follows the running investigations' tickets until `stop`.
pub(super) fn follow(ops: Operations, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut events = ops.inner.controller.subscribe();
        let mut poll = tokio::time::interval(POLL);
        loop {
            let ended: Vec<(TicketId, TenantId)> = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = poll.tick() => {
                    ops.resume_heals(false).await;
                    ops.inner.running.lock().await.iter().map(|(t, n)| (*t, n.clone())).collect()
                }
                event = events.recv() => match event {
                    Ok(CoreEvent::TicketsTransitioned { transitions }) => {
                        let running = ops.inner.running.lock().await;
                        transitions
                            .iter()
                            .filter(|t| t.to.is_terminal())
                            .filter_map(|t| running.get(&t.ticket).map(|n| (t.ticket, n.clone())))
                            .collect()
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            for (ticket, tenant) in ended {
                if let Err(e) = ops.settle(&tenant, ticket).await {
                    tracing::warn!(%ticket, error = %e, "an investigation's ticket could not be settled; tried again");
                }
            }
        }
    });
}

/// Starts investigating each incident `opened` (called after they are
/// recorded).
pub(super) fn on_opened(ops: &Operations, tenant: &TenantId, opened: Vec<String>) {
    for incident in opened {
        let (ops, tenant) = (ops.clone(), tenant.clone());
        tokio::spawn(async move {
            if let Err(e) = ops.investigate(&tenant, &incident, None).await {
                tracing::warn!(%tenant, incident, error = %e, "the incident could not be investigated");
            }
        });
    }
}

/// Mounts the built-in connector the investigations call.
pub(super) fn mount(ops: &Operations) -> Result<(), OpsError> {
    let Some(connectors) = ops.inner.controller.connectors() else {
        return Ok(());
    };
    let manifest = super::tools::manifest().map_err(|e| OpsError::Conflict(e.to_string()))?;
    let handler = Arc::new(super::tools::OpsTools {
        ops: Arc::downgrade(&ops.inner),
    });
    connectors.mount(manifest, handler).map_err(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_runbooks_hold_and_plan_only_known_tools() {
        let books = shipped_runbooks();
        runbook::check(books).expect("valid");
        for b in books {
            for s in &b.steps {
                assert!(Tool::parse(&s.tool).is_some(), "{} in {}", s.tool, b.name);
            }
        }
        let labels = [("alertname".to_owned(), "OshalNodeLost".to_owned())].into();
        let operator = runbook::plan(books, &toolsets(&TenantId::default_tenant(), true), &labels);
        let tools: Vec<&str> = operator.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["get_bots", "list_changes", "get_health"]);
        let acme = TenantId::parse("acme").unwrap();
        let tenant = runbook::plan(books, &toolsets(&acme, true), &labels);
        let tools: Vec<&str> = tenant.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["list_changes"], "a tenant reads only its own");
        let labels = [("alertname".to_owned(), "OshalBudgetExhausted".to_owned())].into();
        let budget = runbook::plan(books, &toolsets(&TenantId::default_tenant(), true), &labels);
        let tools: Vec<&str> = budget.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["get_spend", "list_changes", "get_health"]);
        let labels = [("alertname".to_owned(), "OshalTicketsDead".to_owned())].into();
        let dead = runbook::plan(books, &toolsets(&TenantId::default_tenant(), true), &labels);
        let tools: Vec<&str> = dead.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["list_failures", "list_changes", "get_health"]);
        let labels = [("alertname".to_owned(), "OshalSecretFound".to_owned())].into();
        let secret = runbook::plan(books, &toolsets(&TenantId::default_tenant(), true), &labels);
        let tools: Vec<&str> = secret.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["list_findings", "list_changes", "get_health"]);
        let labels = [("alertname".to_owned(), "OshalStoreDown".to_owned())].into();
        let store = runbook::plan(books, &toolsets(&TenantId::default_tenant(), true), &labels);
        let tools: Vec<&str> = store.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["list_changes", "get_health"]);
        assert!(
            tenant
                .skipped
                .iter()
                .any(|s| s.tool == "get_bots" && s.why.contains("disabled"))
        );
        let none = runbook::plan(books, &toolsets(&acme, false), &labels);
        assert!(none.tasks.is_empty() && none.skipped.iter().all(|s| s.why.contains("failed")));
    }
}
