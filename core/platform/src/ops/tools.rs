//! The built-in `oshal-ops` connector: the investigation's read-only
//! tools (`oshal_ops::gather::Tool`) served from the controller's own
//! state, in process, behind the connector gate like any connector.
//!
//! What a call may see follows its ticket's tenant: the bots, the
//! store's health and the Security Center's findings are the platform's, read only by the operator's
//! (`default` tenant's) investigations; a tenant's change events, its
//! spend and its dead tickets are its own (the operator's read every
//! tenant's). Which calls a ticket may make at all is the gate's business (the
//! grants bound to it); this handler adds the tenant fence behind it.
//!
//! Its writes are the heals' actions (`oshal_ops::heal::Action`): the gate
//! lets one through only under a grant bound to the calling ticket, which
//! the loop mints for an approved heal alone; without one the call answers
//! `approval_required`. Only the operator's tickets write. Each write it
//! applies is recorded as a change event, so the incidents near it show it.

use std::sync::Weak;

use async_trait::async_trait;
use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::gather::{
    BotReading, BotsReading, CONNECTOR, ChangesReading, DeadTicket, FindingReading,
    FindingsReading, HealthReading, LaneReading, SpendReading, TenantSpend, Tool, group_failures,
};
use oshal_ops::heal::Action;
use oshal_ops::monitor::Input;
use serde_json::{Value, json};

use super::{Inner, Operations};
use crate::connector::builtin::BuiltIn;
use crate::connector::call::CallRef;
use crate::connector::manifest::{Manifest, ManifestError};
use crate::name::Named;
use crate::ticket::TenantId;

/// The scope every investigation tool needs.
pub const READ_SCOPE: &str = "ops:read";
/// The scope every heal's write needs.
pub const HEAL_SCOPE: &str = "ops:heal";

/// The connector's manifest: one GET operation per tool, one POST per
/// heal action.
pub fn manifest() -> Result<Manifest, ManifestError> {
    let mut operations: Vec<Value> = Tool::all()
        .iter()
        .map(|t| {
            json!({
                "id": t.as_str(),
                "method": "GET",
                "path": format!("/{}", t.as_str()),
                "params": t.params_schema(),
                "scopes": [READ_SCOPE],
                "effect": "read",
                "summary": t.summary(),
            })
        })
        .collect();
    for (id, params, summary) in Action::operations() {
        operations.push(json!({
            "id": id,
            "method": "POST",
            "path": format!("/{id}"),
            "params": params,
            "scopes": [HEAL_SCOPE],
            "effect": "write",
            "summary": summary,
        }));
    }
    let value = json!({
        "id": CONNECTOR,
        "version": env!("CARGO_PKG_VERSION"),
        "name": "Oshal operations (built in)",
        "category": "data",
        "base_url": format!("{}://{CONNECTOR}", crate::connector::manifest::BUILT_IN_SCHEME),
        "auth": {"kind": "bearer"},
        "operations": operations,
    });
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| ManifestError {
        field: "manifest".into(),
        reason: e.to_string(),
    })?;
    Ok(manifest)
}

/// Serves the tools from the operations loop it belongs to (held weakly:
/// the connectors outlive nothing they serve).
#[derive(Debug)]
pub(super) struct OpsTools {
    pub(super) ops: Weak<Inner>,
}

/// The most dead tickets one `list_failures` reads.
const MAX_FAILURES_READ: u32 = 500;

/// Tickets dead since `since_ms` (`of` one tenant, or every tenant's),
/// newest first, but the loop's own investigations.
pub(super) async fn dead_since(
    inner: &Inner,
    of: Option<TenantId>,
    since_ms: i64,
) -> Result<Vec<DeadTicket>, crate::controller::ControllerError> {
    let query = crate::store::TicketQuery {
        state: Some(crate::ticket::TicketState::Dead),
        tenant: of,
        bot: None,
        kind: None,
        cursor: None,
        limit: MAX_FAILURES_READ,
    };
    let page = inner.controller.tickets(&query).await?;
    Ok(page
        .tickets
        .into_iter()
        .filter(|t| t.updated_at_ms >= since_ms && t.kind != "investigate")
        .map(|t| DeadTicket {
            id: t.id.to_string(),
            tenant: t.tenant.to_string(),
            kind: t.kind,
            error: t.error.unwrap_or_default(),
            at_ms: t.updated_at_ms,
        })
        .collect())
}

