//! The fleet store: PostgreSQL through sqlx, with tenant isolation enforced by
//! the database.
//!
//! Every table holding a tenant's data has row-level security enabled and
//! forced; a transaction sees and writes one tenant's rows at a time, the one
//! set by `set_config('app.tenant_id', …, true)` (see the migration,
//! `migrations/postgres`). The controller is an operator across tenants, so
//! it works tenant by tenant: a batch is applied as one transaction that sets
//! each tenant in turn before writing that tenant's rows, and cross-tenant
//! reads (lists, recovery, cost) are one query per tenant, merged here.
//!
//! Three roles keep privilege least ([`setup`] creates them):
//! - `oshal_owner` (NOLOGIN) owns the schema and its tables; migrations run
//!   as it through `SET ROLE`;
//! - `oshal_app` (LOGIN, NOSUPERUSER, NOBYPASSRLS) is what the controller
//!   connects as: SELECT/INSERT/UPDATE on tickets and tenants, SELECT/INSERT
//!   on events and the ledger, owns nothing;
//! - `oshal_readonly` (LOGIN) reads, for dashboards.
//!
//! Batches travel as typed arrays through `unnest`, one statement per table
//! per tenant, so group commit costs the same few round trips at any size.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::{
    Applied, Store, StoreError, Tenant, TicketPage, TicketQuery, TicketSummary, TicketUpdate,
    TicketView, WriteBatch, corrupt, opt_bot, state, tenant,
};
use crate::cost::{CostGroup, CostSummary, CostTotals, LedgerEntry};
use crate::ticket::{
    BotId, ModelId, Skill, TenantId, Ticket, TicketId, TicketState, Transition, Work,
};

pub const OWNER_ROLE: &str = "oshal_owner";
pub const APP_ROLE: &str = "oshal_app";
pub const READONLY_ROLE: &str = "oshal_readonly";
/// The schema used when none is named.
pub const DEFAULT_SCHEMA: &str = "oshal";

/// Checks a schema name: it is spliced into DDL, so only `[a-z_][a-z0-9_]*`
/// up to 63 bytes (PostgreSQL's identifier limit) is accepted.
pub fn check_schema(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema {schema:?} must be 1..=63 characters of a-z, 0-9 or '_', not starting with a digit"
        )))
    }
}

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Invalid(
            "postgres URL must start with postgres:// or postgresql://".into(),
        ));
    }
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Invalid(format!("postgres URL: {e}")))
}

