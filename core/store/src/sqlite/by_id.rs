//! Many tickets read by id on SQLite, a chunk of ids a statement (the ids
//! one JSON array): whole ([`crate::Store::tickets_by_id`], three
//! statements a chunk) or their ends ([`crate::TicketEnd`], one, the cost
//! and the start taken by key from the ledger and the events beside each
//! row).

use sqlx::Row;

use std::collections::HashMap;

use super::{
    SqliteStore, TICKET_COLUMNS, ledger_from_row, ticket_from_row, ticket_id, transition_from_row,
};
use crate::cost::LedgerEntry;
use crate::ticket::{TenantId, Ticket, TicketId, Transition};
use crate::{StoreError, TicketEnd, TicketView, corrupt, state};

/// The most ids one statement of [`Store::tickets_by_id`] or
/// [`Store::ticket_ends`] reads.
const BY_ID_CHUNK: usize = 500;

/// Ticket ids as one JSON array, bound as one parameter (SQLite looks
/// each bound name up, so hundreds of them would cost more than the rows).
fn ids_json(ids: &[TicketId]) -> String {
    serde_json::Value::Array(
        ids.iter()
            .map(|t| serde_json::Value::String(t.to_string()))
            .collect(),
    )
    .to_string()
}

pub(super) async fn views(
    store: &SqliteStore,
    ids: &[TicketId],
    only: Option<&TenantId>,
) -> Result<Vec<TicketView>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    // Three statements a chunk, the ids one JSON array.
    for chunk in ids.chunks(BY_ID_CHUNK) {
        let ids = ids_json(chunk);
        let q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE (?1 IS NULL OR tenant_id = ?1) \
             AND id IN (SELECT value FROM json_each(?2))"
        )))
        .bind(only.map(TenantId::as_str))
        .bind(&ids);
        let mut tickets: HashMap<String, (Ticket, Vec<Transition>, Vec<LedgerEntry>)> = q
            .fetch_all(&store.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    (ticket_from_row(row)?, Vec::new(), Vec::new()),
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        // Only the tickets found (`only`'s) take their rows.
        let rows = |table: &str, order: &str| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM {table} WHERE ticket_id IN (SELECT value FROM json_each(?1)) \
                 ORDER BY ticket_id, {order}"
            )))
            .bind(&ids)
        };
        for row in rows("ticket_events", "seq").fetch_all(&store.pool).await? {
            let id: String = row.try_get("ticket_id")?;
            if let Some((t, events, _)) = tickets.get_mut(&id) {
                events.push(transition_from_row(&row, t)?);
            }
        }
        for row in rows("ledger", "attempt").fetch_all(&store.pool).await? {
            let id: String = row.try_get("ticket_id")?;
            if let Some((_, _, ledger)) = tickets.get_mut(&id) {
                ledger.push(ledger_from_row(&row)?);
            }
        }
        out.extend(
            tickets
                .into_values()
                .map(|(t, events, ledger)| crate::view(t, events, ledger)),
        );
    }
    Ok(out)
}

pub(super) async fn ends(
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
