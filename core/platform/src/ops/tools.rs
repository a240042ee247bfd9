//! The built-in `oshal-ops` connector: the investigation's read-only
//! tools (`oshal_ops::gather::Tool`) served from the controller's own
//! state, in process, behind the connector gate like any connector.
//!
//! What a call may see follows its ticket's tenant: the bots and the
//! store's health are the platform's, read only by the operator's
//! (`default` tenant's) investigations; a tenant's change events and its
//! spend are its own (the operator's read every tenant's spend). Which calls a ticket may make at all is the gate's business (the
//! grants bound to it); this handler adds the tenant fence behind it.

use std::sync::Weak;

use async_trait::async_trait;
use oshal_ops::gather::{
    BotReading, BotsReading, CONNECTOR, ChangesReading, HealthReading, LaneReading, SpendReading,
    TenantSpend, Tool,
};
use serde_json::{Value, json};

use super::Inner;
use crate::connector::builtin::BuiltIn;
use crate::connector::call::CallRef;
use crate::connector::manifest::{Manifest, ManifestError};
use crate::name::Named;
use crate::ticket::TenantId;

/// The scope every investigation tool needs.
pub const READ_SCOPE: &str = "ops:read";

/// The connector's manifest: one GET operation per tool.
pub fn manifest() -> Result<Manifest, ManifestError> {
    let operations: Vec<Value> = Tool::all()
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
                let spend = inner.controller.spend().await.map_err(|e| e.to_string())?;
                let mut tenants: Vec<TenantSpend> = spend
                    .into_iter()
                    .filter(|s| operator || s.tenant == tenant)
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
        };
        body.map(|b| (200, b)).map_err(|e| e.to_string())
    }
}
