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
//! `approval_required`. `writes.rs` applies them.

use std::sync::Weak;

use async_trait::async_trait;
use oshal_ops::gather::{
    BotReading, BotsReading, CONNECTOR, ChangesReading, DeadTicket, FindingReading,
    FindingsReading, HealthReading, LaneReading, SpendReading, TenantSpend, Tool, group_failures,
};
use oshal_ops::heal::Action;
use serde_json::{Value, json};

use super::Inner;
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
        tag: None,
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
                            cordoned: b.cordoned,
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
                        burning: inner.burning(s.tenant.as_str(), s.budget_nusd, s.spent_nusd),
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
        super::writes::apply(inner, call, params, key).await
    }
}
