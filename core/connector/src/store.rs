//! Where connectors keep what must survive a restart: catalog entries and
//! their approval, grants and their spent budget, the audit trail and the
//! effect ledger. [`ConnectorStore`] is the port; local mode keeps it in
//! SQLite (the local store's file, migrations 0002, 0004 and 0008), a fleet
//! in PostgreSQL ([`postgres`], migrations 0004 and 0010 of the fleet
//! schema) with the tenant's rows — its tool calls' audit and effects —
//! under row-level security. Every write is durable before the caller goes
//! on.
//!
//! Grants and the catalog are the operator's configuration, not a tenant's
//! data (like the tenant directory), and so is the audit of operator
//! actions: those rows carry no tenant. A grant is bound to a bot, to a
//! ticket (for whichever bot runs it: what an approval mints for one
//! investigation) or to both, and may expire.

pub mod postgres;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use oshal_kernel::name::Named;
use serde::{Deserialize, Serialize};
use specta::Type;
use sqlx::{Row, SqlitePool};
use std::sync::Arc;

use crate::clock::UnixMs;
use crate::ticket::{BotId, TenantId, TicketId};

#[derive(Debug, thiserror::Error)]
#[error("connector store: {message}")]
pub struct DbError {
    message: String,
    /// The database refused the data itself (`oshal_store::refused_data`):
    /// the request's fault, which a retry cannot mend, not the store's.
    refused: bool,
}

impl DbError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            message: reason.into(),
            refused: false,
        }
    }

    pub fn is_refused_data(&self) -> bool {
        self.refused
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        Self {
            refused: oshal_store::refused_data(&e).is_some(),
            message: e.to_string(),
        }
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(format!("a stored row does not parse: {e}"))
    }
}

/// A numeric ceiling on one parameter: `amount` ≤ 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub param: String,
    pub max: f64,
}

/// What one bot, or whichever bot runs one ticket, may do with one
/// connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Grant {
    pub id: String,
    /// The bot that holds it; `None` for a grant bound to a ticket alone,
    /// which holds for whichever bot runs that ticket.
    pub bot: Option<BotId>,
    /// The ticket whose calls alone it covers (with a bot too, both must
    /// match); `None`: every ticket the bot runs. One of the two is set.
    pub ticket: Option<TicketId>,
    pub connector: String,
    pub operations: Vec<String>,
    pub scopes: Vec<String>,
    pub conditions: Vec<Condition>,
    pub rate_per_minute: u32,
    pub budget_calls: u32,
    pub calls_used: u32,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
    /// After this, the gate refuses it (saying so); `None`: until revoked.
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub expires_at_ms: Option<UnixMs>,
}

impl Grant {
    /// Whether this grant may cover `call`: its bot's, its ticket's, or
    /// (both set) that bot's calls for that ticket. A grant bound to
    /// neither covers nothing.
    pub fn applies_to(&self, call: &super::call::CallRef) -> bool {
        (self.bot.is_some() || self.ticket.is_some())
            && self.bot.as_ref().is_none_or(|b| *b == call.bot)
            && self.ticket.is_none_or(|t| t == call.ticket)
    }

    /// Whether it has expired by `now`.
    pub fn expired(&self, now: UnixMs) -> bool {
        self.expires_at_ms.is_some_and(|at| now >= at)
    }

    /// Who holds it, for the audit trail and findings: `bot-01`, `ticket
    /// <id>`, or `bot-01 on ticket <id>`.
    pub fn holder(&self) -> String {
        match (&self.bot, self.ticket) {
            (Some(bot), None) => bot.to_string(),
            (None, Some(t)) => format!("ticket {t}"),
            (Some(bot), Some(t)) => format!("{bot} on ticket {t}"),
            (None, None) => "no one".into(),
        }
    }

