//! The journal on SQLite (see `crate::journal`): a batch appended in one
//! transaction, all or nothing; a book read whole or one session of it.

use sqlx::Row;

use super::SqliteStore;
use crate::StoreError;
use crate::journal::JournalEntry;
use crate::ticket::TenantId;

/// The most entries one statement inserts.
const ROWS_PER_INSERT: usize = 256;

pub(super) async fn append(
    store: &SqliteStore,
    entries: &[JournalEntry],
) -> Result<usize, StoreError> {
    for e in entries {
        crate::journal::check(e)?;
    }
    let mut tx = store.pool.begin().await?;
    let mut written = 0;
    // Many rows a statement, passed as one JSON array (one bound
    // parameter: SQLite looks each bound name up, so hundreds of them
    // would cost more than the rows).
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.book,
                    e.session,
                    e.seq,
                    e.tenant.as_str(),
                    e.kind,
                    e.body,
                    e.at_ms
                ])
            })
            .collect();
        let done = sqlx::query(
            "INSERT INTO desk_journal (book, session, seq, tenant, kind, body, at_ms) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6 \
             FROM json_each(?1) WHERE true ON CONFLICT (session, seq) DO NOTHING",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *tx)
        .await?;
        written += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    if written != entries.len() {
        tx.rollback().await?;
        return Ok(0);
    }
    tx.commit().await?;
    Ok(written)
}

pub(super) async fn read(
    store: &SqliteStore,
    book: &str,
    only: Option<&TenantId>,
) -> Result<Vec<JournalEntry>, StoreError> {
    sqlx::query(
        "SELECT session, seq, tenant, kind, body, at_ms FROM desk_journal \
         WHERE book = ?1 AND (?2 IS NULL OR tenant = ?2) ORDER BY session, seq",
    )
    .bind(book)
    .bind(only.map(|t| t.as_str()))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|row| {
        Ok(JournalEntry {
            book: book.to_owned(),
            session: row.try_get("session")?,
            seq: u32::try_from(row.try_get::<i64, _>("seq")?)
                .map_err(|e| crate::corrupt("journal seq", e))?,
            tenant: crate::tenant(&row.try_get::<String, _>("tenant")?)?,
            kind: row.try_get("kind")?,
            body: row.try_get("body")?,
            at_ms: row.try_get("at_ms")?,
        })
    })
    .collect()
}

pub(super) async fn read_session(
    store: &SqliteStore,
    book: &str,
    session: &str,
    tenant: &TenantId,
) -> Result<Vec<JournalEntry>, StoreError> {
    sqlx::query(
        "SELECT seq, kind, body, at_ms FROM desk_journal \
         WHERE book = ?1 AND session = ?2 AND tenant = ?3 ORDER BY seq",
    )
    .bind(book)
    .bind(session)
    .bind(tenant.as_str())
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|row| {
        Ok(JournalEntry {
            book: book.to_owned(),
            session: session.to_owned(),
            seq: u32::try_from(row.try_get::<i64, _>("seq")?)
                .map_err(|e| crate::corrupt("journal seq", e))?,
            tenant: tenant.clone(),
            kind: row.try_get("kind")?,
            body: row.try_get("body")?,
            at_ms: row.try_get("at_ms")?,
        })
    })
    .collect()
}
