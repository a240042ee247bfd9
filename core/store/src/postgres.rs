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
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

use super::{
    Applied, JournalEntry, Store, StoreError, Tenant, TicketPage, TicketQuery, TicketSummary,
    TicketView, TokenRecord, WriteBatch, corrupt, opt_bot, state, tenant,
};
use crate::clock::UnixMs;
use crate::cost::{CostGroup, CostSummary, CostTotals, LedgerEntry};
use crate::ticket::{
    BotId, ModelId, Skill, TenantId, Ticket, TicketId, TicketState, Transition, Work,
};
use oshal_kernel::name::Named;

pub use setup::{
    APP_ROLE, DEFAULT_SCHEMA, OWNER_ROLE, READONLY_ROLE, TENANT_TABLES, as_role, check_schema,
    drop_schema, setup,
};

pub(super) fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Invalid(
            "postgres URL must start with postgres:// or postgresql://".into(),
        ));
    }
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Invalid(format!("postgres URL: {e}")))
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    statistics: Arc<Statistics>,
}

/// When to ask for fresh planner statistics (see `0002_statistics.sql`):
/// after this process has inserted 1,000 tickets, then each time the count
/// doubles, so a table that grows from empty is re-estimated O(log n) times
/// and the batched UPDATE keeps probing the primary key.
#[derive(Debug)]
struct Statistics {
    inserted: AtomicU64,
    next_refresh: AtomicU64,
    refreshing: AtomicBool,
}

impl Statistics {
    const FIRST_REFRESH: u64 = 1_000;