    /// A grant names a bot, a ticket or both (the tables hold the same
    /// CHECK): refused data otherwise.
    fn check_bound(&self) -> Result<(), DbError> {
        if self.bot.is_none() && self.ticket.is_none() {
            return Err(DbError {
                message: format!(
                    "grant {}: bot and ticket are both empty; a grant is bound to a bot, a ticket or both",
                    self.id
                ),
                refused: true,
            });
        }
        Ok(())
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Decision,
    CredentialRead,
    Refresh,
    Revoke,
    Grant,
    Ungrant,
    Import,
    Approve,
}

/// One line of the audit trail: who, what, allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct AuditEntry {
    #[specta(type = specta_typescript::Number)]
    pub seq: i64,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub at_ms: UnixMs,
    pub kind: AuditKind,
    pub allowed: Option<bool>,
    pub actor: Option<String>,
    /// The tenant whose ticket made the call; `None` for an operator's
    /// action (and for the Security Center's probes, which act for no one).
    pub tenant: Option<TenantId>,
    pub ticket: Option<TicketId>,
    pub attempt: Option<u32>,
    pub connector: Option<String>,
    pub operation: Option<String>,
    pub token_id: Option<String>,
    pub grant_id: Option<String>,
    pub reason: String,
}

impl AuditEntry {
    pub fn new(kind: AuditKind, reason: impl Into<String>) -> Self {
        Self {
            seq: 0,
            at_ms: 0,
            kind,
            allowed: None,
            actor: None,
            tenant: None,
            ticket: None,
            attempt: None,
            connector: None,
            operation: None,
            token_id: None,
            grant_id: None,
            reason: reason.into(),
        }
    }

