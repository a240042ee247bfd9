//! Heal: an investigation's diagnosis healed by one write, after a
//! person's approval, under one scoped and expiring grant.
//!
//! When an investigation of one of the operator's incidents succeeds,
//! the heal rules of the operator's (`default` tenant's) settings are
//! matched against its diagnosis (`oshal_ops::heal::candidates`: a
//! conclusive top cause, once per rule and incident). The matches are
//! filled in from the platform's figures (`plan.rs`), in order, until one
//! holds (a plan refused for its figures passes to the next; one that
//! cannot read them stops there), into a concrete action with its dry run (what it
//! would change, from what to what) and blast radius (tenants, bots,
//! tickets), and proposed: the heal waits, `pending`, for a person.
//!
//! Approved, the heal's ticket is submitted (kind `tool`: one call of the
//! built-in `oshal-ops` connector's write operation) held for approval,
//! recorded on the heal, then given **one grant bound to it alone**: that
//! one operation, as many calls as its attempts, expiring after
//! [`HEAL_GRANT_MS`]; only then is it released (`writes.rs` also holds
//! the call to exactly the action approved). Denied, nothing runs. When
//! the ticket ends its grant is revoked and the outcome recorded (a
//! replay's once its replays have ended too); a heal that succeeded is
//! re-checked by investigating the incident again, and a re-check that
//! no longer finds the cause mitigates it. An approved heal whose ticket
//! cannot be released within [`HEAL_GRANT_MS`] is given up.
//!
//! Only the operator's incidents are healed, and only on the operator's
//! approval: a heal writes the platform's own state (a replay submits a
//! tenant's tickets again, as the operator decided).

use oshal_ops::gather::CONNECTOR;
use oshal_ops::heal::{self, Action, DryRun, HealPhase};
use oshal_ops::investigation::Phase;
use oshal_ops::monitor::{CHANGE_LOOKBACK_MS, Event, Input};
use oshal_ops::rule::{ActionTemplate, HealRule};
use serde_json::Value;

use super::{HealDecision, IncidentView, Operations, OpsError, conn};
use crate::name::Named;
use crate::ticket::{NewTicket, TenantId, TicketId, TicketState, ToolPayload};
use plan::Planned;

mod plan;
pub(super) mod restart;
pub(super) mod rotate;

/// How long a heal's write grant lasts once released.
pub const HEAL_GRANT_MS: i64 = 600_000;
/// How long past its grant a heal ticket still not done is let be.
const OVERDUE_GRACE_MS: i64 = 60_000;
/// Who the loop's own grants are by.
const BY: &str = "ops-loop";
/// What the heal ticket's model is asked after the write (it never writes).
const HEAL_PROMPT: &str = "In one sentence, say what this heal changed.";

/// How a replay's tickets stand, as its heal waits for them.
enum Replays {
    /// The write was no replay.
    None,
    Waiting,
    Ended(String),
    /// Some still ran when the heal was overdue: it fails (its re-check
    /// would judge work not done).
    GaveUp(String),
}

impl Replays {
    /// The heal's outcome, after what its write answered.
    fn outcome(self, answered: String) -> Result<String, String> {
        match self {
            Replays::None | Replays::Waiting => Ok(answered),
            Replays::Ended(s) => Ok(format!("{answered}; {s}")),
            Replays::GaveUp(s) => Err(format!("{answered}; {s}")),
        }
    }
}

