//! Many tickets read by id on PostgreSQL, each tenant read under its
//! row-level security in one read-only transaction: whole
//! ([`crate::Store::tickets_by_id`], three statements a tenant) or their
//! ends ([`crate::TicketEnd`], one, the cost and the start taken by key
//! from the ledger and the events beside each row).

use sqlx::Row;
use uuid::Uuid;

use super::{
    PgStore, TICKET_COLUMNS, ledger_from_row, scope, ticket_from_row, transition_from_row, u32_of,
};
use crate::ticket::{TenantId, TicketId};
use crate::{StoreError, TicketEnd, TicketView, state};

pub(super) async fn views(
    store: &PgStore,
    ids: &[TicketId],
    only: Option<&TenantId>,
) -> Result<Vec<TicketView>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<uuid::Uuid> = ids.iter().map(|t| t.0).collect();
    let tenants = store.tenants_to_read(only).await?;
    let mut tx = store.read_tx().await?;
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ANY($1)");
    let mut out = Vec::with_capacity(ids.len());
    for tenant in &tenants {
        scope(&mut tx, tenant).await?;
        let mut tickets = std::collections::HashMap::new();
        for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
        {
            let t = ticket_from_row(&row, tenant)?;
            tickets.insert(t.id.0, (t, Vec::new(), Vec::new()));
        }
        if tickets.is_empty() {
            continue;
        }
        for row in sqlx::query(
            "SELECT * FROM ticket_events WHERE ticket_id = ANY($1) ORDER BY ticket_id, seq",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
            let id: uuid::Uuid = row.try_get("ticket_id")?;
            if let Some((t, events, _)) = tickets.get_mut(&id) {
                events.push(transition_from_row(&row, t)?);
            }
        }
        for row in sqlx::query(
            "SELECT * FROM ledger WHERE ticket_id = ANY($1) ORDER BY ticket_id, attempt",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
            let id: uuid::Uuid = row.try_get("ticket_id")?;
            if let Some((_, _, ledger)) = tickets.get_mut(&id) {
                ledger.push(ledger_from_row(&row, tenant)?);
            }
        }
        out.extend(
            tickets
                .into_values()
                .map(|(t, events, ledger)| crate::view(t, events, ledger)),
        );
    }
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn ends(
    store: &PgStore,
    ids: &[TicketId],
    only: Option<&TenantId>,
) -> Result<Vec<TicketEnd>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = ids.iter().map(|t| t.0).collect();
    let tenants = store.tenants_to_read(only).await?;
    let mut tx = store.read_tx().await?;
    let mut out = Vec::with_capacity(ids.len());
    for tenant in &tenants {
        scope(&mut tx, tenant).await?;
        let rows = sqlx::query(
            "SELECT t.id, t.kind, t.state, t.attempts, t.max_attempts, t.result, t.error, t.updated_at_ms, \
               (SELECT COALESCE(SUM(l.cost_nusd), 0)::bigint FROM ledger l WHERE l.ticket_id = t.id) AS cost_nusd, \
               (SELECT e.at_ms FROM ticket_events e WHERE e.ticket_id = t.id AND e.to_state = 'running' \
                 ORDER BY e.seq LIMIT 1) AS started_at_ms \
             FROM tickets t WHERE t.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            out.push(TicketEnd {
                id: TicketId(row.try_get("id")?),
                kind: row.try_get("kind")?,
                state: state(&row.try_get::<String, _>("state")?)?,
                attempts: u32_of(row.try_get("attempts")?),
                max_attempts: u32_of(row.try_get("max_attempts")?),
                result: row.try_get("result")?,
                error: row.try_get("error")?,
                cost_nusd: row.try_get("cost_nusd")?,
                started_at_ms: row.try_get("started_at_ms")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            });
        }
    }
    tx.commit().await?;
    Ok(out)
}
