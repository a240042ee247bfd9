//! Brokered connectors: how a bot reaches an outside system without ever
//! holding a credential.
//!
//! A tool call goes bot → [`gate`] (may this bot call this operation, with
//! these scopes, now? deny by default, audited) → [`runtime`] (the shared
//! executor: schema check, retries for reads only, an idempotency key and an
//! effect-ledger row for every write) → `broker` (a short-lived token bound
//! to the call, exchanged per request for the credential) → the outside
//! system. [`manifest`] says what a connector offers and is validated
//! strictly; curated connectors are signed ([`signing`]) and enabled on
//! load; the catalog imports OpenAPI documents ([`openapi`]) into unsigned
//! entries that stay disabled until an operator approves them; built-in
//! connectors ([`builtin`]) serve the platform's own data in process and
//! are enabled when mounted. What must survive a restart is in [`store`]:
//! grants are a bot's, or bound to one ticket (minted when an operator
//! approves a heal) and expiring ([`grant`]).
//!
//! Start with [`Connectors`], the facade the API and the bots hold.

use oshal_kernel::{cancel, clock, secrets, text, ticket};
use oshal_lane as lane;

pub mod broker;
pub mod builtin;
pub mod call;
pub mod gate;
mod grant;
pub mod manifest;
pub mod openapi;
pub mod remote;
pub mod runtime;
pub mod signing;
pub mod store;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use specta::Type;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::broker::{Broker, SecretBackend};
use crate::clock::{SharedClock, UnixMs};
use crate::ticket::{TenantId, TicketId};
use builtin::BuiltIn;
use manifest::{Category, Effect, Manifest, ManifestError, Method};
use signing::{Envelope, TrustedKeys};
use store::{AuditEntry, AuditKind, Condition, ConnectorDb, DbError, EffectRow, Grant};

pub use remote::{RemoteTools, Tools};

/// The curated connectors shipped in `assets/connectors`, one per category.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "commerce-shopfront.json",
        include_str!("../../../assets/connectors/commerce-shopfront.json"),
    ),
    (
        "finance-ledgerly.json",
        include_str!("../../../assets/connectors/finance-ledgerly.json"),
    ),
    (
        "media-reelbox.json",
        include_str!("../../../assets/connectors/media-reelbox.json"),
    ),
    (
        "travel-skyways.json",
        include_str!("../../../assets/connectors/travel-skyways.json"),
    ),
];

/// The most live grants one bot may hold on one connector.
pub const MAX_GRANTS_PER_BOT: usize = 16;
/// The most live grants bound to one ticket on one connector.
pub const MAX_GRANTS_PER_TICKET: usize = 16;
/// The calls per minute of a grant bound to a ticket.
pub const TICKET_GRANT_RATE_PER_MINUTE: u32 = 600;
/// The most calls per minute a grant may allow.
pub const MAX_RATE_PER_MINUTE: u32 = 10_000;
/// The most calls a grant's budget may hold.
pub const MAX_BUDGET_CALLS: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Signed by a trusted publisher; enabled on load.
    Curated,
    /// Imported from an OpenAPI document; disabled until approved.
    Catalog,
    /// Compiled into the platform; serves the platform's own data in
    /// process; enabled at start.
    BuiltIn,
}

impl Source {
    fn noun(self) -> &'static str {
        match self {
            Source::Curated => "a curated",
            Source::Catalog => "a catalog",
            Source::BuiltIn => "a built-in",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    manifest: Arc<Manifest>,
    source: Source,
    publisher: Option<String>,
    approved_by: Option<String>,
    imported_at_ms: Option<UnixMs>,
    /// What answers a built-in's operations (`Some` only for one).
    handler: Option<Arc<dyn BuiltIn>>,
}

impl Entry {
    fn enabled(&self) -> bool {
        match self.source {
            Source::Curated => self.publisher.is_some(),
            Source::Catalog => self.approved_by.is_some(),
            Source::BuiltIn => self.handler.is_some(),
        }
    }
}

/// An enabled connector as the runtime serves it: its manifest and, for a
/// built-in, the handler that answers it in process.
pub type Serving = (Arc<Manifest>, Option<Arc<dyn BuiltIn>>);

/// Every connector known: curated, catalog and built-in (each built-in's
/// handler beside its manifest).
#[derive(Debug, Default)]
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The manifest of an enabled connector.
    pub fn enabled(&self, id: &str) -> Option<Arc<Manifest>> {
        self.read()
            .get(id)
            .filter(|e| e.enabled())
            .map(|e| e.manifest.clone())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Manifest>> {
        self.read().get(id).map(|e| e.manifest.clone())
    }

    /// An enabled connector's manifest and, for a built-in, its handler.
    pub fn serving(&self, id: &str) -> Option<Serving> {
        self.read()
            .get(id)
            .filter(|e| e.enabled())
            .map(|e| (e.manifest.clone(), e.handler.clone()))
    }
}

/// An operation as the surfaces show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct OperationView {
    pub id: String,
    pub method: Method,
    pub path: String,
    pub effect: Effect,
    pub scopes: Vec<String>,
}