    fn new() -> Self {
        Self {
            inserted: AtomicU64::new(0),
            next_refresh: AtomicU64::new(Self::FIRST_REFRESH),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Counts `n` inserted tickets; true when a refresh is due and this
    /// caller got to run it.
    fn due(&self, n: u64) -> bool {
        let total = self.inserted.fetch_add(n, Ordering::Relaxed) + n;
        total >= self.next_refresh.load(Ordering::Relaxed)
            && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// A pooled connection idle this long is pinged before it is used.
const PING_IDLE: Duration = Duration::from_secs(1);

impl PgStore {
    /// Connects to a database prepared by [`setup`], with `schema` as the
    /// search path. `url` names the role to act as (normally `oshal_app`).
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema(schema)?;
        // The hot rows are cached, so a random page costs about what a
        // sequential one does; the default (4.0) makes a 500-row batch
        // prefer scanning the table to probing its primary key.
        let opts = options(url)?.options([("search_path", schema), ("random_page_cost", "1.1")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            // sqlx pings every connection it hands out: a round trip per
            // commit. Only one idle long enough to have outlived a server
            // restart is pinged; a busy one that broke fails its commit,
            // which the writer retries on another.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE
                        && let Err(e) = conn.ping().await
                    {
                        // Gone with a restart: the pool opens another.
                        tracing::debug!(error = %e, "a pooled connection did not answer its ping");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(opts)
            .await?;
        setup::check_prepared(&pool, schema).await?;
        // No refresh here: an empty table needs none, and an old one has
        // been analyzed by autovacuum.
        Ok(Self {
            pool,
            statistics: Arc::new(Statistics::new()),
        })
    }

    /// Refreshes the planner's statistics in the background once enough
    /// tickets were inserted (at most one refresh at a time).
    fn count_inserted(&self, n: usize) {
        if n == 0 || !self.statistics.due(n as u64) {
            return;
        }
        let pool = self.pool.clone();
        let statistics = self.statistics.clone();
        tokio::spawn(async move {
            refresh_statistics(&pool).await;
            let inserted = statistics.inserted.load(Ordering::Relaxed);
            statistics.next_refresh.store(
                inserted.saturating_mul(2).max(Statistics::FIRST_REFRESH),
                Ordering::Relaxed,
            );
            statistics.refreshing.store(false, Ordering::Release);
        });
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

/// Asks the schema's owner to ANALYZE the tenant tables. A failure only
/// costs plan quality, so it is logged, not returned.
async fn refresh_statistics(pool: &PgPool) {
    let started = std::time::Instant::now();
    match sqlx::query_scalar::<_, bool>("SELECT refresh_statistics()")
        .fetch_one(pool)
        .await
    {
        Ok(ran) => tracing::debug!(
            ran,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "planner statistics refreshed"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not refresh planner statistics (run `oshal db-setup` to add refresh_statistics)")
        }
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
     transitions, bot_id, parent_id, correlation_id, causation_id, not_before_ms, result, error, gate_at_ms, created_at_ms, updated_at_ms";

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
        gate_at_ms: row.try_get("gate_at_ms")?,
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

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// One column of a batch's rows, as the typed array `apply_batch` takes.
fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

/// The whole batch as one call of `apply_batch` (migration 0011): one round
/// trip and one implicit transaction, whatever the number of tenants.
fn apply_batch_query(batch: &WriteBatch) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let tenants: Vec<(&Tenant, bool)> = batch
        .tenants
        .iter()
        .map(|t| (t, false))
        .chain(batch.budgets.iter().map(|t| (t, true)))
        .collect();
    let (n, u, e, l) = (
        &batch.new_tickets,
        &batch.updates,
        &batch.transitions,
        &batch.ledger,
    );
    sqlx::query(APPLY_BATCH)
        .bind(col(&tenants, |(t, _)| t.id.uuid()))
        .bind(col(&tenants, |(t, _)| t.id.as_str().to_owned()))
        .bind(col(&tenants, |(t, _)| t.budget_nusd))
        .bind(col(&tenants, |(t, _)| t.created_at_ms))
        .bind(col(&tenants, |(_, set)| *set))
        .bind(col(n, |t| t.tenant.uuid()))
        .bind(col(n, |t| t.id.0))
        .bind(col(n, |t| t.work.kind().to_owned()))
        .bind(col(n, |t| t.work.payload_json()))
        .bind(col(n, |t| i16::from(t.priority)))
        .bind(col(n, |t| t.skill.as_str().to_owned()))
        .bind(col(n, |t| t.idempotency_key.clone()))
        .bind(col(n, |t| t.state.as_str()))
        .bind(col(n, |t| i32_of(t.attempts)))
        .bind(col(n, |t| i32_of(t.max_attempts)))
        .bind(col(n, |t| i32_of(t.transitions)))
        .bind(col(n, |t| t.bot.as_ref().map(|b| b.as_str().to_owned())))
        .bind(col(n, |t| t.parent_id.map(|p| p.0)))
        .bind(col(n, |t| t.correlation_id.0))
        .bind(col(n, |t| t.causation_id.map(|c| c.0)))
        .bind(col(n, |t| t.not_before_ms))
        .bind(col(n, |t| t.result.as_deref().cloned()))
        .bind(col(n, |t| t.error.clone()))
        .bind(col(n, |t| t.created_at_ms))
        .bind(col(n, |t| t.updated_at_ms))
        .bind(col(n, |t| t.gate_at_ms))
        .bind(col(u, |u| u.tenant.uuid()))
        .bind(col(u, |u| u.id.0))
        .bind(col(u, |u| u.state.as_str()))
        .bind(col(u, |u| i32_of(u.attempts)))
        .bind(col(u, |u| i32_of(u.transitions)))
        .bind(col(u, |u| u.bot.as_ref().map(|b| b.as_str().to_owned())))
        .bind(col(u, |u| u.not_before_ms))
        .bind(col(u, |u| u.result.as_deref().cloned()))
        .bind(col(u, |u| u.error.as_deref().map(str::to_owned)))
        .bind(col(u, |u| u.updated_at_ms))
        .bind(col(e, |e| e.tenant.uuid()))
        .bind(col(e, |e| e.ticket.0))
        .bind(col(e, |e| i32_of(e.seq)))
        .bind(col(e, |e| e.at_ms))
        .bind(col(e, |e| e.from.map(TicketState::as_str)))
        .bind(col(e, |e| e.to.as_str()))
        .bind(col(e, |e| i32_of(e.attempt)))
        .bind(col(e, |e| e.bot.as_ref().map(|b| b.as_str().to_owned())))
        .bind(col(e, |e| e.reason.clone()))
        .bind(col(l, |l| l.tenant.uuid()))
        .bind(col(l, |l| l.ticket.0))
        .bind(col(l, |l| i32_of(l.attempt)))
        .bind(col(l, |l| l.bot.as_str().to_owned()))
        .bind(col(l, |l| l.model.as_str().to_owned()))
        .bind(col(l, |l| i64::from(l.input_tokens)))
        .bind(col(l, |l| i64::from(l.output_tokens)))
        .bind(col(l, |l| l.cost_nusd))
        .bind(col(l, |l| l.unpriced))
        .bind(col(l, |l| l.price_version.clone()))
        .bind(col(l, |l| l.at_ms))
}

const APPLY_BATCH: &str = "SELECT refused, existing FROM apply_batch(\
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
    $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, \
    $41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56)";

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
        let mut applied = Applied::default();
        let refused: Vec<(Uuid, Option<Uuid>)> = apply_batch_query(batch)
            .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?)))
            .fetch_all(&self.pool)
            .await?;
        for (id, existing) in refused {
            let existing = existing.ok_or_else(|| corrupt("duplicate ticket", id))?;
            applied.duplicates.push((TicketId(id), TicketId(existing)));
        }
        self.count_inserted(batch.new_tickets.len() - applied.duplicates.len());
        Ok(applied)
    }

    /// Two: the writer then keeps a second transaction running while the
    /// first commits, on a second backend, so the store's work (about 80 µs
    /// of a backend per ticket) is no longer bound to one core.
    fn parallel_commits(&self) -> usize {
        2
    }

    async fn ticket(
        &self,
        id: TicketId,
        only: Option<&TenantId>,
    ) -> Result<Option<TicketView>, StoreError> {
        let tenants = self.tenants_to_read(only).await?;
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

    async fn tickets_by_id(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketView>, StoreError> {
        by_id::views(self, ids, only).await
    }

    async fn ticket_ends(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<crate::TicketEnd>, StoreError> {
        by_id::ends(self, ids, only).await
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
                   AND ($6::text IS NULL OR starts_with(idempotency_key, $6))
                 ORDER BY id DESC LIMIT $5",
            )
            .bind(q.state.map(TicketState::as_str))
            .bind(q.bot.as_ref().map(BotId::as_str))
            .bind(q.kind.as_deref())
            .bind(q.cursor.map(|c| c.0))
            .bind(limit as i64 + 1)
            .bind(q.tag.as_ref().map(crate::Tag::as_str))
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

    async fn cost_summary(&self, only: Option<&TenantId>) -> Result<CostSummary, StoreError> {
        let tenants = self.tenants_to_read(only).await?;
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

    async fn state_counts(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<(TicketState, i64)>, StoreError> {
        let tenants = self.tenants_to_read(only).await?;
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
        Ok(TicketState::all()
            .iter()
            .copied()
            .filter_map(|s| counts.get(&s).map(|&n| (s, n)))
            .collect())
    }

    async fn api_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM api_tokens ORDER BY created_at_ms, id",
            super::tokens::COLUMNS
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(super::tokens::from_row)
            .collect()
    }

    async fn add_api_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant, role, label, hash, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(t.tenant.as_str())
        .bind(t.role.as_str())
        .bind(&t.label)
        .bind(&t.hash)
        .bind(t.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_api_token(&self, id: &str, at: UnixMs) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_journal(&self, entries: &[JournalEntry]) -> Result<usize, StoreError> {
        journal::append(self, entries).await
    }

    async fn journal(
        &self,
        book: &str,
        only: Option<&TenantId>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        journal::read(self, book, only).await
    }

    async fn journal_of(
        &self,
        book: &str,
        session: &str,
        tenant: &TenantId,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        journal::read_session(self, book, session, tenant).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn texts(
        &self,
        after: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<super::StoredText>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE) as usize;
        let tenants = self.tenants_to_read(None).await?;
        let mut tx = self.read_tx().await?;
        // (id, tenant, payload, result, error) of each tenant's first
        // `limit`, then the first `limit` of them all.
        let mut rows: Vec<(Uuid, usize, String, Option<String>, Option<String>)> = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            scope(&mut tx, tenant).await?;
            for row in sqlx::query(
                "SELECT id, payload::text AS payload, result::text AS result, error FROM tickets
                 WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
            )
            .bind(after.map(|a| a.0))
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?
            {
                rows.push((
                    row.try_get("id")?,
                    i,
                    row.try_get("payload")?,
                    row.try_get("result")?,
                    row.try_get("error")?,
                ));
            }
        }
        rows.sort_by_key(|r| r.0);
        rows.truncate(limit);
        let mut out = Vec::with_capacity(rows.len() * 3);
        for (i, tenant) in tenants.iter().enumerate() {
            let ids: Vec<Uuid> = rows.iter().filter(|r| r.1 == i).map(|r| r.0).collect();
            if ids.is_empty() {
                continue;
            }
            scope(&mut tx, tenant).await?;
            for e in sqlx::query(
                "SELECT ticket_id, seq, reason FROM ticket_events WHERE ticket_id = ANY($1) ORDER BY ticket_id, seq",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            {
                out.push(super::StoredText {
                    ticket: TicketId(e.try_get("ticket_id")?),
                    field: format!("event {}", e.try_get::<i32, _>("seq")?),
                    text: e.try_get("reason")?,
                });
            }
        }
        tx.commit().await?;
        for (id, _, payload, result, error) in rows {
            out.extend(super::StoredText::of_row(
                TicketId(id),
                payload,
                result,
                error,
            ));
        }
        Ok(out)
    }
}

mod by_id;
mod journal;
mod setup;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
