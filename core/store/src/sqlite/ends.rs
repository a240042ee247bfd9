//! Tickets' ends on SQLite (see [`crate::TicketEnd`]): one statement a
//! chunk of ids, the cost and the start taken by key from the ledger and
//! the events beside each row.

use sqlx::Row;

use super::{BY_ID_CHUNK, SqliteStore, ids_json, ticket_id};
use crate::ticket::{TenantId, TicketId};
use crate::{StoreError, TicketEnd, corrupt, state};

pub(super) async fn read(
    store: &SqliteStore,
    ids: &[TicketId],
    only: Option<&TenantId>,
) -> Result<Vec<TicketEnd>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BY_ID_CHUNK) {
        let ids = ids_json(chunk);
        let rows = sqlx::query(
            "SELECT t.id, t.kind, t.state, t.attempts, t.max_attempts, t.result, t.error, t.updated_at_ms, \
               (SELECT COALESCE(SUM(l.cost_nusd), 0) FROM ledger l WHERE l.ticket_id = t.id) AS cost_nusd, \
               (SELECT e.at_ms FROM ticket_events e WHERE e.ticket_id = t.id AND e.to_state = 'running' \
                 ORDER BY e.seq LIMIT 1) AS started_at_ms \
             FROM tickets t WHERE (?1 IS NULL OR t.tenant_id = ?1) \
               AND t.id IN (SELECT value FROM json_each(?2))",
        )
        .bind(only.map(TenantId::as_str))
        .bind(&ids)
        .fetch_all(&store.pool)
        .await?;
        for row in &rows {
            let result: Option<String> = row.try_get("result")?;
            out.push(TicketEnd {
                id: ticket_id(&row.try_get::<String, _>("id")?)?,
                kind: row.try_get("kind")?,
                state: state(&row.try_get::<String, _>("state")?)?,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
                result: result
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(|e| corrupt("result", e))?,
                error: row.try_get("error")?,
                cost_nusd: row.try_get("cost_nusd")?,
                started_at_ms: row.try_get("started_at_ms")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            });
        }
    }
    Ok(out)
}