/// A connector as the surfaces show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ConnectorView {
    pub id: String,
    pub version: String,
    pub name: String,
    pub category: Category,
    pub base_url: String,
    pub auth: String,
    pub source: Source,
    pub signed: bool,
    pub publisher: Option<String>,
    pub enabled: bool,
    pub approved_by: Option<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub imported_at_ms: Option<UnixMs>,
    pub operations: Vec<OperationView>,
}

/// What the integration view draws: every connector, every live grant, and
/// the recent audit trail and effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct IntegrationView {
    /// Where credentials live: `keyring` or `vault`.
    pub backend: String,
    pub connectors: Vec<ConnectorView>,
    pub grants: Vec<Grant>,
    /// Newest first.
    pub audit: Vec<AuditEntry>,
    /// Newest first.
    pub effects: Vec<EffectRow>,
}

/// A grant as asked for, before it is checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    #[schema(value_type = oshal_kernel::ticket::BotId)]
    pub bot: String,
    /// A known connector's id.
    #[schema(min_length = 1, max_length = 128)]
    pub connector: String,
    /// Operations of that connector, at least one.
    #[schema(min_items = 1)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    #[serde(default)]
    pub budget_calls: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// An id held by a connector of another source, which `by` may not
/// replace: a built-in is never replaced by a signed or imported manifest,
/// nor the reverse.
fn taken(id: &str, held: Source, by: &str) -> ConnectorError {
    invalid(
        "id",
        format!(
            "{id:?} is {} connector; {by} cannot replace it",
            held.noun()
        ),
    )
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The facade: registry, gate, broker, runtime and their store.
#[derive(Debug, Clone)]
pub struct Connectors {
    inner: Arc<ConnectorsInner>,
}

#[derive(Debug)]
struct ConnectorsInner {
    registry: Arc<Registry>,
    db: ConnectorDb,
    runtime: runtime::Runtime,
    trusted: RwLock<TrustedKeys>,
    clock: SharedClock,
}

impl Connectors {
    /// Over `db` (the local store's SQLite, [`store::sqlite`], or a fleet's
    /// PostgreSQL, [`store::postgres`]), with secrets in `backend`: loads
    /// the shipped curated connectors (refusing to start if one does not
    /// verify under `trusted`) and the catalog. More curated connectors are
    /// added with [`Self::load_dir`] or [`Self::add_signed`].
    /// `rules` are the controller's secret rules: an outside system's
    /// answer is redacted with them before it is kept or returned.
    pub async fn open(
        db: ConnectorDb,
        backend: Arc<dyn SecretBackend>,
        trusted: TrustedKeys,
        rules: Arc<crate::secrets::SecretRules>,
        clock: SharedClock,
    ) -> Result<Self, ConnectorError> {
        let registry = Arc::new(Registry::default());
        for row in db.catalog().await? {
            let manifest = Manifest::from_json(row.manifest)?;
            registry.write().insert(
                manifest.id.clone(),
                Entry {
                    manifest: Arc::new(manifest),
                    source: Source::Catalog,
                    publisher: None,
                    approved_by: row.approved_by,
                    imported_at_ms: Some(row.imported_at_ms),
                    handler: None,
                },
            );
        }
        let broker = Arc::new(Broker::new(backend, db.clone(), clock.clone()));
        let gate = gate::Gate::new(db.clone(), clock.clone());
        let runtime = runtime::Runtime::new(
            registry.clone(),
            gate,
            broker,
            db.clone(),
            rules,
            clock.clone(),
        );
        let connectors = Self {
            inner: Arc::new(ConnectorsInner {
                registry,
                db,
                runtime,
                trusted: RwLock::new(trusted),
                clock,
            }),
        };
        for (name, text) in SHIPPED {
            connectors.add_envelope(name, text)?;
        }
        Ok(connectors)
    }

    /// Local mode's defaults: credentials in the OS keyring, the shipped
    /// publishers and their curated connectors, the shipped secret rules.
    pub async fn open_local(
        pool: sqlx::SqlitePool,
        clock: SharedClock,
    ) -> Result<Self, ConnectorError> {
        let backend = Arc::new(crate::broker::keyring::KeyringBackend::default());
        let rules = crate::secrets::SecretRules::shipped_shared();
        Self::open(
            store::sqlite(pool),
            backend,
            TrustedKeys::shipped(),
            rules,
            clock,
        )
        .await
    }

    pub fn runtime(&self) -> &runtime::Runtime {
        &self.inner.runtime
    }

    pub fn broker(&self) -> &Arc<Broker> {
        self.inner.runtime.broker()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Verifies a signed envelope and enables its connector.
    pub fn add_signed(&self, envelope: &Envelope) -> Result<ConnectorView, ConnectorError> {
        let (manifest, publisher) = self
            .inner
            .trusted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify(envelope)?;
        let id = manifest.id.clone();
        let entry = Entry {
            manifest: Arc::new(manifest),
            source: Source::Curated,
            publisher: Some(publisher),
            approved_by: None,
            imported_at_ms: None,
            handler: None,
        };
        let view = view(&entry);
        let mut entries = self.inner.registry.write();
        if let Some(held) = entries.get(&id).map(|e| e.source)
            && held == Source::BuiltIn
        {
            return Err(taken(&id, held, "a signed manifest"));
        }
        entries.insert(id, entry);
        Ok(view)
    }

    /// Mounts a built-in connector: `manifest` (checked as any other, its
    /// `base_url` may be `oshal://<id>`) answered by `handler` in process,
    /// enabled at once, with no publisher, signature or credential. Mounting
    /// the same id again replaces the handler; an id held by a curated or
    /// catalog connector is refused.
    pub fn mount(
        &self,
        manifest: Manifest,
        handler: Arc<dyn BuiltIn>,
    ) -> Result<ConnectorView, ConnectorError> {
        manifest.validate_built_in()?;
        let id = manifest.id.clone();
        let entry = Entry {
            manifest: Arc::new(manifest),
            source: Source::BuiltIn,
            publisher: None,
            approved_by: None,
            imported_at_ms: None,
            handler: Some(handler),
        };
        let view = view(&entry);
        let mut entries = self.inner.registry.write();
        if let Some(held) = entries.get(&id).map(|e| e.source)
            && held != Source::BuiltIn
        {
            return Err(taken(&id, held, "a built-in"));
        }
        entries.insert(id, entry);
        Ok(view)
    }

    /// Verifies the signed envelope `text` (from file `name`) and enables
    /// its connector; a refusal names the file.
    fn add_envelope(&self, name: &str, text: &str) -> Result<ConnectorView, ConnectorError> {
        let envelope: Envelope = serde_json::from_str(text)
            .map_err(|e| invalid(name, format!("not a signed manifest ({e})")))?;
        self.add_signed(&envelope)
            .map_err(|e| invalid(name, e.to_string()))
    }

    /// Loads every `*.json` envelope in `dir` (but `publishers.json`); a
    /// file that fails verification is refused and named, the rest load. A
    /// directory that cannot be read is one refusal.
    pub fn load_dir(&self, dir: &Path) -> Vec<(String, ConnectorError)> {
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) => {
                return vec![(
                    dir.display().to_string(),
                    invalid("connectors_dir", e.to_string()),
                )];
            }
        };
        let mut paths: Vec<_> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut refused = Vec::new();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !name.ends_with(".json") || name == "publishers.json" {
                continue;
            }
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| invalid(name.clone(), e.to_string()))
                .and_then(|text| self.add_envelope(&name, &text));
            if let Err(e) = loaded {
                tracing::warn!(file = %name, error = %e, "connector refused");
                refused.push((name, e));
            }
        }
        refused
    }

    /// Imports an OpenAPI document as a disabled catalog entry.
    pub async fn import_openapi(
        &self,
        doc: &serde_json::Value,
        by: &str,
    ) -> Result<ConnectorView, ConnectorError> {
        let manifest = openapi::import(doc)?;
        if let Some(held) = self
            .inner
            .registry
            .read()
            .get(&manifest.id)
            .map(|e| e.source)
            && held != Source::Catalog
        {
            return Err(taken(&manifest.id, held, "the catalog"));
        }
        let now = self.inner.clock.now_ms();
        let json =
            serde_json::to_value(&manifest).map_err(|e| invalid("manifest", e.to_string()))?;
        self.inner.db.put_catalog(&manifest.id, &json, now).await?;
        let mut audit = AuditEntry::new(
            AuditKind::Import,
            format!(
                "imported {} {} (disabled until approved)",
                manifest.id, manifest.version
            ),
        );
        audit.at_ms = now;
        audit.actor = Some(by.to_owned());
        audit.connector = Some(manifest.id.clone());
        self.inner.db.audit(&audit).await?;
        let entry = Entry {
            manifest: Arc::new(manifest),
            source: Source::Catalog,
            publisher: None,
            approved_by: None,
            imported_at_ms: Some(now),
            handler: None,
        };
        let view = view(&entry);
        self.inner
            .registry
            .write()
            .insert(entry.manifest.id.clone(), entry);
        Ok(view)
    }

    /// Approves a catalog entry, which enables it.
    pub async fn approve(&self, id: &str, by: &str) -> Result<ConnectorView, ConnectorError> {
        let source = self.inner.registry.read().get(id).map(|e| e.source);
        match source {
            None => return Err(ConnectorError::NotFound(format!("connector {id:?}"))),
            Some(Source::Curated) => {
                return Err(invalid(
                    "id",
                    format!("{id:?} is curated; it needs no approval"),
                ));
            }
            Some(Source::BuiltIn) => {
                return Err(invalid(
                    "id",
                    format!("{id:?} is built in; it needs no approval"),
                ));
            }
            Some(Source::Catalog) => {}
        }
        let now = self.inner.clock.now_ms();
        if !self.inner.db.approve_catalog(id, by, now).await? {
            return Err(ConnectorError::NotFound(format!("catalog entry {id:?}")));
        }
        let mut audit = AuditEntry::new(AuditKind::Approve, format!("approved {id}"));
        audit.at_ms = now;
        audit.actor = Some(by.to_owned());
        audit.connector = Some(id.to_owned());
        self.inner.db.audit(&audit).await?;
        let mut entries = self.inner.registry.write();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ConnectorError::NotFound(format!("connector {id:?}")))?;
        entry.approved_by = Some(by.to_owned());
        Ok(view(entry))
    }

    /// Every connector, curated, catalog and built-in.
    pub fn list(&self) -> Vec<ConnectorView> {
        self.inner.registry.read().values().map(view).collect()
    }

    /// The catalog: imported entries, approved or not.
    pub fn catalog(&self) -> Vec<ConnectorView> {
        self.inner
            .registry
            .read()
            .values()
            .filter(|e| e.source == Source::Catalog)
            .map(view)
            .collect()
    }

    /// The audit trail, newest first; with `tenant`, that tenant's calls.
    pub async fn audit(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ConnectorError> {
        Ok(self.inner.db.audit_trail(ticket, tenant, limit).await?)
    }

    /// The integration view's snapshot: `recent` audit rows and effects.
    pub async fn integration(&self, recent: u32) -> Result<IntegrationView, ConnectorError> {
        Ok(IntegrationView {
            backend: self.broker().backend_name().to_owned(),
            connectors: self.list(),
            grants: self.grants(None).await?,
            audit: self.audit(None, None, recent).await?,
            effects: self.effects(None, None, recent).await?,
        })
    }

    /// Audits a call refused before the gate was asked (a node asked for a
    /// call its bot does not hold), as a denied decision.
    pub async fn refuse(&self, call: &call::CallRef, reason: &str) -> Result<(), ConnectorError> {
        let now = self.inner.clock.now_ms();
        let e = AuditEntry::for_call(AuditKind::Decision, call, Some(false), reason, now);
        Ok(self.inner.db.audit(&e).await?)
    }

    /// Which connector's stored credential each of `values` is, and in
    /// which field (built-ins hold none). See [`Broker::owners`].
    pub async fn credential_owners(
        &self,
        values: &[&str],
    ) -> Result<Vec<Option<(String, &'static str)>>, broker::BrokerError> {
        let manifests: Vec<Arc<Manifest>> = self
            .inner
            .registry
            .read()
            .values()
            .filter(|e| e.source != Source::BuiltIn)
            .map(|e| e.manifest.clone())
            .collect();
        self.broker().owners(&manifests, values).await
    }

    /// Rotates connector `id`'s refresh token for the heal `call` and
    /// proves the old one and the `exposed` ones refused
    /// ([`Broker::rotate`]); `None` when there is no connector `id`.
    pub async fn rotate_credential(
        &self,
        call: &call::CallRef,
        id: &str,
        exposed: &[broker::Secret],
    ) -> Option<Result<broker::Rotation, broker::BrokerError>> {
        let manifest = self.inner.registry.get(id)?;
        Some(self.broker().rotate(call, &manifest, exposed).await)
    }

    /// The gate's decision on `call`, as the runtime would take it (audited).
    pub async fn decide(&self, call: &call::CallRef, params: &serde_json::Value) -> gate::Decision {
        self.inner.runtime.decide(call, params).await
    }

    /// How many connectors are enabled, and each enabled one that is
    /// neither signed by a publisher trusted now nor approved in the store
    /// (the registry in memory checked against the keys and the disk).
    pub async fn untrusted_enabled(
        &self,
    ) -> Result<(usize, Vec<(String, String)>), ConnectorError> {
        let approved: BTreeMap<String, Option<String>> = self
            .inner
            .db
            .catalog()
            .await?
            .into_iter()
            .filter_map(|r| {
                let id = r.manifest.get("id")?.as_str()?.to_owned();
                Some((id, r.approved_by))
            })
            .collect();
        let trusted = self.inner.trusted.read().unwrap_or_else(|e| e.into_inner());
        let entries = self.inner.registry.read();
        let mut enabled = 0;
        let mut problems = Vec::new();
        for (id, e) in entries.iter().filter(|(_, e)| e.enabled()) {
            enabled += 1;
            match (e.source, &e.publisher) {
                (Source::Curated, Some(p)) if trusted.contains(p) => {}
                (Source::Curated, p) => problems.push((
                    id.clone(),
                    format!(
                        "curated connector {id} is enabled but its publisher key {} is not trusted",
                        p.as_deref().unwrap_or("(none)")
                    ),
                )),
                // Compiled in and mounted by the platform itself.
                (Source::BuiltIn, _) => {}
                (Source::Catalog, _) => match approved.get(id) {
                    Some(Some(_)) => {}
                    Some(None) => problems.push((
                        id.clone(),
                        format!("catalog connector {id} is enabled but not approved in the store"),
                    )),
                    None => problems.push((
                        id.clone(),
                        format!("catalog connector {id} is enabled but missing from the store"),
                    )),
                },
            }
        }
        Ok((enabled, problems))
    }

    /// The effect ledger, newest first; with `tenant`, that tenant's writes.
    pub async fn effects(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<EffectRow>, ConnectorError> {
        Ok(self.inner.db.effects(ticket, tenant, limit).await?)
    }
}

fn view(e: &Entry) -> ConnectorView {
    let m = &e.manifest;
    ConnectorView {
        id: m.id.clone(),
        version: m.version.clone(),
        name: m.name.clone(),
        category: m.category,
        base_url: m.base_url.clone(),
        // A built-in's manifest names an auth kind the format requires; it
        // uses no credential.
        auth: match &m.auth {
            _ if e.source == Source::BuiltIn => "none",
            manifest::AuthKind::ApiKey { .. } => "api_key",
            manifest::AuthKind::Bearer => "bearer",
            manifest::AuthKind::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
            manifest::AuthKind::Oauth2RefreshToken { .. } => "oauth2_refresh_token",
        }
        .to_owned(),
        source: e.source,
        signed: e.publisher.is_some(),
        publisher: e.publisher.clone(),
        enabled: e.enabled(),
        approved_by: e.approved_by.clone(),
        imported_at_ms: e.imported_at_ms,
        operations: m
            .operations
            .iter()
            .map(|o| OperationView {
                id: o.id.clone(),
                method: o.method,
                path: o.path.clone(),
                effect: o.effect,
                scopes: o.scopes.clone(),
            })
            .collect(),
    }
}
