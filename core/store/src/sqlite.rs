//! The embedded store: SQLite through sqlx, one file in the data directory.
//!
//! WAL journal with `synchronous=FULL`: a batch is on disk (fsynced) when
//! [`Store::apply`] returns, so an acknowledged ticket survives a crash or a
//! power cut. Each table's rows in a batch go in as one JSON array through
//! `json_each`, so a batch of any size costs a handful of statements.
//! Migrations are embedded (`migrations/sqlite`).

use async_trait::async_trait;
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Applied, JournalEntry, Store, StoreError, Tenant, TicketPage, TicketQuery, TicketSummary,
    TicketUpdate, TicketView, TokenRecord, WriteBatch, corrupt, opt_bot, state, tenant,
};
use crate::clock::UnixMs;
use crate::cost::{CostGroup, CostSummary, CostTotals, LedgerEntry};
use crate::ticket::{
    BotId, ModelId, Skill, TenantId, Ticket, TicketId, TicketState, Transition, Work,
};
use oshal_kernel::name::Named;

/// The database file inside a data directory.
pub const DB_FILE: &str = "oshal.db";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/oshal.db` and runs migrations.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        Self::open_file(&dir.join(DB_FILE)).await
    }

    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32768");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            // A file in this process has no server to lose: no ping (a
            // round trip to the connection's thread) before each use.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// ---- rows as they travel into jsonb_each --------------------------------------
//
// Each row is a JSON array read by position (`->>0`): looking a value up by
// index skips the key comparisons an object would cost per column per row.

type NewTicketRow<'a> = (
    (
        TicketId,
        &'a str,
        &'static str,
        serde_json::Value,
        u8,
        &'a str,
        Option<&'a str>,
        &'static str,
        u32,
        u32,
    ),
    (
        u32,
        Option<&'a str>,
        Option<TicketId>,
        TicketId,
        Option<TicketId>,
        Option<i64>,
        Option<&'a serde_json::Value>,
        Option<&'a str>,
        i64,
        i64,
        Option<i64>,
    ),
);
type UpdateRow<'a> = (
    TicketId,
    &'static str,
    u32,
    u32,
    Option<&'a str>,
    Option<i64>,
    Option<&'a serde_json::Value>,
    Option<&'a str>,
    i64,
);
type EventRow<'a> = (
    TicketId,
    u32,
    i64,
    Option<&'static str>,
    &'static str,
    u32,
    Option<&'a str>,
    &'a str,
);
type LedgerRow<'a> = (
    TicketId,
    u32,
    &'a str,
    &'a str,
    &'a str,
    u32,
    u32,
    i64,
    bool,
    &'a str,
    i64,
);

pub(crate) fn json_rows<T: Serialize>(rows: impl Iterator<Item = T>) -> Result<String, StoreError> {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode batch: {e}")))
}

pub(crate) fn new_ticket_rows<'a>(
    tickets: impl Iterator<Item = &'a Ticket>,
) -> Result<String, StoreError> {
    json_rows(tickets.map(|t| -> NewTicketRow<'a> {
        (
            (
                t.id,
                t.tenant.as_str(),
                t.work.kind(),
                t.work.payload_json(),
                t.priority,
                t.skill.as_str(),
                t.idempotency_key.as_deref(),
                t.state.as_str(),
                t.attempts,
                t.max_attempts,
            ),
            (
                t.transitions,
                t.bot.as_ref().map(BotId::as_str),
                t.parent_id,
                t.correlation_id,
                t.causation_id,
                t.not_before_ms,
                t.result.as_deref(),
                t.error.as_deref(),
                t.created_at_ms,
                t.updated_at_ms,
                t.gate_at_ms,
            ),
        )
    }))
}

pub(crate) fn update_rows<'a>(
    updates: impl Iterator<Item = &'a TicketUpdate>,
) -> Result<String, StoreError> {
    json_rows(updates.map(|u| -> UpdateRow<'a> {
        (
            u.id,
            u.state.as_str(),
            u.attempts,
            u.transitions,
            u.bot.as_ref().map(BotId::as_str),
            u.not_before_ms,
            u.result.as_deref(),
            u.error.as_deref(),
            u.updated_at_ms,
        )
    }))
}

pub(crate) fn event_rows<'a>(
    transitions: impl Iterator<Item = &'a Transition>,
) -> Result<String, StoreError> {
    json_rows(transitions.map(|t| -> EventRow<'a> {
        (
            t.ticket,
            t.seq,
            t.at_ms,
            t.from.map(TicketState::as_str),
            t.to.as_str(),
            t.attempt,
            t.bot.as_ref().map(BotId::as_str),
            &t.reason,
        )
    }))
}

pub(crate) fn ledger_rows<'a>(
    entries: impl Iterator<Item = &'a LedgerEntry>,
) -> Result<String, StoreError> {
    json_rows(entries.map(|l| -> LedgerRow<'a> {
        (
            l.ticket,
            l.attempt,
            l.tenant.as_str(),
            l.bot.as_str(),
            l.model.as_str(),
            l.input_tokens,
            l.output_tokens,
            l.cost_nusd,
            l.unpriced,
            &l.price_version,
            l.at_ms,
        )
    }))
}

const INSERT_TICKETS: &str = "
INSERT INTO tickets (id, tenant_id, kind, payload, priority, skill, idempotency_key, state, attempts, max_attempts,
                     transitions, bot_id, parent_id, correlation_id, causation_id, not_before_ms, result, error,
                     created_at_ms, updated_at_ms, gate_at_ms)
SELECT r->>'$[0][0]', r->>'$[0][1]', r->>'$[0][2]', r->'$[0][3]', r->>'$[0][4]', r->>'$[0][5]', r->>'$[0][6]',
       r->>'$[0][7]', r->>'$[0][8]', r->>'$[0][9]',
       r->>'$[1][0]', r->>'$[1][1]', r->>'$[1][2]', r->>'$[1][3]', r->>'$[1][4]', r->>'$[1][5]',
       CASE WHEN r->>'$[1][6]' IS NULL THEN NULL ELSE r->'$[1][6]' END, r->>'$[1][7]', r->>'$[1][8]', r->>'$[1][9]',
       r->>'$[1][10]'
FROM (SELECT j.value AS r FROM jsonb_each(?1) AS j) WHERE true
ON CONFLICT DO NOTHING
RETURNING id";

const UPDATE_TICKETS: &str = "
UPDATE tickets SET state = u.value->>1, attempts = u.value->>2, transitions = u.value->>3, bot_id = u.value->>4,
       not_before_ms = u.value->>5, result = CASE WHEN u.value->>6 IS NULL THEN NULL ELSE u.value->6 END,
       error = u.value->>7, updated_at_ms = u.value->>8
FROM jsonb_each(?1) AS u
WHERE tickets.id = u.value->>0";

const INSERT_EVENTS: &str = "
INSERT INTO ticket_events (ticket_id, seq, at_ms, from_state, to_state, attempt, bot_id, reason)
SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5, j.value->>6, j.value->>7
FROM jsonb_each(?1) AS j WHERE true
ON CONFLICT DO NOTHING";

const INSERT_LEDGER: &str = "
INSERT INTO ledger (ticket_id, attempt, tenant_id, bot_id, model, input_tokens, output_tokens, cost_nusd, unpriced, price_version, at_ms)
SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5, j.value->>6, j.value->>7,
       j.value->>8, j.value->>9, j.value->>10
FROM jsonb_each(?1) AS j WHERE true
ON CONFLICT DO NOTHING";

const TICKET_COLUMNS: &str = "id, tenant_id, kind, payload, priority, skill, idempotency_key, state, attempts, max_attempts, transitions, bot_id, \
     parent_id, correlation_id, causation_id, not_before_ms, result, error, gate_at_ms, created_at_ms, updated_at_ms";

fn ticket_id(s: &str) -> Result<TicketId, StoreError> {
    TicketId::parse(s).map_err(|e| corrupt("ticket id", e))
}

fn opt_ticket_id(s: Option<String>) -> Result<Option<TicketId>, StoreError> {
    s.as_deref().map(ticket_id).transpose()
}

fn ticket_from_row(row: &SqliteRow) -> Result<Ticket, StoreError> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    let payload: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?;
    let work = Work::parse(&kind, payload).map_err(|e| corrupt("payload", e))?;
    let result: Option<String> = row.try_get("result")?;
    let result = result
        .map(|r| serde_json::from_str(&r).map(Arc::new))
        .transpose()
        .map_err(|e| corrupt("result", e))?;
    Ok(Ticket {
        id: ticket_id(&row.try_get::<String, _>("id")?)?,
        tenant: tenant(&row.try_get::<String, _>("tenant_id")?)?,
        work: Arc::new(work),
        priority: row.try_get::<i64, _>("priority")? as u8,
        skill: Skill::parse(&row.try_get::<String, _>("skill")?)
            .map_err(|e| corrupt("skill", e))?,
        idempotency_key: row.try_get("idempotency_key")?,
        state: state(&row.try_get::<String, _>("state")?)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        transitions: row.try_get::<i64, _>("transitions")? as u32,
        bot: opt_bot(row.try_get("bot_id")?)?,
        parent_id: opt_ticket_id(row.try_get("parent_id")?)?,
        correlation_id: ticket_id(&row.try_get::<String, _>("correlation_id")?)?,
        causation_id: opt_ticket_id(row.try_get("causation_id")?)?,
        not_before_ms: row.try_get("not_before_ms")?,
        result,
        error: row.try_get("error")?,
        gate_at_ms: row.try_get("gate_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// An event row, completed with its ticket's correlation and causation ids.
fn transition_from_row(row: &SqliteRow, ticket: &Ticket) -> Result<Transition, StoreError> {
    let from: Option<String> = row.try_get("from_state")?;
    Ok(Transition {
        ticket: ticket_id(&row.try_get::<String, _>("ticket_id")?)?,
        tenant: ticket.tenant.clone(),
        seq: row.try_get::<i64, _>("seq")? as u32,
        from: from.as_deref().map(state).transpose()?,
        to: state(&row.try_get::<String, _>("to_state")?)?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        bot: opt_bot(row.try_get("bot_id")?)?,
        reason: row.try_get("reason")?,
        at_ms: row.try_get("at_ms")?,
        correlation_id: ticket.correlation_id,
        causation_id: ticket.causation_id,
    })
}

fn ledger_from_row(row: &SqliteRow) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        ticket: ticket_id(&row.try_get::<String, _>("ticket_id")?)?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        tenant: tenant(&row.try_get::<String, _>("tenant_id")?)?,
        bot: BotId::parse(&row.try_get::<String, _>("bot_id")?).map_err(|e| corrupt("bot", e))?,
        model: ModelId::parse(&row.try_get::<String, _>("model")?)
            .map_err(|e| corrupt("model", e))?,
        input_tokens: row.try_get::<i64, _>("input_tokens")? as u32,
        output_tokens: row.try_get::<i64, _>("output_tokens")? as u32,
        cost_nusd: row.try_get("cost_nusd")?,
        unpriced: row.try_get::<i64, _>("unpriced")? != 0,
        price_version: row.try_get("price_version")?,
        at_ms: row.try_get("at_ms")?,
    })
}

fn totals(row: &SqliteRow) -> Result<CostTotals, StoreError> {
    let cost_nusd: i64 = row.try_get("cost")?;
    Ok(CostTotals {
        attempts: row.try_get("n")?,
        input_tokens: row.try_get("input")?,
        output_tokens: row.try_get("output")?,
        cost_nusd,
        usd: crate::cost::usd(cost_nusd),
    })
}

macro_rules! group_query {
    ($key:literal) => {
        concat!(
            "SELECT ",
            $key,
            " AS key, count(*) AS n, coalesce(sum(input_tokens),0) AS input, coalesce(sum(output_tokens),0) AS output, \
             coalesce(sum(cost_nusd),0) AS cost FROM ledger WHERE (?1 IS NULL OR tenant_id = ?1) GROUP BY 1 ORDER BY 1"
        )
    };
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let mut tx = self.pool.begin().await?;
        for t in &batch.tenants {
            sqlx::query("INSERT INTO tenants (id, budget_nusd, created_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .bind(t.id.as_str())
                .bind(t.budget_nusd)
                .bind(t.created_at_ms)
                .execute(&mut *tx)
                .await?;
        }
        for t in &batch.budgets {
            sqlx::query(
                "INSERT INTO tenants (id, budget_nusd, created_at_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET budget_nusd = excluded.budget_nusd",
            )
            .bind(t.id.as_str())
            .bind(t.budget_nusd)
            .bind(t.created_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.new_tickets.is_empty() {
            let rows = new_ticket_rows(batch.new_tickets.iter())?;
            let inserted: Vec<String> = sqlx::query_scalar(INSERT_TICKETS)
                .bind(rows)
                .fetch_all(&mut *tx)
                .await?;
            if inserted.len() != batch.new_tickets.len() {
                let inserted: std::collections::HashSet<&str> =
                    inserted.iter().map(String::as_str).collect();
                for t in &batch.new_tickets {
                    if inserted.contains(t.id.to_string().as_str()) {
                        continue;
                    }
                    // The ticket itself, if this batch landed before (see
                    // `Store::apply`), else the holder of its key.
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM tickets WHERE id = ?3 \
                         OR (tenant_id = ?1 AND idempotency_key = ?2) ORDER BY id = ?3 DESC LIMIT 1",
                    )
                    .bind(t.tenant.as_str())
                    .bind(t.idempotency_key.as_deref())
                    .bind(t.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let existing = existing.ok_or_else(|| corrupt("duplicate ticket", t.id))?;
                    let existing = ticket_id(&existing)?;
                    if existing != t.id {
                        applied.duplicates.push((t.id, existing));
                    }
                }
            }
        }
        if !batch.updates.is_empty() {
            sqlx::query(UPDATE_TICKETS)
                .bind(update_rows(batch.updates.iter())?)
                .execute(&mut *tx)
                .await?;
        }
        if !batch.transitions.is_empty() {
            let rows = if applied.duplicates.is_empty() {
                event_rows(batch.transitions.iter())?
            } else {
                let refused: std::collections::HashSet<TicketId> =
                    applied.duplicates.iter().map(|d| d.0).collect();
                event_rows(
                    batch
                        .transitions
                        .iter()
                        .filter(|t| !refused.contains(&t.ticket)),
                )?
            };
            sqlx::query(INSERT_EVENTS)
                .bind(rows)
                .execute(&mut *tx)
                .await?;
        }
        if !batch.ledger.is_empty() {
            let rows = ledger_rows(batch.ledger.iter())?;
            sqlx::query(INSERT_LEDGER)
                .bind(rows)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn ticket(
        &self,
        id: TicketId,
        only: Option<&TenantId>,
    ) -> Result<Option<TicketView>, StoreError> {
        let id_s = id.to_string();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
        ));
        let Some(row) = sqlx::query(sql)
            .bind(&id_s)
            .bind(only.map(TenantId::as_str))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let ticket = ticket_from_row(&row)?;
        let events = sqlx::query("SELECT * FROM ticket_events WHERE ticket_id = ?1 ORDER BY seq")
            .bind(&id_s)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| transition_from_row(row, &ticket))
            .collect::<Result<Vec<_>, _>>()?;
        let ledger = sqlx::query("SELECT * FROM ledger WHERE ticket_id = ?1 ORDER BY attempt")
            .bind(&id_s)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(ledger_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(super::view(ticket, events, ledger)))
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
        let limit = q.limit.clamp(1, super::MAX_PAGE);
        let rows = sqlx::query(
            "SELECT id, tenant_id, kind, skill, priority, state, attempts, bot_id, error, created_at_ms, updated_at_ms FROM tickets
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR bot_id = ?3)
               AND (?4 IS NULL OR kind = ?4) AND (?5 IS NULL OR id < ?5)
               AND (?7 IS NULL OR substr(idempotency_key, 1, length(?7)) = ?7)
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(q.state.map(TicketState::as_str))
        .bind(q.tenant.as_ref().map(TenantId::as_str))
        .bind(q.bot.as_ref().map(BotId::as_str))
        .bind(q.kind.as_deref())
        .bind(q.cursor.map(|c| c.to_string()))
        .bind(i64::from(limit) + 1)
        .bind(q.tag.as_ref().map(crate::Tag::as_str))
        .fetch_all(&self.pool)
        .await?;
        let tickets = rows
            .iter()
            .map(|row| {
                Ok(TicketSummary {
                    id: ticket_id(&row.try_get::<String, _>("id")?)?,
                    tenant: tenant(&row.try_get::<String, _>("tenant_id")?)?,
                    kind: row.try_get("kind")?,
                    skill: Skill::parse(&row.try_get::<String, _>("skill")?)
                        .map_err(|e| corrupt("skill", e))?,
                    priority: row.try_get::<i64, _>("priority")? as u8,
                    state: state(&row.try_get::<String, _>("state")?)?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    bot: opt_bot(row.try_get("bot_id")?)?,
                    error: row.try_get("error")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    updated_at_ms: row.try_get("updated_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(TicketPage::from_overfetch(tickets, limit as usize))
    }

    async fn unfinished(&self) -> Result<Vec<Ticket>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE state NOT IN ('succeeded', 'dead', 'cancelled') ORDER BY id"
        ));
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(ticket_from_row)
            .collect()
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query("SELECT id, budget_nusd, created_at_ms FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Tenant {
                    id: tenant(&row.try_get::<String, _>("id")?)?,
                    budget_nusd: row.try_get("budget_nusd")?,
                    created_at_ms: row.try_get::<UnixMs, _>("created_at_ms")?,
                })
            })
            .collect()
    }

    async fn spend_by_tenant(&self) -> Result<Vec<(TenantId, i64)>, StoreError> {
        sqlx::query("SELECT tenant_id, sum(cost_nusd) AS spent FROM ledger GROUP BY tenant_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let tenant = tenant(&row.try_get::<String, _>("tenant_id")?)?;
                Ok((tenant, row.try_get("spent")?))
            })
            .collect()
    }

    async fn cost_summary(&self, only: Option<&TenantId>) -> Result<CostSummary, StoreError> {
        let only = only.map(TenantId::as_str);
        let groups = |rows: Vec<SqliteRow>| -> Result<Vec<CostGroup>, StoreError> {
            rows.iter()
                .map(|r| {
                    Ok(CostGroup {
                        key: r.try_get("key")?,
                        totals: totals(r)?,
                    })
                })
                .collect()
        };
        let total_row = sqlx::query(
            "SELECT count(*) AS n, coalesce(sum(input_tokens),0) AS input, coalesce(sum(output_tokens),0) AS output, \
             coalesce(sum(cost_nusd),0) AS cost FROM ledger WHERE (?1 IS NULL OR tenant_id = ?1)",
        )
        .bind(only)
        .fetch_one(&self.pool)
        .await?;
        Ok(CostSummary {
            price_version: String::new(),
            total: totals(&total_row)?,
            by_bot: groups(
                sqlx::query(group_query!("bot_id"))
                    .bind(only)
                    .fetch_all(&self.pool)
                    .await?,
            )?,
            by_tenant: groups(
                sqlx::query(group_query!("tenant_id"))
                    .bind(only)
                    .fetch_all(&self.pool)
                    .await?,
            )?,
            by_model: groups(
                sqlx::query(group_query!("model"))
                    .bind(only)
                    .fetch_all(&self.pool)
                    .await?,
            )?,
            by_day: groups(
                sqlx::query(group_query!("date(at_ms / 1000, 'unixepoch')"))
                    .bind(only)
                    .fetch_all(&self.pool)
                    .await?,
            )?,
        })
    }

    async fn state_counts(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<(TicketState, i64)>, StoreError> {
        sqlx::query(
            "SELECT state, count(*) AS n FROM tickets WHERE (?1 IS NULL OR tenant_id = ?1) GROUP BY state",
        )
        .bind(only.map(TenantId::as_str))
        .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    state(&row.try_get::<String, _>("state")?)?,
                    row.try_get("n")?,
                ))
            })
            .collect()
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
            "INSERT INTO api_tokens (id, tenant, role, label, hash, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
            "UPDATE api_tokens SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
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

    async fn clear_tagged(
        &self,
        tag: &crate::Tag,
        only: Option<&TenantId>,
    ) -> Result<crate::Cleared, StoreError> {
        tagged::clear(self, tag, only).await
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
        let after = after.map(|a| a.to_string());
        let rows = sqlx::query(
            "SELECT id, payload, result, error FROM tickets WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
        )
        .bind(after.as_deref())
        .bind(i64::from(limit.clamp(1, super::MAX_PAGE)))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len() * 3);
        for row in &rows {
            let id = ticket_id(&row.try_get::<String, _>("id")?)?;
            out.extend(super::StoredText::of_row(
                id,
                row.try_get("payload")?,
                row.try_get("result")?,
                row.try_get("error")?,
            ));
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let events = sqlx::query(
                "SELECT ticket_id, seq, reason FROM ticket_events WHERE ticket_id BETWEEN ?1 AND ?2 ORDER BY ticket_id, seq",
            )
            .bind(first.try_get::<String, _>("id")?)
            .bind(last.try_get::<String, _>("id")?)
            .fetch_all(&self.pool)
            .await?;
            for e in &events {
                out.push(super::StoredText {
                    ticket: ticket_id(&e.try_get::<String, _>("ticket_id")?)?,
                    field: format!("event {}", e.try_get::<i64, _>("seq")?),
                    text: e.try_get("reason")?,
                });
            }
        }
        Ok(out)
    }
}

mod by_id;
mod journal;
mod tagged;
#[cfg(test)]
mod tests;
