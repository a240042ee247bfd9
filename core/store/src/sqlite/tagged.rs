//! Clearing a tag's ended tickets on SQLite: the embedded store is one
//! operator's own file, so the walk-through's tickets can be removed. Rows
//! and events go in one transaction; the ledger's rows stay.

use super::SqliteStore;
use crate::ticket::TenantId;
use crate::{Cleared, StoreError, Tag};

/// The tag's tickets (of `?2`'s tenant, if given) in a terminal state.
const ENDED: &str = "SELECT id FROM tickets WHERE substr(idempotency_key, 1, length(?1)) = ?1
     AND (?2 IS NULL OR tenant_id = ?2) AND state IN ('succeeded', 'dead', 'cancelled')";

pub(super) async fn clear(
    store: &SqliteStore,
    tag: &Tag,
    only: Option<&TenantId>,
) -> Result<Cleared, StoreError> {
    let mut tx = store.pool().begin().await?;
    let only = only.map(TenantId::as_str);
    let events = format!("DELETE FROM ticket_events WHERE ticket_id IN ({ENDED})");
    sqlx::query(sqlx::AssertSqlSafe(events))
        .bind(tag.as_str())
        .bind(only)
        .execute(&mut *tx)
        .await?;
    let rows = format!("DELETE FROM tickets WHERE id IN ({ENDED})");
    let removed = sqlx::query(sqlx::AssertSqlSafe(rows))
        .bind(tag.as_str())
        .bind(only)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tickets WHERE substr(idempotency_key, 1, length(?1)) = ?1
         AND (?2 IS NULL OR tenant_id = ?2)",
    )
    .bind(tag.as_str())
    .bind(only)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Cleared {
        removed: removed as u32,
        unfinished: unfinished as u32,
        ..Cleared::default()
    })
}