/// Whose figures a call reads: the tenant its `tenant` parameter names
/// (the operator's calls may name any, a tenant's only its own), or, when
/// it names none, every tenant's for the operator and its own for a
/// tenant. A refusal is an answer (400 or 403), as an outside system's.
fn whose(params: &Value, caller: &TenantId) -> Result<Option<TenantId>, (u16, Value)> {
    let operator = *caller == TenantId::default_tenant();
    match params.get("tenant").and_then(Value::as_str) {
        None => Ok((!operator).then(|| caller.clone())),
        Some(named) => match TenantId::parse(named) {
            Ok(t) if operator || t == *caller => Ok(Some(t)),
            Ok(_) => Err((
                403,
                json!({"error": "a tenant's investigation reads only its own"}),
            )),
            Err(e) => Err((400, json!({"error": format!("tenant: {e}")}))),
        },
    }
}

fn forbidden(tool: Tool) -> (u16, Value) {
    (
        403,
        json!({"error": format!(
            "{} reads the platform's own state; only the operator's (default tenant's) investigations read it",
            tool.as_str()
        )}),
    )
}

#[async_trait]
impl BuiltIn for OpsTools {
    async fn read(&self, call: &CallRef, params: &Value) -> Result<(u16, Value), String> {
        let Some(inner) = self.ops.upgrade() else {
            return Err("the operations loop has stopped".into());
        };
        let Some(tool) = Tool::parse(&call.operation) else {
            return Ok((
                404,
                json!({"error": format!("no tool {:?}", call.operation)}),
            ));
        };
        // Every ticket has a tenant; a call that names none sees nothing.
        let Some(tenant) = call.tenant.clone() else {
            return Ok((
                403,
                json!({"error": "a call that names no tenant reads nothing"}),
            ));
        };
        let operator = tenant == TenantId::default_tenant();
        let body = match tool {
            Tool::GetBots if !operator => return Ok(forbidden(tool)),
            Tool::GetHealth if !operator => return Ok(forbidden(tool)),
            Tool::ListFindings if !operator => return Ok(forbidden(tool)),
            Tool::ListFindings => {
                let Some(center) = inner.security.get() else {
                    return Ok((
                        503,
                        json!({"error": "no Security Center runs with this platform"}),
                    ));
                };
                let query = crate::security::FindingQuery {
                    state: Some(crate::security::FindingState::Open),
                    source: None,
                    limit: Some(200),
                };
                let findings = center.findings(&query).await.map_err(|e| e.to_string())?;
                serde_json::to_value(FindingsReading {
                    findings: findings
                        .into_iter()
                        .map(|f| FindingReading {
                            id: f.id,
                            rule: f.rule,
                            object: f.object,
                            severity: serde_json::to_value(f.severity)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default(),
                        })
                        .collect(),
                })
            }
            Tool::GetBots => {
                let bots = inner.controller.bots().await;
                serde_json::to_value(BotsReading {
                    bots: bots
                        .into_iter()
                        .map(|b| BotReading {
                            id: b.id.to_string(),
                            node: b.node.unwrap_or_else(|| "local".into()),
                            live: b.live,
                            in_flight: b.in_flight,
                            attempt_ms: b.attempt_ms,
                            lane: b.lane.map(|l| LaneReading {
                                depth: l.depth,
                                pending: l.pending,
                                lag_ms: l.lag_ms,
                            }),
                        })
                        .collect(),
                })
            }
            Tool::GetHealth => {
                let h = inner.controller.health().await;
                serde_json::to_value(HealthReading {
                    store: h.store,
                    detail: h.detail,
                })
            }
            Tool::GetSpend => {
                let of = match whose(params, &tenant) {
                    Ok(of) => of,
                    Err(refused) => return Ok(refused),
                };
                let spend = inner.controller.spend().await.map_err(|e| e.to_string())?;
                let mut tenants: Vec<TenantSpend> = spend
                    .into_iter()
                    .filter(|s| of.as_ref().is_none_or(|o| s.tenant == *o))
                    .map(|s| TenantSpend {
                        tenant: s.tenant.to_string(),
                        budget_nusd: s.budget_nusd,
                        spend_nusd: s.spent_nusd,
                    })
                    .collect();
                tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
                serde_json::to_value(SpendReading { tenants })
            }
            Tool::ListChanges => {
                let since = params.get("since_ms").and_then(Value::as_i64).unwrap_or(0);
                let changes = inner.changes_since(&tenant, since).await;
                serde_json::to_value(ChangesReading { changes })
            }
            Tool::ListFailures => {
                let since = params.get("since_ms").and_then(Value::as_i64).unwrap_or(0);
                let of = match whose(params, &tenant) {
                    Ok(of) => of,
                    Err(refused) => return Ok(refused),
                };
                let dead = dead_since(&inner, of, since)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_value(group_failures(&dead))
            }
        };
        body.map(|b| (200, b)).map_err(|e| e.to_string())
    }