    /// A row about one tool call: its bot (the actor), tenant, ticket,
    /// attempt, connector and operation.
    pub fn for_call(
        kind: AuditKind,
        call: &super::call::CallRef,
        allowed: Option<bool>,
        reason: impl Into<String>,
        at_ms: UnixMs,
    ) -> Self {
        Self {
            at_ms,
            allowed,
            actor: Some(call.bot.to_string()),
            tenant: call.tenant.clone(),
            ticket: Some(call.ticket),
            attempt: Some(call.attempt),
            connector: Some(call.connector.clone()),
            operation: Some(call.operation.clone()),
            ..Self::new(kind, reason)
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EffectState {
    /// Recorded before sending; the outcome is not known yet.
    InFlight,
    Done,
    /// The outside system refused it (4xx): nothing happened there.
    Failed,
    /// Sent, and no answer came (timeout, 5xx, crash): settled by reconciling.
    Unknown,
}

/// One write sent (or about to be sent) to an outside system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct EffectRow {
    pub key: String,
    pub tenant: TenantId,
    pub ticket: TicketId,
    pub attempt: u32,
    pub connector: String,
    pub operation: String,
    pub token_id: String,
    pub state: EffectState,
    pub status: Option<u16>,
    #[specta(type = Option<specta_typescript::Unknown>)]
    pub response: Option<serde_json::Value>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub updated_at_ms: UnixMs,
}

/// A stored catalog entry.
#[derive(Debug, Clone)]
pub struct CatalogRow {
    pub manifest: serde_json::Value,
    pub imported_at_ms: UnixMs,
    pub approved_by: Option<String>,
    pub approved_at_ms: Option<UnixMs>,
}

/// The port: what the registry, gate, broker and runtime need kept.
#[async_trait]
pub trait ConnectorStore: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;

    /// Adds or replaces a catalog entry; a replaced entry loses its approval.
    async fn put_catalog(
        &self,
        id: &str,
        manifest: &serde_json::Value,
        at: UnixMs,
    ) -> Result<(), DbError>;
    /// `false` if there is no such entry.
    async fn approve_catalog(&self, id: &str, by: &str, at: UnixMs) -> Result<bool, DbError>;
    async fn catalog(&self) -> Result<Vec<CatalogRow>, DbError>;

    async fn insert_grant(&self, g: &Grant) -> Result<(), DbError>;
    /// Revokes a grant; `false` if there was no live grant with that id.
    async fn revoke_grant(&self, id: &str, at: UnixMs) -> Result<bool, DbError>;
    /// Spends one call of a grant's budget, atomically; `false` if it is
    /// spent (or the grant was revoked meanwhile).
    async fn spend(&self, id: &str) -> Result<bool, DbError>;
    /// Live grants, optionally of one bot (and one connector). Grants bound
    /// to a ticket alone have no bot: they are listed only without `bot`.
    async fn grants(
        &self,
        bot: Option<&str>,
        connector: Option<&str>,
    ) -> Result<Vec<Grant>, DbError>;
    /// Live grants on `connector` that may cover one call of `bot` for
    /// `ticket`: the bot's own (for every ticket, or for this one) and
    /// those bound to the ticket alone; oldest first. Expired ones too (the
    /// gate tells them apart, and says so).
    async fn grants_for_call(
        &self,
        bot: &str,
        ticket: TicketId,
        connector: &str,
    ) -> Result<Vec<Grant>, DbError>;
    /// Live grants bound to `ticket` (with a bot or not), oldest first.
    async fn grants_of_ticket(&self, ticket: TicketId) -> Result<Vec<Grant>, DbError>;
    /// Revokes every live grant bound to `ticket`; answers their ids.
    async fn revoke_ticket_grants(
        &self,
        ticket: TicketId,
        at: UnixMs,
    ) -> Result<Vec<String>, DbError>;

    async fn audit(&self, e: &AuditEntry) -> Result<(), DbError>;
    /// The audit trail, newest first, optionally of one ticket; with
    /// `tenant`, only the calls its tickets made (no operator actions).
    async fn audit_trail(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError>;

    /// One write of `tenant`'s, by its idempotency key.
    async fn effect(&self, tenant: &TenantId, key: &str) -> Result<Option<EffectRow>, DbError>;
    /// Writes, newest first, optionally of one ticket and of one tenant.
    async fn effects(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<EffectRow>, DbError>;
    /// Records a write as in flight (before it is sent), or moves an
    /// existing one back to in flight for another attempt.
    async fn begin_effect(&self, e: &EffectRow) -> Result<(), DbError>;
    async fn settle_effect(&self, settled: &Settled<'_>) -> Result<(), DbError>;
}

/// How a write ended (or did not).
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    pub tenant: &'a TenantId,
    pub key: &'a str,
    pub state: EffectState,
    pub status: Option<u16>,
    pub response: Option<&'a serde_json::Value>,
    pub at: UnixMs,
}

/// The connector store a process holds.
pub type ConnectorDb = Arc<dyn ConnectorStore>;

/// Over the local store's SQLite pool (its migrations created the tables).
pub fn sqlite(pool: SqlitePool) -> ConnectorDb {
    Arc::new(SqliteConnectorStore { pool })
}

/// Over a fleet's PostgreSQL pool (`oshal_app`, the fleet schema first on
/// its search path; `oshal db-setup` created the tables).
pub fn postgres(pool: sqlx::PgPool) -> ConnectorDb {
    Arc::new(postgres::PgConnectorStore::new(pool))
}

#[derive(Debug, Clone)]
struct SqliteConnectorStore {
    pool: SqlitePool,
}

#[async_trait]
impl ConnectorStore for SqliteConnectorStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    // ---- catalog ----------------------------------------------------------

    async fn put_catalog(
        &self,
        id: &str,
        manifest: &serde_json::Value,
        at: UnixMs,
    ) -> Result<(), DbError> {
        // A re-import replaces the entry and withdraws its approval: what was
        // approved is not what is there now.
        sqlx::query(
            "INSERT INTO connector_catalog (id, manifest, imported_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET manifest = ?2, imported_at = ?3, approved_by = NULL, approved_at = NULL",
        )
        .bind(id)
        .bind(manifest.to_string())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn approve_catalog(&self, id: &str, by: &str, at: UnixMs) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE connector_catalog SET approved_by = ?2, approved_at = ?3 WHERE id = ?1",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, DbError> {
        let rows = sqlx::query("SELECT manifest, imported_at, approved_by, approved_at FROM connector_catalog ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CatalogRow {
                    manifest: serde_json::from_str(r.get::<&str, _>(0))?,
                    imported_at_ms: r.get(1),
                    approved_by: r.get(2),
                    approved_at_ms: r.get(3),
                })
            })
            .collect()
    }

    // ---- grants -----------------------------------------------------------

    async fn insert_grant(&self, g: &Grant) -> Result<(), DbError> {
        g.check_bound()?;
        sqlx::query(
            "INSERT INTO grants (id, bot, ticket, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(&g.id)
        .bind(g.bot.as_ref().map(BotId::as_str))
        .bind(g.ticket.map(|t| t.to_string()))
        .bind(&g.connector)
        .bind(serde_json::to_string(&g.operations)?)
        .bind(serde_json::to_string(&g.scopes)?)
        .bind(serde_json::to_string(&g.conditions)?)
        .bind(g.rate_per_minute)
        .bind(g.budget_calls)
        .bind(g.calls_used)
        .bind(g.created_at_ms)
        .bind(g.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_grant(&self, id: &str, at: UnixMs) -> Result<bool, DbError> {
        let r =
            sqlx::query("UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn spend(&self, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE grants SET calls_used = calls_used + 1
             WHERE id = ?1 AND revoked_at IS NULL AND calls_used < budget_calls",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn grants(
        &self,
        bot: Option<&str>,
        connector: Option<&str>,
    ) -> Result<Vec<Grant>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRANT_COLUMNS} WHERE revoked_at IS NULL AND (?1 IS NULL OR bot = ?1) AND (?2 IS NULL OR connector = ?2)
             ORDER BY created_at, id"
        )))
        .bind(bot)
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_row).collect()
    }

    async fn grants_for_call(
        &self,
        bot: &str,
        ticket: TicketId,
        connector: &str,
    ) -> Result<Vec<Grant>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRANT_COLUMNS} WHERE revoked_at IS NULL AND connector = ?3
               AND ((bot = ?1 AND (ticket IS NULL OR ticket = ?2)) OR (bot IS NULL AND ticket = ?2))
             ORDER BY created_at, id"
        )))
        .bind(bot)
        .bind(ticket.to_string())
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_row).collect()
    }

    async fn grants_of_ticket(&self, ticket: TicketId) -> Result<Vec<Grant>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRANT_COLUMNS} WHERE revoked_at IS NULL AND ticket = ?1 ORDER BY created_at, id"
        )))
        .bind(ticket.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_row).collect()
    }

    async fn revoke_ticket_grants(
        &self,
        ticket: TicketId,
        at: UnixMs,
    ) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "UPDATE grants SET revoked_at = ?2 WHERE ticket = ?1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(ticket.to_string())
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort();
        Ok(ids)
    }

    // ---- audit ------------------------------------------------------------

    async fn audit(&self, e: &AuditEntry) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit (at_ms, kind, allowed, actor, ticket, attempt, connector, operation, token_id, grant_id, reason, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(e.at_ms)
        .bind(e.kind.as_str())
        .bind(e.allowed)
        .bind(&e.actor)
        .bind(e.ticket.map(|t| t.to_string()))
        .bind(e.attempt)
        .bind(&e.connector)
        .bind(&e.operation)
        .bind(&e.token_id)
        .bind(&e.grant_id)
        .bind(&e.reason)
        .bind(e.tenant.as_ref().map(|t| t.as_str()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_trail(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, allowed, actor, ticket, attempt, connector, operation, token_id, grant_id, reason, tenant
             FROM audit WHERE (?1 IS NULL OR ticket = ?1) AND (?3 IS NULL OR tenant = ?3) ORDER BY seq DESC LIMIT ?2",
        )
        .bind(ticket.map(|t| t.to_string()))
        .bind(limit)
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.get(0),
                    at_ms: r.get(1),
                    kind: AuditKind::parse(r.get(2))
                        .ok_or_else(|| DbError::new("unknown audit kind"))?,
                    allowed: r.get(3),
                    actor: r.get(4),
                    tenant: r
                        .get::<Option<&str>, _>(12)
                        .map(TenantId::parse)
                        .transpose()
                        .map_err(|e| DbError::new(e.to_string()))?,
                    ticket: r
                        .get::<Option<&str>, _>(5)
                        .map(TicketId::parse)
                        .transpose()
                        .map_err(|e| DbError::new(e.to_string()))?,
                    attempt: r.get(6),
                    connector: r.get(7),
                    operation: r.get(8),
                    token_id: r.get(9),
                    grant_id: r.get(10),
                    reason: r.get(11),
                })
            })
            .collect()
    }

    // ---- effects ----------------------------------------------------------

    async fn effect(&self, tenant: &TenantId, key: &str) -> Result<Option<EffectRow>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EFFECT_COLUMNS} WHERE key = ?1 AND tenant = ?2"
        )))
        .bind(key)
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(effect_row).transpose()
    }

    async fn effects(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<EffectRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EFFECT_COLUMNS} WHERE (?1 IS NULL OR ticket = ?1) AND (?3 IS NULL OR tenant = ?3) ORDER BY created_at DESC, key LIMIT ?2"
        )))
        .bind(ticket.map(|t| t.to_string()))
        .bind(limit)
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(effect_row).collect()
    }

    async fn begin_effect(&self, e: &EffectRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO effects (key, ticket, attempt, connector, operation, token_id, state, created_at, updated_at, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in_flight', ?7, ?7, ?8)
             ON CONFLICT (key) DO UPDATE SET attempt = ?3, token_id = ?6, state = 'in_flight', updated_at = ?7",
        )
        .bind(&e.key)
        .bind(e.ticket.to_string())
        .bind(e.attempt)
        .bind(&e.connector)
        .bind(&e.operation)
        .bind(&e.token_id)
        .bind(e.created_at_ms)
        .bind(e.tenant.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn settle_effect(&self, s: &Settled<'_>) -> Result<(), DbError> {
        sqlx::query("UPDATE effects SET state = ?2, status = ?3, response = ?4, updated_at = ?5 WHERE key = ?1 AND tenant = ?6")
            .bind(s.key)
            .bind(s.state.as_str())
            .bind(s.status)
            .bind(s.response.map(|r| r.to_string()))
            .bind(s.at)
            .bind(s.tenant.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

const GRANT_COLUMNS: &str = "SELECT id, bot, ticket, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at, expires_at FROM grants";

fn grant_row(r: &sqlx::sqlite::SqliteRow) -> Result<Grant, DbError> {
    Ok(Grant {
        id: r.get(0),
        bot: r
            .get::<Option<&str>, _>(1)
            .map(BotId::parse)
            .transpose()
            .map_err(|e| DbError::new(e.to_string()))?,
        ticket: r
            .get::<Option<&str>, _>(2)
            .map(TicketId::parse)
            .transpose()
            .map_err(|e| DbError::new(e.to_string()))?,
        connector: r.get(3),
        operations: serde_json::from_str(r.get(4))?,
        scopes: serde_json::from_str(r.get(5))?,
        conditions: serde_json::from_str(r.get(6))?,
        rate_per_minute: r.get(7),
        budget_calls: r.get(8),
        calls_used: r.get(9),
        created_at_ms: r.get(10),
        expires_at_ms: r.get(11),
    })
}

const EFFECT_COLUMNS: &str = "SELECT key, ticket, attempt, connector, operation, token_id, state, status, response, created_at, updated_at, tenant FROM effects";

fn effect_row(r: &sqlx::sqlite::SqliteRow) -> Result<EffectRow, DbError> {
    Ok(EffectRow {
        key: r.get(0),
        tenant: TenantId::parse(r.get(11)).map_err(|e| DbError::new(e.to_string()))?,
        ticket: TicketId::parse(r.get(1)).map_err(|e| DbError::new(e.to_string()))?,
        attempt: r.get(2),
        connector: r.get(3),
        operation: r.get(4),
        token_id: r.get(5),
        state: EffectState::parse(r.get(6)).ok_or_else(|| DbError::new("unknown effect state"))?,
        status: r.get(7),
        response: r
            .get::<Option<&str>, _>(8)
            .map(serde_json::from_str)
            .transpose()?,
        created_at_ms: r.get(9),
        updated_at_ms: r.get(10),
    })
}
