//! Tickets' ends on PostgreSQL (see [`crate::TicketEnd`]): one statement
//! per tenant read, under its row-level security, the cost and the start
//! taken by key from the ledger and the events beside each row.

use sqlx::Row;
use uuid::Uuid;

use super::{PgStore, scope, u32_of};
use crate::ticket::{TenantId, TicketId};
use crate::{StoreError, TicketEnd, state};

pub(super) async fn read(
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