impl Operations {
    /// Proposes the heal the diagnosis of investigation `ticket` calls for,
    /// if a heal rule does (and it is no re-check).
    pub(super) async fn propose_heal(
        &self,
        tenant: &TenantId,
        ticket: &str,
    ) -> Result<(), OpsError> {
        if *tenant != TenantId::default_tenant() {
            return Ok(());
        }
        let found = {
            let book = self.book(tenant);
            let book = book.lock().await;
            let m = &book.monitor;
            let Some((incident, inv)) = m.investigation_of(ticket) else {
                return Ok(());
            };
            let rechecks = m
                .heals(incident)
                .iter()
                .any(|h| h.recheck.as_ref().is_some_and(|r| r.ticket == ticket));
            let open = m.incident(incident).is_some_and(|i| i.status.is_open());
            let (Some(d), Some(inc)) = (&inv.diagnosis, m.incident(incident)) else {
                return Ok(());
            };
            if rechecks || !open || inv.phase != Phase::Succeeded {
                return Ok(());
            }
            let labels = inc
                .alerts
                .first()
                .and_then(|fp| m.alert(fp))
                .map(|a| a.labels.clone())
                .unwrap_or_default();
            let rules: Vec<HealRule> = heal::candidates(
                &m.settings().heal,
                d,
                &labels,
                m.heals(incident),
                m.capped(),
            )
            .into_iter()
            .cloned()
            .collect();
            let Some(cause) = d.causes.first() else {
                return Ok(());
            };
            let planned = Planned {
                cause: cause.kind,
                subject: cause.subject.clone(),
                tenant: labels.get("tenant").cloned(),
                finding: labels.get("finding").cloned(),
                since_ms: (inc.opened_ms - CHANGE_LOOKBACK_MS).max(0),
            };
            (incident.to_owned(), rules, planned)
        };
        let (incident, rules, planned) = found;
        // The first rule whose plan holds on the live figures; if none
        // does, every refusal says why.
        let mut refused: Vec<OpsError> = Vec::new();
        let mut chosen = None;
        for rule in rules {
            match self.plan(&rule, &planned).await {
                Ok(plan) => {
                    chosen = Some((rule, plan));
                    break;
                }
                // The plan does not hold on these figures: the next may.
                Err(e @ (OpsError::Conflict(_) | OpsError::NotFound(_))) => refused.push(e),
                // The figures could not be read: no rule is proposed
                // over a passing outage.
                Err(e) => return Err(e),
            }
        }
        let Some((rule, (action, dry_run))) = chosen else {
            return match refused.len() {
                0 => Ok(()),
                1 => Err(refused.remove(0)),
                _ => Err(OpsError::Conflict(
                    refused
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
            };
        };
        self.take_one(
            tenant,
            Input::ProposeHeal {
                incident,
                investigation: ticket.to_owned(),
                rule: rule.name,
                action,
                dry_run,
            },
        )
        .await?;
        Ok(())
    }

    /// `rule`'s template filled in from the live figures: its action and
    /// dry run, or why it does not hold.
    async fn plan(&self, rule: &HealRule, planned: &Planned) -> Result<(Action, DryRun), OpsError> {
        let subject = &planned.subject;
        match rule.action {
            ActionTemplate::RaiseBudget { percent } => {
                self.plan_raise(rule, subject, percent).await
            }
            ActionTemplate::CapBudget { minutes } => self.plan_cap(rule, subject, minutes).await,
            ActionTemplate::ReplayDead => self.plan_replay(rule, planned).await,
            ActionTemplate::RevokeGrants => self.plan_revoke(rule, subject).await,
            ActionTemplate::RetireNode => self.plan_retire(rule, subject).await,
            ActionTemplate::DrainBot => self.plan_drain(rule, subject).await,
            ActionTemplate::DrainNode => self.plan_drain_node(rule, subject).await,
            ActionTemplate::PauseTenant => self.plan_pause(rule, planned).await,
            ActionTemplate::RotateCredential => self.plan_rotate(rule, planned).await,
            ActionTemplate::RestartNode => self.plan_restart_node(rule, subject).await,
        }
    }

    /// A person approves or denies a pending heal; approved, its one write
    /// is released.
    pub async fn decide_heal(
        &self,
        tenant: Option<&str>,
        incident: &str,
        req: HealDecision,
        by: &str,
    ) -> Result<IncidentView, OpsError> {
        let t = self.tenant(tenant).await?;
        let approve = req.approve;
        if approve && self.inner.controller.connectors().is_none() {
            return Err(OpsError::Conflict(
                "this platform runs without a connector runtime; a heal writes only through its gate"
                    .into(),
            ));
        }
        self.take_one(
            &t,
            Input::DecideHeal {
                incident: incident.to_owned(),
                heal: req.heal.clone(),
                approve,
                by: by.to_owned(),
                note: req.note,
            },
        )
        .await?;
        if approve {
            // Released beside the answer: the approval is recorded, and a
            // release that fails now is tried again at the next poll.
            let (ops, tenant, incident, heal) = (
                self.clone(),
                t.clone(),
                incident.to_owned(),
                req.heal.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = ops.run_heal(&tenant, &incident, &heal).await {
                    tracing::warn!(%tenant, incident, heal, error = %e, "an approved heal could not be released yet; tried again at the next poll");
                }
            });
        }
        self.incident(Some(t.as_str()), incident).await
    }

    /// Submits an approved heal's ticket, binds its one write grant to it
    /// and releases it. Safe to call again (after a restart): the ticket
    /// is found by its key and a released one is left alone.
    async fn run_heal(&self, tenant: &TenantId, incident: &str, id: &str) -> Result<(), OpsError> {
        let _one = self.inner.healing.lock().await;
        let Some(connectors) = self.inner.controller.connectors().cloned() else {
            return Err(OpsError::Conflict(
                "this platform runs without a connector runtime; a heal writes only through its gate"
                    .into(),
            ));
        };
        let (action, attempts, phase) = {
            let book = self.book(tenant);
            let book = book.lock().await;
            let Some(h) = book.monitor.heals(incident).iter().find(|h| h.id == id) else {
                return Err(OpsError::NotFound(format!("no heal {id} of {incident}")));
            };
            (h.action.clone(), h.max_attempts, h.phase)
        };
        if !phase.is_active() {
            return Ok(());
        }
        let payload = ToolPayload {
            connector: CONNECTOR.into(),
            operation: action.operation().into(),
            params: action.params(),
            prompt: Some(HEAL_PROMPT.into()),
            dry_run: false,
        };
        let payload = serde_json::to_value(&payload).expect("a payload serializes");
        let submitted = self
            .inner
            .controller
            .submit(NewTicket {
                kind: "tool".into(),
                payload: payload.clone(),
                tenant: Some(tenant.to_string()),
                idempotency_key: Some(format!("ops-heal:{incident}:{id}")),
                priority: Some(9),
                max_attempts: Some(attempts),
                requires_approval: true,
                ..NewTicket::default()
            })
            .await?;
        let ticket = submitted.id;
        let view = self.inner.controller.ticket(ticket).await?;
        if submitted.duplicate && (view.kind != "tool" || view.payload != payload) {
            return Err(OpsError::Conflict(format!(
                "ticket {ticket} holds the key of heal {incident}/{id} but other work; not run"
            )));
        }
        let started = self
            .take_one(
                tenant,
                Input::StartHeal {
                    incident: incident.to_owned(),
                    heal: id.to_owned(),
                    ticket: ticket.to_string(),
                },
            )
            .await;
        if let Err(e) = started {
            if let Err(c) = self.inner.controller.cancel(ticket).await {
                tracing::warn!(%ticket, error = %c, "an unrecorded heal ticket could not be cancelled");
            }
            return Err(e);
        }
        self.inner
            .running
            .lock()
            .await
            .insert(ticket, tenant.clone());
        if view.state != TicketState::AwaitingApproval {
            // Released before (this is a call again after a restart).
            return Ok(());
        }
        connectors
            .revoke_ticket_grants(ticket, BY)
            .await
            .map_err(conn)?;
        let expires = self.inner.controller.clock().now_ms() + HEAL_GRANT_MS;
        let operation = [action.operation().to_owned()];
        connectors
            .grant_ticket(ticket, CONNECTOR, &operation, expires, attempts, BY)
            .await
            .map_err(conn)?;
        self.inner.controller.approve(ticket).await?;
        Ok(())
    }

    /// Takes what an ended heal ticket did; `false` if it has not ended.
    pub(super) async fn settle_heal(
        &self,
        tenant: &TenantId,
        ticket: TicketId,
    ) -> Result<bool, OpsError> {
        let view = self.inner.controller.ticket(ticket).await?;
        let outcome = match view.state {
            TicketState::AwaitingApproval => {
                // Recorded, not yet released (its release failed half-way):
                // released now.
                let found = {
                    let book = self.book(tenant);
                    let book = book.lock().await;
                    book.monitor
                        .heal_of(&ticket.to_string())
                        .map(|(inc, h)| (inc.to_owned(), h.id.clone()))
                };
                if let Some((incident, heal)) = found {
                    self.run_heal(tenant, &incident, &heal).await?;
                }
                return Ok(false);
            }
            TicketState::Succeeded => {
                let tool = view
                    .result
                    .as_ref()
                    .and_then(|r| r.get("text"))
                    .and_then(Value::as_str)
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .and_then(|v| v.get("tool").cloned())
                    .unwrap_or(Value::Null);
                let answered = format!(
                    "{} answered {}: {}",
                    tool["operation"].as_str().unwrap_or("the write"),
                    tool["status"],
                    tool["body"]
                );
                // A replay is done when its tickets are: the re-check then
                // sees whether they died again.
                match self.replays(tenant, ticket, &tool["body"]).await? {
                    Replays::Waiting => return Ok(false),
                    done => done.outcome(answered),
                }
            }
            TicketState::Dead | TicketState::Cancelled => {
                // The write may have gone through before the ticket failed
                // (its model's summary, say): the effect ledger knows.
                match self.applied(ticket).await {
                    Some((done, response)) => {
                        let done = format!(
                            "{done} (the ticket then ended {}: {})",
                            view.state.as_str(),
                            view.error.as_deref().unwrap_or("no reason given")
                        );
                        match self.replays(tenant, ticket, &response).await? {
                            Replays::Waiting => return Ok(false),
                            replays => replays.outcome(done),
                        }
                    }
                    None => Err(format!(
                        "the ticket ended {}: {}",
                        view.state.as_str(),
                        view.error.as_deref().unwrap_or("no reason given")
                    )),
                }
            }
            _ => {
                // Still not done after its grant expired: it can no longer
                // write, so it goes (and the heal fails at the next look).
                if self.heal_overdue(tenant, ticket).await {
                    self.inner.controller.cancel(ticket).await?;
                }
                return Ok(false);
            }
        };
        if let Some(c) = self.inner.controller.connectors() {
            c.revoke_ticket_grants(ticket, BY).await.map_err(conn)?;
        }
        let succeeded = outcome.is_ok();
        let events = self
            .take_one(
                tenant,
                Input::FinishHeal {
                    ticket: ticket.to_string(),
                    outcome,
                },
            )
            .await?;
        self.inner.running.lock().await.remove(&ticket);
        if succeeded {
            for e in events {
                if let Event::HealFinished { incident, heal, .. } = e {
                    self.recheck(tenant, &incident, &heal).await;
                }
            }
        }
        Ok(true)
    }

    /// For a replay's answer, how its tickets stand: waiting while any
    /// runs, until the heal is overdue (then it gave up on them).
    async fn replays(
        &self,
        tenant: &TenantId,
        ticket: TicketId,
        body: &Value,
    ) -> Result<Replays, OpsError> {
        let Some(replays) = body.get("replays").and_then(Value::as_array) else {
            return Ok(Replays::None);
        };
        let ids: Vec<TicketId> = replays
            .iter()
            .filter_map(|r| r["replay"].as_str().and_then(|id| TicketId::parse(id).ok()))
            .collect();
        let of = body["tenant"]
            .as_str()
            .and_then(|t| TenantId::parse(t).ok());
        let views = self
            .inner
            .controller
            .tickets_by_id(&ids, of.as_ref())
            .await?;
        let mut by_state: std::collections::BTreeMap<&str, u32> = Default::default();
        for v in &views {
            *by_state.entry(v.state.as_str()).or_default() += 1;
        }
        // One held for a person's approval (as its original was) is the
        // person's to release, not the heal's to wait for.
        let running = views
            .iter()
            .filter(|v| !v.state.is_terminal() && v.state != TicketState::AwaitingApproval)
            .count();
        let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let states = states.join(", ");
        Ok(match running {
            0 => Replays::Ended(format!("its {} replays: {states}", ids.len())),
            _ if self.heal_overdue(tenant, ticket).await => Replays::GaveUp(format!(
                "{running} of its {} replays had not ended when the heal stopped waiting for them: {states}",
                ids.len()
            )),
            _ => Replays::Waiting,
        })
    }

    /// What a heal ticket's write answered, if the effect ledger holds it
    /// done.
    async fn applied(&self, ticket: TicketId) -> Option<(String, Value)> {
        let connectors = self.inner.controller.connectors()?;
        let effects = connectors.effects(Some(ticket), None, 5).await.ok()?;
        effects
            .into_iter()
            .find(|e| {
                e.connector == CONNECTOR
                    && e.state == crate::connector::store::EffectState::Done
                    && e.status.is_some_and(|s| (200..300).contains(&s))
            })
            .map(|e| {
                let response = e.response.unwrap_or(Value::Null);
                let done = format!(
                    "{} answered {}: {}",
                    e.operation,
                    e.status.unwrap_or_default(),
                    response
                );
                (done, response)
            })
    }

    /// Whether a heal ticket not yet ended has outlived its grant.
    async fn heal_overdue(&self, tenant: &TenantId, ticket: TicketId) -> bool {
        let now = self.inner.controller.clock().now_ms();
        let book = self.book(tenant);
        let book = book.lock().await;
        book.monitor
            .heal_of(&ticket.to_string())
            .and_then(|(_, h)| h.decided_ms)
            .is_some_and(|at| now > at + HEAL_GRANT_MS + OVERDUE_GRACE_MS)
    }

    /// Investigates the incident again, as heal `heal`'s re-check.
    async fn recheck(&self, tenant: &TenantId, incident: &str, heal: &str) {
        if let Err(e) = self.investigate(tenant, incident, Some(heal)).await {
            tracing::warn!(%tenant, incident, heal, error = %e, "a heal's re-check could not start; tried again at the next start");
        }
    }

    /// Heals approved and not ended (all of them at start, after a
    /// restart; the approved ones whose ticket never went out, at each
    /// poll), each released if it was not, and followed; at start also
    /// the re-checks and proposals a restart kept from happening.
    pub(super) async fn resume_heals(&self, at_start: bool) {
        let mut release = Vec::new();
        let mut abandon = Vec::new();
        let now = self.inner.controller.clock().now_ms();
        let mut recheck = Vec::new();
        let mut propose = Vec::new();
        for (tenant, book) in self.books_of(None) {
            let book = book.lock().await;
            let m = &book.monitor;
            if at_start {
                // A proposal a restart cut off (proposing is idempotent per
                // rule and incident).
                for inc in m.incidents().filter(|i| i.status.is_open()) {
                    if let Some(inv) = m
                        .investigations(&inc.id)
                        .iter()
                        .rev()
                        .find(|i| i.phase == oshal_ops::investigation::Phase::Succeeded)
                    {
                        propose.push((tenant.clone(), inv.ticket.clone()));
                    }
                }
            }
            for (incident, h) in m.active_heals() {
                let stale = h.decided_ms.is_some_and(|at| now > at + HEAL_GRANT_MS);
                if h.phase == HealPhase::Scheduled && stale {
                    // Its release kept failing for as long as a grant
                    // would have lasted: given up, not tried forever.
                    abandon.push((tenant.clone(), incident.to_owned(), h.id.clone()));
                } else if at_start || h.phase == HealPhase::Scheduled {
                    release.push((tenant.clone(), incident.to_owned(), h.id.clone()));
                }
            }
            if at_start {
                for inc in m.incidents() {
                    for h in m.heals(&inc.id) {
                        if h.phase == HealPhase::Succeeded && h.recheck.is_none() {
                            recheck.push((tenant.clone(), inc.id.clone(), h.id.clone()));
                        }
                    }
                }
            }
        }
        for (tenant, incident, heal) in abandon {
            let why = format!(
                "its ticket could not be submitted and released within {} minutes of its approval; nothing was written",
                HEAL_GRANT_MS / 60_000
            );
            let input = Input::AbandonHeal {
                incident: incident.clone(),
                heal: heal.clone(),
                why,
            };
            if let Err(e) = self.take_one(&tenant, input).await {
                tracing::warn!(%tenant, incident, heal, error = %e, "a stale approved heal could not be given up");
            }
        }
        for (tenant, incident, heal) in release {
            if let Err(e) = self.run_heal(&tenant, &incident, &heal).await {
                tracing::warn!(%tenant, incident, heal, error = %e, "an approved heal could not be released");
            }
        }
        for (tenant, incident, heal) in recheck {
            self.recheck(&tenant, &incident, &heal).await;
        }
        for (tenant, ticket) in propose {
            if let Err(e) = self.propose_heal(&tenant, &ticket).await {
                tracing::warn!(%tenant, ticket, error = %e, "a heal could not be proposed");
            }
        }
    }
}
