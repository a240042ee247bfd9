//! What the crate's tests share: connectors over a real SQLite store in a
//! temp dir, on a clock the test moves, with no secret backend (a built-in
//! needs none) and a built-in connector whose handler counts its calls.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::broker::{BrokerError, Secret, SecretBackend};
use crate::builtin::BuiltIn;
use crate::call::CallRef;
use crate::clock::{ManualClock, UnixMs};
use crate::manifest::Manifest;
use crate::runtime::{ToolError, ToolRequest, ToolResult};
use crate::secrets::SecretRules;
use crate::signing::TrustedKeys;
use crate::ticket::{BotId, TenantId, TicketId};
use crate::{Connectors, store};

/// The start of every test's clock.
pub const T0: UnixMs = 1_800_000_000_000;
/// The built-in connector's id.
pub const OPS: &str = "oshal-ops";
/// A token the shipped secret rules find (`github-token`).
pub const PLANTED: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";

/// A backend that holds nothing: no test here reads a credential.
#[derive(Debug)]
pub struct NoSecrets;

#[async_trait]
impl SecretBackend for NoSecrets {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn read(&self, _path: &str) -> Result<Option<Secret>, BrokerError> {
        Ok(None)
    }
    async fn write(&self, _path: &str, _value: &Secret) -> Result<(), BrokerError> {
        Ok(())
    }
}

/// The built-in's handler: `get_incident` answers an incident holding a
/// planted secret (`id` `big`: a body past the runtime's limit; `missing`:
/// 404); `restart` answers what it restarted. Counts every call.
#[derive(Debug, Default)]
pub struct Platform {
    pub reads: AtomicU32,
    pub writes: AtomicU32,
}

#[async_trait]
impl BuiltIn for Platform {
    async fn read(&self, call: &CallRef, params: &Value) -> Result<(u16, Value), String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        assert_eq!(call.operation, "get_incident");
        Ok(match params["id"].as_str() {
            Some("missing") => (404, json!({"error": "no incident missing"})),
            Some("big") => (200, json!({"log": "x".repeat(100 * 1024)})),
            id => (
                200,
                json!({"id": id, "state": "firing", "env": {"note": format!("token {PLANTED}")}}),
            ),
        })
    }

    async fn write(
        &self,
        call: &CallRef,
        params: &Value,
        key: &str,
    ) -> Result<(u16, Value), String> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        assert_eq!(call.operation, "restart");
        Ok((201, json!({"restarted": params["service"], "key": key})))
    }
}

impl Platform {
    pub fn reads(&self) -> u32 {
        self.reads.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::SeqCst)
    }
}

pub fn ops_manifest() -> Manifest {
    serde_json::from_value(json!({
        "id": OPS, "version": "1.0.0", "name": "Oshal operations", "category": "data",
        "base_url": format!("oshal://{OPS}"), "auth": {"kind": "bearer"},
        "operations": [
            {"id": "get_incident", "method": "GET", "path": "/incidents/{id}", "effect": "read",
             "scopes": ["incidents:read"],
             "params": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
            {"id": "restart", "method": "POST", "path": "/services/{service}/restart", "effect": "write",
             "scopes": ["services:write"],
             "params": {"type": "object", "properties": {"service": {"type": "string"}}, "required": ["service"]}}
        ]
    }))
    .unwrap()
}

/// Connectors over a fresh SQLite store, with [`OPS`] mounted.
pub struct Rig {
    _dir: tempfile::TempDir,
    _store: oshal_store::sqlite::SqliteStore,
    pub clock: ManualClock,
    pub connectors: Connectors,
    pub platform: Arc<Platform>,
}

impl Rig {
    pub async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = oshal_store::sqlite::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let clock = ManualClock::at(T0);
        let connectors = Connectors::open(
            store::sqlite(store.pool().clone()),
            Arc::new(NoSecrets),
            TrustedKeys::shipped(),
            SecretRules::shipped_shared(),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        let platform = Arc::new(Platform::default());
        connectors.mount(ops_manifest(), platform.clone()).unwrap();
        Rig {
            _dir: dir,
            _store: store,
            clock,
            connectors,
            platform,
        }
    }

    pub async fn call(&self, req: &ToolRequest) -> Result<ToolResult, ToolError> {
        self.connectors
            .runtime()
            .call(req, &tokio_util::sync::CancellationToken::new())
            .await
    }
}

pub fn bot(name: &str) -> BotId {
    BotId::parse(name).unwrap()
}

pub fn call(bot_name: &str, ticket: TicketId, connector: &str, operation: &str) -> CallRef {
    CallRef {
        bot: bot(bot_name),
        tenant: Some(TenantId::default_tenant()),
        ticket,
        attempt: 1,
        connector: connector.into(),
        operation: operation.into(),
    }
}

pub fn request(call: CallRef, params: Value) -> ToolRequest {
    ToolRequest {
        call,
        params,
        call_index: 0,
        dry_run: false,
    }
}
