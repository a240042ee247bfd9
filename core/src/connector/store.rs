//! Where connectors keep what must survive a restart: catalog entries and
//! their approval, grants and their spent budget, the audit trail and the
//! effect ledger. SQLite (the local store's file, migration 0002); every
//! write is durable (`synchronous=FULL`) before the caller goes on.

use serde::{Deserialize, Serialize};
use specta::Type;
use sqlx::{Row, SqlitePool};

use crate::clock::UnixMs;
use crate::ticket::{BotId, TicketId};

#[derive(Debug, thiserror::Error)]
#[error("connector store: {0}")]
pub struct DbError(String);

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        Self(format!("a stored row does not parse: {e}"))
    }
}

/// A numeric ceiling on one parameter: `amount` ≤ 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub param: String,
    pub max: f64,
}

/// What one bot may do with one connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Grant {
    pub id: String,
    pub bot: BotId,
    pub connector: String,
    pub operations: Vec<String>,
    pub scopes: Vec<String>,
    pub conditions: Vec<Condition>,
    pub rate_per_minute: u32,
    pub budget_calls: u32,
    pub calls_used: u32,
    #[specta(type = specta_typescript::Number)]
    pub created_at_ms: UnixMs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
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

impl AuditKind {
    fn as_str(self) -> &'static str {
        match self {
            AuditKind::Decision => "decision",
            AuditKind::CredentialRead => "credential_read",
            AuditKind::Refresh => "refresh",
            AuditKind::Revoke => "revoke",
            AuditKind::Grant => "grant",
            AuditKind::Ungrant => "ungrant",
            AuditKind::Import => "import",
            AuditKind::Approve => "approve",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// One line of the audit trail: who, what, allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct AuditEntry {
    #[specta(type = specta_typescript::Number)]
    pub seq: i64,
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
    pub kind: AuditKind,
    pub allowed: Option<bool>,
    pub actor: Option<String>,
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
            ticket: None,
            attempt: None,
            connector: None,
            operation: None,
            token_id: None,
            grant_id: None,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
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

impl EffectState {
    fn as_str(self) -> &'static str {
        match self {
            EffectState::InFlight => "in_flight",
            EffectState::Done => "done",
            EffectState::Failed => "failed",
            EffectState::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// One write sent (or about to be sent) to an outside system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct EffectRow {
    pub key: String,
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
    pub created_at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
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

#[derive(Debug, Clone)]
pub struct ConnectorDb {
    pool: SqlitePool,
}

impl ConnectorDb {
    /// Over the local store's pool (its migrations created the tables).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    // ---- catalog ----------------------------------------------------------

    pub async fn put_catalog(
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

    pub async fn approve_catalog(&self, id: &str, by: &str, at: UnixMs) -> Result<bool, DbError> {
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

    pub async fn catalog(&self) -> Result<Vec<CatalogRow>, DbError> {
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

    pub async fn insert_grant(&self, g: &Grant) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO grants (id, bot, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(&g.id)
        .bind(g.bot.as_str())
        .bind(&g.connector)
        .bind(serde_json::to_string(&g.operations)?)
        .bind(serde_json::to_string(&g.scopes)?)
        .bind(serde_json::to_string(&g.conditions)?)
        .bind(g.rate_per_minute)
        .bind(g.budget_calls)
        .bind(g.calls_used)
        .bind(g.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes a grant; `false` if there was no live grant with that id.
    pub async fn revoke_grant(&self, id: &str, at: UnixMs) -> Result<bool, DbError> {
        let r =
            sqlx::query("UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Spends one call of a grant's budget; `false` if it is spent (or the
    /// grant was revoked meanwhile).
    pub async fn spend(&self, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE grants SET calls_used = calls_used + 1
             WHERE id = ?1 AND revoked_at IS NULL AND calls_used < budget_calls",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Live grants, optionally of one bot (and one connector).
    pub async fn grants(
        &self,
        bot: Option<&str>,
        connector: Option<&str>,
    ) -> Result<Vec<Grant>, DbError> {
        let rows = sqlx::query(
            "SELECT id, bot, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at
             FROM grants WHERE revoked_at IS NULL AND (?1 IS NULL OR bot = ?1) AND (?2 IS NULL OR connector = ?2)
             ORDER BY created_at, id",
        )
        .bind(bot)
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Grant {
                    id: r.get(0),
                    bot: BotId::parse(r.get(1)).map_err(|e| DbError(e.to_string()))?,
                    connector: r.get(2),
                    operations: serde_json::from_str(r.get(3))?,
                    scopes: serde_json::from_str(r.get(4))?,
                    conditions: serde_json::from_str(r.get(5))?,
                    rate_per_minute: r.get(6),
                    budget_calls: r.get(7),
                    calls_used: r.get(8),
                    created_at_ms: r.get(9),
                })
            })
            .collect()
    }

    // ---- audit ------------------------------------------------------------

    pub async fn audit(&self, e: &AuditEntry) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit (at_ms, kind, allowed, actor, ticket, attempt, connector, operation, token_id, grant_id, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit trail, newest first, optionally of one ticket.
    pub async fn audit_trail(
        &self,
        ticket: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, allowed, actor, ticket, attempt, connector, operation, token_id, grant_id, reason
             FROM audit WHERE (?1 IS NULL OR ticket = ?1) ORDER BY seq DESC LIMIT ?2",
        )
        .bind(ticket.map(|t| t.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.get(0),
                    at_ms: r.get(1),
                    kind: AuditKind::parse(r.get(2))
                        .ok_or_else(|| DbError("unknown audit kind".into()))?,
                    allowed: r.get(3),
                    actor: r.get(4),
                    ticket: r
                        .get::<Option<&str>, _>(5)
                        .map(TicketId::parse)
                        .transpose()
                        .map_err(|e| DbError(e.to_string()))?,
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

    pub async fn effect(&self, key: &str) -> Result<Option<EffectRow>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EFFECT_COLUMNS} WHERE key = ?1"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(effect_row).transpose()
    }

    pub async fn effects(
        &self,
        ticket: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<EffectRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EFFECT_COLUMNS} WHERE (?1 IS NULL OR ticket = ?1) ORDER BY created_at DESC, key LIMIT ?2"
        )))
        .bind(ticket.map(|t| t.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(effect_row).collect()
    }

    /// Records a write as in flight (before it is sent), or moves an
    /// existing one back to in flight for another attempt.
    pub async fn begin_effect(&self, e: &EffectRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO effects (key, ticket, attempt, connector, operation, token_id, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in_flight', ?7, ?7)
             ON CONFLICT (key) DO UPDATE SET attempt = ?3, token_id = ?6, state = 'in_flight', updated_at = ?7",
        )
        .bind(&e.key)
        .bind(e.ticket.to_string())
        .bind(e.attempt)
        .bind(&e.connector)
        .bind(&e.operation)
        .bind(&e.token_id)
        .bind(e.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn settle_effect(
        &self,
        key: &str,
        state: EffectState,
        status: Option<u16>,
        response: Option<&serde_json::Value>,
        at: UnixMs,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE effects SET state = ?2, status = ?3, response = ?4, updated_at = ?5 WHERE key = ?1")
            .bind(key)
            .bind(state.as_str())
            .bind(status)
            .bind(response.map(|r| r.to_string()))
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

const EFFECT_COLUMNS: &str = "SELECT key, ticket, attempt, connector, operation, token_id, state, status, response, created_at, updated_at FROM effects";

fn effect_row(r: &sqlx::sqlite::SqliteRow) -> Result<EffectRow, DbError> {
    Ok(EffectRow {
        key: r.get(0),
        ticket: TicketId::parse(r.get(1)).map_err(|e| DbError(e.to_string()))?,
        attempt: r.get(2),
        connector: r.get(3),
        operation: r.get(4),
        token_id: r.get(5),
        state: EffectState::parse(r.get(6))
            .ok_or_else(|| DbError("unknown effect state".into()))?,
        status: r.get(7),
        response: r
            .get::<Option<&str>, _>(8)
            .map(serde_json::from_str)
            .transpose()?,
        created_at_ms: r.get(9),
        updated_at_ms: r.get(10),
    })
}