/// Prepares a database for Oshal, as an administrator (a role that may
/// create roles and schemas): creates the three roles if absent, creates
/// `schema` owned by `oshal_owner`, and runs the migrations as that owner.
/// Safe to run again and from several processes at once.
pub async fn setup(admin_url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema(schema)?;
    let mut admin = PgConnection::connect_with(&options(admin_url)?).await?;
    for (role, attrs) in [
        (OWNER_ROLE, "NOLOGIN"),
        (
            APP_ROLE,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
        ),
        (
            READONLY_ROLE,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
        ),
    ] {
        // Concurrent creators race on the catalog: either error means "exists".
        let sql = format!(
            "DO $$ BEGIN CREATE ROLE {role} {attrs}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {OWNER_ROLE}; \
         GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}, {READONLY_ROLE};"
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut admin)
        .await
    {
        // Two processes creating the same schema at once: one of them wins.
        if !e.to_string().contains("duplicate key") {
            return Err(e.into());
        }
    }
    let set_role = format!("SET ROLE {OWNER_ROLE}; SET search_path TO {schema}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_role))
        .execute(&mut admin)
        .await?;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut admin)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    admin.close().await?;
    Ok(())
}

/// Drops `schema` and everything in it (tests and benches clean up with it).
pub async fn drop_schema(admin_url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema(schema)?;
    let mut admin = PgConnection::connect_with(&options(admin_url)?).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// `url` with its user replaced by `role` (same host, database and password
/// rules): how tests and the bench connect as `oshal_app` on a trust-auth
/// server given an administrator's URL.
pub fn as_role(url: &str, role: &str) -> Result<String, StoreError> {
    let mut u =
        reqwest::Url::parse(url).map_err(|e| StoreError::Invalid(format!("postgres URL: {e}")))?;
    u.set_username(role)
        .and_then(|()| u.set_password(None))
        .map_err(|()| StoreError::Invalid("postgres URL cannot carry a user".into()))?;
    Ok(u.to_string())
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to a database prepared by [`setup`], with `schema` as the
    /// search path. `url` names the role to act as (normally `oshal_app`).
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema(schema)?;
        let opts = options(url)?.options([("search_path", schema)]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query("SELECT name, budget_nusd, created_at_ms FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Tenant {
                    id: tenant(&row.try_get::<String, _>("name")?)?,
                    budget_nusd: row.try_get("budget_nusd")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// The tenants a read must visit: the one asked for, or all of them.
    async fn tenants_to_read(&self, only: Option<&TenantId>) -> Result<Vec<TenantId>, StoreError> {
        Ok(match only {
            Some(t) => vec![t.clone()],
            None => self
                .tenant_list()
                .await?
                .into_iter()
                .map(|t| t.id)
                .collect(),
        })
    }

    async fn read_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Makes the rest of the transaction see and write only `tenant`'s rows.
async fn scope(tx: &mut PgConnection, tenant: &TenantId) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.uuid().to_string())
        .execute(tx)
        .await?;
    Ok(())
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

const TICKET_COLUMNS: &str = "id, kind, payload, priority, skill, idempotency_key, state, attempts, max_attempts, \
     transitions, bot_id, parent_id, correlation_id, causation_id, not_before_ms, result, error, created_at_ms, updated_at_ms";

fn ticket_from_row(row: &PgRow, tenant: &TenantId) -> Result<Ticket, StoreError> {
    let kind: String = row.try_get("kind")?;
    let payload: serde_json::Value = row.try_get("payload")?;
    let work = Work::parse(&kind, payload).map_err(|e| corrupt("payload", e))?;
    let result: Option<serde_json::Value> = row.try_get("result")?;
    Ok(Ticket {
        id: TicketId(row.try_get("id")?),
        tenant: tenant.clone(),
        work: Arc::new(work),
        priority: row.try_get::<i16, _>("priority")? as u8,
        skill: Skill::parse(&row.try_get::<String, _>("skill")?)
            .map_err(|e| corrupt("skill", e))?,
        idempotency_key: row.try_get("idempotency_key")?,
        state: state(&row.try_get::<String, _>("state")?)?,
        attempts: u32_of(row.try_get("attempts")?),
        max_attempts: u32_of(row.try_get("max_attempts")?),
        transitions: u32_of(row.try_get("transitions")?),
        bot: opt_bot(row.try_get("bot_id")?)?,
        parent_id: row.try_get::<Option<Uuid>, _>("parent_id")?.map(TicketId),
        correlation_id: TicketId(row.try_get("correlation_id")?),
        causation_id: row
            .try_get::<Option<Uuid>, _>("causation_id")?
            .map(TicketId),
        not_before_ms: row.try_get("not_before_ms")?,
        result: result.map(Arc::new),
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn transition_from_row(row: &PgRow, t: &Ticket) -> Result<Transition, StoreError> {
    let from: Option<String> = row.try_get("from_state")?;
    Ok(Transition {
        ticket: t.id,
        tenant: t.tenant.clone(),
        seq: u32_of(row.try_get("seq")?),
        from: from.as_deref().map(state).transpose()?,
        to: state(&row.try_get::<String, _>("to_state")?)?,
        attempt: u32_of(row.try_get("attempt")?),
        bot: opt_bot(row.try_get("bot_id")?)?,
        reason: row.try_get("reason")?,
        at_ms: row.try_get("at_ms")?,
        correlation_id: t.correlation_id,
        causation_id: t.causation_id,
    })
}

fn ledger_from_row(row: &PgRow, tenant: &TenantId) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        ticket: TicketId(row.try_get("ticket_id")?),
        attempt: u32_of(row.try_get("attempt")?),
        tenant: tenant.clone(),
        bot: BotId::parse(&row.try_get::<String, _>("bot_id")?).map_err(|e| corrupt("bot", e))?,
        model: ModelId::parse(&row.try_get::<String, _>("model")?)
            .map_err(|e| corrupt("model", e))?,
        input_tokens: row.try_get::<i64, _>("input_tokens")? as u32,
        output_tokens: row.try_get::<i64, _>("output_tokens")? as u32,
        cost_nusd: row.try_get("cost_nusd")?,
        unpriced: row.try_get("unpriced")?,
        price_version: row.try_get("price_version")?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// One tenant's share of a batch, by index into the batch's vectors.
#[derive(Default)]
struct Share {
    new_tickets: Vec<usize>,
    updates: Vec<usize>,
    transitions: Vec<usize>,
    ledger: Vec<usize>,
}

const INSERT_TICKETS: &str = "
INSERT INTO tickets (id, tenant_id, kind, payload, priority, skill, idempotency_key, state, attempts, max_attempts,
                     transitions, bot_id, parent_id, correlation_id, causation_id, not_before_ms, result, error,
                     created_at_ms, updated_at_ms)
SELECT u.id, $1, u.kind, u.payload, u.priority, u.skill, u.idempotency_key, u.state, u.attempts, u.max_attempts,
       u.transitions, u.bot_id, u.parent_id, u.correlation_id, u.causation_id, u.not_before_ms, u.result, u.error,
       u.created_at_ms, u.updated_at_ms
FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::int2[], $6::text[], $7::text[], $8::text[], $9::int4[],
            $10::int4[], $11::int4[], $12::text[], $13::uuid[], $14::uuid[], $15::uuid[], $16::int8[],
            $17::jsonb[], $18::text[], $19::int8[], $20::int8[])
     AS u(id, kind, payload, priority, skill, idempotency_key, state, attempts, max_attempts, transitions, bot_id,
          parent_id, correlation_id, causation_id, not_before_ms, result, error, created_at_ms, updated_at_ms)
ON CONFLICT DO NOTHING
RETURNING id";

const UPDATE_TICKETS: &str = "
UPDATE tickets AS t SET state = u.state, attempts = u.attempts, transitions = u.transitions, bot_id = u.bot_id,
       not_before_ms = u.not_before_ms, result = u.result, error = u.error, updated_at_ms = u.updated_at_ms
FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int4[], $5::text[], $6::int8[], $7::jsonb[], $8::text[],
            $9::int8[])
     AS u(id, state, attempts, transitions, bot_id, not_before_ms, result, error, updated_at_ms)
WHERE t.id = u.id";

const INSERT_EVENTS: &str = "
INSERT INTO ticket_events (tenant_id, ticket_id, seq, at_ms, from_state, to_state, attempt, bot_id, reason)
SELECT $1, u.* FROM unnest($2::uuid[], $3::int4[], $4::int8[], $5::text[], $6::text[], $7::int4[], $8::text[],
                           $9::text[]) AS u
ON CONFLICT DO NOTHING";

const INSERT_LEDGER: &str = "
INSERT INTO ledger (tenant_id, ticket_id, attempt, bot_id, model, input_tokens, output_tokens, cost_nusd, unpriced,
                    price_version, at_ms)
SELECT $1, u.* FROM unnest($2::uuid[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[],
                           $9::bool[], $10::text[], $11::int8[]) AS u
ON CONFLICT DO NOTHING";

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

async fn insert_tickets(
    tx: &mut PgConnection,
    tenant: &TenantId,
    tickets: &[&Ticket],
) -> Result<HashSet<Uuid>, StoreError> {
    let col = |f: fn(&Ticket) -> Option<String>| tickets.iter().map(|t| f(t)).collect::<Vec<_>>();
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_TICKETS)
        .bind(tenant.uuid())
        .bind(tickets.iter().map(|t| t.id.0).collect::<Vec<_>>())
        .bind(tickets.iter().map(|t| t.work.kind()).collect::<Vec<_>>())
        .bind(
            tickets
                .iter()
                .map(|t| t.work.payload_json())
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|t| i16::from(t.priority))
                .collect::<Vec<_>>(),
        )
        .bind(tickets.iter().map(|t| t.skill.as_str()).collect::<Vec<_>>())
        .bind(col(|t| t.idempotency_key.clone()))
        .bind(tickets.iter().map(|t| t.state.as_str()).collect::<Vec<_>>())
        .bind(
            tickets
                .iter()
                .map(|t| i32_of(t.attempts))
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|t| i32_of(t.max_attempts))
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|t| i32_of(t.transitions))
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.bot.as_ref().map(|b| b.as_str().to_owned())))
        .bind(
            tickets
                .iter()
                .map(|t| t.parent_id.map(|p| p.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|t| t.correlation_id.0)
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|t| t.causation_id.map(|c| c.0))
                .collect::<Vec<_>>(),
        )
        .bind(tickets.iter().map(|t| t.not_before_ms).collect::<Vec<_>>())
        .bind(
            tickets
                .iter()
                .map(|t| t.result.as_deref().cloned())
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.error.clone()))
        .bind(tickets.iter().map(|t| t.created_at_ms).collect::<Vec<_>>())
        .bind(tickets.iter().map(|t| t.updated_at_ms).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    Ok(inserted.into_iter().collect())
}

async fn update_tickets(
    tx: &mut PgConnection,
    updates: &[&TicketUpdate],
) -> Result<(), StoreError> {
    sqlx::query(UPDATE_TICKETS)
        .bind(updates.iter().map(|u| u.id.0).collect::<Vec<_>>())
        .bind(updates.iter().map(|u| u.state.as_str()).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|u| i32_of(u.attempts))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| i32_of(u.transitions))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| u.bot.as_ref().map(BotId::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(updates.iter().map(|u| u.not_before_ms).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|u| u.result.as_deref().cloned())
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| u.error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(updates.iter().map(|u| u.updated_at_ms).collect::<Vec<_>>())
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_events(
    tx: &mut PgConnection,
    tenant: &TenantId,
    events: &[&Transition],
) -> Result<(), StoreError> {
    sqlx::query(INSERT_EVENTS)
        .bind(tenant.uuid())
        .bind(events.iter().map(|e| e.ticket.0).collect::<Vec<_>>())
        .bind(events.iter().map(|e| i32_of(e.seq)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.at_ms).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.from.map(TicketState::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.to.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| i32_of(e.attempt)).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.bot.as_ref().map(BotId::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>())
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_ledger(
    tx: &mut PgConnection,
    tenant: &TenantId,
    rows: &[&LedgerEntry],
) -> Result<(), StoreError> {
    sqlx::query(INSERT_LEDGER)
        .bind(tenant.uuid())
        .bind(rows.iter().map(|l| l.ticket.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|l| i32_of(l.attempt)).collect::<Vec<_>>())
        .bind(rows.iter().map(|l| l.bot.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|l| l.model.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|l| i64::from(l.input_tokens))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|l| i64::from(l.output_tokens))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|l| l.cost_nusd).collect::<Vec<_>>())
        .bind(rows.iter().map(|l| l.unpriced).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|l| l.price_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|l| l.at_ms).collect::<Vec<_>>())
        .execute(tx)
        .await?;
    Ok(())
}

async fn upsert_tenant(
    tx: &mut PgConnection,
    t: &Tenant,
    set_budget: bool,
) -> Result<(), StoreError> {
    let sql = if set_budget {
        "INSERT INTO tenants (id, name, budget_nusd, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET budget_nusd = excluded.budget_nusd"
    } else {
        "INSERT INTO tenants (id, name, budget_nusd, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING"
    };
    sqlx::query(sql)
        .bind(t.id.uuid())
        .bind(t.id.as_str())
        .bind(t.budget_nusd)
        .bind(t.created_at_ms)
        .execute(tx)
        .await?;
    Ok(())
}

/// Ledger totals grouped by (bot, model, day) for one tenant.
const LEDGER_GROUPS: &str = "
SELECT bot_id, model, to_char(to_timestamp(at_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       count(*) AS n, sum(input_tokens)::int8 AS input, sum(output_tokens)::int8 AS output,
       sum(cost_nusd)::int8 AS cost
FROM ledger GROUP BY 1, 2, 3";

fn add(into: &mut CostTotals, n: i64, input: i64, output: i64, cost: i64) {
    into.attempts += n;
    into.input_tokens += input;
    into.output_tokens += output;
    into.cost_nusd += cost;
    into.usd = crate::cost::usd(into.cost_nusd);
}

fn groups(map: BTreeMap<String, CostTotals>) -> Vec<CostGroup> {
    map.into_iter()
        .map(|(key, totals)| CostGroup { key, totals })
        .collect()
}

#[async_trait]
impl Store for PgStore {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        let mut shares: BTreeMap<&TenantId, Share> = BTreeMap::new();
        for (i, t) in batch.new_tickets.iter().enumerate() {
            shares.entry(&t.tenant).or_default().new_tickets.push(i);
        }
        for (i, u) in batch.updates.iter().enumerate() {
            shares.entry(&u.tenant).or_default().updates.push(i);
        }
        for (i, t) in batch.transitions.iter().enumerate() {
            shares.entry(&t.tenant).or_default().transitions.push(i);
        }
        for (i, l) in batch.ledger.iter().enumerate() {
            shares.entry(&l.tenant).or_default().ledger.push(i);
        }

        let mut applied = Applied::default();
        let mut tx = self.pool.begin().await?;
        for t in &batch.tenants {
            upsert_tenant(&mut tx, t, false).await?;
        }
        for t in &batch.budgets {
            upsert_tenant(&mut tx, t, true).await?;
        }
        for (tenant, share) in shares {
            scope(&mut tx, tenant).await?;
            let mut refused = HashSet::new();
            if !share.new_tickets.is_empty() {
                let tickets: Vec<&Ticket> = share
                    .new_tickets
                    .iter()
                    .map(|&i| &batch.new_tickets[i])
                    .collect();
                let inserted = insert_tickets(&mut tx, tenant, &tickets).await?;
                for t in tickets.iter().filter(|t| !inserted.contains(&t.id.0)) {
                    let existing: Option<Uuid> = sqlx::query_scalar(
                        "SELECT id FROM tickets WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant.uuid())
                    .bind(t.idempotency_key.as_deref())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let existing = existing.ok_or_else(|| corrupt("duplicate ticket", t.id))?;
                    applied.duplicates.push((t.id, TicketId(existing)));
                    refused.insert(t.id);
                }
            }
            if !share.updates.is_empty() {
                let updates: Vec<&TicketUpdate> =
                    share.updates.iter().map(|&i| &batch.updates[i]).collect();
                update_tickets(&mut tx, &updates).await?;
            }
            let events: Vec<&Transition> = share
                .transitions
                .iter()
                .map(|&i| &batch.transitions[i])
                .filter(|t| !refused.contains(&t.ticket))
                .collect();
            if !events.is_empty() {
                insert_events(&mut tx, tenant, &events).await?;
            }
            if !share.ledger.is_empty() {
                let rows: Vec<&LedgerEntry> =
                    share.ledger.iter().map(|&i| &batch.ledger[i]).collect();
                insert_ledger(&mut tx, tenant, &rows).await?;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<TicketView>, StoreError> {
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1");
        for tenant in &tenants {
            scope(&mut tx, tenant).await?;
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?
            else {
                continue;
            };
            let ticket = ticket_from_row(&row, tenant)?;
            let events =
                sqlx::query("SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY seq")
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| transition_from_row(row, &ticket))
                    .collect::<Result<Vec<_>, _>>()?;
            let ledger = sqlx::query("SELECT * FROM ledger WHERE ticket_id = $1 ORDER BY attempt")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| ledger_from_row(row, tenant))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit().await?;
            return Ok(Some(super::view(ticket, events, ledger)));
        }
        tx.commit().await?;
        Ok(None)
    }

    async fn tickets(&self, q: &TicketQuery) -> Result<TicketPage, StoreError> {
        let limit = q.limit.clamp(1, super::MAX_PAGE) as usize;
        let tenants = self.tenants_to_read(q.tenant.as_ref()).await?;
        let mut tx = self.read_tx().await?;
        let mut tickets = Vec::new();
        for tenant in &tenants {
            scope(&mut tx, tenant).await?;
            let rows = sqlx::query(
                "SELECT id, kind, skill, priority, state, attempts, bot_id, error, created_at_ms, updated_at_ms
                 FROM tickets
                 WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR bot_id = $2)
                   AND ($3::text IS NULL OR kind = $3) AND ($4::uuid IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
            )
            .bind(q.state.map(TicketState::as_str))
            .bind(q.bot.as_ref().map(BotId::as_str))
            .bind(q.kind.as_deref())
            .bind(q.cursor.map(|c| c.0))
            .bind(limit as i64 + 1)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                tickets.push(TicketSummary {
                    id: TicketId(row.try_get("id")?),
                    tenant: tenant.clone(),
                    kind: row.try_get("kind")?,
                    skill: Skill::parse(&row.try_get::<String, _>("skill")?)
                        .map_err(|e| corrupt("skill", e))?,
                    priority: row.try_get::<i16, _>("priority")? as u8,
                    state: state(&row.try_get::<String, _>("state")?)?,
                    attempts: u32_of(row.try_get("attempts")?),
                    bot: opt_bot(row.try_get("bot_id")?)?,
                    error: row.try_get("error")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    updated_at_ms: row.try_get("updated_at_ms")?,
                });
            }
        }
        tx.commit().await?;
        tickets.sort_by_key(|t| std::cmp::Reverse(t.id));
        Ok(TicketPage::from_overfetch(tickets, limit))
    }

    async fn unfinished(&self) -> Result<Vec<Ticket>, StoreError> {
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE state NOT IN ('succeeded', 'dead', 'cancelled')"
        );
        let mut out = Vec::new();
        for tenant in &tenants {
            scope(&mut tx, tenant).await?;
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut *tx)
                .await?
            {
                out.push(ticket_from_row(&row, tenant)?);
            }
        }
        tx.commit().await?;
        out.sort_by_key(|t| t.id);
        Ok(out)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.tenant_list().await
    }

    async fn spend_by_tenant(&self) -> Result<Vec<(TenantId, i64)>, StoreError> {
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            scope(&mut tx, &tenant).await?;
            let spent: i64 =
                sqlx::query_scalar("SELECT coalesce(sum(cost_nusd), 0)::int8 FROM ledger")
                    .fetch_one(&mut *tx)
                    .await?;
            out.push((tenant, spent));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn cost_summary(&self) -> Result<CostSummary, StoreError> {
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        let mut total = CostTotals::default();
        let (mut by_bot, mut by_tenant, mut by_model, mut by_day) = (
            BTreeMap::<String, CostTotals>::new(),
            BTreeMap::<String, CostTotals>::new(),
            BTreeMap::<String, CostTotals>::new(),
            BTreeMap::<String, CostTotals>::new(),
        );
        for tenant in &tenants {
            scope(&mut tx, tenant).await?;
            for row in sqlx::query(LEDGER_GROUPS).fetch_all(&mut *tx).await? {
                let (n, input, output, cost): (i64, i64, i64, i64) = (
                    row.try_get("n")?,
                    row.try_get("input")?,
                    row.try_get("output")?,
                    row.try_get("cost")?,
                );
                let keyed = [
                    (&mut by_bot, row.try_get::<String, _>("bot_id")?),
                    (&mut by_tenant, tenant.to_string()),
                    (&mut by_model, row.try_get::<String, _>("model")?),
                    (&mut by_day, row.try_get::<String, _>("day")?),
                ];
                for (map, key) in keyed {
                    add(map.entry(key).or_default(), n, input, output, cost);
                }
                add(&mut total, n, input, output, cost);
            }
        }
        tx.commit().await?;
        Ok(CostSummary {
            price_version: String::new(),
            total,
            by_bot: groups(by_bot),
            by_tenant: groups(by_tenant),
            by_model: groups(by_model),
            by_day: groups(by_day),
        })
    }

    async fn state_counts(&self) -> Result<Vec<(TicketState, i64)>, StoreError> {
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        let mut counts: HashMap<TicketState, i64> = HashMap::new();
        for tenant in &tenants {
            scope(&mut tx, tenant).await?;
            for row in sqlx::query("SELECT state, count(*) AS n FROM tickets GROUP BY state")
                .fetch_all(&mut *tx)
                .await?
            {
                *counts
                    .entry(state(&row.try_get::<String, _>("state")?)?)
                    .or_default() += row.try_get::<i64, _>("n")?;
            }
        }
        tx.commit().await?;
        Ok(TicketState::ALL
            .into_iter()
            .filter_map(|s| counts.get(&s).map(|&n| (s, n)))
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