    async fn write(
        &self,
        call: &CallRef,
        params: &Value,
        key: &str,
    ) -> Result<(u16, Value), String> {
        let Some(inner) = self.ops.upgrade() else {
            return Err("the operations loop has stopped".into());
        };
        if call.tenant != Some(TenantId::default_tenant()) {
            return Ok((
                403,
                json!({"error": "a heal writes the platform's own state; only the operator's (default tenant's) tickets write it"}),
            ));
        }
        let action = match Action::from_call(&call.operation, params) {
            Ok(a) => a,
            Err(e) => return Ok((400, json!({"error": e}))),
        };
        let written = match action {
            Action::SetBudget {
                tenant,
                budget_nusd,
            } => match known(&inner, &tenant).await? {
                Ok(t) => set_budget(&inner, t, budget_nusd, call, key).await?,
                Err(refused) => Err(refused),
            },
            Action::ReplayDead { tenant, tickets } => match known(&inner, &tenant).await? {
                Ok(t) => replay_dead(&inner, t, &tickets, call, key).await?,
                Err(refused) => Err(refused),
            },
            Action::RevokeGrants { connector, grants } => {
                revoke_grants(&inner, &connector, &grants, call, key).await?
            }
            Action::RetireNode { node } => retire_node(&inner, &node, call, key).await?,
        };
        let (answer, change) = match written {
            Ok(done) => done,
            Err(refused) => return Ok(refused),
        };
        if let Some(change) = change {
            let ops = Operations { inner };
            ops.observe(&TenantId::default_tenant(), vec![Input::Change(change)])
                .await;
        }
        Ok((200, answer))
    }
}

