//! The connector store of a fleet: PostgreSQL, as the controller's
//! `oshal_app` role (migrations `0004_connectors.sql` and
//! `0010_ticket_grants.sql`).
//!
//! A tool call's audit rows and writes are its tenant's data: each is
//! written and read inside a transaction scoped to that tenant
//! (`set_config('app.tenant_id', …, true)`), so row-level security, not this
//! code, keeps tenants apart. Cross-tenant reads (the whole trail, every
//! write) visit the tenants one by one and merge, as the ticket store does.
//! Grants, the catalog and operator actions carry no tenant.

use async_trait::async_trait;
use oshal_kernel::name::Named;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    AuditEntry, AuditKind, CatalogRow, ConnectorStore, DbError, EffectRow, EffectState, Grant,
    Settled,
};
use crate::clock::UnixMs;
use crate::ticket::{BotId, TenantId, TicketId};

#[derive(Debug, Clone)]
pub struct PgConnectorStore {
    pool: PgPool,
}

impl PgConnectorStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A transaction that sees and writes only `tenant`'s rows.
    async fn scoped(&self, tenant: Uuid) -> Result<Transaction<'static, Postgres>, DbError> {
        let mut tx = self.pool.begin().await?;
        scope(&mut tx, tenant).await?;
        Ok(tx)
    }

    /// Every tenant in the directory (the tenants a cross-tenant read visits).
    async fn tenants(&self) -> Result<Vec<(Uuid, TenantId)>, DbError> {
        sqlx::query("SELECT id, name FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let name: String = r.try_get(1)?;
                Ok((
                    r.try_get(0)?,
                    TenantId::parse(&name).map_err(|e| DbError::new(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Runs `sql` (bound to a ticket filter and a limit) once per tenant,
    /// each in a read-only transaction scoped to it, and merges the rows.
    async fn per_tenant<T>(
        &self,
        sql: &str,
        (ticket, only): (Option<Uuid>, Option<&TenantId>),
        limit: i64,
        row: fn(&PgRow, &TenantId) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let tenants = match only {
            Some(t) => vec![(t.uuid(), t.clone())],
            None => self.tenants().await?,
        };
        let mut all = Vec::new();
        for (id, name) in tenants {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await?;
            scope(&mut tx, id).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(ticket)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            for r in &rows {
                all.push(row(r, &name)?);
            }
        }
        Ok(all)
    }
}

async fn scope(tx: &mut PgConnection, tenant: Uuid) -> Result<(), DbError> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(tx)
        .await?;
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::new(format!("a stored {what} does not parse: {e}"))
}

fn u32_of(v: Option<i32>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

const AUDIT_COLUMNS: &str = "seq, at_ms, kind, allowed, actor, ticket_id, attempt, connector, operation, token_id, grant_id, reason";

fn audit_row(r: &PgRow, tenant: Option<&TenantId>) -> Result<AuditEntry, DbError> {
    let kind: String = r.try_get(2)?;
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        kind: AuditKind::parse(&kind).ok_or_else(|| corrupt("audit kind", &kind))?,
        allowed: r.try_get(3)?,
        actor: r.try_get(4)?,
        tenant: tenant.cloned(),
        ticket: r.try_get::<Option<Uuid>, _>(5)?.map(TicketId),
        attempt: u32_of(r.try_get(6)?),
        connector: r.try_get(7)?,
        operation: r.try_get(8)?,
        token_id: r.try_get(9)?,
        grant_id: r.try_get(10)?,
        reason: r.try_get(11)?,
    })
}

const EFFECT_COLUMNS: &str = "key, ticket_id, attempt, connector, operation, token_id, state, status, response, created_at_ms, updated_at_ms";

fn effect_row(r: &PgRow, tenant: &TenantId) -> Result<EffectRow, DbError> {
    let state: String = r.try_get(6)?;
    Ok(EffectRow {
        key: r.try_get(0)?,
        tenant: tenant.clone(),
        ticket: TicketId(r.try_get(1)?),
        attempt: u32_of(r.try_get(2)?).unwrap_or(0),
        connector: r.try_get(3)?,
        operation: r.try_get(4)?,
        token_id: r.try_get(5)?,
        state: EffectState::parse(&state).ok_or_else(|| corrupt("effect state", &state))?,
        status: r
            .try_get::<Option<i32>, _>(7)?
            .and_then(|s| u16::try_from(s).ok()),
        response: r.try_get(8)?,
        created_at_ms: r.try_get(9)?,
        updated_at_ms: r.try_get(10)?,
    })
}

const GRANT_COLUMNS: &str = "id, bot, ticket_id, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at_ms, expires_at_ms";

fn grant_row(r: &PgRow) -> Result<Grant, DbError> {
    let json = |i: usize| -> Result<serde_json::Value, DbError> { Ok(r.try_get(i)?) };
    Ok(Grant {
        id: r.try_get(0)?,
        bot: r
            .try_get::<Option<&str>, _>(1)?
            .map(BotId::parse)
            .transpose()
            .map_err(|e| corrupt("grant bot", e))?,
        ticket: r.try_get::<Option<Uuid>, _>(2)?.map(TicketId),
        connector: r.try_get(3)?,
        operations: serde_json::from_value(json(4)?)?,
        scopes: serde_json::from_value(json(5)?)?,
        conditions: serde_json::from_value(json(6)?)?,
        rate_per_minute: u32_of(r.try_get(7)?).unwrap_or(0),
        budget_calls: u32_of(r.try_get(8)?).unwrap_or(0),
        calls_used: u32_of(r.try_get(9)?).unwrap_or(0),
        created_at_ms: r.try_get(10)?,
        expires_at_ms: r.try_get(11)?,
    })
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[async_trait]
impl ConnectorStore for PgConnectorStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn put_catalog(
        &self,
        id: &str,
        manifest: &serde_json::Value,
        at: UnixMs,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO connector_catalog (id, manifest, imported_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET manifest = $2, imported_at_ms = $3, approved_by = NULL, approved_at_ms = NULL",
        )
        .bind(id)
        .bind(manifest)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn approve_catalog(&self, id: &str, by: &str, at: UnixMs) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE connector_catalog SET approved_by = $2, approved_at_ms = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, DbError> {
        sqlx::query("SELECT manifest, imported_at_ms, approved_by, approved_at_ms FROM connector_catalog ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(CatalogRow {
                    manifest: r.try_get(0)?,
                    imported_at_ms: r.try_get(1)?,
                    approved_by: r.try_get(2)?,
                    approved_at_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn insert_grant(&self, g: &Grant) -> Result<(), DbError> {
        g.check_bound()?;
        sqlx::query(
            "INSERT INTO grants (id, bot, ticket_id, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&g.id)
        .bind(g.bot.as_ref().map(BotId::as_str))
        .bind(g.ticket.map(|t| t.0))
        .bind(&g.connector)
        .bind(serde_json::to_value(&g.operations)?)
        .bind(serde_json::to_value(&g.scopes)?)
        .bind(serde_json::to_value(&g.conditions)?)
        .bind(i32_of(g.rate_per_minute))
        .bind(i32_of(g.budget_calls))
        .bind(i32_of(g.calls_used))
        .bind(g.created_at_ms)
        .bind(g.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_grant(&self, id: &str, at: UnixMs) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE grants SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn spend(&self, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE grants SET calls_used = calls_used + 1
             WHERE id = $1 AND revoked_at_ms IS NULL AND calls_used < budget_calls",
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
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants
             WHERE revoked_at_ms IS NULL AND ($1::text IS NULL OR bot = $1) AND ($2::text IS NULL OR connector = $2)
             ORDER BY created_at_ms, id"
        )))
        .bind(bot)
        .bind(connector)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_row)
        .collect()
    }

    async fn grants_for_call(
        &self,
        bot: &str,
        ticket: TicketId,
        connector: &str,
    ) -> Result<Vec<Grant>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants
             WHERE revoked_at_ms IS NULL AND connector = $3
               AND ((bot = $1 AND (ticket_id IS NULL OR ticket_id = $2)) OR (bot IS NULL AND ticket_id = $2))
             ORDER BY created_at_ms, id"
        )))
        .bind(bot)
        .bind(ticket.0)
        .bind(connector)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_row)
        .collect()
    }

    async fn grants_of_ticket(&self, ticket: TicketId) -> Result<Vec<Grant>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants
             WHERE revoked_at_ms IS NULL AND ticket_id = $1 ORDER BY created_at_ms, id"
        )))
        .bind(ticket.0)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_row)
        .collect()
    }

    async fn revoke_ticket_grants(
        &self,
        ticket: TicketId,
        at: UnixMs,
    ) -> Result<Vec<String>, DbError> {
        let mut ids: Vec<String> = sqlx::query_scalar(
            "UPDATE grants SET revoked_at_ms = $2
             WHERE ticket_id = $1 AND revoked_at_ms IS NULL RETURNING id",
        )
        .bind(ticket.0)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        ids.sort();
        Ok(ids)
    }

    async fn audit(&self, e: &AuditEntry) -> Result<(), DbError> {
        let columns = "at_ms, kind, allowed, actor, ticket_id, attempt, connector, operation, token_id, grant_id, reason";
        let values = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11";
        let (sql, tenant) = match &e.tenant {
            Some(t) => (
                format!(
                    "INSERT INTO connector_audit ({columns}, tenant_id) VALUES ({values}, $12)"
                ),
                Some(t.uuid()),
            ),
            None => (
                format!("INSERT INTO operator_audit ({columns}) VALUES ({values})"),
                None,
            ),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(e.at_ms)
            .bind(e.kind.as_str())
            .bind(e.allowed)
            .bind(&e.actor)
            .bind(e.ticket.map(|t| t.0))
            .bind(e.attempt.map(i32_of))
            .bind(&e.connector)
            .bind(&e.operation)
            .bind(&e.token_id)
            .bind(&e.grant_id)
            .bind(&e.reason);
        match tenant {
            Some(tenant) => {
                let mut tx = self.scoped(tenant).await?;
                query.bind(tenant).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            None => {
                query.execute(&self.pool).await?;
            }
        }
        Ok(())
    }

    async fn audit_trail(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let ticket = ticket.map(|t| t.0);
        let limit = i64::from(limit);
        let filter = "WHERE ($1::uuid IS NULL OR ticket_id = $1) ORDER BY seq DESC LIMIT $2";
        let mut all = Vec::new();
        // A tenant's trail is its tickets' calls; operator actions are not its.
        if tenant.is_none() {
            let operator = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {AUDIT_COLUMNS} FROM operator_audit {filter}"
            )))
            .bind(ticket)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            for r in &operator {
                all.push(audit_row(r, None)?);
            }
        }
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM connector_audit {filter}");
        all.extend(
            self.per_tenant(&sql, (ticket, tenant), limit, |r, t| audit_row(r, Some(t)))
                .await?,
        );
        all.sort_by_key(|e| std::cmp::Reverse(e.seq));
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn effect(&self, tenant: &TenantId, key: &str) -> Result<Option<EffectRow>, DbError> {
        let mut tx = self.scoped(tenant.uuid()).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EFFECT_COLUMNS} FROM effects WHERE key = $1"
        )))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(|r| effect_row(r, tenant)).transpose()
    }

    async fn effects(
        &self,
        ticket: Option<TicketId>,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<EffectRow>, DbError> {
        let ticket = ticket.map(|t| t.0);
        let limit = i64::from(limit);
        let sql = format!(
            "SELECT {EFFECT_COLUMNS} FROM effects WHERE ($1::uuid IS NULL OR ticket_id = $1)
             ORDER BY created_at_ms DESC, key LIMIT $2"
        );
        let mut all = self
            .per_tenant(&sql, (ticket, tenant), limit, effect_row)
            .await?;
        all.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| a.key.cmp(&b.key))
        });
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn begin_effect(&self, e: &EffectRow) -> Result<(), DbError> {
        let tenant = e.tenant.uuid();
        let mut tx = self.scoped(tenant).await?;
        sqlx::query(
            "INSERT INTO effects (key, tenant_id, ticket_id, attempt, connector, operation, token_id, state, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_flight', $8, $8)
             ON CONFLICT (key) DO UPDATE SET attempt = $4, token_id = $7, state = 'in_flight', updated_at_ms = $8",
        )
        .bind(&e.key)
        .bind(tenant)
        .bind(e.ticket.0)
        .bind(i32_of(e.attempt))
        .bind(&e.connector)
        .bind(&e.operation)
        .bind(&e.token_id)
        .bind(e.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn settle_effect(&self, s: &Settled<'_>) -> Result<(), DbError> {
        let mut tx = self.scoped(s.tenant.uuid()).await?;
        sqlx::query(
            "UPDATE effects SET state = $2, status = $3, response = $4, updated_at_ms = $5 WHERE key = $1",
        )
        .bind(s.key)
        .bind(s.state.as_str())
        .bind(s.status.map(i32::from))
        .bind(s.response)
        .bind(s.at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