/// The tenant a write names, if it exists (a refusal as an answer if not).
async fn known(inner: &Inner, named: &str) -> Result<Result<TenantId, (u16, Value)>, String> {
    match inner.controller.known_tenant(Some(named)).await {
        Ok(t) => Ok(Ok(t)),
        Err(crate::controller::ControllerError::UnknownTenant(_)) => {
            Ok(Err((404, json!({"error": format!("no tenant {named:?}")}))))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Revokes the named grants on `connector` that still stand; one gone
/// already (revoked by hand, expired, or by this write before its answer
/// was lost) is let be, and a grant on another connector refuses the
/// whole write.
async fn revoke_grants(
    inner: &Inner,
    connector: &str,
    grants: &[String],
    call: &CallRef,
    key: &str,
) -> Written {
    let Some(connectors) = inner.controller.connectors() else {
        return Err("this platform runs without a connector runtime".into());
    };
    let live = connectors.grants(None).await.map_err(|e| e.to_string())?;
    for (i, id) in grants.iter().enumerate() {
        if let Some(g) = live.iter().find(|g| g.id == *id)
            && g.connector != connector
        {
            return Ok(Err((
                409,
                json!({"error": format!("params.grants[{i}]: grant {id} is on {}, not {connector}", g.connector)}),
            )));
        }
    }
    let mut revoked = Vec::new();
    for id in grants {
        if live.iter().any(|g| g.id == *id) {
            connectors
                .revoke_grant(id, &format!("heal ticket {}", call.ticket))
                .await
                .map_err(|e| e.to_string())?;
            revoked.push(id.clone());
        }
    }
    let answer = json!({"connector": connector, "revoked": revoked});
    let change = (!revoked.is_empty()).then(|| ChangeEvent {
        kind: ChangeKind::GrantsRevoked,
        subject: connector.to_owned(),
        detail: format!(
            "{} grants on {connector} revoked by heal ticket {} (write {key}): its calls are denied until granted again",
            revoked.len(),
            call.ticket
        ),
        count: u32::try_from(revoked.len()).unwrap_or(u32::MAX),
        at_ms: 0,
    });
    Ok(Ok((answer, change)))
}

/// Retires a lost node; one retired already answers as before, and one
/// with a live bot refuses (a node that answers is not lost).
async fn retire_node(inner: &Inner, node: &str, call: &CallRef, key: &str) -> Written {
    use crate::controller::Retired;
    let retired = inner
        .controller
        .retire_node(node)
        .await
        .map_err(|e| e.to_string())?;
    match retired {
        Retired::Live(bots) => Ok(Err((
            409,
            json!({"error": format!("node {node} has live bots ({}): it is not lost", bots.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", "))}),
        ))),
        Retired::Unknown => Ok(Ok((json!({"node": node, "retired": []}), None))),
        Retired::Forgot(bots) => {
            let change = ChangeEvent {
                kind: ChangeKind::NodeRetired,
                subject: node.to_owned(),
                detail: format!(
                    "node {node} retired by heal ticket {} (write {key}): {} bots forgotten",
                    call.ticket,
                    bots.len()
                ),
                count: u32::try_from(bots.len()).unwrap_or(u32::MAX),
                at_ms: 0,
            };
            Ok(Ok((json!({"node": node, "retired": bots}), Some(change))))
        }
    }
}

/// What a heal's write did (its answer, and the change event to record,
/// none when it had been applied already), or its refusal as an answer.
type Written = Result<Result<(Value, Option<ChangeEvent>), (u16, Value)>, String>;

/// Raises a tenant's budget, never lowers one (a heal approved after
/// someone raised it by hand would).
async fn set_budget(
    inner: &Inner,
    known: TenantId,
    budget_nusd: i64,
    call: &CallRef,
    key: &str,
) -> Written {
    let spend = inner.controller.spend().await.map_err(|e| e.to_string())?;
    let now = spend
        .iter()
        .find(|s| s.tenant == known)
        .and_then(|s| s.budget_nusd);
    let answer = json!({"tenant": known, "budget_nusd": budget_nusd});
    if now == Some(budget_nusd) {
        // Applied already under this key (its answer was lost): the same
        // answer again, and no second change event.
        return Ok(Ok((answer, None)));
    }
    if now.is_none_or(|b| b > budget_nusd) {
        let was = now.map_or_else(
            || "no limit".to_owned(),
            |b| format!("${:.6}", crate::cost::usd(b)),
        );
        return Ok(Err((
            409,
            json!({"error": format!("tenant {known}'s budget is {was} already; the heal would not raise it")}),
        )));
    }
    inner
        .controller
        .set_budget(known.clone(), Some(budget_nusd))
        .await
        .map_err(|e| e.to_string())?;
    let change = ChangeEvent {
        kind: ChangeKind::BudgetChanged,
        subject: known.to_string(),
        detail: format!(
            "budget set to ${:.6} by heal ticket {} (write {key})",
            crate::cost::usd(budget_nusd),
            call.ticket
        ),
        count: 0,
        at_ms: 0,
    };
    Ok(Ok((answer, Some(change))))
}

/// The idempotency key of a dead ticket's replay: one replay per dead
/// ticket, whoever asks and however often.
pub(super) fn replay_key(dead: &str) -> String {
    format!("ops-replay:{dead}")
}

/// Submits each dead ticket again as a new ticket of the same tenant,
/// kind, skill, priority and payload, caused by the dead one, under a key
/// that makes a second replay answer the first. A ticket that is not the
/// tenant's, or not dead, refuses the whole write (nothing is submitted).
async fn replay_dead(
    inner: &Inner,
    known: TenantId,
    tickets: &[String],
    call: &CallRef,
    key: &str,
) -> Written {
    let mut ids = Vec::with_capacity(tickets.len());
    for (i, t) in tickets.iter().enumerate() {
        match crate::ticket::TicketId::parse(t) {
            Ok(id) => ids.push(id),
            Err(e) => {
                return Ok(Err((
                    400,
                    json!({"error": format!("params.tickets[{i}]: {e}")}),
                )));
            }
        }
    }
    let found = inner
        .controller
        .tickets_by_id(&ids, Some(&known))
        .await
        .map_err(|e| e.to_string())?;
    let mut again = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Some(t) = found.iter().find(|t| t.id == *id) else {
            return Ok(Err((
                404,
                json!({"error": format!("params.tickets[{i}]: tenant {known} has no ticket {id}")}),
            )));
        };
        if t.state != crate::ticket::TicketState::Dead {
            return Ok(Err((
                409,
                json!({"error": format!("params.tickets[{i}]: ticket {id} is {}, not dead", t.state)}),
            )));
        }
        again.push(crate::ticket::NewTicket {
            kind: t.kind.clone(),
            payload: t.payload.clone(),
            tenant: Some(known.to_string()),
            idempotency_key: Some(replay_key(&id.to_string())),
            priority: Some(t.priority),
            skill: Some(t.skill.to_string()),
            max_attempts: Some(t.max_attempts),
            parent_id: None,
            correlation_id: Some(t.correlation_id.to_string()),
            causation_id: Some(id.to_string()),
            requires_approval: false,
        });
    }
    let mut replays = Vec::with_capacity(again.len());
    let mut fresh = 0;
    for (dead, r) in ids.iter().zip(inner.controller.submit_many(again).await) {
        let s = r.map_err(|e| format!("replaying {dead}: {e}"))?;
        fresh += u32::from(!s.duplicate);
        replays.push(json!({"dead": dead, "replay": s.id}));
    }
    let answer = json!({"tenant": known, "replays": replays});
    let change = (fresh > 0).then(|| ChangeEvent {
        kind: ChangeKind::TicketsReplayed,
        subject: known.to_string(),
        detail: format!(
            "{fresh} dead tickets of tenant {known} run again by heal ticket {} (write {key})",
            call.ticket
        ),
        count: fresh,
        at_ms: 0,
    });
    Ok(Ok((answer, change)))
}
